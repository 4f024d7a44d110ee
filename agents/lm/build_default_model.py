"""Build textgym's default model: a small GPT-2 warm-started on noisy oracle demonstrations.

    python -m agents.lm.build_default_model            # writes agents/lm/default_model/

The recipe, deterministic for a given machine and thread count (all seeds fixed):

1. export oracle demonstrations of every env in :data:`DEMONSTRATIONS` (train split) with
   ``noise=0.3``: three turns in ten carry an annotator's slip (a wrong number, slot or
   action), like the imperfect human labels of real projects;
2. fit a fresh GPT-2 (:data:`ARCHITECTURE`) to them by supervised learning on the agent's
   tokens (:mod:`agents.lm.supervised`);
3. score it greedily on each env's held-out split and record everything in
   ``build_info.json`` next to the weights.

The result is a mediocre model (it learned the format and part of the arithmetic, plus the
slips), which is the starting point the RL agents improve with the verifiable reward.
Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import textgym
from agents.common.rollout import RolloutCollector, rollout_metrics
from agents.lm.default_model import DEFAULT_MODEL_DIR
from agents.lm.envs import has_split, make_envs
from agents.lm.policy import LMPolicy
from agents.lm.supervised import SFTConfig, encode_demonstration, sft
from textgym.cli import run_command
from textgym.tasks.demonstrations import export_demonstrations, load_demonstrations
from textgym.tokenizer import default_tokenizer, vocab_digest, words_size
from textgym.tools.flags import build_parser

#: (env id, number of demonstrations); envs not registered yet are skipped.
DEMONSTRATIONS: tuple[tuple[str, int], ...] = (
    ("textgym/Reasoning-v0", 8000),
    ("textgym/Copy-v0", 300),
    ("textgym/CustomerService-v0", 4000),
    ("textgym/Dialogue-v0", 1000),
)
NOISE = 0.3
SEED = 0
ARCHITECTURE: dict[str, int] = {"n_embd": 128, "n_layer": 4, "n_head": 4, "n_positions": 512}
SFT = SFTConfig(
    steps=1800, batch_size=32, learning_rate=1e-3, warmup=100, schedule="constant", seed=SEED
)


def build(
    out: str | Path = DEFAULT_MODEL_DIR,
    demonstrations: Sequence[tuple[str, int]] = DEMONSTRATIONS,
    noise: float = NOISE,
    sft_config: SFTConfig = SFT,
    architecture: dict[str, int] | None = None,
    eval_episodes: int = 256,
    threads: int = 2,
    verbose: bool = True,
) -> dict[str, Any]:
    """Build the model into ``out`` (replaced atomically); returns the build info."""
    torch.set_num_threads(threads)
    torch.manual_seed(sft_config.seed)
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    tokenizer = default_tokenizer()
    arch = dict(ARCHITECTURE if architecture is None else architecture)
    registered = set(textgym.env_ids())
    plan = [(env_id, n) for env_id, n in demonstrations if env_id in registered]
    skipped = [env_id for env_id, _ in demonstrations if env_id not in registered]

    sequences: list[tuple[np.ndarray, np.ndarray]] = []
    data: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (env_id, n) in enumerate(plan):
            path = Path(tmp) / f"{k}.jsonl"
            export_demonstrations(env_id, n, path, noise=noise, seed=SEED + 100_000 * k)
            records = load_demonstrations(path)
            for r in records:
                sequences.append(encode_demonstration(r, tokenizer, arch["n_positions"]))
            data[env_id] = {
                "episodes": len(records),
                "noisy": float(np.mean([r["noisy"] for r in records])),
                "success": float(np.mean([r["success"] for r in records])),
            }
            say(f"demonstrations {env_id}: {data[env_id]}")

    model, n_params, metrics = fit_gpt2(sequences, tokenizer, arch, sft_config, say)

    scores: dict[str, Any] = {}
    for env_id, _ in plan:
        scores[env_id] = evaluate_model(model, tokenizer, env_id, eval_episodes)
        say(f"greedy {env_id}: {scores[env_id]}")
    info = {
        "command": "python -m agents.lm.build_default_model",
        "seed": SEED,
        "noise": noise,
        "demonstrations": data,
        "skipped_envs": skipped,
        "architecture": arch,
        "parameters": n_params,
        "vocab_size": words_size(tokenizer),
        "tokenizer_sha256": _vocab_hash(tokenizer),
        "sft": {**{k: v for k, v in vars(sft_config).items()}, **metrics},
        "greedy_eval": scores,
        "build_seconds": round(time.perf_counter() - start, 1),
        "threads": threads,
        "torch": torch.__version__,
    }
    _write(model, tokenizer, info, Path(out))
    say(f"wrote {out} in {info['build_seconds']}s")
    return info


def fit_gpt2(
    sequences: Sequence[tuple[np.ndarray, np.ndarray]],
    tokenizer: Any,
    arch: dict[str, int],
    sft_config: SFTConfig,
    say: Callable[..., None],
) -> tuple[Any, int, dict[str, float]]:
    """A fresh GPT-2 (``arch``) fitted to ``sequences`` by SFT on the agent's tokens.

    Returns:
        The model, its parameter count and the SFT metrics.
    """
    # Imported here: transformers takes seconds to import, and only a build needs it.
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        # The words only: the tokenizer's spare slots spell nothing, and a model that ends
        # where they begin keeps working when a family's new word fills one (see
        # textgym.tokenizer); a rebuild then covers the new word.
        vocab_size=words_size(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **arch,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"SFT of a {n_params / 1e6:.2f}M-parameter GPT-2 on {len(sequences)} sequences")
    metrics = sft(
        model,
        sequences,
        sft_config,
        pad_id=tokenizer.pad_token_id,
        log=lambda step, m: say(
            f"  step {step}: loss {m['sft/loss']:.4f} ({m['sft/seconds']:.0f}s)"
        ),
    )
    return model, n_params, metrics


@torch.no_grad()
def evaluate_model(
    model: Any, tokenizer: Any, env_id: str, episodes: int, rows: int = 64
) -> dict[str, float]:
    """Greedy success rate and return on the env's held-out split (train if it has none)."""
    split = "test" if has_split(env_id) else None
    envs = make_envs(env_id, rows, None, split)
    collector = RolloutCollector(envs, LMPolicy(model, len(tokenizer)))
    played = collector.collect_greedy(episodes)
    envs.close()
    m = rollout_metrics(played, prefix="eval")
    return {"split": split or "train", **{k.split("/")[1]: round(v, 4) for k, v in m.items()}}


