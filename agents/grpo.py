"""GRPO: group-relative policy optimisation (Shao et al. 2024), with Dr. GRPO's fixes (Liu et al. 2025).

No value model: each problem is played ``group_size`` times (rows reset with the same
seed), and an episode's advantage is its return relative to its group,
``(R - mean_group) / std_group``. Every agent token of the episode gets that advantage;
prompt and users' tokens get none. The loss is PPO's clipped ratio objective per token plus
``kl_coef`` times the k3 estimate of ``KL(pi || pi_ref)`` *in the loss* (not in the
reward). ``loss_type`` chooses how token losses are averaged:

* ``"grpo"``: mean over each episode's tokens, then over episodes (the paper; it favours
  long wrong answers and short right ones, which Dr. GRPO calls the length bias);
* ``"dr_grpo"``: sum over tokens divided by a constant (episodes x ``max_new_tokens``),
  with ``scale_rewards=False`` (no division by the group's std, the difficulty bias);
* ``"token"``: mean over all tokens of the batch (DAPO).

``clip_coef_high`` widens the upper clip bound alone (DAPO's clip-higher, Yu et al. 2025);
like every clip it acts only off-policy (``num_iterations`` or ``num_minibatches`` > 1).

``python -m agents.grpo --env-id textgym/Reasoning-v0`` or ``textgym train --algo grpo ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from agents.common.rollout import Episode, RolloutBatch
from agents.lm.config import COUNT, FLAG, NON_NEGATIVE, Check, TrainConfig
from agents.lm.policy import token_logprobs
from agents.lm.trainer import LMTrainer
from agents.train import main as train_main


@dataclass
class GRPOConfig(TrainConfig):
    """GRPO arguments (on top of :class:`~agents.lm.config.TrainConfig`)."""

    learning_rate: float = 1e-4
    """Adam learning rate"""
    group_size: int = 8
    """samples per problem (num_envs must be a multiple of it)"""
    num_iterations: int = 1
    """optimisation passes over each batch (mu in the paper; 1 = on-policy)"""
    num_minibatches: int = 1
    """minibatches per pass (split by groups)"""
    clip_coef: float = 0.2
    """ratio clipping epsilon (matters when num_iterations > 1 or num_minibatches > 1)"""
    clip_coef_high: float | None = None
    """upper ratio clipping epsilon, DAPO's clip-higher (e.g. 0.28; None: clip_coef)"""
    kl_coef: float = 0.0
    """weight of the k3 KL estimate to the reference in the loss (0: no reference model is loaded; DeepSeekMath used 0.04)"""
    loss_type: Literal["grpo", "dr_grpo", "token"] = "dr_grpo"
    """token-loss aggregation: 'grpo' (per-episode mean), 'dr_grpo' (constant normaliser), 'token'"""
    scale_rewards: bool = False
    """divide advantages by the group's reward std (the original GRPO; Dr. GRPO turns it off)"""

    CHECKS: ClassVar[dict[str, Check]] = {
        **TrainConfig.CHECKS,
        # Advantages are relative to the group: a group of one has none.
        "group_size": Check(int, low=2),
        "num_iterations": COUNT,
        "num_minibatches": COUNT,
        "clip_coef": Check(float, low=0.0, high=1.0, low_open=True),
        "clip_coef_high": Check(float, low=0.0, high=1.0, low_open=True, optional=True),
        "kl_coef": NON_NEGATIVE,
        "loss_type": Check(str, choices=("grpo", "dr_grpo", "token")),
        "scale_rewards": FLAG,
    }

    def consistency_problems(self) -> list[str]:
        if self.num_envs % self.group_size:
            return [
                f"--num-envs {self.num_envs} must be a multiple of group_size="
                f"{self.group_size} (--group-size): each group plays one problem"
            ]
        groups = self.num_envs // self.group_size * self.rounds_per_update
        if self.num_minibatches > groups:
            return [
                f"--num-minibatches {self.num_minibatches} must be in [1, {groups}] (the groups "
                "per update: minibatches hold whole groups)"
            ]
        return []


def clipped_surrogate(
    ratio: torch.Tensor, advantage: torch.Tensor, low: float, high: float
) -> torch.Tensor:
    """PPO's clipped objective per token, ``min(r A, clip(r, low, high) A)``.

    With ``high - 1 > 1 - low`` it is DAPO's clip-higher: a wider upper bound lets an
    unlikely token that paid off gain more probability per update, which keeps exploration
    alive, while the lower bound still limits how fast a token that did not pay off fades.
    """
    return torch.min(ratio * advantage, ratio.clamp(low, high) * advantage)


