"""ReasoningGym: any reasoning-gym generator (``pip install 'textgym[data]'``) as a task.

`reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ generates seeded problems
with verifiable answers from about a hundred generators (arithmetic, algebra, logic,
strings, games...), each with its own config dataclass and its own ``score_answer``. This
family wraps one by name, or several mixed with weights through reasoning-gym's composite
dataset, and grades the agent's answer with the generator's own scorer::

    gym.make("textgym/ReasoningGym-v0", dataset="chain_sum", min_terms=2, max_terms=3)
    gym.make("textgym/ReasoningGym-v0", dataset={"chain_sum": 2, "spell_backward": 1})

reasoning-gym is imported when a task is made, never when textgym is.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
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
from textgym.errors import ConfigError, did_you_mean
from textgym.rewards.math_verify import require
from textgym.rewards.registry import register_reward
from textgym.tasks.base import Task
from textgym.tasks.checks import ConfigTypeError, check_int, describe
from textgym.tasks.splits import Split, check_split, sample_in_split, split_of
from textgym.types import Problem, RewardContext, Turn

#: Items per generator when no ``size`` is given (reasoning-gym's own default is 500):
#: about 8,000 for ``"train"`` and 2,000 for ``"test"``.
DEFAULT_SIZE = 10_000
#: Problems drawn (with a fixed seed, from both splits) to size the token budgets.
BUDGET_SAMPLE = 32
#: Generators kept built at once (building one can take a second: word lists, ARC tasks).
MAX_GENERATORS = 32
#: Items in a row without a winnable gold answer before a generator is given up on.
MAX_SKIPPED = 100
#: Problems each generator keeps, so that redrawing an index is free.
MAX_CACHED_PROBLEMS = 50_000


def _reasoning_gym() -> Any:
    return require("reasoning_gym", "textgym/ReasoningGym-v0 (reasoning-gym's generators)")


def _config_dict(config: Any) -> dict[str, Any]:
    """A generator's config dataclass as the keyword arguments that rebuild it."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}


def generator_key(name: str, config: Mapping[str, Any]) -> str:
    """A generator's definition as one string (``chain_sum:{"max_terms": 3, ...}``): what a
    problem's metadata names its maker by, and what the caches are keyed by."""
    return f"{name}:{json.dumps(config, sort_keys=True, default=repr)}"


#: Built generators by key, most recently used last; the definitions of every generator
#: built in this process, to rebuild one the cache has let go; their items by index.
_GENERATORS: OrderedDict[str, Any] = OrderedDict()
_DEFINITIONS: dict[str, tuple[str, dict[str, Any]]] = {}
_ITEMS: dict[str, dict[int, dict[str, Any]]] = {}


def _remember(key: str, name: str, config: dict[str, Any], generator: Any) -> Any:
    _DEFINITIONS[key] = (name, config)
    _GENERATORS[key] = generator
    _GENERATORS.move_to_end(key)
    while len(_GENERATORS) > MAX_GENERATORS:
        _GENERATORS.popitem(last=False)
    return generator


def build_generator(name: str, config: Mapping[str, Any]) -> Any:
    """reasoning-gym's dataset ``name`` built with ``config`` (cached), with its errors
    turned into ones that name the generator, the argument and the fix."""
    key = generator_key(name, config)
    if key in _GENERATORS:
        _GENERATORS.move_to_end(key)
        return _GENERATORS[key]
    rg = _reasoning_gym()
    datasets = rg.factory.DATASETS
    if not isinstance(name, str) or name not in datasets:
        hint = did_you_mean(name, datasets) if isinstance(name, str) else ""
        raise ConfigError(
            f"reasoning-gym has no generator {name!r}.{hint} Known generators: {sorted(datasets)}."
        )
    fields = [f.name for f in dataclasses.fields(datasets[name][1]) if f.init]
    for arg in config:
        if arg not in fields:
            raise ConfigTypeError(
                f"reasoning-gym's {name!r} generator got an unexpected keyword argument "
                f"{arg!r}.{did_you_mean(arg, fields)} Its config takes {fields}."
            )
    given = dict(config)
    if name == "composite":
        given["datasets"] = [_dataset_spec(s) for s in given.get("datasets") or ()]
    try:
        generator = rg.create_dataset(name, **given)
    except (AssertionError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"reasoning-gym refused the config of {name!r} ({given}): {exc or type(exc).__name__}"
        ) from exc
    if name == "composite":  # its members grade their own items: known by their own keys
        for member, built in generator.datasets.items():
            member_config = _config_dict(built.config)
            _remember(generator_key(member, member_config), member, member_config, built)
    return _remember(key, name, dict(config), generator)


