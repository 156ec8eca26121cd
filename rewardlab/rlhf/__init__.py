"""Consumer: RLHF on TRL (GRPO, RLOO) with any rewardlab TextReward, SPO win-rate rewards, and the RLHF recipes.

Rewards come through ``rewards/`` (the interface), never from a learner; the recipe job (``rlhf/train.py``) also
uses ``data/`` for the math prompts, ``tracking`` and ``backbones``. TRL is imported when a trainer is built.
"""

from rewardlab.rlhf.rewards import (
    AsyncTextRewardFunction,
    AsyncWinRateReward,
    TextRewardFunction,
    WinRateReward,
    correctness_reward,
    groups_of,
    reward_function,
    win_rate_reward,
    win_rates,
)

__all__ = ["AsyncTextRewardFunction", "AsyncWinRateReward", "TextRewardFunction", "WinRateReward", "correctness_reward",
           "groups_of", "reward_function", "win_rate_reward", "win_rates"]
