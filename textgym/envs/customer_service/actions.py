"""The CustomerService family's actions: what an agent can do, and what resolves a case.

An action is written in brackets, ``[refund order=4821 amount=35]``; the intents name the
action that resolves them and the slots it needs, and the refund policy turns a refund over
the limit into an escalation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

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
#: Each intent's gold action as a format string: ``{0}`` the action name, then its slots.
_GOLD_TEMPLATES = {
    intent: "[{0}" + "".join(f" {s}={{{s}}}" for s in needed) + "]"
    for intent, (_, needed) in INTENTS.items()
}
_ACTION = re.compile(r"\[\s*([a-z_]+)((?:\s+[a-z_]+\s*=\s*[^\s\]]+)*)\s*\]")
_SLOT = re.compile(r"([a-z_]+)\s*=\s*([^\s\]]+)")
#: A bracket, and the spaces a tokenizer's decoder may put around "@" and "." in a value:
#: WordPiece (BERT) decodes ``kate@mail.com`` as ``kate @ mail. com``.
_BRACKET = re.compile(r"\[[^\]]*\]")
_VALUE_GAP = re.compile(r"(?<=\w)\s*([@.])\s*(?=\w)")
#: A set for the name lookups, and the gap's ``[@.]`` as the replacement: a C callable
#: instead of a template that ``re`` expands in Python for every gap.
_ACTION_NAMES = frozenset(ACTIONS)
_GAP_CHAR = itemgetter(1)
#: A space beside an "@" or "." (what a gap needs, in a bracket, to change anything).
_SPACED_MARK = re.compile(r"\s[@.]|[@.]\s")


def _close_bracket_gaps(m: re.Match[str]) -> str:
    return _VALUE_GAP.sub(_GAP_CHAR, m.group(0))


def _closed_gaps(text: str) -> str:
    """``text`` with the decoder's spaces around ``@`` and ``.`` removed inside brackets."""
    # Only a space beside an "@" or "." after the first bracket can be closed up: one C
    # search rules that out for most turns, and the per-bracket callbacks are skipped.
    start = text.find("[")
    if start < 0 or _SPACED_MARK.search(text, start) is None:
        return text
    return _BRACKET.sub(_close_bracket_gaps, text)


def _last_action(text: str) -> tuple[str, dict[str, str]] | None:
    """The last known ``[name slot=value ...]`` in ``_closed_gaps`` text, as (name, slots).

    Slots are parsed for that one match only: an earlier action is overridden anyway.
    """
    if "[" not in text:  # every action is bracketed
        return None
    # findall gives (name, slot text) pairs without a match object each.
    for name, args in reversed(_ACTION.findall(text.lower())):
        if name in _ACTION_NAMES:
            return name, dict(_SLOT.findall(args))
    return None


def _action_text(name: str, slots: Mapping[str, str]) -> str:
    """How an action is written, ``[name slot=value ...]`` (``str(Action(name, slots))``)."""
    if not slots:
        return f"[{name}]"
    return f"[{name}" + "".join([f" {k}={v}" for k, v in slots.items()]) + "]"


@dataclass(frozen=True)
class Action:
    """A resolution action parsed from an agent turn: ``[name slot=value ...]``."""

    name: str
    slots: Mapping[str, str]

    def __str__(self) -> str:
        return _action_text(self.name, self.slots)


def parse_action(text: str, bare: bool = False) -> Action | None:
    """The last ``[name slot=value ...]`` in ``text`` whose name is a known action.

    With ``bare`` (tiny variants) a turn that is only an action word (``refund``) is an
    action without slots.
    """
    text = _closed_gaps(text)
    found = _last_action(text)
    if found is not None:
        return Action(*found)
    if bare:
        words = text_words(text)
        if len(words) == 1 and words[0] in _ACTION_NAMES:
            return Action(words[0], {})
    return None


def gold_action(problem: Problem, with_slots: bool = True) -> Action:
    """The action that resolves ``problem`` under the refund policy."""
    meta = problem.metadata
    name, needed = INTENTS[meta["intent"]]
    if name == "refund" and int(meta["amount"]) > meta["refund_limit"]:
        name = "escalate"
    slots = {s: str(meta[s]) for s in needed} if with_slots else {}
    return Action(name, slots)


__all__ = ["ACTIONS", "INTENTS", "SLOTS", "Action", "gold_action", "parse_action"]
