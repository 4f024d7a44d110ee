"""The tabular checkpoint format: one ``.npz`` of plain arrays and a JSON header, no pickle.

A checkpoint holds the learner's arrays and one JSON string ``meta``: the format name and
version, the algorithm, its hyper-parameters, the env id, the action count and the
counters. It is read with ``allow_pickle=False``, so no code runs on load, and written
atomically (a temporary file moved into place), so a kill mid-save keeps the previous file.
The header may hold the learner's hyper-parameters and nothing else: a received file can
never choose where textgym writes (``log_dir`` and ``tensorboard`` are the caller's).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from agents.common.checkpoint import CheckpointError
from agents.tabular.checks import keyword_parameters
from textgym.files import atomic_write

__all__ = [
    "CALLER_ONLY",
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "load_agent",
    "register_agent",
    "write_npz",
]

#: Written into every checkpoint; bump it when the layout changes (``load`` refuses others).
FORMAT_VERSION = 1
CHECKPOINT_FORMAT = "textgym-agent"
#: Constructor arguments that say where and how the agent writes: always the caller's, never
#: read from a checkpoint (a received file must not redirect textgym's writes).
CALLER_ONLY = ("log_dir", "tensorboard")

T = TypeVar("T", bound=type)


def write_npz(
    path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``arrays`` and ``header`` (after the format name and version) to ``path``.

    ``.npz`` is appended to a path without it; returns the path written.
    """
    meta = {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **header}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), **arrays)
    # Whole or not at all: a kill mid-save keeps the previous checkpoint.
    return atomic_write(_npz_path(path), buffer.getvalue())


def _npz_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def _read_npz(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
    """The file read, its header and its arrays, if it is a checkpoint of this format version.

    Raises:
        FileNotFoundError: no file at ``path`` (nor at ``path`` + ``.npz``).
        CheckpointError: not a readable ``.npz``, not this format, or another version.
    """
    file = _npz_path(path)
    if not file.exists() and Path(path).exists():
        file = Path(path)
    if not file.exists():
        raise FileNotFoundError(
            f"No checkpoint at {str(path)!r} (looked for {str(file)!r}). Save one with "
            "agent.save(path) first, or check the path."
        )
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{str(file)!r} is not a readable textgym agent checkpoint (corrupt, truncated, "
            f"or another kind of file): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(file)!r} is an .npz file but not a textgym agent checkpoint (its meta "
            f"says format={meta.get('format') if isinstance(meta, dict) else meta!r})."
        )
    if meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(file)!r} has checkpoint format version {meta.get('version')!r}; this "
            f"textgym reads version {FORMAT_VERSION}. Re-train, or load it with the textgym "
            "release that wrote it."
        )
    return file, meta, arrays


def _saved_hyperparameters(file: Path, meta: dict[str, Any], target: Any) -> dict[str, Any]:
    """The header's hyper-parameters, refused unless each is a constructor argument of
    ``target`` that a file may set (never :data:`CALLER_ONLY`: where the agent writes)."""
    params = meta.get("hyperparameters")
    if not isinstance(params, dict):
        raise CheckpointError(
            f"{str(file)!r} is damaged: its header has no hyper-parameters dict (got "
            f"{type(params).__name__})."
        )
    allowed = [p for p in keyword_parameters(target) if p not in CALLER_ONLY]
    for key in params:
        if key in CALLER_ONLY:
            raise CheckpointError(
                f"{str(file)!r} sets {key!r} in its header; a checkpoint never decides where "
                f"textgym writes, and textgym never saves it. Do not trust this file; pass "
                f"{key}=... to load() yourself."
            )
        if key not in allowed:
            raise CheckpointError(
                f"{str(file)!r} has an unknown hyper-parameter {key!r} in its header (a "
                f"{target.algo} checkpoint holds {allowed})."
            )
    return dict(params)


#: Every learner a checkpoint can name, by its ``algo`` (filled by :func:`register_agent`).
_AGENTS: dict[str, type[Any]] = {}


def register_agent(cls: T) -> T:
    """Make :func:`load_agent` able to rebuild checkpoints of ``cls`` (a class decorator)."""
    _AGENTS[cls.algo] = cls
    return cls


def load_agent(cls: type[Any], path: str | os.PathLike[str], env: Any = None, **kwargs: Any) -> Any:
    """Rebuild the learner saved at ``path``: the algorithm its header names, which must be
    ``cls`` unless ``cls`` names none (``EpisodicAgent``, ``TabularAgent`` load any).

    See :meth:`agents.tabular.EpisodicAgent.load` for the arguments and errors.
    """
    file, meta, arrays = _read_npz(path)
    target = _AGENTS.get(meta.get("algo", ""))
    if target is None:
        raise CheckpointError(
            f"{str(file)!r} holds an unknown algorithm {meta.get('algo')!r}; known: "
            f"{sorted(_AGENTS)}."
        )
    # A class without an algo of its own (EpisodicAgent, TabularAgent) loads any learner.
    if hasattr(cls, "algo") and target is not cls:
        raise CheckpointError(
            f"{str(file)!r} holds a {meta['algo']} agent, not {cls.__name__}; load it with "
            f"{target.__name__}.load(...) or agents.tabular.load(...)."
        )
    saved = _saved_hyperparameters(file, meta, target)
    try:
        # The header alone (with the caller's features function, if the header names a
        # custom one) must make a valid learner: a bad value is the file's fault.
        probe = {**saved, **({"features": kwargs["features"]} if "features" in kwargs else {})}
        agent = target(None, **target._from_saved(probe))
    except CheckpointError:
        raise
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{str(file)!r} holds invalid hyper-parameters in its header: {exc}"
        ) from None
    if kwargs:
        agent = target(None, **target._from_saved({**saved, **kwargs}))
    try:
        agent._restore(arrays, meta)
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(
            f"{str(file)!r} is damaged: its arrays do not match its header ({exc})."
        ) from None
    agent.num_timesteps = int(meta.get("num_timesteps", 0))
    agent.num_episodes = int(meta.get("num_episodes", 0))
    if meta.get("n_actions") is not None:
        agent._n_actions = int(meta["n_actions"])
    if env is not None:
        agent.set_env(env)
        if meta.get("n_actions") is not None and agent._n_actions != int(meta["n_actions"]):
            raise CheckpointError(
                f"The checkpoint was trained with {meta['n_actions']} actions but the env has "
                f"{agent._n_actions}; use the env (and tokenizer) it was trained on."
            )
    return agent
