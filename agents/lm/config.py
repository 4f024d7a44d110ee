"""TrainConfig, the arguments every LM algorithm takes, and the table that validates them.

Each field carries its valid values as a :class:`Check` in ``TrainConfig.CHECKS``; an
algorithm's config subclasses :class:`TrainConfig`, extends the table with its own fields and
may add :meth:`TrainConfig.consistency_problems` between fields. A config is checked when it is
made, so a config built in Python and one parsed by ``textgym train`` fail alike, before any
model is loaded. :func:`field_docs` (from :mod:`textgym.tools.flags`, re-exported here) reads
the one-line docstring under each field, which is what ``textgym train --help`` shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from agents.lm.default_model import DEFAULT, DEFAULT_NAMES, default_model_name
from textgym.errors import ConfigError
from textgym.tokenizer import has_tokenizer
from textgym.tools.flags import field_docs as field_docs  # re-exported: its old home

#: The largest seed: numpy seeds with 32 bits, and Gymnasium refuses larger seeds too.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Check:
    """The valid values of one config field, for :func:`config_problems`.

    Args:
        kind: ``int``, ``float``, ``bool`` or ``str``. Floats must be finite; ints must be
            ints (not bools, not floats); an int is accepted for a float.
        low: Smallest valid value (``None``: unbounded).
        high: Largest valid value (``None``: unbounded).
        low_open: ``low`` itself is invalid.
        high_open: ``high`` itself is invalid.
        optional: ``None`` is valid too.
        choices: For strings, the valid values (empty: any string).
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """The valid values in words (for error messages)."""
        if self.kind is bool:
            text = "True or False"
        elif self.kind is str:
            text = f"one of {list(self.choices)}" if self.choices else "a string"
        else:
            noun = "an int" if self.kind is int else "a finite number"
            if self.low is not None and self.high is not None:
                left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
                text = f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
            elif self.low is not None:
                text = f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
            elif self.high is not None:
                text = f"{noun} {'<' if self.high_open else '<='} {_number(self.high)}"
            else:
                text = noun
        return f"{text}, or None" if self.optional else text

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is valid."""
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, (bool, np.bool_))
        if self.kind is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if isinstance(value, (bool, np.bool_)):
            return False  # True is an int to Python, never a count or a rate to a person
        if self.kind is int:
            if not isinstance(value, (int, np.integer)):
                return False
        elif not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(
            value
        ):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(x: float) -> str:
    """A bound as a person writes it (``0``, ``1``, ``4294967295``, ``0.5``)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def flag_name(field: str) -> str:
    """The command-line flag of a config field (``max_grad_norm`` -> ``--max-grad-norm``)."""
    return "--" + field.replace("_", "-")


def config_problems(config: Any, checks: Mapping[str, Check]) -> list[str]:
    """One sentence per field of ``config`` whose value ``checks`` does not accept."""
    problems = []
    for name, check in checks.items():
        value = getattr(config, name)
        if not check.accepts(value):
            problems.append(
                f"{flag_name(name)} ({name}) got {value!r}; it must be {check.describe()}"
            )
    return problems


def normalize_numbers(config: Any, checks: Mapping[str, Check]) -> None:
    """Numpy scalars become Python numbers, and ints in float fields floats: what the seeding
    functions and ``config.json`` accept (``random.seed(np.int64(7))`` is a TypeError)."""
    for name, check in checks.items():
        value = getattr(config, name)
        if isinstance(value, np.bool_):
            setattr(config, name, bool(value))
            continue
        if isinstance(value, bool) or check.kind not in (int, float):
            continue
        if check.kind is int and isinstance(value, np.integer):
            setattr(config, name, int(value))
        elif check.kind is float and isinstance(value, (int, np.integer, np.floating)):
            setattr(config, name, float(value))


#: Env arguments the trainer sets itself, and what to do instead.
RESERVED_ENV_KWARGS = {
    "split": "the trainer trains on the train split and evaluates on the test split itself",
    "tokenizer": "use --tokenizer",
    "copy": "the trainer sets it",
}


