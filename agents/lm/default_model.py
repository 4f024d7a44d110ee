"""textgym's embedded default model: where it lives and how to check it is current.

The model is a small GPT-2 for textgym's default tokenizer, warm-started by supervised
learning on noisy oracle demonstrations. It ships as package data in
``agents/lm/default_model/`` (safetensors + config + tokenizer + ``build_info.json``) and
is rebuilt, deterministically, with one command::

    python -m agents.lm.build_default_model

Rebuild it whenever the default tokenizer's vocabulary changes (a test checks that the
shipped model's vocabulary size equals ``len(default_tokenizer())``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textgym.errors import UserError
from textgym.tokenizer import default_tokenizer, vocab_digest

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
BUILD_COMMAND = "python -m agents.lm.build_default_model"


class DefaultModelError(UserError, FileNotFoundError):
    """The embedded default model is missing or was built for another tokenizer."""


def build_info(path: str | Path = DEFAULT_MODEL_DIR) -> dict[str, Any]:
    """What the build recorded: data, noise, seed, architecture, accuracy after SFT."""
    info = Path(path) / "build_info.json"
    return json.loads(info.read_text()) if info.exists() else {}


def default_model_path(check_tokenizer: bool = True) -> Path:
    """The directory of the embedded default model (load it with ``from_pretrained``).

    Raises:
        DefaultModelError: the weights are missing, or the default tokenizer changed since
            the model was built; both say how to rebuild it.
    """
    path = DEFAULT_MODEL_DIR
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise DefaultModelError(
            f"textgym's default model is missing from {str(path)!r}. Build it (a few minutes "
            f"on a CPU, deterministic) with `{BUILD_COMMAND}`, or pass --model <path>."
        )
    if check_tokenizer:
        # The model covers the ledger's words when it was built; the spare slots after them,
        # and words added since in those slots, are beyond it (textgym.tokenizer).
        vocab = json.loads((path / "config.json").read_text()).get("vocab_size")
        tokenizer = default_tokenizer()
        built = build_info().get("tokenizer_sha256")
        if (
            not isinstance(vocab, int)
            or vocab > len(tokenizer)
            or (built is not None and built != vocab_digest(tokenizer, vocab))
        ):
            raise DefaultModelError(
                f"textgym's default model was built for a vocabulary of {vocab} tokens that "
                "the default tokenizer no longer has as it was (its ids were renumbered). "
                f"Rebuild the model with `{BUILD_COMMAND}`."
            )
    return path


def resolve_model(name: str) -> str:
    """``'default'`` means textgym's embedded model; anything else is passed through.

    Raises:
        DefaultModelError: ``'default'`` while the embedded model is missing or stale.
    """
    if name == "default":
        return str(default_model_path())
    return name
