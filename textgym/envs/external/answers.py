"""Answers in open text: the format a prompt asks for, and the rewards that read it.

The suite's own tasks end a turn with ``answer: <number>``; tasks built from external data
have answers of any shape (a word list, a matrix, ``\\frac{1}{2}``, a sentence), so the
format is a template with one ``{answer}`` slot, ``"answer: {answer}"`` by default, and the
answer is everything between the template's text before and after the slot:

* ``"answer: {answer}"``: the text after the last ``answer:`` to the end of the turn;
* ``"<answer>{answer}</answer>"``: reasoning-gym's own format;
* ``"\\boxed{{answer}}"``: the last ``\\boxed{...}``.

Matching ignores case and allows spaces between words and punctuation (``Answer : 7``), as
some tokenizers decode them. The rewards follow the suite's calibration
(:class:`~textgym.rewards.verifiable.Correctness`): right > ``I don't know`` > wrong, missing
or truncated, plus a format term that pays a readable answer or an abstention:

* ``answer_format(template=...)``: 1.0 for a turn with an answer in the template, or an
  abstention, else 0.0 (0.0 when truncated);
* :class:`GradedCorrectness`: the base of the families' correctness terms, which grade the
  answer in [0, 1] (``score_answer`` for reasoning-gym, ``answer_match`` for data).
"""

from __future__ import annotations

import re
from typing import Any

from textgym.errors import ConfigError
from textgym.rewards.base import Reward, RewardContext, number_arg
from textgym.rewards.checks import RewardTypeError
from textgym.rewards.registry import register_reward
from textgym.rewards.verifiable import is_abstention

SLOT = "{answer}"
DEFAULT_TEMPLATE = "answer: {answer}"
#: How the prompt asks for the format; ``{format}`` is the template with ``X`` in its slot.
DEFAULT_INSTRUCTION = "End your reply with your final answer, written as: {format}"
#: A word or a single non-space character: the units between which spaces may appear.
_UNIT = re.compile(r"\w+|\S")


def _loose(text: str) -> str:
    """A regex for ``text`` that ignores the spacing between its words and punctuation."""
    return r"\s*".join(re.escape(u) for u in _UNIT.findall(text))


class AnswerTemplate:
    """The answer format: a template with one ``{answer}`` slot.

    Args:
        template: e.g. ``"answer: {answer}"`` or ``"<answer>{answer}</answer>"``; the text
            around the slot must not be all blank.

    Raises:
        RewardTypeError: ``template`` is not a str.
        ConfigError: it has no ``{answer}`` slot, more than one, or nothing around it.
    """

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        if not isinstance(template, str):
            raise RewardTypeError(
                f"answer_format must be a str with one {SLOT} slot (e.g. {DEFAULT_TEMPLATE!r}), "
                f"got {template!r} ({type(template).__name__})."
            )
        if template.count(SLOT) != 1:
            raise ConfigError(
                f"answer_format must hold exactly one {SLOT} slot, got {template!r}; e.g. "
                f"{DEFAULT_TEMPLATE!r} or '<answer>{SLOT}</answer>'."
            )
        prefix, suffix = template.split(SLOT)
        if not (prefix.strip() or suffix.strip()):
            raise ConfigError(
                f"answer_format {template!r} has no text around its {SLOT} slot, so no answer "
                f"could be found in a turn; e.g. {DEFAULT_TEMPLATE!r}."
            )
        self.template, self.prefix, self.suffix = template, prefix, suffix
        # The last opening, then the shortest text up to the closing (or the turn's end).
        head = _loose(prefix) if prefix.strip() else ""
        tail = _loose(suffix) if suffix.strip() else r"\Z"
        self._pattern = re.compile(f"{head}(.*?){tail}", re.IGNORECASE | re.DOTALL)
        self._head = re.compile(head, re.IGNORECASE) if head else None
        # A slot between braces (``\\boxed{{answer}}``) holds braces of its own
        # (``\\frac{1}{2}``): it is read up to its balancing brace, not the first one.
        self._braced = prefix.rstrip().endswith("{") and suffix.lstrip().startswith("}")

    def extract(self, text: str) -> str | None:
        """The answer in ``text``: the last one in the template, stripped; ``None`` if none."""
        start = 0
        if self._head is not None:
            last = None
            for last in self._head.finditer(text):  # noqa: B007 - the last match counts
                pass
            if last is None:
                return None
            start = last.start()
        if self._braced:  # \\boxed{...}: the slot ends at the brace that closes it
            opened = text.find("{", start)
            inside = _balanced(text, opened + 1) if opened >= 0 else None
            return (inside or "").strip() or None
        match = self._pattern.search(text, start)
        if match is None:
            return None
        answer = match.group(1).strip()
        return answer or None

    def render(self, answer: str) -> str:
        """``answer`` written in the template (what the oracle writes)."""
        return f"{self.prefix}{answer}{self.suffix}"

    def shown(self) -> str:
        """The template as the prompt shows it, with ``X`` in the slot (``answer: X``)."""
        return self.render("X")

    def spec_arg(self) -> str:
        """The template as a reward-spec string literal (quoted, for ``template=...``)."""
        if "'" not in self.template:
            return f"'{self.template}'"
        if '"' not in self.template:
            return f'"{self.template}"'
        raise ConfigError(
            f"answer_format {self.template!r} holds both quote characters, which a reward "
            "spec cannot quote; use a template with at most one kind of quote."
        )

    def __repr__(self) -> str:
        return f"AnswerTemplate({self.template!r})"