def parse_env_kwarg(item: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` as ``(KEY, VALUE)``: VALUE as JSON when it parses (``3``, ``true``,
    ``{"a": 1}``), else as the text it is (``chain_sum``)."""
    key, _, text = item.partition("=")
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError:
        return key.strip(), text


def env_kwargs_problems(items: Any) -> list[str]:
    """One sentence per ``--env-kwargs`` item that is not ``KEY=VALUE`` (or repeats a KEY)."""
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        return [f"--env-kwargs (env_kwargs) got {items!r}; it must be a list of KEY=VALUE strings"]
    problems, seen = [], set()
    for item in items:
        key = item.partition("=")[0].strip()
        if "=" not in item or not key.isidentifier():
            problems.append(
                f"--env-kwargs got {item!r}; each item must be KEY=VALUE with KEY an argument "
                "name, e.g. dataset=chain_sum"
            )
        elif key in RESERVED_ENV_KWARGS:
            problems.append(f"--env-kwargs {key}=...: {RESERVED_ENV_KWARGS[key]}")
        elif key in seen:
            problems.append(f"--env-kwargs gives {key!r} twice; give each argument once")
        seen.add(key)
    return problems


def raise_config_problems(what: str, problems: list[str]) -> None:
    """Raise one :class:`ConfigError` listing every problem (nothing when there are none)."""
    if problems:
        raise ConfigError(f"Invalid {what}: " + "; ".join(problems) + ".")


#: Shorthands for the tables below.
POSITIVE = Check(float, low=0.0, low_open=True)
NON_NEGATIVE = Check(float, low=0.0)
UNIT = Check(float, low=0.0, high=1.0)
RATE = Check(float, low=0.0, high=1.0, low_open=True)
COUNT = Check(int, low=1)
COUNT_OR_ZERO = Check(int, low=0)
SEED = Check(int, low=0, high=MAX_SEED)
FLAG = Check(bool)


@dataclass
class TrainConfig:
    """Arguments every LM algorithm takes (CleanRL style: one docstring per field)."""

    env_id: str = "textgym/Reasoning-v0"
    """the textgym environment id to train on"""
    env_kwargs: list[str] = field(default_factory=list)
    """arguments of the env as KEY=VALUE, VALUE read as JSON when it parses, else as text
    (e.g. dataset=chain_sum 'config={"max_terms": 3}')"""
    model: str = "default"
    """causal LM: 'default' (textgym's embedded model for the env's tokenizer), a local
    directory or a hub name"""
    tokenizer: str | None = None
    """tokenizer for the env (None: the model directory's own, else textgym's default)"""
    seed: int = 1
    """seed of the run (problems, sampling, initialisation)"""
    num_envs: int = 64
    """rows of the vector env, i.e. episodes played in parallel per round"""
    rounds_per_update: int = 1
    """rounds collected per update; episodes per update = num_envs * rounds_per_update"""
    total_updates: int = 100
    """number of updates (a time budget may stop the run earlier)"""
    time_budget: float = 0.0
    """stop after this many seconds of training (0: no limit); evaluation time excluded"""
    temperature: float = 1.0
    """sampling temperature; behaviour and train-time log-probs both use it"""
    learning_rate: float = 1e-4
    """Adam learning rate"""
    max_grad_norm: float = 1.0
    """clip the global gradient norm to this"""
    kl_coef: float = 0.0
    """weight of the KL term to the frozen reference model (0: no reference model is loaded)"""
    missing_end_penalty: float = 0.0
    """added to the reward of an episode whose last agent turn was cut before <eot> (e.g. -1)"""
    eval_every: int = 10
    """evaluate greedily on the held-out split every this many updates (0: only at the ends)"""
    eval_episodes: int = 128
    """episodes per evaluation (fixed seeds, so evaluations are comparable)"""
    checkpoint_every: int = 10
    """write the checkpoint every this many updates (and at the end)"""
    run_dir: str | None = None
    """run directory (logs, checkpoint, final model); default runs/<env>__<algo>__<seed>__<time>"""
    resume: bool = False
    """continue the run in run_dir from its checkpoint"""
    cpu: bool = False
    """train on the CPU even when a GPU is present"""
    threads: int = 2
    """torch CPU threads per process"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """also write TensorBoard event files next to progress.csv"""

    #: The valid values of each field; subclasses extend it with their own fields. Checked
    #: when the config is made, so a Python config and ``textgym train`` fail alike, before
    #: any model is loaded.
    CHECKS: ClassVar[dict[str, Check]] = {
        "env_id": Check(str),
        "model": Check(str),
        "tokenizer": Check(str, optional=True),
        "seed": SEED,
        "num_envs": COUNT,
        "rounds_per_update": COUNT,
        "total_updates": COUNT_OR_ZERO,
        "time_budget": NON_NEGATIVE,
        "temperature": POSITIVE,
        "learning_rate": RATE,
        # A negative limit would flip every gradient (the clip factor goes negative), and 0
        # would zero them: a large value such as 1e6 is the way to turn clipping off.
        "max_grad_norm": POSITIVE,
        "kl_coef": NON_NEGATIVE,
        "missing_end_penalty": Check(float),
        "eval_every": COUNT_OR_ZERO,
        "eval_episodes": COUNT,
        "checkpoint_every": COUNT_OR_ZERO,
        "run_dir": Check(str, optional=True),
        "resume": FLAG,
        "cpu": FLAG,
        "threads": COUNT,
        "progress": FLAG,
        "tensorboard": FLAG,
    }

    def __post_init__(self) -> None:
        normalize_numbers(self, self.CHECKS)
        self.validate()
        if self.model == DEFAULT:
            # The embedded model that spells the env's tokenizer, recorded by its name
            # ("default-open" for open-text envs), which is what the trainer resolves.
            self.model = default_model_name(self.env_id, self.tokenizer)
        embedded = self.model in DEFAULT_NAMES
        if self.tokenizer is None and not embedded and has_tokenizer(self.model):
            # A model saved with its tokenizer (a chat model and its template) plays on it:
            # its token ids mean that tokenizer's words. Recorded, so the run says so.
            self.tokenizer = self.model

    def validate(self) -> None:
        """Check every field against :attr:`CHECKS`, then the fields against each other.

        Raises:
            ConfigError: every invalid field, each named by its flag with its valid range.
        """
        problems = config_problems(self, self.CHECKS) + env_kwargs_problems(self.env_kwargs)
        if not problems:  # relations between fields only mean something for valid fields
            problems = self.consistency_problems()
        raise_config_problems("training arguments", problems)

    def consistency_problems(self) -> list[str]:
        """Problems between fields (e.g. a group size that does not divide ``num_envs``)."""
        return []

    @property
    def env_options(self) -> dict[str, Any]:
        """:attr:`env_kwargs` as the keyword arguments of ``gym.make``."""
        return dict(parse_env_kwarg(item) for item in self.env_kwargs)

    @property
    def episodes_per_update(self) -> int:
        """Episodes collected per update by one process."""
        return self.num_envs * self.rounds_per_update
