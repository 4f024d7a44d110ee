"""The shipped tokenizer covers every task's text, and rebuilding it changes nothing."""

from __future__ import annotations

import textgym
from textgym.tokenizer import WORDS_PATH, build_tokenizer, corpus


def test_rebuild_gives_the_shipped_vocabulary() -> None:
    shipped = textgym.default_tokenizer().get_vocab()
    rebuilt = build_tokenizer(corpus(), WORDS_PATH.read_text().split()).get_vocab()
    assert rebuilt == shipped, "run `python -m textgym.tokenizer` and commit the result"


def test_corpus_has_no_unknown_words() -> None:
    tok = textgym.default_tokenizer()
    for text in corpus():
        assert tok.unk_token_id not in tok.encode(text, add_special_tokens=False), text
