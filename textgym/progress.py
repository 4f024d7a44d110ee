"""The progress log of every run: a CSV file, plus TensorBoard when it is installed.

Every learner writes its curve through :class:`Logger`: the LM trainer, the tabular agents,
the SB3 callback, supervised fine-tuning and reward-model training; it lives in textgym
because reward-model training does (and textgym never imports the agents package).

The CSV is in long form (``step,wall_time,key,value``) so that any metric can appear at any
time without rewriting a header; every write is flushed so nothing is lost if a run dies.
A file that cannot be written (full disk, read-only directory) raises
:class:`textgym.files.WriteError` naming it, and the logger's files are closed on every path
out of it, a failing constructor included.
Metric keys are namespaced as in CleanRL: ``charts/episodic_return``, ``losses/policy``,
``eval/success_rate``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgym.files import write_error

#: The learning curve a run appends to, in its run directory.
PROGRESS_NAME = "progress.csv"


class Logger:
    """Append metrics to ``<run_dir>/progress.csv`` (and TensorBoard event files).

    Args:
        run_dir: Directory of the run; created if missing. Reopening a directory appends,
            which is what a resumed run wants.
        tensorboard: ``True`` requires TensorBoard, ``False`` disables it, ``None`` uses it
            when ``torch.utils.tensorboard`` can be imported.
    """

    def __init__(self, run_dir: str | os.PathLike[str], tensorboard: bool | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / PROGRESS_NAME
        self._file: Any = None
        self._tb: Any = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
            self._csv = csv.writer(self._file)
            if new:
                self._csv.writerow(["step", "wall_time", "key", "value"])
                self._file.flush()
        except OSError as exc:
            self.close()
            raise write_error(self.path, exc, "log") from exc
        self._start = time.perf_counter()
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.run_dir))
            except ImportError:
                if tensorboard:
                    self.close()
                    raise ImportError(
                        "tensorboard=True but TensorBoard is not installed; "
                        "`pip install textgym[tensorboard]` or pass tensorboard=None."
                    ) from None
            except BaseException:
                self.close()
                raise

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` at ``step`` (flushed immediately).

        Raises:
            ValueError: the logger is closed.
            WriteError: the disk is full or the file is no longer writable.
        """
        if self._file is None or self._file.closed:
            raise ValueError(f"This Logger of {str(self.path)!r} is closed; open a new one.")
        wall = time.perf_counter() - self._start
        try:
            for key, value in metrics.items():
                self._csv.writerow([int(step), f"{wall:.3f}", key, float(value)])
                if self._tb is not None:
                    self._tb.add_scalar(key, float(value), int(step))
            self._file.flush()
            if self._tb is not None:
                self._tb.flush()
        except OSError as exc:
            raise write_error(self.path, exc, "log") from exc

    def close(self) -> None:
        """Flush and close the files (idempotent; the TensorBoard writer is closed even when
        closing the CSV fails, e.g. on a full disk)."""
        file, self._file = self._file, None
        tb, self._tb = self._tb, None
        try:
            if file is not None and not file.closed:
                file.close()
        finally:
            if tb is not None:
                tb.close()

    def __del__(self) -> None:
        # A safety net for owners that never reach close() (e.g. an SB3 callback whose
        # training raised before _on_training_end): the files do not outlive the logger.
        # Nothing sensible can be done about a failure during garbage collection.
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float, float]]]:
    """Read a ``progress.csv`` (or its run directory) into ``{key: [(step, wall_time, value)]}``."""
    path = Path(path)
    if path.is_dir():
        path = path / PROGRESS_NAME
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            series[row["key"]].append(
                (int(row["step"]), float(row["wall_time"]), float(row["value"]))
            )
    return dict(series)
