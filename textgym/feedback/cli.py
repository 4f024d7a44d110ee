"""``textgym rate`` and ``textgym train-rm``: the human-feedback loop from the command line.

Both commands check every flag (and the samples, or the env id) before a log or a model
directory is touched::

    textgym rate --env textgym/Copy-v0 --log ratings.jsonl
    textgym rate --mode preference --env textgym/Copy-v0 --log ratings.jsonl
    textgym train-rm --log ratings.jsonl --out my_rm
    gym.make("textgym/Copy-v0", reward=RewardModel("my_rm"))   # or reward='reward_model("my_rm")'
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from textgym.feedback.checks import MAX_SEED, check_int
from textgym.feedback.log import PREFERENCE, SCORE
from textgym.feedback.rater import Rater, run_session
from textgym.feedback.samples import samples_from_env, samples_from_file
from textgym.feedback.train import train_reward_model
from textgym.tools.commands import Command, dispatch
from textgym.tools.flags import build_parser, flag

DESCRIPTION = "Rate agent turns in the terminal and train a reward model on the ratings."


@dataclass(kw_only=True)
class RateArgs:
    """The flags of ``textgym rate``."""

    samples: str | None = flag(None, one_of="source")
    """JSONL of {"context","text"} (scores) or {"context","a","b"} (preferences)"""
    env: str | None = flag(None, one_of="source")
    """generate samples from an env id instead, e.g. textgym/Copy-v0"""
    log: str
    """ratings file (JSONL, appended to)"""
    mode: str = flag(SCORE, choices=(SCORE, PREFERENCE))
    """score one turn at a time, or prefer one of two"""
    scale: tuple[float, float] = flag((1.0, 5.0), metavar=("LOW", "HIGH"))
    """the lowest and highest score"""
    n: int = 50
    """samples to draw from --env"""
    limit: int | None = None
    """stop after this many ratings (none: when the samples run out)"""
    seed: int = 0
    """seed of the samples drawn from --env"""


@dataclass(kw_only=True)
class TrainRMArgs:
    """The flags of ``textgym train-rm``."""

    log: list[str]
    """ratings file(s)"""
    out: str
    """output directory (save_pretrained)"""
    base: str | None = None
    """model to fine-tune (none: a small BERT from scratch)"""
    tokenizer: str | None = None
    """tokenizer path or name (none: textgym's)"""
    epochs: int = 40
    """passes over the ratings"""
    lr: float = 3e-3
    """Adam learning rate"""
    batch_size: int = 16
    """ratings per step"""
    seed: int = 0
    """seed of the initialisation and the order of the ratings"""


def rate(argv: Sequence[str], prog: str = "textgym rate") -> int:
    """``textgym rate ...``: show turns and record scores or preferences (the
    ``textgym.commands`` entry point)."""
    parser = build_parser(RateArgs, prog, "Show agent turns and record scores or preferences.")
    args = parser.parse(argv)
    check_int("--n", args.n, 0)
    check_int("--seed", args.seed, 0, MAX_SEED)
    if args.limit is not None:
        check_int("--limit", args.limit, 0)
    # The samples come first: a bad samples file or env id is refused before the log
    # is created.
    samples = (
        samples_from_file(args.samples)
        if args.samples
        else samples_from_env(args.env, args.n, args.seed)
    )
    rater = Rater(args.log, scale=tuple(args.scale))
    with rater:
        run_session(samples, rater, mode=args.mode, limit=args.limit)
    return 0


def train_rm(argv: Sequence[str], prog: str = "textgym train-rm") -> int:
    """``textgym train-rm ...``: train a reward model on rating logs (the
    ``textgym.commands`` entry point)."""
    parser = build_parser(TrainRMArgs, prog, "Train a reward model on one or more rating logs.")
    args = parser.parse(argv)
    result = train_reward_model(
        args.log,
        args.out,
        base=args.base,
        tokenizer=args.tokenizer,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        log=print,
    )
    # A log of scores only has no preference pairs to be accurate on (the result is NaN).
    accuracy = "n/a" if math.isnan(result.train_accuracy) else f"{result.train_accuracy:.2f}"
    print(
        f"saved {result.path} ({result.n_scores} scores, {result.n_preferences} preferences; "
        f"final loss {result.final_loss:.4f}, train preference accuracy {accuracy}). "
        f'Use it with RewardModel("{result.path}") or reward=\'reward_model("{result.path}")\'.'
    )
    return 0


COMMANDS = {
    "rate": Command("show turns and record scores or preferences", rate),
    "train-rm": Command(
        "train a reward model on one or more rating logs", train_rm, aliases=("train",)
    ),
}


def main(argv: Sequence[str] | None = None, prog: str = "textgym") -> int:
    """``rate`` turns in the terminal or ``train-rm`` (alias ``train``) a reward model from
    the log. ``prog`` names the command in help and errors (``textgym`` for the console
    script, ``python -m textgym.rewards.human`` when run as a module)."""
    return dispatch(prog, DESCRIPTION, COMMANDS, list(sys.argv[1:] if argv is None else argv))
