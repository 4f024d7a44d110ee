"""KVSampler: next-token logits for every row of a vector env from one shared KV cache.

The rollout's actions come from here, one env step at a time: after the prompts, each step
feeds the model one new token per row on top of the cache, so a rollout costs what a
``generate`` loop costs while the env stays in charge, and a user's reply is fed once, on
top of the conversation's cache, never re-prefilled (:class:`agents.lm.row_cache.RowCache`
keeps one length per row). Logits are those of the policy's LM at each row's own positions,
so they equal a fresh forward over the row's context (and hence the train-time scoring of
:meth:`agents.lm.policy.LMPolicy.forward`).

The cache goes in under the keyword the installed transformers takes (``cache``, or
``past_key_values`` before 5.24, :func:`cache_kwarg`), and :func:`forward_with_cache` fails
loudly (:class:`KVCacheError`) if a forward ignores it.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from agents.lm.row_cache import RowCache
from textgym import hub
from textgym.errors import UserError


class SamplingPolicy(Protocol):
    """What the sampler needs of a policy (:class:`agents.lm.policy.LMPolicy` has it).

    A protocol rather than the class itself, so that ``agents.lm.policy`` can re-export the
    sampler under its old import path without the two modules importing each other.
    """

    @property
    def model(self) -> nn.Module:
        """The ``transformers`` causal LM."""
        ...

    @property
    def value_head(self) -> nn.Module | None:
        """A linear head from the last hidden state to a state value, if any."""
        ...

    @property
    def vocab_size(self) -> int:
        """The env's vocabulary size; logits beyond it are dropped."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        ...


class TokenBeyondModelError(UserError, ValueError):
    """A context holds a token id the model has no embedding for."""


def check_token_ids(model: nn.Module, input_ids: torch.Tensor) -> None:
    """Refuse ids beyond ``model``'s embedding table, naming the fix, before torch's opaque
    ``IndexError``: a model built before a family gained a word (the word took a spare id of
    textgym's tokenizer) plays every env but the ones that use that word."""
    embeddings = getattr(model, "get_input_embeddings", None)
    size = getattr(embeddings() if callable(embeddings) else None, "num_embeddings", None)
    if size is not None and input_ids.numel() and int(input_ids.max()) >= size:
        bad = int(input_ids.max())
        raise TokenBeyondModelError(
            f"The context holds token id {bad}, beyond the model's {size} embeddings: the "
            "tokenizer has words the model was built without (a family's new word, say). "
            "Rebuild the model for this tokenizer (textgym's default: `python -m "
            "agents.lm.build_default_model`), or resize it "
            "(model.resize_token_embeddings(len(tokenizer))) and fine-tune it."
        )


class KVCacheError(RuntimeError):
    """The model did not use the KV cache it was given (its logits would be silently wrong)."""


