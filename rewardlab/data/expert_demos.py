"""The ``expert-demos`` builder: demonstrations of a Stable-Baselines3 expert, plus a random policy's episodes.

Adversarial imitation (GAIL and its Lipschitz off-policy variant, issue 6) learns a reward from an expert's
transitions and is scored by the normalised return ``(R - R_random) / (R_expert - R_random)``. This builder trains
the expert (SAC or TD3, on CPU), rolls out ``episodes`` deterministic expert episodes and ``random_episodes`` episodes
of a uniform random policy, and keeps the true reward of every transition so both reference returns are measured on
the same footing.

The rows of the default settings of Pendulum-v1 and InvertedDoublePendulum-v5 (SAC) ship with the package; other settings are generated once and
cached under ``backbones.cache_dir()/datasets/``, with the expert's SB3 zip beside them. Learners use the typed view,
:func:`load_demos`, which returns a :class:`Demos` of numpy arrays.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pydantic import ConfigDict

from rewardlab import backbones
from rewardlab.data.cards import DataError, find_card
from rewardlab.data.rows import read_jsonl, settings_key, whole_number, write_jsonl

SHIPPED_DIR = Path(__file__).parent / "shipped"
#: Rows of each task's default settings that ship with the package (so a benchmark never retrains an expert).
SHIPPED = {"Pendulum-v1": SHIPPED_DIR / "expert-demos-pendulum.jsonl",
           "InvertedDoublePendulum-v5": SHIPPED_DIR / "expert-demos-inverted-double-pendulum.jsonl.gz"}


@dataclass(frozen=True)
class TaskSpec:
    """Per-task defaults: the expert's training budget and its SB3 hyperparameters per algorithm.

    The numbers follow rl-baselines3-zoo's tuned settings where those fit a 2-core CPU, with shorter warm-ups
    (``learning_starts``) so small budgets still learn; ``learning_starts`` is capped at half of ``expert_steps``."""

    steps: int  # expert_steps when the config leaves it None: enough for a good expert
    needs_mujoco: bool
    sac: dict
    td3: dict


SMALL = dict(net_arch=[64, 64])  # the low-dimensional tasks need no more; about 2x faster than SB3's [256, 256] on CPU

TASKS: dict[str, TaskSpec] = {
    # SAC: rl-zoo's lr 1e-3; a good expert (mean return about -150) in 15k steps. TD3: rl-zoo's gamma 0.98.
    "Pendulum-v1": TaskSpec(
        steps=15_000,
        needs_mujoco=False,
        sac=dict(learning_rate=1e-3, learning_starts=1_000, policy_kwargs=SMALL),
        td3=dict(learning_rate=1e-3, learning_starts=1_000, gamma=0.98, action_noise=0.1, policy_kwargs=SMALL),
    ),
    # Balancing is easy: SAC reaches the 1000-step cap within ~20-30k steps.
    "InvertedPendulum-v5": TaskSpec(
        steps=25_000,
        needs_mujoco=True,
        sac=dict(learning_rate=1e-3, learning_starts=1_000, policy_kwargs=SMALL),
        td3=dict(learning_rate=1e-3, learning_starts=1_000, action_noise=0.1, policy_kwargs=SMALL),
    ),
    # The cheapest of liayn's MuJoCo tasks (the Lipschitz-GAIL benchmark's). SAC with SB3's default [256, 256]
    # networks and rl-zoo's lr 1e-3 for small control tasks; the 9-d observation has fast pole dynamics.
    "InvertedDoublePendulum-v5": TaskSpec(
        steps=60_000,
        needs_mujoco=True,
        sac=dict(learning_rate=1e-3, learning_starts=1_000),
        td3=dict(learning_rate=1e-3, learning_starts=1_000, action_noise=0.1),
    ),
    # rl-zoo trains MuJoCo experts for 1M steps with SB3's default networks; 300k already gives a hopping expert.
    "Hopper-v5": TaskSpec(
        steps=300_000,
        needs_mujoco=True,
        sac=dict(learning_rate=3e-4, learning_starts=10_000),
        td3=dict(learning_rate=3e-4, learning_starts=10_000, action_noise=0.1),
    ),
}
ALGOS = ("sac", "td3")


@dataclass(frozen=True)
class ExpertDemosConfig:
    """Settings of the ``expert-demos`` builder. Every field changes the rows, so every field is in the cache key.

    Args:
        task (`str`, defaults to `"Pendulum-v1"`): the gymnasium environment; one of ``TASKS`` (Pendulum-v1,
            InvertedPendulum-v5, InvertedDoublePendulum-v5, Hopper-v5; the last three need the ``mujoco`` package).
        algo (`str`, defaults to `"sac"`): the expert's SB3 algorithm, ``"sac"`` or ``"td3"``.
        expert_steps (`int | None`, defaults to `None`): environment steps to train the expert; None takes the
            task's default (Pendulum 15k, InvertedPendulum 25k, InvertedDoublePendulum 60k, Hopper 300k), which reaches a good expert.
        episodes (`int`, defaults to `10`): deterministic expert episodes kept as demonstrations.
        random_episodes (`int`, defaults to `10`): uniform-random-policy episodes, to measure R_random for the
            normalised score.
        seed (`int`, defaults to `0`): seeds training (SB3, torch, numpy, the environment) and the rollouts:
            expert episode ``i`` starts from ``env.reset(seed=seed + 1000 + i)``, random episode ``i`` from
            ``seed + 2000 + i``.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's unknown key is an error, not ignored
    task: str = "Pendulum-v1"
    algo: str = "sac"
    expert_steps: int | None = None
    episodes: int = 10
    random_episodes: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise DataError(f"expert-demos: unknown task '{self.task}'; supported tasks: {', '.join(TASKS)}")
        if self.algo not in ALGOS:
            raise DataError(f"expert-demos: unknown algo '{self.algo}'; expected one of: {', '.join(ALGOS)}")
        for name in ("episodes", "random_episodes"):
            value = getattr(self, name)
            if not whole_number(value, 1):
                raise DataError(f"expert-demos: {name} must be an integer >= 1, found {value!r}")
        if self.expert_steps is not None and (not isinstance(self.expert_steps, int) or self.expert_steps < 1):
            raise DataError(f"expert-demos: expert_steps must be a positive integer or None, found {self.expert_steps!r}")

    @property
    def steps(self) -> int:
        """The expert's training budget, with None resolved to the task's default."""
        return self.expert_steps if self.expert_steps is not None else TASKS[self.task].steps

    def key(self) -> str:
        """Cache key of the rows (``expert_steps=None`` and the task's default number are the same rows)."""
        return settings_key(replace(self, expert_steps=self.steps))

    def expert_key(self) -> str:
        """Cache key of the trained expert: the rollout counts do not change it, so they reuse one expert."""
        return settings_key(replace(self, expert_steps=self.steps), ignore=("episodes", "random_episodes"))


