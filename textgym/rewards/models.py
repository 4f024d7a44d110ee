"""Model-based rewards: a reward model and embedding similarity (the LM judge is in
:mod:`textgym.rewards.judge`).

All of them load a ``transformers`` model by hub name or local path (or take a loaded model),
at construction time, so a wrong path fails before any episode starts. All three score many
turns with one padded forward pass (:meth:`~textgym.rewards.base.Reward.batch`), which the
vector env calls once for every episode that ends on the same step.

What the models read: the conversation before the turn (for a single-turn task, the prompt)
and the turn itself, as :func:`reward_model_inputs` formats them; the human-feedback trainer
(:mod:`textgym.rewards.human`) uses the same function, so a model it trains scores exactly
what it was trained on.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textgym import hub
from textgym.hub import ModelLoadError
from textgym.rewards.base import Reward, RewardContext, RewardError
from textgym.runs import final_model_dir

Result = tuple[float, dict[str, float]]
ModelSource = str | os.PathLike[str] | Any


# -- loading ------------------------------------------------------------------------------

#: Where a model of each kind comes from, for the hint of a missing path.
_MADE_BY = {"reward model": " (e.g. by `textgym train-rm`)"}


def check_model_path(name: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`~textgym.hub.ModelPathError` (a :class:`ModelLoadError`) if ``name``
    is a local path that does not exist, before transformers reads it as a hub repo id and
    fails with a confusing message (see :func:`textgym.hub.resolve`)."""
    hub.resolve(name, what, hint=_MADE_BY.get(what, ""))


def _check_source(source: ModelSource, what: str) -> None:
    if isinstance(source, (str, os.PathLike)):
        check_model_path(source, what)


def load_pretrained(auto_cls: Any, source: ModelSource, what: str) -> Any:
    """``auto_cls.from_pretrained(source)`` through :mod:`textgym.hub`, with errors that say
    what to do; an object that is already loaded passes through."""
    if not isinstance(source, (str, os.PathLike)):
        return source  # an already-loaded object
    return hub.from_pretrained(auto_cls, source, what, hint=_MADE_BY.get(what, ""))


def load_causal_lm(source: ModelSource, what: str) -> Any:
    """As :func:`load_pretrained` for a causal LM, refusing models that are not one."""
    if not isinstance(source, (str, os.PathLike)):
        return source  # an already-loaded object
    return hub.load_causal_lm(source, what)


def _load_tokenizer(tokenizer: ModelSource | None, model_source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    if tokenizer is None:
        if not isinstance(model_source, (str, os.PathLike)):
            raise ModelLoadError(
                "A loaded model needs its tokenizer: pass tokenizer=... (an object, a path, "
                "or a hub name)."
            )
        tokenizer = model_source
    tok = load_pretrained(AutoTokenizer, tokenizer, "tokenizer")
    if tok.pad_token_id is None:
        # GPT-2-style tokenizers have no pad token; padding is masked out, so eos serves.
        if tok.eos_token is None:
            raise ModelLoadError(
                f"The tokenizer for {model_source!r} has neither a pad nor an eos token; set "
                "tokenizer.pad_token before passing it."
            )
        tok.pad_token = tok.eos_token
    return tok


def _device(device: str | None) -> Any:
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def conversation_before(ctx: RewardContext) -> str:
    """The conversation before this turn, as one string (the prompt for single-turn tasks)."""
    turns = list(ctx.turns)
    if turns and turns[-1].role == "agent" and turns[-1].text == ctx.text:
        turns = turns[:-1]
    return " ".join(t.text for t in turns) if turns else ctx.prompt


def reward_model_inputs(
    tokenizer: Any, contexts: Sequence[str], texts: Sequence[str], max_length: int
) -> dict[str, Any]:
    """Tokenize (context, turn) pairs for a sequence-classification reward model.

    Pairs use the tokenizer's own pair format (``[CLS] a [SEP] b [SEP]`` for BERT; plain
    concatenation for tokenizers without one); the longer of the two is cut first.
    """
    inputs = tokenize(tokenizer, max_length, contexts, texts)
    return _at_least_one_token(inputs, tokenizer.pad_token_id, attend=True)


def tokenize(tokenizer: Any, max_length: int, *texts: Sequence[str]) -> Any:
    """A padded batch of PyTorch tensors, each text (or pair of texts) cut to ``max_length``
    tokens."""
    return tokenizer(
        *(list(t) for t in texts),
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )


def _at_least_one_token(inputs: Any, pad_id: int, attend: bool) -> Any:
    """Give a batch of empty strings one pad token: models cannot run on zero-length input.

    Agents often end a turn at once, so empty turns are common. ``attend=False`` masks the
    pad out (mean pooling then gives a zero vector: cosine 0 with anything).
    """
    import torch

    ids = inputs["input_ids"]
    if ids.shape[1] > 0:
        return inputs
    n = ids.shape[0]
    # Long, not ids.dtype: transformers 4 gives an empty batch a float tensor.
    inputs["input_ids"] = torch.full((n, 1), int(pad_id), dtype=torch.long)
    inputs["attention_mask"] = torch.full((n, 1), int(attend), dtype=torch.long)
    if "token_type_ids" in inputs:
        inputs["token_type_ids"] = torch.zeros((n, 1), dtype=torch.long)
    return inputs


class _ModelReward(Reward):
    """Shared plumbing: device, batching in chunks, no-grad inference."""

    batch_size: int
    device: Any

    def __call__(self, ctx: RewardContext) -> float:
        return self.batch([ctx])[0][0]

    def score(self, ctx: RewardContext) -> Result:
        return self.batch([ctx])[0]

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        import torch

        values: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(ctxs), self.batch_size):
                values.extend(self._forward(ctxs[start : start + self.batch_size]))
        return [(v, {self.name: v}) for v in values]

    def _forward(self, ctxs: Sequence[RewardContext]) -> list[float]:
        raise NotImplementedError


