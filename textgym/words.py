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
    # Every special token starts with "<": most turns skip that regex (anything but a str
    # still goes through it, and fails there as it always did).
    if type(text) is not str or "<" in text:
        text = SPECIAL_TOKEN.sub(" ", text)
    return tuple(_WORD.findall(text.lower()))


@functools.lru_cache(maxsize=1024)
def phrase_words(phrases: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The words of each of ``phrases`` (:func:`text_words`), split once and cached.

    Args:
        phrases: Keywords or phrases, e.g. a question's keywords.

    Returns:
        One tuple of words per phrase (empty for a phrase without words).
    """
    # A task's keyword tuples are constants scored at every turn end: one cache lookup for
    # the whole tuple instead of one per keyword.
    return tuple(text_words(p) for p in phrases)


def count_words(haystack: Sequence[str], needle: tuple[str, ...]) -> int:
    """How many times the words ``needle`` occur contiguously in ``haystack``.

    :func:`count_phrase` for a phrase already split into words (0 for no words).

    Args:
        haystack: The words searched.
        needle: The phrase's words, e.g. from :func:`phrase_words`.
    """
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


def count_phrase(haystack: Sequence[str], phrase: str) -> int:
    """How many times the words of ``phrase`` occur contiguously in ``haystack``."""
    return count_words(haystack, text_words(phrase))


def has_words(haystack: Sequence[str], needle: tuple[str, ...]) -> bool:
    """Whether the words ``needle`` occur contiguously in ``haystack`` (never for no words).

    Args:
        haystack: The words searched (a tuple or list).
        needle: The phrase's words.
    """
    if len(needle) == 1:  # a one-word keyword, the usual one: a C-speed membership test
        return needle[0] in haystack
    return count_words(haystack, needle) > 0


def word_coverage(words: Sequence[str], keywords: Sequence[str]) -> float:
    """:func:`coverage` of a text already split into ``words`` (a tuple or list).

    Args:
        words: The text's words (:func:`text_words`).
        keywords: The keywords (a multi-word keyword counts when its words appear together).

    Returns:
        The share of ``keywords`` mentioned; 1.0 when there are no keywords.
    """
    if not keywords:
        return 1.0
    # Tuples (the usual keywords) are split once; other sequences on every call.
    needles = (
        phrase_words(keywords)
        if type(keywords) is tuple
        else tuple(text_words(k) for k in keywords)
    )
    found = 0
    for needle in needles:
        if len(needle) == 1:  # has_words(), inline for the usual one-word keyword
            found += needle[0] in words
        elif needle and count_words(words, needle):
            found += 1
    return found / len(keywords)


def coverage(text: str, keywords: Sequence[str]) -> float:
    """The share of ``keywords`` that ``text`` mentions (a multi-word keyword counts when its
    words appear together); 1.0 when there are no keywords."""
    if not keywords:
        return 1.0
    return word_coverage(text_words(text), keywords)


__all__ = [
    "SPECIAL_TOKEN",
    "count_phrase",
    "count_words",
    "coverage",
    "has_words",
    "phrase_words",
    "text_words",
    "word_coverage",
]
