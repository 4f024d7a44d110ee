"""What counts as the user's mistake, so the command line can say it in one line.

Every error that a person causes and can fix (a bad flag value, a missing file, an unknown
env id, a malformed reward spec, a directory in use) derives from :class:`UserError` as
well as from the built-in type that fits it (``ValueError``, ``FileNotFoundError``...), so
Python callers catch what they always caught. ``textgym``'s command line prints a
``UserError`` as ``textgym <command>: error: <message>`` and exits with status 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Mixin for errors in what the user gave; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid (the message names the field or flag and its range)."""


class ConfigTypeError(UserError, TypeError):
    """A configuration value has the wrong type (the message names the argument)."""
