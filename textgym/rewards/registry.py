"""Rewards by name: a registry and a small, safe expression language over it.

``parse_reward("exact_match + 0.1*format")`` builds ``ExactMatch() + 0.1 * AnswerFormat()``,
so configs, ``gym.make(..., reward="...")`` and the CLI can choose rewards as strings. The
grammar (no ``eval``; nothing but registered factories is ever called)::

    expr    := term (("+" | "-") term)*
    term    := factor ("*" factor)*
    factor  := ("-" | "+") factor | NUMBER | call | "(" expr ")"
    call    := NAME [ "(" [arg ("," arg)*] ")" ]
    arg     := [NAME "="] (expr | STRING)

A bare name calls its factory with no arguments; ``name(...)`` passes the arguments, e.g.
``relevance(key="topic")``, ``clip(exact_match - 0.5, -1, 1)``,
``reward_model("path/to/model")``. Within one spec, the same bare name is one object, so
``a + a`` is ``2 * a``. Register your own with :func:`register_reward`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textgym.rewards.base import Reward
from textgym.rewards.combinators import (
    Clip,
    Constant,
    LengthCost,
    Normalize,
    add,
    scale,
)
from textgym.rewards.text import BannedWords, Concision, Politeness, Relevance, Repetition
from textgym.rewards.verifiable import (
    Abstention,
    AnswerFormat,
    Correctness,
    ExactMatch,
    NumericMatch,
)


class RewardSpecError(ValueError):
    """A reward spec string does not parse, or names an unknown reward.

    Attributes:
        spec: The spec string.
        position: 0-based character offset of the problem.
    """

    def __init__(self, message: str, spec: str, position: int) -> None:
        self.spec, self.position = spec, position
        super().__init__(
            f"Bad reward spec at position {position}: {message}\n"
            f"  {spec}\n  {' ' * position}^\n"
            f"Known reward names: {', '.join(reward_names())}. "
            'Grammar: names, numbers, + - * and parentheses, e.g. "exact_match + 0.1*format".'
        )


def _model_factory(cls_name: str) -> Callable[..., Reward]:
    def factory(*args: Any, **kwargs: Any) -> Reward:
        # Imported on use: model rewards pull in torch and transformers.
        from textgym.rewards import models

        return getattr(models, cls_name)(*args, **kwargs)

    factory.__name__ = cls_name
    return factory


REWARDS: dict[str, Callable[..., Reward]] = {
    "exact_match": ExactMatch,
    "numeric_match": NumericMatch,
    "format": AnswerFormat,
    "correctness": Correctness,
    "abstention": Abstention,
    "politeness": Politeness,
    "relevance": Relevance,
    "repetition": Repetition,
    "concision": Concision,
    "banned_words": BannedWords,
    "length_cost": LengthCost,
    "constant": Constant,
    "clip": Clip,
    "normalize": Normalize,
    "reward_model": _model_factory("RewardModel"),
    "embedding_similarity": _model_factory("EmbeddingSimilarity"),
    "lm_judge": _model_factory("LMJudge"),
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register_reward(name: str, factory: Callable[..., Reward], *, overwrite: bool = False) -> None:
    """Make ``factory`` available as ``name`` in reward specs.

    Args:
        name: An identifier (letters, digits, underscores; not starting with a digit).
        factory: Called with the spec's arguments (none for a bare name); returns a
            :class:`Reward` or a function ``ctx -> float``.
        overwrite: Replace an existing registration instead of raising.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"Reward name {name!r} is not an identifier; use letters, digits and underscores, "
            "e.g. 'my_reward'."
        )
    if not callable(factory):
        raise TypeError(
            f"register_reward({name!r}, ...) needs a callable factory, got {factory!r}."
        )
    if name in REWARDS and not overwrite:
        raise ValueError(
            f"A reward named {name!r} is already registered ({REWARDS[name]!r}); pass "
            "overwrite=True to replace it."
        )
    REWARDS[name] = factory


def reward_names() -> list[str]:
    """Every registered reward name, sorted."""
    return sorted(REWARDS)


def make_reward(name: str, *args: Any, **kwargs: Any) -> Reward:
    """Build the registered reward ``name`` with ``args`` and ``kwargs``."""
    from textgym.rewards.base import as_reward

    if name not in REWARDS:
        close = difflib.get_close_matches(name, REWARDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"Unknown reward {name!r}.{hint} Known rewards: {reward_names()}.")
    return as_reward(REWARDS[name](*args, **kwargs))


# -- the parser ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<op>[-+*(),=])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "string", "op", "end"
    text: str
    pos: int


