"""The Responder interface: who answers the agent in a multi-turn task."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from textgym.types import Problem, Reply, Turn


class Responder(abc.ABC):
    """A simulated user. Must be deterministic given the RNG passed to :meth:`reset`, and
    robust to anything an agent says (empty, garbage, very long or repeated turns)."""

    @abc.abstractmethod
    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        """Start a conversation about ``problem``; keep ``rng`` for any later randomness."""

    @abc.abstractmethod
    def respond(self, turns: Sequence[Turn]) -> Reply:
        """Answer the last agent turn in ``turns`` (the whole conversation so far)."""


__all__ = ["Reply", "Responder"]
