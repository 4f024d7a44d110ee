"""Rollouts of an LM policy through a textgym vector env, and the batch the learners train on.

One rollout loop for every LM algorithm (:class:`RolloutCollector`). A *round* resets every
sub-env with an explicit seed and runs each row until its first episode ends; a row that is
done waits, paused (:meth:`textgym.vector.TextVectorEnv.pause`: the env neither steps nor
resets it, and the sampler drops it), until the longest episode of the round ends. Rounds make every episode complete (no bias towards short episodes, no stale
half-episodes across updates), let GRPO put the same problem in several rows (same seed),
and leave no env state to checkpoint: a resumed run replays the same seeds.

Every token goes through ``envs.step``: multi-turn episodes contain the users' replies, and
:class:`Episode` records which context positions the agent wrote, so that only the agent's
own tokens receive policy-gradient credit (:attr:`RolloutBatch.action_mask`).

Index convention of :class:`RolloutBatch`: position ``d`` of a ``(B, T - 1)`` array is the
*decision* that produced token ``d + 1`` from the context ``tokens[: d + 1]``, which is
where a causal LM's logits ``[:, d]`` and a value head's ``values[:, d]`` live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from agents.lm.policy import LMPolicy
from agents.lm.sampler import KVSampler


@dataclass
class Episode:
    """One complete episode of a rollout.

    Attributes:
        tokens: The final context (prompt, agent turns, users' replies), without padding.
        action_positions: Positions in ``tokens`` that the agent wrote, in order.
        logprobs: Behaviour log-prob of each action at the sampling temperature.
        values: The value head's estimate of the state each action was taken in (a
            collector with ``values=True``), else ``None``.
        rewards: The env's reward after each action.
        terminated: The episode ended (not cut by a length limit).
        truncated: A length limit cut the episode (a learner may bootstrap).
        success: The task's success flag at the end.
        group: Rows reset with the same seed share a group (the same problem).
        seed: The reset seed.
        turns: The agent's turns as text, for logging and reports.
    """

    tokens: np.ndarray
    action_positions: np.ndarray
    logprobs: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    success: bool
    group: int
    seed: int
    turns: list[str] = field(default_factory=list)
    values: np.ndarray | None = None

    @property
    def episode_return(self) -> float:
        """Sum of the env's rewards."""
        return float(self.rewards.sum())

    @property
    def num_actions(self) -> int:
        """Tokens the agent generated."""
        return int(self.action_positions.size)


@dataclass
class RolloutStats:
    """What rounds cost: generated tokens, sub-env steps (finished rows pause), seconds."""

    generated_tokens: int = 0
    env_steps: int = 0
    seconds: float = 0.0


