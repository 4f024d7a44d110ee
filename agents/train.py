"""``textgym train``: train an agent (an LM, or a tabular learner) from the command line.

    textgym train --algo ppo --env textgym/Reasoning-v0 --time-budget 600
    textgym train --algo grpo --env textgym/Reasoning-v0 --model ./my_model --seed 2
    textgym train --algo ppo --run-dir runs/x --resume          # continue a killed run
    textgym train --algo qlearning --env textgym/Copy-Tiny-v0 --total-timesteps 2000 \
        --seed 0 --run-dir runs/q
    accelerate launch --multi_gpu --num_processes 2 -m agents.train --algo grpo ... --cpu

Every algorithm is a class with a config dataclass (``config_class``) that is built from its
config and trained by ``learn()`` (:class:`Algorithm`): the LM trainers
(:class:`agents.lm.trainer.LMTrainer`) and the tabular runs (:mod:`agents.tabular.run`)
alike, each writing the one run directory of :mod:`textgym.runs`. Every field of the config
dataclass is a flag (``--kl-coef 0.05``, ``--no-norm-adv``); ``textgym train --algo ppo
--help`` lists them with their docstrings.
Arguments are checked (algorithm, env id, every value's range, model path, vocabulary,
checkpoint) before any training starts. A mistake in them, or a run directory that is in use
or cannot be written, is a :class:`textgym.errors.UserError`: printed as one
``textgym train: error: ...`` line (exit status 2), never a traceback; a traceback means a bug.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textgym import runs
from textgym.errors import ConfigError, UserError, did_you_mean
from textgym.tools.flags import Flag, FlagParser, peek
from textgym.tools.flags import build_parser as flag_parser

#: Every algorithm ``--algo`` names, as ``module:class`` (imported only when chosen).
ALGORITHMS: dict[str, str] = {
    "reinforce": "agents.reinforce:Reinforce",
    "ppo": "agents.ppo:PPO",
    "grpo": "agents.grpo:GRPO",
    "qlearning": "agents.tabular.run:QLearningRun",
    "sarsa": "agents.tabular.run:SARSARun",
}


class Algorithm(Protocol):
    """What ``textgym train`` needs of an algorithm class.

    ``config_class`` is a dataclass whose fields (each with a one-line docstring) are the
    flags, including ``run_dir``, ``resume`` and ``progress``; the constructor takes the run
    directory and checks that the run may start; ``learn()`` trains and writes the run.
    """

    config_class: ClassVar[type[Any]]

    def __init__(self, config: Any) -> None: ...

    def learn(self) -> Any: ...


def trainer_class(algo: str) -> type[Algorithm]:
    """The trainer class of ``algo``.

    Raises:
        ConfigError: an unknown algorithm, with the known ones and the closest match.
    """
    if algo not in ALGORITHMS:
        raise ConfigError(
            f"Unknown algorithm {algo!r}.{did_you_mean(algo, ALGORITHMS)} Choose one of "
            f"{sorted(ALGORITHMS)}."
        )
    module, name = ALGORITHMS[algo].split(":")
    return getattr(importlib.import_module(module), name)


def build_parser(config_class: type, algo: str) -> tuple[FlagParser[Any], list[str]]:
    """The flags of ``--algo algo``: one per config field, documented by its docstring
    (:mod:`textgym.tools.flags`), and every flag the parser accepts."""
    parser = flag_parser(
        config_class,
        f"textgym train --algo {algo}",
        f"Train {algo} on a textgym env (flags: the fields of {config_class.__name__}).",
        flags={"env_id": Flag(aliases=("--env",))},
        command=f"--algo {algo}",
    )
    parser.add_argument("--algo", default=algo, help=f"one of {sorted(ALGORITHMS)}")
    return parser, parser.known_flags()


def parse_args(argv: Sequence[str]) -> tuple[type[Algorithm], Any]:
    """``argv`` -> (trainer class, config); raises :class:`ConfigError` on a bad algorithm."""
    algo = peek(argv, "--algo")
    if algo is None:
        if any(a in ("-h", "--help") for a in argv):
            print(
                f"usage: textgym train --algo {{{','.join(ALGORITHMS)}}} [--help] [flags]\n\n"
                "Train an agent on a textgym env: an LM (reinforce, ppo, grpo) or a table\n"
                "(qlearning, sarsa). The flags depend on the algorithm:\n"
                "`textgym train --algo ppo --help` lists every one with its meaning.\n\n"
                "  textgym train --algo ppo --env textgym/Reasoning-v0 --time-budget 600\n"
                "  textgym train --algo ppo --run-dir runs/x --resume\n"
                "  textgym train --algo qlearning --env textgym/Copy-Tiny-v0 "
                "--total-timesteps 2000 --run-dir runs/q"
            )
            raise SystemExit(0)
        raise ConfigError(f"Missing --algo: choose one of {sorted(ALGORITHMS)} (e.g. --algo ppo).")
    cls = trainer_class(algo)
    parser, _ = build_parser(cls.config_class, algo)
    ns = vars(parser.parse_args(argv))
    if ns.get("resume") and ns.get("run_dir"):
        # A resumed run keeps the settings it was started with (its config.json); flags given
        # now override them, e.g. a larger --total-updates to train on.
        saved = Path(ns["run_dir"]) / runs.CONFIG_NAME
        if saved.exists():
            fields = {f.name for f in dataclasses.fields(cls.config_class)}
            stored = runs.read_config(saved)
            parser.set_defaults(**{k: v for k, v in stored.items() if k in fields})
            ns = vars(parser.parse_args(argv))
    ns.pop("algo")
    return cls, cls.config_class(**ns)


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
