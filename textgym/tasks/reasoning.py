"""Reasoning, re-exported from its family module :mod:`textgym.envs.reasoning` (an older
public path)."""

from __future__ import annotations

from textgym.envs.names import FEMALE_NAMES, MALE_NAMES
from textgym.envs.reasoning import (
    ITEMS,
    OPERATIONS,
    ReasoningReward,
    ReasoningTask,
    Step,
    apply,
    extract_answer,
    solve,
)

__all__ = [
    "FEMALE_NAMES",
    "ITEMS",
    "MALE_NAMES",
    "OPERATIONS",
    "ReasoningReward",
    "ReasoningTask",
    "Step",
    "apply",
    "extract_answer",
    "solve",
]
