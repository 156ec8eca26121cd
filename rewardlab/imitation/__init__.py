"""Imitation consumer: puts any TransitionReward into gymnasium / Stable-Baselines3 environments, true reward in info."""

from rewardlab.envs.reward import TransitionRewardWrapper
from rewardlab.imitation.wrappers import make_reward_vec_env, reward_vec_env_class

__all__ = ["TransitionRewardWrapper", "make_reward_vec_env", "reward_vec_env_class"]
