"""Trainer throughput: generated tokens per second of textgym's GRPO and PPO, TRL, and a raw reference loop.

All contenders train the same model on the same Reasoning-v0 prompts (train split, the same
seeds), with the same reward, batch (``batch`` completions = ``batch / group`` prompts x
``group`` samples), temperature, learning rate and completion budget, in the same run:

* ``raw``: a bare reference loop with no env and no framework (not a true limit: it keeps
  finished rows in the KV cache until the batch ends): left-padded prompts, a KV
  cache sampling loop until every row has ended its turn, then one forward/backward over
  the same tokens and an optimizer step;
* ``trl``: TRL's ``GRPOTrainer`` (``transformers.generate`` + its loss), ``beta=0``;
* ``grpo``: :class:`agents.grpo.GRPO`, end to end through the vector env, ``kl_coef=0``;
* ``ppo``: :class:`agents.ppo.PPO`, end to end (value head, GAE, 1 epoch of 1 minibatch,
  KL penalty off; the values come from the sampling passes, so no extra pass).

A step is timed from the start of generation to the end of the optimizer step; setup and
the first ``warmup`` steps are not timed. Contenders are measured in alternation, ``repeats``
times, and the median per contender is reported, so that a shared machine's load drifts
into every contender alike. Tokens are the completion tokens, the end-of-turn token
included.

    python -m benchmarks.trainer_throughput               # writes benchmarks/results/lm_trainer_throughput.json
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from transformers import AutoModelForCausalLM, DynamicCache

import textgym
from agents.grpo import GRPO, GRPOConfig
from agents.lm.policy import cache_kwarg, forward_with_cache
from agents.lm.trainer import resolve_model
from agents.ppo import PPO, PPOConfig
from benchmarks.cli import run_main
from benchmarks.render import table
from textgym import hub
from textgym.rewards.base import RewardContext
from textgym.tasks.base import Problem, Turn
from textgym.tools import flags
from textgym.tools.flags import FlagParser

RESULTS = Path(__file__).parent / "results" / "lm_trainer_throughput.json"
ENV_ID = "textgym/Reasoning-v0"


# -- shared inputs ------------------------------------------------------------------------


def prompt_batches(
    env_id: str, batch: int, group: int, steps: int, seed: int
) -> list[tuple[list[int], list[int], list[str]]]:
    """``steps`` batches of (reset seeds, group ids, gold answers), ``group`` rows per seed."""
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    out = []
    for step in range(steps):
        seeds = rng.integers(0, 2**31 - 1, size=batch // group).tolist()
        answers = []
        for s in seeds:
            env.reset(seed=int(s))
            answers.append(env.problem.answer)
        rows = np.repeat(seeds, group).tolist()
        groups = np.repeat(
            np.arange(step * (batch // group), (step + 1) * (batch // group)), group
        ).tolist()
        out.append((rows, groups, np.repeat(answers, group).tolist()))
    return out


def opening_ids(env_id: str, seed: int) -> list[int]:
    """The context the env shows before the agent's first token, for ``seed``."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=int(seed))
    return env.context_ids.tolist()


def reward_fn(env_id: str) -> Callable[[str, str], float]:
    """The env's reward for a single-turn completion text and a gold answer."""
    env = gym.make(env_id).unwrapped
    reward = env.reward

    def score(text: str, answer: str) -> float:
        problem = Problem(prompt="", answer=answer)
        ctx = RewardContext(
            problem=problem,
            turns=(Turn("agent", text),),
            text=text,
            token_ids=np.zeros(0, dtype=np.int64),
        )
        return float(reward.score(ctx)[0])

    return score


# -- contenders ---------------------------------------------------------------------------


