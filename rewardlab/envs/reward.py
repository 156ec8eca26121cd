"""The reward wrapper: one gymnasium environment whose reward comes from a TransitionReward, the environment's own
reward kept in ``info["true_reward"]`` (and the whole episode's in ``info["true_episode_return"]``). Below the
learners and the consumers: ``rewardlab.imitation`` exports it beside its SB3 VecEnv wrapper."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class TransitionRewardWrapper(gym.Wrapper):
    """One environment: the step's reward comes from ``reward``; the true reward goes to ``info``."""

    def __init__(self, env: gym.Env, reward):
        super().__init__(env)
        if getattr(reward, "modality", "transition") != "transition" or not hasattr(reward, "score"):
            raise TypeError(f"{type(reward).__name__} is not a TransitionReward (it needs score(obs, actions, next_obs, dones))")
        self.reward = reward
        self._obs = None
        self._true_return = 0.0

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        self._true_return = 0.0
        return self._obs, info

    def step(self, action):
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        learned = self.reward.score(np.asarray(self._obs)[None], np.asarray(action)[None], np.asarray(obs)[None],
                                    np.asarray([float(terminated)]))[0]
        self._true_return += float(true_reward)
        info = {**info, "true_reward": float(true_reward)}
        if terminated or truncated:
            info["true_episode_return"] = self._true_return
        self._obs = obs
        return obs, float(learned), terminated, truncated, info
