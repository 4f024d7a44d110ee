"""Dataset: a single-turn task over your own rows of prompts and gold answers.

``gym.make("textgym/Dataset-v0", data="train.jsonl")`` turns each row's ``prompt`` into an
episode whose gold answer is its ``answer``; GSM8K's ``reasoning... #### 42`` answers count
as ``42``. The agent answers in the format the prompt states (``answer: X`` by default), and
the answer is judged by :func:`~textgym.rewards.math_verify.answers_match`: math by
math-verify (``1/2``, ``0.5`` and ``\\frac{1}{2}`` agree), other text exactly.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from textgym.envs.external.answers import (
    DEFAULT_INSTRUCTION,
    DEFAULT_TEMPLATE,
    AnswerTemplate,
    GradedCorrectness,
    instruction_text,
    reward_spec,
    with_instruction,
)
from textgym.envs.external.budgets import sampled_budgets
from textgym.envs.external.rows import Rows, check_columns, read_rows, read_splits, source_name
from textgym.errors import ConfigError
from textgym.rewards.math_verify import (
    Judge,
    answers_match,
    check_judge,
    looks_like_math,
    require,
    resolve_judge,
)
from textgym.rewards.registry import register_reward
from textgym.tasks.base import Task
from textgym.tasks.checks import ConfigTypeError, check_int, check_real, describe
from textgym.tasks.splits import SPLITS, Split, check_split, split_of
from textgym.types import Problem, RewardContext, Turn

#: GSM8K's marker before the final answer of a worked solution.
GSM8K_MARKER = "####"


#: Rows whose prompts (and answers) size the budgets: the longest ones, by characters.
MEASURED_ROWS = 2_000


class MissingDataError(ConfigError):
    """``textgym/Dataset-v0`` was made without ``data=``."""


def gold_answer(value: Any, where: str) -> str:
    """The gold answer in a row's answer cell: its text, or what follows GSM8K's ``####``.

    Raises:
        ConfigError: the cell is empty, or holds no answer after ``####``.
    """
    if value is None or isinstance(value, (dict, list)):
        raise ConfigError(f"{where} is {describe(value)}; an answer must be text or a number.")
    text = str(value).strip()
    if GSM8K_MARKER in text:
        text = text.rpartition(GSM8K_MARKER)[2].strip()
    if not text:
        raise ConfigError(f"{where} holds no answer ({describe(value)}).")
    return text


class AnswerMatch(GradedCorrectness):
    """Correctness against a data set's gold answer (registered as ``answer_match``):
    +1 right, 0 for "I don't know", -0.5 wrong, missing or truncated.

    Args:
        judge: ``"auto"`` (math-verify for math answers, exact text otherwise), ``"math"``,
            ``"exact"`` or ``"numeric"``; see :mod:`textgym.rewards.math_verify`.
        template, correct, abstain, wrong: As in :class:`GradedCorrectness`.
    """

    name = "answer_match"

    def __init__(self, template: str = DEFAULT_TEMPLATE, *, judge: str = "auto", **kw: Any) -> None:
        super().__init__(template, **kw)
        self.judge: Judge = check_judge(judge)

    def grade(self, answer: str, ctx: RewardContext) -> float:
        return float(ctx.answer is not None and answers_match(ctx.answer, answer, self.judge))


register_reward("answer_match", AnswerMatch)


def _frozen(value: Any) -> Any:
    """A cell as immutable metadata (infos must not share mutable objects): lists become
    tuples, dicts tuples of ``(key, value)`` pairs."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    return value


class _Rows:
    """A split's rows, ready to become problems, with a short repr (the env caches fitted
    budgets by the task's attributes, and a repr of every prompt would be slow)."""

    def __init__(self, source: str, prompts: list[str], golds: list[str], extras: Rows) -> None:
        self.source, self.prompts, self.golds, self.extras = source, prompts, golds, extras
        digest = hashlib.sha256()
        for prompt, gold in zip(prompts, golds, strict=True):
            digest.update(f"{len(prompt)}:{prompt}{len(gold)}:{gold}".encode())
        self.digest = digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        return f"_Rows({self.source!r}, n={len(self)}, sha256={self.digest})"


@functools.lru_cache(maxsize=64)
def _budgets(prompts: tuple[str, ...], turns: tuple[str, ...]) -> tuple[int, int]:
    # Cached: a vector env builds one task per sub-env over the same rows. Token counts
    # follow the length in characters closely, so the longest texts stand for a large set.
    return sampled_budgets(_longest(prompts), _longest(turns))


