"""The ratings log: append-only JSONL, one :class:`Rating` per line, durable per append.

Each rating is one line written with one ``os.write`` to a file opened with ``O_APPEND`` and
fsynced as soon as it is given, so a crash or a kill loses at most the rating being typed,
and two raters can append to one log (each append also holds an ``flock`` on the log for
the few microseconds it takes, so one rater's repair of a torn tail never cuts the other's
line). Nothing stays open between ratings. A last line torn by a kill mid-write is skipped
with a warning when the log is read, by the rater and by ``train-rm`` alike
(:func:`read_ratings`, through the one parser :func:`parse_log`), and cut off before the next
append.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from textgym.errors import UserError
from textgym.files import write_error

try:
    import fcntl
except ImportError:  # Windows: no flock; appends still go through one O_APPEND write.
    fcntl = None  # type: ignore[assignment]

SCORE, PREFERENCE = "score", "preference"
_Self = TypeVar("_Self", bound="Closing")


class Closing:
    """``with obj:`` calls ``obj.close()`` on the way out, however the block ends.

    The log, the rater and :class:`~textgym.feedback.rater.HumanReward` hold nothing open
    between ratings today; they are context managers so that callers need not change if
    one ever does.
    """

    def close(self) -> None:
        """Release what the object holds (nothing by default)."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RatingsFileError(UserError, ValueError):
    """A ratings log or samples file is missing, unreadable or holds a bad line."""


