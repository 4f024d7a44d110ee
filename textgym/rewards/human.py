"""Human feedback: rate turns in the terminal, log the ratings, train a reward model on them.

The RLHF loop in miniature::

    python -m textgym.rewards.human rate --env textgym/Copy-v0 --log ratings.jsonl
    python -m textgym.rewards.human rate --mode preference --env textgym/Copy-v0 --log ratings.jsonl
    python -m textgym.rewards.human train --log ratings.jsonl --out my_rm
    gym.make("textgym/Copy-v0", reward=RewardModel("my_rm"))   # or reward='reward_model("my_rm")'

The log is append-only JSONL, one rating per line, written with one ``os.write`` to a file
opened with ``O_APPEND`` and fsynced as soon as it is given, so a crash or a kill loses at
most the rating being typed, and two raters can append to one log (each append also holds
an ``flock`` on the log for the few microseconds it takes, so one rater's repair of a torn
tail never cuts the other's line). Nothing stays open between ratings. A restarted session
skips the samples already rated. A last line torn by a kill mid-write is skipped with a
warning when the log is read, by the rater and by ``train-rm`` alike (:func:`read_ratings`),
and cut off before the next append.

Training fits a small sequence-classification model: Bradley-Terry on preferences
(``-log sigmoid(r(chosen) - r(rejected))``) and regression on scores (mapped to ``[0, 1]``),
and saves it with ``save_pretrained`` into a temporary directory that is then renamed into
place, so :class:`~textgym.rewards.models.RewardModel` loads it and a kill never leaves half a
model behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from textgym import hub
from textgym.errors import ConfigError, UserError
from textgym.files import write_error
from textgym.rewards.base import Reward, RewardContext

try:
    import fcntl
except ImportError:  # Windows: no flock; appends still go through one O_APPEND write.
    fcntl = None  # type: ignore[assignment]

SCORE, PREFERENCE = "score", "preference"
SUMMARY = "textgym_reward_model.json"
MAX_SEED = 2**63 - 1  # what torch.manual_seed and numpy both take


class StopRating(Exception):
    """The rater typed ``q`` or closed the input: end the session."""


class RatingsFileError(UserError, ValueError):
    """A ratings log or samples file is missing, unreadable or holds a bad line."""


def _warn(message: str) -> None:
    print(f"textgym: {message}", file=sys.stderr)


def _read_bytes(path: Path, what: str, hint: str) -> bytes:
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


# -- the log ------------------------------------------------------------------------------


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
    _warn(
        f"{action} a torn last line ({len(torn)} bytes) of {path}: a session was killed while "
        "writing it."
    )


class RatingLog:
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

    def close(self) -> None:
        """Nothing to release: the file is open only during each append (kept for callers)."""

    def __enter__(self) -> RatingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        data = _read_bytes(path, "ratings file", "create one with `textgym rate`")
        contents = parse_log(data, path)
        if contents.torn:
            _warn_torn(path, contents.torn, "skipping")
        ratings.extend(contents.ratings)
    return ratings


# -- the terminal rater -------------------------------------------------------------------


class Rater:
    """Shows turns in a terminal and reads scores or preferences, re-prompting on bad input.

    Args:
        log: Where ratings go (a :class:`RatingLog` or a path).
        scale: Inclusive score range.
        input, output: Streams (stdin and stdout by default).
    """

    def __init__(
        self,
        log: RatingLog | str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        lo, hi = float(scale[0]), float(scale[1])
        # Checked before the log is touched: a bad scale leaves no file behind.
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(
                f"The scale (--scale LOW HIGH) must be two finite numbers with LOW < HIGH, "
                f"got {tuple(scale)}."
            )
        self.scale = (lo, hi)
        self.log = log if isinstance(log, RatingLog) else RatingLog(log)
        self.input = input or sys.stdin
        self.output = output or sys.stdout

    def close(self) -> None:
        """Close the log (nothing stays open between ratings; kept for symmetry)."""
        self.log.close()

    def __enter__(self) -> Rater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, text: str) -> None:
        self.output.write(text)
        self.output.flush()

    def _ask(self, prompt: str) -> str:
        self._say(prompt)
        line = self.input.readline()
        if line == "":
            raise StopRating("end of input")
        answer = line.strip().lower()
        if answer in ("q", "quit", "exit"):
            raise StopRating("quit")
        return answer

    def rate_score(self, context: str, text: str, sample_id: str = "") -> Rating | None:
        """Show one turn, read a score, log it. ``None`` if skipped.

        Raises:
            StopRating: the rater quit or the input ended.
        """
        lo, hi = self.scale
        self._say(f"\n--- context ---\n{context}\n--- turn ---\n{text}\n")
        while True:
            answer = self._ask(f"score {lo:g}-{hi:g} (s skip, q quit): ")
            if answer in ("s", "skip"):
                return None
            try:
                score = float(answer)
            except ValueError:
                self._say(f"  {answer!r} is not a number; type a score from {lo:g} to {hi:g}.\n")
                continue
            if not (np.isfinite(score) and lo <= score <= hi):
                self._say(f"  {answer} is outside {lo:g}-{hi:g}; try again.\n")
                continue
            rating = Rating(
                SCORE,
                context,
                sample_id,
                text=text,
                score=score,
                scale=self.scale,
                time=time.time(),
            )
            self.log.append(rating)
            return rating

    def rate_preference(self, context: str, a: str, b: str, sample_id: str = "") -> Rating | None:
        """Show two turns, read which is better (``a``, ``b`` or ``=``), log it."""
        self._say(f"\n--- context ---\n{context}\n--- A ---\n{a}\n--- B ---\n{b}\n")
        while True:
            answer = self._ask("better: a / b / = (tie), s skip, q quit: ")
            if answer in ("s", "skip"):
                return None
            winner = {"a": "a", "1": "a", "b": "b", "2": "b", "=": "tie", "tie": "tie"}.get(answer)
            if winner is None:
                self._say(f"  {answer!r}: type a, b or = (tie).\n")
                continue
            rating = Rating(
                PREFERENCE,
                context,
                sample_id,
                a=a,
                b=b,
                winner=winner,
                scale=self.scale,
                time=time.time(),
            )
            self.log.append(rating)
            return rating


class HumanReward(Reward):
    """A person scores each turn in the terminal as the env runs (``reward=HumanReward(...)``).

    The score is mapped to ``[0, 1]``; a skipped turn scores ``skip_value``. Every rating is
    also logged, so the session doubles as reward-model training data.
    """

    name = "human"

    def __init__(
        self,
        log: str | os.PathLike[str],
        *,
        scale: tuple[float, float] = (1.0, 5.0),
        skip_value: float = 0.5,
        input: IO[str] | None = None,
        output: IO[str] | None = None,
    ) -> None:
        self.rater = Rater(log, scale=scale, input=input, output=output)
        self.skip_value = skip_value

    def __call__(self, ctx: RewardContext) -> float:
        from textgym.rewards.models import conversation_before

        context = conversation_before(ctx)
        rating = self.rater.rate_score(context, ctx.text, sample_id=sample_id(context, ctx.text))
        return self.skip_value if rating is None else rating.target

    def close(self) -> None:
        """Close the rater's log (a no-op today: each rating opens and closes it)."""
        self.rater.close()

    def __enter__(self) -> HumanReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- samples to rate ----------------------------------------------------------------------


