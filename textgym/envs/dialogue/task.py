"""Dialogue: answer a user's questions on a topic, politely, briefly, without repeating.

The user (:class:`~textgym.envs.dialogue.user.ScriptedUser`) has a topic and a goal: a few
questions it asks one after another. It moves on when a turn answers the current question
(mentions enough of the question's keywords), rephrases when it does not, reacts to rude
words and repetition, and ends the conversation satisfied (all questions answered) or
annoyed (rudeness, or too many turns)::

    user:  hi! i have some questions about pets. how often should i feed my dog?
    agent: feed an adult dog twice a day.
    user:  thanks, that helps. what do fish need in a tank?
    agent: fish need clean water, a filter and some plants.
    user:  thanks a lot, that is all i wanted to know. bye!
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from textgym.envs.dialogue.topics import REGULAR_TOPICS, TOPICS, current_question, question
from textgym.envs.dialogue.user import ScriptedUser, check_judge, user_lines
from textgym.errors import ConfigError
from textgym.rewards.base import Reward
from textgym.rewards.registry import register_reward
from textgym.rewards.spec import parse_reward
from textgym.tasks.base import Task
from textgym.tasks.checks import check_bool, check_callable, check_int, check_names
from textgym.tasks.splits import Split, check_split, sample_in_split, split_of
from textgym.types import Problem, RewardContext, Turn
from textgym.users.base import Responder
from textgym.words import coverage

#: Most spare turns: the context grows by 40 tokens per turn.
MAX_PATIENCE = 1000


class AskedRelevance(Reward):
    """Coverage of the keywords of the question this turn answers (from the user's
    verdict, ``ctx.outcome["keywords"]``); 0 when the user asked nothing."""

    name = "relevance"

    def __call__(self, ctx: RewardContext) -> float:
        keywords = ctx.outcome.get("keywords")
        return coverage(ctx.text, keywords) if keywords else 0.0


class Satisfaction(Reward):
    """On the turn after which the user leaves satisfied, how satisfied (1.0 for the v0
    user; ``ctx.outcome["satisfaction"]`` for the strict one), else 0."""

    name = "satisfaction"

    def __call__(self, ctx: RewardContext) -> float:
        if not ctx.outcome.get("satisfied"):
            return 0.0
        # The strict (v1) user leaves less satisfied for every turn it had to reject.
        return float(ctx.outcome.get("satisfaction", 1.0))


class JudgedRelevance(Reward):
    """1.0 when the user judged this turn an answer to its question (the strict user's
    verdict, ``ctx.outcome["answered"]``), else 0: keywords alone earn nothing."""

    name = "relevance"

    def __call__(self, ctx: RewardContext) -> float:
        # float(bool(...)) without the two calls: this runs at every turn end.
        return 1.0 if ctx.outcome.get("answered") else 0.0


register_reward("asked_relevance", AskedRelevance)
register_reward("judged_relevance", JudgedRelevance)
register_reward("satisfaction", Satisfaction)

#: The default multi-objective reward. Per turn: relevance to the question asked (its
#: component is ``relevance``); ``politeness``, ``repetition`` (1 = nothing repeated),
#: ``concision`` and ``banned_words`` (1 = clean) at 0.05 each, so that hygiene alone never
#: pays more than answering; and ``satisfaction`` once, when the user leaves satisfied.
REWARD_SPEC = (
    "asked_relevance + satisfaction + 0.05*politeness + 0.05*repetition + 0.05*concision"
    " + 0.05*banned_words"
)


#: The strict user's (v1) default: relevance is the user's verdict, not keyword coverage.
STRICT_REWARD_SPEC = REWARD_SPEC.replace("asked_relevance", "judged_relevance")


def dialogue_reward(judge: str = "keywords") -> Reward:
    """The default reward for ``judge``: :data:`REWARD_SPEC` or :data:`STRICT_REWARD_SPEC`."""
    return parse_reward(STRICT_REWARD_SPEC if judge == "strict" else REWARD_SPEC)


class DialogueTask(Task):
    """A user with a topic and a few questions; answer them all before it loses patience.

    ## Description
    The user opens with its topic (cooking, travel, pets, fitness, gardening, computers)
    and its first question, and asks ``n_questions`` in turn. A turn that mentions at
    least half of the current question's keywords answers it and the user moves on;
    otherwise the user rephrases ("that does not answer my question. ..."). Rude or banned
    words annoy the user (twice and it leaves), a repeated turn is called out, and after
    ``n_questions + patience`` agent turns the user leaves annoyed.

    With ``judge="strict"`` (the v1 ids) keywords are not enough: the user judges each turn
    (:mod:`textgym.envs.dialogue.judge`) and takes as an answer only a turn with every
    keyword of the question and at least half of the reference answer's facts (its words
    beyond the keywords and the user's own); a repeated turn,
    its own words said back, a keyword list or an answer to another question is named and
    rejected. Each question gets ``attempts`` turns (v1: 2), and each rejected turn lowers
    the satisfaction the user leaves with by 0.25.

    ## Observation Space
    The :class:`~textgym.core.TextEnv` context, ``max_length = 32 + 40 * turns`` (tiny:
    ``24 + 16 * turns``).

    ## Action Space
    ``Discrete(V)``. The tiny variant restricts ``action_masks()`` to its six answer words.

    ## Rewards
    :data:`REWARD_SPEC`, a weighted sum at every turn end: ``relevance`` (1.0, keyword
    coverage of the question asked; ``asked_relevance`` in specs), ``satisfaction`` (1.0,
    once, when the user leaves satisfied), and 0.05 each for ``politeness``,
    ``repetition``, ``concision`` and ``banned_words``. Every component is
    in ``info["reward_components"]``. The strict judge's default is
    :data:`STRICT_REWARD_SPEC`: ``relevance`` is 1.0 exactly when the user took the turn
    as an answer (``judged_relevance``), and ``satisfaction`` is ``1 - 0.25`` per rejected
    turn.

    ## Episode End
    Terminated when the user leaves (satisfied or annoyed); truncated at the length
    limits; the strict user also leaves annoyed after ``attempts`` rejected turns on one
    question. ``info["success"]``: the user left satisfied (every question answered).

    ## Arguments
    ``topics``, ``n_questions``, ``patience``, ``split``, ``one_word``, ``user``,
    ``judge``, ``attempts`` (see Args).

    ## Registered Configurations
    ``textgym/Dialogue-v0`` (2 questions, 2 spare turns), ``textgym/Dialogue-Hard-v0``
    (3 questions, 1 spare turn), ``textgym/Dialogue-Tiny-v0`` (2 either-or questions,
    one-word answers); ``textgym/Dialogue-v1``, ``textgym/Dialogue-Hard-v1`` and
    ``textgym/Dialogue-Tiny-v1``: the same with ``judge="strict"`` and ``attempts=2``.

    ## Version History
    * v1: the strict judge. v0's user took any turn with half of the question's keywords
      as an answer: a fixed keyword-stuffed turn, repeated, satisfied Dialogue-Hard-v0 in
      every episode, and a turn answering another question counted when it shared a
      keyword (see ``benchmarks/results/probes.md``).
    * v0: initial release.

    Args:
        topics: Topics the user may pick (keys of :data:`TOPICS`).
        n_questions: Questions per conversation (the user's goal).
        patience: Extra agent turns the user tolerates beyond one per question (0 to
            1000).
        split: ``"train"`` or ``"test"``: disjoint conversations (topic and question
            sequence). Questions recur across splits in other combinations and orders.
        one_word: Answers are one word and ``action_masks()`` allows only the answer words
            of the topics (tiny variants).
        user: Wraps the scripted user, e.g. ``LMResponder.factory(path)`` to let a
            language model write the user's words while the scripted user judges.
        judge: How the user decides a turn answers its question: ``"keywords"`` (v0: half
            of the keywords) or ``"strict"`` (v1: see the Description).
        attempts: Turns the user gives each question before it leaves annoyed (v1: 2);
            ``None``: only the conversation's turn limit.
    """

    name = "dialogue"
    reward_spec = REWARD_SPEC

    def __init__(
        self,
        topics: Sequence[str] = REGULAR_TOPICS,
        n_questions: int = 2,
        patience: int = 2,
        split: Split = "train",
        one_word: bool = False,
        user: Callable[[Responder], Responder] | None = None,
        judge: str = "keywords",
        attempts: int | None = None,
    ) -> None:
        topics = check_names(topics, "topics", tuple(TOPICS))
        smallest = min(len(TOPICS[t]) for t in topics)
        n_questions = check_int(n_questions, "n_questions", 1)
        if n_questions > smallest:
            raise ConfigError(
                f"n_questions must be in [1, {smallest}] (the smallest topic has {smallest} "
                f"questions), got {n_questions}."
            )
        patience = check_int(patience, "patience", 0, MAX_PATIENCE)
        one_word = check_bool(one_word, "one_word")
        user = check_callable(user, "user", "user=LMResponder.factory(path)")
        judge = check_judge(judge)
        if attempts is not None:
            attempts = check_int(attempts, "attempts", 1, MAX_PATIENCE)
        self.judge, self.attempts = judge, attempts
        self.reward_spec = STRICT_REWARD_SPEC if judge == "strict" else REWARD_SPEC
        self.topics = tuple(topics)
        self.n_questions, self.patience = n_questions, patience
        self.split = check_split(split)
        self.one_word = one_word
        self.user = user
        turns = self.max_turns = n_questions + patience
        if one_word:
            self.max_new_tokens, self.max_length = 2, 24 + 16 * turns
        else:
            self.max_new_tokens, self.max_length = 24, 32 + 40 * turns

    @staticmethod
    def goal_key(problem: Problem) -> str:
        """The canonical key that decides the split: the question sequence."""
        return "|".join(f"{t}:{i}" for t, i in problem.metadata["goal"])

    def _draw(self, rng: np.random.Generator) -> Problem:
        topic = self.topics[int(rng.integers(len(self.topics)))]
        order = rng.permutation(len(TOPICS[topic]))[: self.n_questions]
        return self.problem_for(tuple((topic, int(i)) for i in order))

    def problem_for(self, goal: Sequence[tuple[str, int]]) -> Problem:
        """The conversation whose user asks ``goal``, ``(topic, question index)`` pairs of
        one topic, in order (e.g. to replay a transcript with ``options={"problem": ...}``).
        """
        goal = tuple((str(t), int(i)) for t, i in goal)
        topics = {t for t, _ in goal}
        if len(topics) != 1 or not all(0 <= i < len(TOPICS.get(t, ())) for t, i in goal):
            raise ConfigError(
                f"goal must be (topic, index) pairs of one topic with indices of its "
                f"questions (topics: {sorted(TOPICS)}), got {goal!r}."
            )
        topic = goal[0][0]
        first = TOPICS[topic][goal[0][1]].text
        if self.one_word:
            prompt = f"hi! {first}"
        else:
            prompt = f"hi! i have some questions about {topic}. {first}"
        keywords = tuple(k for _, i in goal for k in TOPICS[topic][i].keywords)
        meta = {
            "topic": topic,
            "goal": goal,
            "keywords": keywords,
            "max_turns": self.n_questions + self.patience,
            "one_word": self.one_word,
        }
        problem = Problem(prompt=prompt, metadata=meta)
        key = self.goal_key(problem)
        meta["split"] = split_of(key)
        return Problem(prompt=prompt, metadata=meta, id=key)

    def sample(self, rng: np.random.Generator) -> Problem:
        return sample_in_split(self._draw, self.goal_key, self.split, rng)

    def responder(self) -> Responder:
        scripted = ScriptedUser(self.judge, self.attempts)
        return scripted if self.user is None else self.user(scripted)

    def success(self, ctx: RewardContext) -> bool:
        return bool(ctx.outcome.get("satisfied"))

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        """The answer to the question the user's last message asks."""
        return question(problem, current_question(problem, turns)).answer

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """An annotator's slip: the answer to a different question of the topic."""
        topic = problem.metadata["topic"]
        others = [q.answer for q in TOPICS[topic] if q.answer != text]
        return others[int(rng.integers(len(others)))]

    def allowed_words(self) -> Sequence[str] | None:
        if not self.one_word:
            return None
        return sorted({"\u2581" + q.answer for t in self.topics for q in TOPICS[t]})

    def corpus(self, rng: np.random.Generator, n: int = 200) -> list[str]:
        texts = [f"hi! i have some questions about {t}." for t in REGULAR_TOPICS]
        for qs in TOPICS.values():
            for q in qs:
                texts += [q.text, q.rephrased, q.answer]
        return texts + user_lines()


__all__ = [
    "MAX_PATIENCE",
    "REWARD_SPEC",
    "STRICT_REWARD_SPEC",
    "AskedRelevance",
    "DialogueTask",
    "JudgedRelevance",
    "Satisfaction",
    "dialogue_reward",
]