def read_bytes(path: Path, what: str, hint: str) -> bytes:
    """The file's bytes, or a :class:`RatingsFileError` saying what is wrong and ``hint``."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RatingsFileError(f"No {what} at {str(path)!r}; {hint}.") from None
    except IsADirectoryError:
        raise RatingsFileError(
            f"{str(path)!r} is a directory, not a {what}; pass the file itself."
        ) from None
    except OSError as exc:
        raise RatingsFileError(f"Could not read the {what} {str(path)!r}: {exc.strerror}.") from exc


@dataclass(frozen=True)
class Rating:
    """One human judgement, as stored in the log.

    Attributes:
        kind: ``"score"`` (``text`` rated ``score`` on ``scale``) or ``"preference"``
            (``a`` versus ``b``; ``winner`` is ``"a"``, ``"b"`` or ``"tie"``).
        context: What the agent was answering (the conversation before the turn).
        sample_id: Identifies the rated sample, so a resumed session skips it.
    """

    kind: str
    context: str
    sample_id: str = ""
    text: str | None = None
    score: float | None = None
    scale: tuple[float, float] = (1.0, 5.0)
    a: str | None = None
    b: str | None = None
    winner: str | None = None
    time: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"scale must be finite (low, high) with low < high, got {self.scale}.")
        if self.kind == SCORE:
            if self.text is None or self.score is None:
                raise ValueError("A score rating needs text and score.")
            lo, hi = self.scale
            if not lo <= self.score <= hi:
                raise ValueError(f"Score {self.score} is outside the scale [{lo}, {hi}].")
        elif self.kind == PREFERENCE:
            if self.a is None or self.b is None or self.winner not in ("a", "b", "tie"):
                raise ValueError("A preference rating needs a, b and winner in {'a', 'b', 'tie'}.")
        else:
            raise ValueError(
                f"Unknown rating kind {self.kind!r}; expected 'score' or 'preference'."
            )

    @property
    def target(self) -> float:
        """A score mapped to ``[0, 1]``; for a preference, P(a is better): 1, 0 or 0.5."""
        if self.kind == SCORE:
            lo, hi = self.scale
            return (float(self.score) - lo) / (hi - lo)  # type: ignore[arg-type]
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[self.winner]  # type: ignore[index]

    def to_json(self) -> str:
        """One log line (without the newline)."""
        d = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        d["scale"] = list(self.scale)
        return json.dumps(d, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rating:
        """Parse one log record."""
        d = dict(d)
        if "scale" in d:
            d["scale"] = tuple(float(x) for x in d["scale"])
        return cls(**d)


@dataclass(frozen=True)
class LogContents:
    """A ratings log as read by :func:`parse_log`.

    Attributes:
        ratings: Every complete record, in order.
        end: Bytes up to the end of the last complete record (where the next one goes).
        torn: An unfinished last line (a session killed mid-write), ``b""`` if none.
        missing_newline: The last record is whole but its newline was never written.
    """

    ratings: list[Rating]
    end: int
    torn: bytes = b""
    missing_newline: bool = False


def _parse_record(raw: bytes) -> Rating:
    record = json.loads(raw.decode("utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    return Rating.from_dict(record)


def parse_log(data: bytes, path: str | os.PathLike[str] = "<log>") -> LogContents:
    """Split a log's bytes into its ratings and a torn tail: the one reader of the log.

    Works on bytes, so a line cut in the middle of a multi-byte character (a non-ASCII
    rating killed mid-write) is a torn line like any other, not a decoding error of the
    whole file. The rater (before appending) and ``train-rm`` (before training) both read
    through here.

    Raises:
        RatingsFileError: a complete line that is not a rating, with its file and number.
    """
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    ratings = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            ratings.append(_parse_record(raw))
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
            shown = raw[:80].decode("utf-8", "replace")
            raise RatingsFileError(
                f"{path}:{number}: not a rating record ({exc}): {shown!r}; fix or delete that line."
            ) from exc
    end = len(data) - len(tail)
    if not tail.strip():
        return LogContents(ratings, end)
    try:
        ratings.append(_parse_record(tail))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError):
        return LogContents(ratings, end, torn=tail)
    return LogContents(ratings, len(data), missing_newline=True)


def _warn_torn(path: Path, torn: bytes, action: str) -> None:
    print(
        f"textgym: {action} a torn last line ({len(torn)} bytes) of {path}: a session was "
        "killed while writing it.",
        file=sys.stderr,
    )


class RatingLog(Closing):
    """An append-only JSONL file of :class:`Rating`; every append is durable when it returns.

    Each rating is one line written by a single ``os.write`` to the file opened with
    ``O_APPEND``, then fsynced; the file is opened for that append only and closed again,
    so nothing is left open on any path (an exception, Ctrl-C, a quit). Several raters may
    append to one log: each append holds an ``flock`` on the log while it checks the tail
    and writes, so a torn line a killed session left behind is cut (with a warning) before
    the next rating, and never while another rater's line is being written.

    Raises:
        RatingsFileError: ``path`` is a directory.
        WriteError: the log cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise RatingsFileError(
                f"The ratings log {str(self.path)!r} is a directory; pass a file such as "
                f"{str(self.path / 'ratings.jsonl')!r}."
            )
        with self._locked() as fd:  # fail now, not after the first rating, if unwritable
            self._repair(fd)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc, "ratings log") from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # held for one append: microseconds
            yield fd
        finally:
            os.close(fd)  # closing drops the flock too

    def _repair(self, fd: int) -> None:
        """Cut a torn last line (or end a whole record's missing newline) under the lock."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        contents = parse_log(os.pread(fd, size, 0), self.path)
        if contents.missing_newline:
            os.write(fd, b"\n")
        elif contents.torn:
            _warn_torn(self.path, contents.torn, "cutting")
            os.ftruncate(fd, contents.end)
        os.fsync(fd)

    def append(self, rating: Rating) -> None:
        """Write one rating durably: it survives a kill as soon as this returns.

        Raises:
            WriteError: the disk is full or the log became unwritable (the partial line,
                if any, is removed again).
        """
        line = (rating.to_json() + "\n").encode("utf-8")
        with self._locked() as fd:
            self._repair(fd)
            before = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                while written < len(line):  # a short write (nearly full disk): finish the line
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, before)  # no half line for the next reader to trip on
                raise write_error(self.path, exc, "ratings log") from exc


def read_ratings(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Rating]:
    """Replay one or more logs, in order, through :func:`parse_log`.

    A torn last line is skipped with a warning on stderr, exactly as the rater skips it.

    Raises:
        RatingsFileError: a missing or unreadable log, or a bad line (file and number).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    ratings: list[Rating] = []
    for path in map(Path, paths):
        data = read_bytes(path, "ratings file", "create one with `textgym rate`")
        contents = parse_log(data, path)
        if contents.torn:
            _warn_torn(path, contents.torn, "skipping")
        ratings.extend(contents.ratings)
    return ratings
