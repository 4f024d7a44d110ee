"""The strict judge of the Dialogue user (``judge="strict"``, the v1 ids): is a turn an answer?

The v0 user counts any turn that mentions half of the question's keywords as an answer, so
a list of keywords, the same turn said again, or the user's own question said back all
"answer" it. The strict judge reads a turn the way a person asking would:

* **repeated** — the turn says again (nearly) what an earlier agent turn said;
* **echo** — it gives the user's own words back: nothing in it the user did not already
  say (when the reference answer has something new to say);
* **stuffed** — keywords without content: more than half of its words keywords (of any
  topic), a keyword twice, or every keyword of two questions at once;
* **answered** — every keyword of the question and at least :data:`RECALL` of the facts of
  its reference answer (its content words that are neither keywords nor words the user
  said), none of the above;
* **off_topic** — not an answer to this question, but one to another question of the topic;
* **missed** — anything else (**empty** when the turn has no words).

Word lookups only (:func:`textgym.words.text_words`), like the v0 user: any text is safe
and cheap, and every tokenizer's decoding reads the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Literal

from textgym.envs.dialogue.topics import TOPICS, Question, QuestionReading
from textgym.rewards.text import STOPWORDS
from textgym.words import has_words, text_words

Verdict = Literal["answered", "empty", "repeated", "echo", "stuffed", "off_topic", "missed"]
VERDICTS: tuple[Verdict, ...] = (
    "answered", "empty", "repeated", "echo", "stuffed", "off_topic", "missed",
)  # fmt: skip
#: Share of the reference answer's facts (content words beyond the keywords and the user's
#: own words) an answer must say.
RECALL = 0.5
#: A turn whose words are more than this share keywords is a keyword list (the reference
#: answers are at most half keywords, most a third).
STUFFED_DENSITY = 0.5
#: Every question's keywords, of every topic: a keyword list need not stay on topic.
ALL_KEYWORDS = frozenset(
    w for qs in TOPICS.values() for q in qs for k in q.keywords for w in text_words(k)
)
#: Word-set overlap with an earlier agent turn from which a turn counts as said again.
REPEAT_OVERLAP = 0.8


def content_words(words: Sequence[str]) -> list[str]:
    """``words`` without :data:`~textgym.rewards.text.STOPWORDS`."""
    return [w for w in words if w not in STOPWORDS]


def _covers(reading: QuestionReading, words: tuple[str, ...], present: AbstractSet[str]) -> bool:
    """Whether ``words`` (whose set is ``present``) mention every keyword of ``reading``'s
    question (:func:`~textgym.words.coverage` 1.0, without reading the turn again)."""
    if reading.singles is not None:
        return reading.singles <= present
    if reading.dead:
        return False
    return all(has_words(words, n) for n in reading.needles)


class _TopicIndex:
    """A topic's questions, and which of them a turn could mention every keyword of.

    Only a turn with all of a question's keyword words covers it, so the candidates are
    the questions of the turn's keyword words (each under one of its words, its anchor):
    the topic's other questions are not read at all for most turns.

    Attributes:
        questions: The topic's questions (:data:`TOPICS`' tuple, to notice a replaced one).
        readings: Their :attr:`~textgym.envs.dialogue.topics.Question.reading`.
        always: The indices of the questions without keywords (every turn covers them).
        by_anchor: For each anchor word, its questions' ``(index, singles)``.
        anchored: Every anchor is in :data:`ALL_KEYWORDS` (so a turn's keyword words find
            every candidate), as for every topic there was at import.
    """

    __slots__ = ("questions", "readings", "always", "by_anchor", "anchored")

    def __init__(self, questions: tuple[Question, ...]) -> None:
        self.questions = questions
        self.readings = tuple(q.reading for q in questions)
        self.always = tuple(i for i, r in enumerate(self.readings) if not r.needles)
        by_anchor: dict[str, list[tuple[int, frozenset[str] | None]]] = {}
        for i, r in enumerate(self.readings):
            if r.needles and not r.dead:
                by_anchor.setdefault(r.needles[0][0], []).append((i, r.singles))
        self.by_anchor = {w: tuple(entries) for w, entries in by_anchor.items()}
        self.anchored = ALL_KEYWORDS.issuperset(self.by_anchor)


_INDEXES: dict[str, _TopicIndex] = {}


def _topic_index(topic: str) -> _TopicIndex:
    questions = TOPICS[topic]  # a KeyError for an unknown topic, as ever
    index = _INDEXES.get(topic)
    if index is None or index.questions is not questions:
        index = _INDEXES[topic] = _TopicIndex(questions)
    return index


def answers(words: tuple[str, ...], q: Question, said: AbstractSet[str] = frozenset()) -> bool:
    """Every keyword of ``q`` and :data:`RECALL` of its reference answer's facts: its content
    words beyond the keywords and beyond ``said`` (the user's words, which anyone can say
    back). A reference with no such facts is answered by its keywords."""
    # The keywords are looked for in the words' own reading (as in a text), the facts in
    # the words as given.
    canonical = text_words(" ".join(words))
    reading = q.reading
    if not _covers(reading, canonical, set(canonical)):
        return False
    facts = {w for w in reading.facts if w not in said}
    return len(facts.intersection(words)) >= RECALL * len(facts)


def judge_words(
    words: tuple[str, ...],
    q: Question,
    topic: str,
    earlier: Sequence[tuple[str, ...]],
    said: set[str] | frozenset[str],
) -> Verdict:
    """:func:`judge` of a turn already read as ``words`` (:func:`text_words`), with ``said``
    the set of the words of the user's messages.

    Args:
        words: The agent's turn as words.
        q: The question the user asked.
        topic: The conversation's topic.
        earlier: The words of the agent's earlier turns.
        said: Every word of the user's messages so far.
    """
    if not words:
        return "empty"
    present = set(words)
    for before in earlier:
        if words == before:
            return "repeated"
        # Disjoint word sets overlap by 0: no need to build the set and the union.
        if not present.isdisjoint(before):
            old = set(before)
            common = len(present & old)
            # The union's size without building it.
            if common / (len(present) + len(old) - common) >= REPEAT_OVERLAP:
                return "repeated"
    reading = q.reading
    # Echo: content words all said by the user, when the answer has something new to say
    # (an either-or question's answer is one of its own words). Not "a run of the user's
    # words": a good answer to a rephrased question can repeat it ("how many glasses of
    # water a day?" - "drink about eight glasses of water a day.").
    content = present - STOPWORDS
    if content and content <= said and not said.issuperset(reading.news):
        return "echo"
    index = _INDEXES.get(topic)  # _topic_index(topic), inline: this runs at every turn end
    if index is None or index.questions is not TOPICS[topic]:
        index = _topic_index(topic)
    # Stuffed: keywords without content. One-word answers (the tiny variant) are all
    # keyword, so density does not apply there.
    hits = present & ALL_KEYWORDS
    if len(present) == len(words):  # no word twice, so no keyword twice
        n_hits, repeated_hit = len(hits), False
    else:
        n_hits = sum(map(ALL_KEYWORDS.__contains__, words))
        repeated_hit = n_hits != len(hits)
    if reading.sentence and n_hits / len(words) > STUFFED_DENSITY:
        return "stuffed"
    if repeated_hit:
        return "stuffed"
    # The topic's questions whose every keyword the turn mentions: without a keyword word
    # in the turn, only those without keywords.
    covered: Sequence[int] = index.always
    if hits or not index.anchored:
        found = list(index.always)
        by_anchor = index.by_anchor
        for w in hits if index.anchored else present:
            for i, singles in by_anchor.get(w, ()):
                if singles is not None:  # _covers(), inline for one-word keywords
                    if singles <= present:
                        found.append(i)
                elif _covers(index.readings[i], words, present):
                    found.append(i)
        covered = found
    if len(covered) >= 2:  # every keyword of two questions at once
        return "stuffed"
    singles = reading.singles  # _covers(), inline for one-word keywords
    covers = singles <= present if singles is not None else _covers(reading, words, present)
    if covers:
        # The facts beyond the user's words (answers(), without reading the turn again).
        facts = reading.facts - said
        if len(facts & present) >= RECALL * len(facts):
            return "answered"
    questions, readings = index.questions, index.readings
    for i in covered:
        other = questions[i]
        if other is not q and other != q:
            facts = readings[i].facts - said
            if len(facts & present) >= RECALL * len(facts):
                return "off_topic"
    return "missed"


def judge(
    text: str,
    q: Question,
    topic: str,
    earlier: Sequence[tuple[str, ...]],
    heard: Sequence[tuple[str, ...]],
) -> Verdict:
    """The strict verdict on the agent turn ``text`` about the question ``q``.

    Args:
        text: The agent's turn.
        q: The question the user asked (its keywords and reference answer).
        topic: The conversation's topic (its other questions tell stuffing and off-topic
            answers apart).
        earlier: The words of the agent's earlier turns.
        heard: The words of the user's messages so far.
    """
    return judge_words(text_words(text), q, topic, earlier, set().union(*heard))


__all__ = [
    "ALL_KEYWORDS",
    "RECALL",
    "VERDICTS",
    "Verdict",
    "answers",
    "content_words",
    "judge",
    "judge_words",
]
