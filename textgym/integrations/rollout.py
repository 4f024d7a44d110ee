"""Token-level rollouts for TRL's ``rollout_func``: the trainer's model plays a ``TextEnv``.

The model samples one token, the env takes it as its action, and so on until the episode
ends; on multi-turn tasks the env writes the simulated user's reply into the context between
agent turns. The context ids are the env's own, so what the model is trained on is exactly
what it saw and sampled. Plain ``transformers`` on any device, no vLLM: each step is one
forward pass over the batch's contexts (left-padded), without a KV cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from textgym.errors import ConfigError
from textgym.integrations.problems import Row, has_problem, make_env, problem_of, user_text
from textgym.types import Problem


class TokenRollout:
    """A TRL ``rollout_func``: ``rollout(prompts, trainer) -> dict`` (built by
    :func:`textgym.integrations.trl.rollout_func`).

    TRL 1.16 calls it with one prompt per completion to generate (each dataset prompt
    repeated ``num_generations`` times) and reads ``prompt_ids``, ``completion_ids`` and
    ``logprobs``, then ``env_mask`` (1 for sampled tokens, 0 for the user's), and forwards
    every other key to the reward functions as a column: ``env_reward`` (the episode's
    return under the env's reward), ``success`` and ``env_seed`` (the episode's reset seed),
    plus the played problem's ``answer`` / ``metadata`` / ``problem_id`` when the prompts
    were found in the trainer's dataset.

    Each prompt is played on its own problem: the row of the trainer's ``train_dataset``
    (or ``eval_dataset``) whose opening user message it is (a :func:`~textgym.integrations.
    trl.dataset` has the columns), else, for single-turn tasks, a problem with just that
    prompt (its reward then comes from the reward functions' columns).

    Args:
        env_id: A registered textgym id.
        action_mask: Sample only the tokens ``env.action_masks()`` allows (the sampling
            log-probabilities are then those of the masked distribution).
        env_kwargs: Passed to ``gym.make``; without ``tokenizer`` the trainer's
            ``processing_class`` lays out the context.

    Attributes:
        episodes: Episodes played so far; episode ``k`` is reset with ``seed = args.seed + k``.
    """

    def __init__(self, env_id: str, action_mask: bool, env_kwargs: Mapping[str, Any]) -> None:
        self.env_id = env_id
        self.action_mask = action_mask
        self.env_kwargs = dict(env_kwargs)
        self.episodes = 0
        self._envs: list[gym.Env] = []
        self._tokenizer: Any = None
        self._index: dict[str, Row] = {}
        self._indexed: set[int] = set()

    def __repr__(self) -> str:
        return f"rollout_func({self.env_id!r})"

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with ``trainer.model``; see the class docstring.

        Raises:
            ConfigError: the model's vocabulary or positions do not fit the env, or a
                multi-turn prompt is not in the trainer's dataset (the simulated user needs
                the whole problem).
        """
        model = getattr(trainer, "model", None)
        accelerator = getattr(trainer, "accelerator", None)
        if accelerator is not None:
            model = accelerator.unwrap_model(model)
        tokenizer = self.env_kwargs.get("tokenizer") or _tokenizer(trainer)
        envs = self._pool(len(prompts), tokenizer)
        self._check_model(model, envs[0].unwrapped)
        rows = self._rows(prompts, trainer)
        base = int(getattr(getattr(trainer, "args", None), "seed", 0) or 0)
        seeds = []
        for env, row, prompt in zip(envs, rows, prompts, strict=True):
            seeds.append(base + self.episodes)
            self.episodes += 1
            problem = problem_of(row) if row is not None else Problem(prompt=user_text(prompt))
            env.reset(seed=seeds[-1], options={"problem": problem})
            if row is None and env.unwrapped.episode.responder is not None:
                raise ConfigError(
                    f"The prompt {user_text(prompt)!r:.80} is not in the trainer's dataset, and "
                    f"{self.env_id} is multi-turn: its simulated user needs the whole problem. "
                    f"Train on textgym.integrations.trl.dataset({self.env_id!r}, n, "
                    "conversational=True), or keep its metadata and problem_id columns."
                )
        temperature = float(getattr(trainer, "temperature", None) or 1.0)
        out = _play(model, envs, temperature, self.action_mask)
        out["env_seed"] = seeds
        if rows and all(row is not None for row in rows):
            for key in ("answer", "metadata", "problem_id"):
                if all(key in row for row in rows):
                    out[key] = [row[key] for row in rows]
        return out

    def _pool(self, n: int, tokenizer: Any) -> list[gym.Env]:
        """``n`` envs laid out by ``tokenizer`` (built once, reset for every rollout)."""
        if tokenizer is not self._tokenizer:
            for env in self._envs:
                env.close()
            self._envs, self._tokenizer = [], tokenizer
        kwargs = {**self.env_kwargs, "tokenizer": tokenizer}
        while len(self._envs) < n:
            self._envs.append(make_env(self.env_id, **kwargs))
        return self._envs[:n]

    def _rows(self, prompts: Sequence[Any], trainer: Any) -> list[Row | None]:
        """Each prompt's dataset row (``None`` where the trainer's datasets lack it)."""
        for ds in _datasets(trainer):
            if id(ds) in self._indexed:
                continue
            self._indexed.add(id(ds))
            for row in ds:
                if isinstance(row, Mapping) and has_problem(row):
                    self._index.setdefault(user_text(row["prompt"]), row)
        return [self._index.get(user_text(prompt)) for prompt in prompts]

    def _check_model(self, model: Any, env: Any) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(
                f"rollout_func needs trainer.model to be a torch causal LM, got {type(model).__name__}."
            )
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and env.max_length > positions:
            raise ConfigError(
                f"{self.env_id} contexts reach max_length={env.max_length} tokens but the model "
                f"has {positions} positions; pass rollout_func({self.env_id!r}, "
                f"max_length={positions}) or use a model with more positions."
            )
        vocab = model.get_output_embeddings().weight.shape[0]
        if vocab < env.vocab_size:
            raise ConfigError(
                f"The model scores {vocab} tokens but the env's tokenizer has {env.vocab_size}; "
                "the model and the env must share a tokenizer (pass it as processing_class)."
            )


def _tokenizer(trainer: Any) -> Any:
    """The trainer's tokenizer (a processor's inner one)."""
    pc = getattr(trainer, "processing_class", None)
    if pc is None:
        raise ConfigError("rollout_func needs trainer.processing_class (the model's tokenizer).")
    return pc if callable(getattr(pc, "encode", None)) else getattr(pc, "tokenizer", pc)


def _datasets(trainer: Any) -> Iterator[Any]:
    """The trainer's map-style datasets that have a ``prompt`` column."""
    found = [getattr(trainer, "train_dataset", None)]
    evals = getattr(trainer, "eval_dataset", None)
    found += list(evals.values()) if isinstance(evals, Mapping) else [evals]
    for ds in found:
        if "prompt" in (getattr(ds, "column_names", None) or ()) and hasattr(ds, "__len__"):
            yield ds


@contextlib.contextmanager
def _sampling(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd while sampling; the mode is restored after."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


def _next_logits(model: torch.nn.Module, contexts: list[np.ndarray], pad_id: int) -> torch.Tensor:
    """The next-token logits of each context, in one left-padded forward pass."""
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(contexts), width), dtype=torch.long)
    for k, context in enumerate(contexts):
        ids[k, width - len(context) :] = torch.from_numpy(context)
        attn[k, width - len(context) :] = 1
    # Left padding shifts positions; explicit ids keep each context's own 0, 1, 2, ...
    positions = (attn.cumsum(1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    out = model(
        input_ids=ids.to(device),
        attention_mask=attn.to(device),
        position_ids=positions.to(device),
        use_cache=False,
    )
    return out.logits[:, -1].float()


def _play(
    model: torch.nn.Module, envs: list[gym.Env], temperature: float, action_mask: bool
) -> dict[str, list[Any]]:
    """Step every env (already reset) with sampled tokens until all episodes end."""
    inner = [env.unwrapped for env in envs]
    prompt_ids = [e.context_ids.tolist() for e in inner]
    masks: list[list[int]] = [[] for _ in envs]
    logprobs: list[list[float]] = [[] for _ in envs]
    returns = [0.0] * len(envs)
    success = [False] * len(envs)
    vocab = inner[0].vocab_size
    active = list(range(len(envs)))
    with _sampling(model):
        while active:
            contexts = [inner[i].context_ids for i in active]
            logits = _next_logits(model, contexts, inner[0].chat.pad_id)[:, :vocab]
            if action_mask:
                allowed = torch.from_numpy(np.stack([inner[i].action_masks() for i in active]))
                logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
            logp = torch.log_softmax(logits / temperature, dim=-1)
            tokens = torch.multinomial(logp.exp(), 1).squeeze(1).tolist()
            still = []
            for row, (i, token) in enumerate(zip(active, tokens, strict=True)):
                before = len(contexts[row])
                _, reward, terminated, truncated, info = envs[i].step(token)
                returns[i] += float(reward)
                masks[i].append(1)
                logprobs[i].append(float(logp[row, token]))
                # Whatever else the step wrote is the simulated user's reply: not the model's.
                written = len(inner[i].context_ids) - before - 1
                masks[i] += [0] * written
                logprobs[i] += [0.0] * written
                if terminated or truncated:
                    success[i] = bool(info.get("success", False))
                else:
                    still.append(i)
            active = still
    completion_ids = [
        e.context_ids.tolist()[len(p) :] for e, p in zip(inner, prompt_ids, strict=True)
    ]
    return {
        "prompt_ids": prompt_ids,
        "completion_ids": completion_ids,
        "logprobs": logprobs,
        "env_mask": masks,
        "env_reward": returns,
        "success": success,
    }


__all__ = ["TokenRollout"]
