"""The Task interface: what an episode is about.

A task generates problems from a seeded RNG, knows the gold answer, says what success means,
and ships an oracle that proves the maximum is reachable. It knows nothing about tokens:
the env turns its text into ids.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from textgym.rewards.base import Reward
from textgym.rewards.spec import parse_reward
from textgym.types import Problem, RewardContext, Role, Turn
from textgym.users.base import Responder


class Task(abc.ABC):
    """A family of problems.

    Subclasses set the class attributes (:attr:`reward_spec` among them) and implement
    :meth:`sample`, :meth:`success` and :meth:`oracle`; multi-turn tasks also return a
    fresh responder from :meth:`responder` (a task is multi-turn exactly when it has one).
    """

    #: Short registry name, used by ``TextEnv(task="copy")``.
    name: ClassVar[str]
    #: The default reward as a spec (:func:`~textgym.rewards.spec.parse_reward`), e.g.
    #: ``"correctness + 0.1*format"``: the one definition the env builds and the docs print,
    #: and what ``gym.make(id, reward=...)`` takes to rebuild it.
    reward_spec: str = ""
    #: Defaults the env uses unless the caller overrides them.
    max_length: int = 64
    max_new_tokens: int = 16
    #: Most agent turns in an episode (1 for single-turn tasks; multi-turn tasks set it).
    max_turns: int = 1
    #: The task's text is open (any characters, e.g. external data), beyond the closed
    #: vocabulary of the default tokenizer: without ``tokenizer=``, its envs use textgym's
    #: open byte-level BPE (``textgym/data/open_tokenizer``) instead.
    open_text: ClassVar[bool] = False

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem; all randomness must come from ``rng``."""

    def default_reward(self) -> Reward:
        """The reward the env uses when the caller passes none: :attr:`reward_spec`, parsed.

        Override it only for a reward no spec can say (e.g. a plain function in a test).
        """
        if not self.reward_spec:
            raise NotImplementedError(
                f"{type(self).__name__} has no default reward: set its reward_spec (e.g. "
                'reward_spec = "exact_match") or override default_reward().'
            )
        return parse_reward(self.reward_spec)

    @abc.abstractmethod
    def success(self, ctx: RewardContext) -> bool:
        """Whether the episode that ends with ``ctx`` solved the problem."""

    @abc.abstractmethod
    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        """The text of the best next agent turn, given the conversation so far."""

    def responder(self) -> Responder | None:
        """A fresh responder for one env (multi-turn tasks); ``None`` for single-turn tasks."""
        return None

    def system_prompt(self, problem: Problem) -> str | None:
        """The system message of an episode on ``problem`` (``None``: none). The env's
        ``system_prompt=`` argument overrides it."""
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


__all__ = ["Problem", "Role", "Task", "Turn"]
