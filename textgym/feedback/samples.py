"""Samples to rate: ``{"context", "text"}`` to score, ``{"context", "a", "b"}`` to compare.

They come from a JSONL file a person wrote (:func:`samples_from_file`) or from an env, as the
oracle's first turn next to a corrupted copy of it (:func:`samples_from_env`); either way
each is checked before the first one is shown. :func:`sample_id` names a sample by its texts,
so that a resumed session skips what the log already holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import textgym  # noqa: F401  (registers the ids samples_from_env makes)
from textgym.feedback.checks import MAX_SEED, check_int
from textgym.feedback.log import RatingsFileError, read_bytes


def sample_id(*texts: str) -> str:
    """A stable id for a sample, from its texts."""
    return hashlib.sha1("\x1f".join(texts).encode()).hexdigest()[:16]


def samples_from_file(path: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Samples from JSONL: ``{"context", "text"}`` to score or ``{"context", "a", "b"}`` to compare.

    The whole file is read and checked at once, so a bad file is refused before the first
    sample is shown.

    Raises:
        RatingsFileError: a missing or unreadable file, or a bad line (with its number).
    """
    path = Path(path)
    data = read_bytes(path, "samples file", 'write one {"context", "text"} object per line')
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RatingsFileError(f"{path} is not UTF-8 text ({exc}).") from exc
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RatingsFileError(f"{path}:{number}: not JSON ({exc}).") from exc
        if (
            not isinstance(record, dict)
            or "context" not in record
            or not ("text" in record or {"a", "b"} <= set(record))
        ):
            got = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise RatingsFileError(
                f'{path}:{number}: a sample needs "context" and "text" (to score) or "a" and '
                f'"b" (to compare); got {got}.'
            )
        samples.append({k: str(v) for k, v in record.items() if k in ("context", "text", "a", "b")})
    return iter(samples)


def samples_from_env(
    env_id: str, n: int, seed: int = 0, noise: float = 0.5
) -> Iterator[dict[str, str]]:
    """First-turn samples from an env: the oracle's turn and a corrupted one per problem.

    Each sample has ``context``, ``a`` and ``b`` (in random order) and ``text`` (one of
    them), so the same stream serves score and preference sessions.
    """
    check_int("n (--n)", n, 0)
    check_int("seed (--seed)", seed, 0, MAX_SEED)
    # Made now, not at the first sample: an unknown id is refused before any log is opened.
    env = gym.make(env_id).unwrapped
    return _env_samples(env, n, seed, noise)


def _env_samples(env: Any, n: int, seed: int, noise: float) -> Iterator[dict[str, str]]:
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(env.action_masks())
    allowed = allowed[allowed != env.chat.eot_id]
    try:
        for i in range(n):
            env.reset(seed=seed + i)
            good = env.task.oracle(env.problem, env.turns)
            good_ids = env.tokenizer.encode(good, add_special_tokens=False) or [
                int(rng.choice(allowed))
            ]
            bad_ids = [int(rng.choice(allowed)) if rng.random() < noise else t for t in good_ids]
            if bad_ids == good_ids:
                bad_ids[int(rng.integers(len(bad_ids)))] = int(rng.choice(allowed))
            bad = env.tokenizer.decode(bad_ids)
            a, b = (good, bad) if rng.random() < 0.5 else (bad, good)
            yield {
                "context": env.problem.prompt,
                "a": a,
                "b": b,
                "text": a if rng.random() < 0.5 else b,
            }
    finally:
        env.close()
