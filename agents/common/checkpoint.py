"""Checkpoints and seeding: one format for every LM agent, written atomically.

A checkpoint is one ``torch.save`` file holding the model and optimizer state, the trainer's
counters, every RNG state (python, numpy, torch, and the trainer's own generators) and the
config it was started with. It is written to a temporary file in the same directory and
moved into place with ``os.replace``, so a run killed mid-write leaves the previous
checkpoint intact, never a truncated one.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(FileNotFoundError):
    """A checkpoint to resume from is missing or unreadable."""


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


def checkpoint_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run directory keeps its checkpoint."""
    return Path(run_dir) / CHECKPOINT_NAME


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (a file or its run directory).

    Raises:
        CheckpointError: nothing to resume from at ``path``, or the file is not a checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(
            f"No checkpoint at {str(path)!r}. Resume from a run directory that contains "
            f"{CHECKPOINT_NAME} (written every --checkpoint-every updates), or start a new run "
            "without --resume."
        )
    try:
        # Our own files hold numpy RNG states and plain containers, hence weights_only=False.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing
        raise CheckpointError(f"{str(path)!r} is not a readable textgym checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{str(path)!r} is not a textgym checkpoint (no 'model' entry).")
    return state
