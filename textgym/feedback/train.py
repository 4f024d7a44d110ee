"""Train a reward model on the ratings log (``textgym train-rm``).

Fits a small sequence-classification model: Bradley-Terry on preferences
(``-log sigmoid(r(chosen) - r(rejected))``) and regression on scores (mapped to ``[0, 1]``).
``--out`` is a run directory like every learner's (:mod:`textgym.runs`)::

    out/config.json      the settings and the ratings trained on
    out/progress.csv     the loss of every epoch (rm/loss), then rm/train_preference_accuracy
    out/final_model/     the reward model: save_pretrained files, its tokenizer and
                         textgym_reward_model.json; RewardModel("out/final_model") loads it
    out/report.json      written last: the run is finished

The model is saved into a temporary directory renamed into place, so a kill never leaves
half a model behind. Training takes seconds, so there is no checkpoint to resume from: a new
run in the same ``--out`` replaces the one there, killed or finished (its report goes at
the start, its model only when the new one is renamed over it, so the old model loads until
then). :class:`~textgym.rewards.models.RewardModel` formats its inputs with the same
:func:`~textgym.rewards.models.reward_model_inputs`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgym import hub, runs
from textgym.errors import ConfigError
from textgym.feedback.checks import MAX_SEED, check_int
from textgym.feedback.log import PREFERENCE, SCORE, Rating, RatingsFileError, read_ratings
from textgym.files import write_error
from textgym.progress import Logger
from textgym.rewards.models import reward_model_inputs
from textgym.tokenizer import load_tokenizer

#: Written into the model directory beside the weights: what trained it, on what.
SUMMARY = "textgym_reward_model.json"
#: The option that names the run directory, for messages.
OUT_FLAG = "--out"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_reward_model` did.

    Attributes:
        path: The reward model (``<out>/final_model``), what ``RewardModel(path)`` loads.
        n_scores, n_preferences: The ratings trained on.
        final_loss: The mean loss of the last epoch.
        train_accuracy: Preference accuracy on the training pairs (NaN without pairs).
        run_dir: The run directory ``out``.
    """

    path: Path
    n_scores: int
    n_preferences: int
    final_loss: float
    train_accuracy: float
    run_dir: Path | None = None


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
    """``out`` if a reward-model run may start there: new, empty, or a run directory (whose
    run the new one replaces, see :func:`textgym.runs.check_start`).

    A directory holding anything else is refused rather than written into: ``--out .``
    must not mix a run into the user's files.

    Raises:
        ConfigError: ``out`` is a file, a directory of other files, or a reward model of an
            older textgym (the model files at its top level).
        WriteError: its parent cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a directory for the reward model.")
    if (out / SUMMARY).is_file():
        raise ConfigError(
            f"--out {str(out)!r} holds a reward model of an older textgym (its files at the "
            f"top level); give a new directory (the model goes to <out>/{runs.FINAL_MODEL_NAME})."
        )
    run_files = {
        ".lock",
        runs.CONFIG_NAME,
        runs.PROGRESS_NAME,
        runs.REPORT_NAME,
        runs.FINAL_MODEL_NAME,
    }
    if out.is_dir():
        others = [
            p.name
            for p in out.iterdir()
            if p.name not in run_files and not p.name.startswith(("events.out.tfevents.", "."))
        ]
        if others:
            raise ConfigError(
                f"--out {str(out)!r} holds other files ({others[0]!r}) and is not a textgym "
                "run; give a new or empty directory."
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "reward model directory") from exc
    return out


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
        out: The run directory (config, log, ``final_model/`` with the model, its tokenizer
            and ``textgym_reward_model.json``, then the report).
        base: A sequence-classification-capable model to fine-tune (path or name); ``None``
            trains a small BERT from scratch on ``tokenizer``.
        tokenizer: Tokenizer object or path; default: ``base``'s, else textgym's default.
        epochs, lr, batch_size: Optimisation (AdamW, full passes over the ratings).
        hidden, layers, max_length: Size of the from-scratch model.
        seed: Seeds torch and the shuffling.
        log: Optional ``print``-like callable for per-epoch losses.

    The configuration, the ratings and ``out`` are all checked before anything is built.
    ``out`` is the run directory (see the module docstring): the model goes to
    ``<out>/final_model`` (:attr:`TrainResult.path`), written to a temporary directory
    renamed into place at the end, and ``<out>/report.json`` last.

    Raises:
        ConfigError: an out-of-range setting or an unusable ``out`` (see
            :func:`check_training_config` and :func:`check_output_dir`).
        DirectoryInUseError: another process is training in ``out``.
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
    sources: list[str] = []
    if isinstance(ratings, (str, os.PathLike)) or (
        ratings and isinstance(next(iter(ratings)), (str, os.PathLike))
    ):
        paths = [ratings] if isinstance(ratings, (str, os.PathLike)) else list(ratings)
        sources = [os.fspath(p) for p in paths]  # type: ignore[arg-type]
        source = " in " + ", ".join(sources)
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
    settings = {
        "algo": "reward-model",
        "ratings": sources or f"{len(ratings)} Rating objects",
        "base": base,
        "tokenizer": _describe(tokenizer),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "hidden": hidden,
        "layers": layers,
        "max_length": max_length,
        "seed": seed,
        "n_scores": len(scores),
        "n_preferences": len(prefs),
    }

    # Imported here: torch takes seconds to import, and `textgym rate` imports this module
    # (through textgym.feedback.cli) without needing it.
    import torch

    with runs.claimed(out, flag=OUT_FLAG, resumable=False) as run_dir:
        runs.write_config(run_dir, settings)
        started = time.perf_counter()
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
        with Logger(run_dir, tensorboard=False) as logger:
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
                        both = rewards(
                            [r.context for r in p] * 2,
                            [r.a for r in p] + [r.b for r in p],  # type: ignore[misc]
                        )
                        margin = both[: len(p)] - both[len(p) :]
                        pa = torch.tensor([r.target for r in p], dtype=margin.dtype)
                        # Bradley-Terry: P(a > b) = sigmoid(r(a) - r(b)); a tie pulls the
                        # margin to 0.
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
                seconds = time.perf_counter() - started
                logger.log(epoch + 1, {"rm/loss": loss_value, "rm/seconds": seconds})
                if log is not None:
                    log(f"epoch {epoch + 1}/{epochs}  loss {loss_value:.4f}")
            model.eval()
            accuracy = (
                _preference_accuracy(model, tokenizer, prefs, max_length) if prefs else math.nan
            )
            if prefs:
                logger.log(epochs, {"rm/train_preference_accuracy": accuracy})
        summary = {
            "trained_by": "textgym.rewards.human.train_reward_model",
            "n_scores": len(scores),
            "n_preferences": len(prefs),
            "epochs": epochs,
            "final_loss": loss_value,
            "train_preference_accuracy": accuracy,
            "seed": seed,
        }

        def save(directory: Path) -> None:
            model.save_pretrained(directory)
            tokenizer.save_pretrained(directory)
            (directory / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")

        final = runs.write_final_model(run_dir, save, hint="then train again with this --out")
        report = {
            **summary,
            "train_seconds": round(time.perf_counter() - started, 2),
            "final_model": str(final),
            "run_dir": str(run_dir),
        }
        runs.write_report(run_dir, report)  # last: it marks the run finished
    return TrainResult(final, len(scores), len(prefs), loss_value, accuracy, run_dir)


def _describe(tokenizer: Any) -> str | None:
    """How ``config.json`` names the tokenizer: its path or name, else its class."""
    if tokenizer is None or isinstance(tokenizer, str):
        return tokenizer
    if isinstance(tokenizer, os.PathLike):
        return os.fspath(tokenizer)
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


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
