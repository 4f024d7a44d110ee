"""Supervised warm start: fit a causal LM to demonstrations, with loss on the agent's tokens only.

``sft(..., run_dir="runs/sft")`` writes the run directory every learner writes
(:mod:`textgym.runs`) and resumes from it (``resume=True``); without ``run_dir`` it trains
in memory, as :mod:`agents.lm.build_default_model` does.

A demonstration record (``textgym.tasks.demonstrations``) is laid out exactly as the env
lays out its context, ``<user> prompt <eot> <agent> turn <eot> <user> reply <eot> <agent>
turn <eot>``, so that the warm-started model sees at RL time the contexts it was trained
on. The loss covers the agent's turns and their closing ``<eot>``; prompts and users'
replies are context only, as they are for the policy gradient later.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from agents.common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.lm.config import (
    COUNT,
    COUNT_OR_ZERO,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    SEED,
    Check,
    config_problems,
    normalize_numbers,
    raise_config_problems,
)
from textgym import runs
from textgym.chat import ChatFormat, encode_plain
from textgym.errors import ConfigError
from textgym.progress import Logger
from textgym.runs import CheckpointError

#: Settings a resumed fine-tuning run must share with its checkpoint (what it trains on).
SFT_IDENTITY = ("seed", "batch_size", "sequences")


@dataclass
class SFTConfig:
    """Supervised fine-tuning arguments."""

    steps: int = 1500
    """optimizer steps"""
    batch_size: int = 32
    """sequences per step"""
    learning_rate: float = 2e-3
    """peak Adam learning rate (after a linear warm-up)"""
    warmup: int = 100
    """warm-up steps"""
    schedule: str = "constant"
    """after warm-up: 'constant', or 'cosine' (decay to 10%). An annealed model is sharper:
    its sampled turns explore less, which leaves a policy gradient little to work with"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    max_grad_norm: float = 1.0
    """gradient clipping"""
    seed: int = 0
    """shuffling and initialisation seed"""

    #: The valid values of each field (the same table-driven check as the RL configs).
    CHECKS: ClassVar[dict[str, Check]] = {
        "steps": COUNT,
        "batch_size": COUNT,
        "learning_rate": RATE,
        "warmup": COUNT_OR_ZERO,
        "schedule": Check(str, choices=("constant", "cosine")),
        "weight_decay": NON_NEGATIVE,
        # Negative would flip every gradient, 0 would zero them.
        "max_grad_norm": POSITIVE,
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        normalize_numbers(self, self.CHECKS)
        self.validate()

    def validate(self) -> None:
        """Check every field against :attr:`CHECKS`.

        Raises:
            ConfigError: every invalid field, named with its valid range.
        """
        raise_config_problems(
            "supervised fine-tuning arguments", config_problems(self, self.CHECKS)
        )


def encode_demonstration(
    record: dict[str, Any], tokenizer: Any, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of a demonstration in the env's layout, and a mask of the agent's tokens.

    Trailing user turns (the user's closing reply) are dropped: nothing follows them to learn.
    """
    chat = ChatFormat.for_tokenizer(tokenizer)
    turns = list(record["turns"])
    while turns and turns[-1]["role"] != "agent":
        turns.pop()

    def encode(text: str) -> list[int]:
        return encode_plain(tokenizer, text)

    ids: list[int] = []
    target: list[bool] = []
    for i, turn in enumerate(turns):
        if turn["role"] == "user":
            # Exactly what the env writes: the opening (with the system message, if any), or
            # a reply after the agent's end of turn, each up to the agent's cue.
            piece = (
                chat.opening_ids(record.get("system"), turn["text"], encode)
                if i == 0
                else chat.reply_ids(turn["text"], encode)
            )
            target.extend([False] * len(piece))
        else:
            piece = [*encode(turn["text"]), chat.eot_id]
            target.extend([True] * len(piece))
        ids.extend(piece)
    ids_a = np.asarray(ids[:max_length], dtype=np.int64)
    mask_a = np.asarray(target[:max_length], dtype=bool)
    return ids_a, mask_a


def sft(
    model: torch.nn.Module,
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
    config: SFTConfig,
    pad_id: int,
    log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 100,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_every: int = 0,
    tokenizer: Any = None,
) -> dict[str, float]:
    """Train ``model`` on ``(ids, agent_mask)`` sequences; returns final metrics.

    Deterministic for a given seed, thread count and machine: batches are drawn from a
    seeded numpy RNG and nothing else is random.

    Args:
        model: A ``transformers`` causal LM, trained in place.
        sequences: What :func:`encode_demonstration` returns, one per demonstration.
        config: The optimisation settings.
        pad_id: The padding token id.
        log: Called with ``(step, metrics)`` every ``log_every`` steps and at the end.
        log_every: Steps between two log points.
        run_dir: Also write the run directory every learner writes (:mod:`textgym.runs`):
            ``config.json``, ``progress.csv``, ``checkpoint.safetensors`` (every
            ``checkpoint_every`` steps and at the end), ``final_model/`` (the model, and
            ``tokenizer`` when given, as ``save_pretrained`` writes them) and last
            ``report.json``. ``None`` trains in memory only.
        resume: Continue the run in ``run_dir`` from its checkpoint (weights, optimizer,
            schedule, the epoch's batch order and every RNG), ending with the model an
            uninterrupted run would have.
        checkpoint_every: Steps between two checkpoints (0: only at the end).
        tokenizer: Saved into ``final_model/`` beside the model.

    Raises:
        ValueError: no sequences.
        ConfigError: an invalid setting, a fresh run in a directory that holds one, a
            resume with other settings than the checkpoint's, or of a finished run whose
            ``--steps`` are all made.
        CheckpointError: ``resume`` without a readable checkpoint.
        DirectoryInUseError: another process holds ``run_dir``.
    """
    if not sequences:
        raise ValueError("sft() got no sequences; export demonstrations first.")
    config.validate()  # a dataclass is mutable: checked again before any step
    check_count = COUNT_OR_ZERO.accepts(checkpoint_every) and COUNT.accepts(log_every)
    if not check_count:
        raise ConfigError(
            f"checkpoint_every must be an int >= 0 and log_every an int >= 1, got "
            f"{checkpoint_every!r} and {log_every!r}."
        )
    if run_dir is None:
        if resume:
            raise ConfigError("sft(resume=True) needs the run_dir to resume from.")
        return _SFTRun(model, sequences, config, pad_id, None).train(log, log_every)
    with runs.claimed(run_dir, resume) as directory:
        run = _SFTRun(model, sequences, config, pad_id, directory, checkpoint_every)
        if resume:
            run.load()
        return run.train(log, log_every, tokenizer)


class _SFTRun:
    """The state of one fine-tuning run, and its checkpoints (see :func:`sft`)."""

    def __init__(
        self,
        model: torch.nn.Module,
        sequences: Sequence[tuple[np.ndarray, np.ndarray]],
        config: SFTConfig,
        pad_id: int,
        run_dir: Path | None,
        checkpoint_every: int = 0,
    ) -> None:
        self.model, self.sequences, self.config, self.pad_id = model, sequences, config, pad_id
        self.run_dir, self.checkpoint_every = run_dir, checkpoint_every
        self.rng = np.random.default_rng(config.seed)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.learning_rate,
            betas=(0.9, 0.98),
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_at)
        self.lengths = np.array([ids.size for ids, _ in sequences])
        self.batches: list[np.ndarray] = []
        self.running: list[float] = []
        self.step = 0
        self.seconds = 0.0

    def _lr_at(self, step: int) -> float:
        config = self.config
        if step < config.warmup:
            return (step + 1) / config.warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    def config_dict(self) -> dict[str, Any]:
        return {"algo": "sft", **asdict(self.config), "sequences": len(self.sequences)}

    def train(
        self,
        log: Callable[[int, dict[str, float]], None] | None,
        log_every: int,
        tokenizer: Any = None,
    ) -> dict[str, float]:
        config, model = self.config, self.model
        logger = None
        if self.run_dir is not None:
            runs.write_config(self.run_dir, self.config_dict())
            logger = Logger(self.run_dir, tensorboard=False)
        try:
            model.train()
            start = time.perf_counter() - self.seconds
            while self.step < config.steps:
                self._one_step()
                step = self.step
                if step % log_every == 0 or step == config.steps:
                    metrics = {
                        "sft/loss": float(np.mean(self.running[-log_every:])),
                        "sft/seconds": time.perf_counter() - start,
                    }
                    if log is not None:
                        log(step, metrics)
                    if logger is not None:
                        logger.log(step, metrics)
                if self.checkpoint_every and step % self.checkpoint_every == 0:
                    self.seconds = time.perf_counter() - start
                    self.save()
            model.eval()
            self.seconds = time.perf_counter() - start
            result = {"sft/loss": float(np.mean(self.running[-50:])), "sft/seconds": self.seconds}
            if self.run_dir is not None:
                self._finish(result, tokenizer)
            return result
        finally:
            if logger is not None:
                logger.close()

    def _one_step(self) -> None:
        config, model, sequences = self.config, self.model, self.sequences
        device = next(model.parameters()).device
        if not self.batches:
            self.batches = _length_buckets(self.lengths, config.batch_size, self.rng)
        picks = self.batches.pop()
        width = max(sequences[i][0].size for i in picks)
        ids = np.full((len(picks), width), self.pad_id, dtype=np.int64)
        attn = np.zeros((len(picks), width), dtype=np.int64)
        tgt = np.zeros((len(picks), width), dtype=bool)
        for row, i in enumerate(picks):
            s, m = sequences[i]
            ids[row, : s.size], attn[row, : s.size], tgt[row, : s.size] = s, 1, m
        ids_t = torch.as_tensor(ids, device=device)
        attn_t = torch.as_tensor(attn, device=device)
        mask = torch.as_tensor(tgt[:, 1:], device=device)
        # The LM head only where there is a target: most positions are prompt or user text,
        # and the head (hidden x vocabulary) is a large share of a small model's cost.
        hidden = model.base_model(input_ids=ids_t, attention_mask=attn_t).last_hidden_state[:, :-1]
        logits = model.get_output_embeddings()(hidden[mask]).float()
        loss = F.cross_entropy(logits, ids_t[:, 1:][mask])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.running.append(loss.item())
        self.step += 1

    def _finish(self, result: dict[str, float], tokenizer: Any) -> None:
        """The final checkpoint, ``final_model/`` and last ``report.json``."""
        assert self.run_dir is not None
        self.save()

        def save_model(directory: Path) -> None:
            self.model.save_pretrained(str(directory))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(directory))

        runs.write_final_model(self.run_dir, save_model)
        report = {
            "algo": "sft",
            "steps": self.step,
            "sequences": len(self.sequences),
            "train_seconds": round(self.seconds, 1),
            **result,
            "run_dir": str(self.run_dir),
        }
        runs.write_report(self.run_dir, report)

    def save(self) -> None:
        """Write everything a resume needs to continue exactly (see :func:`sft`)."""
        assert self.run_dir is not None
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "batches": self.batches,
            "running": self.running[-100:],
            "rng": self.rng.bit_generator.state,
            "global_rng": rng_state(),
            "config": self.config_dict(),
        }
        save_checkpoint(runs.checkpoint_path(self.run_dir), state)

    def load(self) -> None:
        """Restore the run's checkpoint, refusing one of other settings or a finished run."""
        assert self.run_dir is not None
        state = load_checkpoint(self.run_dir)
        saved = state.get("config")
        if not isinstance(saved, dict) or "step" not in state:
            raise CheckpointError(
                f"{str(self.run_dir)!r} holds no fine-tuning checkpoint; start a new run in "
                "another directory."
            )
        runs.check_same_run(self.run_dir, saved, self.config_dict(), SFT_IDENTITY)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.batches = [np.asarray(b, dtype=np.int64) for b in state["batches"]]
        self.running = [float(x) for x in state["running"]]
        self.rng.bit_generator.state = state["rng"]
        set_rng_state(state["global_rng"])
        if runs.is_finished(self.run_dir, steps=self.step):
            runs.check_budget_left(self.run_dir, self.step, self.config.steps, "--steps")


def _length_buckets(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of batches of similar lengths, in random order.

    Sequences are shuffled, cut into chunks of 16 batches, sorted by length within a chunk
    and batched, so that a batch of short reasoning turns is not padded to the length of a
    long dialogue (a 3x waste on a mixture of tasks).
    """
    order = rng.permutation(lengths.size)
    chunk = 16 * batch_size
    batches = []
    for c in range(0, order.size, chunk):
        part = order[c : c + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, part.size, batch_size))
    batches = [b for b in batches if b.size == batch_size] or batches
    return [batches[i] for i in rng.permutation(len(batches))]
