"""The embedded default tokenizer and :func:`load_tokenizer`.

The default tokenizer is a real :class:`transformers.PreTrainedTokenizerFast`, built with the
``tokenizers`` library over the closed vocabulary of the built-in tasks and shipped as package
data (``textgym/data/tokenizer``), so nothing is downloaded. Its rules:

* words are whole tokens with a leading ``▁`` marking the space before them (``▁apples``);
* every digit is its own token, so numbers of any size are spelled digit by digit;
* punctuation is split off (``answer:`` is ``▁answer`` + ``:``);
* special tokens: ``<pad>``, ``<eot>`` (end of turn, also the eos token), ``<unk>``, and the
  turn markers ``<user>`` and ``<agent>``.

Rebuild it after changing a task's wording with ``python -m textgym.tokenizer``; the build is
deterministic (sorted vocabulary), so the same tasks always give the same ids.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer"
WORDS_PATH = Path(__file__).parent / "data" / "words.txt"

PAD, EOT, UNK, USER, AGENT = "<pad>", "<eot>", "<unk>", "<user>", "<agent>"
SPECIAL_TOKENS = (PAD, EOT, UNK, USER, AGENT)
SPACE = "\u2581"  # "▁", the metaspace marker
PUNCTUATION = list(".,:;?!'\"()[]{}=+-*/%$#@&<>_|~^`\\")


class TokenizerError(ValueError):
    """A tokenizer cannot drive a :class:`~textgym.core.TextEnv` as given."""


def _backend() -> Any:
    """A fresh ``tokenizers`` pipeline (without a vocabulary) with the default rules."""
    from tokenizers import decoders, pre_tokenizers

    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    dec = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    return pre, dec


def build_tokenizer(texts: Iterable[str], words: Iterable[str] = ()) -> Any:
    """Build a word-level fast tokenizer whose vocabulary covers ``texts`` exactly.

    Args:
        texts: Every string the tokenizer must encode without ``<unk>`` (prompts, turns,
            replies). Their pre-tokenized pieces become the vocabulary.
        words: Extra words, each added both with and without the leading space marker, so
            an agent can use them anywhere.

    Returns:
        A :class:`transformers.PreTrainedTokenizerFast` with pad, eos (= end of turn), unk
        and the two turn-marker special tokens.
    """
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    pre, dec = _backend()
    pieces: set[str] = {SPACE, *"0123456789"}
    for p in PUNCTUATION:
        pieces.update({p, SPACE + p})
    for w in words:
        w = w.strip()
        if w:
            pieces.update({w, SPACE + w})
    for text in texts:
        pieces.update(piece for piece, _ in pre.pre_tokenize_str(text))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for piece in sorted(pieces - set(SPECIAL_TOKENS)):
        vocab[piece] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre
    backend.decoder = dec
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOT,
        unk_token=UNK,
        additional_special_tokens=[USER, AGENT],
        padding_side="right",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


@functools.lru_cache(maxsize=8)
def _load_cached(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def load_tokenizer(name_or_path: str | os.PathLike[str] | None = None) -> Any:
    """Load a tokenizer by local path or hub name; ``None`` gives the embedded default.

    Loading goes through ``AutoTokenizer.from_pretrained`` for every source, so the default
    and a user's tokenizer take the same code path. Results are cached per name, which keeps
    creating many envs cheap.

    Raises:
        TokenizerError: the path does not exist, or the name cannot be loaded (no network).
    """
    name = str(DEFAULT_TOKENIZER_PATH if name_or_path is None else name_or_path)
    looks_like_path = os.path.sep in name or name.startswith(".") or Path(name).exists()
    if looks_like_path and not Path(name).exists():
        raise TokenizerError(
            f"No tokenizer at {name!r}: the path does not exist. Pass a directory written by "
            "`tokenizer.save_pretrained(...)`, a hub name, or None for textgym's default."
        )
    try:
        return _load_cached(name)
    except OSError as exc:
        raise TokenizerError(
            f"Could not load tokenizer {name!r}: {exc}. Without network access, pass a local "
            "directory saved with `save_pretrained`, or None for textgym's default tokenizer."
        ) from exc


def default_tokenizer() -> Any:
    """The embedded default tokenizer (shipped as package data, no network)."""
    return load_tokenizer(None)


@dataclass(frozen=True)
class ChatFormat:
    """How turns are laid out in the context for one tokenizer.

    A context reads ``<user> prompt <eot> <agent> reply <eot> <user> ... <agent>``. With a
    tokenizer that lacks the ``<user>``/``<agent>`` tokens (e.g. GPT-2) the markers are the
    encoded strings ``"\\nUser:"`` and ``"\\nAgent:"``; the end-of-turn token is the eos token.
    """

    pad_id: int
    eot_id: int
    user_ids: tuple[int, ...]
    agent_ids: tuple[int, ...]

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> ChatFormat:
        """Derive the layout, failing clearly when the tokenizer cannot end a turn or pad."""
        name = type(tokenizer).__name__
        eot = getattr(tokenizer, "eos_token_id", None)
        if eot is None:
            raise TokenizerError(
                f"The tokenizer ({name}) has no eos token, which textgym uses as the "
                "end-of-turn token. Set one, e.g. `tokenizer.eos_token = '<|endoftext|>'`."
            )
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            raise TokenizerError(
                f"The tokenizer ({name}) has no pad token, needed to pad observations to "
                "max_length. Set one, e.g. `tokenizer.pad_token = tokenizer.eos_token`."
            )
        vocab = tokenizer.get_vocab()
        if USER in vocab and AGENT in vocab:
            user, agent = (vocab[USER],), (vocab[AGENT],)
        else:
            user = tuple(tokenizer.encode("\nUser:", add_special_tokens=False))
            agent = tuple(tokenizer.encode("\nAgent:", add_special_tokens=False))
        return cls(pad_id=int(pad), eot_id=int(eot), user_ids=user, agent_ids=agent)


def corpus() -> list[str]:
    """Every string the built-in tasks can produce, gathered from the task registry."""
    from textgym.tasks import task_corpus

    return task_corpus()


def main() -> None:
    """Rebuild the shipped default tokenizer from the task suite (deterministic)."""
    words = WORDS_PATH.read_text().split() if WORDS_PATH.exists() else []
    tok = build_tokenizer(corpus(), words)
    DEFAULT_TOKENIZER_PATH.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(DEFAULT_TOKENIZER_PATH))
    print(f"wrote {DEFAULT_TOKENIZER_PATH} ({len(tok)} tokens)")


if __name__ == "__main__":
    main()
