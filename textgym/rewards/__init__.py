"""Pluggable rewards: the protocol, combinators and built-ins.

* :mod:`~textgym.rewards.base` — :class:`Reward`, :class:`RewardContext` and the algebra
  (``a + b``, ``w * a``, :class:`Weighted`);
* :mod:`~textgym.rewards.checks` — the errors and the checks every reward shares;
* :mod:`~textgym.rewards.combinators` — clipping, normalisation, per-token shaping;
* :mod:`~textgym.rewards.verifiable` — checks against the gold answer;
* :mod:`~textgym.rewards.text` — heuristic text rewards;
* :mod:`~textgym.rewards.registry` — rewards by name: :func:`register_reward`;
* :mod:`~textgym.rewards.spec` — the spec language: :func:`parse_reward`;
* :mod:`~textgym.rewards.models` — reward model, embedding similarity (lazy);
* :mod:`~textgym.rewards.judge` — an LM as judge (lazy);
* :mod:`~textgym.rewards.human` — human feedback, re-exported from :mod:`textgym.feedback`;
* :mod:`~textgym.rewards.tradeoff` — how components trade off over episodes.
"""

import importlib

from textgym.rewards.base import (
    FunctionReward,
    Reward,
    RewardContext,
    RewardError,
    RewardTypeError,
    as_reward,
    check_table,
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
    UnknownRewardError,
    make_reward,
    register_reward,
    reward_names,
)
from textgym.rewards.spec import RewardSpecError, parse_reward
from textgym.rewards.text import (
    BannedWords,
    Concision,
    Politeness,
    Relevance,
    Repetition,
)
from textgym.rewards.tradeoff import TradeOff, pareto_front, tradeoff
from textgym.rewards.verifiable import (
    Abstention,
    AnswerFormat,
    Correctness,
    ExactMatch,
    NumericMatch,
    is_abstention,
    parse_answer,
)

# Model-based and human-feedback rewards import torch and transformers; load them on use.
_LAZY = {
    "RewardModel": "textgym.rewards.models",
    "EmbeddingSimilarity": "textgym.rewards.models",
    "LMJudge": "textgym.rewards.judge",
    "ModelLoadError": "textgym.rewards.models",
    "HumanReward": "textgym.rewards.human",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'textgym.rewards' has no attribute {name!r}")


__all__ = [
    *_LAZY,
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
    "RewardTypeError",
    "TokenTable",
    "UnknownRewardError",
    "TradeOff",
    "Weighted",
    "pareto_front",
    "tradeoff",
    "as_reward",
    "check_table",
    "check_value",
    "evaluate",
    "is_abstention",
    "parse_answer",
]
