"""Copy: repeat the prompt's words. The smallest task that exercises the whole core."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from textgym.tasks.base import Task
from textgym.tasks.checks import check_int
from textgym.types import Problem, RewardContext, Turn

#: Most words per problem.
MAX_LENGTH = 1000
WORDS = ("red", "blue", "green", "yellow", "black", "white", "pink", "brown", "gray", "orange")


class CopyTask(Task):
    """The prompt is ``copy: w1 w2 ... wk``; the agent must answer ``w1 w2 ... wk``.

    Args:
        length: Words per problem (1 to 1000).
        n_words: Size of the word pool (at most 10), which sets the number of problems
            (``n_words ** length``).
    """

    name = "copy"
    reward_spec = "exact_match"

    def __init__(self, length: int = 3, n_words: int = 10) -> None:
        n_words = check_int(n_words, "n_words", 1, len(WORDS))
        # Beyond this a prompt no longer fits any sensible context (max_length grows as
        # 2 * length), and a huge value would allocate the buffers before failing.
        length = check_int(length, "length", 1, MAX_LENGTH)
        self.length = length
        self.words = WORDS[:n_words]
        self.max_new_tokens = length + 2
        self.max_length = 2 * length + 12

    def sample(self, rng: np.random.Generator) -> Problem:
        picks = [self.words[i] for i in rng.integers(0, len(self.words), self.length)]
        answer = " ".join(picks)
        return Problem(prompt=f"copy: {answer}", answer=answer, id=answer)

    def success(self, ctx: RewardContext) -> bool:
        # The default reward's rule (ExactMatch: case and spacing ignored), so a turn that
        # earns the full reward always counts as a success, whatever the tokenizer.
        return ctx.answer is not None and ctx.text.lower().split() == ctx.answer.lower().split()

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        return problem.answer or ""

    def allowed_words(self) -> Sequence[str]:
        return ["\u2581" + w for w in self.words]
