"""Build textgym's open default tokenizer: ``python -m textgym.tools.build_open_tokenizer``.

Tasks whose text is open (``Task.open_text``: reasoning-gym's generators, your own data) use
this tokenizer unless given another. It is a byte-level BPE, so it spells any text, with a
small vocabulary (4,096) trained with the ``tokenizers`` library on the text it will meet:
problems and gold answers of every reasoning-gym generator, the suite's own tasks, and the
answer formats the families state. Digits are split one per token, as the suite's closed
tokenizer does, so numbers of any size are spelt the same way. Turns are laid out in ChatML
(``<|im_start|>user ... <|im_end|>``), the layout of Qwen and SmolLM.

The build is deterministic: the corpus comes from seeded generators in a fixed order (under
``PYTHONHASHSEED=0``, as a few reasoning-gym generators iterate sets of strings), and the
trainer is given it in that order. It writes ``textgym/data/open_tokenizer/``
(``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``); the shipped files
were built with reasoning-gym 0.1.25 and tokenizers 0.23.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textgym.core import OPEN_TOKENIZER_PATH
from textgym.envs.external.answers import DEFAULT_INSTRUCTION, AnswerTemplate
from textgym.rewards.math_verify import require
from textgym.tasks import task_corpus

VOCAB_SIZE = 4096
#: Items drawn from each reasoning-gym generator (index 0..N-1, seed 0).
ITEMS_PER_GENERATOR = 40
PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]
#: ChatML: every message as ``<|im_start|>role\\n`` text ``<|im_end|>\\n``; the generation
#: prompt opens an assistant message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: Answer formats and math the families and their users write.
FORMATS = (
    "answer: {answer}",
    "<answer>{answer}</answer>",
    "\\boxed{{answer}}",
    "#### {answer}",
)
EXTRA_TEXT = (
    "I don't know.",
    "\\frac{1}{2} \\sqrt{2} x^{2} + 2x + 1 = (x+1)^2 \\pi \\cdot \\times \\left( \\right) $5$",
    "Natalia sold clips to 48 of her friends in April. How many clips did she sell?\n"
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
    "system user assistant",
)


def reasoning_gym_corpus(per_generator: int = ITEMS_PER_GENERATOR) -> Iterator[str]:
    """Questions and gold answers of every reasoning-gym generator, in name order."""
    rg = require("reasoning_gym", "Building the open tokenizer")
    for name in sorted(rg.factory.DATASETS):
        if name == "composite":
            continue
        generator = rg.create_dataset(name, seed=0, size=max(per_generator, 1))
        for index in range(per_generator):
            item = generator[index]
            yield str(item["question"])
            if item.get("answer") is not None:
                yield AnswerTemplate().render(str(item["answer"]))


def corpus(per_generator: int = ITEMS_PER_GENERATOR) -> list[str]:
    """The training text, in a fixed order."""
    texts = list(reasoning_gym_corpus(per_generator))
    texts += task_corpus()
    for form in FORMATS:
        template = AnswerTemplate(form)
        texts.append(DEFAULT_INSTRUCTION.replace("{format}", template.shown()))
        texts.append(template.render("42"))
    texts += EXTRA_TEXT
    return texts


def build(texts: list[str], vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE over ``texts`` as a ``PreTrainedTokenizerFast`` with ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        padding_side="right",
        model_max_length=32_768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def main(out: Path = OPEN_TOKENIZER_PATH) -> None:
    """Build the tokenizer and write it to ``out`` (the shipped directory by default)."""
    texts = corpus()
    tokenizer = build(texts)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    digest = hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest()[:16]
    print(f"wrote {out} ({len(tokenizer)} tokens from {len(texts)} texts; sha256 {digest})")


def _with_fixed_hash_seed() -> None:
    """Run this module again under ``PYTHONHASHSEED=0`` unless it already is."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Some generators iterate sets of strings, whose order follows the hash seed: the
        # corpus (and so the vocabulary) is only reproducible under a fixed one.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        module = "textgym.tools.build_open_tokenizer"
        os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], env)


if __name__ == "__main__":
    _with_fixed_hash_seed()
    main()