def sample_id(*texts: str) -> str:
    """A stable id for a sample, from its texts."""
    return hashlib.sha1("\x1f".join(texts).encode()).hexdigest()[:16]


def samples_from_file(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Samples from JSONL: ``{"context", "text"}`` to score or ``{"context", "a", "b"}`` to compare.

    The whole file is read and checked at once, so a bad file is refused before the first
    sample is shown.

    Raises:
        RatingsFileError: a missing or unreadable file, or a bad line (with its number).
    """
    path = Path(path)
    data = _read_bytes(path, "samples file", 'write one {"context", "text"} object per line')
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RatingsFileError(f"{path} is not UTF-8 text ({exc}).") from exc
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RatingsFileError(f"{path}:{number}: not JSON ({exc}).") from exc
        if (
            not isinstance(record, dict)
            or "context" not in record
            or not ("text" in record or {"a", "b"} <= set(record))
        ):
            got = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise RatingsFileError(
                f'{path}:{number}: a sample needs "context" and "text" (to score) or "a" and '
                f'"b" (to compare); got {got}.'
            )
        samples.append({k: str(v) for k, v in record.items() if k in ("context", "text", "a", "b")})
    return iter(samples)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Refuse a non-integer or out-of-range ``value`` with a :class:`ConfigError`."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and value >= low and (high is None or value <= high):
        return
    bound = f"from {low} to {high}" if high is not None else f"{low} or more"
    raise ConfigError(f"{name} must be an integer {bound}, got {value!r}.")


def samples_from_env(
    env_id: str, n: int, seed: int = 0, noise: float = 0.5
) -> Iterator[dict[str, str]]:
    """First-turn samples from an env: the oracle's turn and a corrupted one per problem.

    Each sample has ``context``, ``a`` and ``b`` (in random order) and ``text`` (one of
    them), so the same stream serves score and preference sessions.
    """
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    _check_int("n (--n)", n, 0)
    _check_int("seed (--seed)", seed, 0, MAX_SEED)
    # Made now, not at the first sample: an unknown id is refused before any log is opened.
    env = gym.make(env_id).unwrapped
    return _env_samples(env, n, seed, noise)


def _env_samples(env: Any, n: int, seed: int, noise: float) -> Iterator[dict[str, str]]:
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(env.action_masks())
    allowed = allowed[allowed != env.chat.eot_id]
    try:
        for i in range(n):
            env.reset(seed=seed + i)
            good = env.task.oracle(env.problem, env.turns)
            good_ids = env.tokenizer.encode(good, add_special_tokens=False) or [
                int(rng.choice(allowed))
            ]
            bad_ids = [int(rng.choice(allowed)) if rng.random() < noise else t for t in good_ids]
            if bad_ids == good_ids:
                bad_ids[int(rng.integers(len(bad_ids)))] = int(rng.choice(allowed))
            bad = env.tokenizer.decode(bad_ids)
            a, b = (good, bad) if rng.random() < 0.5 else (bad, good)
            yield {
                "context": env.problem.prompt,
                "a": a,
                "b": b,
                "text": a if rng.random() < 0.5 else b,
            }
    finally:
        env.close()


def run_session(
    samples: Iterable[dict[str, str]],
    rater: Rater,
    mode: str = SCORE,
    limit: int | None = None,
) -> int:
    """Rate ``samples`` until they run out, ``limit`` ratings are logged, or the rater quits.

    Samples already in the log (by :func:`sample_id`) are skipped, so a killed session
    resumes where it stopped. Returns the number of ratings logged.
    """
    if mode not in (SCORE, PREFERENCE):
        raise ConfigError(f"mode (--mode) must be 'score' or 'preference', got {mode!r}.")
    if limit is not None:
        _check_int("limit (--limit)", limit, 0)
    done = {r.sample_id for r in read_ratings(rater.log.path)} if rater.log.path.exists() else set()
    logged = 0
    try:
        for number, s in enumerate(samples, 1):
            if limit is not None and logged >= limit:
                break
            if mode == SCORE:
                text = s.get("text", s.get("a"))
                sid = sample_id(s["context"], text)
                if sid not in done and rater.rate_score(s["context"], text, sid):
                    logged += 1
            else:
                if "a" not in s or "b" not in s:
                    raise ConfigError(
                        f"Preference mode needs samples with 'a' and 'b'; sample {number} has "
                        f"{sorted(s)}. Use --mode score, or samples with both turns."
                    )
                sid = sample_id(s["context"], s["a"], s["b"])
                if sid not in done and rater.rate_preference(s["context"], s["a"], s["b"], sid):
                    logged += 1
    except StopRating:
        pass
    finally:
        # Also after Ctrl-C or an error: every rating counted here is already on disk.
        rater._say(f"\n{logged} rating(s) logged to {rater.log.path}\n")
    return logged


# -- training a reward model --------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_reward_model` did."""

    path: Path
    n_scores: int
    n_preferences: int
    final_loss: float
    train_accuracy: float


def _heads(hidden: int) -> int:
    """About one attention head per 32 units, and a divisor of ``hidden`` as BERT requires
    (``hidden=100`` would otherwise ask for 3 heads and fail)."""
    heads = max(1, hidden // 32)
    while hidden % heads:
        heads -= 1
    return heads


def check_training_config(
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    hidden: int = 64,
    layers: int = 2,
    max_length: int = 128,
) -> None:
    """Refuse values that cannot train, naming the argument, its flag and the valid range.

    Raises:
        ConfigError: e.g. ``epochs=0`` (nothing would be trained, silently), a NaN or
            negative ``lr``, ``batch_size=0``, a negative ``seed``.
    """
    _check_int("epochs (--epochs)", epochs, 1)
    _check_int("batch_size (--batch-size)", batch_size, 1)
    _check_int("seed (--seed)", seed, 0, MAX_SEED)
    _check_int("hidden", hidden, 1)
    _check_int("layers", layers, 1)
    _check_int("max_length", max_length, 2)
    number = isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool)
    if not (number and math.isfinite(lr) and 0.0 < lr <= 1.0):
        raise ConfigError(f"lr (--lr) must be a number in (0, 1], e.g. 3e-3; got {lr!r}.")


def check_output_dir(out: str | os.PathLike[str]) -> Path:
    """``out`` if a reward model may be written there: new, empty, or a model textgym wrote.

    A directory holding anything else is refused rather than replaced: ``--out .`` must
    not swap away the user's files.

    Raises:
        ConfigError: ``out`` is a file, or a directory of other files.
        WriteError: its parent cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a directory for the reward model.")
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).is_file():
        raise ConfigError(
            f"--out {str(out)!r} holds other files and is not a reward model textgym wrote; "
            "give a new or empty directory."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    return out


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def _staging_dir(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out``; on success it is renamed to ``out``.

    The rename is the moment the model appears, whole: a kill before it leaves ``out`` as
    it was (and a hidden ``.<name>.*.tmp`` directory, removed on the way out when Python
    still can). An existing model in ``out`` is moved aside, replaced, then deleted.
    """
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    try:
        yield tmp
        _fsync_tree(tmp)
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.replace(out, old)  # rename(2) onto the empty placeholder
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # replaces a missing or empty directory in one step
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_model(
    base: str | None, tokenizer: Any, hidden: int, layers: int, max_length: int
) -> Any:
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    if base is not None:
        model = hub.from_pretrained(
            AutoModelForSequenceClassification, base, "base model", num_labels=1
        )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model
    # A small BERT encoder from scratch: enough for a few hundred ratings, trains in seconds.
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=_heads(hidden),
        intermediate_size=2 * hidden,
        max_position_embeddings=max_length,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def train_reward_model(
    ratings: Sequence[Rating] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    base: str | None = None,
    tokenizer: Any = None,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    max_length: int = 128,
    seed: int = 0,
    log: Any = None,
) -> TrainResult:
    """Fit a reward model to ratings and save it to ``out`` (``RewardModel(out)`` loads it).

    Args:
        ratings: :class:`Rating` objects, or one or more log paths.
        out: Output directory (model, tokenizer, and ``textgym_reward_model.json``).
        base: A sequence-classification-capable model to fine-tune (path or name); ``None``
            trains a small BERT from scratch on ``tokenizer``.
        tokenizer: Tokenizer object or path; default: ``base``'s, else textgym's default.
        epochs, lr, batch_size: Optimisation (AdamW, full passes over the ratings).
        hidden, layers, max_length: Size of the from-scratch model.
        seed: Seeds torch and the shuffling.
        log: Optional ``print``-like callable for per-epoch losses.

    The configuration, the ratings and ``out`` are all checked before anything is built,
    and the model is written to a temporary directory renamed to ``out`` at the end.

    Raises:
        ConfigError: an out-of-range setting or an unusable ``out`` (see
            :func:`check_training_config` and :func:`check_output_dir`).
        RatingsFileError: a missing or bad log, or no ratings at all.
        WriteError: ``out`` cannot be written.
    """
    check_training_config(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        hidden=hidden,
        layers=layers,
        max_length=max_length,
    )
    source = ""
    if isinstance(ratings, (str, os.PathLike)) or (
        ratings and isinstance(next(iter(ratings)), (str, os.PathLike))
    ):
        paths = [ratings] if isinstance(ratings, (str, os.PathLike)) else list(ratings)
        source = " in " + ", ".join(str(p) for p in paths)  # type: ignore[union-attr]
        ratings = read_ratings(paths)  # type: ignore[arg-type]
    ratings = list(ratings)  # type: ignore[arg-type]
    scores = [r for r in ratings if r.kind == SCORE]
    prefs = [r for r in ratings if r.kind == PREFERENCE]
    if not ratings:
        raise RatingsFileError(
            f"No ratings to train on{source}: rate some turns first "
            "(textgym rate --env ... --log ...)."
        )
    out = check_output_dir(out)

    import torch

    from textgym.rewards.models import reward_model_inputs
    from textgym.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if tokenizer is None:
        tokenizer = load_tokenizer(base) if base is not None else load_tokenizer(None)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _build_model(base, tokenizer, hidden, layers, max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def rewards(contexts: list[str], texts: list[str]) -> torch.Tensor:
        inputs = reward_model_inputs(tokenizer, contexts, texts, max_length)
        return model(**inputs).logits[:, 0]

    # Each example is one score or one preference; minibatches mix both kinds.
    examples: list[Rating] = scores + prefs
    loss_value = float("nan")
    for epoch in range(epochs):
        order = rng.permutation(len(examples))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            chunk = [examples[i] for i in order[start : start + batch_size]]
            loss = torch.zeros(())
            s = [r for r in chunk if r.kind == SCORE]
            p = [r for r in chunk if r.kind == PREFERENCE]
            if s:
                pred = rewards([r.context for r in s], [r.text for r in s])  # type: ignore[misc]
                target = torch.tensor([r.target for r in s], dtype=pred.dtype)
                loss = loss + torch.nn.functional.mse_loss(pred, target, reduction="sum")
            if p:
                both = rewards([r.context for r in p] * 2, [r.a for r in p] + [r.b for r in p])  # type: ignore[misc]
                margin = both[: len(p)] - both[len(p) :]
                pa = torch.tensor([r.target for r in p], dtype=margin.dtype)
                # Bradley-Terry: P(a > b) = sigmoid(r(a) - r(b)); a tie pulls the margin to 0.
                bt = -(
                    pa * torch.nn.functional.logsigmoid(margin)
                    + (1 - pa) * torch.nn.functional.logsigmoid(-margin)
                )
                loss = loss + bt.sum()
            loss = loss / len(chunk)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
            count += len(chunk)
        loss_value = total / max(count, 1)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  loss {loss_value:.4f}")
    model.eval()
    accuracy = _preference_accuracy(model, tokenizer, prefs, max_length) if prefs else float("nan")
    summary = {
        "trained_by": "textgym.rewards.human.train_reward_model",
        "n_scores": len(scores),
        "n_preferences": len(prefs),
        "epochs": epochs,
        "final_loss": loss_value,
        "train_preference_accuracy": accuracy,
        "seed": seed,
    }
    with _staging_dir(out) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # Written last: its presence marks a whole model (check_output_dir relies on it).
        (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(out, len(scores), len(prefs), loss_value, accuracy)


def _preference_accuracy(
    model: Any, tokenizer: Any, prefs: Sequence[Rating], max_length: int
) -> float:
    import torch

    from textgym.rewards.models import reward_model_inputs

    decided = [r for r in prefs if r.winner != "tie"]
    if not decided:
        return float("nan")
    with torch.inference_mode():
        inputs = reward_model_inputs(
            tokenizer,
            [r.context for r in decided] * 2,
            [r.a for r in decided] + [r.b for r in decided],  # type: ignore[operator]
            max_length,
        )
        r = model(**inputs).logits[:, 0]
    margin = (r[: len(decided)] - r[len(decided) :]).numpy()
    want = np.array([1.0 if p.winner == "a" else -1.0 for p in decided])
    return float(np.mean(np.sign(margin) == want))


# -- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str = "textgym") -> int:
    """``rate`` turns in the terminal or ``train-rm`` (alias ``train``) a reward model from
    the log. ``prog`` names the command in help and errors (``textgym`` for the console
    script, ``python -m textgym.rewards.human`` when run as a module)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rate agent turns in the terminal and train a reward model on the ratings.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rate = sub.add_parser("rate", help="show turns and record scores or preferences")
    source = rate.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", help='JSONL of {"context","text"} or {"context","a","b"}')
    source.add_argument("--env", help="generate samples from an env id, e.g. textgym/Copy-v0")
    rate.add_argument("--log", required=True, help="ratings file (JSONL, appended)")
    rate.add_argument("--mode", choices=[SCORE, PREFERENCE], default=SCORE)
    rate.add_argument("--scale", type=float, nargs=2, default=(1.0, 5.0), metavar=("LOW", "HIGH"))
    rate.add_argument("--n", type=int, default=50, help="samples to draw from --env")
    rate.add_argument("--limit", type=int, default=None, help="stop after this many ratings")
    rate.add_argument("--seed", type=int, default=0)
    train = sub.add_parser(
        "train-rm", aliases=["train"], help="train a reward model on one or more rating logs"
    )
    train.add_argument("--log", required=True, nargs="+", help="ratings file(s)")
    train.add_argument("--out", required=True, help="output directory (save_pretrained)")
    train.add_argument(
        "--base", default=None, help="model to fine-tune (default: small BERT from scratch)"
    )
    train.add_argument(
        "--tokenizer", default=None, help="tokenizer path or name (default: textgym's)"
    )
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(None if argv is None else list(argv))

    if args.command == "rate":
        _check_int("--n", args.n, 0)
        _check_int("--seed", args.seed, 0, MAX_SEED)
        if args.limit is not None:
            _check_int("--limit", args.limit, 0)
        # The samples come first: a bad samples file or env id is refused before the log
        # is created.
        samples = (
            samples_from_file(args.samples)
            if args.samples
            else samples_from_env(args.env, args.n, args.seed)
        )
        rater = Rater(args.log, scale=tuple(args.scale))
        with rater:
            run_session(samples, rater, mode=args.mode, limit=args.limit)
        return 0
    result = train_reward_model(
        args.log,
        args.out,
        base=args.base,
        tokenizer=args.tokenizer,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        log=print,
    )
    # A log of scores only has no preference pairs to be accurate on (the result is NaN).
    accuracy = "n/a" if math.isnan(result.train_accuracy) else f"{result.train_accuracy:.2f}"
    print(
        f"saved {result.path} ({result.n_scores} scores, {result.n_preferences} preferences; "
        f"final loss {result.final_loss:.4f}, train preference accuracy {accuracy}). "
        f'Use it with RewardModel("{result.path}") or reward=\'reward_model("{result.path}")\'.'
    )
    return 0


if __name__ == "__main__":
    from textgym.cli import run_command

    PROG = "python -m textgym.rewards.human"
    sys.exit(run_command(PROG, lambda: main(prog=PROG), sys.argv[1:]))
