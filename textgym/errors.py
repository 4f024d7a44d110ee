"""What counts as the user's mistake, so the command line can say it in one line.

Every error that a person causes and can fix (a bad flag value, a missing file, an unknown
env id, a malformed reward spec, a directory in use) derives from :class:`UserError` as
well as from the built-in type that fits it (``ValueError``, ``FileNotFoundError``...), so
Python callers catch what they always caught. ``textgym``'s command line prints a
``UserError`` as ``textgym <command>: error: <message>`` and exits with status 2; any
other exception is a bug and keeps its traceback.

:func:`did_you_mean` is the one way a message suggests the name the user probably meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Mixin for errors in what the user gave; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid (the message names the field or flag and its range)."""


class ConfigTypeError(UserError, TypeError):
    """A configuration value has the wrong type (the message names the argument)."""


def closest(name: str, known: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The (at most ``n``) names of ``known`` most like ``name``, best first.

    Args:
        name: What the user typed.
        known: The valid names.
        n: How many to return at most.
        cutoff: How alike a name must be (``difflib``'s ratio, 0 to 1) to count.
    """
    return difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the name of ``known`` closest to ``name``, or ``""``.

    Written to follow a sentence: ``f"Unknown task {name!r}.{did_you_mean(name, known)}"``.
    """
    close = closest(name, known)
    return f" Did you mean {close[0]!r}?" if close else ""
