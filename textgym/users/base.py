"""The Responder interface: who answers the agent in a multi-turn task."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from textgym.tasks.base import Problem, Turn


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


class Responder(abc.ABC):
    """A simulated user. Must be deterministic given the RNG passed to :meth:`reset`, and
    robust to anything an agent says (empty, garbage, very long or repeated turns)."""

    @abc.abstractmethod
    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        """Start a conversation about ``problem``; keep ``rng`` for any later randomness."""

    @abc.abstractmethod
    def respond(self, turns: Sequence[Turn]) -> Reply:
        """Answer the last agent turn in ``turns`` (the whole conversation so far)."""
