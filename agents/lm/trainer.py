"""The loop every LM algorithm shares: collect rounds, update, log, evaluate, checkpoint.

An algorithm (``agents/reinforce.py``, ``ppo.py``, ``grpo.py``) subclasses :class:`LMTrainer`
with its config dataclass and :meth:`LMTrainer.update`; the rest lives here, once. Training
goes through ``accelerate``: one process is the plain case; ``accelerate launch`` runs DDP,
each process collecting its own rollouts (different seeds), gradients averaged.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from agents.common.checkpoint import (
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
from agents.lm import rundir
from agents.lm.config import (
    COUNT,
    COUNT_OR_ZERO,
    FLAG,
    MAX_SEED,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    SEED,
    UNIT,
    Check,
    TrainConfig,
    config_problems,
    field_docs,
    flag_name,
    normalize_numbers,
    raise_config_problems,
)
from agents.lm.default_model import resolve_model
from agents.lm.envs import check_env_id, has_split, make_envs, make_run_envs
from agents.lm.policy import LMPolicy, ModelNotFoundError, token_logprobs
from agents.lm.rundir import RUN_IDENTITY
from textgym import runs
from textgym.errors import ConfigError
from textgym.runs import FINAL_MODEL_NAME, REPORT_NAME, checkpoint_path

# Re-exported from the modules they moved to (config, envs, runs, default_model, policy).
__all__ = [
    "COUNT",
    "COUNT_OR_ZERO",
    "FINAL_MODEL_NAME",
    "FLAG",
    "MAX_SEED",
    "NON_NEGATIVE",
    "POSITIVE",
    "RATE",
    "REPORT_NAME",
    "RUN_IDENTITY",
    "SEED",
    "UNIT",
    "Check",
    "ConfigError",
    "LMTrainer",
    "ModelNotFoundError",
    "TrainConfig",
    "check_env_id",
    "config_problems",
    "field_docs",
    "flag_name",
    "has_split",
    "make_envs",
    "mean_over_processes",
    "normalize_numbers",
    "raise_config_problems",
    "resolve_model",
]


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
        # Imported here: accelerate takes a second to import, and `textgym train --help` and
        # the config checks import this module without needing it.
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
        self.run_dir = Path(
            config.run_dir or runs.default_run_dir(config.env_id, self.algo, config.seed)
        )
        # The run directory is this trainer's from here until learn() returns (or close()).
        self._lock = runs.run_lock(self.run_dir)
        created = not self.run_dir.exists()
        if self.is_main:
            self._lock.acquire()
        try:
            self._setup(created)
        except BaseException:
            # Removed before the lock is released, so no other process can lock it meanwhile.
            if created and self.is_main:
                runs.remove_if_only_lock(self.run_dir)
            self.close()
            raise

    def _setup(self, created: bool) -> None:
        config, acc = self.config, self.accelerator
        if self.is_main and not created:
            # Temporary files of a write that a kill interrupted (safe: we hold the lock).
            runs.clean_temporaries(self.run_dir)
        runs.check_start(self.run_dir, config.resume)

        self.envs, self.eval_envs, self.split = make_run_envs(config)
        first = self.envs.unwrapped.envs[0]
        self.pad_id, self.eot_id = first.chat.pad_id, first.chat.eot_id
        self.max_new_tokens = int(self.envs.unwrapped.max_new_tokens)

        self.policy = policy = LMPolicy.for_env(
            resolve_model(config.model), self.envs, value_head=self.value_head, device=acc.device
        )
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
        played = self.eval_collector.collect_greedy(episodes or self.config.eval_episodes)
        return rollout_metrics(played, prefix="eval")

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
            DirectoryInUseError: another process took the run directory since close().
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
        cfg = self.config
        logger = (
            Logger(self.run_dir, tensorboard=None if cfg.tensorboard else False)
            if self.is_main
            else None
        )
        bar = None
        try:
            if self.is_main:
                # Rewritten on every (re)start: a bare --resume takes its defaults from here.
                runs.write_config(self.run_dir, self.config_dict())
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
                    self._evaluated(self._evaluate_and_log(logger))
                if cfg.checkpoint_every and self.update_count % cfg.checkpoint_every == 0:
                    self.save()
            bar.close()
            if not self._final_evaluated():  # else the last update's (or a resumed run's)
                self._evaluated(self._evaluate_and_log(logger))
            self.save()
            if self.is_main:
                self._write_final_model()
                report = self.report()
                # Last: report.json is what marks the run finished (runs.is_finished).
                runs.write_report(self.run_dir, report)
                print(self.format_report(report))
            self.accelerator.wait_for_everyone()
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()

    def report(self) -> dict[str, Any]:
        """Before/after evaluation, budget and throughput of the run (``capped``: the time
        budget stopped it before ``total_updates``)."""
        cfg, seconds = self.config, max(self.train_seconds, 1e-9)
        return {
            "algo": self.algo, "env_id": cfg.env_id, "seed": cfg.seed,
            "split": self.split or "train",
            "updates": self.update_count, "total_updates": cfg.total_updates,
            "time_budget": cfg.time_budget, "capped": self.update_count < cfg.total_updates,
            "episodes": self.episodes_seen, "generated_tokens": self.tokens_seen,
            "train_seconds": round(self.train_seconds, 1),
            "tokens_per_second": round(self.tokens_seen / seconds, 1),
            "before": self.extra_state.get("initial_eval", {}),
            "after": self.extra_state.get("final_eval", {}),
            "run_dir": str(self.run_dir),
        }  # fmt: skip

    @staticmethod
    def format_report(report: dict[str, Any]) -> str:
        """The report in a few lines for the terminal (:func:`agents.lm.rundir.format_report`)."""
        return rundir.format_report(report)

    # -- checkpoints ----------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, **asdict(self.config)}

    def save(self) -> None:
        """Write the checkpoint (main process; every process's RNG state is gathered)."""
        # Imported here, as Accelerator is in __init__ (a second to import).
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
        runs.check_same_run(run_dir, state["config"], self.config_dict(), RUN_IDENTITY)
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

    def _check_work_left(self) -> None:
        """Refuse a resumed run that is finished and has no budget left.

        A run killed after its last update but before its final evaluation, final model or
        report was written has work left: ``learn()`` finishes it.
        """
        if self._final_evaluated() and runs.is_finished(self.run_dir, updates=self.update_count):
            rundir.check_budget_left(
                self.run_dir, self.config, self.update_count, self.train_seconds
            )

    def _evaluated(self, metrics: dict[str, float]) -> None:
        """Keep the evaluation of this update: the final one if no update follows."""
        self.extra_state.update(final_eval=metrics, final_update=self.update_count)

    def _final_evaluated(self) -> bool:
        """Whether the final evaluation of the current update is in the state (and so in
        the checkpoint): after more updates, an earlier final evaluation is stale."""
        return (
            "final_eval" in self.extra_state
            and self.extra_state.get("final_update") == self.update_count
        )

    def _write_final_model(self) -> None:
        """``final_model/``, all or nothing (:func:`agents.lm.rundir.write_final_model`)."""
        rundir.write_final_model(self.policy, self.run_dir)

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


def mean_over_processes(accelerator: Any, value: float) -> float:
    """The mean of a scalar over processes (an identity with one process)."""
    if accelerator.num_processes == 1:
        return value
    t = torch.tensor([value], device=accelerator.device, dtype=torch.float32)
    return float(accelerator.reduce(t, "mean").item())
