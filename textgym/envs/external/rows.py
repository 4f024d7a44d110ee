"""Rows of a data set: read from JSONL, JSON, CSV or Parquet, or taken as given.

``data=`` is a file path, a list of dicts, a ``datasets.Dataset``, or several of those by
split (a ``datasets.DatasetDict``, or a dict ``{"train": ..., "test": ...}``). Files are read
with ``datasets``' own JSON, CSV and Parquet readers, which parse data and never run code (no
pickle, no loading scripts). Every row becomes a plain dict.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.errors import ConfigError, UserError, did_you_mean
from textgym.rewards.math_verify import require
from textgym.tasks.checks import ConfigTypeError, describe

#: File suffixes and the ``datasets`` reader of each.
READERS = {
    ".jsonl": "from_json",
    ".json": "from_json",
    ".csv": "from_csv",
    ".parquet": "from_parquet",
    ".pq": "from_parquet",
}

Rows = list[dict[str, Any]]


class DataFileError(UserError, FileNotFoundError):
    """A data file that does not exist."""


def _is_path(data: Any) -> bool:
    return isinstance(data, (str, os.PathLike))


def _is_hf(data: Any, kind: str) -> bool:
    # By class name: `datasets` is optional, and a list of dicts needs no import of it.
    return any(
        c.__name__ == kind and c.__module__.startswith("datasets") for c in type(data).__mro__
    )


def read_file(path: str | os.PathLike[str]) -> Rows:
    """The rows of a JSONL / JSON / CSV / Parquet file.

    Raises:
        DataFileError: there is no file at ``path``.
        ConfigError: the suffix is not one of :data:`READERS`, or the file does not parse.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in READERS:
        raise ConfigError(
            f"Cannot read {str(path)!r}: data files must end in one of {sorted(READERS)} "
            "(JSON lines, JSON, CSV or Parquet)."
        )
    if not file.is_file():
        where = "is a directory" if file.is_dir() else "does not exist"
        raise DataFileError(
            f"No data file at {str(path)!r}: the path {where}. Pass the path of a "
            f"{'/'.join(sorted(READERS))} file, a list of dicts or a datasets.Dataset."
        )
    datasets = require("datasets", f"Reading {file.name}")
    reader = getattr(datasets.Dataset, READERS[suffix])
    options: dict[str, Any] = {"keep_in_memory": True}
    if reader is datasets.Dataset.from_csv:
        # CSV cells are text: read as numbers, the answer "007" would become 7.
        options["features"] = datasets.Features(
            {name: datasets.Value("string") for name in _csv_header(file)}
        )
    try:
        table = reader(str(file), **options)
    except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many kinds
        raise ConfigError(
            f"Could not read {str(path)!r} as {suffix[1:].upper()}: {type(exc).__name__}: {exc}"
        ) from exc
    return table.to_list()


def _csv_header(file: Path) -> list[str]:
    with file.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def read_rows(data: Any) -> Rows:
    """The rows of one source: a path, a list of dicts or a ``datasets.Dataset``."""
    if _is_path(data):
        return read_file(data)
    if _is_hf(data, "Dataset"):
        return list(data.to_list())
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        rows = list(data)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ConfigTypeError(
                    f"data[{i}] is {describe(row)}; a list of data must hold dicts, one per "
                    "row (e.g. {'prompt': 'What is 2+2?', 'answer': '4'})."
                )
        return [dict(row) for row in rows]
    raise ConfigTypeError(
        "data must be a JSONL/JSON/CSV/Parquet path, a list of dicts, a datasets.Dataset, or "
        f"a dict or datasets.DatasetDict of those by split; got {describe(data)}."
    )


def read_splits(data: Any) -> dict[str, Rows] | None:
    """The rows of each split when ``data`` comes split (a DatasetDict or a dict of sources),
    else ``None``."""
    if _is_hf(data, "DatasetDict") or (isinstance(data, Mapping) and not _is_hf(data, "Dataset")):
        if not data:
            raise ConfigError("data is an empty dict; give it splits, e.g. {'train': path}.")
        return {str(name): read_rows(source) for name, source in data.items()}
    return None


def source_name(data: Any) -> str:
    """How messages and ``metadata["source"]`` name ``data`` (a path, or its kind)."""
    if _is_path(data):
        return str(data)
    return type(data).__name__


def check_columns(rows: Rows, keys: Mapping[str, str], where: str) -> None:
    """Every row has each column of ``keys`` (``{"prompt_key": "question", ...}``).

    Raises:
        ConfigError: a column is missing; the message names it, the columns present, and
            the argument that chooses it.
    """
    if not rows:
        raise ConfigError(f"{where} has no rows; a task needs at least one.")
    present = list(rows[0])
    for arg, column in keys.items():
        for i, row in enumerate(rows):
            if column not in row:
                at = "" if i == 0 else f" (row {i})"
                raise ConfigError(
                    f"{where} has no column {column!r}{at}; its columns are {present}."
                    f"{did_you_mean(column, present)} Choose the column with "
                    f"{arg}=..."
                )


__all__ = ["READERS", "DataFileError", "check_columns", "read_file", "read_rows", "read_splits"]
