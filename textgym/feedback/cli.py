"""``textgym rate`` and ``textgym train-rm``: the human-feedback loop from the command line.

Both commands check every flag (and the samples, or the env id) before a log or a model
directory is touched::

    textgym rate --env textgym/Copy-v0 --log ratings.jsonl
    textgym rate --mode preference --env textgym/Copy-v0 --log ratings.jsonl
    textgym train-rm --log ratings.jsonl --out my_rm
    gym.make("textgym/Copy-v0", reward=RewardModel("my_rm"))   # or reward='reward_model("my_rm")'
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from textgym.feedback.checks import MAX_SEED, check_int
from textgym.feedback.log import PREFERENCE, SCORE
from textgym.feedback.rater import Rater, run_session
from textgym.feedback.samples import samples_from_env, samples_from_file
from textgym.feedback.train import train_reward_model


def main(argv: Sequence[str] | None = None, prog: str = "textgym") -> int:
    """``rate`` turns in the terminal or ``train-rm`` (alias ``train``) a reward model from
    the log. ``prog`` names the command in help and errors (``textgym`` for the console
    script, ``python -m textgym.rewards.human`` when run as a module)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rate agent turns in the terminal and train a reward model on the ratings.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rate = sub.add_parser("rate", help="show turns and record scores or preferences")
    source = rate.add_mutually_exclusive_group(required=True)
    source.add_argument("--samples", help='JSONL of {"context","text"} or {"context","a","b"}')
    source.add_argument("--env", help="generate samples from an env id, e.g. textgym/Copy-v0")
    rate.add_argument("--log", required=True, help="ratings file (JSONL, appended)")
    rate.add_argument("--mode", choices=[SCORE, PREFERENCE], default=SCORE)
    rate.add_argument("--scale", type=float, nargs=2, default=(1.0, 5.0), metavar=("LOW", "HIGH"))
    rate.add_argument("--n", type=int, default=50, help="samples to draw from --env")
    rate.add_argument("--limit", type=int, default=None, help="stop after this many ratings")
    rate.add_argument("--seed", type=int, default=0)
    train = sub.add_parser(
        "train-rm", aliases=["train"], help="train a reward model on one or more rating logs"
    )
    train.add_argument("--log", required=True, nargs="+", help="ratings file(s)")
    train.add_argument("--out", required=True, help="output directory (save_pretrained)")
    train.add_argument(
        "--base", default=None, help="model to fine-tune (default: small BERT from scratch)"
    )
    train.add_argument(
        "--tokenizer", default=None, help="tokenizer path or name (default: textgym's)"
    )
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(None if argv is None else list(argv))

    if args.command == "rate":
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


def rate(argv: Sequence[str]) -> int:
    """``textgym rate ...`` (the ``textgym.commands`` entry point)."""
    return main(["rate", *argv], prog="textgym")


def train_rm(argv: Sequence[str]) -> int:
    """``textgym train-rm ...`` (the ``textgym.commands`` entry point)."""
    return main(["train-rm", *argv], prog="textgym")
