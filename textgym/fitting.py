"""Fitting a task to the tokenizer in use: its token budgets and its action mask.

A task states its budgets (``max_length``, ``max_new_tokens``) and its allowed words in terms
of textgym's default tokenizer, which spells each word as one token. Another tokenizer spells
the same text in more tokens (a byte-level BPE splits rare words, a chat template writes
longer turn frames), so the budgets are scaled by what the task's own text costs under it:
the task's oracle plays a fixed sample of episodes as text, every turn and context is encoded
under both tokenizers, and each budget grows by the worst ratio seen, plus a margin. The
allowed words become the tokens that spell them under the tokenizer in use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from textgym.chat import ChatFormat
from textgym.episode import TextCodec
from textgym.errors import ConfigError
from textgym.tokenizer import default_tokenizer
from textgym.types import Problem, Reply, RewardContext, Turn

#: Episodes the oracle plays to measure a tokenizer (seeded: the budgets are deterministic).
SAMPLES = 128
SEED = 20_241
#: Headroom over the worst ratio seen: problems outside the sample can be a little longer.
MARGIN = 1.25
Encode = Callable[[str], list[int]]


def _oracle_lengths(
    task: Any,
    problem: Problem,
    rng: np.random.Generator,
    chat: ChatFormat,
    encode: Encode,
    system: str | None,
) -> tuple[int, int]:
    """The longest oracle turn and the whole context of one text-level episode, in tokens."""
    turns = [Turn("user", problem.prompt)]
    context = len(chat.opening_ids(system, problem.prompt, encode))
    longest = 0
    responder = task.responder()
    if responder is not None:
        responder.reset(problem, rng)
    for _ in range(max(1, int(task.max_turns))):
        text = task.oracle(problem, tuple(turns))
        turn = len(encode(text)) + 1  # and the end-of-turn token
        longest = max(longest, turn)
        context += turn
        turns.append(Turn("agent", text))
        if responder is None:
            break
        reply = responder.respond(tuple(turns))
        if not isinstance(reply, Reply) or reply.done:
            break
        turns.append(Turn("user", reply.text))
        context += len(chat.reply_ids(reply.text, encode))
    return longest, context


def scaled_budgets(
    task: Any,
    budgets: tuple[int, int],
    system: str | None,
    chat: ChatFormat,
    encode: Encode,
    default_chat: ChatFormat,
    default_encode: Encode,
) -> tuple[int, int]:
    """``(max_length, max_new_tokens)`` for a tokenizer other than the default.

    Each of the task's ``budgets`` (its ``max_length`` and ``max_new_tokens``) is multiplied by the worst ratio (this tokenizer's tokens over
    the default's) of the oracle's turns or contexts on :data:`SAMPLES` seeded episodes, times
    :data:`MARGIN`; a tokenizer that spells the task in fewer tokens keeps the task's numbers.
    """
    rng = np.random.default_rng(SEED)
    turn_ratio = context_ratio = 1.0
    for _ in range(SAMPLES):
        problem = task.sample(rng)
        seed = int(rng.integers(2**31))
        new = _oracle_lengths(task, problem, np.random.default_rng(seed), chat, encode, system)
        old = _oracle_lengths(
            task, problem, np.random.default_rng(seed), default_chat, default_encode, system
        )
        turn_ratio = max(turn_ratio, new[0] / max(1, old[0]))
        context_ratio = max(context_ratio, new[1] / max(1, old[1]))
    scale = 1.0 if turn_ratio == context_ratio == 1.0 else MARGIN
    max_new_tokens = math.ceil(budgets[1] * turn_ratio * scale)
    # The context grows at least as much as the turns it holds.
    max_length = math.ceil(budgets[0] * max(context_ratio, turn_ratio) * scale)
    return max_length, max_new_tokens


def action_mask(
    words: list[str] | None,
    vocab: dict[str, int],
    vocab_size: int,
    eot_id: int,
    encode: Encode,
    spare: Sequence[int] = (),
) -> np.ndarray:
    """The tokens the task's ``words`` need under this tokenizer, and the end of turn.

    ``words`` are default-tokenizer pieces (``"▁red"``: the word after a space). When the
    tokenizer has them all as tokens (the default), those ids are the mask. Otherwise each
    word is encoded as it can appear (first in a turn, or after a space) and every token of
    those spellings is allowed, multi-token words included: a mask is never silently all-True.
    A task without ``words`` allows every token but the tokenizer's ``spare`` ids, which
    spell nothing (:data:`textgym.tokenizer.RESERVED`).
    """
    mask = np.ones(vocab_size, dtype=bool)
    if words is None:
        mask[list(spare)] = False
        return mask
    mask[:] = False
    if all(w in vocab for w in words):
        mask[[vocab[w] for w in words]] = True
    else:
        for word in words:
            text = word.replace("\u2581", " ")
            for spelling in {text, text.strip(), " " + text.strip()}:
                if spelling:
                    ids = [i for i in encode(spelling) if 0 <= i < vocab_size]
                    mask[ids] = True
    mask[eot_id] = True
    return mask


#: Fitted budgets per (task settings, tokenizer, system prompt).
_BUDGETS: dict[tuple[Any, ...], tuple[int, int]] = {}
#: The (task settings, tokenizer) pairs whose answers were checked to survive the tokenizer.
_CHECKED: set[tuple[Any, ...]] = set()


def check_answers_survive(task: Any, codec: TextCodec, samples: int = SAMPLES) -> None:
    """Refuse a tokenizer that cannot write a single-turn task's answers.

    A lower-casing WordPiece, say, turns an unseen name into ``[UNK]``: the gold answer
    then has no spelling, and the oracle, like any agent, fails those problems. For each of
    ``samples`` seeded problems, the oracle's turn is encoded and decoded, and the decoded text
    must still pass the task's success test. Tasks of several turns are not checked (their
    success is the whole conversation's), nor are turns that come back exactly.

    Raises:
        ConfigError: a sampled answer does not survive, quoted, with the way out.
    """
    key = (_measure_key(task, codec), samples)
    if int(task.max_turns) != 1 or key in _CHECKED:
        return  # a vector env builds many equal envs: one check serves them all
    rng = np.random.default_rng(SEED)
    for _ in range(samples):
        problem = task.sample(rng)
        opening = (Turn("user", problem.prompt),)
        text = task.oracle(problem, opening)
        ids = codec.encode(text)
        written = codec.decode(ids)
        if written == text:
            continue
        turns = (*opening, Turn("agent", written))
        if not task.success(RewardContext(problem, turns, written, np.asarray(ids, np.int64))):
            raise ConfigError(
                f"The tokenizer cannot write this task's answers: the right turn {text!r} "
                f"comes back as {written!r}, which fails the task's success test. Use a "
                "byte-level BPE (this env's default tokenizer, or a chat model's), which "
                "spells any text as it is."
            )
    _CHECKED.add(key)


def _measure_key(task: Any, codec: TextCodec) -> tuple[Any, ...]:
    """What a measurement of ``task`` under ``codec``'s tokenizer depends on."""
    tokenizer = codec.tokenizer
    return (
        type(task).__qualname__,
        repr(sorted(vars(task).items())),
        id(tokenizer),
        len(tokenizer),
        getattr(tokenizer, "chat_template", None),
    )


def fitted_budgets(
    task: Any,
    budgets: tuple[int, int],
    system: str | None,
    codec: TextCodec,
) -> tuple[int, int]:
    """:func:`scaled_budgets` for an env's task and codec, cached (a vector env builds many
    equal envs, and measuring a tokenizer plays a hundred oracle episodes)."""
    chat = codec.chat
    key = (budgets, _measure_key(task, codec), system)
    if key not in _BUDGETS:
        default = default_tokenizer()
        default_chat = ChatFormat.for_tokenizer(default)
        default_codec = TextCodec(default, default_chat)
        _BUDGETS[key] = scaled_budgets(
            task, budgets, system, chat, codec.encode, default_chat, default_codec.encode
        )
    return _BUDGETS[key]
