"""Heuristic text rewards: politeness, relevance, repetition, concision, banned words.

Each scores one agent turn in ``[0, 1]``, higher is better. They are cheap word-level
heuristics, meant as components of a weighted reward (and as examples of how easily a single
heuristic is gamed: combine them, and watch the components).

Text is compared as lower-case words (:func:`textgym.words.text_words`): special tokens such
as ``<unk>`` are dropped and punctuation separates words, so ``"Thanks!"`` is the word
``thanks``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from textgym.errors import ConfigError
from textgym.rewards.base import Reward, RewardContext, RewardTypeError, int_arg, number_arg
from textgym.words import SPECIAL_TOKEN, count_phrase, count_words, coverage, has_words, text_words

_SHOUT = re.compile(r"\b[A-Z]{3,}\b")

#: Function words left out when relevance falls back to the prompt's content words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "so",
        "because",
        "not",
        "no",
        "yes",
        "ok",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "to",
        "about",
        "as",
        "into",
        "over",
        "under",
        "up",
        "down",
        "out",
        "off",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "must",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "his",
        "its",
        "our",
        "their",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "each",
        "every",
        "some",
        "there",
        "here",
    ]
)

#: Polite markers (each distinct one counts once, so repeating "please" gains nothing).
POLITE_WORDS = frozenset(
    [
        "please",
        "thank",
        "thanks",
        "sorry",
        "welcome",
        "glad",
        "appreciate",
        "appreciated",
        "kindly",
        "pleasure",
        "apologize",
        "apologise",
        "apologies",
        "grateful",
    ]
)
POLITE_PHRASES = ("could you", "would you", "happy to help", "excuse me", "no problem")
#: Rude markers (each occurrence counts).
RUDE_WORDS = frozenset(
    [
        "stupid",
        "idiot",
        "idiots",
        "dumb",
        "moron",
        "shut",
        "whatever",
        "useless",
        "pathetic",
        "nonsense",
        "ridiculous",
        "hate",
        "ugh",
        "loser",
    ]
)

#: The default list for :class:`BannedWords`: profanity and insults, as whole words.
DEFAULT_BANNED_WORDS = (
    "fuck", "fucking", "fucked", "fucker", "shit", "shitty", "bullshit", "bitch", "bastard",
    "asshole", "ass", "damn", "dammit", "crap", "dick", "piss", "pissed", "cunt", "slut",
    "whore", "idiot", "moron", "stupid", "retard", "retarded", "dumbass", "jerk", "loser",
    "shut up", "kill yourself",
)  # fmt: skip


# A polite phrase can only occur in a turn that has its first word.
_POLITE_PHRASE_STARTS = frozenset(text_words(p)[0] for p in POLITE_PHRASES)
# The phrases split once. Each has several words, so none is also a POLITE_WORDS entry and
# the distinct markers are the distinct words plus the phrases found.
_POLITE_PHRASE_WORDS = tuple(text_words(p) for p in POLITE_PHRASES)
# A turn with none of these words has no polite or rude marker (most turns): one set test.
_MARKERS = POLITE_WORDS | _POLITE_PHRASE_STARTS | RUDE_WORDS


class Politeness(Reward):
    """Polite markers raise the score, rude ones and shouting lower it; neutral text is 0.5.

    ``score = clip(0.5 + bonus * distinct_polite - penalty * (rude + shouting), 0, 1)``,
    where ``distinct_polite`` counts distinct markers (``please``, ``thanks``, ``could
    you``, ...), ``rude`` counts insults, and ``shouting`` counts all-caps words of three or
    more letters and runs of ``!!``.

    Args:
        bonus: Gain per distinct polite marker.
        penalty: Loss per rude marker or shouted word.
    """

    name = "politeness"

    def __init__(self, bonus: float = 0.25, penalty: float = 0.5) -> None:
        # Negative values would invert the scale (polite text scoring lower than rude).
        self.bonus = number_arg(bonus, "Politeness bonus", minimum=0.0)
        self.penalty = number_arg(penalty, "Politeness penalty", minimum=0.0)

    def __call__(self, ctx: RewardContext) -> float:
        text = ctx.text
        w = text_words(text)
        polite = rude = 0
        if not _MARKERS.isdisjoint(w):
            polite = len(POLITE_WORDS.intersection(w))
            if not _POLITE_PHRASE_STARTS.isdisjoint(w):
                polite += sum(has_words(w, p) for p in _POLITE_PHRASE_WORDS)
            rude = sum(map(RUDE_WORDS.__contains__, w))
        shouting = text.count("!!")
        # All lower case (the usual turn) or empty cannot shout: skip the regexes.
        if text and not text.islower():
            shouting += len(_SHOUT.findall(SPECIAL_TOKEN.sub(" ", text)))
        score = 0.5 + self.bonus * polite - self.penalty * (rude + shouting)
        # min(1.0, max(0.0, score)) without the two calls (NaN too gives 0.0): this runs at
        # every turn end.
        return (score if score < 1.0 else 1.0) if score > 0.0 else 0.0


def _keywords(value: Any) -> list[str]:
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
    elif isinstance(value, Iterable):
        parts = [str(v) for v in value]
    else:
        parts = [str(value)]
    return [p.strip() for p in parts if text_words(p)]


class Relevance(Reward):
    """Keyword coverage: the fraction of the keywords the turn mentions.

    Keywords come from ``ctx.outcome[key]`` (the responder's verdict on this turn, in
    multi-turn tasks) or else ``ctx.metadata[key]``. They are a list of strings (or one comma- or space-separated string); a multi-word
    keyword counts when its words appear together. No keywords at all scores 1.0.

    Args:
        key: The metadata entry holding the keywords.
        fallback: When neither has ``key``: ``"prompt"`` uses the prompt's content
            words (without :data:`STOPWORDS`), ``"error"`` raises ``KeyError``.
    """

    name = "relevance"

    def __init__(self, key: str = "keywords", fallback: str = "prompt") -> None:
        if not isinstance(key, str) or not key:
            raise RewardTypeError(
                f"Relevance key must be a non-empty string (a metadata entry), got {key!r}."
            )
        if fallback not in ("prompt", "error"):
            raise ConfigError(f"Relevance fallback must be 'prompt' or 'error', got {fallback!r}.")
        self.key, self.fallback = key, fallback

    def keywords(self, ctx: RewardContext) -> list[str]:
        """The keywords this turn is scored against."""
        # The responder's per-turn verdict is more specific than the problem's metadata
        # (e.g. the keywords of the question this turn answers in a dialogue).
        if self.key in ctx.outcome:
            return _keywords(ctx.outcome[self.key])
        if self.key in ctx.metadata:
            return _keywords(ctx.metadata[self.key])
        if self.fallback == "error":
            raise KeyError(
                f"Relevance needs ctx.metadata[{self.key!r}], but the task's metadata has only "
                f"{sorted(ctx.metadata)}. Use Relevance(key=...) with one of those, or "
                "fallback='prompt' to use the prompt's content words."
            )
        return sorted({w for w in text_words(ctx.prompt) if w not in STOPWORDS})

    def __call__(self, ctx: RewardContext) -> float:
        return coverage(ctx.text, self.keywords(ctx))


def _ngrams(w: Sequence[str], n: int) -> list[tuple[str, ...]]:
    n = min(n, len(w))
    if n == 2:  # the default: the same tuples as w[i : i + 2], without a slice each
        return list(zip(w, w[1:], strict=False))
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)] if n else []


@functools.lru_cache(maxsize=4096)
def _seen_ngrams(text: str, n: int) -> frozenset[tuple[str, ...]]:
    # A turn's n-grams, once: its own turn end needs their number, every later turn end of
    # the episode asks again.
    return frozenset(_ngrams(text_words(text), n))


@functools.lru_cache(maxsize=4096)
def _bigrams(text: str) -> frozenset[tuple[str, ...]]:
    # _seen_ngrams(text, 2), the default, keyed by the text alone (no key tuple to build),
    # with _ngrams inline (a one-word turn has one 1-gram).
    w = text_words(text)
    return frozenset(zip(w, w[1:], strict=False) if len(w) > 1 else zip(w, strict=False))


class Repetition(Reward):
    """1.0 for a turn that repeats nothing; lower as it repeats itself or earlier turns.

    ``score = distinct * (1 - overlap)``: ``distinct`` is the share of the turn's word
    n-grams that are unique within the turn, ``overlap`` the share of them already said in
    the agent's earlier turns (from ``ctx.turns``). Turns shorter than ``n`` words use
    n-grams of their own length, so a repeated one-word turn still counts.

    Args:
        n: n-gram size (2 lets "the" recur while catching repeated phrases).
    """

    name = "repetition"

    def __init__(self, n: int = 2) -> None:
        self.n = int_arg(n, "Repetition n", minimum=1)

    def __call__(self, ctx: RewardContext) -> float:
        text = ctx.text
        w = text_words(text)
        n = self.n
        if len(w) < n:
            return self._short(ctx, w)
        m = len(w) - n + 1  # the number of n-grams
        grams_of = _bigrams if n == 2 else functools.partial(_seen_ngrams, n=n)
        distinct_grams = grams_of(text)
        distinct = len(distinct_grams) / m
        earlier = list(ctx.turns)
        # ctx.turns ends with this turn; contexts built by hand may leave it out.
        if earlier and earlier[-1].role == "agent" and earlier[-1].text == text:
            del earlier[-1]
        seen = []
        for t in earlier:
            if t.role == "agent":
                seen.append(grams_of(t.text))
        if not seen:
            return distinct  # nothing said before: distinct * (1 - 0)
        # The n-grams never said before, in one set operation over every earlier turn.
        fresh = distinct_grams.difference(*seen)
        if len(distinct_grams) == m:  # no n-gram twice: count the distinct ones
            said = m - len(fresh)
        else:
            said = m - sum(map(fresh.__contains__, _ngrams(w, n)))
        return distinct * (1.0 - said / m)

    def _short(self, ctx: RewardContext, w: tuple[str, ...]) -> float:
        # A turn shorter than n words: its n-grams are of its own length, and so are the
        # earlier turns' it is compared with (as well as their n-grams).
        grams = _ngrams(w, self.n)
        if not grams:
            return 1.0
        distinct = len(set(grams)) / len(grams)
        earlier = list(ctx.turns)
        if earlier and earlier[-1].role == "agent" and earlier[-1].text == ctx.text:
            del earlier[-1]
        seen: set[tuple[str, ...]] = set()
        for turn in earlier:
            if turn.role == "agent":
                seen |= _seen_ngrams(turn.text, self.n) | _seen_ngrams(turn.text, len(w))
        overlap = sum(g in seen for g in grams) / len(grams)
        return distinct * (1.0 - overlap)


class Concision(Reward):
    """1.0 up to ``target`` words, then ``target / length``; shorter than ``min_words``
    scores ``length / min_words`` (so an empty turn is not "perfectly concise").

    Args:
        target: Length (in ``unit``) that still scores 1.0.
        min_words: Below this length the score ramps up from 0 (0 disables the ramp).
        unit: ``"words"`` or ``"tokens"`` (``ctx.token_ids``, tokenizer-dependent).
    """

    name = "concision"

    def __init__(self, target: int = 20, min_words: int = 1, unit: str = "words") -> None:
        target = int_arg(target, "Concision target")
        min_words = int_arg(min_words, "Concision min_words")
        if target < 1 or min_words < 0 or min_words > target:
            raise ConfigError(
                f"Concision needs target >= 1 and 0 <= min_words <= target, got "
                f"target={target}, min_words={min_words}."
            )
        if unit not in ("words", "tokens"):
            raise ConfigError(f"Concision unit must be 'words' or 'tokens', got {unit!r}.")
        self.target, self.min_words, self.unit = target, min_words, unit

    def __call__(self, ctx: RewardContext) -> float:
        n = len(text_words(ctx.text)) if self.unit == "words" else len(ctx.token_ids)
        if n < self.min_words:
            return n / self.min_words
        if n <= self.target:
            return 1.0
        return self.target / n


class BannedWords(Reward):
    """1.0 for a clean turn, minus ``per_hit`` for every banned word or phrase (floor 0).

    Matching is on whole lower-case words, so ``"class"`` does not match ``"ass"``.

    Args:
        words: Words or phrases to ban; ``None`` uses :data:`DEFAULT_BANNED_WORDS`.
        per_hit: Score lost per occurrence (1.0: any occurrence scores 0).
    """

    name = "banned_words"

    def __init__(self, words: Iterable[str] | None = None, per_hit: float = 1.0) -> None:
        if isinstance(words, str):
            raise RewardTypeError(
                f"BannedWords takes a list of words, got the string {words!r}; "
                f"write BannedWords([{words!r}])."
            )
        if words is not None and not isinstance(words, Iterable):
            raise RewardTypeError(
                f"BannedWords takes a list of words, got {words!r} ({type(words).__name__})."
            )
        banned = DEFAULT_BANNED_WORDS if words is None else tuple(words)
        not_str = [b for b in banned if not isinstance(b, str)]
        if not_str:
            raise RewardTypeError(
                f"BannedWords entries must be strings, got {not_str[0]!r} "
                f"({type(not_str[0]).__name__})."
            )
        self.words = tuple(b for b in banned if text_words(b))
        # Negative would make every hit harmless (the score is capped at 1.0).
        self.per_hit = number_arg(per_hit, "BannedWords per_hit", minimum=0.0)
        # One-word entries are counted in a single pass over the turn (weighted by how often
        # the list names them); phrases are searched one by one.
        self._single_words = Counter(
            text_words(b)[0] for b in self.words if len(text_words(b)) == 1
        )
        self._phrases = tuple(b for b in self.words if len(text_words(b)) > 1)
        # Split once: hits() runs at every turn end (for the reward and the user).
        self._single_set = frozenset(self._single_words)
        self._phrase_words = tuple(text_words(b) for b in self._phrases)
        #: Every word that starts a banned entry: a turn with none of them has no hit.
        self.first_words = self._single_set | {p[0] for p in self._phrase_words}

    def hits(self, text: str) -> int:
        """How many banned words or phrases ``text`` contains."""
        w = text_words(text)
        if self.first_words.isdisjoint(w):  # most turns are clean: one set test
            return 0
        single = self._single_words
        found = 0 if self._single_set.isdisjoint(w) else sum(single.get(x, 0) for x in w)
        for needle in self._phrase_words:
            if needle[0] in w:
                found += count_words(w, needle)
        return found

    def any_hit(self, text: str) -> bool:
        """Whether ``text`` contains a banned word or phrase (``hits(text) > 0``, sooner).

        Args:
            text: The turn.
        """
        w = text_words(text)
        if not self._single_set.isdisjoint(w):
            return True
        return any(needle[0] in w and count_words(w, needle) for needle in self._phrase_words)

    def __call__(self, ctx: RewardContext) -> float:
        text = ctx.text
        # hits(), inline for the clean turn (most turns).
        hits = 0 if self.first_words.isdisjoint(text_words(text)) else self.hits(text)
        score = 1.0 - self.per_hit * hits
        # min(1.0, max(0.0, score)) without the two calls.
        return (score if score < 1.0 else 1.0) if score > 0.0 else 0.0


__all__ = [
    "DEFAULT_BANNED_WORDS",
    "BannedWords",
    "Concision",
    "Politeness",
    "Relevance",
    "Repetition",
    "count_phrase",
    "text_words",
]
