"""textgym: text tasks as Gymnasium environments with a token-level MDP.

``import textgym`` registers every ``textgym/*`` id, so ``gym.make("textgym/Copy-v0")`` works;
``gym.make("textgym:textgym/Copy-v0")`` works without the import.
"""

from textgym.core import EpisodeError, TextEnv
from textgym.registration import ENV_SPECS, env_ids, register_envs
from textgym.rewards.base import Reward, RewardError
from textgym.tasks.base import Task
from textgym.tokenizer import TokenizerError, default_tokenizer, load_tokenizer
from textgym.types import Problem, Reply, RewardContext, Turn
from textgym.users.base import Responder
from textgym.wrappers import TurnLevel, TurnLevelVector

__version__ = "0.1.0"

register_envs()

__all__ = [
    "ENV_SPECS",
    "EpisodeError",
    "Problem",
    "Reply",
    "Responder",
    "Reward",
    "RewardContext",
    "RewardError",
    "Task",
    "TextEnv",
    "TokenizerError",
    "Turn",
    "TurnLevel",
    "TurnLevelVector",
    "default_tokenizer",
    "env_ids",
    "load_tokenizer",
    "register_envs",
]
