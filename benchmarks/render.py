"""What every benchmark renders: Markdown tables and plots, each written atomically.

Plots are drawn on a :class:`matplotlib.figure.Figure` without pyplot, so that importing a
benchmark never chooses a GUI backend nor keeps figures alive in pyplot's registry; the
PNG is rendered in memory and written with :func:`textgym.files.atomic_write`, so a kill
never leaves half a PNG.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from textgym.files import atomic_write

#: A column of :func:`columns_table`: its header and how a row's cell is written.
Column = tuple[str, Callable[[Mapping[str, Any]], str]]


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> str:
    """A Markdown table, without a trailing newline.

    Args:
        header: The column names.
        rows: The cells of each row, already formatted.
        align: One letter per column: ``l`` (left, ``---``) or ``r`` (right, ``---:``).
    """
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def columns_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A table of ``rows``, one cell per column: the first left-aligned, the figures right."""
    header = [name for name, _ in columns]
    cells = [[cell(row) for _, cell in columns] for row in rows]
    return table(header, cells, "l" + "r" * (len(columns) - 1))


def panels(n: int, width: float, height: float) -> tuple[Figure, Sequence[Axes]]:
    """A figure of ``n`` side-by-side panels, each ``width`` x ``height`` inches."""
    fig = Figure(figsize=(width * n, height))
    axes = fig.subplots(1, n, squeeze=False)
    return fig, list(axes[0])


def save_png(fig: Figure, path: Path, dpi: int) -> None:
    """Lay ``fig`` out, render it in memory, then write it atomically to ``path``."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write(path, buffer.getvalue())


def flat_line(ax: Axes, runs_scores: Sequence[float], **style: Any) -> None:
    """A dashed line at the mean score: a result without a learning curve."""
    ax.axhline(float(np.mean(runs_scores)), ls="--", **style)
