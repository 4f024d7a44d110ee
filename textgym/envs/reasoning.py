"""Reasoning: multistep arithmetic word problems with a verifiable answer.

A problem is a chain: a person starts with some items, then a few events change the count
(buys more, gives some away, doubles them, keeps half), and the question asks how many are
left. The agent may reason first and must end with ``answer: <number>``; ``I don't know``
abstains. The oracle writes a short chain of thought, one equation per step::

    tom has 5 apples. he buys 3 more. he doubles them. how many apples does tom have now?
    5+3=8, 8*2=16. answer: 16
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from textgym.envs.names import FEMALE_NAMES, MALE_NAMES
from textgym.errors import ConfigError
from textgym.rewards.base import Reward
from textgym.rewards.spec import parse_reward
from textgym.rewards.verifiable import NumericMatch, parse_answer
from textgym.tasks.base import Task
from textgym.tasks.checks import check_bool, check_int, check_names
from textgym.tasks.splits import Split, check_split, sample_in_split, split_of
from textgym.types import Problem, RewardContext, Turn

ITEMS = ("apples", "pencils", "coins", "stickers", "marbles", "cookies", "books", "cards",
         "stamps", "shells", "balloons", "candies")  # fmt: skip
OPERATIONS = ("add", "sub", "mul", "div")
SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}

# {p} is the pronoun, {n} the operand. Multiplication and division by 2 and 3 have their own
# words; larger factors (Hard) use the generic phrasing.
ADD_TEMPLATES = ("{p} buys {n} more.", "{p} finds {n} more.", "{p} gets {n} more.")
SUB_TEMPLATES = ("{p} gives {n} away.", "{p} loses {n}.", "{p} sells {n}.")
MUL_TEMPLATES = {2: "{p} doubles them.", 3: "{p} triples them."}
MUL_GENERIC = "{p} now has {n} times as many."
DIV_TEMPLATES = {2: "{p} gives half of them away."}
DIV_GENERIC = "{p} splits them into {n} equal groups and keeps one."

#: Upper bounds on the generator's settings: far beyond any useful problem, and low enough
#: that building the task (its moves table, its pool) takes at most about a second.
MAX_STEPS = 1000
MAX_VALUE = 100_000
MAX_MOVES = 500_000
MAX_POOL = 1_000
#: Balanced answers: chains tried for a drawn answer before another is drawn.
CHAIN_TRIES = 64
ANSWER_TRIES = 1_000


@dataclass(frozen=True)
class Step:
    """One event of a word problem: ``value = value <op> operand``."""

    op: str
    operand: int


def apply(value: int, step: Step) -> int:
    """The count after ``step`` (division is exact by construction)."""
    if step.op == "add":
        return value + step.operand
    if step.op == "sub":
        return value - step.operand
    if step.op == "mul":
        return value * step.operand
    return value // step.operand


def solve(start: int, steps: Sequence[Step]) -> list[tuple[int, Step, int]]:
    """Each step as ``(before, step, after)``: the oracle's chain of thought."""
    chain, value = [], start
    for step in steps:
        after = apply(value, step)
        chain.append((value, step, after))
        value = after
    return chain


def extract_answer(text: str, bare: bool = False) -> str | None:
    """The agent's answer: the last ``answer: <value>``, or with ``bare`` a turn that is
    only a number (the tiny variant's format)."""
    return parse_answer(text, bare)


def reward_spec(bare: bool = False) -> str:
    """The family's default reward as a spec: calibrated correctness (right > "I don't
    know" > wrong, missing or truncated) plus 0.1 for a parseable answer or an abstention.

    The 0.1 stays below ``abstain - wrong`` (0.5), so abstaining still beats a
    well-formatted guess. A truncated turn has no answer (see
    :mod:`textgym.rewards.verifiable`): it scores as wrong and unformatted.
    """
    if bare:
        return "correctness(bare=True) + 0.1*format(bare=True)"
    return "correctness + 0.1*format"


