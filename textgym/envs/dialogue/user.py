"""ScriptedUser: the user of the Dialogue task.

It asks its goal questions one after another. A turn that mentions at least half of the
current question's keywords answers it, and the user moves on with a short acknowledgement;
otherwise it rephrases the question. Rude or banned words annoy it (twice and it leaves),
repeating a turn gets "you said that already", and after ``max_turns`` agent turns without
its questions answered it leaves annoyed. Word lookups only, so any text is safe and cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgym.envs.dialogue.topics import question
from textgym.rewards.text import DEFAULT_BANNED_WORDS, RUDE_WORDS, BannedWords
from textgym.types import Problem, Reply, Turn
from textgym.users.base import Responder
from textgym.words import coverage, text_words

ACKS = ("thanks, that helps.", "great.", "ok, good to know.")
SATISFIED = "thanks a lot, that is all i wanted to know. bye!"
RUDE = "that is rude."
RUDE_BYE = "that is rude. bye."
MISSED = "that does not answer my question."
REPEATED = "you said that already."
SILENCE = "hello?"
GAVE_UP = "this is not helpful. bye."
#: Share of a question's keywords a turn must mention to answer it.
ANSWER_THRESHOLD = 0.5
#: Stateless, so every user shares one (building it re-tokenizes the whole word list).
_BANNED = BannedWords(DEFAULT_BANNED_WORDS)


def user_lines() -> list[str]:
    """Every fixed line the user can say (for the tokenizer's corpus)."""
    return [*ACKS, "ok.", SATISFIED, RUDE, RUDE_BYE, MISSED, REPEATED, SILENCE, GAVE_UP]


class ScriptedUser(Responder):
    """A user with a topic and a goal (see :mod:`textgym.envs.dialogue.task`).

    ``Reply.outcome`` has ``question`` (the index answered or asked about), ``keywords``
    (that question's keywords, for the relevance reward), ``answered``, ``rude``,
    ``satisfied`` and ``annoyed`` (the last two only true when the user leaves).
    """

    def __init__(self) -> None:
        self.problem: Problem | None = None
        self._banned = _BANNED

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng
        self.index = 0
        self.turns_taken = 0
        self.annoyance = 0
        self.last_words: tuple[str, ...] | None = None

    def respond(self, turns: Sequence[Turn]) -> Reply:
        if self.problem is None:
            raise RuntimeError("ScriptedUser.respond() before reset(); reset it first.")
        meta = self.problem.metadata
        text = turns[-1].text if turns and turns[-1].role == "agent" else ""
        self.turns_taken += 1
        words = text_words(text)
        q = question(self.problem, self.index)
        rude = any(w in RUDE_WORDS for w in words) or self._banned.hits(text) > 0
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
        elif coverage(text, q.keywords) >= ANSWER_THRESHOLD:
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


__all__ = ["ScriptedUser", "user_lines"]
