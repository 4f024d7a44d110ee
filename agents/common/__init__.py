"""What every agent shares: logging and evaluation (and, for LM agents, rollouts and checkpoints)."""

from agents.common.evaluation import EvalResult, evaluate_policy
from agents.common.logger import Logger, read_log

__all__ = ["EvalResult", "Logger", "evaluate_policy", "read_log"]