class GRPO(LMTrainer):
    """Group-relative policy optimisation over a vector env."""

    algo: ClassVar[str] = "grpo"
    config_class: ClassVar[type[TrainConfig]] = GRPOConfig
    config: GRPOConfig

    def round_seeds(self) -> tuple[list[int], list[int]]:
        # group_size rows share a seed, hence a problem (and a user, in multi-turn tasks).
        g = self.config.group_size
        n_groups = self.config.num_envs // g
        seeds = self.seed_rng.integers(0, 2**31 - 1, size=n_groups)
        base = int(self.extra_state.get("groups_seen", 0))
        self.extra_state["groups_seen"] = base + n_groups
        return np.repeat(seeds, g).tolist(), np.repeat(np.arange(base, base + n_groups), g).tolist()

    def advantages(self, batch: RolloutBatch) -> torch.Tensor:
        """``(B,)`` group-relative advantage of each episode."""
        returns = batch.returns + self.end_penalty(batch)
        _, inverse = torch.unique(batch.groups, return_inverse=True)
        n_groups = int(inverse.max()) + 1
        count = torch.zeros(n_groups, device=returns.device).index_add_(
            0, inverse, torch.ones_like(returns)
        )
        mean = torch.zeros(n_groups, device=returns.device).index_add_(0, inverse, returns) / count
        centred = returns - mean[inverse]
        if self.config.scale_rewards:
            var = torch.zeros(n_groups, device=returns.device).index_add_(0, inverse, centred**2)
            std = (var / (count - 1).clamp(min=1)).sqrt()
            centred = centred / (std[inverse] + 1e-4)
        return centred

    def update(self, batch: RolloutBatch, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        adv = self.advantages(batch)
        ref_logp = self.reference_logprobs(batch) if self.reference is not None else None
        _, inverse = torch.unique(batch.groups, return_inverse=True)
        n_groups = int(inverse.max()) + 1
        stats: dict[str, list[float]] = {k: [] for k in ("loss", "kl", "clip", "grad")}
        low = 1 - cfg.clip_coef
        high = 1 + (cfg.clip_coef if cfg.clip_coef_high is None else cfg.clip_coef_high)
        for _ in range(cfg.num_iterations):
            # Minibatches hold whole groups, so that no group is split across steps.
            order = torch.randperm(n_groups, device=adv.device)
            for chunk in order.chunk(cfg.num_minibatches):
                idx = torch.nonzero(torch.isin(inverse, chunk)).squeeze(1)
                mb = batch.select(idx)
                w = mb.input_ids.shape[1] - 1
                m = mb.action_mask
                # Per-token tensors are flat over the minibatch's agent tokens; `row` says
                # which episode each token belongs to.
                row = m.nonzero()[:, 0]
                logits, _ = self.forward(mb)
                logp = token_logprobs(logits, mb.targets[m], cfg.temperature)
                ratio = (logp - mb.old_logprobs[m]).exp()
                a = adv[idx][row]
                per_token = -clipped_surrogate(ratio, a, low, high)
                if ref_logp is not None:
                    # k3 estimator of KL(pi || pi_ref): exp(d) - d - 1 with d = ref - logp, >= 0.
                    d = ref_logp[idx, :w][m] - logp
                    kl = d.exp() - d - 1
                    per_token = per_token + cfg.kl_coef * kl
                    stats["kl"].append(kl.mean().item())
                n_rows = mb.input_ids.shape[0]
                if cfg.loss_type == "grpo":
                    per_row = torch.zeros(n_rows, device=logp.device).index_add(0, row, per_token)
                    loss = (per_row / m.sum(-1).clamp(min=1)).mean()
                elif cfg.loss_type == "dr_grpo":
                    loss = per_token.sum() / (n_rows * self.max_new_tokens)
                else:
                    loss = per_token.mean()
                stats["loss"].append(loss.item())
                stats["clip"].append(((ratio < low) | (ratio > high)).float().mean().item())
                stats["grad"].append(self.step_optimizer(loss))
        returns = {
            g: [e.episode_return for e in episodes if e.group == g]
            for g in {e.group for e in episodes}
        }
        return {
            "losses/policy_loss": float(np.mean(stats["loss"])),
            "losses/kl_to_reference": float(np.mean(stats["kl"])) if stats["kl"] else 0.0,
            "losses/clipfrac": float(np.mean(stats["clip"])),
            "losses/grad_norm": float(np.mean(stats["grad"])),
            "charts/group_reward_std": float(np.mean([np.std(r) for r in returns.values()])),
            "charts/zero_std_groups": float(np.mean([np.std(r) == 0 for r in returns.values()])),
            "charts/missing_end_rate": float(batch.missing_end.float().mean()),
        }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.grpo [--field value ...]`` (same flags as ``textgym train --algo grpo``)."""
    return train_main(["--algo", "grpo", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
