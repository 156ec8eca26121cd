"""The ``pendulum-random`` builder: Pendulum-v1 transitions from a uniform random policy, with the true reward.

Fast (a second or two), seeded, and exact to regenerate, so nothing ships: the rows are built on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import ConfigDict


@dataclass(frozen=True)
class PendulumRandomConfig:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored

    episodes: int = 20
    test_episodes: int = 5
    seed: int = 0


def build(cfg: PendulumRandomConfig = PendulumRandomConfig()) -> list[dict]:
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    env.action_space.seed(cfg.seed)
    rows = []
    for episode in range(cfg.episodes + cfg.test_episodes):
        obs, _ = env.reset(seed=cfg.seed + episode)
        done = False
        while not done:
            action = env.action_space.sample()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            rows.append(
                {
                    "episode": episode,
                    "split": "test" if episode >= cfg.episodes else "train",
                    "obs": np.asarray(obs, dtype=float).tolist(),
                    "action": np.asarray(action, dtype=float).tolist(),
                    "next_obs": np.asarray(next_obs, dtype=float).tolist(),
                    "done": bool(terminated),
                    "reward": float(reward),
                }
            )
            obs = next_obs
    env.close()
    return rows


# --- conventions shared by the GAIL learner and its reward (numpy only) ---------------------------------------

def scale_actions(actions, low, high) -> np.ndarray:
    """Actions rescaled from the box [low, high] to [-1, 1], as Stable-Baselines3 stores them in its buffers."""
    actions = np.asarray(actions, np.float32)
    return np.clip(2 * (actions.reshape(len(actions), -1) - low) / (high - low) - 1, -1, 1).astype(np.float32)


def absorbing_obs(obs_dim: int) -> np.ndarray:
    """The absorbing state of an ``obs_dim`` observation: zeros with the flag (an extra last entry) at 1."""
    out = np.zeros(obs_dim + 1, np.float32)
    out[-1] = 1.0
    return out


def with_flag(obs) -> np.ndarray:
    """Observations with the absorbing flag appended, at 0 (not absorbing)."""
    obs = np.asarray(obs, np.float32)
    return np.concatenate([obs, np.zeros(obs.shape[:-1] + (1,), np.float32)], axis=-1)


def zero_absorbing_actions(obs, actions):
    """Actions with those taken at the absorbing state (flag, the last entry of ``obs``, at 1) set to 0: there the
    action carries no information, and the expert's absorbing rows have zero actions. numpy arrays or torch tensors."""
    return actions * (1 - obs[:, -1:])


def to_absorbing(obs, next_obs, terminated) -> tuple[np.ndarray, np.ndarray]:
    """(obs, next_obs) with the flag appended; a terminated transition leads to the absorbing state."""
    obs, next_obs = with_flag(obs), with_flag(next_obs)
    next_obs[np.asarray(terminated).reshape(-1).astype(bool)] = absorbing_obs(obs.shape[-1] - 1)
    return obs, next_obs
