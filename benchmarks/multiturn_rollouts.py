"""The two sides of the multi-turn rollout benchmark, on one env, with exact token counts.

* :class:`ReturningUser` and :func:`env_kwargs`: Dialogue conversations that last exactly
  ``N`` agent turns;
* :class:`ForwardCounter`: a forward pre-hook that counts what the model is fed (prefill,
  decode, positions) into :class:`Counts`;
* :class:`TextgymSide` (the KV-reusing token rollout) and :class:`TRLSide` (TRL's per-turn
  generation on the whole conversation).

:mod:`benchmarks.multiturn_throughput` times them and writes the results.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import textgym
from agents.common.rollout import RolloutCollector
from agents.lm.policy import LMPolicy
from agents.lm.row_cache import RowCache
from benchmarks.env_share import newest
from textgym.envs.dialogue.topics import question
from textgym.envs.dialogue.user import ACKS
from textgym.errors import ConfigError
from textgym.types import Problem, Reply, Turn
from textgym.users.base import Responder

#: Dialogue at its newest version (Gymnasium warns on making an outdated one).
ENV_ID = newest("textgym/Dialogue-v0")
#: Dialogue's agent-turn budget (its ``max_new_tokens``), TRL's per-turn budget too.
TURN_BUDGET = 24


# -- the env: Dialogue conversations that last N agent turns -------------------------------


class ReturningUser(Responder):
    """Dialogue's scripted user, held to exactly ``turns`` agent turns.

    The inner user judges every turn as usual; when it would leave early (satisfied, or
    annoyed) it starts over on the same problem ("thanks, that helps." and its first
    question again), and after ``turns`` agent turns it leaves.

    Args:
        inner: The scripted user (``DialogueTask(user=...)`` passes it).
        turns: Agent turns before the user leaves.
    """

    def __init__(self, inner: Responder, turns: int) -> None:
        self.inner, self.turns = inner, turns
        self.count = 0

    @classmethod
    def factory(cls, turns: int) -> functools.partial[ReturningUser]:
        """The ``user=`` argument of ``gym.make(ENV_ID, ...)``."""
        return functools.partial(cls, turns=turns)

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem, self.rng, self.count = problem, rng, 0
        self.inner.reset(problem, rng)

    def respond(self, turns: Sequence[Turn]) -> Reply:
        self.count += 1
        reply = self.inner.respond(turns)
        if self.count >= self.turns:
            return Reply(reply.text, done=True, outcome=reply.outcome)
        if not reply.done:
            return reply
        self.inner.reset(self.problem, self.rng)
        outcome = {**reply.outcome, "satisfied": False, "annoyed": False}
        return Reply(f"{ACKS[0]} {question(self.problem, 0).text}", outcome=outcome)


def env_kwargs(turns: int, positions: int) -> dict[str, Any]:
    """``gym.make(ENV_ID, **env_kwargs(N, ...))``: Dialogue lasting ``turns`` agent turns.

    ``max_length`` is the task's (``32 + 40 * turns``) capped so that a turn started at the
    end of the context still fits the model's ``positions`` (``generate`` would overrun them).
    """
    return {
        "patience": turns - 2,
        "user": ReturningUser.factory(turns),
        "max_length": min(32 + 40 * turns, positions - TURN_BUDGET),
    }


# -- exact counts of what the model is fed ---------------------------------------------------


@dataclass
class Counts:
    """What one side fed its model and got from the env (summed over its rounds).

    Attributes:
        generated: Agent tokens the env took (the tokens that count for throughput).
        prefill: Real tokens fed by rows feeding more than one token in a call.
        decode: Rows feeding a single token (the one just sampled, or an idle row's slot).
        positions: Every position computed, padding included (``input_ids.numel()``).
        calls: Forward calls.
        expected_prefill: The prefill this side's design implies, from the episodes alone
            (each non-agent token once for textgym; the whole context every turn for TRL).
        turns: Agent turns played.
        episodes: Episodes played.
        truncated: Episodes cut by a length limit.
        seconds: Wall time of the rounds.
    """

    generated: int = 0
    prefill: int = 0
    decode: int = 0
    positions: int = 0
    calls: int = 0
    expected_prefill: int = 0
    turns: int = 0
    episodes: int = 0
    truncated: int = 0
    seconds: float = 0.0

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class ForwardCounter:
    """A forward pre-hook that adds each call's fed tokens to :attr:`counts` (if set)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.counts: Counts | None = None
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.counts is None:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise RuntimeError(
                "The model was called without input_ids (with inputs_embeds?): this benchmark "
                "counts fed token ids and cannot count that call; report it."
            )
        rows, width = ids.shape
        mask = kwargs.get("attention_mask")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if isinstance(cache, RowCache):
            # textgym's per-row cache: the forward's 4-D mask says nothing of padding, so
            # the cache says how many real tokens each fed row brings.
            assert cache.counts is not None
            real = cache.counts
        elif mask is None:
            real = torch.full((rows,), width)
        else:
            # A 2-D mask covers the cache and the new block; the block is its last columns.
            real = mask[:, -width:].sum(-1)
        c = self.counts
        c.calls += 1
        c.positions += rows * width
        c.prefill += int(real[real > 1].sum())
        c.decode += int((real == 1).sum())


# -- the two sides -------------------------------------------------------------------------


class TextgymSide:
    """textgym's rollout: the vector env and the KV sampler, one collector per length."""

    def __init__(self, model: torch.nn.Module, path: str, batch: int, temperature: float) -> None:
        self.policy = LMPolicy(model, len(textgym.default_tokenizer()), name_or_path=path)
        self.positions = int(model.config.max_position_embeddings)
        self.batch, self.temperature = batch, temperature
        self._collectors: dict[int, RolloutCollector] = {}

    def play(self, turns: int, seeds: list[int]) -> Counts:
        collector = self._collectors.get(turns)
        if collector is None:
            envs = gym.make_vec(
                ENV_ID, self.batch, vectorization_mode="vector_entry_point", copy=False,
                **env_kwargs(turns, self.positions),
            )  # fmt: skip
            self.policy.check_env(envs)
            generator = torch.Generator().manual_seed(seeds[0])
            collector = RolloutCollector(envs, self.policy, self.temperature, generator)
            self._collectors[turns] = collector
        episodes = collector.collect(seeds)
        out = Counts(episodes=len(episodes))
        for e in episodes:
            out.generated += e.num_actions
            out.turns += len(e.turns)
            out.truncated += int(e.truncated)
            # Each token the agent did not write is fed once, with the agent's closing
            # end-of-turn token that the reply's block carries (one per reply written).
            out.expected_prefill += e.tokens.size - e.num_actions + len(e.turns) - 1
        return out


def _single_turn(trainer: Any, prompts: list[list[int]]) -> tuple[Any, Any]:
    """One ``GRPOTrainer._generate_single_turn`` call: TRL 1.8 (the floor) takes
    ``(prompt_ids, images, multimodal_fields)``, later releases also ``num_generations``."""
    if "num_generations" in inspect.signature(trainer._generate_single_turn).parameters:
        return trainer._generate_single_turn(prompts, None, {}, 1)
    return trainer._generate_single_turn(prompts, None, {})


class TRLSide:
    """TRL's multi-turn loop: ``_generate_single_turn`` on the whole conversation per turn."""

    def __init__(
        self, model: torch.nn.Module, batch: int, temperature: float, budget: int, out_dir: str
    ) -> None:
        # TRL is optional (the ``bench`` extra); importing it costs seconds.
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from textgym.integrations.trl import reward_func

        # TRL renamed gradient_checkpointing to activation_checkpointing after 1.8 (the floor).
        fields = {f.name for f in dataclasses.fields(GRPOConfig)}
        key = (
            "activation_checkpointing"
            if "activation_checkpointing" in fields
            else "gradient_checkpointing"
        )
        args = GRPOConfig(
            output_dir=out_dir, per_device_train_batch_size=batch, num_generations=batch,
            max_completion_length=budget, temperature=temperature, beta=0.0, use_cpu=True,
            report_to="none", save_strategy="no", bf16=False, disable_dropout=True,
            logging_steps=1, max_steps=1, seed=0, **{key: False},
        )  # fmt: skip
        self.trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward_func(ENV_ID)],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["hi"] * batch}),
            processing_class=textgym.default_tokenizer(),
        )
        if not callable(getattr(self.trainer, "_generate_single_turn", None)):
            raise ConfigError(
                "This TRL has no GRPOTrainer._generate_single_turn (the per-turn generation of "
                "its tool loop, TRL 1.16); install trl>=1.16,<2."
            )
        self.positions = int(model.config.max_position_embeddings)
        self._envs: dict[int, list[Any]] = {}

    def play(self, turns: int, seeds: list[int]) -> Counts:
        envs = self._envs.get(turns)
        if envs is None:
            kwargs = env_kwargs(turns, self.positions)
            envs = self._envs[turns] = [gym.make(ENV_ID, **kwargs) for _ in seeds]
        for env, seed in zip(envs, seeds, strict=True):
            env.reset(seed=seed)
        inner = [env.unwrapped for env in envs]
        out = Counts(episodes=len(envs))
        active = list(range(len(envs)))

        while active:
            prompts = [inner[i].context_ids.tolist() for i in active]
            out.expected_prefill += sum(len(p) for p in prompts)
            completions, _ = _single_turn(self.trainer, prompts)
            still = []
            for i, ids in zip(active, completions, strict=True):
                done = False
                for token in ids:  # up to and including the end of turn
                    _, _, terminated, truncated, _ = envs[i].step(int(token))
                    out.generated += 1
                    if terminated or truncated:
                        done = True
                        out.truncated += int(truncated and not terminated)
                        break
                out.turns += 1
                if not done:
                    still.append(i)
            active = still
        return out