def generator_of(key: str) -> Any:
    """The generator a key names: cached, rebuilt from its definition, or parsed from it."""
    if key in _GENERATORS:
        _GENERATORS.move_to_end(key)
        return _GENERATORS[key]
    name, config = _DEFINITIONS.get(key) or _parse_key(key)
    return build_generator(name, config)


def _parse_key(key: str) -> tuple[str, dict[str, Any]]:
    # A problem from another process (a dataset of problems, say): its key is the definition.
    name, _, config = key.partition(":")
    return name, json.loads(config)


def item(key: str, index: int) -> dict[str, Any]:
    """Item ``index`` of the generator ``key`` names: its question, answer and metadata."""
    items = _ITEMS.setdefault(key, {})
    found = items.get(index)
    if found is None:
        found = generator_of(key)[index]
        if len(items) >= MAX_CACHED_PROBLEMS:
            items.clear()
        items[index] = found
    return found


def _dataset_spec(spec: Any) -> Any:
    """A composite member as reasoning-gym's ``DatasetSpec`` (from a dict or itself)."""
    cls = require("reasoning_gym.composite", "A reasoning-gym mix").DatasetSpec
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, Mapping) and set(spec) <= {"name", "weight", "config"} and "name" in spec:
        return cls(name=spec["name"], weight=spec.get("weight", 1.0), config=spec.get("config", {}))
    raise ConfigTypeError(
        "Each of datasets=[...] must be a dict {'name': ..., 'weight': ..., 'config': {...}} "
        f"(or reasoning-gym's DatasetSpec), got {describe(spec)}."
    )


def entry(problem: Problem) -> dict[str, Any]:
    """The reasoning-gym item a problem was made from (``question``, ``answer``,
    ``metadata``), regenerated from the generator and index its metadata names."""
    return item(problem.metadata["generator"], problem.metadata["index"])


def score(problem: Problem, answer: str | None) -> float:
    """reasoning-gym's ``score_answer`` for ``answer`` on ``problem``, in [0, 1]: the
    generator that made the problem grades it, built with the config it was made with."""
    key = problem.metadata["generator"]
    return float(generator_of(key).score_answer(answer, entry(problem)))


class ScoreAnswer(GradedCorrectness):
    """Correctness graded by the generator's own ``score_answer`` (registered as
    ``score_answer``): +1 for a full score, 0 for "I don't know", -0.5 for a zero score or
    no answer, partial credit in between. See :class:`GradedCorrectness` for the args."""

    name = "score_answer"

    def grade(self, answer: str, ctx: RewardContext) -> float:
        if "generator" not in ctx.metadata:
            raise ConfigError(
                "score_answer grades reasoning-gym problems only (their metadata names the "
                "generator); use it with textgym/ReasoningGym-v0."
            )
        return score(ctx.problem, answer)


register_reward("score_answer", ScoreAnswer)


class _Source:
    """The generator a task draws from, with a repr that is its definition (the env caches
    fitted budgets by the task's attributes) and a pickle without the built dataset."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name, self.config = name, config
        self.key = generator_key(name, config)

    @property
    def generator(self) -> Any:
        return build_generator(self.name, self.config)

    def maker(self, index: int) -> str:
        """The key of the generator that makes item ``index`` (a composite's member)."""
        if self.name != "composite":
            return self.key
        self.generator  # noqa: B018 - built (and its members known) before they are asked for
        made = item(self.key, index)
        member = made["metadata"]["source_dataset"]
        key = generator_key(member, _config_dict(self.generator.datasets[member].config))
        # The composite's item is its member's item at the same index: keep it under both.
        _ITEMS.setdefault(key, {}).setdefault(index, made)
        return key

    def __repr__(self) -> str:
        return f"_Source({self.key})"

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["config"])  # type: ignore[misc]


class _ConfigSignature:
    """``inspect.signature(ReasoningGymTask)``: its own arguments and every generator's
    config fields, so that ``gym.make(id, dataset="chain_sum", max_terms=3)`` passes the env's
    argument check and reaches the task, which checks them against the chosen generator."""

    def __get__(self, obj: Any, owner: type) -> inspect.Signature:
        return _signature(owner)


