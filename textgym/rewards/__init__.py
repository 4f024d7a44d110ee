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
from textgym.rewards.verifiable import (
    AnswerFormat,
    Correctness,
    ExactMatch,
    NumericMatch,
    is_abstention,
    parse_answer,
)

__all__ = [
    "AnswerFormat",
    "Correctness",
    "NumericMatch",
    "is_abstention",
    "parse_answer",
    "ExactMatch",
    "FunctionReward",
    "Reward",
    "RewardContext",
    "RewardError",
    "as_reward",
    "check_value",
    "evaluate",
]