def _longest(texts: Sequence[str]) -> list[str]:
    return sorted(texts, key=len, reverse=True)[:MEASURED_ROWS]


class DatasetTask(Task):
    """Prompts and gold answers from data, as a single-turn task.

    ## Description
    Each episode is one row of the split: its prompt, then the sentence stating the answer
    format. The agent may reason first and must end with the answer in the format (``answer:
    X`` by default); ``I don't know`` abstains. Splits come from the data (a DatasetDict or a
    dict of sources by split, or a ``split`` column), else from a seeded hash of the prompt
    (``test_fraction`` of the prompts are held out), so equal prompts share a split.

    ## Observation Space / Action Space
    The :class:`~textgym.core.TextEnv` ones, over textgym's open byte-level tokenizer by
    default (``open_text``). Budgets fit the longest prompts and gold answers of all the rows.

    The other columns of a row are its problem's metadata (``info["metadata"]``), frozen:
    lists become tuples, dicts tuples of ``(key, value)`` pairs.

    ## Rewards
    ``answer_match + 0.1*answer_format``: +1 right (math-verify for math answers, exact text
    otherwise; ``judge=`` chooses), 0 abstain, -0.5 wrong, missing or truncated, plus 0.1 for
    an answer in the format or an abstention. ``reward=`` replaces it, as everywhere.

    ## Episode End
    One turn. ``info["success"]``: the answer matches the gold one.

    ## Registered Configurations
    ``textgym/Dataset-v0`` (needs ``data=``).

    ## Version History
    * v0: initial release.

    Args:
        data: A JSONL / JSON / CSV / Parquet path, a list of dicts, a ``datasets.Dataset``,
            or a ``datasets.DatasetDict`` / dict of those by split (``"train"``, ``"test"``).
        prompt_key: The column of the prompts.
        answer_key: The column of the gold answers (GSM8K's ``... #### 42`` gives ``42``).
        split: ``"train"`` or ``"test"``.
        split_key: The column that names each row's split, if the data has one.
        test_fraction: Share of prompts held out for ``"test"`` when the data has no splits.
        seed: Seeds the hash split (another seed holds out other prompts).
        judge: ``"auto"``, ``"math"``, ``"exact"`` or ``"numeric"``.
        answer_format: The answer template, with one ``{answer}`` slot.
        instruction: The sentence stating the format (``{format}`` shows the template with
            ``X``); ``None`` adds none (when the prompts state it already).
    """

    name = "dataset"
    open_text = True
    #: The default reward with the default arguments (an instance writes its own).
    reward_spec = "answer_match + 0.1*answer_format"

    def __init__(
        self,
        data: Any = None,
        *,
        prompt_key: str = "prompt",
        answer_key: str = "answer",
        split: Split = "train",
        split_key: str = "split",
        test_fraction: float = 0.2,
        seed: int = 0,
        judge: str = "auto",
        answer_format: str = DEFAULT_TEMPLATE,
        instruction: str | None = DEFAULT_INSTRUCTION,
    ) -> None:
        if data is None:
            raise MissingDataError(
                "textgym/Dataset-v0 needs data=: a JSONL / JSON / CSV / Parquet path, a list "
                "of dicts or a datasets.Dataset, e.g. gym.make('textgym/Dataset-v0', "
                "data='train.jsonl', prompt_key='question', answer_key='answer')."
            )
        for arg, value in (("prompt_key", prompt_key), ("answer_key", answer_key),
                           ("split_key", split_key)):  # fmt: skip
            if not isinstance(value, str):
                raise ConfigTypeError(f"{arg} must be a column name (str), got {describe(value)}.")
        self.split = check_split(split)
        self.test_fraction = check_real(test_fraction, "test_fraction", 0.0, 1.0)
        self.seed = check_int(seed, "seed", 0)
        self.judge: Judge = check_judge(judge)
        self.template = AnswerTemplate(answer_format)
        self.instruction = instruction_text(instruction, self.template)
        self.prompt_key, self.answer_key, self.split_key = prompt_key, answer_key, split_key
        source = source_name(data)
        keys = {"prompt_key": prompt_key, "answer_key": answer_key}
        by_split = read_splits(data)
        if by_split is not None:
            for name, rows in by_split.items():
                check_columns(rows, keys, f"{source}[{name!r}]")
            if split not in by_split:
                raise ConfigError(
                    f"data has no {split!r} split; its splits are {sorted(by_split)}. Give "
                    f"data={{'train': ..., 'test': ...}}, or one source to split by hash."
                )
            every = [row for rows in by_split.values() for row in rows]
            mine = by_split[split]
        else:
            every = read_rows(data)
            check_columns(every, keys, source)
            mine = self._rows_in_split(every, source)
        self.rows = self._prepare(mine, source)
        everything = self._prepare(every, source)
        self._check_math_verify(everything.golds)
        self.reward_spec = reward_spec(
            "answer_match", self.template, **({} if judge == "auto" else {"judge": judge})
        )
        # Both splits' rows size the budgets: a train and a test env get the same spaces.
        self.max_length, self.max_new_tokens = _budgets(
            tuple(everything.prompts), tuple(self.template.render(g) for g in everything.golds)
        )

    def _rows_in_split(self, rows: Rows, source: str) -> Rows:
        """The rows of this split: by the split column if every row has one, else by hash."""
        if all(self.split_key in row for row in rows):
            values = {str(row[self.split_key]) for row in rows}
            if not values & set(SPLITS):
                raise ConfigError(
                    f"{source}'s {self.split_key!r} column holds {sorted(values)[:10]}, none of "
                    f"them 'train' or 'test'; rename its splits or pass split_key= another "
                    "column (a missing column means a hash split)."
                )
            mine = [row for row in rows if str(row[self.split_key]) == self.split]
            where = f"with {self.split_key} == {self.split!r}"
        else:
            mine = [
                row
                for row in rows
                if split_of(f"{self.seed}|{row[self.prompt_key]}", self.test_fraction) == self.split
            ]
            where = (
                f"in the hash split {self.split!r} (test_fraction={self.test_fraction}, "
                f"seed={self.seed}, {len(rows)} rows)"
            )
        if not mine:
            raise ConfigError(
                f"{source} has no rows {where}. Add rows, change test_fraction, or give the "
                f"data a {self.split_key!r} column."
            )
        return mine

    def _prepare(self, rows: Rows, source: str) -> _Rows:
        prompts, golds, extras = [], [], []
        for i, row in enumerate(rows):
            prompt = row[self.prompt_key]
            if not isinstance(prompt, str) or not prompt.strip():
                raise ConfigError(
                    f"{source} row {i}: the prompt ({self.prompt_key!r}) is {describe(prompt)}; "
                    "prompts must be non-empty text."
                )
            prompts.append(with_instruction(prompt, self.instruction))
            golds.append(
                gold_answer(row[self.answer_key], f"{source} row {i} ({self.answer_key!r})")
            )
            extras.append(
                {
                    k: _frozen(v)
                    for k, v in row.items()
                    if k not in (self.prompt_key, self.answer_key)
                }
            )
        return _Rows(source, prompts, golds, extras)

    def _check_math_verify(self, golds: Sequence[str]) -> None:
        if self.judge == "math" or (self.judge == "auto" and any(map(looks_like_math, golds))):
            require("math_verify", "Judging math answers (judge='auto' found math ones)")

    def sample(self, rng: np.random.Generator) -> Problem:
        i = int(rng.integers(len(self.rows)))
        rows = self.rows
        prompt, gold = rows.prompts[i], rows.golds[i]
        metadata: dict[str, Any] = {
            **rows.extras[i],
            "index": i,
            "split": self.split,
            "source": rows.source,
            "judge": resolve_judge(self.judge, gold),
        }
        return Problem(prompt, gold, metadata, id=f"{zlib.crc32(prompt.encode()):08x}|{i}")

    def success(self, ctx: RewardContext) -> bool:
        answer = None if ctx.truncated else self.template.extract(ctx.text)
        return (
            answer is not None
            and ctx.answer is not None
            and answers_match(ctx.answer, answer, self.judge)
        )

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        return self.template.render(problem.answer or "")

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """An annotator's slip: another row's answer."""
        other = self.rows.golds[int(rng.integers(len(self.rows)))]
        return self.template.render(other) if other != problem.answer else text


__all__ = ["GSM8K_MARKER", "AnswerMatch", "DatasetTask", "MissingDataError", "gold_answer"]
