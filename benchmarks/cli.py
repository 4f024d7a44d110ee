"""What every benchmark's command line shares: checked flags, one-line errors, result files.

Every benchmark checks all of its flags before any work (a bad seed would otherwise surface
minutes in), with the same messages: the flag, the bad value, the valid range, and the
closest known name for a typo. :func:`run_main` prints a user error in one line and returns
exit status 2.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import textgym
from textgym.errors import ConfigError, UserError, did_you_mean
from textgym.tools.flags import FlagParser

C = TypeVar("C")

#: Seeds go to numpy, Gymnasium, torch and SB3 (whose ``np.random.seed`` takes < 2**32),
#: offset by up to 20_000 for evaluation: this range is valid for all of them.
MAX_SEED = 2**31 - 1


class MissingFileError(UserError, FileNotFoundError):
    """A file the user pointed a benchmark at does not exist."""


class ResultsFileError(UserError, ValueError):
    """A results file given to read is torn, unreadable or not what it should be."""


def check_known(
    name: str, known: Collection[str], what: str, flag: str | None, hint: str | None = None
) -> None:
    """Refuse ``name`` unless it is one of ``known``, naming the closest one.

    Args:
        name: What the user gave.
        known: The valid names.
        what: What a name is (``"algorithm"``), for the message.
        flag: The flag it came from, or ``None`` (a value built through the Python API).
        hint: The message's last sentence (default: every known name, sorted).

    Raises:
        ConfigError: ``name`` is unknown.
    """
    if name in known:
        return
    hint = f"Known: {', '.join(sorted(known))}." if hint is None else hint
    head = f"{flag}: unknown" if flag else "Unknown"
    raise ConfigError(f"{head} {what} {name!r}.{did_you_mean(name, known)} {hint}")


def check_positive(value: Any, flag: str, integer: bool) -> int | float:
    """``value`` as a positive int (``integer``) or a positive finite float.

    An integral float (``3000.0``) passes as an int: JSON writers produce those.

    Raises:
        ConfigError: naming ``flag`` and the valid range.
    """
    kind = "a positive integer" if integer else "a positive finite number"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be {kind}, got {value!r}.")
    if integer:
        if value != int(value):
            raise ConfigError(f"{flag} must be {kind}, got {value!r}.")
        return int(value)
    return float(value)


def check_unique(values: Sequence[Any], flag: str) -> None:
    """Refuse a value given twice (it would be run, or counted, twice)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{flag} lists {value!r} twice; give each once.")
        seen.add(value)


def check_seeds(seeds: Sequence[int], flag: str = "--seeds") -> tuple[int, ...]:
    """``seeds`` if each is in [0, MAX_SEED] and none repeats.

    A repeated seed would count one run twice in the mean and its confidence interval.

    Raises:
        ConfigError: naming ``flag``, the bad seed and the valid range.
    """
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{flag} takes integers in [0, {MAX_SEED}], got {seed!r}.")
    check_unique(seeds, flag)
    return tuple(seeds)


def check_env_ids(env_ids: Sequence[str], flag: str = "--envs") -> tuple[str, ...]:
    """``env_ids`` if every one is registered (with a did-you-mean for a typo).

    Raises:
        ConfigError: an unknown id, naming the closest registered one.
    """
    known = textgym.env_ids()
    for env_id in env_ids:
        check_known(env_id, known, "env id", flag, "`textgym list` shows every id.")
    check_unique(env_ids, flag)
    return tuple(env_ids)


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Refuse an output directory that is an existing file.

    Raises:
        ConfigError: ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {str(out)!r} is a file; give a directory.")


def check_out_file(out: str, flag: str = "--out") -> None:
    """Refuse an output JSON file that is an existing directory.

    Raises:
        ConfigError: ``out`` is a directory.
    """
    if Path(out).is_dir():
        raise ConfigError(f"{flag} {out!r} is a directory; give a .json file.")


def read_json(path: Path, missing: str, torn: str) -> Any:
    """The JSON in ``path``, or a one-line user error.

    Args:
        path: The file to read.
        missing: The message if it does not exist.
        torn: The message if it is torn or not JSON; ``{exc}`` stands for the parser's error.

    Raises:
        MissingFileError: there is no such file.
        ResultsFileError: it is torn (a write cut short) or not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(missing) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(torn.format(exc=exc)) from None


def run_main(
    parser: FlagParser[C],
    execute: Callable[[C], int],
    argv: Sequence[str] | None,
) -> int:
    """Parse ``argv`` into the benchmark's flags and run ``execute`` on them; a user error
    (a bad flag included) prints one line and returns 2.

    Bugs keep their traceback: only a :class:`UserError` (a bad flag value, an output in
    use or holding another configuration, an unwritable directory) is shortened.
    """
    try:
        return execute(parser.parse(argv))
    except UserError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
