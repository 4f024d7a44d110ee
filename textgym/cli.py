"""The ``textgym`` command: ``list | play | train | bench``.

``train`` and ``bench`` hand their arguments to ``agents`` and ``benchmarks``; they are
imported only when asked for, so ``textgym list`` stays fast and the package arrows
(agents -> textgym, never back) hold at import time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


def _list(_: argparse.Namespace) -> int:
    import gymnasium as gym

    from textgym.envs import ENV_SPECS

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
    return int(mod.main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="textgym", description="Text tasks as token-level Gymnasium environments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show every registered environment id").set_defaults(func=_list)
    for name, help_ in [
        ("play", "play the agent yourself in the terminal (textgym play <id>)"),
        ("train", "train an agent (textgym train --algo ppo --env <id>)"),
        ("bench", "compare algorithms across the suite (textgym bench --preset quick)"),
    ]:
        sub.add_parser(name, help=help_, add_help=False)
    if argv and argv[0] in ("play", "train", "bench"):
        module = {"play": "textgym.play", "train": "agents.train", "bench": "benchmarks.compare"}
        return _delegate(module[argv[0]], argv[0], argv[1:])
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
