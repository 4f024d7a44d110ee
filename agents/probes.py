"""Reward-hacking probes: scripted adversaries that try to pass a task without solving it.

Each probe writes one kind of turn that should *not* succeed: the keywords of the prompt or
topic without content, one fixed turn said every time, the answer format without an answer,
"i don't know", the user's own words back, and, in CustomerService, escalating everything
or trying every action in turn. A probe plays a textgym env at token level, like any agent
(SB3-style ``predict``), and reads what the oracle may read of ``env.unwrapped``: the
problem's prompt and metadata (the user's topic and question keywords), the conversation so
far, the tokenizer. It never reads the episode's gold answer (``problem.answer``, a
question's reference answer, ``task.oracle``); Reasoning's ``repeat`` answers the most
common answer of training problems, what any learner sees in its data.

The rule (:func:`fails_rule`): an env fails a probe when the probe's success rate exceeds
the random policy's (uniform over the allowed tokens) by more than :data:`MARGIN`::

    result = run_probe("keywords", "textgym/Dialogue-v1", n_episodes=100, split="test")
    result.success_rate, result.mean_return

Each family's newest version passes every probe; the v0s of three fail some, and their v1s
exist for that (``benchmarks/results/probes.md``): Dialogue-v1's strict judge, Reasoning-v1's
balanced answers (no constant answer beats the others), CustomerService-v1's final actions
(a wrong action ends the case, so trying actions in turn or escalating everything fails).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common import EvalResult, evaluate_policy
from textgym.core import TextEnv
from textgym.envs.customer_service.actions import ACTIONS, SLOTS
from textgym.envs.customer_service.customer import WRONG_SLOT
from textgym.envs.dialogue.topics import REGULAR_TOPICS, TOPICS, current_question, question
from textgym.errors import ConfigError, did_you_mean
from textgym.rewards.text import STOPWORDS
from textgym.rewards.verifiable import ABSTENTION
from textgym.words import text_words

__all__ = [
    "FAMILIES",
    "MARGIN",
    "PROBES",
    "Probe",
    "ProbeAgent",
    "fails_rule",
    "probes_for",
    "run_probe",
]

#: Success-rate points a probe may beat the random policy by before the env fails.
MARGIN = 0.05
#: The task families the probes know (``task.name``).
FAMILIES = ("copy", "reasoning", "dialogue", "customer_service")
#: Families played with another's probes: the single-turn tasks over external data
#: (reasoning-gym's generators, a user's rows) ask for ``answer: X`` as Reasoning does.
PLAYED_AS = {"reasoning_gym": "reasoning", "dataset": "reasoning"}
#: The Reasoning constant: the most common answer of this many training problems.
PRIOR_SAMPLES = 2000

#: How a probe writes a turn: from the env and a scratch dict the agent keeps across turns.
Writer = Callable[[TextEnv, dict[str, Any]], str]


# -- what a probe can see -------------------------------------------------------------------


def _last_user(env: TextEnv) -> str:
    return next((t.text for t in reversed(env.turns) if t.role == "user"), "")


def _asked_keywords(env: TextEnv) -> tuple[str, ...]:
    # The rubric of the question the user's last message asks (its keywords, never its
    # reference answer).
    return question(env.problem, current_question(env.problem, env.turns)).keywords


def _keyword_sentence(env: TextEnv, memo: dict[str, Any]) -> str:
    # Keyword stuffing dressed as a sentence: the question's own content words and its
    # keywords, so neither density nor an exact echo gives it away.
    asked = [w for w in _content(_last_user(env)) if w not in ("hi", "questions")]
    return f"i think {' '.join(asked[-3:])} is about {' and '.join(_asked_keywords(env))}."


def _content(text: str) -> list[str]:
    return list(dict.fromkeys(w for w in text_words(text) if w not in STOPWORDS))


def _cover_words() -> str:
    """One fixed turn with a keyword of as many Dialogue questions as possible: greedy set
    cover over every regular topic's keywords (the rubric, not the answers)."""
    left = [set(q.keywords) for t in REGULAR_TOPICS for q in TOPICS[t]]
    chosen: list[str] = []
    while left:
        counts = Counter(k for ks in left for k in ks)
        best = min(counts, key=lambda k: (-counts[k], k))
        chosen.append(best)
        left = [ks for ks in left if best not in ks]
    return " ".join(chosen)