@functools.cache
def _signature(owner: type) -> inspect.Signature:
    own = list(inspect.signature(owner.__init__).parameters.values())[1:]
    params = [p for p in own if p.kind is not p.VAR_KEYWORD]
    try:
        datasets = _reasoning_gym().factory.DATASETS
    except ModuleNotFoundError:  # without the extra: the task says so when it is made
        return inspect.Signature(own)
    known = {p.name for p in params}
    fields = sorted(
        {f.name for _, cfg in datasets.values() for f in dataclasses.fields(cfg) if f.init} - known
    )
    extra = [inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY, default=None) for f in fields]
    return inspect.Signature(params + extra)


def _mix(dataset: Any) -> list[dict[str, Any]] | None:
    """The composite members of a ``dataset`` given as weights or names; ``None`` for one."""
    if isinstance(dataset, str):
        return None
    if isinstance(dataset, Mapping):
        items = list(dataset.items())
    elif isinstance(dataset, Sequence):
        items = [(name, 1.0) for name in dataset]
    else:
        raise ConfigTypeError(
            "dataset must be a generator name ('chain_sum'), a list of names, or a dict of "
            f"names to weights ({{'chain_sum': 2, 'spell_backward': 1}}), got {describe(dataset)}."
        )
    if not items or any(not isinstance(n, str) for n, _ in items):
        raise ConfigError(f"dataset must name at least one generator, got {dataset!r}.")
    return [{"name": n, "weight": w, "config": {}} for n, w in items]


