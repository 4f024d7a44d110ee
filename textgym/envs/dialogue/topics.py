"""The Dialogue family's topics: each a handful of questions, with the oracle's answers and
the keywords an answer must mention."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from textgym.rewards.text import STOPWORDS
from textgym.types import Problem, Turn
from textgym.words import text_words


class QuestionReading:
    """A question's keywords and reference answer as words: what the strict judge
    (:mod:`textgym.envs.dialogue.judge`) compares a turn with, worked out once per question
    rather than at every turn end.

    Attributes:
        needles: Each keyword's words.
        singles: The keywords' words when every keyword is one word, else ``None``.
        dead: Some keyword has no words, so no turn mentions every keyword.
        news: The reference answer's content words (without
            :data:`~textgym.rewards.text.STOPWORDS`).
        facts: Those of them that are no keyword's words.
        sentence: The answer has more words than the question has keywords.
    """

    __slots__ = ("needles", "singles", "dead", "news", "facts", "sentence")

    def __init__(self, keywords: Sequence[str], answer: str) -> None:
        self.needles = tuple(text_words(k) for k in keywords)
        self.dead = not all(self.needles)
        one_word = all(len(n) == 1 for n in self.needles)
        self.singles = frozenset(n[0] for n in self.needles) if one_word else None
        answer_words = text_words(answer)
        self.news = tuple(w for w in answer_words if w not in STOPWORDS)
        self.facts = frozenset(self.news) - {w for n in self.needles for w in n}
        self.sentence = len(answer_words) > len(keywords)


@dataclass(frozen=True)
class Question:
    """One thing the user wants to know.

    Attributes:
        text: How the user first asks it.
        rephrased: How the user asks again when the answer missed.
        answer: The oracle's answer.
        keywords: Words an answer must mention (at least half of them) to count.
    """

    text: str
    rephrased: str
    answer: str
    keywords: tuple[str, ...]

    @functools.cached_property
    def reading(self) -> QuestionReading:
        """The keywords and the answer as words, read once (not a field: equality, hashing
        and ``repr`` stay the four fields')."""
        return QuestionReading(self.keywords, self.answer)


Q = Question
TOPICS: dict[str, tuple[Question, ...]] = {
    "cooking": (
        Q("how long should i boil an egg?", "how many minutes does an egg need to boil?",
          "boil the egg for about ten minutes.", ("boil", "minutes")),
        Q("how do i make rice soft?", "how much water do i use for rice?",
          "use two cups of water for each cup of rice.", ("water", "cup")),
        Q("what should i add to make soup taste better?", "how can soup taste better?",
          "add salt and fresh herbs to the soup.", ("salt", "herbs")),
        Q("how hot should the oven be for bread?", "how many degrees for bread?",
          "bake bread in a hot oven, about two hundred degrees.", ("oven", "degrees")),
    ),
    "travel": (
        Q("what should i pack for a short trip?", "what do i need for a short trip?",
          "pack light clothes, a charger and your passport.", ("clothes", "passport")),
        Q("when should i book a flight?", "how early should i book a flight?",
          "book your flight about two months early for a good price.", ("book", "early")),
        Q("how early should i get to the airport?", "when should i arrive at the airport?",
          "arrive at the airport two hours before your flight.", ("hours", "airport")),
        Q("how can i save money on hotels?", "how do i pay less for a hotel?",
          "compare prices online and stay a bit outside the city.", ("prices", "city")),
    ),
    "pets": (
        Q("how often should i feed my dog?", "how many times a day does a dog eat?",
          "feed an adult dog twice a day.", ("twice", "day")),
        Q("how do i keep my cat happy?", "what does a cat need to be happy?",
          "play with your cat every day and give it a place to climb.", ("play", "climb")),
        Q("how often should i walk my dog?", "how often does a dog need a walk?",
          "walk your dog at least two times a day.", ("walk", "times")),
        Q("what do fish need in a tank?", "what should a fish tank have?",
          "fish need clean water, a filter and some plants.", ("water", "filter")),
    ),
    "fitness": (
        Q("how often should i exercise?", "how much exercise do i need?",
          "exercise for thirty minutes on most days of the week.", ("minutes", "week")),
        Q("how much water should i drink?", "how many glasses of water a day?",
          "drink about eight glasses of water a day.", ("glasses", "water")),
        Q("how can i sleep better?", "what helps me sleep?",
          "go to bed at the same time and avoid screens at night.", ("bed", "screens")),
        Q("what should i eat after a workout?", "what is good to eat after exercise?",
          "eat some protein and fruit after your workout.", ("protein", "fruit")),
    ),
    "gardening": (
        Q("how often should i water my plants?", "when do plants need water?",
          "water your plants when the soil feels dry.", ("soil", "dry")),
        Q("when should i plant tomatoes?", "what month is good for tomatoes?",
          "plant tomatoes in spring after the last frost.", ("spring", "frost")),
        Q("how much sun do roses need?", "how many hours of sun for roses?",
          "roses need at least six hours of sun a day.", ("six", "hours")),
        Q("how do i keep bugs off my plants?", "how do i get bugs off plants?",
          "spray the leaves with soapy water.", ("spray", "leaves")),
    ),
    "computers": (
        Q("how do i make my computer faster?", "how can my computer be fast again?",
          "close unused programs and restart your computer.", ("close", "restart")),
        Q("how can i keep my files safe?", "how do i not lose my files?",
          "copy your files to a cloud drive every week.", ("copy", "cloud")),
        Q("how do i make a strong password?", "what is a good password?",
          "use a long password with letters, numbers and symbols.", ("long", "symbols")),
        Q("what should i do if my laptop gets too hot?", "how do i cool my laptop?",
          "keep the vents clean and use it on a hard surface.", ("vents", "surface")),
    ),
    # One-word answers for the tiny variant (tabular agents).
    "basics": (
        Q("is ice hot or cold?", "ice: hot or cold?", "cold", ("cold",)),
        Q("is fire hot or cold?", "fire: hot or cold?", "hot", ("hot",)),
        Q("is the sky blue or green?", "sky: blue or green?", "blue", ("blue",)),
        Q("is grass blue or green?", "grass: blue or green?", "green", ("green",)),
        Q("do fish swim or fly?", "fish: swim or fly?", "swim", ("swim",)),
        Q("do birds swim or fly?", "birds: swim or fly?", "fly", ("fly",)),
    ),
}  # fmt: skip
#: Every topic but the tiny variant's one-word questions.
REGULAR_TOPICS = tuple(t for t in TOPICS if t != "basics")
for _questions in TOPICS.values():
    for _q in _questions:
        _q.reading  # noqa: B018 - read now, together, not at some episode's first turn end
del _questions, _q


def question(problem: Problem, index: int) -> Question:
    """The ``index``-th question of the user's goal."""
    topic, i = problem.metadata["goal"][index]
    return TOPICS[topic][i]


def current_question(problem: Problem, turns: Sequence[Turn]) -> int:
    """Which goal question the user's last message asks (by its wording), else 0."""
    last = next((t.text for t in reversed(turns) if t.role == "user"), "")
    found = 0
    for k in range(len(problem.metadata["goal"])):
        q = question(problem, k)
        if q.text in last or q.rephrased in last:
            found = k
    return found


__all__ = [
    "REGULAR_TOPICS",
    "TOPICS",
    "Question",
    "QuestionReading",
    "current_question",
    "question",
]
