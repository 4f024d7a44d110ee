"""The CustomerService family's actions: what an agent can do, and what resolves a case.

An action is written in brackets, ``[refund order=4821 amount=35]``; the intents name the
action that resolves them and the slots it needs, and the refund policy turns a refund over
the limit into an escalation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from textgym.types import Problem
from textgym.words import text_words

#: intent -> (resolution action, slots the action needs).
INTENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "refund": ("refund", ("order", "amount")),
    "order_status": ("status", ("order",)),
    "address_change": ("address", ("order", "zip")),
    "password_reset": ("reset", ("email",)),
    "cancellation": ("cancel", ("order",)),
    "complaint": ("complaint", ("order",)),
}
ACTIONS = ("refund", "escalate", "status", "address", "reset", "cancel", "complaint")
SLOTS = ("order", "amount", "email", "zip")
_ACTION = re.compile(r"\[\s*([a-z_]+)((?:\s+[a-z_]+\s*=\s*[^\s\]]+)*)\s*\]")
_SLOT = re.compile(r"([a-z_]+)\s*=\s*([^\s\]]+)")
#: A bracket, and the spaces a tokenizer's decoder may put around "@" and "." in a value:
#: WordPiece (BERT) decodes ``kate@mail.com`` as ``kate @ mail. com``.
_BRACKET = re.compile(r"\[[^\]]*\]")
_VALUE_GAP = re.compile(r"(?<=\w)\s*([@.])\s*(?=\w)")


@dataclass(frozen=True)
class Action:
    """A resolution action parsed from an agent turn: ``[name slot=value ...]``."""

    name: str
    slots: Mapping[str, str]

    def __str__(self) -> str:
        args = "".join(f" {k}={v}" for k, v in self.slots.items())
        return f"[{self.name}{args}]"


def parse_action(text: str, bare: bool = False) -> Action | None:
    """The last ``[name slot=value ...]`` in ``text`` whose name is a known action.

    With ``bare`` (tiny variants) a turn that is only an action word (``refund``) is an
    action without slots.
    """
    found = None
    text = _BRACKET.sub(lambda m: _VALUE_GAP.sub(r"\1", m.group(0)), text)
    for m in _ACTION.finditer(text.lower()):
        if m.group(1) in ACTIONS:
            found = Action(m.group(1), dict(_SLOT.findall(m.group(2))))
    if found is None and bare:
        words = text_words(text)
        if len(words) == 1 and words[0] in ACTIONS:
            found = Action(words[0], {})
    return found


def gold_action(problem: Problem, with_slots: bool = True) -> Action:
    """The action that resolves ``problem`` under the refund policy."""
    meta = problem.metadata
    name, needed = INTENTS[meta["intent"]]
    if name == "refund" and int(meta["amount"]) > meta["refund_limit"]:
        name = "escalate"
    slots = {s: str(meta[s]) for s in needed} if with_slots else {}
    return Action(name, slots)


__all__ = ["ACTIONS", "INTENTS", "SLOTS", "Action", "gold_action", "parse_action"]