def cache_kwarg(model: nn.Module) -> str:
    """The keyword under which ``model.forward`` takes its KV cache: ``cache`` or
    ``past_key_values``.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns and is
    to be removed in 5.40, after which ``**kwargs`` would swallow it without an error). The
    forward signature says which name this model takes; a forward that only has
    ``**kwargs`` (a wrapper) gets the installed transformers' name.
    """
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented forward has no signature
        params = {}  # type: ignore[assignment]
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return "cache" if hub.transformers_version() >= (5, 24) else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned, under its current (``cache``) or older
    (``past_key_values``) name; ``None`` if it returned none.

    Reads the output's keys rather than its attributes: the old attribute name still works
    on transformers 5.24 but logs a deprecation warning.
    """
    keys = set(out.keys())
    for name in ("cache", "past_key_values"):
        if name in keys:
            return out[name]
    return None


def forward_with_cache(
    model: nn.Module, cache: Any, expected_length: int, *, kwarg: str | None = None,
    **inputs: Any,
) -> tuple[Any, Any]:  # fmt: skip
    """One forward of ``model`` on top of ``cache``; returns ``(output, new cache)``.

    Args:
        model: A ``transformers`` causal LM.
        cache: A ``transformers`` ``Cache`` (e.g. ``DynamicCache()`` for a prefill).
        expected_length: Positions the returned cache must hold (the cached ones plus this
            call's input width); anything else means the cache was not used.
        kwarg: The cache keyword (:func:`cache_kwarg`); decided here if ``None``.
        **inputs: ``input_ids``, ``attention_mask``, ``position_ids``...

    Raises:
        TokenBeyondModelError: an input id has no embedding in ``model``.
        KVCacheError: the model returned no ``Cache``, or one of another length: it ignored
            the cache it was given, so its logits are those of a context without it.
    """
    kwarg = kwarg or cache_kwarg(model)
    check_token_ids(model, inputs["input_ids"])
    out = model(**inputs, **{kwarg: cache}, use_cache=True)
    new = output_cache(out)
    # Not a Cache object (None, or the legacy tuple a model builds for itself): not ours.
    seq_length = getattr(new, "get_seq_length", None)
    length = None if seq_length is None else int(seq_length())
    if length != expected_length:
        # Imported here: transformers takes seconds to import, and only this message needs it.
        import transformers

        raise KVCacheError(
            f"{type(model).__name__}.forward did not use the KV cache passed as `{kwarg}=` "
            f"(the returned cache holds {length} positions, expected {expected_length}) on "
            f"transformers {transformers.__version__}: its logits would ignore the cached "
            "context. This transformers version changed the cache API; install one that "
            "textgym supports or report it."
        )
    return out, new


class KVSampler:
    """Next-token logits for the rows of a vector env, with one KV cache for all rows.

    Each env step appends one token per row, so each call feeds the model one new token per
    row on top of the cache: the cost of a ``generate`` loop, but driven by the env. Rows
    need not stay in step. A row whose context grew by more than one token (the prompt
    after a reset, a user's reply in a multi-turn task) has *news*: the rows with news are
    fed in a second, narrow forward of only those rows, as wide as the longest news, while
    the others decode in the usual one-token forward, so a reply costs its own tokens and
    not a block as wide as it for every row. The cache (:class:`~agents.lm.row_cache.
    RowCache`) keeps each row's context contiguous at its own length, so nothing is padded,
    concatenated or prefilled again, however rows drift apart. Explicit position ids keep
    every token at its position in its own context, so the logits equal those of a fresh
    forward over the row's context.

    Rows that are finished for good (:meth:`retire`) leave the cache, so that the long tail
    of a batch costs only its unfinished rows (a plain ``generate`` keeps computing finished
    rows until the longest one ends).

    With ``values=True`` the same forward passes also give the value head's estimate of
    each state (:meth:`logits_and_values`), so PPO needs no separate pass over the batch
    for the values of the states it acted in.

    Args:
        policy: The policy whose LM produces the logits.
        num_rows: Rows of the vector env.
        max_cache: Slots per row allocated at first (the env's ``max_length``); a longer
            context grows the buffers.
        pad_id: Token fed in padding slots (never attended to by a real token).
        values: Also compute state values (the policy needs a value head).
    """

    def __init__(
        self,
        policy: SamplingPolicy,
        num_rows: int,
        max_cache: int,
        pad_id: int = 0,
        values: bool = False,
    ) -> None:
        if values and policy.value_head is None:
            raise ValueError(
                "KVSampler(values=True) needs a policy with a value head; build it with "
                "LMPolicy.from_pretrained(..., value_head=True)."
            )
        self.policy = policy
        self.num_rows = num_rows
        self.max_cache = max_cache
        self.pad_id = pad_id
        self.values = values
        # Decided once per model: the cache keyword of this transformers version.
        self._cache_kwarg = cache_kwarg(policy.model)
        self._dtype = next(policy.model.parameters()).dtype
        self.reset()

    def reset(self) -> None:
        """Forget every row's context and bring retired rows back (after ``envs.reset``)."""
        self._cache: RowCache | None = None
        self._rows = np.arange(self.num_rows)  # env rows held by the cache, in cache order
        self._fed = np.zeros(self.num_rows, dtype=np.int64)  # context tokens cached per row
        self._retired = np.zeros(self.num_rows, dtype=bool)

    def forget(self, rows: np.ndarray) -> None:
        """Drop the cached context of ``rows`` (the env reset them); they are fed anew."""
        self._fed[np.asarray(rows, dtype=np.int64)] = 0

    def retire(self, rows: np.ndarray) -> None:
        """Rows that need no more logits until :meth:`reset`; they leave the cache."""
        self._retired[np.asarray(rows, dtype=np.int64)] = True

    def logits(
        self, ids: np.ndarray, lengths: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor]:
        """Next-token logits after each active row's context ``ids[r, :lengths[r]]``.

        Returns ``(rows, logits)``: the active rows (ascending) and their ``(len(rows), V)``
        logits. An inactive row's cached context is dropped (it is fed anew when it is
        active again), since the env may be resetting it (its action is then ignored).
        """
        rows, logits, _ = self.logits_and_values(ids, lengths, active)
        return rows, logits

    @torch.no_grad()
    def logits_and_values(
        self, ids: np.ndarray, lengths: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor | None]:
        """As :meth:`logits`, plus each active row's state value ``(len(rows),)`` when the
        sampler was built with ``values=True`` (else ``None``)."""
        if (active & self._retired).any():
            raise RuntimeError("A retired row is active; call reset() before reusing rows.")
        self._compact()
        rows = self._rows
        device = self.policy.device
        act = active[rows]
        new = np.where(act, lengths[rows] - self._fed[rows], 0)
        if (new < 0).any():
            bad = int(rows[np.flatnonzero(new < 0)[0]])
            raise RuntimeError(
                f"Row {bad}'s context shrank from {self._fed[bad]} to {lengths[bad]} tokens "
                "without KVSampler.forget(); call forget(rows) for rows the env reset."
            )
        if act.any() and (new[act] < 1).any():
            raise RuntimeError("An active row has no new token to feed; did the env step?")
        keep = np.flatnonzero(act)
        logits = torch.zeros(rows.size, self.policy.vocab_size, device=device)
        values = torch.zeros(rows.size, device=device) if self.values else None
        if keep.size:
            if self._cache is None:
                self._cache = RowCache(rows.size, self.max_cache)
            news = np.flatnonzero(new > 1)
            if news.size < keep.size:  # someone decodes: one token per row, every row
                self._feed(ids, None, (new == 1).astype(np.int64), 1, logits, values)
            if news.size:  # the rows with news, in a forward of their own (all: no gather)
                subset = None if news.size == rows.size else news
                self._feed(ids, subset, new[news], int(new[news].max()), logits, values)
            # An inactive row's context is dropped: the env may be resetting it.
            self._fed[rows] = np.where(act, lengths[rows], 0)
        # index_select (here and in _feed) rather than tensor[index]: the same copy, without
        # advanced indexing's general machinery, which costs 3x more on a CPU.
        index = torch.as_tensor(keep, device=device)
        picked = None if values is None else values.index_select(0, index)
        return rows[keep], logits.index_select(0, index), picked

    def _feed(
        self, ids: np.ndarray, subset: np.ndarray | None, counts: np.ndarray, width: int,
        logits: torch.Tensor, values: torch.Tensor | None,
    ) -> None:  # fmt: skip
        """One forward: cache rows ``subset`` (``None``: all) feed their next ``counts``
        tokens in a block of ``width``; their logits (and values) go into place."""
        assert self._cache is not None
        device = self.policy.device
        at = np.arange(self._rows.size) if subset is None else subset
        rows = self._rows[at]
        fed = self._fed[rows]
        block = np.full((at.size, width), self.pad_id, dtype=np.int64)
        real = counts > 0
        if width == 1:  # the common case, vectorised
            block[real, 0] = ids[rows[real], fed[real]]
            # An idle row repeats its last position (its column is never read).
            pos = np.where(real, fed, np.maximum(fed - 1, 0))[:, None]
        else:
            for k in np.flatnonzero(real):
                block[k, : counts[k]] = ids[rows[k], fed[k] : fed[k] + counts[k]]
            # Padding columns repeat the row's last position: within the position table.
            pos = fed[:, None] + np.minimum(
                np.arange(width)[None, :], np.maximum(counts - 1, 0)[:, None]
            )
        input_ids = torch.as_tensor(block, device=device)
        check_token_ids(self.policy.model, input_ids)
        mask = self._cache.begin(fed, counts, width, subset, self._dtype, device)
        before = self._cache.updates
        try:
            out = self.policy.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=torch.as_tensor(pos, device=device),
                use_cache=True,
                output_hidden_states=self.values,
                **{self._cache_kwarg: self._cache},
            )
        finally:
            self._cache.end()
        if self._cache.updates == before:
            _ignored_cache(self.policy.model, self._cache_kwarg)
        index = torch.as_tensor(at[real], device=device)
        got, got_values = self._at(out, torch.as_tensor(np.maximum(counts - 1, 0), device=device))
        take = torch.as_tensor(np.flatnonzero(real), device=device)
        logits.index_copy_(0, index, got.index_select(0, take))
        if values is not None and got_values is not None:
            values.index_copy_(0, index, got_values.index_select(0, take))

    def _at(self, out: Any, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each fed row's logits (and value) at its column ``last[row]`` of the block."""
        logits = _pick(out.logits, last)[:, : self.policy.vocab_size].float()
        if not self.values:
            return logits, None
        assert self.policy.value_head is not None
        hidden = _pick(out.hidden_states[-1], last)
        return logits, self.policy.value_head(hidden.float()).squeeze(-1)

    def _compact(self) -> None:
        """Drop retired rows from the cache once they are a quarter of it (each drop copies
        the cache, so doing it per finished row would cost more than it saves)."""
        gone = self._retired[self._rows]
        if not gone.any() or (gone.sum() * 4 < gone.size and not gone.all()):
            return
        keep = np.flatnonzero(~gone)
        self._rows = self._rows[keep]
        if self._cache is not None:
            self._cache.keep(keep)


def _ignored_cache(model: nn.Module, kwarg: str) -> None:
    """Raise :class:`KVCacheError`: ``model`` ran a forward without updating its cache."""
    # Imported here: transformers takes seconds to import, and only this message needs it.
    import transformers

    raise KVCacheError(
        f"{type(model).__name__}.forward did not use the KV cache passed as `{kwarg}=` on "
        f"transformers {transformers.__version__}: its logits would ignore the cached "
        "context. This transformers version changed the cache API; install one that textgym "
        "supports or report it."
    )


def _pick(block: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Row ``b``'s column ``last[b]`` of a ``(B, W, ...)`` block of outputs."""
    if block.shape[1] == 1:  # a decoding block: a view, where advanced indexing copies
        return block[:, 0]
    return block[torch.arange(last.numel(), device=last.device), last]
