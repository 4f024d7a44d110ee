"""Oracle demonstrations as JSONL, for supervised warm starts and offline RL.

Demonstrations are played in the env itself: the oracle's turns are written token by
token, so multi-turn demonstrations contain the scripted user's real replies and every
record carries the env's own reward and success flag. With ``noise > 0`` each oracle turn
is, with that probability, replaced by the task's :meth:`~textgym.tasks.base.Task.corrupt`
version (a wrong number, slot or action), as a human annotator would sometimes slip;
``abstain`` is the share of those slips that say "i don't know." instead, an annotator who
admits not knowing (a model that never saw an abstention never samples one for RL to
reinforce).

One record per episode::

    {"env_id": "textgym/Reasoning-v0", "split": "train", "seed": 0, "problem_id": "...",
     "prompt": "...", "answer": "16", "turns": [{"role": "user", "text": "..."},
     {"role": "agent", "text": "..."}], "response": "<last agent turn>",
     "return": 1.1, "success": true, "noisy": false}

Command line::

    python -m textgym.tasks.demonstrations textgym/Reasoning-v0 -n 2000 -o demos.jsonl --noise 0.1
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

import textgym  # noqa: F401  (registers the ids)
from textgym.cli import run_command
from textgym.core import TextEnv
from textgym.errors import ConfigError
from textgym.files import atomic_write
from textgym.rewards.verifiable import ABSTENTION
from textgym.tasks.checks import check_int, check_real
from textgym.tools.flags import build_parser, flag

PROG = "python -m textgym.tasks.demonstrations"


def _make(env_id: str, split: str) -> TextEnv:
    env = gym.make(env_id).unwrapped
    assert isinstance(env, TextEnv)
    if split == "train" and getattr(env.task, "split", "train") == "train":
        return env
    params = inspect.signature(type(env.task)).parameters
    if "split" not in params:
        raise ConfigError(
            f"{env_id} has no held-out split (its task {env.task.name!r} takes no 'split' "
            "argument); use split='train'."
        )
    return gym.make(env_id, split=split).unwrapped  # type: ignore[return-value]


def generate_demonstrations(
    env_id: str,
    n: int,
    noise: float = 0.0,
    seed: int = 0,
    split: str = "train",
    abstain: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` demonstration records; episode ``i`` is reset with ``seed + i``.

    Args:
        env_id: A registered textgym id.
        n: Number of episodes.
        noise: Probability that an oracle turn is replaced by a corrupted one.
        seed: Seeds the env (per episode) and the noise (once).
        split: ``"train"`` or ``"test"``.
        abstain: Share of the corrupted turns that abstain (:data:`ABSTENTION`) instead.
    """
    noise = check_real(noise, "noise", 0.0, 1.0)
    abstain = check_real(abstain, "abstain", 0.0, 1.0)
    n = check_int(n, "n", 0)
    seed = check_int(seed, "seed", 0)
    env = _make(env_id, split)
    # The noise has its own RNG so that the env's episodes do not depend on the noise rate.
    noise_rng = np.random.default_rng([seed, 1])
    for i in range(n):
        env.reset(seed=seed + i)
        assert env.problem is not None
        total, done, noisy, info = 0.0, False, False, {}
        while not done:
            text = env.task.oracle(env.problem, tuple(env.turns))
            if noise > 0 and noise_rng.random() < noise:
                corrupted = env.task.corrupt(env.problem, tuple(env.turns), text, noise_rng)
                # Drawn only when asked, so abstain=0 keeps every older stream of slips.
                if abstain > 0 and noise_rng.random() < abstain:
                    corrupted = ABSTENTION
                noisy = noisy or corrupted != text
                text = corrupted
            for token in env.encode_turn(text):
                _, reward, terminated, truncated, info = env.step(token)
                total += float(reward)
                done = terminated or truncated
                if "turn_text" in info:  # the turn closed (end of turn or a length limit)
                    break
        agent_turns = [t.text for t in env.turns if t.role == "agent"]
        yield {
            "env_id": env_id,
            "split": split,
            "seed": seed + i,
            "problem_id": env.problem.id,
            "prompt": env.problem.prompt,
            "answer": env.problem.answer,
            "turns": [{"role": t.role, "text": t.text} for t in env.turns],
            "response": agent_turns[-1] if agent_turns else "",
            "return": total,
            "success": bool(info.get("success", False)),
            "noisy": noisy,
        }


def export_demonstrations(
    env_id: str,
    n: int,
    path: str | os.PathLike[str],
    noise: float = 0.0,
    seed: int = 0,
    split: str = "train",
    abstain: float = 0.0,
) -> Path:
    """Write ``n`` oracle demonstrations of ``env_id`` to ``path`` as JSONL, atomically (an
    interrupted export leaves an older file whole, never a torn one).

    See :func:`generate_demonstrations` for the arguments; returns the path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = generate_demonstrations(env_id, n, noise, seed, split, abstain)
    return atomic_write(out, "".join(json.dumps(record) + "\n" for record in records))


def load_demonstrations(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`export_demonstrations`."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class ExportArgs:
    """The flags of ``python -m textgym.tasks.demonstrations``."""

    env_id: str = flag(positional=True)
    """a registered id, e.g. textgym/Reasoning-v0"""
    n: int = flag(1000, aliases=("-n",))
    """number of episodes"""
    out: str = flag("demonstrations.jsonl", aliases=("-o",))
    """output path (JSONL)"""
    noise: float = 0.0
    """label-noise rate per turn: the probability that an oracle turn is corrupted"""
    abstain: float = 0.0
    """share of the corrupted turns that say "i don't know." instead"""
    seed: int = 0
    """seed of the first episode (episode i is reset with seed + i) and of the noise"""
    split: Literal["train", "test"] = "train"
    """the problems to play: the train or the held-out test split"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textgym.tasks.demonstrations <env_id> -n N -o out.jsonl [--noise p]``."""
    args = build_parser(ExportArgs, PROG, "Export oracle demonstrations as JSONL.").parse(argv)
    out = export_demonstrations(
        args.env_id, args.n, args.out, args.noise, args.seed, args.split, args.abstain
    )
    records = load_demonstrations(out)
    rate = sum(r["success"] for r in records) / max(len(records), 1)
    print(f"wrote {len(records)} demonstrations to {out} (success rate {rate:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(PROG, main, sys.argv[1:]))
