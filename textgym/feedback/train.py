"""Train a reward model on the ratings log (``textgym train-rm``).

Fits a small sequence-classification model: Bradley-Terry on preferences
(``-log sigmoid(r(chosen) - r(rejected))``) and regression on scores (mapped to ``[0, 1]``),
and saves it with ``save_pretrained`` into a temporary directory that is then renamed into
place, so :class:`~textgym.rewards.models.RewardModel` loads it (formatting its inputs with
the same :func:`~textgym.rewards.models.reward_model_inputs`) and a kill never leaves half a
model behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgym import hub
from textgym.errors import ConfigError
from textgym.feedback.checks import MAX_SEED, check_int
from textgym.feedback.log import PREFERENCE, SCORE, Rating, RatingsFileError, read_ratings
from textgym.files import write_error
from textgym.rewards.models import reward_model_inputs
from textgym.tokenizer import load_tokenizer

SUMMARY = "textgym_reward_model.json"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_reward_model` did."""

    path: Path
    n_scores: int
    n_preferences: int
    final_loss: float
    train_accuracy: float


def _heads(hidden: int) -> int:
    """About one attention head per 32 units, and a divisor of ``hidden`` as BERT requires
    (``hidden=100`` would otherwise ask for 3 heads and fail)."""
    heads = max(1, hidden // 32)
    while hidden % heads:
        heads -= 1
    return heads


def check_training_config(
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    hidden: int = 64,
    layers: int = 2,
    max_length: int = 128,
) -> None:
    """Refuse values that cannot train, naming the argument, its flag and the valid range.

    Raises:
        ConfigError: e.g. ``epochs=0`` (nothing would be trained, silently), a NaN or
            negative ``lr``, ``batch_size=0``, a negative ``seed``.
    """
    check_int("epochs (--epochs)", epochs, 1)
    check_int("batch_size (--batch-size)", batch_size, 1)
    check_int("seed (--seed)", seed, 0, MAX_SEED)
    check_int("hidden", hidden, 1)
    check_int("layers", layers, 1)
    check_int("max_length", max_length, 2)
    number = isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool)
    if not (number and math.isfinite(lr) and 0.0 < lr <= 1.0):
        raise ConfigError(f"lr (--lr) must be a number in (0, 1], e.g. 3e-3; got {lr!r}.")