def _tokenize(spec: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(spec):
        if spec[pos:].strip() == "":
            break
        m = _TOKEN.match(spec, pos)
        if m is None or m.end() == pos:
            bad = len(spec[pos:]) - len(spec[pos:].lstrip()) + pos
            raise RewardSpecError(f"unexpected character {spec[bad]!r}", spec, bad)
        kind = m.lastgroup or "op"
        start = m.start(kind)
        tokens.append(_Token(kind, m.group(kind), start))
        pos = m.end()
    tokens.append(_Token("end", "", len(spec)))
    return tokens


Value = float | Reward


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens = _tokenize(spec)
        self.i = 0
        self.bare: dict[str, Reward] = {}

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: _Token | None = None) -> RewardSpecError:
        return RewardSpecError(message, self.spec, (tok or self.tok).pos)

    def expect(self, text: str) -> _Token:
        tok = self.tok
        if tok.text != text or tok.kind not in ("op",):
            found = "the end of the spec" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {text!r}, found {found}")
        self.i += 1
        return tok

    def parse(self) -> Reward:
        if self.tok.kind == "end":
            raise self.error("the spec is empty; name a reward")
        value = self.expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} after a complete expression")
        return value if isinstance(value, Reward) else Constant(value)

    def expr(self) -> Value:
        value = self.term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.tok
            self.i += 1
            rhs = self.term()
            if op.text == "-":
                rhs = -rhs if isinstance(rhs, float) else scale(rhs, -1.0)
            value = (
                value + rhs
                if isinstance(value, float) and isinstance(rhs, float)
                else add(value, rhs)
            )
        return value

    def term(self) -> Value:
        value = self.factor()
        while self.tok.kind == "op" and self.tok.text == "*":
            op = self.tok
            self.i += 1
            rhs = self.factor()
            if isinstance(value, Reward) and isinstance(rhs, Reward):
                raise self.error(
                    "cannot multiply two rewards (rewards combine linearly); multiply a "
                    "reward by a number, e.g. 0.1*format",
                    op,
                )
            if isinstance(value, float) and isinstance(rhs, float):
                value = value * rhs
            else:
                value = scale(rhs, value) if isinstance(value, float) else scale(value, rhs)
        return value

    def factor(self) -> Value:
        tok = self.tok
        if tok.kind == "op" and tok.text in "+-":
            self.i += 1
            value = self.factor()
            if tok.text == "+":
                return value
            return -value if isinstance(value, float) else scale(value, -1.0)
        if tok.kind == "number":
            self.i += 1
            return float(tok.text)
        if tok.kind == "op" and tok.text == "(":
            self.i += 1
            value = self.expr()
            self.expect(")")
            return value
        if tok.kind == "name":
            return self.call()
        found = "the end of the spec" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a reward name, a number or '(', found {found}")

    def call(self) -> Reward:
        tok = self.tok
        self.i += 1
        if tok.text not in REWARDS:
            close = difflib.get_close_matches(tok.text, REWARDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(f"unknown reward name {tok.text!r}{hint}", tok)
        has_args = self.tok.kind == "op" and self.tok.text == "("
        if not has_args and tok.text in self.bare:
            return self.bare[tok.text]
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if has_args:
            self.i += 1
            while not (self.tok.kind == "op" and self.tok.text == ")"):
                if args or kwargs:
                    self.expect(",")
                key = None
                nxt = self.tokens[self.i + 1]
                if self.tok.kind == "name" and nxt.kind == "op" and nxt.text == "=":
                    key = self.tok.text
                    self.i += 2
                if self.tok.kind == "string":
                    value: Any = self.tok.text[1:-1]
                    self.i += 1
                else:
                    value = self.expr()
                    if isinstance(value, float) and value.is_integer():
                        value = int(value) if "." not in self._last_number_text() else value
                if key is None:
                    if kwargs:
                        raise self.error("a positional argument after a keyword argument")
                    args.append(value)
                else:
                    kwargs[key] = value
            self.expect(")")
        try:
            reward = make_reward(tok.text, *args, **kwargs)
        except (TypeError, ValueError, KeyError, OSError) as exc:
            raise self.error(f"{tok.text}(...) failed: {exc}", tok) from exc
        if not has_args:
            self.bare[tok.text] = reward
        return reward

    def _last_number_text(self) -> str:
        prev = self.tokens[self.i - 1]
        return prev.text if prev.kind == "number" else "."


def parse_reward(spec: str) -> Reward:
    """Build a reward from a spec string such as ``"exact_match + 0.1*format"``.

    Raises:
        RewardSpecError: (a ``ValueError``) with the position of the problem and the known
            reward names.
    """
    if isinstance(spec, Reward):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"parse_reward takes a string, got {type(spec).__name__} ({spec!r}).")
    return _Parser(spec).parse()


__all__ = [
    "REWARDS",
    "RewardSpecError",
    "make_reward",
    "parse_reward",
    "register_reward",
    "reward_names",
]
