"""A shaping-reward wrapper: the environment's reward plus ``coef`` times a TransitionReward of each step
(S2E's concept shaping), with the environment's own reward kept in ``info["true_reward"]``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ConceptShaping(gym.Wrapper):
    """reward = base reward + coef x shaping reward of the transition; ``base="sparse"`` keeps only the reward of
    terminal steps (Lunar Lander's +-100). The environment's own reward stays in ``info["true_reward"]``.

    As in S2E's code, a terminal step pays the game's result alone: Lunar Lander's +-100 replaces that step's
    shaping (gymnasium does the same), and a Connect 4 win is worth 1 with or without shaping, so the concept
    value of the winning move is not added on top of it (that would make a shaped win worth 2)."""

    def __init__(self, env, shaping=None, coef: float = 1.0, base: str = "dense"):
        super().__init__(env)
        self.shaping, self.coef, self.base = shaping, coef, base
        self._obs = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        shaped = float(reward) if (self.base == "dense" or terminated) else 0.0
        result_only = terminated and (self.base == "sparse" or reward > 0)  # +-100 landing/crash, or a win
        if self.shaping is not None and not result_only:
            shaped += self.coef * float(self.shaping.score(np.asarray(self._obs)[None], np.asarray([action]),
                                                           np.asarray(obs)[None], np.asarray([float(terminated)]))[0])
        self._obs = obs
        return obs, shaped, terminated, truncated, {**info, "true_reward": float(reward)}
