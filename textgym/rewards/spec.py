"""Reward specs: a small, safe expression language over the reward registry.

``parse_reward("exact_match + 0.1*format")`` builds ``ExactMatch() + 0.1 * AnswerFormat()``,
so configs, ``gym.make(..., reward="...")`` and the CLI can choose rewards as strings. The
grammar (no ``eval``; nothing but registered factories is ever called)::

    expr    := term (("+" | "-") term)*
    term    := factor ("*" factor)*
    factor  := ("-" | "+") factor | NUMBER | call | "(" expr ")"
    call    := NAME [ "(" [arg ("," arg)*] ")" ]
    arg     := [NAME "="] (expr | STRING | "True" | "False")

A bare name calls its factory with no arguments; ``name(...)`` passes the arguments, e.g.
``relevance(key="topic")``, ``clip(exact_match - 0.5, -1, 1)``,
``reward_model("path/to/model")``, ``correctness(bare=True)``. Within one spec, the same
bare name is one object, so ``a + a`` is ``2 * a``. Register your own with
:func:`~textgym.rewards.registry.register_reward`.

Refused with a :class:`RewardSpecError` that gives the position and shows a caret under it:
anything outside the grammar, unknown names and arguments (with a "did you mean"), a number
that overflows to inf or rounds to 0, arithmetic that overflows, the same sign twice in a row
(``a + + b``, ``a - -b``: write ``a - (-b)`` on purpose), and nesting deeper than
:data:`MAX_DEPTH`.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textgym.errors import UserError, closest
from textgym.rewards.base import (
    Constant,
    Reward,
    RewardTypeError,
    _merge,
    _terms_of,
    scale,
)
from textgym.rewards.registry import REWARDS, TRUTH_VALUES, make_reward, reward_names

#: How deeply parentheses and call arguments may nest. Far beyond any real spec, and far
#: below the depth at which the recursive-descent parser would hit Python's recursion limit.
MAX_DEPTH = 100

# Around the caret, at most this many characters of a long spec are shown.
_SHOW_BEFORE, _SHOW_AFTER = 50, 30


class RewardSpecError(UserError, ValueError):
    """A reward spec string does not parse, or names an unknown reward.

    Attributes:
        spec: The spec string.
        position: 0-based character offset of the problem.
        reason: The problem alone, without the position and the grammar reminder.
    """

    def __init__(self, message: str, spec: str, position: int) -> None:
        self.spec, self.position, self.reason = spec, position, message
        start = max(0, position - _SHOW_BEFORE)
        shown = spec[start : position + _SHOW_AFTER]
        prefix = "..." if start else ""
        suffix = "..." if position + _SHOW_AFTER < len(spec) else ""
        # Tabs and newlines would shift the caret; show them as single spaces.
        shown = re.sub(r"\s", " ", shown)
        caret = " " * (len(prefix) + position - start)
        super().__init__(
            f"Bad reward spec at position {position}: {message}\n"
            f"  {prefix}{shown}{suffix}\n  {caret}^\n"
            f"Known reward names: {', '.join(reward_names())}. "
            'Grammar: names, numbers, + - * and parentheses, e.g. "exact_match + 0.1*format".'
        )


_TOKEN = re.compile(
    r"""(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<op>[-+*(),=])
    )""",
    re.VERBOSE,
)
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "string", "op", "end"
    text: str
    pos: int


def _tokenize(spec: str) -> list[_Token]:
    # Linear in the length of the spec: whitespace is skipped with a match at ``pos``, never
    # by slicing the rest of the string.
    tokens, pos, n = [], 0, len(spec)
    while True:
        pos = _SPACE.match(spec, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            break
        m = _TOKEN.match(spec, pos)
        if m is None:
            ch = spec[pos]
            if ch in "\"'":
                raise RewardSpecError(
                    f"unterminated string: the {ch} here has no closing {ch}", spec, pos
                )
            hint = " (division is not supported; write 0.5*reward)" if ch == "/" else ""
            raise RewardSpecError(f"unexpected character {ch!r}{hint}", spec, pos)
        kind = m.lastgroup or "op"
        tokens.append(_Token(kind, m.group(kind), pos))
        pos = m.end()
    tokens.append(_Token("end", "", n))
    return tokens


def _describe(tok: _Token) -> str:
    return "the end of the spec" if tok.kind == "end" else repr(tok.text)


def _plain_signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    """The factory's signature without annotations (for messages), or ``None``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