def _balanced(text: str, start: int) -> str | None:
    """The text from ``start`` up to the ``}`` that balances an opening just before it."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return None


def instruction_text(instruction: str | None, template: AnswerTemplate) -> str:
    """The sentence appended to a prompt to state the format (``""`` for none).

    Raises:
        RewardTypeError: ``instruction`` is not a str or None.
    """
    if instruction is None:
        return ""
    if not isinstance(instruction, str):
        raise RewardTypeError(
            f"instruction must be a str (with an optional {{format}} slot) or None, got "
            f"{instruction!r} ({type(instruction).__name__})."
        )
    return instruction.replace("{format}", template.shown())


def with_instruction(prompt: str, instruction: str) -> str:
    """``prompt`` followed by the format ``instruction`` on its own paragraph."""
    return f"{prompt.rstrip()}\n\n{instruction}" if instruction else prompt


def turn_answer(ctx: RewardContext, template: AnswerTemplate) -> str | None:
    """The answer of the turn in ``ctx``; ``None`` when truncated (it never ended)."""
    return None if ctx.truncated else template.extract(ctx.text)


def abstains(ctx: RewardContext, template: AnswerTemplate) -> bool:
    """The turn says "I don't know" and gives no answer (a truncated turn never does)."""
    return not ctx.truncated and template.extract(ctx.text) is None and is_abstention(ctx.text)


class AnswerFormat(Reward):
    """1.0 when the turn has an answer in the template or abstains, else 0.0.

    The suite's format term (:class:`~textgym.rewards.verifiable.AnswerFormat`) for any
    template; with the default one it pays the same turns, except that any answer text
    counts, not only a number or a word.

    Args:
        template: The answer format, e.g. ``"answer: {answer}"``.
    """

    name = "answer_format"

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        self.template = AnswerTemplate(template)

    def __call__(self, ctx: RewardContext) -> float:
        return float(turn_answer(ctx, self.template) is not None or abstains(ctx, self.template))

    def __repr__(self) -> str:
        return f"AnswerFormat({self.template.template!r})"


class GradedCorrectness(Reward):
    """Right, abstained or wrong, for answers graded in [0, 1] (partial credit allowed).

    A graded answer scores ``wrong + (correct - wrong) * grade``: the gold answer
    ``correct``, a worthless one ``wrong``. A turn without an answer scores ``abstain`` if
    it says "I don't know", else ``wrong``, as in the suite's ``correctness``.

    Args:
        template: The answer format.
        correct: Reward for a fully right answer.
        abstain: Reward for "I don't know".
        wrong: Reward for a wrong, missing or truncated answer.
        partial: Pay partial credit. ``False`` counts any grade below 1 as wrong: where a
            grader's partial credit can be gamed (reasoning-gym's numeric ``score_answer``
            pays ``len(gold) / len(answer)`` to an answer that contains the gold one, so
            ``444`` earns half of ``44``'s credit, and RL learns to append digits).
    """

    def __init__(
        self,
        template: str = DEFAULT_TEMPLATE,
        *,
        correct: float = 1.0,
        abstain: float = 0.0,
        wrong: float = -0.5,
        partial: bool = True,
    ) -> None:
        cls = type(self).__name__
        correct = number_arg(correct, f"{cls} correct")
        abstain = number_arg(abstain, f"{cls} abstain")
        wrong = number_arg(wrong, f"{cls} wrong")
        if not wrong < abstain < correct:
            raise ConfigError(
                f"{cls} needs wrong < abstain < correct, got wrong={wrong}, abstain={abstain}, "
                f"correct={correct}."
            )
        self.template = AnswerTemplate(template)
        if not isinstance(partial, bool):
            raise ConfigError(f"{cls} partial must be True or False, got {partial!r}.")
        self.correct, self.abstain, self.wrong = correct, abstain, wrong
        self.partial = partial

    def grade(self, answer: str, ctx: RewardContext) -> float:
        """How right ``answer`` is for the problem in ``ctx``, in [0, 1]."""
        raise NotImplementedError

    def __call__(self, ctx: RewardContext) -> float:
        answer = turn_answer(ctx, self.template)
        if answer is None:
            return self.abstain if abstains(ctx, self.template) else self.wrong
        grade = min(1.0, max(0.0, float(self.grade(answer, ctx))))
        if not self.partial and grade < 1.0:
            grade = 0.0
        return self.wrong + (self.correct - self.wrong) * grade

    def __repr__(self) -> str:
        partial = "" if self.partial else ", partial=False"
        return f"{type(self).__name__}({self.template.template!r}{partial})"


def reward_spec(correctness: str, template: AnswerTemplate, **args: Any) -> str:
    """A family's default reward as a spec: ``correctness + 0.1*answer_format``, with the
    template (and ``args``) written out only where they differ from the defaults.

    The 0.1 stays below ``abstain - wrong`` (0.5), so abstaining still beats a
    well-formatted guess, as in the Reasoning family.
    """
    given = {k: repr(v) for k, v in args.items()}
    if template.template != DEFAULT_TEMPLATE:
        given = {"template": template.spec_arg(), **given}
    inner = ", ".join(f"{k}={v}" for k, v in given.items())
    form = "answer_format"
    if "template" in given:
        form = f"answer_format(template={template.spec_arg()})"
    return f"{correctness}({inner}) + 0.1*{form}" if inner else f"{correctness} + 0.1*{form}"


register_reward("answer_format", AnswerFormat)

__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_TEMPLATE",
    "AnswerFormat",
    "AnswerTemplate",
    "GradedCorrectness",
    "abstains",
    "instruction_text",
    "reward_spec",
    "turn_answer",
    "with_instruction",
]
