"""Text as lower-case words: how the rewards, the tasks and the scripted users read a turn.

Special tokens such as ``<unk>`` are dropped and punctuation separates words, so
``"Thanks!"`` is the word ``thanks``. One reading for every reader, so that a reward and the
user it stands in for never disagree about what a turn said.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

#: A special token in decoded text (``<unk>``, ``<pad>``, ``<|eot|>``, ``<reserved_7>``...).
SPECIAL_TOKEN = re.compile(r"<[a-z_|][a-z0-9_|]*>", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@functools.lru_cache(maxsize=4096)
def text_words(text: str) -> tuple[str, ...]:
    """``text`` as lower-case words, without special tokens or punctuation."""
    # Cached because a multi-objective reward asks for the words of the same turn once per
    # component (and the user simulator once more), and phrase lists are split on every
    # call; a tuple so the cached value is safe to share.
    return tuple(_WORD.findall(SPECIAL_TOKEN.sub(" ", text).lower()))


def count_phrase(haystack: Sequence[str], phrase: str) -> int:
    """How many times the words of ``phrase`` occur contiguously in ``haystack``."""
    needle = text_words(phrase)
    n = len(needle)
    if n == 0:
        return 0
    if not isinstance(haystack, (tuple, list)):
        haystack = tuple(haystack)
    first = needle[0]
    if n == 1:
        return haystack.count(first)
    if first not in haystack:  # the common case, at C speed
        return 0
    return sum(
        1
        for i in range(len(haystack) - n + 1)
        if haystack[i] == first and tuple(haystack[i : i + n]) == needle
    )


def coverage(text: str, keywords: Sequence[str]) -> float:
    """The share of ``keywords`` that ``text`` mentions (a multi-word keyword counts when its
    words appear together); 1.0 when there are no keywords."""
    if not keywords:
        return 1.0
    words = text_words(text)
    return sum(count_phrase(words, k) > 0 for k in keywords) / len(keywords)


__all__ = ["SPECIAL_TOKEN", "count_phrase", "coverage", "text_words"]