Value = float | Reward


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens = _tokenize(spec)
        self.i = 0
        self.depth = 0
        self.bare: dict[str, Reward] = {}

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: _Token | None = None) -> RewardSpecError:
        return RewardSpecError(message, self.spec, (tok or self.tok).pos)

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def expect(self, text: str) -> _Token:
        tok = self.tok
        if tok.text != text or tok.kind != "op":
            raise self.error(f"expected {text!r}, found {_describe(tok)}")
        self.i += 1
        return tok

    def parse(self) -> Reward:
        if self.tok.kind == "end":
            raise self.error("the spec is empty; name a reward")
        value = self.expr()
        if self.tok.kind != "end":
            tok = self.tok
            hint = ""
            if tok.kind in ("name", "number", "string") or tok.text == "(":
                hint = "; is an operator (+, - or *) missing before it?"
            raise self.error(f"unexpected {tok.text!r} after a complete expression{hint}")
        return value if isinstance(value, Reward) else Constant(value)

    def enter(self, tok: _Token) -> None:
        """One level deeper (a sub-expression or a sign); refused past :data:`MAX_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"the spec nests more than {MAX_DEPTH} levels deep (parentheses, call "
                "arguments and signs); flatten it",
                tok,
            )

    def expr(self) -> Value:
        start = self.tok
        self.enter(start)
        try:
            first = self.term()
            if not (self.tok.kind == "op" and self.tok.text in "+-"):
                return first
            # All terms of the sum are collected and merged once: merging after every "+"
            # would make a long sum quadratic.
            values: list[Value] = [first]
            while self.tok.kind == "op" and self.tok.text in "+-":
                op = self.tok
                self.i += 1
                self.check_sign(op)
                rhs = self.term()
                if op.text == "-":
                    rhs = self.combine(op, lambda v=rhs: self.negate(v))
                values.append(rhs)
            return self.sum_of(values, start)
        finally:
            self.depth -= 1

    def check_sign(self, op: _Token) -> None:
        """Refuse the same sign twice in a row.

        ``a + -b`` reads as intended, but ``a + + b`` is a typo and ``a - -b`` silently
        turns a subtraction into an addition; parentheses say it on purpose: ``a - (-b)``.
        """
        second = self.tok
        if second.kind == "op" and second.text == op.text:
            raise self.error(
                f"two {op.text!r} signs in a row; remove one, or write {op.text}({op.text}...) "
                "with parentheses if you mean it",
                second,
            )

    def combine(self, op: _Token, fn: Callable[[], Value]) -> Value:
        """Run one arithmetic step, reporting overflow or a bad weight at ``op``."""
        try:
            value = fn()
        except (TypeError, ValueError) as exc:
            raise self.error(str(exc), op) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"the arithmetic overflows to {value}; keep numbers finite", op)
        return value

    def negate(self, value: Value) -> Value:
        return -value if isinstance(value, float) else scale(value, -1.0)

    def sum_of(self, values: list[Value], start: _Token) -> Value:
        if all(isinstance(v, float) for v in values):
            total = 0.0
            for v in values:
                total += v  # type: ignore[operator]
            return self.combine(start, lambda: total)
        terms = []
        for v in values:
            terms.extend(_terms_of(v))
        return self.combine(start, lambda: _merge(terms))

    def term(self) -> Value:
        value = self.factor()
        while self.is_op("*"):
            op = self.tok
            self.i += 1
            rhs = self.factor()
            if isinstance(value, Reward) and isinstance(rhs, Reward):
                raise self.error(
                    "cannot multiply two rewards (rewards combine linearly); multiply a "
                    "reward by a number, e.g. 0.1*format",
                    op,
                )
            lhs = value
            if isinstance(lhs, float) and isinstance(rhs, float):
                value = self.combine(op, lambda a=lhs, b=rhs: a * b)
            elif isinstance(lhs, float):
                value = self.combine(op, lambda a=lhs, b=rhs: scale(b, a))
            else:
                value = self.combine(op, lambda a=lhs, b=rhs: scale(a, b))
        return value

    def factor(self) -> Value:
        tok = self.tok
        if tok.kind == "op" and tok.text in "+-":
            self.i += 1
            self.check_sign(tok)
            self.enter(tok)
            try:
                value = self.factor()
            finally:
                self.depth -= 1
            if tok.text == "+":
                return value
            return self.combine(tok, lambda: self.negate(value))
        if tok.kind == "number":
            self.i += 1
            return self.number(tok)
        if tok.kind == "op" and tok.text == "(":
            self.i += 1
            if self.is_op(")"):
                raise self.error("empty parentheses; put a reward or a number inside")
            value = self.expr()
            if not self.is_op(")"):
                raise self.error(
                    f"expected ')' to close the '(' at position {tok.pos}, found "
                    f"{_describe(self.tok)}"
                )
            self.i += 1
            return value
        if tok.kind == "name":
            return self.call()
        raise self.error(f"expected a reward name, a number or '(', found {_describe(tok)}")

    def number(self, tok: _Token) -> float:
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error(f"the number {tok.text} is too large (it overflows to inf)", tok)
        if value == 0.0 and any(c in "123456789" for c in tok.text.lower().split("e")[0]):
            raise self.error(f"the number {tok.text} is too small (it rounds to 0)", tok)
        return value

    def call(self) -> Reward:
        tok = self.tok
        self.i += 1
        if tok.text not in REWARDS:
            close = closest(tok.text, REWARDS)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(f"unknown reward name {tok.text!r}{hint}", tok)
        has_args = self.is_op("(")
        if not has_args and tok.text in self.bare:
            return self.bare[tok.text]
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        key_tokens: dict[str, _Token] = {}
        if has_args:
            opening = self.tok
            self.i += 1
            self.enter(opening)
            while not self.is_op(")"):
                if args or kwargs:
                    if not self.is_op(","):
                        raise self.error(
                            f"expected ',' or ')' to close the '(' of {tok.text} at position "
                            f"{opening.pos}, found {_describe(self.tok)}"
                        )
                    self.i += 1
                if self.tok.kind == "end":
                    raise self.error(
                        f"expected an argument or ')' to close the '(' of {tok.text} at "
                        f"position {opening.pos}, found the end of the spec"
                    )
                key = None
                nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else self.tok
                if self.tok.kind == "name" and nxt.kind == "op" and nxt.text == "=":
                    key_tok = self.tok
                    key = key_tok.text
                    if key in kwargs:
                        raise self.error(f"the argument {key!r} is given twice", key_tok)
                    key_tokens[key] = key_tok
                    self.i += 2
                if self.tok.kind == "string":
                    value: Any = self.tok.text[1:-1]
                    self.i += 1
                elif self.tok.kind == "name" and self.tok.text in TRUTH_VALUES:
                    value = TRUTH_VALUES[self.tok.text]
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
            self.i += 1
            self.depth -= 1
        self.check_arguments(tok, args, kwargs, key_tokens)
        try:
            reward = make_reward(tok.text, *args, **kwargs)
        except (TypeError, ValueError, KeyError, OSError) as exc:
            raise self.error(f"{tok.text}(...) failed: {exc}", tok) from exc
        if not has_args:
            self.bare[tok.text] = reward
        return reward

    def check_arguments(
        self, tok: _Token, args: list[Any], kwargs: dict[str, Any], key_tokens: dict[str, _Token]
    ) -> None:
        """Refuse arguments the factory cannot take, naming the ones it can."""
        sig = _plain_signature(REWARDS[tok.text])
        if sig is None:
            return
        params = sig.parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            for key in kwargs:
                if key not in params:
                    close = closest(key, params)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise self.error(
                        f"{tok.text} has no argument {key!r}{hint}; write {tok.text}{sig}",
                        key_tokens[key],
                    )
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise self.error(f"{tok.text}: {exc}; write {tok.text}{sig}", tok) from None

    def _last_number_text(self) -> str:
        prev = self.tokens[self.i - 1]
        return prev.text if prev.kind == "number" else "."


def parse_reward(spec: str) -> Reward:
    """Build a reward from a spec string such as ``"exact_match + 0.1*format"``.

    Raises:
        RewardSpecError: (a ``ValueError``) with the position of the problem and the known
            reward names.
        RewardTypeError: (a ``TypeError``) ``spec`` is neither a string nor a reward.
    """
    if isinstance(spec, Reward):
        return spec
    if not isinstance(spec, str):
        raise RewardTypeError(
            f"parse_reward takes a string, got {type(spec).__name__} ({spec!r:.80})."
        )
    return _Parser(spec).parse()


__all__ = ["MAX_DEPTH", "RewardSpecError", "parse_reward"]