def cache_path(cfg: ExpertDemosConfig) -> Path:
    return backbones.cache_dir() / "datasets" / f"expert-demos-{cfg.key()}.jsonl"


def expert_path(cfg: ExpertDemosConfig) -> Path:
    """The expert's SB3 zip, next to the cached rows (keyed without the rollout counts)."""
    return backbones.cache_dir() / "datasets" / f"expert-demos-expert-{cfg.expert_key()}.zip"


def _make_env(task: str):
    import gymnasium as gym

    try:
        return gym.make(task)
    except (gym.error.DependencyNotInstalled, ImportError) as exc:
        if not TASKS[task].needs_mujoco:
            raise
        raise DataError(f"expert-demos: task {task} needs gymnasium's MuJoCo extras ({exc}); "
                        "install them with: pip install 'mujoco>=3.1' 'imageio>=2.14'") from None


def _algo_class(algo: str):
    from stable_baselines3 import SAC, TD3

    return {"sac": SAC, "td3": TD3}[algo]


def train_expert(cfg: ExpertDemosConfig, progress: bool = True):
    """Train the SB3 expert on CPU, seeded; shows a progress bar with the mean return of recent training episodes."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise
    from tqdm.auto import tqdm

    class _Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=cfg.steps, desc=f"expert-demos: training {cfg.algo} on {cfg.task}", unit="step",
                            disable=not progress, mininterval=1.0)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            if self.n_calls % 1000 == 0 and self.model.ep_info_buffer:
                self.bar.set_postfix(recent_return=f"{np.mean([e['r'] for e in self.model.ep_info_buffer]):.1f}")
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    env = _make_env(cfg.task)
    kwargs = copy.deepcopy(getattr(TASKS[cfg.task], cfg.algo))  # SB3 writes into policy_kwargs
    kwargs["learning_starts"] = min(kwargs["learning_starts"], cfg.steps // 2)
    noise = kwargs.pop("action_noise", None)
    if noise is not None:
        dim = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), noise * np.ones(dim))
    model = _algo_class(cfg.algo)("MlpPolicy", env, seed=cfg.seed, device="cpu", verbose=0, **kwargs)
    model.learn(total_timesteps=cfg.steps, callback=_Progress())
    env.close()
    return model


def _floats(values) -> list[float]:
    """A list of Python floats, as short as exact allows: float32 values (most observations and all actions) keep
    their shortest float32 spelling, which converts back to the identical float32; float64 values stay as they are."""
    arr = np.asarray(values).reshape(-1)
    if arr.dtype == np.float32:
        return [float(str(v)) for v in arr]
    return arr.astype(float).tolist()


def _rollout(env, act, episode: int, policy: str, reset_seed: int) -> list[dict]:
    rows = []
    obs, _ = env.reset(seed=reset_seed)
    done = False
    while not done:
        action = act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append({
            "episode": episode,
            "policy": policy,
            "obs": _floats(obs),
            "action": _floats(action),
            "next_obs": _floats(next_obs),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "reward": float(reward),
        })
        obs, done = next_obs, terminated or truncated
    return rows


def rollouts(cfg: ExpertDemosConfig, model, progress: bool = True) -> list[dict]:
    """``cfg.episodes`` deterministic expert episodes (numbered 0..episodes-1), then ``cfg.random_episodes`` episodes
    of a uniform random policy (numbered on from there), one row per transition with the true reward."""
    from tqdm.auto import tqdm

    env = _make_env(cfg.task)
    env.action_space.seed(cfg.seed + 2000)
    rows: list[dict] = []
    total = cfg.episodes + cfg.random_episodes
    for i in tqdm(range(total), desc=f"expert-demos: rolling out on {cfg.task}", unit="episode", disable=not progress):
        if i < cfg.episodes:
            rows += _rollout(env, lambda o: model.predict(o, deterministic=True)[0], i, "expert", cfg.seed + 1000 + i)
        else:
            j = i - cfg.episodes
            rows += _rollout(env, lambda o: env.action_space.sample(), i, "random", cfg.seed + 2000 + j)
    env.close()
    return rows


@contextmanager
def _one_torch_thread():
    """One torch thread while generating, restored afterwards. The networks are tiny, so more threads only add
    synchronisation (on a busy 2-core machine two threads made SAC ~6x slower), and a fixed count keeps the rows
    independent of the machine's number of cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate(cfg: ExpertDemosConfig, reuse_expert: bool = True, progress: bool = True) -> list[dict]:
    """Train (or load the cached) expert, save it, and roll out the expert and random episodes."""
    with _one_torch_thread():
        return _generate(cfg, reuse_expert, progress)