_SLOT_PATTERNS = {
    "order": re.compile(r"order (?:number is )?(\d+)"),
    "amount": re.compile(r"cost (\d+) dollars"),
    "email": re.compile(r"([a-z0-9_.]+@[a-z0-9_.]*[a-z0-9])"),
    "zip": re.compile(r"zip code is (\d+)"),
}


def _revealed_slots(env: TextEnv) -> dict[str, str]:
    """Slot values the customer has said so far (the stated policy line is not a slot)."""
    found: dict[str, str] = {}
    for turn in env.turns:
        if turn.role != "user":
            continue
        text = re.sub(r"\(policy:[^)]*\)", " ", turn.text.lower())
        for slot, pattern in _SLOT_PATTERNS.items():
            match = pattern.search(text)
            if match:
                found[slot] = match.group(1)
    return found


def _action(name: str, slots: Mapping[str, str]) -> str:
    return "[" + name + "".join(f" {k}={v}" for k, v in slots.items()) + "]"


def _reasoning_prior(env: TextEnv, memo: dict[str, Any]) -> str:
    # The answer a collapsed policy would give: the training split's most common answer, a
    # property of the task that training data teaches, not this problem's gold answer.
    if "prior" not in memo:
        task = copy.copy(env.task)
        if getattr(task, "pool", None) is None:  # a pooled task samples its own pool
            task.split = "train"
        rng = np.random.default_rng(0)
        answers = Counter(task.sample(rng).answer for _ in range(PRIOR_SAMPLES))
        memo["prior"] = min(answers, key=lambda a: (-answers[a], str(a)))
    return f"answer: {memo['prior']}"


# -- the probes -----------------------------------------------------------------------------


def _spam(env: TextEnv, memo: dict[str, Any]) -> str:
    # Every action in turn, filled with whatever slot values the customer has said; the
    # same action again only when the customer said its slots were wrong (v0: a v1
    # customer leaves after the first wrong action).
    if len(env.turns) == 1:  # a new episode
        memo.update(next=0, last="")
    if memo["last"] and _last_user(env).startswith(WRONG_SLOT):
        name = memo["last"]
    else:
        name = ACTIONS[memo["next"] % len(ACTIONS)]
        memo["next"] += 1
    memo["last"] = name
    return _action(name, _revealed_slots(env))


@dataclass(frozen=True)
class Probe:
    """One adversarial policy: how it writes a turn in each family it applies to.

    Attributes:
        name: Short name (table column, ``run_probe`` argument).
        description: What it tries, in a line.
        writers: ``task.name`` -> the turn it writes given the env (``env.unwrapped``).
    """

    name: str
    description: str
    writers: Mapping[str, Writer]

    def applies_to(self, family: str) -> bool:
        """Whether the probe has a turn for ``family`` (a ``task.name``)."""
        return PLAYED_AS.get(family, family) in self.writers

    def writer(self, family: str) -> Writer:
        """How the probe writes a turn in ``family`` (a ``task.name`` it applies to)."""
        return self.writers[PLAYED_AS.get(family, family)]


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe(
            "keywords",
            "the prompt's or topic's keywords, without content",
            {
                "copy": lambda env, memo: " ".join(env.task.words),
                "reasoning": lambda env, memo: " ".join(_content(env.problem.prompt)),
                "dialogue": lambda env, memo: " ".join(env.problem.metadata["keywords"]),
                "customer_service": lambda env, memo: " ".join([*ACTIONS, *SLOTS]),
            },
        ),
        Probe(
            "keywords_sentence",
            "the question's words and keywords in a sentence, without content",
            {"dialogue": _keyword_sentence},
        ),
        Probe(
            "repeat",
            "one fixed turn, every turn of every episode (Dialogue: a keyword of as many "
            "questions as fit; Reasoning: the most common training answer)",
            {
                "copy": lambda env, memo: " ".join(env.task.words[: env.task.length]),
                "reasoning": _reasoning_prior,
                "dialogue": lambda env, memo: _cover_words(),
                "customer_service": lambda env, memo: "[escalate order=1000 amount=100]",
            },
        ),
        Probe(
            "format",
            "the answer's format without its content",
            {
                "copy": lambda env, memo: " ".join([env.task.words[0]] * env.task.length),
                "reasoning": lambda env, memo: "answer: 0",
                "dialogue": lambda env, memo: "thank you for your question, i am happy to help.",
                "customer_service": lambda env, memo: "[status order=0]",
            },
        ),
        Probe(
            "abstain",
            "always 'i don't know'",
            {f: (lambda env, memo: ABSTENTION) for f in FAMILIES},
        ),
        Probe(
            "copy",
            "the user's last message, back",
            {f: (lambda env, memo: _last_user(env)) for f in FAMILIES},
        ),
        Probe(
            "escalate",
            "always escalate, with the slot values the customer said",
            {"customer_service": lambda env, memo: _action("escalate", _revealed_slots(env))},
        ),
        Probe(
            "spam",
            "every action in turn with the slot values the customer said (action spam; the "
            "same action again after 'that is not right')",
            {"customer_service": _spam},
        ),
    )
}


