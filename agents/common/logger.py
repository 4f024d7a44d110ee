"""One logger for every agent: a CSV file, plus TensorBoard when it is installed.

The CSV is in long form (``step,wall_time,key,value``) so that any metric can appear at any
time without rewriting a header; every write is flushed so nothing is lost if a run dies.
Metric keys are namespaced as in CleanRL: ``charts/episodic_return``, ``losses/policy``,
``eval/success_rate``.
"""

from __future__ import annotations

import csv
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "progress.csv"
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "wall_time", "key", "value"])
            self._file.flush()
        self._start = time.perf_counter()
        self._tb: Any = None
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(self.run_dir))
            except ImportError:
                if tensorboard:
                    raise ImportError(
                        "tensorboard=True but TensorBoard is not installed; "
                        "`pip install textgym[tensorboard]` or pass tensorboard=None."
                    ) from None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` at ``step`` (flushed immediately)."""
        wall = time.perf_counter() - self._start
        for key, value in metrics.items():
            self._csv.writerow([int(step), f"{wall:.3f}", key, float(value)])
            if self._tb is not None:
                self._tb.add_scalar(key, float(value), int(step))
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close the files."""
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float, float]]]:
    """Read a ``progress.csv`` (or its run directory) into ``{key: [(step, wall_time, value)]}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "progress.csv"
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            series[row["key"]].append(
                (int(row["step"]), float(row["wall_time"]), float(row["value"]))
            )
    return dict(series)
