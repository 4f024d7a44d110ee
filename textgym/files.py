"""Writing what a user must not lose: atomic files and locked directories.

Everything textgym writes that a person would miss after a crash (checkpoints, final
models, reports, benchmark results, ratings) goes through this module:

* :func:`atomic_write` writes a temporary file in the same directory, flushes and fsyncs it,
  then moves it into place with ``os.replace``: a reader sees the old file or the new one,
  never half of one, even after ``kill -9``. A full or read-only disk raises
  :class:`WriteError` naming the file and what to do, and the temporary file is removed.
* :func:`atomic_write_dir` does the same for a whole directory (a saved model): written
  into a temporary sibling, fsynced, then renamed into place.
* :func:`clean_temporary_files` removes the temporaries a killed write left behind (files
  and directories alike).
* :class:`DirectoryLock` makes a directory exclusive to one process (an advisory
  ``flock`` on ``<dir>/.lock``, released by the kernel when the process dies, so a killed
  run never leaves a stale lock behind).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from textgym.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; DirectoryLock degrades to a no-op there.
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class WriteError(UserError, OSError):
    """A file could not be written (full disk, read-only directory, missing permission)."""

    def __str__(self) -> str:
        # The message alone: OSError's own str() would add "[Errno N]" and the file name.
        return str(self.args[0]) if self.args else super().__str__()


class DirectoryInUseError(UserError, RuntimeError):
    """Another process holds the lock of a run or output directory."""


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def write_error(
    path: str | os.PathLike[str], exc: OSError, what: str = "file", hint: str = ""
) -> WriteError:
    """A :class:`WriteError` saying why ``path`` could not be written and what to do.

    Args:
        path: The file or directory that could not be written.
        exc: The ``OSError`` the write raised (a ``WriteError`` is returned as it is).
        what: How to name ``path`` to the user (``"ratings log"``, ``"checkpoint"``).
        hint: What to do afterwards (e.g. "then resume with --resume"), if anything.
    """
    if isinstance(exc, WriteError):
        return exc
    path = Path(path)
    if exc.errno == errno.ENOSPC:
        why = "the disk is full; free some space or write to another directory"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "the directory is not writable; choose a directory you can write to"
    else:
        why = exc.strerror or str(exc)
        # mkdir under a regular file says "File exists" or "Not a directory": name the file.
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            why = f"{str(blocker)!r} is a file, not a directory; choose another path"
    error = WriteError(
        f"Could not write the {what} {str(path)!r}: {why}{'; ' + hint if hint else ''}."
    )
    error.errno, error.filename = exc.errno, str(path)
    return error


def _umask() -> int:
    """The process's umask: from /proc on Linux (reading it by setting it would race with
    threads creating files), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Args:
        path: The file to (re)place; its directory is created if missing.
        data: Bytes, or text written as UTF-8.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: the directory cannot be written (full disk, read-only, permissions).
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
        # mkstemp makes the file private (0600); a results file gets the mode any new file
        # would (0666 less the umask), as open() would have given it.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_dir(
    path: str | os.PathLike[str],
    write: Callable[[Path], object],
    what: str = "directory",
    hint: str = "",
) -> Path:
    """Publish a directory all or nothing: ``write(tmp)`` fills a temporary sibling of
    ``path``, which is fsynced and renamed to ``path`` (an older ``path`` is replaced).

    A kill before the rename leaves ``path`` as it was, plus a hidden ``.<name>.*.tmp``
    directory that :func:`clean_temporary_files` removes; any exception out of ``write``
    removes it at once.

    Args:
        path: The directory to (re)place, e.g. ``<run_dir>/final_model``.
        write: Writes the directory's contents into the path it is given (e.g.
            ``model.save_pretrained``).
        what: How to name ``path`` to the user (``"final model"``).
        hint: What to do after a failed write (e.g. "then resume with --resume").

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: the parent directory cannot be written (full disk, read-only).
    """
    path = Path(path)
    tmp: Path | None = None
    old: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent))
        write(tmp)
        _fsync_tree(tmp)
        if path.exists():
            # rename(2) cannot replace a non-empty directory: the old one is moved aside.
            old = Path(
                tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent)
            )
            os.replace(path, old)
        os.replace(tmp, path)
        tmp = None
        _fsync(path.parent)
    except OSError as exc:
        raise write_error(path, exc, what, hint) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and the directories themselves, so that a rename of
    ``root`` never publishes files whose data is not on disk yet."""
    for path in sorted(root.rglob("*"), reverse=True):
        _fsync(path)
    _fsync(root)


def clean_temporary_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove what killed :func:`atomic_write` and :func:`atomic_write_dir` calls left in
    ``directory`` (hidden ``.*.tmp`` files and directories).

    Only call this while holding the directory's :class:`DirectoryLock`: another writer's
    temporary file is in use until its ``os.replace``.

    Returns:
        The files and directories removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for tmp in directory.glob(".*.tmp"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.is_file() or tmp.is_symlink():
            tmp.unlink(missing_ok=True)
        else:
            continue
        removed.append(tmp)
    return removed


class DirectoryLock:
    """Hold ``<directory>/.lock`` exclusively for as long as the context is open.

    Two processes writing one run directory would interleave their logs and overwrite each
    other's checkpoints; the second one is refused at once instead. The lock is an advisory
    ``flock``, so the kernel drops it when the holder exits, however it exits.

    Args:
        directory: The directory to lock; created if missing.
        what: How the error names the directory to the user (e.g. ``"run directory"``).
        hint: The way out the error suggests.

    Raises:
        DirectoryInUseError: another process holds the lock (on ``__enter__``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        what: str = "directory",
        hint: str = "wait for that process to finish, or choose another directory",
    ) -> None:
        self.directory = Path(directory)
        self.what = what
        self.hint = hint
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock (see the class docstring); a second acquire is a no-op."""
        if self._fd is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.directory / LOCK_NAME, exc, "lock file") from exc
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise DirectoryInUseError(
                    f"The {self.what} {str(self.directory)!r} is in use by another process "
                    f"(pid {holder}); {self.hint}."
                ) from None
            except OSError:
                os.close(fd)
                raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            # Closing the descriptor drops the flock: a full disk must not leave this
            # process holding a lock it never recorded (a retry would find it "in use").
            os.close(fd)
            raise write_error(self.directory / LOCK_NAME, exc, "lock file") from exc
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the lock file stays: removing it would race a new holder)."""
        if self._fd is None:
            return
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        # At interpreter exit the modules may already be torn down (``os`` and ``sys`` are
        # None: hence the default argument), and the OS drops the flock itself.
        if not _finalizing():
            self.release()
