"""The embedded default tokenizer and :func:`load_tokenizer`.

The default tokenizer is a real :class:`transformers.PreTrainedTokenizerFast`, built with the
``tokenizers`` library over the closed vocabulary of the built-in tasks and shipped as package
data (``textgym/data/tokenizer``), so nothing is downloaded. Its rules:

* words are whole tokens with a leading ``▁`` marking the space before them (``▁apples``);
* every digit is its own token, so numbers of any size are spelled digit by digit;
* punctuation is split off (``answer:`` is ``▁answer`` + ``:``);
* special tokens: ``<pad>``, ``<eot>`` (end of turn, also the eos token), ``<unk>``, and the
  turn markers ``<user>`` and ``<agent>``.

The vocabulary is an append-only ledger of :data:`VOCAB_SIZE` ids. Each family owns its
words (``data/words/<task name>.txt``, beside the shared ``common.txt``, plus the texts its
task produces); the ids in use are the shipped tokenizer's, and the rest are spare
``<reserved_k>`` slots. A rebuild keeps every id it finds and gives a new word the lowest
spare slot, so adding a word to one family changes no env's action space (every env keeps
``Discrete(VOCAB_SIZE)``) and no existing token's id: the shipped model, whose vocabulary
ends where the spares begin, still acts in every env whose text it can spell. Spare ids
spell no text (no text encodes to them) and no env's action mask allows them.

Rebuild it after changing a family's words or wording with ``python -m textgym.tokenizer``;
the build is deterministic, so the same words always give the same ids.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from textgym import hub
from textgym.chat import AGENT, USER, ChatFormat, TokenizerError, encode_plain
from textgym.hub import HubError, ModelLoadError, ModelPathError

DEFAULT_TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer"
#: Each family's words, ``<task name>.txt``, and the words every family shares, ``common.txt``.
WORDS_DIR = Path(__file__).parent / "data" / "words"
#: Every default-tokenizer env has ``Discrete(VOCAB_SIZE)`` actions, whatever words it uses.
VOCAB_SIZE = 2048
#: A spare id's token: a slot for a future word. No text encodes to it (the pre-tokenizer
#: splits ``<`` off), so it only appears where an agent writes it.
RESERVED = "<reserved_{}>"
_RESERVED = re.compile(r"<reserved_\d+>")

PAD, EOT, UNK = "<pad>", "<eot>", "<unk>"
SPECIAL_TOKENS = (PAD, EOT, UNK, USER, AGENT)
#: The default tokenizer's chat template: ``<user>`` text ``<eot>``, ``<agent>`` text
#: ``<eot>``, and ``<agent>`` as the generation prompt. It reproduces the marker layout token
#: for token; a system message leads the first user message (``<user>system prompt<eot>``).
CHAT_TEMPLATE = (
    "{%- set system = messages[0]['content'] + ' ' if messages and messages[0]['role'] == "
    "'system' else '' -%}"
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{%- if message['role'] == 'user' -%}"
    "<user>{% if loop.first %}{{ system }}{% endif %}{{ message['content'] }}<eot>"
    "{%- else -%}<agent>{{ message['content'] }}<eot>{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<agent>{%- endif -%}"
)
SPACE = "\u2581"  # "▁", the metaspace marker
PUNCTUATION = list(".,:;?!'\"()[]{}=+-*/%$#@&<>_|~^`\\")


class TokenizerLoadError(TokenizerError, ModelLoadError):
    """A tokenizer could not be loaded: a missing path, an unreachable hub, a bad directory.

    Both a :class:`TokenizerError` (``ValueError``) and a
    :class:`~textgym.hub.ModelLoadError` (``OSError``), so callers catching either still do.
    """


class TokenizerPathError(TokenizerLoadError, ModelPathError):
    """No tokenizer at a local path: it does not exist (a ``FileNotFoundError`` too)."""


class TokenizerHubError(TokenizerLoadError, HubError):
    """A tokenizer's hub name could not be loaded (an unreachable hub, an unknown name)."""


def _tokenizer_error(exc: ModelLoadError) -> TokenizerLoadError:
    """The tokenizer family's error for what :mod:`textgym.hub` raised, of the same kind."""
    kind = (
        TokenizerPathError
        if isinstance(exc, ModelPathError)
        else TokenizerHubError
        if isinstance(exc, HubError)
        else TokenizerLoadError
    )
    return kind(str(exc))


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


class VocabularyFullError(TokenizerError):
    """A rebuild needs more ids than the ledger's spare slots hold."""


