"""CustomerService: find a customer's hidden intent, collect its slots, act by the policy.

The customer (:class:`~textgym.envs.customer_service.customer.ScriptedCustomer`) opens with a message that
may or may not reveal what it wants, answers questions about its order number, amount,
email and zip code, rephrases when it is not understood, and leaves when the conversation
takes too long. The agent resolves the case with one action in brackets::

    [refund order=4821 amount=35]      [escalate order=4821 amount=150]
    [status order=4821]                [address order=4821 zip=50213]
    [reset email=ann@mail.com]         [cancel order=4821]       [complaint order=4821]

The stated policy: refunds over ``refund_limit`` dollars must be escalated, not refunded.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence

import numpy as np

from textgym.envs.customer_service.actions import (
    _GOLD_TEMPLATES,
    ACTIONS,
    INTENTS,
    SLOTS,
    Action,
    gold_action,
    parse_action,
)
from textgym.envs.customer_service.customer import (
    CLARIFICATIONS,
    ScriptedCustomer,
    customer_lines,
)
from textgym.envs.names import FEMALE_NAMES, MALE_NAMES
from textgym.rewards.base import Reward
from textgym.rewards.registry import register_reward
from textgym.rewards.spec import parse_reward
from textgym.tasks.base import Task
from textgym.tasks.checks import check_bool, check_callable, check_int, check_names, check_real
from textgym.tasks.splits import Split, check_split, sample_in_split, split_of
from textgym.types import Problem, RewardContext, Turn
from textgym.users.base import Responder
from textgym.words import text_words

#: How the agent (and the oracle) names a slot when asking for it.
SLOT_NAMES = {"order": "order number", "amount": "order amount", "email": "email",
              "zip": "new zip code"}  # fmt: skip

#: Openings that state the intent; ``{order}`` openings also reveal the order number.
OPENINGS: dict[str, tuple[str, ...]] = {
    "refund": (
        "i want a refund for my order.",
        "i would like my money back for order {order}.",
        "please refund my order {order}.",
    ),
    "order_status": (
        "where is my order?",
        "my order {order} has not arrived yet.",
        "can you tell me the status of my order?",
    ),
    "address_change": (
        "i need to change the delivery address of my order.",
        "i moved. please change the address for order {order}.",
    ),
    "password_reset": (
        "i forgot my password.",
        "i can not log in to my account. please reset my password.",
    ),
    "cancellation": ("i want to cancel my order.", "please cancel order {order}."),
    "complaint": (
        "i want to make a complaint about my order.",
        "i am very unhappy with order {order}.",
    ),
}
#: Openings that hide the intent: the agent has to ask.
AMBIGUOUS_OPENINGS = (
    "hi, i have a problem.",
    "hello, i need some help with my order.",
    "hi, can you help me?",
)
#: Words that reveal an intent in the customer's messages (the oracle listens for these).
INTENT_CUES: dict[str, tuple[str, ...]] = {
    "refund": ("refund", "money back"),
    "order_status": ("status", "where is", "arrived"),
    "address_change": ("address",),
    "password_reset": ("password", "log in"),
    "cancellation": ("cancel",),
    "complaint": ("complaint", "unhappy"),
}
#: Upper bounds on the settings: the context grows with patience (tiny variants), and
#: amounts are drawn as 64-bit integers.
MAX_PATIENCE = 1000
MAX_AMOUNT = 1_000_000_000
EMAIL_DOMAINS = ("mail.com", "post.com", "web.net")
#: sample_in_split's number of draws before it gives up, kept in step with it.
_MAX_TRIES: int = inspect.signature(sample_in_split).parameters["max_tries"].default
#: What :meth:`CustomerServiceTask._choices` draws: intent, customer, order, amount, email,
#: zip, ambiguous, opening template, case key, split.
_Choices = tuple[str, str, int, int, str, int, bool, str, str, str]


def detect_intent(text: str) -> str | None:
    """The intent a customer message reveals, if any (word-level cue match)."""
    padded = " " + " ".join(text_words(text)) + " "
    for intent, cues in INTENT_CUES.items():
        if any(f" {cue} " in padded for cue in cues):
            return intent
    return None


# -- rewards ------------------------------------------------------------------------------


class Resolution(Reward):
    """1.0 on the turn whose action resolves the case correctly (per the customer), else 0."""

    name = "resolution"

    def __call__(self, ctx: RewardContext) -> float:
        # ctx.outcome, without the property call and the {} it makes for "no outcome".
        outcome = getattr(ctx.reply, "outcome", None)
        return 1.0 if outcome and outcome.get("resolved") else 0.0


class PolicyCompliance(Reward):
    """-1.0 on a turn that breaks the stated policy (a refund over the limit), else 0.

    A penalty rather than a per-turn bonus, so that talking longer earns nothing.
    """

    name = "policy"

    def __call__(self, ctx: RewardContext) -> float:
        outcome = getattr(ctx.reply, "outcome", None)
        return -1.0 if outcome and outcome.get("policy_violation") else 0.0


class TurnEfficiency(Reward):
    """On the resolving turn, ``1 - (turns used - 1) / patience``; 0 on other turns.

    A bonus for resolving early that is paid once, so it cannot be farmed by talking.
    """

    name = "efficiency"

    def __call__(self, ctx: RewardContext) -> float:
        outcome = getattr(ctx.reply, "outcome", None)
        if not (outcome and outcome.get("resolved")):
            return 0.0
        patience = max(int(ctx.problem.metadata.get("patience", 1)), 1)
        return max(0.0, 1.0 - ctx.turn_index / patience)


register_reward("resolution", Resolution)
register_reward("policy", PolicyCompliance)
register_reward("efficiency", TurnEfficiency)

#: The default reward: resolution 1.0, policy 1.0 (a penalty), efficiency 0.5 (once),
#: politeness 0.05 per turn.
REWARD_SPEC = "resolution + policy + 0.5*efficiency + 0.05*politeness"


def customer_service_reward() -> Reward:
    """The default reward, built from :data:`REWARD_SPEC`."""
    return parse_reward(REWARD_SPEC)


# -- the task -----------------------------------------------------------------------------


class CustomerServiceTask(Task):
    """A customer with a hidden intent and slots; resolve it with one bracketed action.

    ## Description
    The system message states the policy (refunds over ``refund_limit`` dollars need
    escalation: :meth:`system_prompt`, which the env's ``system_prompt=`` overrides) and the
    prompt is the customer's opening, which reveals its intent (refund, order status, address
    change, password reset, cancellation, complaint) or, with ``ambiguous_rate``, hides
    it. The agent asks what the customer wants and for the slots the resolution needs
    (order number, amount, email, new zip code); the scripted customer answers every
    question it recognises, rephrases when it is not understood, and leaves after
    ``patience`` agent turns. The agent resolves the case with one action such as
    ``[refund order=1234 amount=50]`` or ``[escalate order=1234 amount=150]``. A wrong slot
    is corrected, a wrong action is refused with a restatement, and a refund over the
    limit ends the episode as a policy violation. With ``strict_actions`` (the v1 ids)
    actions are final, as in a real support system: a wrong action name or a wrong slot
    value ends the case unresolved ("that is not right. bye."). Escalation is the right
    action only for a refund over the limit; escalating any other case is a wrong action.

    ## Observation Space
    The :class:`~textgym.core.TextEnv` context, ``max_length`` 192 (tiny: 88).

    ## Action Space
    ``Discrete(V)``. Tiny variants accept a bare action word and restrict
    ``action_masks()`` to ``help``, the seven action words and end of turn.

    ## Rewards
    :data:`REWARD_SPEC` (``resolution + policy + 0.5*efficiency + 0.05*politeness``), a
    weighted sum at every turn end: ``resolution`` (1.0 on the resolving turn), ``policy``
    (-1.0 on a violation), ``efficiency`` (0.5 x ``1 - turns used / patience``, once, on
    resolution) and ``politeness`` (0.05 per turn). Components are in
    ``info["reward_components"]``.

    ## Episode End
    Terminated when the case is resolved, the policy is broken, the customer runs out
    of patience, or (``strict_actions``) any wrong action is taken; truncated when a turn
    or the context hits its length limit. ``info["success"]``: resolved with the right
    action and slots, within the policy.

    ## Arguments
    ``intents``, ``ambiguous_rate``, ``patience``, ``refund_limit``, ``max_amount``,
    ``split``, ``with_slots``, ``bare_actions``, ``strict_actions``, ``user`` (see Args
    below).

    ## Registered Configurations
    ``textgym/CustomerService-v0`` (six intents, 30% vague openings, patience 6),
    ``textgym/CustomerService-Hard-v0`` (70% vague, patience 4),
    ``textgym/CustomerService-Tiny-v0`` (refund / status / cancel, no slots, one-word turns);
    ``textgym/CustomerService-v1``, ``textgym/CustomerService-Hard-v1`` and
    ``textgym/CustomerService-Tiny-v1``: the same with ``strict_actions=True``.

    ## Version History
    * v1: actions are final (``strict_actions``). v0's customer corrected a wrong slot
      (saying the right value) and restated its intent after a wrong action, at no cost
      but a turn, so trying every action in turn resolved about half of the v0 cases and
      escalating everything resolved the refunds over the limit (8%) without ever asking
      for a slot (see ``benchmarks/results/probes.md``).
    * v0: initial release.

    Args:
        intents: Which intents customers may have (keys of :data:`INTENTS`).
        ambiguous_rate: Probability that the opening hides the intent.
        patience: Agent turns before the customer gives up and leaves (1 to 1000).
        refund_limit: Refunds above this amount must be escalated (stated in the prompt).
        max_amount: Order amounts are drawn from ``10..max_amount`` (at most 10**9).
        split: ``"train"`` or ``"test"``: disjoint cases (by intent and slot values).
        with_slots: Actions need slot values (``False`` in tiny variants: the action alone).
        bare_actions: A turn that is just an action word is that action, and
            ``action_masks()`` allows only ``help`` and the action words (tiny variants).
        strict_actions: Actions are final: a wrong action name or wrong slot values end
            the case unresolved, with no correction (v1 ids).
        user: Wraps the scripted customer, e.g. ``LMResponder.factory(path)`` to let a
            language model write the customer's words while the script judges.
    """

    name = "customer_service"
    reward_spec = REWARD_SPEC

    def __init__(
        self,
        intents: Sequence[str] = tuple(INTENTS),
        ambiguous_rate: float = 0.3,
        patience: int = 6,
        refund_limit: int = 100,
        max_amount: int = 200,
        split: Split = "train",
        with_slots: bool = True,
        bare_actions: bool = False,
        strict_actions: bool = False,
        user: Callable[[Responder], Responder] | None = None,
    ) -> None:
        intents = check_names(intents, "intents", tuple(INTENTS))
        ambiguous_rate = check_real(ambiguous_rate, "ambiguous_rate", 0.0, 1.0)
        patience = check_int(patience, "patience", 1, MAX_PATIENCE)
        refund_limit = check_int(refund_limit, "refund_limit", 10, MAX_AMOUNT)
        max_amount = check_int(max_amount, "max_amount", 10, MAX_AMOUNT)
        with_slots = check_bool(with_slots, "with_slots")
        bare_actions = check_bool(bare_actions, "bare_actions")
        strict_actions = check_bool(strict_actions, "strict_actions")
        user = check_callable(user, "user", "user=LMResponder.factory(path)")
        self.intents = tuple(intents)
        self.ambiguous_rate = ambiguous_rate
        self.patience = patience
        self.refund_limit, self.max_amount = refund_limit, max_amount
        self.split = check_split(split)
        self.with_slots, self.bare_actions = with_slots, bare_actions
        self.strict_actions = strict_actions
        self.user = user
        self.max_turns = patience
        if bare_actions:
            self.max_new_tokens, self.max_length = 2, 64 + 8 * patience
        else:
            self.max_new_tokens, self.max_length = 32, 192

    @staticmethod
    def case_key(problem: Problem) -> str:
        """The canonical key that decides the split: intent, hidden state and slot values."""
        m = problem.metadata
        # One f-string: "|".join(str(m[s]) for s in SLOTS), SLOTS spelled out.
        return (
            f"{m['intent']}|{int(m['ambiguous'])}|"
            f"{m['order']!s}|{m['amount']!s}|{m['email']!s}|{m['zip']!s}"
        )

    def _choices(self, rng: np.random.Generator) -> _Choices:
        """One case's random choices, drawn in the order they always were, with its key and
        split: a case outside the asked split is dropped before any text is written."""
        integers = rng.integers
        intents = self.intents
        # A numpy integer indexes a tuple as its int does.
        intent = intents[integers(len(intents))]
        names = MALE_NAMES if integers(2) else FEMALE_NAMES
        name = names[integers(len(names))]
        if self.with_slots:
            order = int(integers(1000, 10000))
            amount = int(integers(10, self.max_amount + 1))
            email = f"{name}@{EMAIL_DOMAINS[integers(len(EMAIL_DOMAINS))]}"
            zip_ = int(integers(10000, 100000))
            ambiguous = bool(rng.random() < self.ambiguous_rate)
            options = AMBIGUOUS_OPENINGS if ambiguous else OPENINGS[intent]
            template = options[integers(len(options))]
        else:
            # Tiny: a handful of amounts either side of the limit, nothing else to ask.
            step = max(self.max_amount // 6, 1)
            amount = step * int(integers(1, 7)) if intent == "refund" else 0
            order, email, zip_ = 0, "", 0
            ambiguous = bool(rng.random() < self.ambiguous_rate)
            if ambiguous:
                integers(len(AMBIGUOUS_OPENINGS))  # drawn, then replaced by the one below
                template = AMBIGUOUS_OPENINGS[1]
            else:
                # One option: integers(1) is always 0 and draws no bits, so it is skipped.
                template = OPENINGS[intent][0]
        key = f"{intent}|{int(ambiguous)}|{order}|{amount}|{email}|{zip_}"  # case_key
        return intent, name, order, amount, email, zip_, ambiguous, template, key, split_of(key)

    def _problem(self, choices: _Choices) -> Problem:
        """The problem of drawn choices (see :meth:`_choices`)."""
        intent, name, order, amount, email, zip_, ambiguous, opening, key, split = choices
        with_slots = self.with_slots
        if not ambiguous:
            if "{" in opening:
                opening = opening.format(order=order, amount=amount, email=email, zip=zip_)
            if not with_slots and intent == "refund":
                opening += f" it cost {amount} dollars."
        # gold_action(problem, with_slots), written out.
        gold, needed = INTENTS[intent]
        if gold == "refund" and amount > self.refund_limit:
            gold = "escalate"
        action = (
            _GOLD_TEMPLATES[intent].format(gold, order=order, amount=amount, email=email, zip=zip_)
            if with_slots
            else f"[{gold}]"
        )
        meta = {
            "intent": intent,
            "order": order,
            "amount": amount,
            "email": email,
            "zip": zip_,
            "required": needed if with_slots else (),
            "ambiguous": ambiguous,
            "refund_limit": self.refund_limit,
            "patience": self.patience,
            "customer": name,
            "opening": opening,
            "with_slots": with_slots,
            "action": action,
            "split": split,
        }
        return Problem(prompt=opening, answer=action, metadata=meta, id=f"{key}|{opening}")

    def _draw(self, rng: np.random.Generator) -> Problem:
        return self._problem(self._choices(rng))

    def sample(self, rng: np.random.Generator) -> Problem:
        # sample_in_split(self._draw, self.case_key, self.split, rng), with the key and split
        # computed once per draw and text written only for the case kept.
        split, choices = self.split, self._choices
        for _ in range(_MAX_TRIES):
            drawn = choices(rng)
            if drawn[-1] == split:
                return self._problem(drawn)
        # Nothing in the split: let sample_in_split raise its error (drawing nothing more).
        last = self._problem(drawn)
        return sample_in_split(lambda _: last, self.case_key, split, rng)

    def system_prompt(self, problem: Problem) -> str:
        """The stated policy, as the system message (the default chat template puts it
        before the customer's opening in the first user turn, as the layout always had)."""
        limit = problem.metadata.get("refund_limit", self.refund_limit)
        return f"(policy: refunds over {limit} dollars need escalation.)"

    def responder(self) -> Responder:
        scripted = ScriptedCustomer(self.bare_actions, self.strict_actions)
        return scripted if self.user is None else self.user(scripted)

    def success(self, ctx: RewardContext) -> bool:
        outcome = getattr(ctx.reply, "outcome", None) or {}  # ctx.outcome
        return bool(outcome.get("resolved")) and not outcome.get("policy_violation")

    # -- the oracle ----------------------------------------------------------------------

    @staticmethod
    def known_intent(problem: Problem, turns: Sequence[Turn]) -> str | None:
        """The intent the customer has revealed so far (the stated policy is not a cue)."""
        for i, turn in enumerate(turns):
            if turn.role != "user":
                continue
            text = problem.metadata["opening"] if i == 0 else turn.text
            intent = detect_intent(text)
            if intent is not None:
                return intent
        return None

    @staticmethod
    def revealed(problem: Problem, turns: Sequence[Turn], slot: str) -> bool:
        """Whether the customer has said the value of ``slot`` (the policy line aside)."""
        value = re.escape(str(problem.metadata[slot]))
        pattern = re.compile(rf"(?<![\w@.]){value}(?![\w@])")
        texts = [
            problem.metadata["opening"] if i == 0 else t.text
            for i, t in enumerate(turns)
            if t.role == "user"
        ]
        return any(pattern.search(text) for text in texts)

    def oracle(self, problem: Problem, turns: Sequence[Turn]) -> str:
        """Ask what the customer wants if it has not said, then every missing slot in one
        question, then act. Uses only what the customer has revealed in ``turns``."""
        intent = self.known_intent(problem, turns)
        if intent is None:
            return "help" if self.bare_actions else "hello! how can i help you?"
        if self.bare_actions:
            return gold_action(problem, with_slots=False).name
        missing = [s for s in problem.metadata["required"] if not self.revealed(problem, turns, s)]
        if missing:
            asked = " and ".join(f"your {SLOT_NAMES[s]}" for s in missing)
            return f"sorry to hear that. please tell me {asked}."
        return f"thank you. {gold_action(problem, self.with_slots)}"

    def corrupt(
        self, problem: Problem, turns: Sequence[Turn], text: str, rng: np.random.Generator
    ) -> str:
        """An annotator's slip: a wrong action, a wrong slot value, or the wrong question."""
        action = parse_action(text, self.bare_actions)
        if action is None:
            if self.bare_actions:
                return ACTIONS[int(rng.integers(len(ACTIONS)))]
            wrong = [s for s in SLOTS if s not in problem.metadata["required"]]
            return f"please tell me your {SLOT_NAMES[wrong[int(rng.integers(len(wrong)))]]}."
        kind = int(rng.integers(2)) if action.slots else 0
        if kind == 0:
            others = [a for a in ACTIONS if a != action.name]
            name = others[int(rng.integers(len(others)))]
            slots = dict(action.slots)
        else:
            name, slots = action.name, dict(action.slots)
            slot = sorted(slots)[int(rng.integers(len(slots)))]
            value = slots[slot]
            digits = [i for i, c in enumerate(value) if c.isdigit()]
            if digits:
                i = digits[int(rng.integers(len(digits)))]
                value = (
                    value[:i]
                    + str((int(value[i]) + 1 + int(rng.integers(8))) % 10)
                    + value[i + 1 :]
                )
            else:
                value = "x" + value
            slots[slot] = value
        if self.bare_actions:
            return name
        return text.replace(str(action), str(Action(name, slots)))

    def allowed_words(self) -> Sequence[str] | None:
        if self.bare_actions:
            return ["\u2581help", *(f"\u2581{a}" for a in ACTIONS)]
        return None

    def corpus(self, rng: np.random.Generator, n: int = 200) -> list[str]:
        drawn = [self._draw(rng) for _ in range(n)]
        texts = [p.prompt for p in drawn] + [self.system_prompt(p) for p in drawn]
        texts += [t for ts in OPENINGS.values() for t in ts] + list(AMBIGUOUS_OPENINGS)
        texts += [t for ts in CLARIFICATIONS.values() for t in ts]
        texts += customer_lines()
        for name in MALE_NAMES + FEMALE_NAMES:
            for domain in EMAIL_DOMAINS:
                texts.append(f"[reset email={name}@{domain}]")
        texts += [f"please tell me your {s}." for s in SLOT_NAMES.values()]
        texts += ["hello! how can i help you?", "sorry to hear that. thank you."]
        texts += [f"[{a} order=1 amount=2 zip=3]" for a in ACTIONS]
        return texts


__all__ = [
    "REWARD_SPEC",
    "CustomerServiceTask",
    "PolicyCompliance",
    "Resolution",
    "TurnEfficiency",
    "customer_service_reward",
    "detect_intent",
]
