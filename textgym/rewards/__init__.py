"""Pluggable rewards: the protocol, combinators and built-ins.

* :mod:`~textgym.rewards.base` — :class:`Reward`, :class:`RewardContext`, validation;
* :mod:`~textgym.rewards.combinators` — ``a + b``, ``w * a``, :class:`Weighted`, clipping,
  normalisation, per-token shaping;
* :mod:`~textgym.rewards.verifiable` — checks against the gold answer;
* :mod:`~textgym.rewards.text` — heuristic text rewards.
"""

from textgym.rewards.base import (
    FunctionReward,
    Reward,
    RewardContext,
    RewardError,
    as_reward,
    check_value,
    evaluate,
)
from textgym.rewards.combinators import (
    Clip,
    Constant,
    LengthCost,
    Normalize,
    TokenTable,
    Weighted,
)
from textgym.rewards.registry import (
    REWARDS,
    RewardSpecError,
    make_reward,
    parse_reward,
    register_reward,
    reward_names,
)
from textgym.rewards.text import (
    BannedWords,
    Concision,
    Politeness,
    Relevance,
    Repetition,
)
from textgym.rewards.verifiable import (
    Abstention,
    AnswerFormat,
    Correctness,
    ExactMatch,
    NumericMatch,
    is_abstention,
    parse_answer,
)

__all__ = [
    "REWARDS",
    "Abstention",
    "RewardSpecError",
    "make_reward",
    "parse_reward",
    "register_reward",
    "reward_names",
    "AnswerFormat",
    "BannedWords",
    "Clip",
    "Concision",
    "Constant",
    "Correctness",
    "ExactMatch",
    "FunctionReward",
    "LengthCost",
    "Normalize",
    "NumericMatch",
    "Politeness",
    "Relevance",
    "Repetition",
    "Reward",
    "RewardContext",
    "RewardError",
    "TokenTable",
    "Weighted",
    "as_reward",
    "check_value",
    "evaluate",
    "is_abstention",
    "parse_answer",
]