def build_tokenizer(
    texts: Iterable[str],
    words: Iterable[str] = (),
    previous: Mapping[str, int] | None = None,
    size: int | None = None,
) -> Any:
    """Build a word-level fast tokenizer whose vocabulary covers ``texts`` exactly.

    Args:
        texts: Every string the tokenizer must encode without ``<unk>`` (prompts, turns,
            replies). Their pre-tokenized pieces become the vocabulary.
        words: Extra words, each added both with and without the leading space marker, so
            an agent can use them anywhere.
        previous: The vocabulary to extend (the shipped one, for a rebuild): its ids are
            kept, pieces no longer used included, and new pieces take its spare
            ``<reserved_k>`` ids, lowest first, in sorted order. ``None`` builds from
            scratch: the special tokens, then the pieces in sorted order.
        size: How many ids the vocabulary has; those no piece uses are spare slots.
            Default: :data:`VOCAB_SIZE` when extending ``previous`` (the ledger), else
            exactly the pieces (a tokenizer of your own, without spare slots).

    Returns:
        A :class:`transformers.PreTrainedTokenizerFast` with pad, eos (= end of turn), unk
        and the two turn-marker special tokens.

    Raises:
        VocabularyFullError: the pieces need more than ``size`` ids.
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
    kept = {t: i for t, i in (previous or {}).items() if not _RESERVED.fullmatch(t)}
    base = kept if previous is not None else {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    new = sorted(pieces - set(base) - set(SPECIAL_TOKENS))
    if size is None:
        size = VOCAB_SIZE if previous is not None else len(base) + len(new)
    spare = sorted(set(range(size)) - set(base.values()))
    if len(new) > len(spare) or any(i >= size for i in base.values()):
        raise VocabularyFullError(
            f"The vocabulary needs {len(base) + len(new)} ids but has {size} "
            f"({len(spare)} spare, {len(new)} new pieces: {', '.join(new[:5])}...). Raise "
            "textgym.tokenizer.VOCAB_SIZE (every env's action space grows with it) and "
            "rebuild the default model (python -m agents.lm.build_default_model)."
        )
    vocab = dict(base)
    vocab.update(zip(new, spare[: len(new)], strict=True))
    for k, i in enumerate(spare[len(new) :]):
        vocab[RESERVED.format(k)] = i
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = pre
    backend.decoder = dec
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOT,
        unk_token=UNK,
        additional_special_tokens=[USER, AGENT],
        padding_side="right",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# What a saved tokenizer leaves in its directory (fast, BPE, WordPiece, SentencePiece).
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)


def has_tokenizer(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local directory holding a saved tokenizer (a model directory
    written by ``save_pretrained`` with its tokenizer, say)."""
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in _TOKENIZER_FILES)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str) -> Any:
    # Imported here: transformers takes seconds to import; tabular users never load one.
    from transformers import AutoTokenizer

    if Path(name).is_dir() and not has_tokenizer(name):
        # Some transformers releases (5.0) load a directory without tokenizer files as a
        # two-token default tokenizer instead of failing: refuse it here, for every release.
        raise TokenizerLoadError(
            f"Could not load the tokenizer from {name!r}: the directory holds none of "
            f"{', '.join(_TOKENIZER_FILES)}. Pass a directory written by "
            "`tokenizer.save_pretrained(dir)`, a hub name, or None for textgym's default."
        )
    try:
        return hub.from_pretrained(AutoTokenizer, name, "tokenizer", hint=_HINT)
    except ModelLoadError:
        fast = _fast_tokenizer_from_files(Path(name))
        if fast is None:
            raise
        return fast


def _fast_tokenizer_from_files(path: Path) -> Any:
    """A plain fast tokenizer rebuilt from ``tokenizer.json`` + ``tokenizer_config.json``, or
    ``None`` when ``path`` is not such a directory.

    transformers 5 saves a plain fast tokenizer (textgym's default among them) with
    ``tokenizer_class: TokenizersBackend`` and its extra special tokens as a list; transformers
    4 knows neither, and ``AutoTokenizer`` fails on it. The files hold everything needed, so
    the tokenizer is rebuilt from them: the same vocabulary, rules and special tokens.
    """
    from transformers import PreTrainedTokenizerFast

    config_file, tokenizer_file = path / "tokenizer_config.json", path / "tokenizer.json"
    if not (config_file.is_file() and tokenizer_file.is_file()):
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("tokenizer_class") != "TokenizersBackend":
        return None
    kwargs = {k: config[k] for k in _FAST_KEYS if isinstance(config.get(k), (str, int, bool))}
    extra = config.get("extra_special_tokens", config.get("additional_special_tokens"))
    if isinstance(extra, list) and all(isinstance(t, str) for t in extra):
        kwargs["additional_special_tokens"] = extra
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), **kwargs)
    except Exception:  # noqa: BLE001 - tokenizers raises a bare Exception on a bad file
        return None  # the caller re-raises transformers' own error