def reasoning_reward(bare: bool = False) -> Reward:
    """The family's default reward, built from :func:`reward_spec`."""
    return parse_reward(reward_spec(bare))


#: The name this default had as a class; kept for the older path textgym.tasks.reasoning.
ReasoningReward = reasoning_reward


class ReasoningTask(Task):
    """Multistep arithmetic word problems with a verifiable answer.

    ## Description
    A person starts with some items and 1..k events change the count (buys / finds / gets
    more, gives away / loses / sells some, doubles, triples, keeps half, splits into equal
    groups); the question asks how many are left. Problems are generated from templates
    with the env's RNG. The agent may reason first (the oracle writes ``5+3=8, 8*2=16.``)
    and must end with ``answer: <number>``; a turn that says ``I don't know`` without an
    answer abstains. ``split="train" | "test"`` draw from disjoint problem sets, split by
    the arithmetic itself (a hash of ``start op operand ...``), so a test problem never
    differs from a training problem only by its names.

    With ``balance_answers`` (v1) the answer is drawn first, uniformly over the counts the
    problems can end on, then the events backwards from it: the answer is uniform within
    each split, where v0's forward draw favoured small counts.

    ## Observation Space
    The :class:`~textgym.core.TextEnv` context: ``Dict(input_ids, attention_mask)`` of
    length ``max_length`` (grown with ``max_steps``: 103 for v0).

    ## Action Space
    ``Discrete(V)``, one token. Tiny variants restrict ``action_masks()`` to ``▁`` and the
    ten digits (plus end of turn).

    ## Rewards
    ``correctness + 0.1*format`` (:func:`reward_spec`; tiny variants pass ``bare=True`` to
    both), once, when the turn ends: ``correctness`` (+1 right, 0 abstain, -0.5 wrong,
    missing or truncated) plus 0.1 x ``format`` (a parseable answer or an abstention; 0
    when truncated). Right > abstain > wrong, so calibrated abstention pays.

    ## Episode End
    Terminated when the agent's turn ends (one turn per episode); truncated when the turn
    reaches ``max_new_tokens``. ``info["success"]``: the answer equals the gold number.

    ## Arguments
    ``min_steps``, ``max_steps``, ``max_start``, ``max_operand``, ``max_factor``,
    ``max_value``, ``operations``, ``split``, ``pool_size``, ``cot``, ``bare_answer``,
    ``balance_answers`` (see Args below).

    ## Registered Configurations
    ``textgym/Reasoning-v0`` (2-3 steps, + - * /, numbers <= 30),
    ``textgym/Reasoning-Easy-v0`` (1-2 steps, + -, <= 20), ``textgym/Reasoning-Hard-v0``
    (3-5 steps, factors up to 5, <= 200), ``textgym/Reasoning-Tiny-v0`` (one step, one
    digit answers, a pool of 10 problems per split, masked to digits);
    ``textgym/Reasoning-v1``, ``textgym/Reasoning-Hard-v1``: v0's with ``balance_answers``;
    ``textgym/Reasoning-Easy-v1``: balanced, starts <= 20, operands <= 9, numbers <= 30 (the
    answers of Easy-v0's ranges span 1..19: even balanced, one is over 5% of problems).

    ## Version History
    * v1: balanced answers. In v0 the constant ``answer: 1`` solved 7.6% of Reasoning-v0's
      held-out problems (17% of Easy's, 7% of Hard's; ``benchmarks/results/probes.md``).
      No Tiny-v1: a pool of 10 one-digit answers repeats one whatever the balance.
    * v0: initial release.

    Args:
        min_steps: Fewest events per problem (>= 1).
        max_steps: Most events per problem (at most 1000).
        max_start: Largest starting count (the smallest is 2).
        max_operand: Largest number bought, found, given away, ... (add and subtract).
        max_factor: Largest factor for multiply and divide (>= 2).
        max_value: No count along the chain exceeds this (nor drops below 1); at most
            100,000, and ``max_value * (max_operand + max_factor)`` at most 250,000.
        operations: Which of ``"add"``, ``"sub"``, ``"mul"``, ``"div"`` may appear.
        split: ``"train"`` or ``"test"``: disjoint problem sets (by the arithmetic, so a
            test problem never differs from a training one only by names).
        pool_size: If set, problems come from a fixed pool of this many (per split, at
            most 1,000), small enough for tabular agents to see every problem.
        cot: The oracle writes one equation per step before the answer.
        bare_answer: The answer format is the bare number (``7``) instead of
            ``answer: 7``, and ``action_masks()`` allows only the space marker ``▁`` and
            the digits (tiny variants).
        balance_answers: Uniform answers, drawn first (v1 ids; see the Description).
    """

    name = "reasoning"

    def __init__(
        self,
        min_steps: int = 2,
        max_steps: int = 3,
        max_start: int = 12,
        max_operand: int = 9,
        max_factor: int = 3,
        max_value: int = 30,
        operations: Sequence[str] = OPERATIONS,
        split: Split = "train",
        pool_size: int | None = None,
        cot: bool = True,
        bare_answer: bool = False,
        balance_answers: bool = False,
    ) -> None:
        min_steps = check_int(min_steps, "min_steps", 1, MAX_STEPS)
        max_steps = check_int(max_steps, "max_steps", 1, MAX_STEPS)
        if min_steps > max_steps:
            raise ConfigError(
                f"Need 1 <= min_steps <= max_steps, got min_steps={min_steps}, "
                f"max_steps={max_steps}."
            )
        max_start = check_int(max_start, "max_start", 2)
        max_operand = check_int(max_operand, "max_operand", 1)
        max_factor = check_int(max_factor, "max_factor", 2)
        max_value = check_int(max_value, "max_value", max_start, MAX_VALUE)
        operations = check_names(operations, "operations", OPERATIONS)
        if pool_size is not None:
            pool_size = check_int(pool_size, "pool_size", 1, MAX_POOL)
        cot = check_bool(cot, "cot")
        bare_answer = check_bool(bare_answer, "bare_answer")
        balance_answers = check_bool(balance_answers, "balance_answers")
        # The moves table holds, for every count up to max_value, each operand that keeps
        # the count in range: its size is known before building it, so an absurd setting
        # is refused at once instead of building for minutes.
        moves = (max_value + 1) * 2 * (min(max_operand, max_value) + min(max_factor, max_value))
        if moves > MAX_MOVES:
            raise ConfigError(
                f"max_value={max_value} with max_operand={max_operand} and "
                f"max_factor={max_factor} needs a table of about {moves:,} moves, over the "
                f"limit of {MAX_MOVES:,}: lower max_value, or max_operand and max_factor "
                "(the product of max_value and max_operand + max_factor must stay under "
                f"{MAX_MOVES // 2:,})."
            )
        self.min_steps, self.max_steps = min_steps, max_steps
        self.max_start, self.max_operand = max_start, max_operand
        self.max_factor, self.max_value = max_factor, max_value
        self.operations = tuple(operations)
        self.split = check_split(split)
        self.cot, self.bare_answer, self.balance_answers = cot, bare_answer, balance_answers
        # Token budget of the oracle's turn: per step "▁a+b=c," with digits spelled out.
        dv, do = len(str(max_value)), len(str(max(max_operand, max_factor)))
        turn = (max_steps * (2 * dv + do + 4) if cot else 0) + dv + 5
        # A bare answer is "▁" + digits + end of turn: nothing to spare, so tabular agents
        # see the smallest tree.
        self.max_new_tokens = dv + 2 if bare_answer else turn + 6
        # Prompt: ~8 tokens to open, at most 13 per step, ~9 for the question.
        self.max_length = 20 + 13 * max_steps + self.max_new_tokens + 4
        self.reward_spec = reward_spec(bare_answer)
        self._right = NumericMatch(bare=bare_answer)
        self._moves = self._moves_table()
        if balance_answers:  # built once, like the moves table; the answers drawn uniformly
            self._reach, self._undo = self._reach_table(), self._undo_table()
            self._back: dict[tuple[int, int], list[list[tuple[str, int, Step]]]] = {}
            self._answers = sorted(frozenset().union(*self._reach[min_steps : max_steps + 1]))
            if not self._answers:
                raise ConfigError(
                    f"No problem of {min_steps}..{max_steps} events stays within 1..{max_value} "
                    f"with operations {self.operations}: add operations or raise max_value."
                )
        self.pool: tuple[Problem, ...] | None = None
        if pool_size is not None:
            self.pool = self._build_pool(pool_size)

    # -- generation ----------------------------------------------------------------------

    def _moves_table(self) -> list[tuple[tuple[str, tuple[Step, ...]], ...]]:
        """For every count ``1..max_value``, the operations possible there and their steps.

        Counts never leave ``1..max_value`` (see :meth:`_feasible`), so this table answers
        every question :meth:`_draw_steps` asks. Built once per task: the per-problem cost
        is then two table lookups per step instead of rebuilding every candidate.
        """
        table = []
        for value in range(self.max_value + 1):
            moves = []
            # Operations in OPERATIONS order (not the caller's), as the draw indexes them.
            for op in OPERATIONS:
                if op in self.operations:
                    steps = tuple(self._feasible(op, value))
                    if steps:
                        moves.append((op, steps))
            table.append(tuple(moves))
        return table

    def _draw_steps(self, rng: np.random.Generator) -> tuple[int, list[Step]]:
        n = int(rng.integers(self.min_steps, self.max_steps + 1))
        start = int(rng.integers(2, self.max_start + 1))
        steps, value = [], start
        for _ in range(n):
            moves = self._moves[value]
            if not moves:  # cannot happen with add in the set; guards odd configs
                break
            # Pick the operation first, then its operand, so rare ops are not drowned out.
            _, cands = moves[int(rng.integers(len(moves)))]
            step = cands[int(rng.integers(len(cands)))]
            steps.append(step)
            value = apply(value, step)
        return start, steps

    def _feasible(self, op: str, value: int) -> list[Step]:
        # Each range stops where the condition first fails (the same steps, in the same
        # order, as testing every operand), so a huge max_operand or max_factor costs nothing.
        if op == "add":
            top = min(self.max_operand, self.max_value - value)
            return [Step(op, k) for k in range(1, top + 1)]
        if op == "sub":
            return [Step(op, k) for k in range(1, min(self.max_operand, value - 1) + 1)]
        if op == "mul":
            top = self.max_factor if value == 0 else min(self.max_factor, self.max_value // value)
            return [Step(op, k) for k in range(2, top + 1)]
        top = self.max_factor if value == 0 else min(self.max_factor, value)
        return [Step(op, k) for k in range(2, top + 1) if value % k == 0]

    def _reach_table(self) -> list[frozenset[int]]:
        """``reach[j]``: the counts some start reaches in exactly ``j`` events, for ``j`` in
        ``0..max_steps`` (``reach[0]`` is the starts)."""
        reach = [frozenset(range(2, self.max_start + 1))]
        seen = {reach[0]: 0}
        while len(reach) <= self.max_steps:
            after = frozenset(
                apply(v, s) for v in reach[-1] for _, steps in self._moves[v] for s in steps
            )
            if after in seen:  # periodic from here: a long max_steps costs nothing
                first, period = seen[after], len(reach) - seen[after]
                while len(reach) <= self.max_steps:
                    reach.append(reach[first + (len(reach) - first) % period])
                break
            seen[after] = len(reach)
            reach.append(after)
        return reach

    def _undo_table(self) -> list[tuple[tuple[str, int, Step], ...]]:
        """For every count, the events that end on it, as ``(op, count before, step)``."""
        undo: list[list[tuple[str, int, Step]]] = [[] for _ in range(self.max_value + 1)]
        for before in range(1, self.max_value + 1):
            for op, steps in self._moves[before]:
                for step in steps:
                    undo[apply(before, step)].append((op, before, step))
        return [tuple(u) for u in undo]

    def _walk_back(self, answer: int, rng: np.random.Generator) -> tuple[int, list[Step]]:
        """A start and events ending on ``answer``: each event, last first, is undone to a
        count a start reaches with the events left (operation drawn before operand)."""
        counts = [n for n in range(self.min_steps, self.max_steps + 1) if answer in self._reach[n]]
        n = counts[int(rng.integers(len(counts)))]
        value, steps = answer, []
        for left in range(n - 1, -1, -1):
            if (value, left) not in self._back:  # filtered once: it was a third of a reset
                options = [u for u in self._undo[value] if u[1] in self._reach[left]]
                by_op = ([u for u in options if u[0] == op] for op in OPERATIONS)
                self._back[value, left] = [entries for entries in by_op if entries]
            ops = self._back[value, left]  # per operation (in OPERATIONS order), its undos
            cands = ops[int(rng.integers(len(ops)))]
            _, value, step = cands[int(rng.integers(len(cands)))]
            steps.append(step)
        return value, steps[::-1]

    def _draw_balanced(self, rng: np.random.Generator) -> Problem:
        """A problem of the split, its answer uniform over the possible ones. Each answer
        gets :data:`CHAIN_TRIES` chains to land in the split: redrawing the answer after
        every miss would favour the answers with many chains in this split."""
        for _ in range(ANSWER_TRIES):
            answer = self._answers[int(rng.integers(len(self._answers)))]
            for _ in range(CHAIN_TRIES):
                start, steps = self._walk_back(answer, rng)
                if split_of(self.arithmetic_key(start, steps)) == self.split:
                    return self._compose(start, steps, rng)
        raise RuntimeError(
            f"No problem in split {self.split!r} after {ANSWER_TRIES} answers: the problem space "
            "is too small to hold out a split. Widen the generator's ranges (numbers, steps)."
        )

    def _fresh(self, rng: np.random.Generator) -> Problem:
        """A newly generated problem of the split (balanced or not)."""
        if self.balance_answers:
            return self._draw_balanced(rng)
        return sample_in_split(self._draw, lambda p: p.metadata["arithmetic"], self.split, rng)

    @staticmethod
    def arithmetic_key(start: int, steps: Sequence[Step]) -> str:
        """The canonical key that decides the split: the arithmetic, without the wording."""
        return f"{start}" + "".join(f"{SYMBOLS[s.op]}{s.operand}" for s in steps)

    def _draw(self, rng: np.random.Generator) -> Problem:
        start, steps = self._draw_steps(rng)
        return self._compose(start, steps, rng)

    def _compose(self, start: int, steps: Sequence[Step], rng: np.random.Generator) -> Problem:
        """The word problem for the arithmetic ``start, steps``, worded with ``rng``."""
        male = bool(rng.integers(2))
        names = MALE_NAMES if male else FEMALE_NAMES
        name = names[int(rng.integers(len(names)))]
        item = ITEMS[int(rng.integers(len(ITEMS)))]
        pronoun = "he" if male else "she"
        sentences = [f"{name} has {start} {item}."]
        for step in steps:
            sentences.append(self._phrase(step, pronoun, rng))
        sentences.append(f"how many {item} does {name} have now?")
        chain = solve(start, steps)
        answer = chain[-1][2] if chain else start
        key = self.arithmetic_key(start, steps)
        return Problem(
            prompt=" ".join(sentences),
            answer=str(answer),
            metadata={
                "start": start,
                "steps": tuple((s.op, s.operand) for s in steps),
                "n_steps": len(steps),
                "arithmetic": key,
                "split": split_of(key),
            },
            id=f"{key}|{name}|{item}|{zlib.crc32(' '.join(sentences).encode()):08x}",
        )

    @staticmethod
    def _phrase(step: Step, pronoun: str, rng: np.random.Generator) -> str:
        if step.op == "add":
            template = ADD_TEMPLATES[int(rng.integers(len(ADD_TEMPLATES)))]
        elif step.op == "sub":
            template = SUB_TEMPLATES[int(rng.integers(len(SUB_TEMPLATES)))]
        elif step.op == "mul":
            template = MUL_TEMPLATES.get(step.operand, MUL_GENERIC)
        else:
            template = DIV_TEMPLATES.get(step.operand, DIV_GENERIC)
        return template.format(p=pronoun, n=step.operand)

    def _build_pool(self, size: int) -> tuple[Problem, ...]:
        # The pool is part of the task's definition, not of an episode: a fixed seed, so
        # every env (and every process) has the same pool.
        rng = np.random.default_rng(12345)
        pool: dict[str, Problem] = {}  # by arithmetic: the first wording of each stays
        for _ in range(100 * size + 1000):
            problem = self._fresh(rng)
            pool.setdefault(problem.metadata["arithmetic"], problem)
            if len(pool) == size:
                break
        if len(pool) < size:
            raise ConfigError(
                f"Only {len(pool)} distinct problems exist in split {self.split!r} for these "
                f"settings, fewer than pool_size={size}. Lower pool_size or widen the ranges."
            )
        return tuple(pool.values())

    def sample(self, rng: np.random.Generator) -> Problem:
        if self.pool is not None:
            return self.pool[int(rng.integers(len(self.pool)))]
        return self._fresh(rng)

    # -- scoring and the oracle ----------------------------------------------------------

    def success(self, ctx: RewardContext) -> bool:
        # The default reward's own check, so full correctness and success always agree.
        return self._right(ctx) == 1.0

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        if self.bare_answer:
            return str(problem.answer)
        chain = solve(problem.metadata["start"], [Step(*s) for s in problem.metadata["steps"]])
        answer = f"answer: {problem.answer}"
        if not self.cot or not chain:
            return answer
        thought = ", ".join(f"{a}{SYMBOLS[s.op]}{s.operand}={b}" for a, s, b in chain)
        return f"{thought}. {answer}"

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """An annotator's slip: the final number is off by a small amount."""
        gold = int(problem.answer or 0)
        delta = int(rng.choice([-2, -1, 1, 2]))
        wrong = gold + delta if gold + delta >= 0 else gold + abs(delta)
        if self.bare_answer:
            return str(wrong)
        head, sep, _ = text.rpartition("answer:")
        if not sep:
            return f"answer: {wrong}"
        # The last equation carries the slip too, as a miscalculation would.
        head = re.sub(r"=(\d+)\. $", f"={wrong}. ", head)
        return f"{head}answer: {wrong}"

    def allowed_words(self) -> Sequence[str] | None:
        if self.bare_answer:
            return ["\u2581", *(str(d) for d in range(10))]
        return None

    def corpus(self, rng: np.random.Generator, n: int = 200) -> list[str]:
        texts = super().corpus(rng, n)
        # Every template with every name and item, so no wording is missing by chance.
        for name in MALE_NAMES + FEMALE_NAMES:
            for item in ITEMS:
                texts.append(f"{name} has 2 {item}. how many {item} does {name} have now?")
        for p in ("he", "she"):
            for t in (*ADD_TEMPLATES, *SUB_TEMPLATES, *MUL_TEMPLATES.values(), MUL_GENERIC,
                      *DIV_TEMPLATES.values(), DIV_GENERIC):  # fmt: skip
                texts.append(t.format(p=p, n=4))
        texts.append("5+3=8, 8*2=16, 16/4=4, 4-1=3. answer: 3. i don't know.")
        return texts
