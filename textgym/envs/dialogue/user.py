"""ScriptedUser: the user of the Dialogue task.

It asks its goal questions one after another. A turn that mentions at least half of the
current question's keywords answers it, and the user moves on with a short acknowledgement;
otherwise it rephrases the question. Rude or banned words annoy it (twice and it leaves),
repeating a turn gets "you said that already", and after ``max_turns`` agent turns without
its questions answered it leaves annoyed. Word lookups only, so any text is safe and cheap.

With ``judge="strict"`` (the v1 ids) the user judges every turn with
:func:`~textgym.envs.dialogue.judge.judge`: only a real answer (every keyword and at least half
of the reference answer's facts, not repeated, not its own words said back, not a keyword
list) moves it on; each rejected turn is named in its reply, uses up one of the question's
``attempts`` and costs :data:`REJECTED_COST` of the satisfaction it leaves with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgym.envs.dialogue.judge import Verdict, judge_words
from textgym.envs.dialogue.topics import TOPICS, question
from textgym.errors import ConfigError, ConfigTypeError, did_you_mean
from textgym.rewards.text import DEFAULT_BANNED_WORDS, RUDE_WORDS, BannedWords
from textgym.tasks.checks import check_int, describe
from textgym.types import Problem, Reply, Turn
from textgym.users.base import Responder
from textgym.words import text_words, word_coverage

ACKS = ("thanks, that helps.", "great.", "ok, good to know.")
SATISFIED = "thanks a lot, that is all i wanted to know. bye!"
RUDE = "that is rude."
RUDE_BYE = "that is rude. bye."
MISSED = "that does not answer my question."
REPEATED = "you said that already."
SILENCE = "hello?"
GAVE_UP = "this is not helpful. bye."
#: What the strict user says to each rejected turn (then it asks again).
REJECTIONS: dict[Verdict, str] = {
    "repeated": REPEATED,
    "echo": "you just said my words back.",
    "stuffed": "that is not an answer, just words.",
    "off_topic": "that is about something else.",
    "missed": MISSED,
}
#: Satisfaction the strict user loses per rejected turn (it leaves satisfied with the rest).
REJECTED_COST = 0.25
#: How the user judges a turn: v0's keyword share, or v1's strict judge.
JUDGES = ("keywords", "strict")
#: Share of a question's keywords a turn must mention to answer it.
ANSWER_THRESHOLD = 0.5
#: Stateless, so every user shares one (building it re-tokenizes the whole word list).
_BANNED = BannedWords(DEFAULT_BANNED_WORDS)
#: A turn with none of these words is neither rude nor banned: one set test for most turns.
_ALARM = RUDE_WORDS | _BANNED.first_words


def check_judge(value: object) -> str:
    """``value`` if it names a judge of :data:`JUDGES`."""
    if not isinstance(value, str):
        raise ConfigTypeError(f"judge must be one of {list(JUDGES)}, got {describe(value)}.")
    if value not in JUDGES:
        raise ConfigError(
            f"judge must be one of {list(JUDGES)} ('strict' is the v1 user), got "
            f"{value!r}.{did_you_mean(value, JUDGES)}"
        )
    return value


def user_lines() -> list[str]:
    """Every fixed line the user can say (for the tokenizer's corpus)."""
    return [*ACKS, "ok.", SATISFIED, RUDE, RUDE_BYE, MISSED, REPEATED, SILENCE, GAVE_UP,
            *REJECTIONS.values()]  # fmt: skip


class ScriptedUser(Responder):
    """A user with a topic and a goal (see :mod:`textgym.envs.dialogue.task`).

    ``Reply.outcome`` has ``question`` (the index answered or asked about), ``keywords``
    (that question's keywords, for the relevance reward), ``answered``, ``rude``,
    ``satisfied`` and ``annoyed`` (the last two only true when the user leaves). The strict
    user adds ``verdict`` (one of :data:`~textgym.envs.dialogue.judge.VERDICTS`, or
    ``"rude"``), ``rejected`` (rejected turns so far) and, when it leaves satisfied,
    ``satisfaction`` (``1 - REJECTED_COST * rejected``, at least 0).

    Args:
        judge: ``"keywords"`` (v0: half of the keywords answer a question) or ``"strict"``
            (v1: :func:`~textgym.envs.dialogue.judge.judge`).
        attempts: Turns the user gives each question before it leaves annoyed; ``None``
            for no limit but the conversation's ``max_turns``.
    """

    def __init__(self, judge: str = "keywords", attempts: int | None = None) -> None:
        judge = check_judge(judge)
        if attempts is not None:
            attempts = check_int(attempts, "attempts", 1)
        self.judge, self.attempts = judge, attempts
        self.problem: Problem | None = None
        self._banned = _BANNED

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng
        self.index = 0
        self.turns_taken = 0
        self.annoyance = 0
        self.last_words: tuple[str, ...] | None = None
        self.tries = 0  # turns spent on the current question
        self.rejected = 0
        # The strict user's reading of the transcript so far (see respond()).
        self._read: tuple[Turn, ...] = ()
        self._earlier: tuple[tuple[str, ...], ...] = ()
        self._said: frozenset[str] = frozenset()

    def respond(self, turns: Sequence[Turn]) -> Reply:
        if self.problem is None:
            raise RuntimeError("ScriptedUser.respond() before reset(); reset it first.")
        if self.judge != "strict":
            return self._respond_keywords(turns)
        # The strict user, in this one call: it runs at every turn end, right after a model
        # forward has evicted the caches, so every call and lookup saved counts.
        meta = self.problem.metadata
        text = turns[-1].text if turns and turns[-1].role == "agent" else ""
        self.turns_taken += 1
        self.tries += 1
        topic, i = meta["goal"][self.index]  # question(), inline
        q = TOPICS[topic][i]
        words = text_words(text)
        # Most turns have no alarm word: one set test, no call.
        clean = _ALARM.isdisjoint(words) and self._banned is _BANNED
        rude = not clean and self._rude(text, words)
        if rude:
            verdict = "rude"
        else:
            # judge(), without reading the turn or the whole transcript again: each call's
            # transcript normally extends the last one's by the user's reply and the agent's
            # new turn, so only those are read (any other transcript is read in full). The
            # values are immutable, so a copied user cannot change what another one read.
            read = self._read
            n = len(read)
            if len(turns) > n and tuple(turns[:n]) == read:
                earlier, said = self._earlier, self._said
            else:
                earlier, said, n = (), frozenset(), 0
            for t in turns[n:-1]:
                if t.role == "agent":
                    earlier += (text_words(t.text),)
                elif t.role == "user":
                    said = said.union(text_words(t.text))
            self._read, self._earlier, self._said = tuple(turns[:-1]), earlier, said
            if turns and turns[-1].role == "user":
                said = said.union(text_words(turns[-1].text))
            verdict = judge_words(words, q, meta["topic"], earlier, said)
        outcome: dict[str, Any] = {
            "question": self.index,
            "keywords": q.keywords,
            "answered": verdict == "answered",
            "rude": rude,
            "satisfied": False,
            "annoyed": False,
            "verdict": verdict,
        }
        done = False
        if verdict == "answered":
            self.index += 1
            self.tries = 0
            if self.index == len(meta["goal"]):
                reply, done = SATISFIED, True
                outcome["satisfied"] = True
                outcome["satisfaction"] = max(0.0, 1.0 - REJECTED_COST * self.rejected)
            else:
                one_word = meta.get("one_word", False)
                ack = "ok." if one_word else ACKS[int(self.rng.integers(len(ACKS)))]
                reply = f"{ack} {question(self.problem, self.index).text}"
        else:
            self.rejected += 1
            if rude:
                self.annoyance += 1
                done = self.annoyance >= 2
                reply = RUDE_BYE if done else f"{RUDE} {q.rephrased}"
                outcome["annoyed"] = done
            elif verdict == "empty":
                reply = f"{SILENCE} {q.text}"
            else:
                reply = f"{REJECTIONS[verdict]} {q.rephrased}"
            if not done and self.attempts is not None and self.tries >= self.attempts:
                reply, done = GAVE_UP, True
                outcome["annoyed"] = True
        outcome["rejected"] = self.rejected
        if not done and self.turns_taken >= meta["max_turns"]:
            reply, done = GAVE_UP, True
            outcome["annoyed"] = True
        return Reply(reply, done=done, outcome=outcome)

    def _respond_keywords(self, turns: Sequence[Turn]) -> Reply:
        # v0's user, with its own logic: its episodes are pinned.
        assert self.problem is not None
        meta = self.problem.metadata
        text = turns[-1].text if turns and turns[-1].role == "agent" else ""
        self.turns_taken += 1
        words = text_words(text)
        q = question(self.problem, self.index)
        # Most turns have no alarm word: one set test, no call.
        clean = _ALARM.isdisjoint(words) and self._banned is _BANNED
        rude = not clean and self._rude(text, words)
        outcome: dict[str, Any] = {
            "question": self.index,
            "keywords": q.keywords,
            "answered": False,
            "rude": rude,
            "satisfied": False,
            "annoyed": False,
        }
        done = False
        if rude:
            self.annoyance += 1
            done = self.annoyance >= 2
            reply = RUDE_BYE if done else f"{RUDE} {q.rephrased}"
            outcome["annoyed"] = done
        elif word_coverage(words, q.keywords) >= ANSWER_THRESHOLD:
            outcome["answered"] = True
            self.index += 1
            if self.index == len(meta["goal"]):
                reply, done = SATISFIED, True
                outcome["satisfied"] = True
            else:
                # One-word (tiny) conversations keep a fixed acknowledgement, so the states
                # a tabular agent must visit do not triple.
                one_word = meta.get("one_word", False)
                ack = "ok." if one_word else ACKS[int(self.rng.integers(len(ACKS)))]
                reply = f"{ack} {question(self.problem, self.index).text}"
        elif words and words == self.last_words:
            reply = f"{REPEATED} {q.rephrased}"
        elif not words:
            reply = f"{SILENCE} {q.text}"
        else:
            reply = f"{MISSED} {q.rephrased}"
        self.last_words = words
        if not done and self.turns_taken >= meta["max_turns"]:
            reply, done = GAVE_UP, True
            outcome["annoyed"] = True
        return Reply(reply, done=done, outcome=outcome)

    def _rude(self, text: str, words: tuple[str, ...]) -> bool:
        """Whether the turn has a rude word or a banned word or phrase (called when it has
        an :data:`_ALARM` word, or the banned list is not the default)."""
        return not RUDE_WORDS.isdisjoint(words) or self._banned.any_hit(text)


__all__ = ["JUDGES", "check_judge", "REJECTED_COST", "REJECTIONS", "ScriptedUser", "user_lines"]
