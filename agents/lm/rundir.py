"""What only an LM run adds to the run directory of :mod:`textgym.runs`.

The directory itself (its lock, ``config.json``, ``progress.csv``, the checkpoint,
``final_model/`` and ``report.json``, and when a run may start, resume or is finished) is
:mod:`textgym.runs`', shared by every learner. What is LM-specific lives here: which settings
a resume must share with its checkpoint, the time budget next to the update budget, the
policy saved as ``final_model/``, and the report's terminal form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.lm.config import TrainConfig
from agents.lm.policy import LMPolicy
from textgym import runs
from textgym.errors import ConfigError

#: Config fields a resumed run must share with its checkpoint.
RUN_IDENTITY = ("env_id", "model", "tokenizer", "num_envs", "seed")


def check_budget_left(
    run_dir: Path, config: TrainConfig, updates: int, train_seconds: float
) -> None:
    """A finished run resumed with nothing left to do names the flag that gives it more.

    Raises:
        ConfigError: ``updates`` reached ``--total-updates``, or ``train_seconds`` the
            ``--time-budget``.
    """
    runs.check_budget_left(run_dir, updates, config.total_updates, "--total-updates")
    if config.time_budget and train_seconds >= config.time_budget:
        raise ConfigError(
            f"The run in {run_dir} has already used its time budget "
            f"({train_seconds:.0f} s of --time-budget {config.time_budget:g}); pass a "
            "larger --time-budget, or --time-budget 0 for no limit, to continue it."
        )


def write_final_model(policy: LMPolicy, run_dir: Path) -> None:
    """``final_model/``: the policy's ``save_pretrained`` directory, all or nothing.

    Raises:
        WriteError: the run directory cannot be written.
    """
    runs.write_final_model(run_dir, policy.save_pretrained)


def format_report(report: dict[str, Any]) -> str:
    """The report in a few lines for the terminal: budget, throughput, before -> after."""
    headline = (
        f"{report['algo']} on {report['env_id']} (seed {report['seed']}): "
        f"{report['updates']} updates, {report['episodes']} episodes, "
        f"{report['train_seconds']:.0f}s, {report['tokens_per_second']:.0f} tokens/s"
    )
    return runs.format_report(report, headline, ("eval/success_rate", "eval/episodic_return"))
