"""Dialogue, re-exported from its family folder :mod:`textgym.envs.dialogue` (an older
public path)."""

from __future__ import annotations

from textgym.envs.dialogue.task import (
    AskedRelevance,
    DialogueTask,
    Satisfaction,
    dialogue_reward,
)
from textgym.envs.dialogue.topics import (
    REGULAR_TOPICS,
    TOPICS,
    Question,
    current_question,
    question,
)
from textgym.words import coverage

__all__ = [
    "REGULAR_TOPICS",
    "TOPICS",
    "AskedRelevance",
    "DialogueTask",
    "Question",
    "Satisfaction",
    "coverage",
    "current_question",
    "dialogue_reward",
    "question",
]
