"""REINFORCE with a baseline (Williams 1992) for causal LMs.

The simplest policy gradient: each agent token's log-prob is weighted by the return that
followed it (the env's rewards from that token on, minus an optional per-token KL penalty
to the reference), minus a baseline. The baseline is the leave-one-out mean of the other
episodes' returns in the batch: it does not depend on the episode itself, so the gradient
stays unbiased, and it removes most of the variance of a 0/1 reward. One gradient step per
batch keeps the estimator on-policy.

``python -m agents.reinforce --env-id textgym/Reasoning-v0`` or ``textgym train --algo reinforce``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from agents.common.rollout import Episode, RolloutBatch
from agents.lm.config import FLAG, UNIT, Check, TrainConfig
from agents.lm.policy import token_logprobs
from agents.lm.trainer import LMTrainer
from agents.train import main as train_main


@dataclass
class ReinforceConfig(TrainConfig):
    """REINFORCE arguments (on top of :class:`~agents.lm.config.TrainConfig`)."""

    gamma: float = 1.0
    """discount per agent token"""
    norm_adv: bool = True
    """divide advantages by their std over the batch's agent tokens (scale only)"""

    CHECKS: ClassVar[dict[str, Check]] = {**TrainConfig.CHECKS, "gamma": UNIT, "norm_adv": FLAG}

    def consistency_problems(self) -> list[str]:
        if self.episodes_per_update < 2:
            return [
                "a baseline needs at least 2 episodes per update (--num-envs * "
                f"--rounds-per-update = {self.num_envs} * {self.rounds_per_update})"
            ]
        return []


class Reinforce(LMTrainer):
    """REINFORCE with a leave-one-out baseline."""

    algo: ClassVar[str] = "reinforce"
    config_class: ClassVar[type[TrainConfig]] = ReinforceConfig
    config: ReinforceConfig

    def update(self, batch: RolloutBatch, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        mask = batch.action_mask
        maskf = mask.float()
        logits, _ = self.forward(batch)
        logp = token_logprobs(logits, batch.targets[mask], cfg.temperature)

        # Per-token rewards: the env's, the KL penalty, and the missing-end penalty.
        rewards = batch.rewards.clone()
        kl = torch.zeros_like(rewards)
        if self.reference is not None:
            kl = (batch.old_logprobs - self.reference_logprobs(batch)) * maskf
            rewards = rewards - cfg.kl_coef * kl
        last = (
            torch.where(mask, torch.arange(mask.shape[1], device=mask.device), -1).max(dim=1).values
        )
        rewards.scatter_add_(1, last.clamp(min=0)[:, None], self.end_penalty(batch)[:, None])
        rewards = rewards * maskf

        # Return-to-go G_t = sum_{k >= t} gamma^(k - t) r_k over the agent's tokens.
        togo = _discounted_togo(rewards, mask, cfg.gamma)
        episode_return = rewards.sum(-1)
        b = episode_return.shape[0]
        baseline = (episode_return.sum() - episode_return) / (b - 1)
        adv = (togo - baseline[:, None])[mask]
        if cfg.norm_adv:
            adv = adv / (adv.std(unbiased=False) + 1e-8)

        loss = -(adv.detach() * logp).mean()
        grad_norm = self.step_optimizer(loss)
        return {
            "losses/policy_loss": loss.item(),
            "losses/grad_norm": grad_norm,
            "charts/baseline": float(baseline.mean()),
            "charts/kl_to_reference": float(kl.sum(-1).mean()),
            "charts/missing_end_rate": float(batch.missing_end.float().mean()),
            "charts/advantage_std": float(adv.std(unbiased=False)),
        }


def _discounted_togo(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return-to-go along each row, counting only the agent's decisions as steps."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], device=rewards.device, dtype=rewards.dtype)
    for d in range(rewards.shape[1] - 1, -1, -1):
        step = mask[:, d]
        running = torch.where(step, rewards[:, d] + gamma * running, running)
        out[:, d] = torch.where(step, running, torch.zeros_like(running))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.reinforce [--field value ...]`` (as ``textgym train --algo reinforce``)."""
    return train_main(["--algo", "reinforce", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
