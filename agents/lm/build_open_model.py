"""Build textgym's open default model: a small GPT-2 over the open tokenizer, warm-started.

    python -m agents.lm.build_open_model            # writes agents/lm/open_model/

The model ``--model default`` loads for tasks whose text is open (``Task.open_text``, the
ReasoningGym ids), whose envs play on the open byte-level BPE (``textgym/data/
open_tokenizer``, 4,096 tokens, ChatML). The recipe is the closed model's
(:mod:`agents.lm.build_default_model`), deterministic for a given machine and thread count:

1. play oracle demonstrations of every env in :data:`DEMONSTRATIONS` (train split) with
   ``noise=0.3``: three answers in ten are an annotator's slip (another problem's answer),
   and one slip in four (:data:`ABSTAIN`) says "i don't know." instead, so that the model
   can abstain at all and RL can teach it when to (a model that never saw an abstention
   never samples one);
   ``ReasoningGym-Mix-v0`` is left out, as its problems are the four kinds' own. They are
   played in the env with its generator's index range widened to :data:`POOL_SIZE`: the
   same generator, config, seed and train split (a hash of the question text, so never a
   test question), with more distinct questions than the env's 8,000 train items, which a
   model would otherwise learn by heart (spell_backward: 19% held-out success from 20,000
   demonstrations of the wide pool, 16% from 8,000 of the env's own, on a clean trial);
2. fit a fresh GPT-2 (:data:`ARCHITECTURE`, contexts up to the longest variant's) to them by
   supervised learning on the agent's tokens (:mod:`agents.lm.supervised`). Two layers:
   for the same minutes, twice the steps of four layers learn far more (spell_backward
   with noise 0.3: 34% held-out after 3,000 steps of two layers, 1% after 1,500 of four);
3. score it greedily on each of :data:`EVALUATED`'s held-out split and record everything in
   ``build_info.json`` next to the weights and the open tokenizer's files.

The mixture leans on the two kinds RL is measured on. spell_backward is the slowest to learn:
with as many of its demonstrations as of products, a two-layer model under ``noise=0.3`` had
not yet learned to reverse held-out words after 6,000 steps (3% success), with half again as
many it had (36%). Reversing a list of 2-3 words (``ReasoningGym-Lists-v0``) is the second:
warm-started on it, the shipped model went from 0% to 44% held-out in 1,800 steps and RL
lifted it further, where on products it got only the zero products right, on two-term sums
only the one-digit ones (whose few questions RL learned by heart: 26% -> 46% on train, 28% ->
32% held-out), and on longer lists or needle-in-a-haystack lookups almost nothing (0-1.2%
after 1,500-1,800 steps). The generators of these variants iterate no sets of strings, so
their problems, and the model, do not depend on ``PYTHONHASHSEED`` (checked for
word_sequence_reversal: the same questions under two hash seeds). The result is mediocre on
purpose (the format, the easy problems and the slips; ``build_info.json`` holds its greedy
success per variant), the starting point the RL agents improve with the verifiable reward.
Takes about fifteen minutes on one CPU thread.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import textgym
from agents.lm.build_default_model import _write as write_model_dir
from agents.lm.build_default_model import evaluate_model, fit_gpt2, run_build
from agents.lm.default_model import OPEN_BUILD_COMMAND, OPEN_MODEL_DIR, open_tokenizer
from agents.lm.supervised import SFTConfig, encode_demonstration
from textgym.cli import run_command
from textgym.errors import ConfigError
from textgym.rewards.verifiable import is_abstention
from textgym.tasks import TASKS
from textgym.tasks.demonstrations import generate_demonstrations
from textgym.tokenizer import vocab_digest, words_size

#: (env id, number of demonstrations) of the train split; envs not registered are skipped.
#: List reversal and spell_backward, the kinds RL is measured on, get most of them.
DEMONSTRATIONS: tuple[tuple[str, int], ...] = (
    ("textgym/ReasoningGym-v0", 2000),
    ("textgym/ReasoningGym-Arithmetic-v0", 2000),
    ("textgym/ReasoningGym-Lists-v0", 24000),
    ("textgym/ReasoningGym-Algebra-v0", 2000),
    ("textgym/ReasoningGym-Logic-v0", 600),
    ("textgym/ReasoningGym-Strings-v0", 36000),
)
#: Envs scored greedily after SFT (held-out split).
EVALUATED: tuple[str, ...] = (
    *(env_id for env_id, _ in DEMONSTRATIONS),
    "textgym/ReasoningGym-Mix-v0",
)
NOISE = 0.3
#: The share of the slips that abstain ("i don't know.") instead of giving a wrong answer.
ABSTAIN = 0.25
SEED = 0
#: The generator index range demonstrations are drawn from (the envs' own is 10,000).
POOL_SIZE = 100_000
#: ``n_positions`` covers the longest registered variant's context (Mix-v0: 636 tokens).
ARCHITECTURE: dict[str, int] = {"n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 1024}
SFT = SFTConfig(
    steps=8000, batch_size=32, learning_rate=1e-3, warmup=100, schedule="constant", seed=SEED
)


def build(
    out: str | Path = OPEN_MODEL_DIR,
    demonstrations: Sequence[tuple[str, int]] = DEMONSTRATIONS,
    noise: float = NOISE,
    abstain: float = ABSTAIN,
    sft_config: SFTConfig = SFT,
    architecture: dict[str, int] | None = None,
    evaluated: Sequence[str] = EVALUATED,
    pool_size: int | None = POOL_SIZE,
    eval_episodes: int = 256,
    threads: int = 1,
    verbose: bool = True,
) -> dict[str, Any]:
    """Build the model into ``out`` (replaced atomically); returns the build info.

    ``pool_size`` widens the generators' index range for the demonstrations (``None``: the
    envs' own); the other arguments are the recipe's steps above.

    Raises:
        ConfigError: ``n_positions`` is shorter than an evaluated env's contexts.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(sft_config.seed)
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    tokenizer = open_tokenizer()
    arch = dict(ARCHITECTURE if architecture is None else architecture)
    registered = set(textgym.env_ids())
    plan = [(env_id, n) for env_id, n in demonstrations if env_id in registered]
    scored = [env_id for env_id in evaluated if env_id in registered]
    skipped = sorted(({e for e, _ in demonstrations} | set(evaluated)) - registered)
    contexts = {env_id: _context(env_id) for env_id in scored}
    if contexts and max(contexts.values()) > arch["n_positions"]:
        raise ConfigError(
            f"n_positions={arch['n_positions']} is shorter than the contexts of the envs "
            f"scored ({contexts}); raise it or score fewer envs."
        )

    sequences: list[tuple[np.ndarray, np.ndarray]] = []
    data: dict[str, Any] = {}
    for k, (env_id, n) in enumerate(plan):
        with _wide_pool(env_id, pool_size) as played:
            records = list(
                generate_demonstrations(
                    played, n, noise=noise, seed=SEED + 100_000 * k, abstain=abstain
                )
            )
        sequences.extend(encode_demonstration(r, tokenizer, arch["n_positions"]) for r in records)
        data[env_id] = {
            "episodes": len(records),
            "noisy": float(np.mean([r["noisy"] for r in records])),
            "abstained": float(np.mean([is_abstention(r["response"]) for r in records])),
            "success": float(np.mean([r["success"] for r in records])),
        }
        say(f"demonstrations {env_id}: {data[env_id]}")

    vocab = words_size(tokenizer)
    model, n_params, metrics = fit_gpt2(sequences, tokenizer, arch, sft_config, say)

    scores: dict[str, Any] = {}
    for env_id in scored:
        scores[env_id] = evaluate_model(model, tokenizer, env_id, eval_episodes)
        say(f"greedy {env_id}: {scores[env_id]}")
    info = {
        "command": OPEN_BUILD_COMMAND,
        "seed": SEED,
        "noise": noise,
        "abstain": abstain,
        "pool_size": pool_size,
        "demonstrations": data,
        "skipped_envs": skipped,
        "contexts": contexts,
        "architecture": arch,
        "parameters": n_params,
        "vocab_size": vocab,
        "tokenizer": "textgym/data/open_tokenizer",
        "tokenizer_sha256": vocab_digest(tokenizer, vocab),
        "sft": {**vars(sft_config), **metrics},
        "greedy_eval": scores,
        "build_seconds": round(time.perf_counter() - start, 1),
        "threads": threads,
        "torch": torch.__version__,
    }
    write_model_dir(model, tokenizer, info, Path(out))
    say(f"wrote {out} in {info['build_seconds']}s")
    return info


@contextlib.contextmanager
def _wide_pool(env_id: str, size: int | None) -> Iterator[str]:
    """An id for ``env_id`` with ``size=size`` (registered while in use), or ``env_id``
    itself when its task takes no ``size`` or ``size`` is None."""
    spec = gym.spec(env_id)
    task = TASKS.get(spec.kwargs.get("task", ""))
    if size is None or task is None or "size" not in inspect.signature(task).parameters:
        yield env_id
        return
    wide = f"textgym-build/{env_id.partition('/')[2]}"
    kwargs = {**spec.kwargs, "size": size}
    gym.register(wide, spec.entry_point, vector_entry_point=spec.vector_entry_point, kwargs=kwargs)
    try:
        yield wide
    finally:
        del gym.registry[wide]


def _context(env_id: str) -> int:
    """The longest context the env makes (its ``max_length``)."""
    env = gym.make(env_id)
    try:
        return int(env.unwrapped.max_length)
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.lm.build_open_model [--out DIR] [--steps N]``."""
    return run_build(argv, OPEN_BUILD_COMMAND, __doc__, build, SFT)


if __name__ == "__main__":
    raise SystemExit(run_command(OPEN_BUILD_COMMAND, main))
