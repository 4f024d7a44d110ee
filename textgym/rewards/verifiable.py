"""Verifiable rewards: checks against the task's gold answer.

The answer convention of the suite: a turn ends with ``answer: <value>`` (the last such
match counts), and a turn that says ``I don't know`` without an answer abstains. With
``bare=True`` a turn that is only a number is that answer too (the tiny variants' format).

A turn cut off by a length limit (``ctx.truncated``) never reached its end, so it has no
answer: the answer-reading rewards score it as missing (not right, not well formatted, not
an abstention), as the tasks' success checks do. Otherwise ``answer: 1`` cut off from
``answer: 12`` would be paid as an answer the agent never finished.
"""

from __future__ import annotations

import re

from textgym.errors import ConfigError
from textgym.rewards.base import Reward, RewardContext, number_arg
from textgym.rewards.checks import bool_arg

_ANSWER = re.compile(r"answer\s*:\s*(-?\d+(?:\.\d+)?|[^\s.,;!?]+)", re.IGNORECASE)
_ABSTAIN = re.compile(r"\b(i\s+don't\s+know|i\s+do\s+not\s+know)\b", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
#: How the project's scripted policies abstain (lowercase: the closed vocabulary spells it).
ABSTENTION = "i don't know."


def parse_answer(text: str, bare: bool = False) -> str | None:
    """The value after the last ``answer:`` in ``text``, or ``None`` when there is none.

    Args:
        text: The agent's turn.
        bare: Also accept a turn that is only a number (``7``) as that answer.
    """
    matches = _ANSWER.findall(text)
    if matches:
        return matches[-1]
    if bare and _NUMBER.fullmatch(text.strip()):
        return text.strip()
    return None


def is_abstention(text: str) -> bool:
    """The turn says "I don't know" and gives no answer."""
    return parse_answer(text) is None and _ABSTAIN.search(text) is not None


def turn_answer(ctx: RewardContext, bare: bool = False) -> str | None:
    """The answer of the turn in ``ctx``: ``None`` for a truncated turn (it never ended)."""
    return None if ctx.truncated else parse_answer(ctx.text, bare)


def turn_abstains(ctx: RewardContext) -> bool:
    """The turn in ``ctx`` abstains; a truncated turn does not (it never ended)."""
    return not ctx.truncated and is_abstention(ctx.text)


def _normalise(s: str) -> str:
    return " ".join(s.split()).lower()


class ExactMatch(Reward):
    """1.0 when the whole turn equals the gold answer (case and spacing ignored), else 0.0."""

    name = "exact_match"

    def __call__(self, ctx: RewardContext) -> float:
        if ctx.answer is None:
            return 0.0
        return float(_normalise(ctx.text) == _normalise(ctx.answer))


class NumericMatch(Reward):
    """1.0 when the parsed ``answer:`` value equals the gold number (within ``tol``).

    Args:
        tol: Largest difference that still counts as equal.
        bare: Also accept a turn that is only a number as the answer.
    """

    name = "numeric_match"

    def __init__(self, tol: float = 1e-6, *, bare: bool = False) -> None:
        self.tol = number_arg(tol, "NumericMatch tol", minimum=0.0)
        self.bare = bool_arg(bare, "NumericMatch bare")

    def __call__(self, ctx: RewardContext) -> float:
        got = turn_answer(ctx, self.bare)
        if got is None or ctx.answer is None:
            return 0.0
        try:
            return float(abs(float(got) - float(ctx.answer)) <= self.tol)
        except ValueError:
            return float(_normalise(got) == _normalise(ctx.answer))


class AnswerFormat(Reward):
    """1.0 when the turn ends in a parseable ``answer: <value>`` or abstains, else 0.0.

    Args:
        bare: Also accept a turn that is only a number as the answer.
    """

    name = "format"

    def __init__(self, *, bare: bool = False) -> None:
        self.bare = bool_arg(bare, "AnswerFormat bare")

    def __call__(self, ctx: RewardContext) -> float:
        return float(turn_answer(ctx, self.bare) is not None or turn_abstains(ctx))


class Abstention(Reward):
    """1.0 when the turn abstains ("I don't know" and no answer), else 0.0.

    On its own it rewards never answering; use it as a component (to watch how often a
    learner abstains) or inside :class:`Correctness`, which prices abstaining between a right
    and a wrong answer.
    """

    name = "abstention"

    def __call__(self, ctx: RewardContext) -> float:
        return float(turn_abstains(ctx))


class Correctness(Reward):
    """Right, abstained or wrong, for calibrated answering.

    Abstaining must score between a wrong and a right answer, so that a learner that is
    unsure gains by saying so instead of guessing. A bonus added for the format (as in the
    Reasoning family's ``correctness + 0.1*format``) keeps that order only while its weight
    stays below ``abstain - wrong``.

    Args:
        correct: Reward for a right answer.
        abstain: Reward for "I don't know".
        wrong: Reward for a wrong, missing or truncated answer.
        bare: Also accept a turn that is only a number as the answer.
    """

    name = "correctness"

    def __init__(
        self, correct: float = 1.0, abstain: float = 0.0, wrong: float = -0.5, *, bare: bool = False
    ) -> None:
        correct = number_arg(correct, "Correctness correct")
        abstain = number_arg(abstain, "Correctness abstain")
        wrong = number_arg(wrong, "Correctness wrong")
        if not wrong < abstain < correct:
            raise ConfigError(
                f"Correctness needs wrong < abstain < correct, got wrong={wrong}, "
                f"abstain={abstain}, correct={correct}."
            )
        self.correct, self.abstain, self.wrong = correct, abstain, wrong
        self.bare = bool_arg(bare, "Correctness bare")
        self._match = NumericMatch(bare=self.bare)

    def __call__(self, ctx: RewardContext) -> float:
        if self._match(ctx) == 1.0:
            return self.correct
        if turn_abstains(ctx):
            return self.abstain
        return self.wrong
