"""Token-level PPO for causal LMs (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022).

Each agent token is an action; users' tokens in multi-turn episodes are part of the state.
Read top to bottom, an update is:

1. take the rollout's values of the states acted in (the sampler computes them in its own
   forward passes), and score the batch without gradients for the reference model's
   log-probs (with a KL penalty) and the value of a bootstrapped episode's final state;
2. shape the rewards: the env's reward at turn ends, minus ``kl_coef * (log pi_old -
   log pi_ref)`` at every agent token (a per-token KL penalty), plus an optional penalty
   when the last turn was cut before its end-of-turn token;
3. GAE over the agent's tokens, bootstrapping from the final state's value when a length
   limit cut the episode after a complete turn (a turn cut mid-way is final, and may be
   penalised); whiten the advantages;
4. ``update_epochs`` passes of minibatches: clipped ratio objective, clipped value loss,
   entropy bonus, gradient clipping, and an early stop once the approximate KL to the
   behaviour policy exceeds ``1.5 * target_kl``;
5. adapt ``kl_coef`` towards ``kl_target`` (optional, Ziegler et al.'s controller).

``python -m agents.ppo --env-id textgym/Reasoning-v0`` or ``textgym train --algo ppo ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from agents.common.rollout import Episode, RolloutBatch, gae, whiten
from agents.lm.config import COUNT, FLAG, NON_NEGATIVE, POSITIVE, UNIT, Check, TrainConfig
from agents.lm.policy import LMPolicy, entropy_from_logits, token_logprobs
from agents.lm.trainer import LMTrainer, mean_over_processes
from agents.train import main as train_main


@dataclass
class PPOConfig(TrainConfig):
    """PPO arguments (on top of :class:`~agents.lm.config.TrainConfig`)."""

    learning_rate: float = 5e-5
    """Adam learning rate"""
    update_epochs: int = 2
    """passes over each batch"""
    num_minibatches: int = 2
    """minibatches per pass (split by episodes)"""
    gamma: float = 1.0
    """discount per agent token"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip_coef: float = 0.2
    """ratio clipping epsilon of the surrogate objective"""
    clip_vloss: bool = True
    """clip the value update around the old values (PPO2's value clipping)"""
    vf_clip: float = 0.2
    """value clipping range"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    vf_lr_scale: float = 10.0
    """the value head's learning rate is learning_rate times this (a fresh head must catch up)"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    norm_adv: bool = True
    """whiten advantages over the batch's agent tokens"""
    target_kl: float | None = 0.05
    """early-stop an update once the approximate KL to the behaviour policy exceeds 1.5x this"""
    kl_coef: float = 0.0
    """(initial) weight of the per-token KL penalty to the reference (0: none; e.g. 0.05 with a learned reward)"""
    adaptive_kl: bool = False
    """adapt kl_coef so the KL to the reference tracks kl_target (Ziegler et al. 2019)"""
    kl_target: float = 1.0
    """target sequence-level KL to the reference for the adaptive controller (nats)"""
    kl_horizon: int = 10_000
    """horizon of the adaptive KL controller, in episodes"""
    bootstrap_truncated: bool = True
    """bootstrap from the final state's value when a length limit cuts an episode after a complete turn"""

    CHECKS: ClassVar[dict[str, Check]] = {
        **TrainConfig.CHECKS,
        "update_epochs": COUNT,
        "num_minibatches": COUNT,
        "gamma": UNIT,
        "gae_lambda": UNIT,
        "clip_coef": Check(float, low=0.0, high=1.0, low_open=True),
        "clip_vloss": FLAG,
        "vf_clip": POSITIVE,
        "vf_coef": NON_NEGATIVE,
        "vf_lr_scale": POSITIVE,
        "ent_coef": NON_NEGATIVE,
        "norm_adv": FLAG,
        "target_kl": Check(float, low=0.0, low_open=True, optional=True),
        "adaptive_kl": FLAG,
        "kl_target": POSITIVE,
        "kl_horizon": COUNT,
        "bootstrap_truncated": FLAG,
    }

    def consistency_problems(self) -> list[str]:
        if self.num_minibatches > self.episodes_per_update:
            return [
                f"--num-minibatches {self.num_minibatches} exceeds the episodes per update "
                f"({self.episodes_per_update} = --num-envs * --rounds-per-update)"
            ]
        return []


