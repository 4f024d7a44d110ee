"""The Task interface: what an episode is about.

A task generates problems from a seeded RNG, knows the gold answer, says what success means,
and ships an oracle that proves the maximum is reachable. It knows nothing about tokens:
the env turns its text into ids.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from textgym.rewards.base import Reward, RewardContext
    from textgym.users.base import Responder

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


class Task(abc.ABC):
    """A family of problems.

    Subclasses set the class attributes and implement :meth:`sample`, :meth:`default_reward`,
    :meth:`success` and :meth:`oracle`; multi-turn tasks also return a fresh responder from
    :meth:`responder`.
    """

    #: Short registry name, used by ``TextEnv(task="copy")``.
    name: ClassVar[str]
    #: One line for ``textgym list``.
    description: ClassVar[str] = ""
    #: Whether a responder replies to the agent's turns.
    multi_turn: ClassVar[bool] = False
    #: Defaults the env uses unless the caller overrides them.
    max_length: int = 64
    max_new_tokens: int = 16
    #: Most agent turns in an episode (1 for single-turn tasks; multi-turn tasks set it).
    max_turns: int = 1

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem; all randomness must come from ``rng``."""

    @abc.abstractmethod
    def default_reward(self) -> Reward:
        """The reward the env uses when the caller passes none."""

    @abc.abstractmethod
    def success(self, ctx: RewardContext) -> bool:
        """Whether the episode that ends with ``ctx`` solved the problem."""

    @abc.abstractmethod
    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        """The text of the best next agent turn, given the conversation so far."""

    def responder(self) -> Responder | None:
        """A fresh responder for one env (multi-turn tasks); ``None`` for single-turn tasks."""
        return None

    def allowed_words(self) -> Sequence[str] | None:
        """Token strings the agent needs, to restrict ``action_masks()``; ``None`` for all.

        Strings are tokenizer pieces (e.g. ``"▁red"``, ``"3"``); the end-of-turn token is
        always allowed.
        """
        return None

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """A plausible annotation error in the oracle turn ``text`` (a wrong number, slot or
        action), for demonstrations with label noise. The default returns ``text``."""
        return text

    def corpus(self, rng: np.random.Generator, n: int = 200) -> list[str]:
        """Text the default tokenizer must cover: prompts, gold answers, oracle turns."""
        texts: list[str] = []
        for _ in range(n):
            problem = self.sample(rng)
            texts.append(problem.prompt)
            if problem.answer is not None:
                texts.append(problem.answer)
            texts.append(self.oracle(problem, [Turn("user", problem.prompt)]))
        return texts