#: Settings of ``tokenizer_config.json`` that a plain fast tokenizer takes as they are.
_FAST_KEYS = (
    "pad_token", "eos_token", "unk_token", "bos_token", "sep_token", "cls_token", "mask_token",
    "padding_side", "truncation_side", "model_max_length", "clean_up_tokenization_spaces",
)  # fmt: skip


#: Completes the missing-path message of :func:`textgym.hub.resolve`.
_HINT = " (e.g. `tokenizer.save_pretrained(dir)`), None for textgym's default tokenizer,"


def load_tokenizer(name_or_path: str | os.PathLike[str] | None = None) -> Any:
    """Load a tokenizer by local path or hub name; ``None`` gives the embedded default.

    Loading goes through :func:`textgym.hub.from_pretrained` (``AutoTokenizer``) for every
    source, so the default, a local directory and a hub name take the same code path and
    the same rule (see :mod:`textgym.hub`). Results are cached per name, which keeps creating
    many envs cheap.

    Raises:
        TokenizerLoadError: the path does not exist, the hub could not be reached or has no
            such tokenizer, or the directory holds no tokenizer.
    """
    source = DEFAULT_TOKENIZER_PATH if name_or_path is None else name_or_path
    try:
        # Resolved before the cache, so that "x" and "./x" share one entry.
        return _load_cached(hub.resolve(source, "tokenizer", hint=_HINT).name)
    except ModelLoadError as exc:
        raise _tokenizer_error(exc) from exc


def spare_ids(tokenizer_or_vocab: Any) -> list[int]:
    """The spare ``<reserved_k>`` ids of a tokenizer or its ``get_vocab()`` (none for most
    tokenizers)."""
    vocab = tokenizer_or_vocab
    if not isinstance(vocab, Mapping):
        try:
            vocab = vocab.get_vocab()
        except (AttributeError, TypeError, ValueError):
            return []
    # The prefix test first: a hub tokenizer has 100k+ tokens and none of them spare.
    return sorted(
        i for t, i in vocab.items() if t.startswith("<reserved_") and _RESERVED.fullmatch(t)
    )


def words_size(tokenizer: Any) -> int:
    """How many ids a model for ``tokenizer`` needs: up to its last id that is not spare."""
    vocab = tokenizer.get_vocab()
    spare = set(spare_ids(vocab))
    return 1 + max(i for i in vocab.values() if i not in spare)


def vocab_digest(tokenizer: Any, size: int | None = None) -> str:
    """A short hash of the tokens of ids ``< size`` (default :func:`words_size`): what a
    model built for the tokenizer must agree on."""
    size = words_size(tokenizer) if size is None else size
    vocab = sorted((t, i) for t, i in tokenizer.get_vocab().items() if i < size)
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def default_tokenizer() -> Any:
    """The embedded default tokenizer (shipped as package data, no network)."""
    return load_tokenizer(None)


__all__ = [
    "CHAT_TEMPLATE",
    "ChatFormat",
    "TokenizerError",
    "TokenizerLoadError",
    "RESERVED",
    "VOCAB_SIZE",
    "VocabularyFullError",
    "build_tokenizer",
    "default_tokenizer",
    "encode_plain",
    "has_tokenizer",
    "load_tokenizer",
    "spare_ids",
    "vocab_digest",
    "vocabulary_words",
    "words_size",
]


def corpus() -> list[str]:
    """Every string the built-in tasks can produce, gathered from the task registry."""
    # Imported on use: `import textgym` loads this module before the task families, which
    # are only complete once the package is; the corpus is needed to rebuild the vocabulary.
    from textgym.tasks import task_corpus

    return task_corpus()


def vocabulary_words(names: Iterable[str] | None = None) -> list[str]:
    """The shared words and each family's (``data/words``): every family's by default."""
    if names is None:
        from textgym.tasks import TASKS

        names = TASKS
    files = [WORDS_DIR / "common.txt", *(WORDS_DIR / f"{name}.txt" for name in names)]
    return [w for f in files if f.is_file() for w in f.read_text(encoding="utf-8").split()]


def rebuild(previous: Mapping[str, int] | None = None) -> Any:
    """The default tokenizer rebuilt from the task suite on the ``previous`` ledger (the
    shipped vocabulary unless given), so every id in use keeps its meaning."""
    if previous is None:
        previous = default_tokenizer().get_vocab()
    return build_tokenizer(corpus(), vocabulary_words(), previous)


def main() -> None:
    """Rebuild the shipped default tokenizer from the task suite (deterministic)."""
    tok = rebuild()
    DEFAULT_TOKENIZER_PATH.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(DEFAULT_TOKENIZER_PATH))
    spare = len(spare_ids(tok))
    print(f"wrote {DEFAULT_TOKENIZER_PATH} ({len(tok)} ids, {spare} of them spare)")


if __name__ == "__main__":
    main()
