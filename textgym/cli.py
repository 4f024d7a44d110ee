"""The ``textgym`` command: ``list | play | train | bench | rate | train-rm``.

``train`` and ``bench`` hand their arguments to ``agents`` and ``benchmarks``; they are
imported only when asked for, so ``textgym list`` stays fast and the package arrows
(agents -> textgym, never back) hold at import time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "play": ("textgym.play", "play the agent yourself in the terminal (textgym play <id>)"),
    "train": ("agents.train", "train an agent (textgym train --algo ppo --env <id>)"),
    "bench": ("benchmarks.compare", "compare algorithms across the suite (textgym bench)"),
    "rate": ("textgym.rewards.human", "rate agent turns in the terminal (human feedback)"),
    "train-rm": ("textgym.rewards.human", "train a reward model from collected ratings"),
}


def _list(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from textgym.envs import ENV_SPECS, markdown_table, write_table

    if args.write:
        try:
            write_table(args.write)
        except (OSError, ValueError) as exc:
            print(f"textgym list: error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.markdown:
        print(markdown_table())
        return 0

    width = max(len(s.id) for s in ENV_SPECS)
    for spec in ENV_SPECS:
        env = gym.make(spec.id).unwrapped
        sizes = f"V={env.action_space.n} L={env.max_length}"
        print(f"{spec.id:<{width}}  {sizes:<14} {spec.description}")
        env.close()
    return 0


def _delegate(module: str, what: str, argv: Sequence[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        print(f"textgym {what}: {module} is not available ({exc}).", file=sys.stderr)
        return 2
    if what in ("rate", "train-rm"):
        # One module, two sub-commands: it parses the sub-command itself, under our name.
        return int(mod.main([what, *argv], prog="textgym") or 0)
    return int(mod.main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="textgym", description="Text tasks as token-level Gymnasium environments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show every registered environment id")
    listing.add_argument("--markdown", action="store_true", help="print the Markdown table")
    listing.add_argument(
        "--write", metavar="FILE", help="update the table between FILE's env-table markers"
    )
    listing.set_defaults(func=_list)
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if argv and argv[0] in COMMANDS:
        module, _ = COMMANDS[argv[0]]
        return _delegate(module, argv[0], argv[1:])
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # `textgym list | head`: the reader left; that is not an error. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