def _generate(cfg: ExpertDemosConfig, reuse_expert: bool, progress: bool) -> list[dict]:
    path = expert_path(cfg)
    if reuse_expert and path.exists():
        model = _algo_class(cfg.algo).load(path, device="cpu")
    else:
        start = time.perf_counter()
        model = train_expert(cfg, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        if progress:
            print(f"expert-demos: trained {cfg.algo} on {cfg.task} for {cfg.steps} steps in {time.perf_counter() - start:.0f} s; saved {path}")
    return rollouts(cfg, model, progress=progress)


def rows_checked(rows: list[dict], cfg: ExpertDemosConfig) -> list[dict]:
    """Validate rows against the ``expert-demos`` card; the error names the settings' key and the row."""
    return find_card("expert-demos").validate_rows(rows, source=f"expert-demos ({cfg.task}, key {cfg.key()})")


def build(cfg: ExpertDemosConfig = ExpertDemosConfig(), regenerate: bool = False, progress: bool = True) -> list[dict]:
    """The rows: shipped (default settings), else cached, else generated and cached. ``regenerate`` retrains the
    expert and rolls out again (the result is written to the cache, never over the shipped file)."""
    shipped = SHIPPED.get(cfg.task)
    if not regenerate and shipped is not None and cfg.key() == ExpertDemosConfig(task=cfg.task).key() and shipped.exists():
        return read_jsonl(shipped)
    if not regenerate and cache_path(cfg).exists():
        return read_jsonl(cache_path(cfg))
    rows = generate(cfg, reuse_expert=not regenerate, progress=progress)
    write_jsonl(cache_path(cfg), rows)
    return rows


def _returns(rows: list[dict], policy: str) -> np.ndarray:
    totals: dict[int, float] = {}
    for r in rows:
        if r["policy"] == policy:
            totals[r["episode"]] = totals.get(r["episode"], 0.0) + r["reward"]
    return np.array([totals[e] for e in sorted(totals)], dtype=np.float64)


@dataclass
class Demos:
    """The expert's transitions as arrays (expert episodes only, in episode order), with the reference returns.

    ``rewards`` is the true reward, for checks and plots; an imitation learner must not train on it."""

    env_id: str
    obs: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    next_obs: np.ndarray  # (N, obs_dim) float32
    terminated: np.ndarray  # (N,) bool: the environment ended the episode (e.g. Hopper fell)
    truncated: np.ndarray  # (N,) bool: the time limit ended it
    episode: np.ndarray  # (N,) int64
    rewards: np.ndarray  # (N,) float64, the true reward
    expert_returns: np.ndarray  # (episodes,) float64
    random_returns: np.ndarray  # (random_episodes,) float64

    @classmethod
    def from_rows(cls, rows: list[dict], env_id: str) -> Demos:
        """From ``expert-demos`` rows (validated against the card first, e.g. a ``transitions.jsonl`` from --out)."""
        expert = [r for r in rows if r["policy"] == "expert"]
        if not expert:
            raise DataError(f"expert-demos ({env_id}): no row has policy 'expert'")
        random_returns = _returns(rows, "random")
        if random_returns.size == 0:
            raise DataError(f"expert-demos ({env_id}): no row has policy 'random'; the normalised score needs R_random")
        return cls(
            env_id=env_id,
            obs=np.array([r["obs"] for r in expert], dtype=np.float32),
            actions=np.array([r["action"] for r in expert], dtype=np.float32),
            next_obs=np.array([r["next_obs"] for r in expert], dtype=np.float32),
            terminated=np.array([r["terminated"] for r in expert], dtype=bool),
            truncated=np.array([r["truncated"] for r in expert], dtype=bool),
            episode=np.array([r["episode"] for r in expert], dtype=np.int64),
            rewards=np.array([r["reward"] for r in expert], dtype=np.float64),
            expert_returns=_returns(expert, "expert"),
            random_returns=random_returns,
        )

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def n_episodes(self) -> int:
        return len(self.expert_returns)

    @property
    def expert_return(self) -> float:
        return float(np.mean(self.expert_returns))

    @property
    def random_return(self) -> float:
        return float(np.mean(self.random_returns))

    @property
    def dones(self) -> np.ndarray:
        """True at the last transition of every episode, whether it terminated or was truncated."""
        return np.append(self.episode[1:] != self.episode[:-1], True) if len(self) else np.zeros(0, dtype=bool)

    def normalized_score(self, R):
        """``(R - R_random) / (R_expert - R_random)``: 0 is the random policy, 1 the expert. Works on arrays too."""
        gap = self.expert_return - self.random_return
        if gap <= 0:
            raise DataError(f"expert-demos ({self.env_id}): the expert's mean return {self.expert_return:.1f} is not above the "
                            f"random policy's {self.random_return:.1f}; train it longer (expert_steps)")
        return (np.asarray(R, dtype=np.float64) - self.random_return) / gap if np.ndim(R) else (float(R) - self.random_return) / gap

    def subset(self, n_episodes: int) -> Demos:
        """The first ``n_episodes`` expert episodes (the random returns are kept whole)."""
        if not 1 <= n_episodes <= self.n_episodes:
            raise DataError(f"expert-demos ({self.env_id}): subset needs 1..{self.n_episodes} episodes, found {n_episodes}")
        keep = np.unique(self.episode)[:n_episodes]
        mask = np.isin(self.episode, keep)
        return replace(
            self,
            obs=self.obs[mask], actions=self.actions[mask], next_obs=self.next_obs[mask],
            terminated=self.terminated[mask], truncated=self.truncated[mask], episode=self.episode[mask],
            rewards=self.rewards[mask], expert_returns=self.expert_returns[:n_episodes],
        )

    def to_npz(self, path: str | Path) -> Path:
        """Write the demonstrations as ``.npz`` with float32 ``obs``, ``actions``, ``next_obs`` and bool ``dones``
        (episode ends) and ``terminated``: the format the peer GAIL benchmark reads. Keep these key names."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:  # a file handle: np.savez would otherwise append ".npz" to other suffixes
            np.savez(fh, obs=self.obs.astype(np.float32), actions=self.actions.astype(np.float32),
                     next_obs=self.next_obs.astype(np.float32), dones=self.dones, terminated=self.terminated.astype(bool))
        return path


def load_demos(cfg: ExpertDemosConfig = ExpertDemosConfig(), regenerate: bool = False) -> Demos:
    """The typed view for learners: build (shipped, cached or generated) rows, validate them, and convert."""
    rows = rows_checked(build(cfg, regenerate=regenerate), cfg)
    return Demos.from_rows(rows, cfg.task)
