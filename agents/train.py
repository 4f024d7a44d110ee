"""``textgym train``: train an LM agent from the command line.

    textgym train --algo ppo --env textgym/Reasoning-v0 --time-budget 600
    textgym train --algo grpo --env textgym/Reasoning-v0 --model ./my_model --seed 2
    textgym train --algo ppo --run-dir runs/x --resume          # continue a killed run
    accelerate launch --multi_gpu --num_processes 2 -m agents.train --algo grpo ... --cpu

Every field of the algorithm's config dataclass is a flag (``--kl-coef 0.05``,
``--no-norm-adv``); ``textgym train --algo ppo --help`` lists them with their docstrings.
Arguments are checked (algorithm, env id, every value's range, model path, vocabulary,
checkpoint) before any training starts. A mistake in them, or a run directory that is in use
or cannot be written, is a :class:`textgym.errors.UserError`: printed as one
``textgym train: error: ...`` line (exit status 2), never a traceback; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agents.lm.config import TrainConfig, field_docs
from agents.lm.trainer import LMTrainer
from textgym.errors import ConfigError, UserError

ALGORITHMS: dict[str, str] = {
    "reinforce": "agents.reinforce:Reinforce",
    "ppo": "agents.ppo:PPO",
    "grpo": "agents.grpo:GRPO",
}


def trainer_class(algo: str) -> type[LMTrainer]:
    """The trainer class of ``algo``.

    Raises:
        ConfigError: an unknown algorithm, with the known ones and the closest match.
    """
    if algo not in ALGORITHMS:
        close = difflib.get_close_matches(algo, list(ALGORITHMS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown algorithm {algo!r}.{hint} Choose one of {sorted(ALGORITHMS)}.")
    module, name = ALGORITHMS[algo].split(":")
    return getattr(importlib.import_module(module), name)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad value raises :class:`ConfigError` instead of printing the whole
    usage (dozens of flags) and exiting: ``main`` prints it in one line like every error."""

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(f"{message}. `{self.prog} --help` lists every flag and its type.")


def _none_or(kind: type) -> Any:
    def convert(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    convert.__name__ = kind.__name__
    return convert


def build_parser(
    config_class: type[TrainConfig], algo: str
) -> tuple[argparse.ArgumentParser, list[str]]:
    """An argparse parser with one flag per config field, documented by its docstring, and
    every flag it accepts (``--no-x`` for booleans; without ``--help``)."""
    parser = _Parser(
        prog=f"textgym train --algo {algo}",
        description=f"Train a causal LM with {algo} on a textgym env.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    actions = [parser.add_argument("--algo", default=algo, help=f"one of {sorted(ALGORITHMS)}")]
    docs = field_docs(config_class)
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        kind = hints[f.name]
        names = [_flag(f.name)]
        if f.name == "env_id":
            names.append("--env")
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": f.default,
            "help": docs.get(f.name, ""),
        }
        args = typing.get_args(kind)
        optional = type(None) in args and (
            typing.get_origin(kind) is typing.Union or isinstance(kind, types.UnionType)
        )
        base = next((a for a in args if a is not type(None)), kind) if optional else kind
        if base is bool:
            action = parser.add_argument(*names, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(base) is Literal:
            action = parser.add_argument(*names, choices=list(typing.get_args(base)), **kwargs)
        else:
            action = parser.add_argument(
                *names, type=_none_or(base) if optional else base, **kwargs
            )
        actions.append(action)
    return parser, [name for action in actions for name in action.option_strings]


def _check_flags(
    parser: argparse.ArgumentParser, known: list[str], argv: Sequence[str], algo: str
) -> None:
    """An unknown flag names the closest ``known`` one (argparse only says "unrecognized")."""
    _, unknown = parser.parse_known_args(argv)
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("--") and a != "--"]
    if not flags:
        return
    flag = flags[0]
    # Initials first (--lr for --learning-rate), then close spellings (--time-budgt).
    close = [k for k in known if "".join(w[0] for w in k[2:].split("-")) == flag[2:]]
    close = close or difflib.get_close_matches(flag, known, n=1)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown flag {flag} for --algo {algo}.{hint} `textgym train --algo {algo} --help` "
        "lists every flag."
    )


def parse_args(argv: Sequence[str]) -> tuple[type[LMTrainer], TrainConfig]:
    """``argv`` -> (trainer class, config); raises :class:`ConfigError` on a bad algorithm."""
    pre = _Parser(prog="textgym train", add_help=False)
    pre.add_argument("--algo", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.algo is None:
        if any(a in ("-h", "--help") for a in argv):
            print(
                f"usage: textgym train --algo {{{','.join(ALGORITHMS)}}} [--help] [flags]\n\n"
                "Train an LM agent on a textgym env. The flags depend on the algorithm:\n"
                "`textgym train --algo ppo --help` lists every one with its meaning.\n\n"
                "  textgym train --algo ppo --env textgym/Reasoning-v0 --time-budget 600\n"
                "  textgym train --algo ppo --run-dir runs/x --resume"
            )
            raise SystemExit(0)
        raise ConfigError(f"Missing --algo: choose one of {sorted(ALGORITHMS)} (e.g. --algo ppo).")
    cls = trainer_class(known.algo)
    parser, flags = build_parser(cls.config_class, known.algo)
    _check_flags(parser, flags, argv, known.algo)
    ns = vars(parser.parse_args(argv))
    if ns.get("resume") and ns.get("run_dir"):
        # A resumed run keeps the settings it was started with (its config.json); flags given
        # now override them, e.g. a larger --total-updates to train on.
        saved = Path(ns["run_dir"]) / "config.json"
        if saved.exists():
            fields = {f.name for f in dataclasses.fields(cls.config_class)}
            stored = _read_config(saved)
            parser.set_defaults(**{k: v for k, v in stored.items() if k in fields})
            ns = vars(parser.parse_args(argv))
    ns.pop("algo")
    return cls, cls.config_class(**ns)


def _read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json``; a torn or foreign file is a clear error, not a traceback."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{str(path)!r} is not a readable run config ({type(exc).__name__}: {exc}); "
            "restore it, or pass every setting as a flag with the file removed."
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(
            f"{str(path)!r} is not a run config (a JSON object of settings); restore it, or "
            "pass every setting as a flag with the file removed."
        )
    return stored


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``textgym train`` (and ``python -m agents.train``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Imported here: transformers takes seconds to import, and importing this module (for
    # its parser) does not need it.
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    try:
        try:
            cls, config = parse_args(argv)
            if not config.progress:
                # --no-progress also silences transformers' bars (loading and saving
                # weights), for this call only: the setting is process-wide.
                hf_logging.disable_progress_bar()
            cls(config).learn()
        except UserError as exc:
            # The user's to fix, and the message says how: no traceback. Anything else is a
            # bug and keeps its traceback.
            print(f"textgym train: error: {exc}", file=sys.stderr)
            return 2
        return 0
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


if __name__ == "__main__":
    raise SystemExit(main())
