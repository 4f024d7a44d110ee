"""Verifiable rewards: checks against the task's gold answer.

The answer convention of the suite: a turn ends with ``answer: <value>`` (the last such
match counts), and a turn that says ``I don't know`` without an answer abstains.
"""

from __future__ import annotations

import re

from textgym.errors import ConfigError
from textgym.rewards.base import Reward, RewardContext, number_arg

_ANSWER = re.compile(r"answer\s*:\s*(-?\d+(?:\.\d+)?|[^\s.,;!?]+)", re.IGNORECASE)
_ABSTAIN = re.compile(r"\b(i\s+don't\s+know|i\s+do\s+not\s+know)\b", re.IGNORECASE)


def parse_answer(text: str) -> str | None:
    """The value after the last ``answer:`` in ``text``, or ``None`` when there is none."""
    matches = _ANSWER.findall(text)
    return matches[-1] if matches else None


def is_abstention(text: str) -> bool:
    """The turn says "I don't know" and gives no answer."""
    return parse_answer(text) is None and _ABSTAIN.search(text) is not None


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
    """1.0 when the parsed ``answer:`` value equals the gold number (within ``tol``)."""

    name = "numeric_match"

    def __init__(self, tol: float = 1e-6) -> None:
        self.tol = number_arg(tol, "NumericMatch tol", minimum=0.0)

    def __call__(self, ctx: RewardContext) -> float:
        got = parse_answer(ctx.text)
        if got is None or ctx.answer is None:
            return 0.0
        try:
            return float(abs(float(got) - float(ctx.answer)) <= self.tol)
        except ValueError:
            return float(_normalise(got) == _normalise(ctx.answer))


class AnswerFormat(Reward):
    """1.0 when the turn ends in a parseable ``answer: <value>`` or abstains, else 0.0."""

    name = "format"

    def __call__(self, ctx: RewardContext) -> float:
        return float(parse_answer(ctx.text) is not None or is_abstention(ctx.text))


class Abstention(Reward):
    """1.0 when the turn abstains ("I don't know" and no answer), else 0.0.

    On its own it rewards never answering; use it as a component (to watch how often a
    learner abstains) or inside :class:`Correctness`, which prices abstaining between a right
    and a wrong answer.
    """

    name = "abstention"

    def __call__(self, ctx: RewardContext) -> float:
        return float(is_abstention(ctx.text))


class Correctness(Reward):
    """Right, abstained or wrong, for calibrated answering.

    Abstaining must score between a wrong and a right answer, so that a learner that is
    unsure gains by saying so instead of guessing.

    Args:
        correct: Reward for a right answer.
        abstain: Reward for "I don't know".
        wrong: Reward for a wrong or missing answer.
    """

    name = "correctness"

    def __init__(self, correct: float = 1.0, abstain: float = 0.0, wrong: float = -0.5) -> None:
        correct = number_arg(correct, "Correctness correct")
        abstain = number_arg(abstain, "Correctness abstain")
        wrong = number_arg(wrong, "Correctness wrong")
        if not wrong < abstain < correct:
            raise ConfigError(
                f"Correctness needs wrong < abstain < correct, got wrong={wrong}, "
                f"abstain={abstain}, correct={correct}."
            )
        self.correct, self.abstain, self.wrong = correct, abstain, wrong
        self._match = NumericMatch()

    def __call__(self, ctx: RewardContext) -> float:
        if self._match(ctx) == 1.0:
            return self.correct
        if is_abstention(ctx.text):
            return self.abstain
        return self.wrong