def _vocab_hash(tokenizer: Any) -> str:
    """The hash of the vocabulary the model covers (its spare slots left out)."""
    return vocab_digest(tokenizer)


def _write(model: Any, tokenizer: Any, info: dict[str, Any], out: Path) -> None:
    """Write into a sibling temp dir, then swap it in, so a failed build leaves no half model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
        # mkdtemp makes a private directory; the shipped model is ordinary package data.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


PROG = "python -m agents.lm.build_default_model"


@dataclass
class BuildArgs:
    """The flags of the model builders (``python -m agents.lm.build_default_model``,
    ``python -m agents.lm.build_open_model``)."""

    out: str | None = None
    """output directory, replaced atomically (default: where the model ships)"""
    steps: int | None = None
    """SFT steps (default: the recipe's)"""
    noise: float = NOISE
    """label-noise rate of the demonstrations"""
    threads: int | None = None
    """torch threads (default: the recipe's)"""
    eval_episodes: int = 256
    """greedy eval episodes per env"""


def run_build(
    argv: Sequence[str] | None, prog: str, doc: str, build_fn: Callable[..., Any], recipe: SFTConfig
) -> int:
    """Parse a builder's flags (:class:`BuildArgs`) and run ``build_fn`` with them."""
    args = build_parser(BuildArgs, prog, doc.split("\n\n")[0]).parse(argv)
    given = {"out": args.out, "threads": args.threads}
    steps = recipe.steps if args.steps is None else args.steps
    build_fn(
        sft_config=SFTConfig(**{**vars(recipe), "steps": steps}),
        noise=args.noise,
        eval_episodes=args.eval_episodes,
        **{k: v for k, v in given.items() if v is not None},
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.lm.build_default_model [--out DIR] [--steps N]``."""
    return run_build(argv, PROG, __doc__, build, SFT)


if __name__ == "__main__":
    raise SystemExit(run_command(PROG, main))
