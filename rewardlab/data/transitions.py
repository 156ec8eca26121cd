"""The ``pendulum-random`` builder: Pendulum-v1 transitions from a uniform random policy, with the true reward.

Fast (a second or two), seeded, and exact to regenerate, so nothing ships: the rows are built on demand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PendulumRandomConfig:
    episodes: int = 20
    test_episodes: int = 5
    seed: int = 0


def build(cfg: PendulumRandomConfig = PendulumRandomConfig()) -> list[dict]:
    import gymnasium as gym
    import numpy as np

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