class ReasoningGymTask(Task):
    """A reasoning-gym generator as a single-turn task.

    ## Description
    Each problem is one item of the generator (``dataset[index]``, the index drawn with the
    env's RNG): its question, then the sentence stating the answer format (``End your reply
    with your final answer, written as: answer: X``). The agent may reason first and must
    end with the answer in the format; ``I don't know`` abstains. ``split="train" | "test"``
    never share a question: an item's split is a hash of its question text, so equal
    questions drawn from different indices land in the same split. A few generators
    (word_ladder, isomorphic_strings, ransom_note...) iterate sets of strings, so their items
    also follow ``PYTHONHASHSEED``: fix it to get the same problems in every process.

    ## Observation Space / Action Space
    The :class:`~textgym.core.TextEnv` ones, over textgym's open byte-level tokenizer by
    default (``open_text``): the text has any characters, which the closed default vocabulary
    cannot spell. Budgets are sized on a sample of the generator's problems and fitted to the
    tokenizer; ``max_new_tokens`` leaves little room for reasoning, so raise it to reason.

    ## Rewards
    ``score_answer + 0.1*answer_format``: the generator's ``score_answer`` as calibrated
    correctness (+1 full score, 0 abstain, -0.5 zero score, missing or truncated; partial
    credit in between) plus 0.1 for an answer in the format or an abstention.

    ## Episode End
    One turn. ``info["success"]``: the generator scores the answer 1.0.

    ## Registered Configurations
    ``textgym/ReasoningGym-v0`` (``dataset=`` any generator, ``chain_sum`` by default),
    ``-Arithmetic-v0`` (products), ``-Algebra-v0`` (simple_equations), ``-Logic-v0``
    (knights_knaves), ``-Strings-v0`` (spell_backward), ``-Mix-v0`` (the four, weighted).

    ## Version History
    * v0: initial release (reasoning-gym 0.1.25).

    Args:
        dataset: A generator name (``reasoning_gym.factory.DATASETS``), ``"composite"``
            with ``datasets=[{"name", "weight", "config"}, ...]``, or a mix: a dict of names
            to weights or a list of names (equal weights).
        split: ``"train"`` or ``"test"``: disjoint sets of questions.
        config: The generator's config as a dict (the same as passing its fields as
            keyword arguments; needed for a field the env itself takes, e.g. palindrome
            generation's ``max_length``).
        seed: The generator's seed (items are a pure function of it and their index).
        size: How many items the generator has (its index range), ``DEFAULT_SIZE`` if None.
        answer_format: The answer template, with one ``{answer}`` slot.
        instruction: The sentence stating the format (``{format}`` shows the template with
            ``X``); ``None`` adds none (when the question states it already).
        **generator_config: The generator's config fields (``min_terms=2``...), checked
            against its config dataclass; ``difficulty`` comes from them.
    """

    name = "reasoning_gym"
    open_text = True
    #: The default reward with the default arguments (an instance writes its own).
    reward_spec = "score_answer + 0.1*answer_format"
    __signature__ = _ConfigSignature()

    def __init__(
        self,
        dataset: str | Sequence[str] | Mapping[str, float] = "chain_sum",
        *,
        split: Split = "train",
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        size: int | None = None,
        answer_format: str = DEFAULT_TEMPLATE,
        instruction: str | None = DEFAULT_INSTRUCTION,
        **generator_config: Any,
    ) -> None:
        self.split = check_split(split)
        self.template = AnswerTemplate(answer_format)
        self.instruction = instruction_text(instruction, self.template)
        if config is not None and not isinstance(config, Mapping):
            raise ConfigTypeError(f"config must be a dict or None, got {describe(config)}.")
        settings = {**(config or {}), **generator_config}
        for arg in ("seed", "size"):
            if arg in settings:
                raise ConfigError(f"Pass {arg}= to the task itself, not inside config.")
        seed = check_int(seed, "seed", 0, 2**32 - 1)
        size = DEFAULT_SIZE if size is None else check_int(size, "size", 1, 2**31 - 1)
        members = _mix(dataset)
        if members is not None:
            if settings:
                raise ConfigError(
                    f"Generator settings {sorted(settings)} cannot go with a mix of generators "
                    f"({dataset!r}): give each member its config with dataset='composite', "
                    "datasets=[{'name': ..., 'weight': ..., 'config': {...}}, ...]."
                )
            name, settings = "composite", {"datasets": members}
        else:
            name = dataset  # type: ignore[assignment]
        self.dataset = name
        self.source = _Source(name, {**settings, "seed": seed, "size": size})
        self._check_gold_answers()
        self.reward_spec = reward_spec("score_answer", self.template)
        self.max_length, self.max_new_tokens = self._budgets()

    def _check_gold_answers(self) -> None:
        """Build the generator now (a bad config fails at make time) and refuse one whose
        items have no gold answer: the oracle writes it, and success is scored against it."""
        generator = self.source.generator
        members = generator.datasets if self.dataset == "composite" else {self.dataset: generator}
        for member, items in members.items():
            if items[0].get("answer") is None:
                raise ConfigError(
                    f"reasoning-gym's {member!r} generator gives no gold answer (its "
                    "score_answer checks an answer without one), so this task has no oracle "
                    "for it; choose another generator."
                )

    def _budgets(self) -> tuple[int, int]:
        # Both splits' problems, by a fixed seed: a train and a test env get the same spaces.
        rng = np.random.default_rng(0)
        problems = [self._draw(rng) for _ in range(BUDGET_SAMPLE)]
        return sampled_budgets((p.prompt for p in problems), (self.oracle(p, ()) for p in problems))

    def _draw(self, rng: np.random.Generator) -> Problem:
        # A few generators make an item now and then whose gold answer is empty or does not
        # earn its own full score (base_conversion's empty answers): no turn can win it, so
        # it is skipped, and the oracle always can.
        for _ in range(MAX_SKIPPED):
            index = int(rng.integers(self.source.config["size"]))
            maker = self.source.maker(index)
            raw = item(maker, index)
            dataset = maker.partition(":")[0]
            if raw.get("answer") is None:  # the construction check saw answers; this has none
                raise ConfigError(f"reasoning-gym's {dataset!r} item {index} has no gold answer.")
            question, answer = str(raw["question"]), str(raw["answer"])
            problem = Problem(
                prompt=with_instruction(question, self.instruction),
                answer=answer,
                # Immutable values only (infos must not share mutable objects): the item is
                # regenerated from the generator and index, see entry().
                metadata={
                    "dataset": dataset,
                    "index": index,
                    "split": split_of(question),
                    "question": question,
                    "generator": maker,
                },
                id=f"{dataset}|{zlib.crc32(question.encode()):08x}",
            )
            written = self.template.extract(self.oracle(problem, ()))
            if written is not None and score(problem, written) >= 1.0:
                return problem
        raise ConfigError(
            f"reasoning-gym's {self.dataset!r} gave {MAX_SKIPPED} items in a row whose gold "
            "answer does not earn its own full score; choose another generator or config."
        )

    def sample(self, rng: np.random.Generator) -> Problem:
        return sample_in_split(self._draw, lambda p: p.metadata["question"], self.split, rng)

    def success(self, ctx: RewardContext) -> bool:
        answer = None if ctx.truncated else self.template.extract(ctx.text)
        return answer is not None and score(ctx.problem, answer) >= 1.0

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        return self.template.render(problem.answer or "")

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """An annotator's slip: the answer of another problem of the same generator."""
        other = self.sample(rng)
        return self.template.render(other.answer or "") if other.answer != problem.answer else text


__all__ = [
    "DEFAULT_SIZE",
    "ReasoningGymTask",
    "ScoreAnswer",
    "build_generator",
    "entry",
    "generator_key",
    "score",
]
