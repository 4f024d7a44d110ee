"""Token budgets of tasks whose text is not the suite's: measured on a sample of problems.

A task states ``max_length`` and ``max_new_tokens`` in textgym's default-tokenizer tokens,
and the env fits them to the tokenizer in use (:mod:`textgym.fitting`). The default
tokenizer cannot spell open text, but it still splits it the same way (every word, digit and
punctuation mark one token, unknown words as ``<unk>``), so its token counts measure open
text too. The suite's own tasks derive their budgets from their generators' settings; data
and external generators have no such formula, so the budgets come from the longest prompt
and gold turn in a sample, with headroom for problems outside it.

The count follows the default tokenizer's splitting rules (:func:`textgym.tokenizer.
build_tokenizer`) without loading it: the families stay below the tokenizer module, which
gathers their text to build its vocabulary.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable

#: Headroom over the longest prompt and turn seen.
MARGIN = 1.25
#: Tokens an agent turn may spend beyond the longest gold turn (a few words of its own).
TURN_SLACK = 8
#: The default layout's turn markers around a prompt: ``<user>`` ... ``<eot> <agent>``.
MARKERS = 4


SPACE = "\u2581"  # the default tokenizer's metaspace marker


def _isolated(char: str) -> bool:
    """A character the default tokenizer splits off on its own: a digit or punctuation
    (ASCII punctuation and symbols, and Unicode's P* categories)."""
    return (
        char.isnumeric()
        or (char.isascii() and char.isprintable() and not char.isalnum() and char != " ")
        or unicodedata.category(char).startswith("P")
    )


def default_tokens(text: str) -> int:
    """How many tokens the default tokenizer writes for ``text`` (an unknown word is one).

    Its rules: every space becomes ``▁`` and starts a new piece (a ``▁`` is prepended),
    every digit and punctuation mark is a piece of its own, and each run of other
    characters is one piece.
    """
    if not text:
        return 0
    marked = text.replace(" ", SPACE)
    if not marked.startswith(SPACE):
        marked = SPACE + marked
    count, in_run = 0, False
    for char in marked:
        if char == SPACE:
            count, in_run = count + 1, True
        elif _isolated(char):
            count, in_run = count + 1, False
        elif not in_run:
            count, in_run = count + 1, True
    return count


def sampled_budgets(prompts: Iterable[str], turns: Iterable[str]) -> tuple[int, int]:
    """``(max_length, max_new_tokens)`` fitting ``prompts`` and oracle ``turns``, with
    headroom: the turn budget is the longest turn plus :data:`MARGIN` and
    :data:`TURN_SLACK`, and the context holds the longest prompt, its markers and a turn."""
    prompt = max((default_tokens(p) for p in prompts), default=1)
    turn = max((default_tokens(t) for t in turns), default=1) + 1  # and the end of turn
    max_new_tokens = math.ceil(turn * MARGIN) + TURN_SLACK
    return math.ceil(prompt * MARGIN) + MARKERS + max_new_tokens, max_new_tokens


__all__ = ["MARGIN", "MARKERS", "TURN_SLACK", "default_tokens", "sampled_budgets"]
