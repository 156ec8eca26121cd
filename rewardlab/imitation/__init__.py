"""Imitation consumer: puts any TransitionReward into gymnasium / Stable-Baselines3 environments, true reward in info."""

from rewardlab.imitation.wrappers import TransitionRewardWrapper, make_reward_vec_env, reward_vec_env_class

__all__ = ["TransitionRewardWrapper", "make_reward_vec_env", "reward_vec_env_class"]
