"""ScriptedCustomer: the customer of the CustomerService task.

Keyword rules, no model: the customer reads the agent's turn as lower-case words, answers
every question it recognises (what it wants, its order number, amount, email, zip code),
judges a bracketed action against its hidden intent and the refund policy, rephrases when
it does not understand, and leaves when it runs out of patience. A wrong action is refused
with a correction, or with ``strict_actions`` (the v1 ids) ends the case unresolved. Every
rule is a regex or a set lookup, so a reply costs microseconds, and any text (empty,
garbage, thousands of words, the same turn again) gets a sensible answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textgym.envs.customer_service.actions import SLOTS, Action, gold_action, parse_action
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


def _has(padded: str, phrase: str) -> bool:
    return f" {phrase} " in padded


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
        self.bare_actions = check_bool(bare_actions, "bare_actions")
        self.strict_actions = check_bool(strict_actions, "strict_actions")
        self.problem: Problem | None = None

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng
        self.meta = problem.metadata
        self.turns_taken = 0
        self.last_words: tuple[str, ...] | None = None
        self.clarified = 0

    def _clarification(self) -> str:
        options = CLARIFICATIONS[self.meta["intent"]]
        # Rephrase: each restatement uses the next wording.
        text = options[self.clarified % len(options)]
        self.clarified += 1
        if not self.meta["with_slots"] and self.meta["intent"] == "refund":
            text += f" it cost {self.meta['amount']} dollars."
        return text

    def _slot_answer(self, slot: str) -> str:
        if not self.meta["with_slots"]:
            return NOT_NEEDED
        return SLOT_ANSWERS[slot].format(**{s: self.meta[s] for s in SLOTS})

    def respond(self, turns: Sequence[Turn]) -> Reply:
        if self.problem is None:
            raise RuntimeError("ScriptedCustomer.respond() before reset(); reset it first.")
        text = turns[-1].text if turns and turns[-1].role == "agent" else ""
        self.turns_taken += 1
        words = text_words(text)
        padded = " " + " ".join(words) + " "
        outcome: dict[str, Any] = {
            "resolved": False,
            "policy_violation": False,
            "understood": False,
            "gave_up": False,
        }
        if self.strict_actions:
            outcome["wrong_action"] = False
        action = parse_action(text, self.bare_actions)
        outcome["action"] = None if action is None else str(action)
        done = False
        if action is not None:
            outcome["understood"] = True
            reply, done = self._judge(action, outcome)
        else:
            parts = []
            if words and words == self.last_words:
                parts.append(REPEATED)
            if any(_has(padded, q) for q in INTENT_QUESTIONS):
                parts.append(self._clarification())
            for slot, cues in SLOT_QUESTIONS.items():
                if any(_has(padded, c) for c in cues):
                    parts.append(self._slot_answer(slot))
            outcome["understood"] = bool(parts) and parts != [REPEATED]
            if not outcome["understood"]:
                parts.append(SILENCE if not words else f"{CONFUSED} {self._clarification()}")
            reply = " ".join(dict.fromkeys(parts))  # no sentence twice
        self.last_words = words
        left = self.meta["patience"] - self.turns_taken
        if not done and left <= 0:
            reply, done = GAVE_UP, True
            outcome["gave_up"] = True
        elif not done and left == 1:
            reply = f"{HURRY} {reply}"
        outcome["patience_left"] = max(left, 0)
        return Reply(reply, done=done, outcome=outcome)

    def _judge(self, action: Action, outcome: dict[str, Any]) -> tuple[str, bool]:
        assert self.problem is not None
        gold = gold_action(self.problem, self.meta["with_slots"])
        over_limit = int(self.meta["amount"]) > self.meta["refund_limit"]
        if action.name == "refund" and self.meta["intent"] == "refund" and over_limit:
            # The refund goes through against the policy: the customer is content, the
            # case is not resolved correctly, and it cannot be undone.
            outcome["policy_violation"] = True
            return POLICY_BREACH, True
        if action.name == gold.name:
            wrong = [s for s, v in gold.slots.items() if action.slots.get(s) != v]
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
