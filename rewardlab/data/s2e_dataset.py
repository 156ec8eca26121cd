"""The ``s2e-explanations`` builder: S2E (state, action, next state, concepts, explanation) rows from play.

Two domains (``S2EDatasetConfig.domain``):

- ``"connect4"``: games of PettingZoo ``connect_four_v3``. Each move of either player is one row, seen from the
  mover's perspective (0 empty, 1 mover, 2 opponent; row 0 is the top row, cells in row-major order).
- ``"lunarlander"``: episodes of gymnasium ``LunarLander-v3``. To keep the dataset modest, every ``LUNAR_STRIDE``-th
  step (steps 0, 4, 8, ...) becomes a row, at most ``LUNAR_MAX_ROWS`` rows per episode; observations are rounded to 6
  significant digits and the concepts are computed from the rounded values, so every row is self-consistent.

Each episode is played by one policy: ``"reasonable"`` (a fraction ``policy_mix`` of the episodes) or ``"random"``.
In Connect 4 both players use the episode's policy; the reasonable one wins if it can, else blocks an immediate
opponent win, else plays a move that makes an open three or takes the centre, else a random legal column. In Lunar
Lander the reasonable policy is gymnasium's own heuristic controller. The split is by episode: a seeded random subset
of ``round(test_fraction * episodes)`` episodes is "test". Everything follows from the seed, so nothing ships.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pydantic import ConfigDict

from rewardlab.data.cards import DataError
from rewardlab.data.rows import whole_number
from rewardlab.data.concepts import (
    DOMAINS,
    board_from_pettingzoo,
    connect4_concepts,
    drop,
    explain,
    legal_columns,
    lunar_concepts,
)

LUNAR_STRIDE = 4
LUNAR_MAX_ROWS = 150


@dataclass(frozen=True)
class S2EDatasetConfig:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored

    domain: str = "connect4"
    episodes: int = 200
    policy_mix: float = 0.5
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise DataError(f"s2e-explanations: domain must be one of {', '.join(DOMAINS)}, found {self.domain!r}")
        if not whole_number(self.episodes, 1):
            raise DataError(f"s2e-explanations: episodes must be a positive integer, found {self.episodes!r}")
        for name in ("policy_mix", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise DataError(f"s2e-explanations: {name} must be a number in [0, 1], found {value!r}")
        if self.test_fraction >= 1:
            raise DataError(f"s2e-explanations: test_fraction must be below 1 (some episodes must train), found {self.test_fraction!r}")
        if not whole_number(self.seed, 0):
            raise DataError(f"s2e-explanations: seed must be a non-negative integer, found {self.seed!r}")


def episode_plan(cfg: S2EDatasetConfig) -> list[tuple[str, str]]:
    """(policy, split) of each episode, seeded: ``round(policy_mix * episodes)`` reasonable episodes and
    ``round(test_fraction * episodes)`` test episodes, both at seeded random positions."""
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.episodes
    n_reasonable = int(round(cfg.policy_mix * n))
    reasonable = set(rng.permutation(n)[:n_reasonable].tolist())
    n_test = min(int(round(cfg.test_fraction * n)), n - 1)
    test = set(rng.permutation(n)[:n_test].tolist())
    return [("reasonable" if e in reasonable else "random", "test" if e in test else "train") for e in range(n)]


def reasonable_column(board: np.ndarray, rng: np.random.Generator, prefer: tuple[str, ...] = ("three_in_row", "center")) -> int:
    """The reasonable Connect 4 policy for the mover (player 1) on ``board``: win, else block, else a move with one
    of the ``prefer`` concepts (an open three or the centre), else a random legal column. ``prefer=()`` is the
    one-step-lookahead opponent of the S2E experiments (win, else block, else random)."""
    legal = legal_columns(board)
    concepts = {col: set(connect4_concepts(board, col)) for col in legal}
    for wanted in ("win", "block_win"):
        cols = [c for c in legal if wanted in concepts[c]]
        if cols:
            return int(rng.choice(cols))
    cols = [c for c in legal if concepts[c] & set(prefer)]
    return int(rng.choice(cols or legal))


def _connect4_episode(env, episode: int, policy: str, split: str, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 1, episode])
    env.reset(seed=seed + episode)
    rows = []
    for agent in env.agent_iter():
        obs, _, terminated, truncated, _ = env.last()
        if terminated or truncated:
            env.step(None)
            continue
        board = board_from_pettingzoo(obs)
        legal = np.flatnonzero(obs["action_mask"]).tolist()
        if legal != legal_columns(board):
            raise RuntimeError(f"connect_four_v3 action mask {legal} disagrees with the board's legal columns")
        col = reasonable_column(board, rng) if policy == "reasonable" else int(rng.choice(legal))
        concepts = connect4_concepts(board, col)
        after, _ = drop(board, col)
        rows.append(
            {
                "domain": "connect4",
                "episode": episode,
                "split": split,
                "policy": policy,
                "state": board.reshape(-1).astype(int).tolist(),
                "action": [col],
                "next_state": after.reshape(-1).astype(int).tolist(),
                "concepts": list(concepts),
                "explanation": explain(concepts, "connect4"),
            }
        )
        env.step(col)
    return rows


def _round6(values) -> list[float]:
    return [float(f"{float(v):.6g}") for v in np.asarray(values).reshape(-1)]


def _lunar_episode(env, episode: int, policy: str, split: str, seed: int) -> list[dict]:
    from gymnasium.envs.box2d.lunar_lander import heuristic

    rng = np.random.default_rng([seed, 2, episode])
    obs, _ = env.reset(seed=seed + episode)
    rows, step, done = [], 0, False
    while not done and len(rows) < LUNAR_MAX_ROWS:
        action = int(heuristic(env.unwrapped, obs)) if policy == "reasonable" else int(rng.integers(4))
        next_obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        if step % LUNAR_STRIDE == 0:
            state, next_state = _round6(obs), _round6(next_obs)
            concepts = lunar_concepts(np.asarray(state), action, np.asarray(next_state))
            rows.append(
                {
                    "domain": "lunarlander",
                    "episode": episode,
                    "split": split,
                    "policy": policy,
                    "state": state,
                    "action": [action],
                    "next_state": next_state,
                    "concepts": list(concepts),
                    "explanation": explain(concepts, "lunarlander"),
                }
            )
        obs, step = next_obs, step + 1
    return rows


def build(cfg: S2EDatasetConfig = S2EDatasetConfig()) -> list[dict]:
    """The rows of ``cfg``, episode by episode, move by move: deterministic for a config."""
    plan = episode_plan(cfg)
    if cfg.domain == "connect4":
        from pettingzoo.classic import connect_four_v3

        env, play = connect_four_v3.env(), _connect4_episode
    else:
        import gymnasium as gym

        env, play = gym.make("LunarLander-v3"), _lunar_episode
    rows = []
    try:
        for episode, (policy, split) in enumerate(plan):
            rows.extend(play(env, episode, policy, split, cfg.seed))
    finally:
        env.close()
    return rows


__all__ = ["LUNAR_MAX_ROWS", "LUNAR_STRIDE", "S2EDatasetConfig", "build", "episode_plan", "reasonable_column"]