class PPO(LMTrainer):
    """Token-level PPO with a value head on the policy's last hidden state."""

    algo: ClassVar[str] = "ppo"
    config_class: ClassVar[type[TrainConfig]] = PPOConfig
    value_head: ClassVar[bool] = True
    config: PPOConfig

    def param_groups(self, policy: LMPolicy) -> list[dict[str, Any]]:
        # The value head starts at zero while the LM is pre-trained: it gets a larger step.
        assert policy.value_head is not None
        head = {id(p) for p in policy.value_head.parameters()}
        return [
            {"params": [p for p in policy.parameters() if id(p) not in head]},
            {
                "params": list(policy.value_head.parameters()),
                "lr": self.config.learning_rate * self.config.vf_lr_scale,
            },
        ]

    @property
    def kl_coef(self) -> float:
        return float(self.extra_state.get("kl_coef", self.config.kl_coef))

    def update(self, batch: RolloutBatch, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        mask = batch.action_mask
        maskf = mask.float()
        temp = cfg.temperature

        # 1. The old log-probs and the values of the states acted in are the rollout's: the
        #    sampler computed them in its own forward passes (exactly, at this temperature).
        #    Only a bootstrapped episode needs one more value, of its final state, which the
        #    sampler never fed.
        if any(e.values is None for e in episodes):
            raise ValueError(
                "PPO.update needs episodes that carry their state values; collect them with "
                "RolloutCollector(..., values=True), as the trainer's own collector does."
            )
        old_values = batch.old_values
        # An episode a length limit cut after a complete turn would go on, so its tail is
        # V(s_T); a turn cut mid-way (no end-of-turn token) gets no bootstrap, else a value
        # head trained on its own bootstrapped targets pays the policy for rambling until
        # the limit (observed on CustomerService). s_T ends with the agent's end-of-turn
        # token, never a decision state, so V(s_T) is the head's extrapolation; on the
        # 10-minute CustomerService PPO model it fell within the range of decision values,
        # for the 4% of episodes it applies to (the user's reply did not fit).
        cut_after_turn = batch.truncated & ~batch.missing_end
        with torch.no_grad():
            bootstrap = self._final_values(batch, cut_after_turn)
            kl_tokens = torch.zeros_like(batch.old_logprobs)
            if self.reference is not None:
                kl_tokens = (batch.old_logprobs - self.reference_logprobs(batch)) * maskf

        # 2. Shaped rewards: KL penalty at every agent token, missing-end penalty at the last.
        rewards = batch.rewards - self.kl_coef * kl_tokens
        last_action = _last_true(mask)
        rewards = rewards.scatter_add(1, last_action[:, None], self.end_penalty(batch)[:, None])
        rewards = rewards * maskf

        # 3. GAE over agent tokens, bootstrapped as decided in 1.
        advantages, returns = gae(rewards, old_values, mask, bootstrap, cfg.gamma, cfg.gae_lambda)
        if cfg.norm_adv:
            advantages = whiten(advantages, mask)

        # 4. Epochs of minibatches over episodes; per-token tensors are flat over the
        #    minibatch's agent tokens.
        b = batch.input_ids.shape[0]
        mb_size = int(np.ceil(b / cfg.num_minibatches))
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg", "vf", "ent", "kl", "clip", "vclip", "grad")
        }
        stopped = False
        for _epoch in range(cfg.update_epochs):
            perm = torch.randperm(b, device=batch.input_ids.device)
            for start in range(0, b, mb_size):
                idx = perm[start : start + mb_size]
                mb = batch.select(idx)
                w = mb.input_ids.shape[1] - 1
                m = mb.action_mask
                adv = advantages[idx, :w][m]
                ret = returns[idx, :w][m]
                old_v = old_values[idx, :w][m]
                old_logp = mb.old_logprobs[m]

                logits, values = self.forward(mb)
                assert values is not None
                new_logp = token_logprobs(logits, mb.targets[m], temp)
                logratio = new_logp - old_logp
                ratio = logratio.exp()

                # Clipped surrogate: no incentive to move the ratio beyond 1 +/- clip_coef.
                pg_loss = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
                ).mean()

                # Value loss, clipped around the old values like the policy around its ratio.
                v = values[:, :-1][m]
                vf_unclipped = (v - ret) ** 2
                if cfg.clip_vloss:
                    v_clipped = old_v + (v - old_v).clamp(-cfg.vf_clip, cfg.vf_clip)
                    vf_loss = 0.5 * torch.max(vf_unclipped, (v_clipped - ret) ** 2).mean()
                else:
                    vf_loss = 0.5 * vf_unclipped.mean()

                entropy = entropy_from_logits(logits, temp).mean()
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.ent_coef * entropy
                grad_norm = self.step_optimizer(loss)

                with torch.no_grad():
                    # k3 estimator of KL(behaviour || new): unbiased and always >= 0.
                    approx_kl = ((ratio - 1) - logratio).mean().item()
                    clipfrac = ((ratio - 1).abs() > cfg.clip_coef).float().mean().item()
                    vclipfrac = ((v - old_v).abs() > cfg.vf_clip).float().mean().item()
                approx_kl = mean_over_processes(self.accelerator, approx_kl)
                for key, value in zip(
                    stats,
                    (
                        pg_loss.item(),
                        vf_loss.item(),
                        entropy.item(),
                        approx_kl,
                        clipfrac,
                        vclipfrac,
                        grad_norm,
                    ),
                    strict=True,
                ):
                    stats[key].append(value)
                if cfg.target_kl is not None and approx_kl > 1.5 * cfg.target_kl:
                    stopped = True
                    break
            if stopped:
                break

        # 5. Adaptive KL coefficient (proportional controller on the sequence-level KL).
        seq_kl = mean_over_processes(self.accelerator, float(kl_tokens.sum(-1).mean()))
        if cfg.adaptive_kl and self.reference is not None:
            error = float(np.clip(seq_kl / cfg.kl_target - 1, -0.2, 0.2))
            n_episodes = b * self.accelerator.num_processes
            self.extra_state["kl_coef"] = self.kl_coef * (1 + error * n_episodes / cfg.kl_horizon)

        return {
            "losses/policy_loss": float(np.mean(stats["pg"])),
            "losses/value_loss": float(np.mean(stats["vf"])),
            "losses/entropy": float(np.mean(stats["ent"])),
            "losses/approx_kl": float(np.mean(stats["kl"])),
            "losses/clipfrac": float(np.mean(stats["clip"])),
            "losses/value_clipfrac": float(np.mean(stats["vclip"])),
            "losses/grad_norm": float(np.mean(stats["grad"])),
            "losses/explained_variance": _explained_variance(old_values[mask], returns[mask]),
            "losses/early_stopped": float(stopped),
            "charts/kl_to_reference": seq_kl,
            "charts/kl_coef": self.kl_coef,
            "charts/missing_end_rate": float(batch.missing_end.float().mean()),
        }

    def _final_values(self, batch: RolloutBatch, needed: torch.Tensor) -> torch.Tensor:
        """The value of each episode's final state for the ``needed`` rows, 0 elsewhere (and
        everywhere with ``bootstrap_truncated`` off): the bootstrap target of GAE."""
        out = torch.zeros(batch.input_ids.shape[0], device=batch.input_ids.device)
        if not self.config.bootstrap_truncated or not bool(needed.any()):
            return out
        index = needed.nonzero().squeeze(1)
        sub = batch.select(index)
        # The unwrapped policy: only some processes may need this pass, and a wrapper that
        # communicates on every forward (FSDP, ZeRO-3) would wait for the others.
        _, values = self.policy(
            sub.input_ids,
            sub.attention_mask,
            torch.zeros_like(sub.attention_mask, dtype=torch.bool),
        )
        assert values is not None
        out[index] = values.gather(1, sub.last_index[:, None]).squeeze(1).to(out.dtype)
        return out


def _last_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True along dim 1 (0 for rows without any)."""
    idx = torch.arange(mask.shape[1], device=mask.device)[None, :].expand_as(mask)
    return torch.where(mask, idx, torch.zeros_like(idx)).max(dim=1).values


def _explained_variance(p: torch.Tensor, y: torch.Tensor) -> float:
    var = torch.var(y) if y.numel() > 1 else torch.tensor(0.0)
    return float("nan") if var == 0 else float(1 - torch.var(y - p) / var)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.ppo [--field value ...]`` (same flags as ``textgym train --algo ppo``)."""
    return train_main(["--algo", "ppo", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
