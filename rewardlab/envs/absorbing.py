"""Absorbing states (Kostrikov et al., DAC; used by liayn-pytorch's ``wrap_absorb``) as a gymnasium wrapper.

Observations get one extra flag. A termination leads to the absorbing state (zeros, flag 1); one more step there,
whatever the action, ends the episode as truncated. The critic therefore bootstraps through the absorbing state
instead of treating the termination as the end of value, and a discriminator prices the absorbing state like any
other: the GAIL learner trains on this view, and a DiscriminatorReward put back into an environment must see the
same one (``rewardlab.imitation.make_reward_vec_env`` wraps the environment with this class when the reward was
trained with absorbing states).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rewardlab.data.transitions import absorbing_obs, with_flag


class AbsorbingState(gym.Wrapper):
    """Adds a flag to observations; a termination leads to the absorbing state, and one more step there ends the
    episode as truncated (the inner episode's info, e.g. Monitor's return, comes with that last step)."""

    def __init__(self, env):
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Box(np.append(low, 0).astype(np.float32), np.append(high, 1).astype(np.float32))
        self._absorbed, self._info = False, {}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._absorbed = False
        return with_flag(obs), info

    def step(self, action):
        dim = self.observation_space.shape[0] - 1
        if self._absorbed:
            return absorbing_obs(dim), 0.0, False, True, {**self._info, "absorbing": True}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._absorbed, self._info = True, info
            return absorbing_obs(dim), reward, False, False, {k: v for k, v in info.items() if k != "episode"}
        return with_flag(obs), reward, False, truncated, info
