"""Consumer: RLHF on TRL (GRPO, RLOO) with any rewardlab TextReward, SPO win-rate rewards, and the RLHF recipes.

Only ``rewards/`` is imported from rewardlab's lower layers; TRL is imported when a trainer is built.
"""

from rewardlab.rlhf.rewards import (
    AsyncTextRewardFunction,
    TextRewardFunction,
    WinRateReward,
    correctness_reward,
    groups_of,
    reward_function,
    win_rates,
)

__all__ = ["AsyncTextRewardFunction", "TextRewardFunction", "WinRateReward", "correctness_reward", "groups_of", "reward_function", "win_rates"]