class RolloutCollector:
    """Plays rounds of a policy in a textgym vector env with a shared KV cache.

    Args:
        envs: A textgym vector env (``gym.make_vec(id, n, vectorization_mode=
            "vector_entry_point")``); ``copy=False`` saves a copy per step.
        policy: The policy that acts.
        temperature: Sampling temperature; log-probs are recorded at this temperature.
        generator: The torch RNG for sampling (kept by the trainer, saved in checkpoints).
        values: Record the value head's estimate of every state the agent acts in
            (:attr:`Episode.values`), from the sampling passes themselves.
    """

    def __init__(
        self,
        envs: Any,
        policy: LMPolicy,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        values: bool = False,
    ) -> None:
        if temperature <= 0:
            raise ValueError(
                f"temperature={temperature} must be > 0; use greedy=True for argmax decoding."
            )
        self.envs = envs
        self.policy = policy
        self.temperature = float(temperature)
        self.generator = generator or torch.Generator().manual_seed(0)
        unwrapped = envs.unwrapped
        self.num_envs = int(envs.num_envs)
        self.max_length = int(unwrapped.max_length)
        self.eot_id = int(unwrapped.eot_id)
        # A row's cache holds its context and nothing else: at most max_length slots.
        self.sampler = KVSampler(
            policy,
            self.num_envs,
            max_cache=self.max_length,
            pad_id=int(unwrapped.envs[0].chat.pad_id),
            values=values,
        )
        self.stats = RolloutStats()

    # inference_mode, not no_grad: no version counters or views to track, 8% more tokens/s
    # at 16 turns (the KV cache is written in place every forward). Nothing collected here
    # enters autograd: episodes carry numpy arrays.
    @torch.inference_mode()
    def collect(
        self, seeds: list[int], groups: list[int] | None = None, greedy: bool = False
    ) -> list[Episode]:
        """Play one round: reset row ``i`` with ``seeds[i]`` and return its first episode.

        Args:
            seeds: One reset seed per row.
            groups: Group id per row (defaults to the row index).
            greedy: Take the argmax token instead of sampling (evaluation).
        """
        n = self.num_envs
        if len(seeds) != n:
            raise ValueError(f"Got {len(seeds)} seeds for {n} rows; pass one seed per row.")
        groups = list(range(n)) if groups is None else list(groups)
        start = time.perf_counter()
        was_training = self.policy.training
        self.policy.eval()
        obs, _ = self.envs.reset(seed=[int(s) for s in seeds])
        self.sampler.reset()
        steps_cap = self.max_length + 1
        positions = np.zeros((n, steps_cap), dtype=np.int64)
        logps = np.zeros((n, steps_cap), dtype=np.float32)
        vals = np.zeros((n, steps_cap), dtype=np.float32)
        rewards = np.zeros((n, steps_cap), dtype=np.float64)
        count = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        episodes: list[Episode | None] = [None] * n
        turns: list[list[str]] = [[] for _ in range(n)]
        env_steps = 0
        while active.any():
            ids = obs["input_ids"]
            lengths = obs["attention_mask"].sum(axis=1).astype(np.int64)
            rows, logits, state_values = self.sampler.logits_and_values(ids, lengths, active)
            logp_all = F.log_softmax(logits / self.temperature, dim=-1)
            if greedy:
                picked = logits.argmax(dim=-1)
            else:
                picked = torch.multinomial(logp_all.exp(), 1, generator=self.generator).squeeze(-1)
            # Rows that are done wait, paused: the env ignores their (end-of-turn) action.
            actions = np.full(n, self.eot_id, dtype=np.int64)
            actions[rows] = picked.cpu().numpy()
            chosen = np.zeros(n, dtype=np.float32)
            chosen[rows] = logp_all.gather(-1, picked[:, None]).squeeze(-1).cpu().numpy()
            value_now = np.zeros(n, dtype=np.float32)
            if state_values is not None:
                value_now[rows] = state_values.cpu().numpy()
            if not active.all():
                self.envs.unwrapped.pause(~active)
            obs, reward, terminated, truncated, infos = self.envs.step(actions)
            rows = np.flatnonzero(active)
            env_steps += rows.size
            k = count[rows]
            positions[rows, k] = lengths[rows]
            logps[rows, k] = chosen[rows]
            vals[rows, k] = value_now[rows]
            rewards[rows, k] = reward[rows]
            count[rows] += 1
            if "turn_text" in infos:
                closed = rows[infos["_turn_text"][rows]]
                for r in closed:
                    turns[r].append(str(infos["turn_text"][r]))
            done = rows[(terminated | truncated)[rows]]
            if done.size:
                final_len = obs["attention_mask"][done].sum(axis=1)
                for r, length in zip(done, final_len, strict=True):
                    c = int(count[r])
                    success = bool(infos["success"][r]) if "success" in infos else False
                    episodes[r] = Episode(
                        tokens=np.array(obs["input_ids"][r, :length], dtype=np.int64),
                        action_positions=positions[r, :c].copy(),
                        logprobs=logps[r, :c].copy(),
                        rewards=rewards[r, :c].copy(),
                        terminated=bool(terminated[r]),
                        truncated=bool(truncated[r]),
                        success=success,
                        group=int(groups[r]),
                        seed=int(seeds[r]),
                        turns=turns[r],
                        values=vals[r, :c].copy() if self.sampler.values else None,
                    )
                active[done] = False
                self.sampler.retire(done)
        if was_training:
            self.policy.train()
        out = [e for e in episodes if e is not None]
        self.stats.generated_tokens += sum(e.num_actions for e in out)
        self.stats.env_steps += env_steps
        self.stats.seconds += time.perf_counter() - start
        return out

    def collect_greedy(self, episodes: int) -> list[Episode]:
        """``episodes`` greedy episodes, reset with the seeds ``0, 1, 2, ...`` one round of
        :attr:`num_envs` rows at a time: fixed seeds, so every evaluation sees the same
        problems."""
        played: list[Episode] = []
        base = 0
        while len(played) < episodes:
            played.extend(self.collect(list(range(base, base + self.num_envs)), greedy=True))
            base += self.num_envs
        return played[:episodes]


