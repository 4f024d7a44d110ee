"""textgym's embedded default models: where they live, which one an env gets, whether current.

Two small GPT-2s ship as package data, one per default tokenizer, each warm-started by
supervised learning on noisy oracle demonstrations (safetensors + config + tokenizer +
``build_info.json``) and rebuilt, deterministically, with one command:

* ``agents/lm/default_model/``: for the closed vocabulary of the built-in tasks
  (``python -m agents.lm.build_default_model``);
* ``agents/lm/open_model/``: for the open byte-level BPE of tasks whose text is open
  (``Task.open_text``: reasoning-gym's generators, your rows), built by
  ``python -m agents.lm.build_open_model``.

``--model default`` means the one for the env's tokenizer (:func:`default_model_name`): a
run's config records it as ``"default"`` (closed) or ``"default-open"`` (open), and
:func:`resolve_model` turns either into its directory. Rebuild a model whenever its
tokenizer's vocabulary changes; loading refuses a stale one, naming the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from textgym.core import OPEN_TOKENIZER_PATH
from textgym.errors import UserError
from textgym.tasks import TASKS
from textgym.tokenizer import default_tokenizer, load_tokenizer, vocab_digest

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
OPEN_MODEL_DIR = Path(__file__).parent / "open_model"
BUILD_COMMAND = "python -m agents.lm.build_default_model"
OPEN_BUILD_COMMAND = "python -m agents.lm.build_open_model"
#: The model names that mean an embedded model: ``"default"`` is the closed-vocabulary one
#: unless an env says otherwise (:func:`resolve_model`), ``"default-open"`` the open one.
DEFAULT, OPEN_DEFAULT = "default", "default-open"
DEFAULT_NAMES = (DEFAULT, OPEN_DEFAULT)


class DefaultModelError(UserError, FileNotFoundError):
    """An embedded default model is missing or was built for another tokenizer."""


def build_info(path: str | Path = DEFAULT_MODEL_DIR) -> dict[str, Any]:
    """What the build recorded: data, noise, seed, architecture, accuracy after SFT."""
    info = Path(path) / "build_info.json"
    return json.loads(info.read_text()) if info.exists() else {}


def open_tokenizer() -> Any:
    """The open default tokenizer (shipped with textgym), the one the open model spells."""
    return load_tokenizer(OPEN_TOKENIZER_PATH)


def default_model_path(check_tokenizer: bool = True) -> Path:
    """The directory of the closed-vocabulary default model (load it with ``from_pretrained``).

    Raises:
        DefaultModelError: the weights are missing, or the default tokenizer changed since
            the model was built; both say how to rebuild it.
    """
    tokenizer = default_tokenizer() if check_tokenizer else None
    return _checked(DEFAULT_MODEL_DIR, tokenizer, "default model", BUILD_COMMAND)


def open_model_path(check_tokenizer: bool = True) -> Path:
    """The directory of the open default model, for ``open_text`` envs.

    Raises:
        DefaultModelError: the weights are missing, or the open tokenizer changed since
            the model was built; both name ``python -m agents.lm.build_open_model``.
    """
    tokenizer = open_tokenizer() if check_tokenizer else None
    return _checked(OPEN_MODEL_DIR, tokenizer, "open default model", OPEN_BUILD_COMMAND)


def _checked(path: Path, tokenizer: Any, what: str, command: str) -> Path:
    """``path`` if it holds a model whose vocabulary ``tokenizer`` still has as it was."""
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise DefaultModelError(
            f"textgym's {what} is missing from {str(path)!r}. Build it (a few minutes on a "
            f"CPU, deterministic) with `{command}`, or pass --model <path>."
        )
    if tokenizer is not None:
        # The model covers the tokenizer's words when it was built; the spare slots after
        # them, and words added since in those slots, are beyond it (textgym.tokenizer).
        vocab = json.loads((path / "config.json").read_text()).get("vocab_size")
        built = build_info(path).get("tokenizer_sha256")
        if (
            not isinstance(vocab, int)
            or vocab > len(tokenizer)
            or (built is not None and built != vocab_digest(tokenizer, vocab))
        ):
            raise DefaultModelError(
                f"textgym's {what} was built for a vocabulary of {vocab} tokens that its "
                "tokenizer no longer has as it was (its ids were renumbered). Rebuild the "
                f"model with `{command}`."
            )
    return path


def uses_open_tokenizer(env_id: str, tokenizer: str | None = None) -> bool:
    """Whether ``env_id`` (with ``tokenizer``, ``None`` for the env's own) plays on the open
    default tokenizer: its task has ``open_text`` and no other tokenizer is given, or the
    tokenizer given is the open one. An unregistered id is ``False`` (its trainer names it)."""
    if tokenizer is not None:
        given = Path(tokenizer)
        return given.is_dir() and given.resolve() == OPEN_TOKENIZER_PATH.resolve()
    if env_id not in gym.registry:
        return False
    task = gym.spec(env_id).kwargs.get("task", "")
    task = TASKS.get(task) if isinstance(task, str) else task  # a Task class or instance
    return bool(getattr(task, "open_text", False))


def default_model_name(env_id: str, tokenizer: str | None = None) -> str:
    """What ``--model default`` means for ``env_id``: ``"default-open"`` on the open
    tokenizer (:func:`uses_open_tokenizer`), else ``"default"``."""
    return OPEN_DEFAULT if uses_open_tokenizer(env_id, tokenizer) else DEFAULT


def resolve_model(name: str, env_id: str | None = None, tokenizer: str | None = None) -> str:
    """The directory an embedded model's name stands for; anything else is passed through.

    Args:
        name: ``"default"``, ``"default-open"``, a local directory or a hub name.
        env_id: With ``"default"``: pick the model for this env's tokenizer
            (:func:`default_model_name`); without it ``"default"`` is the closed one.
        tokenizer: The tokenizer the env is given (``None``: its own).

    Raises:
        DefaultModelError: an embedded model that is missing or stale.
    """
    if name == DEFAULT and env_id is not None:
        name = default_model_name(env_id, tokenizer)
    if name == DEFAULT:
        return str(default_model_path())
    if name == OPEN_DEFAULT:
        return str(open_model_path())
    return name
