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

from textgym.envs.dialogue.topics import TOPICS, Question
from textgym.rewards.text import STOPWORDS
from textgym.words import coverage, text_words

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


def _said_again(words: tuple[str, ...], earlier: Sequence[tuple[str, ...]]) -> bool:
    now = set(words)
    for before in earlier:
        old = set(before)
        if words == before or (now and len(now & old) / len(now | old) >= REPEAT_OVERLAP):
            return True
    return False


def _echoes(words: tuple[str, ...], q: Question, heard: Sequence[tuple[str, ...]]) -> bool:
    # Not "a run of the user's words": a good answer to a rephrased question can repeat it
    # ("how many glasses of water a day?" - "drink about eight glasses of water a day.").
    said = {w for message in heard for w in message}
    content = content_words(words)
    # Saying nothing new is an echo only when the answer has something new to say (an
    # either-or question's answer is one of its own words).
    news = any(w not in said for w in content_words(text_words(q.answer)))
    return news and bool(content) and all(w in said for w in content)


def _stuffed(words: tuple[str, ...], q: Question, topic: Sequence[Question]) -> bool:
    hits = [w for w in words if w in ALL_KEYWORDS]
    # One-word answers (the tiny variant) are all keyword, so density does not apply there.
    sentence = len(text_words(q.answer)) > len(q.keywords)
    if sentence and len(hits) / len(words) > STUFFED_DENSITY:
        return True
    if len(hits) != len(set(hits)):
        return True
    text = " ".join(words)
    return sum(coverage(text, other.keywords) == 1.0 for other in topic) >= 2


def answers(words: tuple[str, ...], q: Question, said: AbstractSet[str] = frozenset()) -> bool:
    """Every keyword of ``q`` and :data:`RECALL` of its reference answer's facts: its content
    words beyond the keywords and beyond ``said`` (the user's words, which anyone can say
    back). A reference with no such facts is answered by its keywords."""
    if coverage(" ".join(words), q.keywords) < 1.0:
        return False
    keywords = {w for k in q.keywords for w in text_words(k)}
    facts = {w for w in content_words(text_words(q.answer)) if w not in keywords | said}
    return len(facts & set(words)) >= RECALL * len(facts)


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
    words = text_words(text)
    if not words:
        return "empty"
    if _said_again(words, earlier):
        return "repeated"
    if _echoes(words, q, heard):
        return "echo"
    questions = TOPICS[topic]
    if _stuffed(words, q, questions):
        return "stuffed"
    said = {w for message in heard for w in message}
    if answers(words, q, said):
        return "answered"
    if any(answers(words, other, said) for other in questions if other != q):
        return "off_topic"
    return "missed"


__all__ = ["ALL_KEYWORDS", "RECALL", "VERDICTS", "Verdict", "answers", "content_words", "judge"]
