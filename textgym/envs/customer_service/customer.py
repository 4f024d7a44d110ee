"""ScriptedCustomer: the customer of the CustomerService task.

Keyword rules, no model: the customer reads the agent's turn as lower-case words, answers
every question it recognises (what it wants, its order number, amount, email, zip code),
judges a bracketed action against its hidden intent and the refund policy, rephrases when
it does not understand, and leaves when it runs out of patience. A wrong action is refused
with a correction, or with ``strict_actions`` (the v1 ids) ends the case unresolved. Every
rule is a regex or a set lookup, so a reply costs microseconds (how a text reads is cached:
agents repeat their questions), and any text (empty, garbage, thousands of words, the same
turn again) gets a sensible answer.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from textgym.envs.customer_service.actions import (
    _ACTION_NAMES,
    INTENTS,
    _action_text,
    _closed_gaps,
    _last_action,
)
from textgym.tasks.checks import check_bool
from textgym.types import Problem, Reply, Turn
from textgym.users.base import Responder
from textgym.words import text_words

#: What the customer says when asked what it wants, or when it was misunderstood.
CLARIFICATIONS: dict[str, tuple[str, ...]] = {
    "refund": ("i want a refund.", "i would like my money back."),
    "order_status": ("i want to know the status of my order.", "where is my order?"),
    "address_change": ("i want to change my address.", "i need a new delivery address."),
    "password_reset": ("i need a password reset.", "i forgot my password."),
    "cancellation": ("i want to cancel my order.", "please cancel my order."),
    "complaint": ("i want to file a complaint.", "i want to make a complaint."),
}
#: Phrases (as word sequences) that ask what the customer wants.
INTENT_QUESTIONS = (
    "help", "assist", "what can i do", "how can i", "how may i", "what do you need",
    "what do you want", "what is the problem", "what is wrong", "what happened",
)  # fmt: skip
#: Words that ask for each slot (``order`` needs ``number``/``id`` or ``which order``).
SLOT_QUESTIONS = {
    "order": ("order number", "order id", "which order", "order no"),
    "amount": ("amount", "much", "cost", "price", "paid", "total"),
    "email": ("email", "mail"),
    "zip": ("zip", "postcode", "address"),
}
SLOT_ANSWERS = {
    "order": "my order number is {order}.",
    "amount": "the order cost {amount} dollars.",
    "email": "my email is {email}.",
    "zip": "the new zip code is {zip}.",
}
RESOLVED = "thank you, that solves it. bye!"
POLICY_BREACH = "ok, thank you. bye."
WRONG_SLOT = "that is not right."
WRONG_ACTION = "that is not what i want."
NOT_NEEDED = "you do not need that."
REPEATED = "you already asked that."
SILENCE = "hello? are you still there?"
CONFUSED = "sorry, i do not understand."
HURRY = "please hurry."
GAVE_UP = "this is taking too long. goodbye."
#: What a strict customer (``strict_actions``) says as it leaves after a wrong action.
STRICT_WRONG_SLOT = f"{WRONG_SLOT} bye."
STRICT_WRONG_ACTION = f"{WRONG_ACTION} bye."


def customer_lines() -> list[str]:
    """Every fixed line the customer can say (for the tokenizer's corpus)."""
    return [RESOLVED, POLICY_BREACH, WRONG_SLOT, WRONG_ACTION, NOT_NEEDED, REPEATED, SILENCE,
            CONFUSED, HURRY, GAVE_UP, STRICT_WRONG_SLOT, STRICT_WRONG_ACTION,
            "it cost 100 dollars.",
            *(a.format(order=1234, amount=50, email="ann@mail.com", zip=12345)
              for a in SLOT_ANSWERS.values())]  # fmt: skip


def _cue_test(cues: Sequence[str]) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """A question's cues as (one-word cues, first words of the phrases, padded phrases).

    `` cue `` is in the padded words exactly when a one-word cue is one of the words, and a
    phrase can only be in them if its first word is: set lookups settle most turns, and
    the padded words are built only to look for a phrase (cues are words split by spaces).
    """
    phrases = [c for c in cues if " " in c]
    return (
        frozenset(c for c in cues if " " not in c),
        frozenset(c.split()[0] for c in phrases),
        tuple(f" {c} " for c in phrases),
    )


#: Each question (the intent, then the slots in order) with its cue test, and every word
#: that can start a cue.
_QUESTIONS = (
    ("intent", *_cue_test(INTENT_QUESTIONS)),
    *((slot, *_cue_test(cues)) for slot, cues in SLOT_QUESTIONS.items()),
)
_CUE_WORDS = frozenset().union(*(words | starts for _, words, starts, _ in _QUESTIONS))
#: What a turn says: its words, its action (name, slots, as written) or None, and (for a
#: turn without an action) whether it asks for the intent and which slots it asks for.
_Found = tuple[str, Mapping[str, str], str]
_Reading = tuple[tuple[str, ...], _Found | None, bool, tuple[str, ...]]


@functools.lru_cache(maxsize=4096)
def _read(text: str, bare: bool) -> _Reading:
    """How the customer reads ``text`` (cached, as agents repeat their questions).

    Args:
        text: The agent's turn.
        bare: Read a turn that is only an action word as that action (tiny variants).

    Returns:
        The words, the action as ``parse_action(text, bare)`` finds it (name, slots, and
        ``str(action)``) or None, and for a turn without an action whether a
        :data:`INTENT_QUESTIONS` phrase is in it and which slots' :data:`SLOT_QUESTIONS` are.
        The slots are shared by every call: read them, never change them.
    """
    words = text_words(text)
    closed = _closed_gaps(text)
    found = _last_action(closed)
    if found is not None:
        return words, (*found, _action_text(*found)), False, ()
    if bare:
        # Read like parse_action: the words of the text with its bracket gaps closed.
        bare_words = words if closed is text else text_words(closed)
        if len(bare_words) == 1 and bare_words[0] in _ACTION_NAMES:
            return words, (bare_words[0], {}, f"[{bare_words[0]}]"), False, ()
    said = _CUE_WORDS.intersection(words)
    if not said:
        return words, None, False, ()
    padded = None
    asked = []
    for question, cue_words, starts, phrases in _QUESTIONS:
        if not cue_words.isdisjoint(said):
            asked.append(question)
        elif not starts.isdisjoint(said):
            if padded is None:
                padded = " " + " ".join(words) + " "
            if any(map(padded.__contains__, phrases)):
                asked.append(question)
    if asked and asked[0] == "intent":
        return words, None, True, tuple(asked[1:])
    return words, None, False, tuple(asked)


class ScriptedCustomer(Responder):
    """A customer with a hidden intent and slots (see :mod:`textgym.envs.customer_service.task`).

    The outcome of each reply (``Reply.outcome``, read by the rewards) has ``resolved``,
    ``policy_violation``, ``understood`` (the turn asked or did something the customer
    recognised), ``gave_up``, ``patience_left`` and ``action`` (the parsed action or None);
    a strict customer adds ``wrong_action`` (the turn's action was not the resolution).

    Args:
        bare_actions: Accept a turn that is only an action word (tiny variants).
        strict_actions: Actions are final: a wrong action name or a wrong slot value ends
            the case unresolved, instead of being refused with a correction (v1 ids).
    """

    def __init__(self, bare_actions: bool = False, strict_actions: bool = False) -> None:
        # The task builds one per episode start with flags it has checked: skip the checks
        # for plain bools.
        if type(bare_actions) is not bool:
            bare_actions = check_bool(bare_actions, "bare_actions")
        if type(strict_actions) is not bool:
            strict_actions = check_bool(strict_actions, "strict_actions")
        self.bare_actions = bare_actions
        self.strict_actions = strict_actions
        self.problem: Problem | None = None

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng
        self.meta = problem.metadata
        self.turns_taken = 0
        self.last_words: tuple[str, ...] | None = None
        self.clarified = 0

    def _clarification(self) -> str:
        meta = self.meta
        options = CLARIFICATIONS[meta["intent"]]
        # Rephrase: each restatement uses the next wording.
        text = options[self.clarified % len(options)]
        self.clarified += 1
        if not meta["with_slots"] and meta["intent"] == "refund":
            text += f" it cost {meta['amount']} dollars."
        return text

    def _slot_answer(self, slot: str) -> str:
        if not self.meta["with_slots"]:
            return NOT_NEEDED
        # format_map reads the same values as format(**{s: meta[s] for s in SLOTS}).
        return SLOT_ANSWERS[slot].format_map(self.meta)

    def respond(self, turns: Sequence[Turn]) -> Reply:
        if self.problem is None:
            raise RuntimeError("ScriptedCustomer.respond() before reset(); reset it first.")
        text = turns[-1].text if turns and turns[-1].role == "agent" else ""
        self.turns_taken = taken = self.turns_taken + 1
        words, action, asks_intent, asked = _read(text, self.bare_actions)
        done = False
        # Built in the key order the rewards and logs have always seen.
        if self.strict_actions:
            outcome: dict[str, Any] = {
                "resolved": False,
                "policy_violation": False,
                "understood": True,
                "gave_up": False,
                "wrong_action": False,
                "action": None,
            }
        else:
            outcome = {
                "resolved": False,
                "policy_violation": False,
                "understood": True,
                "gave_up": False,
                "action": None,
            }
        if action is not None:
            outcome["action"] = action[2]
            reply, done = self._judge(action[0], action[1], outcome)
        else:
            parts = [REPEATED] if words and words == self.last_words else []
            if asks_intent:
                parts.append(self._clarification())
            for slot in asked:
                parts.append(self._slot_answer(slot))
            # No answer says "you already asked that.": understood iff something was asked.
            if not (asks_intent or asked):
                outcome["understood"] = False
                parts.append(SILENCE if not words else f"{CONFUSED} {self._clarification()}")
            reply = parts[0] if len(parts) == 1 else " ".join(dict.fromkeys(parts))
        self.last_words = words
        left = self.meta["patience"] - taken
        if not done and left <= 0:
            reply, done = GAVE_UP, True
            outcome["gave_up"] = True
        elif not done and left == 1:
            reply = f"{HURRY} {reply}"
        outcome["patience_left"] = left if left >= 0 else 0  # max(left, 0), as that type
        return Reply(reply, done=done, outcome=outcome)

    def _judge(
        self, name: str, slots: Mapping[str, str], outcome: dict[str, Any]
    ) -> tuple[str, bool]:
        assert self.problem is not None
        meta = self.meta
        intent = meta["intent"]
        # gold_action(problem, with_slots), without building the Action.
        gold, needed = INTENTS[intent]
        over_limit = int(meta["amount"]) > meta["refund_limit"]
        if gold == "refund" and over_limit:
            gold = "escalate"
        if name == "refund" and intent == "refund" and over_limit:
            # The refund goes through against the policy: the customer is content, the
            # case is not resolved correctly, and it cannot be undone.
            outcome["policy_violation"] = True
            return POLICY_BREACH, True
        if name == gold:
            wrong = (
                [s for s in needed if slots.get(s) != str(meta[s])] if meta["with_slots"] else []
            )
            if not wrong:
                outcome["resolved"] = True
                return RESOLVED, True
            if self.strict_actions:
                # The action was carried out with the wrong details: no second try, and
                # the customer does not hand the right values to an agent that guessed.
                outcome["wrong_action"] = True
                return STRICT_WRONG_SLOT, True
            return " ".join([WRONG_SLOT, *(self._slot_answer(s) for s in wrong)]), False
        if self.strict_actions:
            # Escalating, cancelling, ... the wrong case cannot be taken back, so trying
            # every action in turn resolves nothing (v0 restated the intent instead).
            outcome["wrong_action"] = True
            return STRICT_WRONG_ACTION, True
        return f"{WRONG_ACTION} {self._clarification()}", False


__all__ = ["CLARIFICATIONS", "ScriptedCustomer", "customer_lines"]
