"""The loop every LM algorithm shares: collect rounds, update, log, evaluate, checkpoint.

An algorithm (``agents/reinforce.py``, ``agents/ppo.py``, ``agents/grpo.py``) subclasses
:class:`LMTrainer` with its config dataclass and its :meth:`LMTrainer.update`; everything
else lives here, once. Training goes through ``accelerate``: one process is the plain CPU
(or GPU) case, ``accelerate launch`` gives data-parallel training across processes, GPUs
and machines, where each process collects its own rollouts (different seeds) and gradients
are averaged by DDP.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import math
import os
import shutil
import tempfile
import textwrap
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents.common.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_random_seed,
    set_rng_state,
)
from agents.common.logger import Logger
from agents.common.rollout import (
    Episode,
    RolloutBatch,
    RolloutCollector,
    make_batch,
    rollout_metrics,
)
from agents.lm.policy import LMPolicy
from textgym.errors import ConfigError, UserError
from textgym.files import (
    DirectoryLock,
    atomic_write,
    clean_temporary_files,
    write_error,
)


class ModelNotFoundError(UserError, FileNotFoundError):
    """The ``--model`` path does not exist (for loaders whose own error is not a UserError)."""


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
    model: str = "default"
    """causal LM: 'default' (textgym's embedded model), a local directory or a hub name"""
    tokenizer: str | None = None
    """tokenizer for the env (None: textgym's default); must match the model's vocabulary"""
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

    def validate(self) -> None:
        """Check every field against :attr:`CHECKS`, then the fields against each other.

        Raises:
            ConfigError: every invalid field, each named by its flag with its valid range.
        """
        problems = config_problems(self, self.CHECKS)
        if not problems:  # relations between fields only mean something for valid fields
            problems = self.consistency_problems()
        raise_config_problems("training arguments", problems)

    def consistency_problems(self) -> list[str]:
        """Problems between fields (e.g. a group size that does not divide ``num_envs``)."""
        return []

    @property
    def episodes_per_update(self) -> int:
        """Episodes collected per update by one process."""
        return self.num_envs * self.rounds_per_update


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each dataclass field (for ``--help``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def resolve_model(name: str) -> str:
    """``'default'`` means textgym's embedded model; anything else is passed through."""
    if name == "default":
        from agents.lm.default_model import default_model_path

        return str(default_model_path())
    return name


def check_env_id(env_id: str) -> None:
    """Fail clearly on an unknown env id, suggesting the closest registered one."""
    import textgym  # noqa: F401  (registers the ids)

    if env_id in gym.registry:
        return
    known = [k for k in gym.registry if k.startswith("textgym/")]
    close = difflib.get_close_matches(env_id, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"Unknown environment {env_id!r}.{hint} Registered textgym ids: {sorted(known)} "
        "(see `textgym list`)."
    )


def make_envs(env_id: str, num_envs: int, tokenizer: str | None, split: str | None) -> Any:
    """The native vector env, on the given split when the task has one."""
    import textgym  # noqa: F401  (registers the ids)

    kwargs: dict[str, Any] = {"copy": False}
    if tokenizer is not None:
        kwargs["tokenizer"] = tokenizer
    if split is not None:
        kwargs["split"] = split
    return gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)


def has_split(env_id: str) -> bool:
    """Whether the env's task takes a ``split`` argument (a held-out test split exists)."""
    spec = gym.spec(env_id)
    from textgym.tasks import TASKS

    task = TASKS.get(spec.kwargs.get("task", ""))
    return task is not None and "split" in inspect.signature(task).parameters


class LMTrainer:
    """Collect -> update -> log -> evaluate -> checkpoint, for any LM algorithm.

    Subclasses set :attr:`algo`, :attr:`config_class`, :attr:`value_head` and implement
    :meth:`update`; they may override :meth:`round_seeds` (GRPO repeats seeds for groups).

    Args:
        config: The algorithm's config dataclass.
        accelerator: An ``accelerate.Accelerator`` (created when ``None``).
    """

    algo: ClassVar[str] = "lm"
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    value_head: ClassVar[bool] = False

    def __init__(self, config: TrainConfig, accelerator: Any = None) -> None:
        from accelerate import Accelerator

        self.config = config
        self._validate()
        check_env_id(config.env_id)
        self.accelerator = accelerator or Accelerator(cpu=config.cpu)
        acc = self.accelerator
        torch.set_num_threads(max(1, config.threads))
        self.rank = acc.process_index
        self.is_main = acc.is_main_process
        set_random_seed(config.seed + 1000 * self.rank)
        self.run_dir = Path(config.run_dir or self._default_run_dir())
        # The run directory is this trainer's from here until learn() returns (or close()):
        # a second process on it would interleave its log and overwrite its checkpoint. The
        # main process holds the lock for all of an accelerate launch's processes.
        self._lock = DirectoryLock(
            self.run_dir,
            what="run directory",
            hint="wait for that run to finish, or choose another --run-dir",
        )
        created = not self.run_dir.exists()
        if self.is_main:
            self._lock.acquire()
        try:
            self._setup(created)
        except BaseException:
            self.close()
            if created and self.is_main:
                _remove_if_only_lock(self.run_dir)
            raise

    def _setup(self, created: bool) -> None:
        config, acc = self.config, self.accelerator
        if self.is_main and not created:
            # Temporary files of a write that a kill interrupted (safe: we hold the lock).
            self._clean_temporaries()
        self._check_resume()

        self.envs = make_envs(config.env_id, config.num_envs, config.tokenizer, None)
        self.split = "test" if has_split(config.env_id) else None
        self.eval_envs = make_envs(config.env_id, config.num_envs, config.tokenizer, self.split)
        first = self.envs.unwrapped.envs[0]
        self.pad_id, self.eot_id = first.chat.pad_id, first.chat.eot_id
        self.max_new_tokens = int(self.envs.unwrapped.max_new_tokens)

        model_name = resolve_model(config.model)
        try:
            policy = LMPolicy.from_pretrained(
                model_name, first.vocab_size, value_head=self.value_head, device=acc.device
            )
            policy.check_env(self.envs)
        except FileNotFoundError as exc:
            # The user's model, the user's to fix: said in one line by `textgym train`.
            if isinstance(exc, UserError):
                raise
            raise ModelNotFoundError(str(exc)) from exc
        self.policy = policy
        # The reference is the model as loaded, before any update (also after a resume).
        self.reference = policy.reference() if self.uses_reference else None
        self.optimizer = torch.optim.AdamW(
            self.param_groups(policy), lr=config.learning_rate, eps=1e-5, weight_decay=0.0
        )
        self.model, self.optimizer = acc.prepare(policy, self.optimizer)
        self.generator = torch.Generator().manual_seed(config.seed + 1000 * self.rank)
        self.collector = RolloutCollector(
            self.envs,
            policy,
            temperature=config.temperature,
            generator=self.generator,
            values=self.value_head,
        )
        self.eval_collector = RolloutCollector(self.eval_envs, policy, config.temperature)
        self.seed_rng = np.random.default_rng([config.seed, self.rank])
        self.update_count = 0
        self.episodes_seen = 0
        self.tokens_seen = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self.extra_state: dict[str, Any] = {}
        if config.resume:
            self.load(self.run_dir)
            self._check_work_left()

    def close(self) -> None:
        """Release the run directory (``learn`` does it when it returns or fails)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    # -- hooks for algorithms -------------------------------------------------------------

    @property
    def uses_reference(self) -> bool:
        """Whether a frozen reference model is needed (a KL term)."""
        return self.config.kl_coef > 0

    def param_groups(self, policy: LMPolicy) -> list[dict[str, Any]]:
        """Optimizer parameter groups (one group by default)."""
        return [{"params": list(policy.parameters())}]

    def round_seeds(self) -> tuple[list[int], list[int]]:
        """Reset seeds and group ids for one round (distinct problems by default)."""
        n = self.config.num_envs
        seeds = self.seed_rng.integers(0, 2**31 - 1, size=n).tolist()
        return seeds, list(range(n))

    def update(self, batch: RolloutBatch, episodes: list[Episode]) -> dict[str, float]:
        """One learning step on a batch; returns namespaced metrics."""
        raise NotImplementedError

    def state_dict_extra(self) -> dict[str, Any]:
        """Algorithm state to checkpoint (e.g. an adaptive KL coefficient)."""
        return dict(self.extra_state)

    def load_state_extra(self, state: dict[str, Any]) -> None:
        self.extra_state = dict(state)

    # -- shared pieces for updates --------------------------------------------------------

    def forward(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Train-time forward through the (DDP-wrapped) model.

        Returns the logits at the agent's decisions, flattened to ``(N, V)`` in the order
        of ``batch.action_mask`` (row-major), and the values ``(B, T)`` (or ``None``).
        """
        at = F.pad(batch.action_mask, (0, 1))  # decision d is read at position d
        out = self.model(batch.input_ids, batch.attention_mask, at)
        return out.logits, out.values

    @torch.no_grad()
    def reference_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        """``log pi_ref(a_t | s_t)`` at the sampling temperature, ``(B, T - 1)``, 0 off actions."""
        from agents.lm.policy import token_logprobs

        assert self.reference is not None
        mask = batch.action_mask
        logits = self.reference(batch.input_ids, batch.attention_mask, F.pad(mask, (0, 1))).logits
        out = torch.zeros_like(batch.old_logprobs)
        out[mask] = token_logprobs(logits, batch.targets[mask], self.config.temperature)
        return out

    def step_optimizer(self, loss: torch.Tensor) -> float:
        """Backward, clip, step; returns the gradient norm before clipping."""
        acc = self.accelerator
        self.optimizer.zero_grad(set_to_none=True)
        acc.backward(loss)
        norm = acc.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return float(norm)

    def end_penalty(self, batch: RolloutBatch) -> torch.Tensor:
        """``(B,)`` the missing-end penalty of each episode (0 when it ended with <eot>)."""
        return batch.missing_end.float() * self.config.missing_end_penalty

    # -- the loop -------------------------------------------------------------------------

    def collect(self) -> list[Episode]:
        """``rounds_per_update`` rounds of rollouts with the current policy."""
        episodes: list[Episode] = []
        for _ in range(self.config.rounds_per_update):
            seeds, groups = self.round_seeds()
            episodes.extend(self.collector.collect(seeds, groups))
        return episodes

    @torch.no_grad()
    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Greedy episodes on the held-out split (the train split if the task has none),
        with fixed seeds so that every evaluation sees the same problems."""
        n = episodes or self.config.eval_episodes
        rows = self.config.num_envs
        played: list[Episode] = []
        base = 0
        while len(played) < n:
            seeds = list(range(base, base + rows))
            played.extend(self.eval_collector.collect(seeds, greedy=True))
            base += rows
        metrics = rollout_metrics(played[:n], prefix="eval")
        return metrics

    def train_step(self) -> dict[str, float]:
        """Collect one batch through the env, update on it, and return the metrics."""
        acc = self.accelerator
        start = time.perf_counter()
        episodes = self.collect()
        rollout_s = time.perf_counter() - start
        batch = make_batch(episodes, self.pad_id, self.eot_id, device=acc.device)
        self.model.train()
        metrics = self.update(batch, episodes)
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        self.update_count += 1
        tokens = sum(e.num_actions for e in episodes)
        self.episodes_seen += len(episodes) * acc.num_processes
        self.tokens_seen += tokens * acc.num_processes
        metrics.update(rollout_metrics(episodes))
        metrics["perf/tokens_per_second"] = tokens * acc.num_processes / seconds
        metrics["perf/rollout_fraction"] = rollout_s / seconds
        metrics["perf/generated_tokens"] = float(tokens * acc.num_processes)
        metrics["perf/seconds"] = seconds
        metrics["charts/episodes"] = float(self.episodes_seen)
        metrics["charts/train_seconds"] = self.train_seconds
        return metrics

    def learn(self) -> LMTrainer:
        """Train until ``total_updates`` or the time budget; returns ``self``.

        The run is finished once ``final_model/`` and then ``report.json`` exist (each
        written atomically, in that order); a run killed before that resumes and finishes.

        Raises:
            DirectoryInUseError: another process took the run directory since
                :meth:`close` released it.
            WriteError: the run directory cannot be written (full disk, read-only).
        """
        if self.is_main:
            self._lock.acquire()
        try:
            self._learn()
        finally:
            self.close()
        return self

    def _learn(self) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        logger = (
            Logger(self.run_dir, tensorboard=None if cfg.tensorboard else False)
            if self.is_main
            else None
        )
        bar = None
        try:
            if self.is_main and not cfg.resume:
                atomic_write(self.run_dir / "config.json", json.dumps(self.config_dict(), indent=2))
            if self.update_count == 0 and "initial_eval" not in self.extra_state:
                self.extra_state["initial_eval"] = self._evaluate_and_log(logger)
            bar = tqdm(
                total=cfg.total_updates,
                initial=self.update_count,
                disable=not (cfg.progress and self.is_main),
                desc=f"{self.algo} {cfg.env_id}",
                dynamic_ncols=True,
            )
            while self.update_count < cfg.total_updates and not self._out_of_time():
                metrics = self.train_step()
                if logger is not None:
                    logger.log(self.update_count, metrics)
                self.history.append({"update": self.update_count, **metrics})
                bar.update(1)
                bar.set_postfix(
                    ret=f"{metrics['charts/episodic_return']:.3f}",
                    succ=f"{metrics['charts/success_rate']:.2f}",
                    tok_s=f"{metrics['perf/tokens_per_second']:.0f}",
                )
                if cfg.eval_every and self.update_count % cfg.eval_every == 0:
                    self._evaluate_and_log(logger)
                if cfg.checkpoint_every and self.update_count % cfg.checkpoint_every == 0:
                    self.save()
            bar.close()
            if not self._final_evaluated():
                # A run killed after its final checkpoint keeps that evaluation: evaluating
                # again would log a second final point.
                self.extra_state["final_eval"] = self._evaluate_and_log(logger)
                self.extra_state["final_update"] = self.update_count
                self.save()
            if self.is_main:
                self._write_final_model()
                report = self.report()
                # Last: report.json is what marks the run finished (see _outputs_complete).
                atomic_write(self.run_dir / REPORT_NAME, json.dumps(report, indent=2))
                print(self.format_report(report))
            self.accelerator.wait_for_everyone()
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()

    def report(self) -> dict[str, Any]:
        """Before/after evaluation, budget and throughput of the run."""
        before = self.extra_state.get("initial_eval", {})
        after = self.extra_state.get("final_eval", {})
        return {
            "algo": self.algo,
            "env_id": self.config.env_id,
            "seed": self.config.seed,
            "split": self.split or "train",
            "updates": self.update_count,
            "episodes": self.episodes_seen,
            "generated_tokens": self.tokens_seen,
            "train_seconds": round(self.train_seconds, 1),
            "tokens_per_second": round(self.tokens_seen / max(self.train_seconds, 1e-9), 1),
            "before": before,
            "after": after,
            "run_dir": str(self.run_dir),
        }

    @staticmethod
    def format_report(report: dict[str, Any]) -> str:
        before, after = report["before"], report["after"]
        lines = [
            f"{report['algo']} on {report['env_id']} (seed {report['seed']}): "
            f"{report['updates']} updates, {report['episodes']} episodes, "
            f"{report['train_seconds']:.0f}s, {report['tokens_per_second']:.0f} tokens/s",
        ]
        for key in ("eval/success_rate", "eval/episodic_return"):
            if key in before and key in after:
                lines.append(
                    f"  {key} on {report['split']}: {before[key]:.3f} -> {after[key]:.3f} "
                    f"({after[key] - before[key]:+.3f})"
                )
        lines.append(f"  run directory: {report['run_dir']}")
        return "\n".join(lines)

    # -- checkpoints ----------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **asdict(self.config)}

    def save(self) -> None:
        """Write the checkpoint (main process; every process's RNG state is gathered)."""
        from accelerate.utils import gather_object

        acc = self.accelerator
        rng = {
            "global": rng_state(),
            "generator": self.generator.get_state(),
            "seed_rng": self.seed_rng.bit_generator.state,
        }
        rngs = gather_object([rng]) if acc.num_processes > 1 else [rng]
        if self.is_main:
            state = {
                "model": acc.unwrap_model(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "update": self.update_count,
                "episodes": self.episodes_seen,
                "tokens": self.tokens_seen,
                "train_seconds": self.train_seconds,
                "rng": rngs,
                "extra": self.state_dict_extra(),
                "config": self.config_dict(),
            }
            save_checkpoint(checkpoint_path(self.run_dir), state)
        acc.wait_for_everyone()

    def load(self, run_dir: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (model, optimizer, counters, RNGs)."""
        state = load_checkpoint(run_dir)
        saved = state["config"]
        if saved.get("algo") != self.algo:
            raise ConfigError(
                f"The checkpoint in {str(run_dir)!r} was written by {saved.get('algo')!r}, not "
                f"{self.algo!r}; resume with --algo {saved.get('algo')}."
            )
        # Settings that define what was trained on: a resume with others would silently
        # continue a different experiment.
        now = asdict(self.config)
        changed = [k for k in RUN_IDENTITY if k in saved and saved[k] != now.get(k)]
        if changed:
            diff = ", ".join(f"{k}={saved[k]!r} (now {now.get(k)!r})" for k in changed)
            raise ConfigError(
                f"The checkpoint in {str(run_dir)!r} was trained with {diff}. Resume with the "
                "run's own settings (`textgym train --algo ... --run-dir DIR --resume` reads them "
                "from DIR/config.json) or start a new run in another --run-dir."
            )
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.update_count = int(state["update"])
        self.episodes_seen = int(state["episodes"])
        self.tokens_seen = int(state["tokens"])
        self.train_seconds = float(state["train_seconds"])
        rngs = state["rng"]
        mine = rngs[self.rank] if self.rank < len(rngs) else rngs[0]
        set_rng_state(mine["global"])
        self.generator.set_state(mine["generator"])
        self.seed_rng.bit_generator.state = mine["seed_rng"]
        self.load_state_extra(state["extra"])

    # -- internals ------------------------------------------------------------------------

    def _validate(self) -> None:
        # Again here: a config is a mutable dataclass, and may have changed since it was made.
        if not isinstance(self.config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got "
                f"{type(self.config).__name__}."
            )
        self.config.validate()

    def _check_resume(self) -> None:
        # Fail now, before the model and envs are loaded.
        if self.config.resume and not checkpoint_path(self.run_dir).exists():
            load_checkpoint(self.run_dir)
        if not self.config.resume and (self.run_dir / "progress.csv").exists():
            # Appending a fresh run to an old log would mix two learning curves.
            raise ConfigError(
                f"run_dir {str(self.run_dir)!r} already holds a run (progress.csv). Pass "
                "--resume to continue it, or choose another --run-dir (or delete this one)."
            )

    def _default_run_dir(self) -> str:
        env = self.config.env_id.replace("/", "_")
        return f"runs/{env}__{self.algo}__{self.config.seed}__{int(time.time())}"

    def _check_work_left(self) -> None:
        """A resumed run with nothing left to do names the flag that gives it more (its
        own settings are restored on resume, so its finished budget would be too).

        A run killed after its last update but before its final evaluation, final model or
        report was written has work left: ``learn()`` finishes it.
        """
        cfg = self.config
        if not (self._final_evaluated() and self._outputs_complete()):
            return
        if self.update_count >= cfg.total_updates:
            raise ConfigError(
                f"The run in {self.run_dir} has already made {self.update_count} of its "
                f"--total-updates {cfg.total_updates}; pass a larger --total-updates to "
                "continue it."
            )
        if cfg.time_budget and self.train_seconds >= cfg.time_budget:
            raise ConfigError(
                f"The run in {self.run_dir} has already used its time budget "
                f"({self.train_seconds:.0f} s of --time-budget {cfg.time_budget:g}); pass a "
                "larger --time-budget, or --time-budget 0 for no limit, to continue it."
            )

    def _final_evaluated(self) -> bool:
        """Whether the final evaluation of the current update is in the state (and so in
        the checkpoint): after more updates, an earlier final evaluation is stale."""
        return (
            "final_eval" in self.extra_state
            and self.extra_state.get("final_update") == self.update_count
        )

    def _outputs_complete(self) -> bool:
        """Whether ``final_model/`` and ``report.json`` of the current update both exist."""
        try:
            report = json.loads((self.run_dir / REPORT_NAME).read_text())
        except (OSError, ValueError):
            return False
        return (
            isinstance(report, dict)
            and report.get("updates") == self.update_count
            and (self.run_dir / FINAL_MODEL_NAME).is_dir()
        )

    def _write_final_model(self) -> None:
        """``final_model/``, all or nothing: written to a temporary directory, fsynced, and
        renamed into place (an older one, from before a resume, is replaced)."""
        final = self.run_dir / FINAL_MODEL_NAME
        tmp: Path | None = None
        old: Path | None = None
        try:
            tmp = Path(
                tempfile.mkdtemp(prefix=f".{FINAL_MODEL_NAME}.", suffix=".tmp", dir=self.run_dir)
            )
            self.policy.save_pretrained(tmp)
            _fsync_tree(tmp)
            if final.exists():
                # A directory cannot be replaced over a non-empty one: move the old aside.
                old = tmp.with_name(f".{FINAL_MODEL_NAME}.old.tmp")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(final, old)
            os.replace(tmp, final)
            tmp = None
            _fsync_dir(self.run_dir)
        except OSError as exc:
            raise write_error(final, exc, "final model", "then resume with --resume") from exc
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _clean_temporaries(self) -> None:
        """Remove what killed writes left: temporary files and temporary model directories."""
        clean_temporary_files(self.run_dir)
        for leftover in self.run_dir.glob(f".{FINAL_MODEL_NAME}.*.tmp"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)

    def _out_of_time(self) -> bool:
        budget = self.config.time_budget
        out = bool(budget and self.train_seconds >= budget)
        if self.accelerator.num_processes > 1:
            # Every process must stop at the same update, or DDP would wait forever.
            flag = torch.tensor([float(out)], device=self.accelerator.device)
            out = bool(self.accelerator.reduce(flag, "sum").item() > 0)
        return out

    def _evaluate_and_log(self, logger: Logger | None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.is_main:
            metrics = self.evaluate()
            if logger is not None:
                logger.log(self.update_count, metrics)
            self.history.append({"update": self.update_count, **metrics})
        self.accelerator.wait_for_everyone()
        return metrics


#: Config fields a resumed run must share with its checkpoint.
RUN_IDENTITY = ("env_id", "model", "tokenizer", "num_envs", "seed")
#: What a finished run leaves in its run directory besides its log and checkpoint.
FINAL_MODEL_NAME = "final_model"
REPORT_NAME = "report.json"


def _remove_if_only_lock(directory: Path) -> None:
    """Remove a run directory that a failed start created and left holding only its lock."""
    try:
        if [p.name for p in directory.iterdir()] == [".lock"]:
            shutil.rmtree(directory)
    except OSError:
        pass  # best effort: a left-over empty directory is harmless


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(directory: Path) -> None:
    """fsync every file under ``directory`` and the directories themselves (so a rename
    of ``directory`` never publishes files whose data is not on disk yet)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with open(Path(root) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


def mean_over_processes(accelerator: Any, value: float) -> float:
    """The mean of a scalar over processes (an identity with one process)."""
    if accelerator.num_processes == 1:
        return value
    t = torch.tensor([value], device=accelerator.device, dtype=torch.float32)
    return float(accelerator.reduce(t, "mean").item())


def finite(x: float) -> float:
    """``x`` or NaN replaced by 0, for metrics."""
    return x if math.isfinite(x) else 0.0
