"""Tokenizers unlike textgym's default, built offline with the ``tokenizers`` library.

* :func:`chatml_bpe`: a byte-level BPE with a ChatML chat template (``<|im_start|>user ...
  <|im_end|>``), the layout of Qwen and SmolLM: the realistic case for a user's model.
* :func:`wordpiece`: a BERT-style WordPiece (lower-casing, ``##`` continuations) without a
  chat template, so the env lays turns out with text markers.

Both are trained on the built-in tasks' text, small (a few hundred merges), and cached.
"""

from __future__ import annotations

import functools
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from textgym.tasks import task_corpus

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: A reasoning-style template that drops earlier assistant turns' <think> blocks and writes an
#: empty one for past turns: it rewrites the context, so textgym must refuse it.
REWRITING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'] + "
    "'<|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@functools.cache
def _corpus() -> tuple[str, ...]:
    return tuple(task_corpus())


@functools.cache
def chatml_bpe() -> Any:
    """A byte-level BPE (GPT-2 rules) with ChatML special tokens and template."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


@functools.cache
def wordpiece() -> Any:
    """A lower-casing WordPiece (BERT rules), no chat template, ``[SEP]`` as eos."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=700, special_tokens=specials, show_progress=False
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[SEP]",
        cls_token="[CLS]",
        clean_up_tokenization_spaces=True,
    )
