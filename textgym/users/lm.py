"""LMResponder: any ``transformers`` causal LM plays the user.

The language model writes the user's words; a *judge* (the task's scripted responder,
by default) still decides what happened: whether the question was answered, the case
resolved, the conversation over. Rewards and ``info["success"]`` therefore keep their
meaning, while the agent faces varied, model-written replies. With ``paraphrase=True`` the
judge's scripted reply is shown to the model as what the user means to say, so even a
small model stays on track; a bigger one rephrases it freely.

Use it through a multi-turn task's ``user`` argument::

    user = LMResponder.factory("openai-community/gpt2", max_new_tokens=24)  # or a local path
    env = gym.make("textgym/Dialogue-v0", user=user)

The factory is picklable (it holds the model's name, not the model), models are loaded
once per process and cached, and generation is greedy by default, so the env stays
deterministic given its seed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textgym import hub
from textgym.tokenizer import ChatFormat, encode_plain, load_tokenizer
from textgym.users.base import Reply, Responder

if TYPE_CHECKING:
    import numpy as np

    from textgym.tasks.base import Problem, Turn


@functools.lru_cache(maxsize=4)
def _load(name: str) -> tuple[Any, Any]:
    model = hub.load_causal_lm(name, "responder model")
    model.eval()
    return model, load_tokenizer(name)


def default_persona(problem: Problem) -> str:
    """A short description of who the user is, from the problem's metadata."""
    meta = problem.metadata
    if "topic" in meta:
        return f"you are a user who asks about {meta['topic']}."
    if "intent" in meta:
        return f"you are a customer. you want: {meta['intent'].replace('_', ' ')}."
    return "you are a user talking to an assistant."


class LMResponder(Responder):
    """A responder whose words come from a causal LM.

    Args:
        model: A model name or local path (loaded with ``AutoModelForCausalLM``), or a
            loaded model object.
        tokenizer: The model's tokenizer (name, path or object); ``None`` loads it from
            ``model`` when that is a name or path.
        judge: The responder that decides ``done`` and the outcome (normally the task's
            scripted user); ``None`` means the conversation ends after ``max_turns``.
        paraphrase: Show the judge's reply to the model as the user's intended meaning.
        persona: Builds the opening instruction from the problem.
        max_new_tokens: Longest reply.
        temperature: 0 for greedy decoding; above 0 samples, seeded from the env's RNG.
        max_turns: Without a judge, the user leaves after this many agent turns.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        judge: Responder | None = None,
        paraphrase: bool = True,
        persona: Callable[[Problem], str] = default_persona,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        max_turns: int = 6,
    ) -> None:
        if isinstance(model, (str, os.PathLike)):
            # Resolved first, so that "x" and "./x" share one cached model.
            loaded, own_tokenizer = _load(hub.resolve(model, "responder model").name)
            model = loaded
            tokenizer = tokenizer if tokenizer is not None else own_tokenizer
        if tokenizer is None:
            raise ValueError(
                "LMResponder got a model object without a tokenizer; pass tokenizer=... "
                "(a name, a path or the tokenizer object)."
            )
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer)
        if max_new_tokens < 1 or temperature < 0 or max_turns < 1:
            raise ValueError(
                f"Need max_new_tokens >= 1, temperature >= 0 and max_turns >= 1, got "
                f"{max_new_tokens}, {temperature}, {max_turns}."
            )
        self.model, self.tokenizer = model, tokenizer
        self.chat = ChatFormat.for_tokenizer(tokenizer)
        self.judge, self.paraphrase, self.persona = judge, paraphrase, persona
        self.max_new_tokens, self.temperature, self.max_turns = (
            max_new_tokens,
            temperature,
            max_turns,
        )
        self.problem: Problem | None = None

    @classmethod
    def factory(cls, model: str | os.PathLike[str], **kwargs: Any) -> LMResponderFactory:
        """A picklable ``judge -> LMResponder`` callable for a task's ``user`` argument.

        The model loads when the first responder is made (at the env's first reset); a
        path that does not exist fails here, when the env is made.
        """
        hub.resolve(model, "responder model")
        return LMResponderFactory(os.fspath(model), kwargs)

    def reset(self, problem: Problem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.turns_taken = 0
        # One seed per episode, drawn from the env's RNG, keeps sampling reproducible.
        self.seed = int(rng.integers(2**31))
        if self.judge is not None:
            self.judge.reset(problem, rng)

    def respond(self, turns: Sequence[Turn]) -> Reply:
        if self.problem is None:
            raise RuntimeError("LMResponder.respond() before reset(); reset it first.")
        self.turns_taken += 1
        verdict = self.judge.respond(turns) if self.judge is not None else None
        text = self._generate(turns, verdict.text if verdict is not None else None)
        if not text:
            # A model that says nothing would stall the conversation; the judge's words
            # (or a neutral line) keep it going.
            text = verdict.text if verdict is not None else "ok."
        if verdict is not None:
            return Reply(text, done=verdict.done, outcome=verdict.outcome)
        return Reply(text, done=self.turns_taken >= self.max_turns)

    def _generate(self, turns: Sequence[Turn], meaning: str | None) -> str:
        import torch

        assert self.problem is not None
        tok = self.tokenizer
        # Turn texts are encoded as plain text: an agent that writes "<user>" mid-turn must
        # not open a fake user turn in the prompt the user's model reads.
        ids = encode_plain(tok, self.persona(self.problem))
        for turn in turns:
            marker = self.chat.user_ids if turn.role == "user" else self.chat.agent_ids
            ids += [*marker, *encode_plain(tok, turn.text), self.chat.eot_id]
        ids += list(self.chat.user_ids)
        if self.paraphrase and meaning:
            # Begins the user's turn with its intended meaning in brackets.
            ids += encode_plain(tok, f"({meaning})")
        limit = int(getattr(self.model.config, "n_positions", 0) or
                    getattr(self.model.config, "max_position_embeddings", 1024))  # fmt: skip
        ids = ids[-max(limit - self.max_new_tokens, 1) :]
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": self.chat.eot_id,
            "pad_token_id": self.chat.pad_id,
            "attention_mask": torch.ones_like(input_ids),
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seed + self.turns_taken)
            out = self.model.generate(input_ids, **kwargs)
        new = out[0, len(ids) :].tolist()
        if self.chat.eot_id in new:
            new = new[: new.index(self.chat.eot_id)]
        text = tok.decode(new, skip_special_tokens=True)
        # Tokenizers without turn markers write "\nAgent:" next; the reply ends there.
        return " ".join(text.split("\n")[0].split())


@dataclass(frozen=True)
class LMResponderFactory:
    """Builds an :class:`LMResponder` around a task's scripted judge (picklable)."""

    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, judge: Responder | None = None) -> LMResponder:
        return LMResponder(self.model, judge=judge, **self.kwargs)
