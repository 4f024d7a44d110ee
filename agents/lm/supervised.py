"""Supervised warm start: fit a causal LM to demonstrations, with loss on the agent's tokens only.

A demonstration record (``textgym.tasks.demonstrations``) is laid out exactly as the env
lays out its context, ``<user> prompt <eot> <agent> turn <eot> <user> reply <eot> <agent>
turn <eot>``, so that the warm-started model sees at RL time the contexts it was trained
on. The loss covers the agent's turns and their closing ``<eot>``; prompts and users'
replies are context only, as they are for the policy gradient later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

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
from textgym.tokenizer import ChatFormat


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
    ids: list[int] = []
    target: list[bool] = []
    for i, turn in enumerate(turns):
        text_ids = tokenizer.encode(turn["text"], add_special_tokens=False)
        if turn["role"] == "user":
            # The env writes <user> text <eot> <agent>; the first turn has no preceding eot.
            piece = [*chat.user_ids, *text_ids, chat.eot_id, *chat.agent_ids]
            ids.extend(piece)
            target.extend([False] * len(piece))
        else:
            piece = [*text_ids, chat.eot_id]
            ids.extend(piece)
            target.extend([True] * len(piece))
        del i
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
) -> dict[str, float]:
    """Train ``model`` on ``(ids, agent_mask)`` sequences; returns final metrics.

    Deterministic for a given seed, thread count and machine: batches are drawn from a
    seeded numpy RNG and nothing else is random.
    """
    if not sequences:
        raise ValueError("sft() got no sequences; export demonstrations first.")
    config.validate()  # a dataclass is mutable: checked again before any step
    rng = np.random.default_rng(config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    device = next(model.parameters()).device
    lengths = np.array([ids.size for ids, _ in sequences])
    batches: list[np.ndarray] = []
    start = time.perf_counter()
    running = []
    for step in range(config.steps):
        if not batches:
            batches = _length_buckets(lengths, config.batch_size, rng)
        picks = batches.pop()
        width = max(sequences[i][0].size for i in picks)
        ids = np.full((len(picks), width), pad_id, dtype=np.int64)
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
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        sched.step()
        running.append(loss.item())
        if log is not None and ((step + 1) % log_every == 0 or step + 1 == config.steps):
            log(
                step + 1,
                {
                    "sft/loss": float(np.mean(running[-log_every:])),
                    "sft/seconds": time.perf_counter() - start,
                },
            )
    model.eval()
    return {"sft/loss": float(np.mean(running[-50:])), "sft/seconds": time.perf_counter() - start}


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
