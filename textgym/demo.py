"""Make an env and play one episode with the task's oracle: ``python -m textgym.demo <id>``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym

import textgym  # noqa: F401  (registers the ids)
from textgym.cli import run_command
from textgym.errors import ConfigError
from textgym.tools.flags import build_parser, flag

PROG = "python -m textgym.demo"


@dataclass
class DemoArgs:
    """The flags of ``python -m textgym.demo``."""

    env_id: str = flag("textgym/Copy-v0", positional=True)
    """the env id to play (`textgym list` shows them)"""
    seed: int = 0
    """seed of the episode"""


def main(argv: Sequence[str] | None = None) -> int:
    """Play one oracle episode and print the conversation, rewards and success.

    Raises:
        ConfigError: a bad flag or a negative ``--seed``.
        gymnasium.error.UnregisteredEnv: an unknown env id (``python -m textgym.demo``
            prints it in one line with the closest registered id).
    """
    args = build_parser(DemoArgs, PROG, __doc__).parse(argv)
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}.")
    env = gym.make(args.env_id, render_mode="ansi")
    env.reset(seed=args.seed)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        total += float(reward)
        done = terminated or truncated
    print(env.render())
    print(
        f"return={total:.3f} success={info.get('success')} components={info.get('reward_components')}"
    )
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(PROG, main, sys.argv[1:]))
