"""Judging an answer against a gold one: math by ``math-verify``, else exact or numeric.

Hugging Face's ``math-verify`` (the ``data`` extra: ``pip install 'textgym[data]'``) parses
both answers to SymPy and compares them numerically and symbolically, so ``1/2``, ``0.5``
and ``\\frac{1}{2}`` agree, as do ``x^2+2x+1`` and ``(x+1)^2``. Text that is not math
(``Paris``) would parse as a product of symbols there, so each judge says what it compares:

* ``"math"``: math-verify (answers equal as text always agree);
* ``"numeric"``: both parse as numbers (commas dropped) and differ by at most ``1e-6``;
* ``"exact"``: equal up to case, spacing and a final full stop;
* ``"auto"``: ``"math"`` when the gold answer looks like math (digits or LaTeX, no words),
  else ``"exact"``.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any, Literal

from textgym.errors import ConfigError, did_you_mean

Judge = Literal["auto", "math", "exact", "numeric"]
JUDGES: tuple[str, ...] = ("auto", "math", "exact", "numeric")
#: The install hint every missing optional dependency of the external-data tasks gives.
EXTRA = "pip install 'textgym[data]'"
#: Seconds math-verify may spend parsing or comparing one answer (main thread only).
TIMEOUT = 5
NUMERIC_TOL = 1e-6

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{2,}")
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_MATH_DELIMITERS = ("$", "\\(", "\\[", "\\boxed")


class MissingExtraError(ConfigError, ModuleNotFoundError):
    """An optional dependency of the ``data`` extra is not installed."""


def require(module: str, what: str) -> Any:
    """Import the optional ``module`` (a package of the ``data`` extra) or say how to get it.

    Raises:
        MissingExtraError: the package is not installed; the message names the extra.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # something the package itself needs: not ours to explain
        raise MissingExtraError(
            f"{what} needs the {module.split('.')[0]!r} package, which is not installed; "
            f"install textgym's data extra: {EXTRA}."
        ) from exc


def check_judge(judge: Any) -> Judge:
    """Validate a ``judge`` argument, with the accepted ones in the message."""
    if not isinstance(judge, str) or judge not in JUDGES:
        hint = did_you_mean(judge, JUDGES) if isinstance(judge, str) else ""
        raise ConfigError(f"judge must be one of {list(JUDGES)}, got {judge!r}.{hint}")
    return judge  # type: ignore[return-value]


def looks_like_math(text: str) -> bool:
    """Whether ``text`` reads as a math answer: a digit or a LaTeX command, and no word of
    two or more letters outside LaTeX commands (``x^2+1`` yes, ``Paris`` and ``3 cats`` no)."""
    bare = _LATEX_COMMAND.sub(" ", text)
    has_math = bool(_DIGIT.search(text)) or bare != text
    return has_math and not _WORD.search(bare)


def resolve_judge(judge: Judge, gold: str) -> Judge:
    """The judge that ``"auto"`` stands for on ``gold`` (other judges stand for themselves)."""
    if judge != "auto":
        return judge
    return "math" if looks_like_math(gold) else "exact"


def normalise(text: str) -> str:
    """``text`` for an exact comparison: lower case, single spaces, no final full stop."""
    return " ".join(text.split()).casefold().removesuffix(".").rstrip()


def as_number(text: str) -> float | None:
    """``text`` as a number (``1,000`` and ``+3.5`` included), or ``None``."""
    bare = text.strip().replace(",", "").removesuffix(".")
    return float(bare) if _NUMBER.fullmatch(bare) else None


def _timeout() -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may set; elsewhere
    # (a thread pool in a trainer) it must run without one.
    return TIMEOUT if threading.current_thread() is threading.main_thread() else None


def _math_text(text: str) -> str:
    """``text`` as math-verify's LaTeX extraction reads it: in ``$...$`` unless delimited."""
    stripped = text.strip()
    if any(d in stripped for d in _MATH_DELIMITERS):
        return stripped
    return f"${stripped}$"


@functools.lru_cache(maxsize=4096)
def _parsed(text: str, timeout: int | None) -> tuple[Any, ...]:
    # Cached: the gold answer of a problem is parsed at every one of its episodes.
    math_verify = require("math_verify", "Judging math answers")
    return tuple(math_verify.parse(_math_text(text), parsing_timeout=timeout))


def math_equal(gold: str, answer: str) -> bool:
    """Whether ``answer`` equals ``gold`` as math (``1/2``, ``0.5``, ``\\frac{1}{2}``).

    Raises:
        MissingExtraError: math-verify is not installed.
    """
    if normalise(gold) == normalise(answer):
        return True
    math_verify = require("math_verify", "Judging math answers")
    timeout = _timeout()
    parsed_gold, parsed_answer = _parsed(gold, timeout), _parsed(answer, timeout)
    if not parsed_gold or not parsed_answer:
        return False
    return bool(math_verify.verify(list(parsed_gold), list(parsed_answer), timeout_seconds=timeout))


def answers_match(gold: str, answer: str, judge: Judge = "auto") -> bool:
    """Whether ``answer`` is the ``gold`` answer under ``judge`` (see the module docstring)."""
    judge = resolve_judge(check_judge(judge), gold)
    if judge == "math":
        return math_equal(gold, answer)
    if judge == "numeric":
        a, b = as_number(gold), as_number(answer)
        if a is None or b is None:
            return normalise(gold) == normalise(answer)
        return abs(a - b) <= NUMERIC_TOL
    return normalise(gold) == normalise(answer)


__all__ = [
    "EXTRA",
    "JUDGES",
    "Judge",
    "MissingExtraError",
    "answers_match",
    "as_number",
    "check_judge",
    "looks_like_math",
    "math_equal",
    "normalise",
    "require",
    "resolve_judge",
]
