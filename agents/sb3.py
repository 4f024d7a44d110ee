"""stable-baselines3 on textgym: a token features extractor, ``policy_kwargs()``, and logging.

SB3's ``MultiInputPolicy`` handles textgym's ``Dict(input_ids, attention_mask)`` observation,
but its default extractor feeds token ids to an MLP as floats. :class:`TokenFeaturesExtractor`
embeds them instead (a small GRU, or masked mean pooling), and :func:`policy_kwargs` returns
the dict to pass::

    from stable_baselines3 import PPO
    from sb3_contrib import MaskablePPO
    from agents.sb3 import policy_kwargs

    MaskablePPO("MultiInputPolicy", "textgym/Copy-Tiny-v0", policy_kwargs=policy_kwargs()).learn(5_000)

MaskablePPO reads ``action_masks()`` itself. PPO, A2C, DQN, QRDQN and RecurrentPPO cannot:
on the full vocabulary they explore blindly and a sparse task's reward is practically never
found (and QRDQN's head alone is vocabulary x quantiles wide).
:class:`~textgym.wrappers.allowed.AllowedTokens` (re-exported here) gives them the same
restriction by shrinking the action space to the tokens the task allows (actions are mapped
back to token ids), so every algorithm learns a tiny variant in seconds on
``make_vec_env(lambda: AllowedTokens(gym.make(env_id)), n_envs=8)``; the settings that do
are in tests/test_integrations_libraries.py. Two SB3 details matter on textgym:

* DQN and QRDQN: pass ``replay_buffer_kwargs={"handle_timeout_termination": False}``. A
  turn cut off at its token budget has no continuation, and bootstrapping there makes
  "write one more word" look better than ending the turn.
* ``VecNormalize`` must leave observations alone (``norm_obs=False``): normalized token ids
  no longer name tokens, and :class:`TokenFeaturesExtractor` refuses them saying so.

:class:`LearningCurveCallback` writes SB3 runs to :class:`agents.common.Logger` under the
same keys as every other textgym agent, and can evaluate periodically and stop at a target.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

import textgym  # noqa: F401 - registers textgym/* ids, so SB3 can build envs from id strings
from agents.common import EvalResult, Logger, evaluate_policy
from textgym.errors import ConfigError, did_you_mean

# Re-exported: AllowedTokens lives with textgym's wrappers (it serves every library), and
# ``from agents.sb3 import AllowedTokens`` keeps working.
from textgym.wrappers.allowed import AllowedTokens

__all__ = [
    "AllowedTokens",
    "LearningCurveCallback",
    "TokenFeaturesExtractor",
    "policy_kwargs",
]

Encoder = Literal["gru", "mean"]
ENCODERS: tuple[str, ...] = ("gru", "mean")


def _check_token_space(observation_space: spaces.Space) -> tuple[int, int]:
    """(vocab size, max length) of a textgym observation space, or a clear error."""
    if not (
        isinstance(observation_space, spaces.Dict)
        and {"input_ids", "attention_mask"} <= set(observation_space.spaces)
        and isinstance(observation_space["input_ids"], spaces.Box)
    ):
        raise TypeError(
            "TokenFeaturesExtractor needs a textgym token observation space: Dict(input_ids="
            f"Box(...), attention_mask=Box(...)); got {observation_space}. Use it with textgym "
            "envs (and 'MultiInputPolicy'), or drop policy_kwargs for other envs."
        )
    ids = observation_space["input_ids"]
    for key in ("input_ids", "attention_mask"):
        space = observation_space[key]
        if not np.issubdtype(space.dtype, np.integer):
            raise TypeError(
                f"TokenFeaturesExtractor needs integer token observations, but "
                f"observation_space[{key!r}] is {space}. {NOT_NORMALIZED}"
            )
    return int(np.max(ids.high)) + 1, int(ids.shape[-1])


#: Why token observations stopped being integers, and the fix.
NOT_NORMALIZED = (
    "SB3's VecNormalize normalizes every Box of a Dict observation by default, turning "
    "token ids into floats in [-clip_obs, clip_obs] that no longer name tokens: wrap with "
    "VecNormalize(venv, norm_obs=False) (rewards are still normalized), or leave input_ids "
    "and attention_mask out of norm_obs_keys."
)


def _check_tokens(ids: torch.Tensor, mask: torch.Tensor, vocab_size: int) -> None:
    """Refuse observations that are not token ids and a 0/1 mask (a few batch-wide ops)."""
    ids_ok = bool(torch.equal(ids, ids.round())) and (
        ids.numel() == 0 or (ids.min().item() >= 0 and ids.max().item() < vocab_size)
    )
    mask_ok = bool(((mask == 0) | (mask == 1)).all())
    if not (ids_ok and mask_ok):
        raise ValueError(
            "TokenFeaturesExtractor got observations that are not token ids in "
            f"[0, {vocab_size}) with a 0/1 attention_mask (input_ids range "
            f"[{ids.min().item():.3g}, {ids.max().item():.3g}]). {NOT_NORMALIZED}"
        )


class TokenFeaturesExtractor(BaseFeaturesExtractor):
    """Embeds a right-padded token context into a ``features_dim`` vector.

    SB3 hands observations over as float tensors (``preprocess_obs`` casts every Box to
    float); ids are cast back to long before the embedding lookup. Padding is ignored via
    ``attention_mask``. Observations that are not token ids (SB3's ``VecNormalize`` with
    its default ``norm_obs=True`` makes them floats) are refused with the fix: use
    ``VecNormalize(venv, norm_obs=False)``.

    Args:
        observation_space: textgym's ``Dict(input_ids, attention_mask)``.
        encoder: ``"gru"`` (order-aware: the GRU's state at the last real token) or
            ``"mean"`` (masked mean of token + position embeddings, concatenated with the
            last token's embedding: cheaper on long contexts).
        embed_dim: Token embedding size.
        features_dim: Output size (the input of SB3's ``net_arch``).

    Raises:
        TypeError: the space is not textgym's, or its token ids are not integers.
        ValueError: at ``forward``, observations that are not token ids and a 0/1 mask.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        encoder: Encoder = "gru",
        embed_dim: int = 32,
        features_dim: int = 64,
    ) -> None:
        vocab_size, max_length = _check_token_space(observation_space)
        _check_choice("encoder", encoder, ENCODERS)
        _check_positive("embed_dim", embed_dim)
        _check_positive("features_dim", features_dim)
        super().__init__(observation_space, features_dim)
        self.encoder = encoder
        self.embed = nn.Embedding(vocab_size, embed_dim)
        if encoder == "gru":
            self.gru = nn.GRU(embed_dim, features_dim, batch_first=True)
        else:
            self.position = nn.Embedding(max_length, embed_dim)
            self.project = nn.Sequential(nn.Linear(2 * embed_dim, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        _check_tokens(
            observations["input_ids"], observations["attention_mask"], self.embed.num_embeddings
        )
        lengths = observations["attention_mask"].sum(dim=1)
        # Contexts are right-padded: columns past the longest context hold only padding, so
        # they are cut before the (sequential) encoder runs.
        width = max(int(lengths.max().item()), 1)
        ids = observations["input_ids"][:, :width].long()
        mask = observations["attention_mask"][:, :width].float()
        # Right padding: the last real token sits at length - 1 (at least one token exists).
        last = (mask.sum(dim=1).long() - 1).clamp(min=0)
        rows = torch.arange(ids.shape[0], device=ids.device)
        x = self.embed(ids)
        if self.encoder == "gru":
            out, _ = self.gru(x)
            return out[rows, last]
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = x + self.position(positions)
        pooled = (x * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return self.project(torch.cat([pooled, x[rows, last]], dim=-1))


def policy_kwargs(
    *,
    encoder: Encoder = "gru",
    embed_dim: int = 32,
    features_dim: int = 64,
    net_arch: list[int] | dict[str, list[int]] | None = None,
    **unknown: Any,
) -> dict[str, Any]:
    """The ``policy_kwargs`` that make SB3's ``MultiInputPolicy`` read token observations.

    Works for PPO, A2C, DQN and sb3-contrib's MaskablePPO, QRDQN (add ``n_quantiles`` to
    the dict) and RecurrentPPO (``"MultiInputLstmPolicy"``; add ``lstm_hidden_size``).

    Args:
        encoder: ``"gru"`` or ``"mean"`` (see :class:`TokenFeaturesExtractor`).
        embed_dim: Token embedding size.
        features_dim: Size of the extracted features.
        net_arch: SB3's heads on top of the features; default ``[64]``.

    Raises:
        TypeError: an unknown keyword (with the accepted ones).
        ValueError: a bad value.
    """
    if unknown:
        accepted = ["encoder", "embed_dim", "features_dim", "net_arch"]
        name = sorted(unknown)[0]
        hint = did_you_mean(name, accepted)
        raise TypeError(
            f"policy_kwargs() got an unknown argument {name!r}.{hint} Accepted: {accepted}. "
            "Other SB3 policy options can be added to the returned dict."
        )
    _check_choice("encoder", encoder, ENCODERS)
    _check_positive("embed_dim", embed_dim)
    _check_positive("features_dim", features_dim)
    return {
        "features_extractor_class": TokenFeaturesExtractor,
        "features_extractor_kwargs": {
            "encoder": encoder,
            "embed_dim": embed_dim,
            "features_dim": features_dim,
        },
        "net_arch": [64] if net_arch is None else net_arch,
    }


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}.")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}.")


class LearningCurveCallback(BaseCallback):
    """Log an SB3 run with :class:`agents.common.Logger`, under textgym's metric keys.

    Every ``log_interval`` timesteps: ``charts/episodic_return``, ``charts/episodic_length``,
    ``charts/success_rate`` (means over the episodes finished since the last log) and
    ``charts/SPS``. With an ``eval_env``: ``eval/success_rate`` and ``eval/mean_return``
    every ``eval_freq`` timesteps (greedy, via :func:`agents.common.evaluate_policy`), and an
    early stop once ``target_success`` is reached.

    Args:
        log_dir: Run directory for ``progress.csv`` (``None``: keep the records in memory).
        log_interval: Timesteps between training-curve rows.
        eval_env: Env for greedy evaluation (wrapped like the training env); ``None``: none.
        eval_freq: Timesteps between evaluations.
        n_eval_episodes: Episodes per evaluation (seeds ``eval_seed + i``).
        eval_seed: First evaluation seed.
        target_success: Stop training when an evaluation reaches it (``None``: never).
        tensorboard: Passed to the logger.

    Attributes:
        eval_history: One dict per evaluation (timesteps, episodes, seconds, scores).
        solved_at: The first evaluation that reached ``target_success``, or ``None``.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        log_interval: int = 1000,
        eval_env: gym.Env | None = None,
        eval_freq: int = 1000,
        n_eval_episodes: int = 100,
        eval_seed: int = 10_000,
        target_success: float | None = None,
        tensorboard: bool | None = None,
    ) -> None:
        super().__init__()
        _check_positive("log_interval", log_interval)
        _check_positive("eval_freq", eval_freq)
        _check_positive("n_eval_episodes", n_eval_episodes)
        if target_success is not None and not 0.0 <= target_success <= 1.0:
            raise ConfigError(f"target_success must be in [0, 1], got {target_success}.")
        if target_success is not None and eval_env is None:
            raise ConfigError("target_success needs evaluations: pass eval_env=...")
        self.log_dir = log_dir
        self.log_interval = log_interval
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.eval_seed = eval_seed
        self.target_success = target_success
        self.tensorboard = tensorboard
        self.eval_history: list[dict[str, float]] = []
        self.solved_at: dict[str, float] | None = None
        self.episodes = 0
        self.train_seconds = 0.0
        self._logger: Logger | None = None

    def _on_training_start(self) -> None:
        if self.log_dir is not None and self._logger is None:
            self._logger = Logger(self.log_dir, tensorboard=self.tensorboard)
        self._start_step = self.num_timesteps
        self._t0 = time.perf_counter()
        self._eval_seconds = 0.0
        self._next_log = self.num_timesteps + self.log_interval
        self._next_eval = (
            self.num_timesteps + self.eval_freq if self.eval_env is not None else math.inf
        )
        self._returns: list[float] = []
        self._lengths: list[float] = []
        self._successes: list[bool] = []

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            if not done:
                continue
            self.episodes += 1
            episode = info.get("episode")  # added by SB3's Monitor wrapper
            if episode is not None:
                self._returns.append(float(episode["r"]))
                self._lengths.append(float(episode["l"]))
            self._successes.append(bool(info.get("success", False)))
        if self.num_timesteps >= self._next_log and self._successes:
            metrics = {
                "charts/success_rate": float(np.mean(self._successes)),
                "charts/episodes": float(self.episodes),
                "charts/SPS": (self.num_timesteps - self._start_step) / max(self._elapsed(), 1e-9),
            }
            if self._returns:
                metrics["charts/episodic_return"] = float(np.mean(self._returns))
                metrics["charts/episodic_length"] = float(np.mean(self._lengths))
            self._log(metrics)
            self._returns, self._lengths, self._successes = [], [], []
            self._next_log = self.num_timesteps + self.log_interval
        if self.num_timesteps >= self._next_eval:
            assert self.eval_env is not None
            e0 = time.perf_counter()
            result = self.evaluate()
            self._eval_seconds += time.perf_counter() - e0
            self._next_eval = self.num_timesteps + self.eval_freq
            record = {
                "timesteps": float(self.num_timesteps),
                "episodes": float(self.episodes),
                "seconds": self.train_seconds + self._elapsed(),
                "success_rate": result.success_rate,
                "mean_return": result.mean_return,
            }
            self.eval_history.append(record)
            self._log(
                {"eval/success_rate": result.success_rate, "eval/mean_return": result.mean_return}
            )
            if self.target_success is not None and result.success_rate >= self.target_success:
                self.solved_at = record
                return False  # SB3 stops training when a callback returns False
        return True

    def _on_training_end(self) -> None:
        self.train_seconds += self._elapsed()
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def evaluate(self) -> EvalResult:
        """Greedy evaluation of the model on ``eval_env``."""
        assert self.eval_env is not None
        return evaluate_policy(self.model, self.eval_env, self.n_eval_episodes, seed=self.eval_seed)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0 - self._eval_seconds

    def _log(self, metrics: dict[str, float]) -> None:
        if self._logger is not None:
            self._logger.log(self.num_timesteps, metrics)
