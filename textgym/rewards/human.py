"""Former home of the human-feedback loop, now :mod:`textgym.feedback`; re-exports its names.

``from textgym.rewards.human import HumanReward, Rating, train_reward_model, ...``,
``textgym rate`` / ``textgym train-rm`` (dispatched to :func:`main` here) and
``python -m textgym.rewards.human rate ...`` keep working. The only module of
``textgym.rewards`` that imports ``textgym.feedback``: the feedback package builds on the
rewards, not the other way round.
"""

from __future__ import annotations

import sys

from textgym.feedback.checks import MAX_SEED
from textgym.feedback.cli import main
from textgym.feedback.log import (
    PREFERENCE,
    SCORE,
    LogContents,
    Rating,
    RatingLog,
    RatingsFileError,
    parse_log,
    read_ratings,
)
from textgym.feedback.rater import HumanReward, Rater, StopRating, run_session
from textgym.feedback.samples import sample_id, samples_from_env, samples_from_file
from textgym.feedback.train import (
    SUMMARY,
    TrainResult,
    check_output_dir,
    check_training_config,
    train_reward_model,
)

__all__ = [
    "MAX_SEED",
    "PREFERENCE",
    "SCORE",
    "SUMMARY",
    "HumanReward",
    "LogContents",
    "Rater",
    "Rating",
    "RatingLog",
    "RatingsFileError",
    "StopRating",
    "TrainResult",
    "check_output_dir",
    "check_training_config",
    "main",
    "parse_log",
    "read_ratings",
    "run_session",
    "sample_id",
    "samples_from_env",
    "samples_from_file",
    "train_reward_model",
]

if __name__ == "__main__":
    # Only when run as a script: the CLI's error handling, which importing this module
    # does not need.
    from textgym.cli import run_command

    PROG = "python -m textgym.rewards.human"
    sys.exit(run_command(PROG, lambda: main(prog=PROG), sys.argv[1:]))
