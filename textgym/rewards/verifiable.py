"""Verifiable rewards: checks against the task's gold answer."""

from __future__ import annotations

from textgym.rewards.base import Reward, RewardContext


class ExactMatch(Reward):
    """1.0 when the turn's text equals the gold answer (whitespace-normalised), else 0.0."""

    name = "exact_match"

    def __call__(self, ctx: RewardContext) -> float:
        if ctx.answer is None:
            return 0.0
        return float(" ".join(ctx.text.split()) == " ".join(ctx.answer.split()))