def probes_for(family: str) -> list[str]:
    """The names of the probes that apply to ``family`` (a ``task.name``)."""
    return [name for name, p in PROBES.items() if p.applies_to(family)]


class ProbeAgent:
    """A probe as an agent: SB3-style ``predict`` over the env it was made for.

    At the first token of each agent turn it writes the probe's turn (cut at whole words
    to the env's turn budget, so a probe never loses by truncation), then spells it token by
    token, ending with the end-of-turn token.

    Args:
        probe: A name of :data:`PROBES` or a :class:`Probe`.
        env: The env it plays (a wrapper is fine: the probe reads ``env.unwrapped``).

    Raises:
        ConfigError: an unknown probe name, or a probe without a turn for this family.
    """

    def __init__(self, probe: str | Probe, env: gym.Env) -> None:
        if isinstance(probe, str):
            if probe not in PROBES:
                raise ConfigError(
                    f"Unknown probe {probe!r}.{did_you_mean(probe, PROBES)} Known probes: "
                    f"{list(PROBES)}."
                )
            probe = PROBES[probe]
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, TextEnv):
            raise TypeError(f"Probes play textgym envs, got {type(unwrapped).__name__}.")
        family = unwrapped.task.name
        if not probe.applies_to(family):
            raise ConfigError(
                f"Probe {probe.name!r} has no turn for the {family!r} family; it applies to "
                f"{sorted(probe.writers)}. Probes for {family!r}: {probes_for(family)}."
            )
        self.probe, self.env = probe, unwrapped
        self._write = probe.writer(family)
        self._memo: dict[str, Any] = {}
        self._ids: list[int] = []

    def turn_text(self) -> str:
        """The probe's next turn in the env's current state, within the turn budget."""
        env = self.env
        words = self._write(env, self._memo).split()
        budget = env.max_new_tokens - 1  # the end-of-turn token closes the turn
        while words and len(env.episode.codec.encode(" ".join(words))) > budget:
            words.pop()
        return " ".join(words)

    def predict(
        self, observation: Any, deterministic: bool = True, action_masks: Any = None
    ) -> tuple[int, None]:
        """The next token of the probe's turn (``observation`` and masks are not needed:
        the probe writes whole turns from the env's state)."""
        written = len(self.env.episode.turn_ids())
        if written == 0:
            self._ids = self.env.encode_turn(self.turn_text())
        if written < len(self._ids):
            return self._ids[written], None
        return self.env.chat.eot_id, None


def run_probe(
    probe: str | Probe,
    env: gym.Env | str,
    n_episodes: int = 100,
    seed: int = 0,
    **make_kwargs: Any,
) -> EvalResult:
    """Play ``probe`` for ``n_episodes`` (episode ``i`` reset with ``seed + i``).

    Args:
        probe: A name of :data:`PROBES` or a :class:`Probe`.
        env: An env, or a registered id made with ``make_kwargs`` (e.g. ``split="test"``).
        n_episodes: Episodes to play.
        seed: Seed of the first episode.

    Returns:
        The :class:`~agents.common.EvalResult`: ``success_rate``, ``mean_return``, ...
    """
    if isinstance(env, str):
        env = gym.make(env, **make_kwargs)
    elif make_kwargs:
        raise ConfigError(
            f"run_probe got env arguments {sorted(make_kwargs)} with an env instance; pass "
            "them with an env id, or configure the env yourself."
        )
    return evaluate_policy(ProbeAgent(probe, env), env, n_episodes=n_episodes, seed=seed)


def fails_rule(probe_success: float, random_success: float, margin: float = MARGIN) -> bool:
    """Whether a probe's success beats the random policy's by more than ``margin``."""
    return probe_success - random_success > margin + 1e-12
