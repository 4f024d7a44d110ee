"""LMJudge: a causal LM judges each turn, reading its yes/no next-token probabilities.

Loaded like every model reward (:mod:`textgym.rewards.models`: a hub name, a local path or a
loaded model, at construction), and scored in one padded forward pass per batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from textgym.rewards.base import RewardContext
from textgym.rewards.models import (
    ModelSource,
    _check_source,
    _device,
    _load_tokenizer,
    _ModelReward,
    conversation_before,
    load_causal_lm,
    tokenize,
)

DEFAULT_RUBRIC = (
    "Question: {prompt} Response: {response} Is the response helpful, correct and polite? "
    "Answer yes or no. Answer:"
)


class LMJudge(_ModelReward):
    """A causal LM judges each turn: the reward is ``P(yes) / (P(yes) + P(no))``.

    The rubric is formatted with ``prompt`` (the conversation before the turn), ``response``
    (the turn) and ``answer`` (the gold answer, or empty), and the judge's next-token
    distribution after it is read at the ``yes`` and ``no`` tokens: one forward pass for the
    whole batch, no sampling.

    Args:
        model: Hub name, local path, or a loaded causal LM.
        tokenizer: As for :class:`~textgym.rewards.models.RewardModel`.
        rubric: A ``str.format`` template with ``{prompt}``, ``{response}``, ``{answer}``.
        yes, no: The answer words; each must start with a distinct token (the first token is
            used, with a leading space for BPE tokenizers, e.g. ``" yes"``).
        max_length, batch_size, device, name: As for :class:`~textgym.rewards.models.RewardModel`.
    """

    def __init__(
        self,
        model: ModelSource,
        tokenizer: ModelSource | None = None,
        *,
        rubric: str = DEFAULT_RUBRIC,
        yes: str = " yes",
        no: str = " no",
        max_length: int = 512,
        batch_size: int = 16,
        device: str | None = None,
        name: str = "lm_judge",
    ) -> None:
        try:
            rubric.format(prompt="", response="", answer="")
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"The rubric may only use {{prompt}}, {{response}} and {{answer}}; it uses {exc}."
            ) from exc
        if "{response}" not in rubric:
            raise ValueError(
                "The rubric must contain {response}, or the judge never sees the turn."
            )
        self.name, self.rubric = name, rubric
        self.source = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.device = _device(device)
        self.max_length, self.batch_size = max_length, batch_size
        _check_source(model, "judge model")
        self.tokenizer = _load_tokenizer(tokenizer, model)
        self.model = load_causal_lm(model, "judge model")
        self.model.to(self.device).eval()
        self.yes_id, self.no_id = self._token(yes), self._token(no)
        if self.yes_id == self.no_id:
            raise ValueError(
                f"yes={yes!r} and no={no!r} start with the same token; pick other words."
            )

    def _token(self, word: str) -> int:
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        if not ids or ids[0] == self.tokenizer.unk_token_id:
            raise ValueError(
                f"The judge's tokenizer cannot encode {word!r} (got {ids}); pass yes=/no= words "
                "in its vocabulary."
            )
        return int(ids[0])

    def prompt_for(self, ctx: RewardContext) -> str:
        """The rubric filled in for this turn."""
        return self.rubric.format(
            prompt=conversation_before(ctx), response=ctx.text, answer=ctx.answer or ""
        )

    def _forward(self, ctxs: Sequence[RewardContext]) -> list[float]:
        import torch

        prompts = [self.prompt_for(c) for c in ctxs]
        # Keep the end of long prompts: the question to the judge is there.
        side = self.tokenizer.truncation_side
        self.tokenizer.truncation_side = "left"
        try:
            inputs = tokenize(self.tokenizer, self.max_length, prompts).to(self.device)
        finally:
            self.tokenizer.truncation_side = side
        mask = inputs["attention_mask"]
        # Right or left padding: read the logits at each row's last real token (argmax
        # returns the first maximum, i.e. the last 1 of the mask once flipped).
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)
        logits = self.model(**inputs).logits.float()
        rows = torch.arange(len(prompts), device=logits.device)
        pair = logits[rows, last][:, [self.yes_id, self.no_id]]
        return pair.softmax(-1)[:, 0].tolist()

    def __repr__(self) -> str:
        return f"LMJudge({str(self.source)!r})"


__all__ = ["DEFAULT_RUBRIC", "LMJudge"]
