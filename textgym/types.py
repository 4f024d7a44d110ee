"""The values every part of textgym passes around: a problem, a turn, a reply, a reward's context.

A leaf: it imports nothing of textgym, so the task, responder and reward interfaces (and the
env) can all build on it without importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Role = Literal["user", "agent"]


@dataclass(frozen=True)
class Turn:
    """One turn of the conversation: who spoke and what they said."""

    role: Role
    text: str


@dataclass(frozen=True)
class Problem:
    """One task instance.

    Attributes:
        prompt: The opening user message the agent answers.
        answer: The gold answer, when the task has one (``None`` for open dialogue).
        metadata: Anything a reward, responder or oracle needs (slots, intent, topic, ...).
            It is shown in ``info["metadata"]`` at turn ends.
        id: A stable identifier, used to check that train and test splits are disjoint.
    """

    prompt: str
    answer: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class Reply:
    """A responder's answer to one agent turn.

    Attributes:
        text: What the user says next (appended to the context unless ``done``).
        done: The user ends the conversation (satisfied, resolved, or gave up).
        outcome: Facts for rewards and success checks, e.g. ``{"satisfied": True}``.
    """

    text: str
    done: bool = False
    outcome: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardContext:
    """Everything a reward may look at when an agent turn ends.

    Attributes:
        problem: The task instance (prompt, gold answer, metadata).
        turns: The conversation so far, ending with this agent turn (the user's reply to it,
            if any, is in ``reply``).
        text: This agent turn, decoded (without the end-of-turn token).
        token_ids: This agent turn's token ids (without the end-of-turn token).
        turn_index: 0 for the agent's first turn, 1 for its second, ...
        episode_end: The episode ends with this turn (terminated or truncated).
        truncated: The turn or the context hit a length limit before it ended normally.
        reply: The responder's reply to this turn (multi-turn tasks), else ``None``.
    """

    problem: Problem
    turns: tuple[Turn, ...]
    text: str
    token_ids: np.ndarray
    turn_index: int = 0
    episode_end: bool = True
    truncated: bool = False
    reply: Reply | None = None

    @property
    def prompt(self) -> str:
        """The problem's opening message."""
        return self.problem.prompt

    @property
    def answer(self) -> str | None:
        """The gold answer, if the task has one."""
        return self.problem.answer

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Task metadata (slots, intent, topic, gold answer, ...)."""
        return self.problem.metadata

    @property
    def outcome(self) -> Mapping[str, Any]:
        """The responder's verdict on this turn (empty for single-turn tasks)."""
        return getattr(self.reply, "outcome", None) or {}


__all__ = ["Problem", "Reply", "RewardContext", "Role", "Turn"]
