"""Checkpoints and seeding: one format for every learner, that cannot carry code.

A checkpoint is a single `safetensors <https://huggingface.co/docs/safetensors>`_ file,
``checkpoint.safetensors`` in a run directory (:mod:`textgym.runs`): the tensors (an LM's
model and optimizer state, torch's RNG states, a tabular agent's Q-table) are its tensors,
and everything else (counters, config, python's and numpy's RNG states, the optimizer's
parameter groups, the algorithm's extra state) is one JSON document in its metadata header.
Loading it parses JSON and copies raw tensor bytes, nothing more: a run directory received
from someone else cannot run code, whatever the file holds. LM runs, tabular agents
(:mod:`agents.tabular.checkpoint`) and supervised fine-tuning all write this one format.

Why safetensors + JSON rather than ``torch.load(weights_only=True)`` with an allow-list:
``weights_only`` is still the pickle machinery, restricted by a list of globals that must
be kept right across torch releases (numpy's RNG state needs numpy's array reconstructors on
it, and every allowed global is attack surface); safetensors has no code path to restrict.
One file, rather than a safetensors file plus a JSON file, keeps the checkpoint
all-or-nothing: it is written with :func:`textgym.files.atomic_write` (temporary file,
fsync, ``os.replace``), so a run killed mid-write keeps its previous checkpoint, never half
of one or a new half beside an old half.

The JSON side keeps what JSON alone would lose: tuples (``random.getstate()`` must get a
tuple back), dicts with non-string keys (the optimizer's per-parameter state) and numpy
arrays are tagged objects, decoded strictly; a tag that is not one of those is refused.
Checkpoints of older textgym releases (``checkpoint.pt``, a pickle) are refused without
being opened.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from textgym.files import atomic_write
from textgym.runs import (
    CHECKPOINT_NAME,
    LEGACY_CHECKPOINT_NAME,
    CheckpointError,
    checkpoint_path,
    legacy_checkpoint_error,
    missing_checkpoint_error,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "LEGACY_CHECKPOINT_NAME",
    "CheckpointError",
    "checkpoint_path",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_random_seed",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "textgym-checkpoint"
#: The format's name when only LM runs wrote it (the same layout, read alike).
_FORMAT_ALIASES = (CHECKPOINT_FORMAT, "textgym-lm-checkpoint")
FORMAT_VERSION = 1

# Tags of the JSON encoding (see the module docstring); a dict holding one of these keys is
# a tagged value, so plain dicts with such a key are stored through the "items" form.
_TENSOR, _TUPLE, _ITEMS, _NDARRAY = "__tensor__", "__tuple__", "__items__", "__ndarray__"
_TAGS = (_TENSOR, _TUPLE, _ITEMS, _NDARRAY)


def set_random_seed(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs in one call (as SB3 does)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- encoding -------------------------------------------------------------------------------


class _Encoder:
    """Turns a nested state into (JSON-able document, flat dict of tensors)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        # Tied weights (an LM head sharing the embedding) are one tensor stored once:
        # safetensors refuses two names for the same memory.
        self._seen: dict[tuple[Any, ...], str] = {}

    def tensor(self, t: torch.Tensor) -> dict[str, str]:
        t = t.detach()
        identity = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
        key = self._seen.get(identity)
        if key is None:
            key = f"t{len(self.tensors)}"
            t = t.cpu()
            whole = t.untyped_storage().nbytes() == t.numel() * t.element_size()
            # A view into a larger storage (or a strided one) would drag the rest of that
            # storage along, or be refused: it is stored as a compact copy.
            self.tensors[key] = t if whole and t.is_contiguous() else t.contiguous().clone()
            self._seen[identity] = key
        return {_TENSOR: key}

    def encode(self, value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            return self.tensor(value)
        if isinstance(value, np.ndarray):
            return {_NDARRAY: value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
                return {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}
            return {
                _ITEMS: [
                    [self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        # A bug in the caller (an algorithm put an object in its extra state): refusing it
        # here keeps the format free of anything that would need code to rebuild.
        raise TypeError(
            f"Cannot checkpoint {where} of type {type(value).__name__}: a checkpoint holds "
            "tensors, numpy arrays, numbers, strings, None, and lists, tuples and dicts of them."
        )


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensors[value[_TENSOR]]
    if _TUPLE in value:
        return tuple(_decode(v, tensors) for v in value[_TUPLE])
    if _ITEMS in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value[_ITEMS]}
    if _NDARRAY in value:
        dtype = np.dtype(value["dtype"])
        if dtype.hasobject:
            raise ValueError("an array of Python objects is not allowed")
        return np.asarray(value[_NDARRAY], dtype=dtype).reshape(value["shape"])
    return {k: _decode(v, tensors) for k, v in value.items()}


# -- saving and loading ---------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically, as one safetensors file.

    Args:
        path: The checkpoint file (conventionally ``<run_dir>/checkpoint.safetensors``).
        state: Nested dicts, lists and tuples of tensors, numpy arrays, numbers, strings and
            ``None`` (a model's ``state_dict``, an optimizer's, RNG states, counters).

    Returns:
        ``path``.

    Raises:
        TypeError: ``state`` holds another kind of object.
        WriteError: the file cannot be written (full disk, read-only directory).
    """
    encoder = _Encoder()
    document = encoder.encode(state, "state")
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "version": str(FORMAT_VERSION),
        "state": json.dumps(document),
    }
    return atomic_write(path, safetensors_bytes(encoder.tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (a file or its run directory).

    Nothing in the file can run code: the header is JSON, the rest raw tensor bytes.

    Raises:
        CheckpointError: nothing to resume from at ``path``, an old pickle checkpoint (not
            opened), or a file that is not a readable textgym checkpoint; the message names
            the file and the reason.
    """
    path = Path(path)
    if path.is_dir():
        run_dir = path
        path = path / CHECKPOINT_NAME
        if not path.exists() and (run_dir / LEGACY_CHECKPOINT_NAME).exists():
            raise legacy_checkpoint_error(run_dir / LEGACY_CHECKPOINT_NAME)
    if path.exists() and not path.is_file():
        raise CheckpointError(
            f"{str(path)!r} is not a file; a checkpoint is the single file {CHECKPOINT_NAME}."
        )
    if not path.exists():
        raise missing_checkpoint_error(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - every parse failure means the same to the user
        try:
            with open(path, "rb") as raw:
                magic = raw.read(2)
        except OSError:
            magic = b""
        # torch.save's zip or a bare pickle: named as such (safetensors never unpickles).
        if magic == b"PK" or magic[:1] == b"\x80":
            raise legacy_checkpoint_error(path) from None
        raise CheckpointError(
            f"{str(path)!r} is not a readable textgym checkpoint (truncated, corrupt, or another "
            f"kind of file): {type(exc).__name__}: {exc}. Resume from an intact run directory "
            "or start a new run."
        ) from None
    if metadata.get("format") not in _FORMAT_ALIASES:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a textgym checkpoint (its header has "
            f"format={metadata.get('format')!r}, expected {CHECKPOINT_FORMAT!r})."
        )
    if metadata.get("version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format version {metadata.get('version')!r}; this "
            f"textgym reads version {FORMAT_VERSION}. Resume it with the textgym release that "
            "wrote it, or start a new run."
        )
    try:
        state = _decode(json.loads(metadata["state"]), tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        # RecursionError: a crafted header nested thousands deep; refused like any damage.
        raise CheckpointError(
            f"{str(path)!r} is damaged: its header does not describe its tensors "
            f"({type(exc).__name__}: {exc})."
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{str(path)!r} is not a textgym checkpoint (no 'model' entry).")
    return state
