"""Pluggable rewards: the protocol, combinators and built-ins."""

from textgym.rewards.base import (
    FunctionReward,
    Reward,
    RewardContext,
    RewardError,
    as_reward,
    check_value,
    evaluate,
)
from textgym.rewards.verifiable import ExactMatch

__all__ = [
    "ExactMatch",
    "FunctionReward",
    "Reward",
    "RewardContext",
    "RewardError",
    "as_reward",
    "check_value",
    "evaluate",
]