# -- reward model -------------------------------------------------------------------------


class RewardModel(_ModelReward):
    """A ``transformers`` sequence-classification model as a reward.

    With one output (``num_labels == 1``, a regression or Bradley-Terry head) the reward is
    that logit; with several it is the probability of ``label`` (softmax).

    Args:
        model: Hub name, local path (a ``save_pretrained`` directory), or a loaded model.
        tokenizer: ``None`` loads it from ``model``'s path; else an object, path or name.
        label: For multi-label heads: the label index or name (e.g. ``"POSITIVE"``) whose
            probability is the reward; defaults to the last label.
        max_length: Tokens per (context, turn) pair; the context is cut first.
        batch_size: Pairs per forward pass.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks cuda when available.
        name: Component name in ``info["reward_components"]``.

    Raises:
        ModelLoadError: at construction, if the model or tokenizer cannot be loaded.
    """

    def __init__(
        self,
        model: ModelSource,
        tokenizer: ModelSource | None = None,
        *,
        label: int | str | None = None,
        max_length: int = 512,
        batch_size: int = 32,
        device: str | None = None,
        name: str = "reward_model",
    ) -> None:
        from transformers import AutoModelForSequenceClassification

        self.name = name
        self.source = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.device = _device(device)
        _check_source(model, "reward model")
        if isinstance(model, (str, os.PathLike)) and not isinstance(model, bytes):
            # `textgym train-rm --out rm` leaves a run directory: its model is rm/final_model.
            model = os.fspath(final_model_dir(model))
        self.tokenizer = _load_tokenizer(tokenizer, model)
        self.model = load_pretrained(AutoModelForSequenceClassification, model, "reward model")
        self.model.to(self.device).eval()
        if getattr(self.model.config, "pad_token_id", None) is None:
            # Decoder classifiers find the last real token through pad_token_id.
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        n = int(self.model.config.num_labels)
        if label is None:
            self.label = n - 1
        elif isinstance(label, str):
            label2id = {k.lower(): v for k, v in (self.model.config.label2id or {}).items()}
            if label.lower() not in label2id:
                raise ValueError(
                    f"Label {label!r} is not one of the model's labels {sorted(label2id)}."
                )
            self.label = int(label2id[label.lower()])
        else:
            self.label = int(label)
        if not 0 <= self.label < n:
            raise ValueError(f"label={label} is out of range for a model with {n} labels.")
        self.max_length, self.batch_size = max_length, batch_size

    def _forward(self, ctxs: Sequence[RewardContext]) -> list[float]:
        inputs = reward_model_inputs(
            self.tokenizer,
            [conversation_before(c) for c in ctxs],
            [c.text for c in ctxs],
            self.max_length,
        ).to(self.device)
        logits = self.model(**inputs).logits.float()
        if logits.shape[-1] == 1:
            return logits[:, 0].tolist()
        return logits.softmax(-1)[:, self.label].tolist()

    def __repr__(self) -> str:
        return f"RewardModel({str(self.source)!r})"


# -- embedding similarity -----------------------------------------------------------------


