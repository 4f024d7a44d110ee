"""LMPolicy: a policy over any ``transformers`` causal LM, with an optional value head.

The policy is the whole learner-side model: the causal LM (a local path or a hub name, resolved
by :mod:`textgym.hub`, which refuses models that are not causal LMs), an optional value head
on the last hidden state (for PPO), and :meth:`LMPolicy.reference`, a frozen copy for the KL
penalty. :meth:`LMPolicy.forward` scores whole right-padded contexts at train time; the
rollout's actions come from :class:`agents.lm.sampler.KVSampler`, one env step at a time with
a KV cache shared by all rows of a vector env. Both compute ``log_softmax(logits /
temperature)`` in float32 over the env's vocabulary, so the behaviour log-probs of a rollout
and the log-probs recomputed at train time agree to float rounding (tested to 1e-5).

The sampler and its cache-API helpers are re-exported here, where they lived before
``agents.lm.sampler`` existed (``from agents.lm.policy import KVSampler`` keeps working).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from agents.lm.sampler import (
    KVCacheError,
    KVSampler,
    TokenBeyondModelError,
    cache_kwarg,
    check_token_ids,
    forward_with_cache,
    output_cache,
)
from textgym import hub
from textgym.errors import UserError

__all__ = [
    "POLICY_HINT",
    "POLICY_WHAT",
    "VALUE_HEAD_FILE",
    "KVCacheError",
    "KVSampler",
    "LMPolicy",
    "ModelMismatchError",
    "ModelNotFoundError",
    "PolicyOutput",
    "TokenBeyondModelError",
    "cache_kwarg",
    "entropy_from_logits",
    "forward_with_cache",
    "output_cache",
    "token_logprobs",
]

VALUE_HEAD_FILE = "value_head.safetensors"
POLICY_WHAT = "policy model"
POLICY_HINT = ", 'default' for textgym's model,"


class ModelMismatchError(UserError, ValueError):
    """The model cannot act in the env as given (vocabulary or context length)."""


class ModelNotFoundError(UserError, FileNotFoundError):
    """The ``--model`` path does not exist (for loaders whose own error is not a UserError)."""


class PolicyOutput(NamedTuple):
    """What one train-time forward pass returns.

    Attributes:
        logits: ``(B, T, V)`` float32 next-token logits over the env's vocabulary.
        values: ``(B, T)`` state values (``None`` without a value head); ``values[:, j]`` is
            the value of the context ``tokens[:, : j + 1]``.
    """

    logits: torch.Tensor
    values: torch.Tensor | None


class LMPolicy(nn.Module):
    """A causal LM as a token-level policy, with an optional value head.

    Args:
        model: A ``transformers`` causal LM (anything ``AutoModelForCausalLM`` loads).
        vocab_size: The env's vocabulary size; logits beyond it (padded vocabularies) are
            dropped so that actions are always valid token ids.
        value_head: Add a linear value head on the last hidden state (PPO).
        name_or_path: Where the model came from, recorded in checkpoints so that a resumed
            run rebuilds the same reference model.
    """

    def __init__(
        self,
        model: nn.Module,
        vocab_size: int,
        *,
        value_head: bool = False,
        name_or_path: str = "",
    ) -> None:
        super().__init__()
        # Dropout off: the log-probs recomputed at train time must equal the rollout's
        # (as in TRL and OpenRLHF); a warm-started policy needs no more regularisation.
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        self.model = model
        # A model may end where the tokenizer's spare ids begin (textgym's default model:
        # the ledger's spare slots spell nothing), so it acts over its own vocabulary only.
        self.vocab_size = min(int(vocab_size), _output_size(model))
        # Logits = output embeddings of the base model's last hidden state, unless the model
        # post-processes them (soft-capping, scaling); then train-time scoring takes the
        # model's own logits.
        cfg = model.config
        self._plain_head = (
            getattr(cfg, "final_logit_softcapping", None) is None
            and getattr(cfg, "logit_scale", None) is None
            and getattr(model, "base_model", model) is not model
        )
        self.name_or_path = name_or_path
        hidden = _hidden_size(model)
        self.value_head: nn.Linear | None = None
        if value_head:
            self.value_head = nn.Linear(hidden, 1)
            # A zero head starts every value at 0, so the first PPO updates are driven by
            # the policy gradient rather than by a random critic's noise.
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        vocab_size: int,
        *,
        value_head: bool = False,
        device: str | torch.device = "cpu",
    ) -> LMPolicy:
        """Load a causal LM by local path or hub name (:mod:`textgym.hub` decides which).

        Raises:
            textgym.hub.ModelPathError: a local path that does not exist.
            textgym.hub.HubError: a hub name that could not be loaded (e.g. offline).
            textgym.hub.NotCausalLMError: the model is not a causal LM (e.g. a classifier).
            ModelMismatchError: the model's vocabulary is smaller than the env's.
        """
        name = os.fspath(name_or_path)
        source = hub.resolve(name_or_path, POLICY_WHAT, hint=POLICY_HINT)
        model = hub.load_causal_lm(name_or_path, POLICY_WHAT, hint=POLICY_HINT, dtype=torch.float32)
        policy = cls(model, vocab_size, value_head=value_head, name_or_path=name)
        head = source.path / VALUE_HEAD_FILE if source.path is not None else None
        if value_head and head is not None and head.exists():
            policy.value_head.load_state_dict(load_file(str(head)))  # type: ignore[union-attr]
        return policy.to(device)

    @classmethod
    def for_env(
        cls,
        name_or_path: str | os.PathLike[str],
        env: Any,
        *,
        value_head: bool = False,
        device: str | torch.device = "cpu",
    ) -> LMPolicy:
        """Load a causal LM to act in ``env`` (a single or a vector env), checked to fit it.

        Raises:
            ModelNotFoundError: a missing path, where the loader's own error is not a
                :class:`~textgym.errors.UserError`.
            ModelMismatchError: the model's vocabulary or context does not fit ``env``
                (:meth:`check_env`); and what :meth:`from_pretrained` raises.
        """
        try:
            vocab_size = len(_env_tokenizer(env))
            policy = cls.from_pretrained(
                name_or_path, vocab_size, value_head=value_head, device=device
            )
            policy.check_env(env)
        except FileNotFoundError as exc:
            # The user's model, the user's to fix: said in one line by `textgym train`.
            if isinstance(exc, UserError):
                raise
            raise ModelNotFoundError(str(exc)) from exc
        return policy

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write the LM (``save_pretrained`` format) and the value head next to it."""
        self.model.save_pretrained(str(path))
        if self.value_head is not None:
            save_file(
                {k: v.contiguous() for k, v in self.value_head.state_dict().items()},
                str(Path(path) / VALUE_HEAD_FILE),
            )

    def reference(self) -> LMPolicy:
        """A frozen copy of the LM (no value head) for the KL penalty."""
        ref = LMPolicy(copy.deepcopy(self.model), self.vocab_size, name_or_path=self.name_or_path)
        ref.eval()
        ref.requires_grad_(False)
        return ref

    # -- properties -----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def model_vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def _check_smaller_model(self, tokenizer: Any, model_vocab: int) -> None:
        """A model smaller than the env's tokenizer fits when it was saved with a tokenizer
        that agrees with the env's on every id the model has: the ids beyond it are spare
        slots or words added since (textgym's ledger, or ``add_tokens``), which the model
        never writes (it scores its own ids only) and refuses to read
        (:func:`~agents.lm.sampler.check_token_ids`) in the envs that use them."""
        env_vocab = tokenizer.get_vocab()
        name = self.name_or_path or type(self.model).__name__
        own = _model_tokenizer_vocab(self.name_or_path)
        ours = None if own is None else {t: i for t, i in own.items() if i < model_vocab}
        if ours is None or ours != {t: i for t, i in env_vocab.items() if i < model_vocab}:
            raise ModelMismatchError(
                f"Model {name!r} has a vocabulary of {model_vocab} tokens but the env's "
                f"tokenizer has {len(tokenizer)}: the model was trained for a different "
                "tokenizer, so its token ids mean other words. Use a model built for this "
                "tokenizer (textgym's default model: --model default), or make the env use "
                "the model's tokenizer (--tokenizer <model path>). A model saved with its "
                "tokenizer may be smaller than the env's tokenizer if the two agree on the "
                "model's ids."
            )

    @property
    def max_positions(self) -> int | None:
        cfg = self.model.config
        for key in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, key, None)
            if isinstance(value, int):
                return value
        return None

    def check_env(self, env: Any) -> None:
        """Fail before training when the model cannot act in ``env``.

        Checks that the model's vocabulary covers the env's tokenizer (equal sizes, a larger
        padded vocabulary whose own tokenizer agrees, or a smaller one where every id beyond
        it is a spare slot) and that its context window holds the env's ``max_length``.

        Raises:
            ModelMismatchError: with what differs and how to fix it.
        """
        tokenizer = _env_tokenizer(env)
        max_length = int(getattr(env, "unwrapped", env).max_length)
        env_vocab = len(tokenizer)
        model_vocab = self.model_vocab_size
        if model_vocab < env_vocab:
            self._check_smaller_model(tokenizer, model_vocab)
        elif model_vocab > env_vocab:
            own = _model_tokenizer_vocab(self.name_or_path)
            if own is None or own != tokenizer.get_vocab():
                raise ModelMismatchError(
                    f"Model {self.name_or_path or type(self.model).__name__!r} has a vocabulary "
                    f"of {model_vocab} tokens but the env's tokenizer has {env_vocab}: the "
                    "model was trained for a different tokenizer, so its token ids mean other "
                    "words. Use a model built for this tokenizer (textgym's default model: "
                    "--model default), or make the env use the model's tokenizer "
                    "(--tokenizer <model path>)."
                )
        positions = self.max_positions
        if positions is not None and positions < max_length:
            raise ModelMismatchError(
                f"Model {self.name_or_path!r} has {positions} positions but the env's contexts "
                f"reach max_length={max_length} tokens. Pass a smaller max_length to the env or "
                "use a model with a longer context."
            )

    # -- train-time scoring ---------------------------------------------------------------

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, at: torch.Tensor | None = None
    ) -> PolicyOutput:
        """Score right-padded contexts (one call = one forward through the LM).

        Args:
            input_ids: ``(B, T)`` token ids, right-padded.
            attention_mask: ``(B, T)`` 1 for real tokens.
            at: Optional ``(B, T)`` bool: compute logits only at these positions and return
                them flattened, ``(at.sum(), V)`` in row-major order. Training needs logits
                only where the agent acted, and the LM head (hidden x vocabulary) plus the
                softmax over it are a large share of a small model's cost.
        """
        check_token_ids(self.model, input_ids)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if at is not None and self._plain_head:
            hidden = self.model.base_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions,
                use_cache=False,
            ).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[at])[..., : self.vocab_size].float()
        else:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions,
                use_cache=False,
                output_hidden_states=self.value_head is not None,
            )
            logits = out.logits[..., : self.vocab_size].float()
            if at is not None:
                logits = logits[at]
            hidden = out.hidden_states[-1] if self.value_head is not None else None
        values = None
        if self.value_head is not None:
            assert hidden is not None
            values = self.value_head(hidden.float()).squeeze(-1)
        return PolicyOutput(logits=logits, values=values)

    # -- acting in a single env (for agents.common.evaluation and textgym play) ----------

    @torch.no_grad()
    def predict(
        self, obs: dict[str, np.ndarray], deterministic: bool = True, temperature: float = 1.0
    ) -> tuple[np.ndarray, None]:
        """SB3-style ``predict`` on one (or a batch of) right-padded observation(s).

        Recomputes the whole context each call (no cache), which is simple and fine for
        evaluation; training uses :class:`KVSampler`.
        """
        ids = torch.as_tensor(np.asarray(obs["input_ids"]), device=self.device)
        mask = torch.as_tensor(np.asarray(obs["attention_mask"]), device=self.device).long()
        single = ids.dim() == 1
        if single:
            ids, mask = ids[None], mask[None]
        logits = self(ids, mask).logits
        last = (mask.sum(-1) - 1).clamp(min=0)
        step_logits = logits[torch.arange(ids.shape[0], device=ids.device), last]
        if deterministic:
            actions = step_logits.argmax(-1)
        else:
            actions = torch.multinomial(F.softmax(step_logits / temperature, -1), 1).squeeze(-1)
        out = actions.cpu().numpy()
        return (out[0] if single else out), None


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log pi(token | context)`` at ``temperature``; ``logits`` already aligned to ``tokens``."""
    logp = F.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` along the last axis."""
    logp = F.log_softmax(logits / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _env_tokenizer(env: Any) -> Any:
    """The tokenizer of a textgym env, or of the first row of a textgym vector env."""
    unwrapped = getattr(env, "unwrapped", env)
    return unwrapped.envs[0].tokenizer if hasattr(unwrapped, "envs") else unwrapped.tokenizer


def _output_size(model: nn.Module) -> int:
    """How many token ids the model's LM head scores (its vocabulary, padding included)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(getattr(model.config, "vocab_size", 1 << 62))


def _hidden_size(model: nn.Module) -> int:
    cfg = model.config
    for key in ("hidden_size", "n_embd", "d_model"):
        value = getattr(cfg, key, None)
        if isinstance(value, int):
            return value
    return int(model.get_output_embeddings().weight.shape[1])


def _model_tokenizer_vocab(name_or_path: str) -> dict[str, int] | None:
    """The vocabulary of the tokenizer saved with a model, if there is one."""
    if not name_or_path or not Path(name_or_path).is_dir():
        return None
    if not any((Path(name_or_path) / f).exists() for f in ("tokenizer.json", "vocab.json")):
        return None
    # Imported here: transformers takes seconds to import, and only this check needs it.
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path).get_vocab()
    except (OSError, ValueError):
        return None
