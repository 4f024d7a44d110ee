"""Batching helpers of the vector envs: one seed per sub-env, and Gymnasium's info layout."""

from __future__ import annotations

import functools
import numbers
from typing import Any

import numpy as np

from textgym.core import InputError, InputTypeError, check_seed
from textgym.tasks.checks import describe


def expand_seeds(
    seed: Any, n: int, unit: str, sequence: type | tuple[type, ...], hint: str = ""
) -> list[int | None]:
    """One seed (or ``None``) for each of ``n`` sub-envs (or rows: ``unit``): ``None`` for
    all, an integer ``seed`` as ``seed + i``, or a ``sequence`` of ``n`` seeds and ``None``
    (``hint`` ends the message for a wrong length).

    Raises:
        InputTypeError: a seed that is not an integer, or a ``seed`` of another type.
        InputError: a negative seed, or a seed list of the wrong length.
    """
    if seed is None:
        return [None] * n
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        first = check_seed(seed)
        assert first is not None
        return [first + i for i in range(n)]
    if isinstance(seed, (str, bytes)) or not isinstance(seed, sequence):
        raise InputTypeError(
            f"seed must be None, a non-negative integer ({unit} i gets seed + i) or a "
            f"list of {n} such integers or None, got {describe(seed)}."
        )
    seeds = list(seed)
    if len(seeds) != n:
        raise InputError(
            f"Got {len(seeds)} seeds for {n} {unit}s; pass one seed (or None) per {unit}{hint}."
        )
    return [check_seed(s, f"seed[{i}]") for i, s in enumerate(seeds)]


def batch_infos(pairs: list[tuple[int, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    """Gymnasium's vector info layout (``info[k]`` array + ``info["_k"]`` mask), built once.

    The same result as calling ``VectorEnv._add_info`` for each sub-env in index order
    (a nested dict recurses; an array's dtype is the type of the first sub-env's value, or
    object for anything that is not a number or an array), but with one allocation per key
    instead of one per (sub-env, key): otherwise the vector step's main cost. It covers the
    infos TextEnv makes (a test compares them with SyncVectorEnv's); it does not copy
    ``_add_info``'s special cases for ``final_obs``, ndarray subclasses, or a key that is a
    dict in one sub-env and not in another.
    """
    if not pairs:
        return {}
    if len(pairs) > 1:
        pairs = sorted(pairs, key=_first)
    infos = [info for _, info in pairs]
    keys = infos[0].keys()
    if all(info.keys() == keys for info in infos):
        # The usual step: one to a few turn ends whose infos have the same keys (the same
        # task wrote them). Every column then comes from every row, so one mask serves all
        # and each value is read by its key, without gathering columns first.
        rows = [i for i, _ in pairs]
        mask = np.zeros(num_envs, dtype=bool)
        mask[rows] = True
        return _same_keys(rows, infos, num_envs, mask)
    return _gathered(pairs, num_envs)


def _same_keys(
    rows: list[int], infos: list[dict[str, Any]], num_envs: int, mask: np.ndarray
) -> dict[str, Any]:
    """:func:`batch_infos` of infos (sorted by row) that all have the same keys."""
    out: dict[str, Any] = {}
    for key, first in infos[0].items():
        if isinstance(first, dict):
            subs = [info[key] for info in infos]
            inner = first.keys()
            if all(isinstance(sub, dict) and sub.keys() == inner for sub in subs):
                out[key] = _same_keys(rows, subs, num_envs, mask)
            else:
                out[key] = _gathered(list(zip(rows, subs, strict=True)), num_envs)
        else:
            full = _column(first, num_envs)
            for i, info in zip(rows, infos, strict=True):
                full[i] = info[key]
            out[key] = full
        out[f"_{key}"] = mask.copy()
    return out


def _gathered(pairs: list[tuple[int, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    """:func:`batch_infos` of infos (sorted by row) with different keys."""
    # One pass gathers each key's rows and values, in the order _add_info meets them.
    columns: dict[str, tuple[list[int], list[Any]]] = {}
    for i, info in pairs:
        for key, value in info.items():
            column = columns.get(key)
            if column is None:
                columns[key] = ([i], [value])
            else:
                column[0].append(i)
                column[1].append(value)
    out: dict[str, Any] = {}
    # Many keys come from the same sub-envs (every metadata field of a reset, say): their
    # masks are equal, so each distinct one is built once and copied.
    masks: dict[tuple[int, ...], np.ndarray] = {}
    for key, (rows, values) in columns.items():
        first = values[0]
        if isinstance(first, dict):
            out[key] = batch_infos(list(zip(rows, values, strict=True)), num_envs)
        else:
            full = _column(first, num_envs)
            for i, value in zip(rows, values, strict=True):
                full[i] = value
            out[key] = full
        index = tuple(rows)
        mask = masks.get(index)
        if mask is None:
            mask = masks[index] = np.zeros(num_envs, dtype=bool)
            mask[rows] = True
        out[f"_{key}"] = mask.copy()
    return out


_NUMBER_TYPES = (int, float, bool)


def _column(first: Any, num_envs: int) -> np.ndarray:
    """The empty column for values like ``first``, as ``_add_info`` allocates it.

    It is filled element by element, as ``_add_info`` does: a tuple value stays one object
    (and for the 1-3 rows of a typical step, that is faster than a fancy-index assignment).
    """
    kind = type(first)
    if kind in _NUMBER_TYPES or issubclass(kind, np.number):
        return np.zeros(num_envs, dtype=kind)
    if kind is np.ndarray:
        return np.zeros((num_envs, *first.shape), dtype=first.dtype)
    return _nones(num_envs).copy()


@functools.lru_cache(maxsize=8)
def _nones(num_envs: int) -> np.ndarray:
    """An object array of Nones to copy: ``np.full(n, None, dtype=object)`` is 5x slower."""
    return np.full(num_envs, None, dtype=object)


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]