class EmbeddingSimilarity(_ModelReward):
    """Cosine similarity between the turn and its references, in a sentence-embedding space.

    References are ``ctx.metadata[key]`` (a string or a list of strings) or, when the
    metadata has no such entry, the gold answer; the score is the best match over them.
    Embeddings come from ``transformers.AutoModel`` with attention-masked mean pooling, or
    from ``sentence-transformers`` when it is installed and the model is one of its
    directories (``backend="auto"``). Reference embeddings are cached.

    Args:
        model: Hub name, local path, or a loaded ``AutoModel``.
        tokenizer: As for :class:`RewardModel`.
        key: Metadata entry holding the references.
        rescale: Map the cosine from ``[-1, 1]`` to ``[0, 1]``.
        backend: ``"auto"``, ``"transformers"`` or ``"sentence-transformers"``.
        max_length, batch_size, device, name: As for :class:`RewardModel`.
    """

    def __init__(
        self,
        model: ModelSource,
        tokenizer: ModelSource | None = None,
        *,
        key: str = "references",
        rescale: bool = False,
        backend: str = "auto",
        max_length: int = 256,
        batch_size: int = 64,
        device: str | None = None,
        name: str = "embedding_similarity",
        cache_size: int = 10_000,
    ) -> None:
        if backend not in ("auto", "transformers", "sentence-transformers"):
            raise ValueError(
                f"backend must be 'auto', 'transformers' or 'sentence-transformers', got {backend!r}."
            )
        self.name, self.key, self.rescale = name, key, rescale
        self.source = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.device = _device(device)
        self.max_length, self.batch_size = max_length, batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._st = None
        source = (
            hub.resolve(model, "embedding model") if isinstance(model, (str, os.PathLike)) else None
        )
        is_st_dir = (
            source is not None and source.local and (Path(source.name) / "modules.json").exists()
        )
        if source is not None and (
            backend == "sentence-transformers" or (backend == "auto" and is_st_dir)
        ):
            try:
                # Optional dependency (the `embeddings` extra), so imported only when asked for.
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                if backend == "sentence-transformers":
                    raise ModelLoadError(
                        "backend='sentence-transformers' needs the package: pip install "
                        "'textgym[embeddings]' (or sentence-transformers)."
                    ) from exc
            else:
                try:
                    self._st = SentenceTransformer(source.name, device=str(self.device))
                except (OSError, ValueError) as exc:
                    raise hub.load_error(
                        exc, source, "embedding model", "SentenceTransformer"
                    ) from exc
                return
        from transformers import AutoModel

        self.tokenizer = _load_tokenizer(tokenizer, model)
        self.model = load_pretrained(AutoModel, model, "embedding model")
        self.model.to(self.device).eval()

    def references(self, ctx: RewardContext) -> list[str]:
        """The reference texts this turn is compared with."""
        refs: Any = ctx.metadata.get(self.key) if self.key in ctx.metadata else ctx.answer
        if refs is None:
            raise RewardError(
                f"EmbeddingSimilarity needs references: ctx.metadata[{self.key!r}] or a gold "
                f"answer, and problem {ctx.problem.id or ctx.prompt!r} has neither. Set key= to "
                f"one of the metadata entries {sorted(ctx.metadata)}."
            )
        refs = [refs] if isinstance(refs, str) else [str(r) for r in refs]
        if not refs:
            raise RewardError(f"EmbeddingSimilarity: ctx.metadata[{self.key!r}] is empty.")
        return refs

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts``, ``(len(texts), dim)``, in one batched pass."""
        import torch

        if not texts:
            return np.zeros((0, 1))  # callers index no rows of it
        if self._st is not None:
            out = self._st.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
            return np.asarray(out, dtype=np.float64)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                part = list(texts[start : start + self.batch_size])
                inputs = tokenize(self.tokenizer, self.max_length, part)
                inputs = _at_least_one_token(inputs, self.tokenizer.pad_token_id, attend=False)
                inputs = inputs.to(self.device)
                hidden = self.model(**inputs).last_hidden_state.float()
                # Mean over real tokens only: padding must not pull embeddings together.
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().double().numpy())
        return np.concatenate(chunks)

    def batch(self, ctxs: Sequence[RewardContext]) -> list[Result]:
        refs = [self.references(c) for c in ctxs]
        # Uncached references and the turns go through the model together: one pass.
        missing = list(dict.fromkeys(r for rs in refs for r in rs if r not in self._cache))
        vecs = self.embed(missing + [c.text for c in ctxs])
        ref_vecs = {r: self._cache[r] for rs in refs for r in rs if r in self._cache}
        ref_vecs.update(zip(missing, vecs[: len(missing)], strict=True))
        turn_vecs = vecs[len(missing) :]
        results = []
        for vec, rs in zip(turn_vecs, refs, strict=True):
            cos = max(float(np.dot(vec, ref_vecs[r])) for r in rs)
            cos = min(1.0, max(-1.0, cos))
            value = (cos + 1.0) / 2.0 if self.rescale else cos
            results.append((value, {self.name: value}))
        for ref, vec in ref_vecs.items():
            self._cache[ref] = vec
            self._cache.move_to_end(ref)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return results

    def __repr__(self) -> str:
        return f"EmbeddingSimilarity({str(self.source)!r})"


# -- LM as judge --------------------------------------------------------------------------


__all__ = [
    "EmbeddingSimilarity",
    "ModelLoadError",
    "RewardModel",
    "conversation_before",
    "reward_model_inputs",
]
