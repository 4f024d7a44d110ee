"""Multi-turn rollout throughput: textgym's KV-reusing token rollout against TRL's multi-turn loop.

Both sides play the same long conversations with the same model (one model object, shared)
and the same seeds, at 2, 4, 8 and 16 agent turns per episode, in one run:

* ``textgym``: :class:`agents.common.rollout.RolloutCollector` through the native vector env.
  Its :class:`~agents.lm.sampler.KVSampler` keeps one KV cache across turns, with one length
  per row (:class:`~agents.lm.row_cache.RowCache`): a user's reply is fed once, on top of
  the conversation's cache, in a forward of only the rows that have news, while the other
  rows decode; nothing is padded into the cache or prefilled again (``reprefill_share`` in
  the JSON is 0), and rows whose episode ended pause.
* ``trl``: TRL's own generation path, ``GRPOTrainer._generate_single_turn`` (a left-padded
  ``transformers.generate`` with TRL's generation config), called once per turn on the whole
  conversation so far, as ``GRPOTrainer._tool_call_loop`` does after each tool result
  (``prompt_ids + completion_ids + suffix_ids``); rows whose episode ended drop out. The loop
  itself is replayed here because TRL's ``environment_factory`` needs a chat template that
  renders tool calls, which textgym's default tokenizer (and model) do not have. TRL's side
  runs as fast as TRL allows on a CPU: no vLLM (GPU only), no gradient checkpointing, the
  default dynamic KV cache within a turn, per-turn budget = the env's (not the whole
  completion budget), fp32.

The env is ``textgym/Dialogue`` at its newest version (``-v1``, the strict user) with
``patience=N-2`` and a user that returns (:class:`~benchmarks.multiturn_rollouts.
ReturningUser`): Dialogue's own scripted user, who starts over on the same questions
whenever it would leave early, so that every episode lasts exactly ``N`` agent turns unless
the model overruns its 24-token turn budget (the env then truncates the episode; the table
gives the turns played on average).

Counts are exact, not estimated: a forward pre-hook on the model reads every call's
``input_ids`` and ``attention_mask``. A row that feeds more than one real token in a call is
prefilling (a prompt, a user's reply, a re-fed conversation); a row that feeds one token is
decoding the token it just sampled. *Generated* tokens are the agent tokens the env took.
Both sides are timed in alternation, ``repeats`` times, and the median per-repeat ratio is
reported, so that a shared machine's load drifts into both alike. One torch thread by
default: on a 2-core machine shared with other jobs, two OpenMP threads wait on each other
whenever one is descheduled (a 16-row decode step measured 3 ms on one thread, 80 ms on two).

    python -m benchmarks.multiturn_throughput           # writes benchmarks/results/multiturn_throughput.*
    python -m benchmarks.multiturn_throughput --quick   # 2 and 4 turns, a small batch
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM

from agents.lm.trainer import resolve_model
from benchmarks.cli import check_positive, check_unique, run_main
from benchmarks.multiturn_rollouts import (
    ENV_ID,
    TURN_BUDGET,
    Counts,
    ForwardCounter,
    ReturningUser,
    TextgymSide,
    TRLSide,
    env_kwargs,
)
from benchmarks.render import panels, save_png, table
from textgym import hub
from textgym.errors import ConfigError
from textgym.files import atomic_write
from textgym.tools import flags
from textgym.tools.flags import FlagParser

RESULTS = Path(__file__).parent / "results"
NAME = "multiturn_throughput"
SIDES = ("textgym", "trl")

__all__ = ["ENV_ID", "SIDES", "ReturningUser", "env_kwargs", "main", "markdown", "measure"]


# -- the measurement -----------------------------------------------------------------------


def measure(
    model: str = "default",
    turns: Sequence[int] = (2, 4, 8, 16),
    batch: int = 16,
    repeats: int = 5,
    threads: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Both sides at every length, in alternation, ``repeats`` times; see the module docstring."""
    torch.set_num_threads(threads)
    path = resolve_model(model)
    lm = AutoModelForCausalLM.from_pretrained(path, **hub.dtype_kwargs(torch.float32))
    budget = TURN_BUDGET
    counter = ForwardCounter(lm)
    rng = np.random.default_rng(seed)
    cells = {(n, s): Counts() for n in turns for s in SIDES}
    runs: dict[tuple[int, str], list[dict[str, float]]] = {k: [] for k in cells}
    with tempfile.TemporaryDirectory() as tmp:
        sides: dict[str, Any] = {
            "textgym": TextgymSide(lm, path, batch, temperature),
            "trl": TRLSide(lm, batch, temperature, budget, tmp),
        }
        for side in sides.values():  # untimed: first calls allocate and warm up
            side.play(min(turns), rng.integers(0, 2**31 - 1, batch).tolist())
        bar = tqdm(total=repeats * len(turns) * len(SIDES), desc=NAME, disable=not progress)
        for rep in range(repeats):
            for n in turns:
                seeds = rng.integers(0, 2**31 - 1, batch).tolist()
                for name in SIDES if (rep + n) % 2 == 0 else SIDES[::-1]:
                    counts = Counts()
                    counter.counts = counts
                    start = time.perf_counter()
                    played = sides[name].play(n, seeds)
                    seconds = time.perf_counter() - start
                    counter.counts = None
                    played.seconds = seconds
                    for k in ("prefill", "decode", "positions", "calls"):
                        setattr(played, k, getattr(counts, k))
                    cells[n, name].add(played)
                    runs[n, name].append({"tokens": played.generated, "seconds": round(seconds, 3)})
                    bar.update()
                    bar.set_postfix_str(f"{n} turns {name} {played.generated / seconds:.0f} tok/s")
        bar.close()
    counter.handle.remove()
    rows = []
    for n in turns:
        row: dict[str, Any] = {"turns": n}
        for name in SIDES:
            c = cells[n, name]
            rates = [r["tokens"] / r["seconds"] for r in runs[n, name]]
            row[name] = {
                "tokens_per_second": round(float(np.median(rates)), 1),
                "prefill_per_generated": round(c.prefill / c.generated, 3),
                "positions_per_generated": round(c.positions / c.generated, 3),
                "agent_turns_mean": round(c.turns / c.episodes, 3),
                "truncated_share": round(c.truncated / c.episodes, 3),
                "prefill_exact": c.prefill == c.expected_prefill,
                # Tokens fed again beyond the design's count: textgym's cache rebuilds.
                "reprefill_share": round(1 - c.expected_prefill / c.prefill, 3),
                "counts": asdict(c) | {"seconds": round(c.seconds, 3)},
                "runs": runs[n, name],
            }
        paired = [
            (a["tokens"] / a["seconds"]) / (b["tokens"] / b["seconds"])
            for a, b in zip(runs[n, "textgym"], runs[n, "trl"], strict=True)
        ]
        row["speedup"] = round(float(np.median(paired)), 3)
        row["prefill_ratio"] = round(
            row["trl"]["prefill_per_generated"] / row["textgym"]["prefill_per_generated"], 3
        )
        rows.append(row)
    return {
        "env_id": ENV_ID,
        "env_setting": (
            f"{ENV_ID} with patience=N-2, user=ReturningUser.factory(N) (the scripted user "
            "starts over instead of leaving early), max_length=min(32+40N, positions-24)"
        ),
        "model": model,
        "batch": batch,
        "turn_budget": budget,
        "repeats": repeats,
        "threads": threads,
        "temperature": temperature,
        "seed": seed,
        "trl_settings": (
            "GRPOTrainer._generate_single_turn per turn on prompt+completion+reply ids (as "
            "_tool_call_loop), transformers.generate with TRL's GenerationConfig (do_sample, "
            "top_k=0, top_p=1, dynamic KV cache), max_completion_length=turn budget, "
            "gradient_checkpointing=False, fp32, use_cpu, no vLLM"
        ),
        "rows": rows,
        "torch": torch.__version__,
        "trl": _version("trl"),
        "transformers": _version("transformers"),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(result: dict[str, Any]) -> str:
    """The README table: tokens/s, and prefill and computed positions per generated token."""
    rows = []
    for r in result["rows"]:
        t, trl = r["textgym"], r["trl"]
        rows.append([
            str(r["turns"]), f"{t['agent_turns_mean']:.1f}",
            f"{t['tokens_per_second']:,.0f}", f"{trl['tokens_per_second']:,.0f}",
            f"**{r['speedup']:.2f}x**",
            f"{t['prefill_per_generated']:.2f} / {trl['prefill_per_generated']:.2f}",
            f"{t['positions_per_generated']:.1f} / {trl['positions_per_generated']:.1f}",
        ])  # fmt: skip
    header = [
        "agent turns", "turns played", "textgym tokens/s", "TRL tokens/s", "textgym / TRL",
        "prefill / token (textgym / TRL)", "positions / token (textgym / TRL)",
    ]  # fmt: skip
    return table(header, rows, "lrrrrrr")


#: The plot's panels: the row key each one draws and its axis label.
PANELS = (
    ("tokens_per_second", "generated tokens / s"),
    ("prefill_per_generated", "prefilled tokens / generated token"),
    ("positions_per_generated", "positions computed / generated token"),
)


def plot(result: dict[str, Any], path: Path) -> None:
    """Tokens/s, prefill and computed positions per generated token against agent turns."""
    fig, axes = panels(len(PANELS), 4.2, 3.4)
    turns = [r["turns"] for r in result["rows"]]
    labels = {"textgym": "textgym (one KV cache)", "trl": "TRL (re-prefill per turn)"}
    for ax, (key, ylabel) in zip(axes, PANELS, strict=True):
        for name, style in (("textgym", "o-"), ("trl", "s--")):
            ax.plot(turns, [r[name][key] for r in result["rows"]], style, label=labels[name])
        ax.set_xscale("log", base=2)
        ax.set_xticks(turns, [str(t) for t in turns])
        ax.set_xlabel("agent turns per episode")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{result['env_id']}, batch {result['batch']}", fontsize=9)
    save_png(fig, path, dpi=110)


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


@dataclass
class MultiturnArgs:
    """The flags of ``python -m benchmarks.multiturn_throughput``."""

    model: str = "default"
    """causal LM: 'default' (textgym's embedded model), a local directory or a hub name"""
    turns: tuple[int, ...] = field(default=(2, 4, 8, 16))
    """agent turns per episode to measure (each at least 2)"""
    batch: int = 16
    """conversations played at once (at least 2: TRL's group)"""
    repeats: int = 5
    """alternating rounds per side and length (the median counts)"""
    threads: int = 1
    """torch CPU threads (1: on a shared 2-core machine two threads stall on each other)"""
    seed: int = 0
    """seed of the reset seeds"""
    quick: bool = False
    """2 and 4 turns, batch 4, one repeat (a smoke test)"""
    progress: bool = True
    """show a progress bar"""
    out: str = str(RESULTS)
    """directory for multiturn_throughput.json/.png/.md"""


def build_parser() -> FlagParser[MultiturnArgs]:
    """The command line of ``python -m benchmarks.multiturn_throughput``."""
    prog, doc = "python -m benchmarks.multiturn_throughput", __doc__.split("\n\n")[0]
    return flags.build_parser(MultiturnArgs, prog, doc)


def execute(args: MultiturnArgs) -> int:
    """Measure with the parsed flags, write JSON, PNG and Markdown, print the table."""
    if args.quick:
        args.turns, args.batch, args.repeats = (2, 4), 4, 1
    for n in args.turns:
        if check_positive(n, "--turns", integer=True) < 2:
            raise ConfigError(f"--turns takes lengths of at least 2 agent turns, got {n}.")
    check_unique(args.turns, "--turns")
    if check_positive(args.batch, "--batch", integer=True) < 2:
        raise ConfigError(f"--batch must be at least 2 (TRL's GRPO group), got {args.batch}.")
    check_positive(args.repeats, "--repeats", integer=True)
    check_positive(args.threads, "--threads", integer=True)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a file; give a directory.")
    result = measure(
        args.model, sorted(args.turns), args.batch, args.repeats, args.threads,
        seed=args.seed, progress=args.progress,
    )  # fmt: skip
    text = markdown(result)
    atomic_write(out / f"{NAME}.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / f"{NAME}.md", text + "\n")
    plot(result, out / f"{NAME}.png")
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.multiturn_throughput [--quick] [--turns 2 4 8 16 --batch 16]``."""
    return run_main(build_parser(), execute, argv)


if __name__ == "__main__":
    raise SystemExit(main())
