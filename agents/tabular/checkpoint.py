"""Tabular checkpoints: the one safetensors + JSON checkpoint format, holding an agent.

A tabular agent's file is a checkpoint of :mod:`agents.common.checkpoint`, the format every
learner writes: its learned arrays (the Q-table's keys, actions and values) are the file's
tensors, and its ``agent`` header is JSON (the format name and version, the algorithm, its
hyper-parameters, the env id, the action count, the counters and the RNG state). Nothing in
it can run code when loaded, and it is written atomically, so a kill mid-save keeps the
previous file. A ``textgym train`` run keeps its agent as ``<run_dir>/checkpoint.safetensors``,
which ``agents.tabular.load(run_dir)`` reads like any agent file.

The header may hold the learner's hyper-parameters and nothing else: a received file can
never choose where textgym writes (``log_dir`` and ``tensorboard`` are the caller's).
``.npz`` files of older textgym releases are refused without being opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from agents.common.checkpoint import load_checkpoint, save_checkpoint
from agents.tabular.checks import keyword_parameters
from textgym.runs import CHECKPOINT_NAME, CheckpointError

__all__ = [
    "CALLER_ONLY",
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "SUFFIX",
    "CheckpointError",
    "agent_from_state",
    "agent_path",
    "load_agent",
    "read_agent_file",
    "register_agent",
    "write_agent",
]

#: The ``agent`` header's format; bump the version when its layout changes (``load`` refuses
#: others). Version 2: the header moved from an ``.npz`` into the safetensors checkpoint.
FORMAT_VERSION = 2
CHECKPOINT_FORMAT = "textgym-agent"
SUFFIX = ".safetensors"
#: Constructor arguments that say where and how the agent writes: always the caller's, never
#: read from a checkpoint (a received file must not redirect textgym's writes).
CALLER_ONLY = ("log_dir", "tensorboard")

T = TypeVar("T", bound=type)


def agent_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`write_agent` writes ``path``: ``.safetensors`` appended unless present."""
    p = Path(path)
    return p if p.suffix == SUFFIX else p.with_name(p.name + SUFFIX)


def write_agent(
    path: str | os.PathLike[str],
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``arrays`` (as tensors) and ``header`` (after the format name and version),
    plus ``extra`` entries beside them (a run's config and env state), to :func:`agent_path`.

    Raises:
        WriteError: the file cannot be written (full disk, read-only directory).
    """
    state = {
        **(extra or {}),
        # Copied: a table's key buffer is a read-only view, which torch will not wrap.
        "model": {k: torch.from_numpy(np.array(v, order="C")) for k, v in arrays.items()},
        "agent": {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **header},
    }
    return save_checkpoint(agent_path(path), state)


def read_agent_file(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The file read and its whole state, if it is a checkpoint holding a textgym agent.

    ``path`` may be the file, the file without its ``.safetensors`` suffix, or a run
    directory.

    Raises:
        CheckpointError: no file there, an ``.npz`` of an older textgym, a file that is not
            a readable checkpoint, or one without an agent of this format version.
    """
    file = Path(path)
    if file.is_dir():
        file = file / CHECKPOINT_NAME
    elif not file.exists() and agent_path(file).exists():
        file = agent_path(file)
    if file.suffix == ".npz" and file.is_file():
        raise CheckpointError(
            f"{str(file)!r} is a tabular checkpoint of an older textgym (.npz), which this "
            f"release does not open: agents are saved as {SUFFIX} checkpoints now. Train the "
            "agent again (a tiny variant takes seconds), or load it with the release that "
            "saved it."
        )
    if not file.exists():
        raise CheckpointError(
            f"No checkpoint at {str(path)!r} (looked for {str(file)!r}). Save one with "
            "agent.save(path) first, or check the path."
        )
    state = load_checkpoint(file)
    meta = state.get("agent")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(file)!r} is a textgym checkpoint but holds no tabular agent (an LM run's "
            "checkpoint, perhaps); load it with the learner that wrote it."
        )
    if meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(file)!r} has agent format version {meta.get('version')!r}; this textgym "
            f"reads version {FORMAT_VERSION}. Re-train, or load it with the textgym release "
            "that wrote it."
        )
    return file, state


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
    file, state = read_agent_file(path)
    return agent_from_state(cls, file, state, env, **kwargs)


def agent_from_state(
    cls: type[Any], file: Path, state: dict[str, Any], env: Any = None, **kwargs: Any
) -> Any:
    """:func:`load_agent` on a state :func:`read_agent_file` returned (``file`` names it)."""
    meta = state["agent"]
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
        tensors = state["model"]
        if not isinstance(tensors, dict) or not all(
            isinstance(t, torch.Tensor) for t in tensors.values()
        ):
            raise ValueError("its 'model' entry is not a dict of arrays")
        agent._restore({k: t.numpy() for k, t in tensors.items()}, meta)
        agent.num_timesteps = int(meta.get("num_timesteps", 0))
        agent.num_episodes = int(meta.get("num_episodes", 0))
        agent.train_seconds = float(meta.get("train_seconds", 0.0))
        if meta.get("rng") is not None:
            agent.rng = generator_from_state(meta["rng"])
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise CheckpointError(
            f"{str(file)!r} is damaged: its arrays do not match its header ({exc})."
        ) from None
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


def generator_from_state(state: Any) -> np.random.Generator:
    """A numpy ``Generator`` in the saved ``bit_generator.state`` (PCG64 only: a file never
    names the class to build).

    Raises:
        ValueError: ``state`` is not a PCG64 state.
    """
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("a random state must be a PCG64 bit_generator.state dict")
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = state
    return generator