class RolloutBatch(NamedTuple):
    """Episodes as right-padded tensors (see the module docstring for the index convention).

    Attributes:
        input_ids: ``(B, T)`` contexts, right-padded.
        attention_mask: ``(B, T)`` 1 on real tokens.
        action_mask: ``(B, T - 1)`` True where decision ``d`` wrote an agent token; prompt,
            users' replies and padding are False.
        targets: ``(B, T - 1)`` the token each decision produced (``input_ids[:, 1:]``).
        old_logprobs: ``(B, T - 1)`` behaviour log-probs at action decisions (0 elsewhere).
        old_values: ``(B, T - 1)`` the rollout's state values at action decisions (0
            elsewhere; all 0 when the episodes carry no values).
        rewards: ``(B, T - 1)`` env rewards at action decisions (0 elsewhere).
        last_index: ``(B,)`` index of the final token, whose value bootstraps a truncation.
        truncated: ``(B,)`` a length limit cut the episode before it terminated. A step
            can set both flags (Gymnasium's ``TimeLimit`` on the step that terminates); such
            an episode did terminate, so it is not truncated here and nothing bootstraps it.
        missing_end: ``(B,)`` the last agent turn did not end with the end-of-turn token.
        returns: ``(B,)`` episode returns (sum of env rewards).
        groups: ``(B,)`` group ids (same problem).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    targets: torch.Tensor
    old_logprobs: torch.Tensor
    old_values: torch.Tensor
    rewards: torch.Tensor
    last_index: torch.Tensor
    truncated: torch.Tensor
    missing_end: torch.Tensor
    returns: torch.Tensor
    groups: torch.Tensor

    def select(self, index: torch.Tensor) -> RolloutBatch:
        """The episodes at ``index`` (a minibatch), trimmed to their longest context."""
        sub = RolloutBatch(*(t[index] for t in self))
        width = int(sub.attention_mask.sum(-1).max())
        return sub._replace(
            input_ids=sub.input_ids[:, :width],
            attention_mask=sub.attention_mask[:, :width],
            action_mask=sub.action_mask[:, : width - 1],
            targets=sub.targets[:, : width - 1],
            old_logprobs=sub.old_logprobs[:, : width - 1],
            old_values=sub.old_values[:, : width - 1],
            rewards=sub.rewards[:, : width - 1],
        )


def make_batch(
    episodes: list[Episode], pad_id: int, eot_id: int, device: str | torch.device = "cpu"
) -> RolloutBatch:
    """Pad ``episodes`` into a :class:`RolloutBatch`."""
    if not episodes:
        raise ValueError("make_batch needs at least one episode.")
    b = len(episodes)
    width = max(e.tokens.size for e in episodes)
    ids = np.full((b, width), pad_id, dtype=np.int64)
    mask = np.zeros((b, width), dtype=np.int64)
    act = np.zeros((b, width - 1), dtype=bool)
    old = np.zeros((b, width - 1), dtype=np.float32)
    old_v = np.zeros((b, width - 1), dtype=np.float32)
    rew = np.zeros((b, width - 1), dtype=np.float32)
    for i, e in enumerate(episodes):
        t = e.tokens.size
        ids[i, :t] = e.tokens
        mask[i, :t] = 1
        decisions = e.action_positions - 1
        act[i, decisions] = True
        old[i, decisions] = e.logprobs
        if e.values is not None:
            old_v[i, decisions] = e.values
        rew[i, decisions] = e.rewards
    last = np.array([e.tokens.size - 1 for e in episodes], dtype=np.int64)
    missing = np.array(
        [e.num_actions > 0 and int(e.tokens[e.action_positions[-1]]) != eot_id for e in episodes]
    )

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=device)

    return RolloutBatch(
        input_ids=t(ids),
        attention_mask=t(mask),
        action_mask=t(act),
        targets=t(ids[:, 1:].copy()),
        old_logprobs=t(old),
        old_values=t(old_v),
        rewards=t(rew),
        last_index=t(last),
        truncated=t(np.array([e.truncated and not e.terminated for e in episodes])),
        missing_end=t(missing),
        returns=t(np.array([e.episode_return for e in episodes], dtype=np.float32)),
        groups=t(np.array([e.group for e in episodes], dtype=np.int64)),
    )


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (all of it, or along ``dim``)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to unit variance over ``mask`` (and zero mean with ``shift_mean``).

    Whitening keeps the policy-gradient step size independent of the reward scale.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    action_mask: torch.Tensor,
    bootstrap: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each episode's agent decisions.

    The MDP steps are the agent's tokens only: the state after an agent token that ends a
    turn is the context *with the user's reply*, so the next step's value is read at the
    agent's next decision, wherever the reply put it. After the last action the next value
    is ``bootstrap`` (the final context's value for a truncated episode, else 0).

    Args:
        rewards: ``(B, D)`` rewards at action decisions.
        values: ``(B, D)`` values at every decision.
        action_mask: ``(B, D)`` which decisions are agent actions.
        bootstrap: ``(B,)`` value after the last action.
        gamma: Discount per agent token.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, both ``(B, D)`` and zero off the action decisions.
    """
    b, d = rewards.shape
    # Gather each episode's actions into a dense (B, A) layout, run the recursion there.
    counts = action_mask.sum(-1)
    a = int(counts.max()) if b else 0
    order = torch.argsort((~action_mask).to(torch.int8), dim=-1, stable=True)[:, :a]
    valid = torch.arange(a, device=rewards.device)[None, :] < counts[:, None]
    r = rewards.gather(1, order) * valid
    v = values.gather(1, order) * valid
    adv = torch.zeros_like(r)
    zero = torch.zeros(b, device=rewards.device, dtype=r.dtype)
    boot = bootstrap.to(r.dtype)
    for k in range(a - 1, -1, -1):
        has_next = k + 1 < counts
        next_value = torch.where(has_next, v[:, k + 1], boot) if k + 1 < a else boot
        next_adv = torch.where(has_next, adv[:, k + 1], zero) if k + 1 < a else zero
        delta = r[:, k] + gamma * next_value - v[:, k]
        adv[:, k] = torch.where(valid[:, k], delta + gamma * lam * next_adv, zero)
    advantages = torch.zeros_like(rewards).scatter(1, order, adv * valid)
    returns = (advantages + values) * action_mask
    return advantages, returns


def rollout_metrics(episodes: list[Episode], prefix: str = "charts") -> dict[str, float]:
    """Namespaced summary metrics of a list of episodes."""
    if not episodes:
        return {}
    return {
        f"{prefix}/episodic_return": float(np.mean([e.episode_return for e in episodes])),
        f"{prefix}/success_rate": float(np.mean([e.success for e in episodes])),
        f"{prefix}/episode_tokens": float(np.mean([e.num_actions for e in episodes])),
        f"{prefix}/truncated_rate": float(np.mean([e.truncated for e in episodes])),
    }