def check_output_dir(out: str | os.PathLike[str]) -> Path:
    """``out`` if a reward model may be written there: new, empty, or a model textgym wrote.

    A directory holding anything else is refused rather than replaced: ``--out .`` must
    not swap away the user's files.

    Raises:
        ConfigError: ``out`` is a file, or a directory of other files.
        WriteError: its parent cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a directory for the reward model.")
    if out.is_dir() and any(out.iterdir()) and not (out / SUMMARY).is_file():
        raise ConfigError(
            f"--out {str(out)!r} holds other files and is not a reward model textgym wrote; "
            "give a new or empty directory."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    return out


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def _staging_dir(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out``; on success it is renamed to ``out``.

    The rename is the moment the model appears, whole: a kill before it leaves ``out`` as
    it was (and a hidden ``.<name>.*.tmp`` directory, removed on the way out when Python
    still can). An existing model in ``out`` is moved aside, replaced, then deleted.
    """
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    try:
        yield tmp
        _fsync_tree(tmp)
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", suffix=".tmp", dir=out.parent))
            os.replace(out, old)  # rename(2) onto the empty placeholder
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)  # replaces a missing or empty directory in one step
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_model(
    base: str | None, tokenizer: Any, hidden: int, layers: int, max_length: int
) -> Any:
    # Imported here: transformers takes seconds to import, and only training needs it.
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    if base is not None:
        model = hub.from_pretrained(
            AutoModelForSequenceClassification, base, "base model", num_labels=1
        )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        return model
    # A small BERT encoder from scratch: enough for a few hundred ratings, trains in seconds.
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=_heads(hidden),
        intermediate_size=2 * hidden,
        max_position_embeddings=max_length,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def train_reward_model(
    ratings: Sequence[Rating] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    base: str | None = None,
    tokenizer: Any = None,
    epochs: int = 40,
    lr: float = 3e-3,
    batch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    max_length: int = 128,
    seed: int = 0,
    log: Any = None,
) -> TrainResult:
    """Fit a reward model to ratings and save it to ``out`` (``RewardModel(out)`` loads it).

    Args:
        ratings: :class:`Rating` objects, or one or more log paths.
        out: Output directory (model, tokenizer, and ``textgym_reward_model.json``).
        base: A sequence-classification-capable model to fine-tune (path or name); ``None``
            trains a small BERT from scratch on ``tokenizer``.
        tokenizer: Tokenizer object or path; default: ``base``'s, else textgym's default.
        epochs, lr, batch_size: Optimisation (AdamW, full passes over the ratings).
        hidden, layers, max_length: Size of the from-scratch model.
        seed: Seeds torch and the shuffling.
        log: Optional ``print``-like callable for per-epoch losses.

    The configuration, the ratings and ``out`` are all checked before anything is built,
    and the model is written to a temporary directory renamed to ``out`` at the end.

    Raises:
        ConfigError: an out-of-range setting or an unusable ``out`` (see
            :func:`check_training_config` and :func:`check_output_dir`).
        RatingsFileError: a missing or bad log, or no ratings at all.
        WriteError: ``out`` cannot be written.
    """
    check_training_config(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        hidden=hidden,
        layers=layers,
        max_length=max_length,
    )
    source = ""
    if isinstance(ratings, (str, os.PathLike)) or (
        ratings and isinstance(next(iter(ratings)), (str, os.PathLike))
    ):
        paths = [ratings] if isinstance(ratings, (str, os.PathLike)) else list(ratings)
        source = " in " + ", ".join(str(p) for p in paths)  # type: ignore[union-attr]
        ratings = read_ratings(paths)  # type: ignore[arg-type]
    ratings = list(ratings)  # type: ignore[arg-type]
    scores = [r for r in ratings if r.kind == SCORE]
    prefs = [r for r in ratings if r.kind == PREFERENCE]
    if not ratings:
        raise RatingsFileError(
            f"No ratings to train on{source}: rate some turns first "
            "(textgym rate --env ... --log ...)."
        )
    out = check_output_dir(out)

    # Imported here: torch takes seconds to import, and `textgym rate` imports this module
    # (through textgym.feedback.cli) without needing it.
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if tokenizer is None:
        tokenizer = load_tokenizer(base) if base is not None else load_tokenizer(None)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _build_model(base, tokenizer, hidden, layers, max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def rewards(contexts: list[str], texts: list[str]) -> torch.Tensor:
        inputs = reward_model_inputs(tokenizer, contexts, texts, max_length)
        return model(**inputs).logits[:, 0]

    # Each example is one score or one preference; minibatches mix both kinds.
    examples: list[Rating] = scores + prefs
    loss_value = float("nan")
    for epoch in range(epochs):
        order = rng.permutation(len(examples))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            chunk = [examples[i] for i in order[start : start + batch_size]]
            loss = torch.zeros(())
            s = [r for r in chunk if r.kind == SCORE]
            p = [r for r in chunk if r.kind == PREFERENCE]
            if s:
                pred = rewards([r.context for r in s], [r.text for r in s])  # type: ignore[misc]
                target = torch.tensor([r.target for r in s], dtype=pred.dtype)
                loss = loss + torch.nn.functional.mse_loss(pred, target, reduction="sum")
            if p:
                both = rewards([r.context for r in p] * 2, [r.a for r in p] + [r.b for r in p])  # type: ignore[misc]
                margin = both[: len(p)] - both[len(p) :]
                pa = torch.tensor([r.target for r in p], dtype=margin.dtype)
                # Bradley-Terry: P(a > b) = sigmoid(r(a) - r(b)); a tie pulls the margin to 0.
                bt = -(
                    pa * torch.nn.functional.logsigmoid(margin)
                    + (1 - pa) * torch.nn.functional.logsigmoid(-margin)
                )
                loss = loss + bt.sum()
            loss = loss / len(chunk)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(chunk)
            count += len(chunk)
        loss_value = total / max(count, 1)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  loss {loss_value:.4f}")
    model.eval()
    accuracy = _preference_accuracy(model, tokenizer, prefs, max_length) if prefs else float("nan")
    summary = {
        "trained_by": "textgym.rewards.human.train_reward_model",
        "n_scores": len(scores),
        "n_preferences": len(prefs),
        "epochs": epochs,
        "final_loss": loss_value,
        "train_preference_accuracy": accuracy,
        "seed": seed,
    }
    with _staging_dir(out) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # Written last: its presence marks a whole model (check_output_dir relies on it).
        (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(out, len(scores), len(prefs), loss_value, accuracy)


def _preference_accuracy(
    model: Any, tokenizer: Any, prefs: Sequence[Rating], max_length: int
) -> float:
    # Imported here, as in train_reward_model: torch takes seconds to import.
    import torch

    decided = [r for r in prefs if r.winner != "tie"]
    if not decided:
        return float("nan")
    with torch.inference_mode():
        inputs = reward_model_inputs(
            tokenizer,
            [r.context for r in decided] * 2,
            [r.a for r in decided] + [r.b for r in decided],  # type: ignore[operator]
            max_length,
        )
        r = model(**inputs).logits[:, 0]
    margin = (r[: len(decided)] - r[len(decided) :]).numpy()
    want = np.array([1.0 if p.winner == "a" else -1.0 for p in decided])
    return float(np.mean(np.sign(margin) == want))