class RawLoop:
    """The bare reference: KV-cache sampling + one forward/backward, nothing else."""

    def __init__(
        self, model_path: str, env_id: str, lr: float, temperature: float, max_new_tokens: int
    ) -> None:
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, **hub.dtype_kwargs(torch.float32)
        )
        # The cache keyword of the installed transformers, decided once for the model.
        self.cache_kwarg = cache_kwarg(self.model)
        for m in self.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, eps=1e-5, weight_decay=0.0)
        tok = textgym.default_tokenizer()
        self.pad, self.eos = tok.pad_token_id, tok.eos_token_id
        self.env_id, self.temperature, self.max_new = env_id, temperature, max_new_tokens
        self.gen = torch.Generator().manual_seed(0)
        self._openings: dict[int, list[int]] = {}

    def step(self, seeds: list[int]) -> int:
        prompts = [self._openings.setdefault(s, opening_ids(self.env_id, s)) for s in seeds]
        b, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((b, width), self.pad, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        self.model.eval()
        done = torch.zeros(b, dtype=torch.bool)
        out_tokens = []
        with torch.no_grad():
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out, cache = forward_with_cache(
                self.model,
                DynamicCache(),
                width,
                kwarg=self.cache_kwarg,
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
            )
            cur_pos = pos[:, -1]
            full_mask = mask
            for _ in range(self.max_new):
                probs = torch.softmax(out.logits[:, -1].float() / self.temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=self.gen).squeeze(-1)
                nxt = torch.where(done, torch.full_like(nxt, self.pad), nxt)
                out_tokens.append(nxt)
                done = done | (nxt == self.eos)
                if bool(done.all()):
                    break
                cur_pos = cur_pos + 1
                full_mask = torch.cat([full_mask, torch.ones(b, 1, dtype=torch.long)], 1)
                out, cache = forward_with_cache(
                    self.model,
                    cache,
                    full_mask.shape[1],
                    kwarg=self.cache_kwarg,
                    input_ids=nxt[:, None],
                    attention_mask=full_mask,
                    position_ids=cur_pos[:, None],
                )
        completion = torch.stack(out_tokens, 1)
        # Completion mask: up to and including the first eos.
        is_eos = completion == self.eos
        first = torch.where(
            is_eos.any(1), is_eos.int().argmax(1), torch.full((b,), completion.shape[1])
        )
        cmask = torch.arange(completion.shape[1])[None, :] <= first[:, None]
        tokens = int(cmask.sum())
        # One forward/backward over the same tokens (a policy-gradient-shaped loss).
        self.model.train()
        seq = torch.cat([ids, completion], 1)
        smask = torch.cat([mask, cmask.long()], 1)
        pos = (smask.cumsum(-1) - 1).clamp(min=0)
        # Logits only over the completion (what TRL's logits_to_keep does): the head is a
        # large share of a small model's cost.
        hidden = self.model.base_model(
            input_ids=seq, attention_mask=smask, position_ids=pos
        ).last_hidden_state
        logits = self.model.get_output_embeddings()(hidden[:, width - 1 : -1]).float()
        logp = (
            torch.log_softmax(logits / self.temperature, -1)
            .gather(-1, completion[..., None])
            .squeeze(-1)
        )
        adv = torch.randn(b, 1)
        loss = -(logp * adv * cmask).sum() / (b * self.max_new)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return tokens


def make_textgym(
    algo: str,
    model_path: str,
    env_id: str,
    batch: int,
    group: int,
    lr: float,
    temperature: float,
    run_dir: str,
) -> Any:
    """A textgym trainer configured like the other contenders."""
    if algo == "grpo":
        cfg = GRPOConfig(
            env_id=env_id, model=model_path, num_envs=batch, group_size=group, kl_coef=0.0,
            learning_rate=lr, temperature=temperature, loss_type="dr_grpo", scale_rewards=False,
            run_dir=run_dir, progress=False, tensorboard=False, threads=torch.get_num_threads(),
        )  # fmt: skip
        return GRPO(cfg)
    cfg = PPOConfig(
        env_id=env_id, model=model_path, num_envs=batch, kl_coef=0.0, learning_rate=lr,
        temperature=temperature, update_epochs=1, num_minibatches=1, run_dir=run_dir,
        progress=False, tensorboard=False, threads=torch.get_num_threads(),
    )  # fmt: skip
    return PPO(cfg)


def textgym_step(trainer: Any, seeds: list[int], groups: list[int]) -> int:
    trainer.round_seeds = lambda: (seeds, groups)
    metrics = trainer.train_step()
    return int(metrics["perf/generated_tokens"])


class TRLRunner:
    """TRL's GRPOTrainer on the same model, prompts, reward and batch."""

    def __init__(
        self,
        model_path: str,
        env_id: str,
        batches: list[tuple[list[int], list[int], list[str]]],
        batch: int,
        group: int,
        lr: float,
        temperature: float,
        max_new_tokens: int,
        out_dir: str,
    ) -> None:
        # TRL is optional (the ``bench`` extra), and so is this contender; datasets comes
        # with it, and transformers' Trainer stack is slow to import for the others.
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import GRPOConfig as TRLGRPOConfig
        from trl import GRPOTrainer

        tok = textgym.default_tokenizer()
        score = reward_fn(env_id)
        prompts, answers = [], []
        for seeds, _, golds in batches:
            for s, a in zip(seeds[::group], golds[::group], strict=True):
                prompts.append(tok.decode(opening_ids(env_id, s), skip_special_tokens=False))
                answers.append(a)
        dataset = Dataset.from_dict({"prompt": prompts, "answer": answers})

        def reasoning_reward(completions: list[str], answer: list[str], **_: Any) -> list[float]:
            return [score(c, a) for c, a in zip(completions, answer, strict=True)]

        self.step_times: list[float] = []
        self.step_tokens: list[int] = []
        runner = self

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001, ANN201
                runner._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN201
                runner.step_times.append(time.perf_counter() - runner._t)

            def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001, ANN201
                if logs and "completions/mean_length" in logs:
                    runner.step_tokens.append(int(round(logs["completions/mean_length"] * batch)))

        args = TRLGRPOConfig(
            output_dir=out_dir, per_device_train_batch_size=batch, num_generations=group,
            max_completion_length=max_new_tokens, temperature=temperature, beta=0.0,
            learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0, max_steps=len(batches),
            logging_steps=1, report_to="none", use_cpu=True, save_strategy="no",
            disable_dropout=True, loss_type="dr_grpo", scale_rewards="none", num_iterations=1,
            gradient_accumulation_steps=1, shuffle_dataset=False, seed=0, bf16=False,
            dataloader_num_workers=0, max_grad_norm=1.0, adam_epsilon=1e-5, weight_decay=0.0,
        )  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(model_path, **hub.dtype_kwargs(torch.float32))
        self.trainer = GRPOTrainer(
            model=model,
            reward_funcs=reasoning_reward,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[Timer()],
        )

    def run(self) -> None:
        self.trainer.train()


# -- the measurement -----------------------------------------------------------------------


def measure(
    model: str = "default",
    env_id: str = ENV_ID,
    batch: int = 64,
    group: int = 8,
    steps: int = 4,
    warmup: int = 1,
    repeats: int = 3,
    threads: int = 2,
    lr: float = 1e-5,
    temperature: float = 1.0,
    contenders: Sequence[str] = ("raw", "trl", "grpo", "ppo"),
    seed: int = 0,
) -> dict[str, Any]:
    """Tokens per second of each contender (median over ``repeats`` alternating blocks of
    ``steps`` timed steps after ``warmup``), and the ratios the README quotes."""
    torch.set_num_threads(threads)
    model_path = resolve_model(model)
    max_new = int(gym.make(env_id).unwrapped.max_new_tokens)
    per_block = warmup + steps
    batches = prompt_batches(env_id, batch, group, per_block * repeats, seed)
    rates: dict[str, list[float]] = {c: [] for c in contenders}
    detail: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            block = batches[rep * per_block : (rep + 1) * per_block]
            for name in contenders:
                tokens, seconds = 0, 0.0
                if name == "trl":
                    runner = TRLRunner(
                        model_path,
                        env_id,
                        block,
                        batch,
                        group,
                        lr,
                        temperature,
                        max_new,
                        os.path.join(tmp, f"trl{rep}"),
                    )
                    runner.run()
                    tokens = sum(runner.step_tokens[warmup:])
                    seconds = sum(runner.step_times[warmup:])
                elif name == "raw":
                    raw = RawLoop(model_path, env_id, lr, temperature, max_new)
                    for i, (seeds, _, _) in enumerate(block):
                        start = time.perf_counter()
                        n = raw.step(seeds)
                        if i >= warmup:
                            tokens, seconds = tokens + n, seconds + time.perf_counter() - start
                else:
                    trainer = make_textgym(
                        name,
                        model_path,
                        env_id,
                        batch,
                        group,
                        lr,
                        temperature,
                        os.path.join(tmp, name),
                    )
                    for i, (seeds, groups, _) in enumerate(block):
                        start = time.perf_counter()
                        n = textgym_step(trainer, seeds, groups)
                        if i >= warmup:
                            tokens, seconds = tokens + n, seconds + time.perf_counter() - start
                rates[name].append(tokens / seconds)
                detail[name].append({"tokens": tokens, "seconds": round(seconds, 3)})
                print(
                    f"  repeat {rep}: {name:<5} {tokens / seconds:8.0f} tokens/s ({tokens} tokens, {seconds:.1f}s)",
                    flush=True,
                )
    tps = {c: float(np.median(v)) for c, v in rates.items()}
    ratios: dict[str, float] = {}
    for a, b in [("grpo", "trl"), ("grpo", "raw"), ("ppo", "trl"), ("ppo", "raw"), ("trl", "raw")]:
        if a in tps and b in tps:
            ratios[f"{a}/{b}"] = round(tps[a] / tps[b], 3)
    return {
        "env_id": env_id,
        "model": model,
        "batch": batch,
        "group": group,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "threads": threads,
        "temperature": temperature,
        "tokens_per_second": {k: round(v, 1) for k, v in tps.items()},
        "ratios": ratios,
        "runs": detail,
        "torch": torch.__version__,
        "trl": _version("trl"),
        "transformers": _version("transformers"),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
    }


#: The contenders in table order, and how the table names them.
CONTENDERS = {
    "grpo": "textgym GRPO (through the vector env)",
    "ppo": "textgym PPO (value head, GAE; through the env)",
    "trl": "TRL `GRPOTrainer`",
    "raw": "raw loop (no env, no framework)",
}


def markdown(result: dict[str, Any]) -> str:
    """The README table: tokens/s of each contender and its ratios to TRL and to raw."""
    tps = result["tokens_per_second"]
    rows = []
    for key, name in CONTENDERS.items():
        if key not in tps:
            continue
        vs_trl = f"{tps[key] / tps['trl']:.2f}" if "trl" in tps else "-"
        if key in ("grpo", "ppo"):
            vs_trl = f"**{vs_trl}**"
        vs_raw = f"{tps[key] / tps['raw']:.2f}" if "raw" in tps else "-"
        rows.append([name, f"{tps[key]:,.0f}", vs_trl, vs_raw])
    return table(["contender", "tokens/s", "vs TRL", "vs raw"], rows, "lrrr")


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


@dataclass
class TrainerThroughputArgs:
    """The flags of ``python -m benchmarks.trainer_throughput``."""

    model: str = "default"
    """causal LM: 'default' (textgym's embedded model), a local directory or a hub name"""
    env_id: str = ENV_ID
    """the env whose prompts and reward every contender trains on"""
    batch: int = 64
    """completions per step (batch / group prompts x group samples)"""
    group: int = 8
    """samples per prompt"""
    steps: int = 4
    """timed steps per block"""
    warmup: int = 1
    """untimed steps before each block"""
    repeats: int = 3
    """blocks per contender, in alternation (the median counts)"""
    threads: int = 2
    """torch CPU threads"""
    contenders: str = "raw,trl,grpo,ppo"
    """comma-separated contenders to measure"""
    out: str = str(RESULTS)
    """the JSON file to write"""


def build_parser() -> FlagParser[TrainerThroughputArgs]:
    """The command line of ``python -m benchmarks.trainer_throughput``."""
    prog, doc = "python -m benchmarks.trainer_throughput", __doc__.split("\n\n")[0]
    return flags.build_parser(TrainerThroughputArgs, prog, doc)


def execute(args: TrainerThroughputArgs) -> int:
    """Measure with the parsed flags, write the JSON and print the headline figures."""
    result = measure(
        args.model, args.env_id, args.batch, args.group, args.steps, args.warmup, args.repeats,
        args.threads, contenders=args.contenders.split(","),
    )  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {"tokens_per_second": result["tokens_per_second"], "ratios": result["ratios"]}, indent=2
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.trainer_throughput [--batch 64 --group 8 --steps 4 --repeats 3]``."""
    return run_main(build_parser(), execute, argv)


if __name__ == "__main__":
    raise SystemExit(main())
