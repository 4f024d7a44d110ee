"""Tasks from external data: reasoning-gym generators (ReasoningGym) and your own rows (Dataset),
their answer formats and judges, and the open default tokenizer they use."""

from __future__ import annotations

import inspect
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym
from textgym.core import OPEN_TOKENIZER_PATH, TextEnv
from textgym.envs.external.answers import AnswerTemplate
from textgym.envs.external.budgets import default_tokens
from textgym.envs.external.dataset import DatasetTask, gold_answer
from textgym.envs.external.reasoning_gym import ReasoningGymTask, entry, score
from textgym.errors import ConfigError, UserError
from textgym.rewards.math_verify import MissingExtraError, answers_match, require
from textgym.tasks import TASKS
from textgym.tokenizer import default_tokenizer, load_tokenizer
from textgym.types import Problem, RewardContext, Turn

datasets = pytest.importorskip("datasets")
pytest.importorskip("reasoning_gym")
pytest.importorskip("math_verify")

REASONING_GYM_IDS = [i for i in textgym.env_ids() if i.startswith("textgym/ReasoningGym")]
#: Generators whose gold answers the oracle must carry to a full score on held-out items.
GENERATORS = (
    "chain_sum", "basic_arithmetic", "products", "gcd", "lcm", "count_bits", "leg_counting",
    "fraction_simplification", "base_conversion", "bitwise_arithmetic", "spell_backward",
    "letter_counting", "word_sorting", "caesar_cipher", "word_sequence_reversal",
    "family_relationships", "syllogism",
)  # fmt: skip
ROWS = [
    {"prompt": "What is half of one?", "answer": "1/2"},
    {"prompt": "Simplify 2/4.", "answer": "\\frac{1}{2}"},
    {"prompt": "Expand (x+1)^2.", "answer": "x^2+2x+1"},
    {"prompt": "Capital of France?", "answer": "Paris"},
    {"prompt": "Natalia sold 48 clips in April and half as many in May. How many in all?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24.\n48+24 = <<48+24=72>>72.\n#### 72"},
    {"prompt": "Which emoji is a cat? 🐱 or 🐶", "answer": "🐱"},
    {"prompt": "Say 'déjà vu' backwards.", "answer": "uv àjéd"},
    {"prompt": "How many legs has a spider?", "answer": 8, "tags": ["animals", "counting"]},
] + [{"prompt": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(30)]  # fmt: skip


def judge_text(task: Any, problem: Problem, text: str) -> tuple[float, bool]:
    """The default reward and success of ``text`` as the agent's whole turn on ``problem``."""
    ctx = RewardContext(
        problem, (Turn("user", problem.prompt), Turn("agent", text)), text, np.zeros(0, np.int64)
    )
    return float(task.default_reward()(ctx)), bool(task.success(ctx))


def play_oracle(env: gym.Env, seed: int) -> dict[str, Any]:
    env.reset(seed=seed)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        done = terminated or truncated
    return info


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), "utf-8")
    return path


@pytest.fixture(scope="module")
def env_kwargs(jsonl: Path) -> dict[str, dict[str, Any]]:
    """What each new id is made with (Dataset-v0 needs data)."""
    return {**{i: {} for i in REASONING_GYM_IDS}, "textgym/Dataset-v0": {"data": str(jsonl)}}


NEW_IDS = [*REASONING_GYM_IDS, "textgym/Dataset-v0"]


# -- every new id: the field's checks, determinism, pickling, fuzzing ---------------------


@pytest.mark.parametrize("env_id", NEW_IDS)
def test_check_envs_determinism_pickling_and_fuzzing(env_id: str, env_kwargs: dict) -> None:
    kwargs = env_kwargs[env_id]
    env = gym.make(env_id, **kwargs)
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)
    assert env.unwrapped.tokenizer is load_tokenizer(OPEN_TOKENIZER_PATH)  # open text, open vocab
    # The same seed gives the same episode; a pickled env continues exactly like its original.
    a, b = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    assert a.reset(seed=4)[0]["input_ids"].tolist() == b.reset(seed=4)[0]["input_ids"].tolist()
    a.step(a.unwrapped.oracle_action())
    clone = pickle.loads(pickle.dumps(a))
    rng = np.random.default_rng(0)
    eot = a.unwrapped.chat.eot_id
    for _ in range(150):
        action = eot if rng.random() < 0.1 else int(rng.integers(a.action_space.n))
        ra, rc = a.step(action), clone.step(action)
        assert np.array_equal(ra[0]["input_ids"], rc[0]["input_ids"]) and ra[1:4] == rc[1:4]
        assert a.observation_space.contains(ra[0]) and np.isfinite(ra[1])
        if ra[2] or ra[3]:
            assert not (ra[2] and ra[3]) and "success" in ra[4]
            seed = int(rng.integers(1000))
            assert np.array_equal(
                a.reset(seed=seed)[0]["input_ids"], clone.reset(seed=seed)[0]["input_ids"]
            )
    prompts = {env.reset(seed=s)[0]["input_ids"].tobytes() for s in range(10)}
    assert len(prompts) > 1
    assert all(play_oracle(env, seed)["success"] for seed in range(3))


def test_the_ids_list_and_name_their_needs() -> None:
    assert {"textgym/ReasoningGym-v0", "textgym/Dataset-v0"} <= set(textgym.env_ids())
    assert {"textgym/ReasoningGym-Arithmetic-v0", "textgym/ReasoningGym-Algebra-v0",
            "textgym/ReasoningGym-Logic-v0", "textgym/ReasoningGym-Strings-v0"} <= set(REASONING_GYM_IDS)  # fmt: skip
    with pytest.raises(ConfigError, match=r"needs data=.*JSONL"):
        gym.make("textgym/Dataset-v0")
    # A missing extra is named with the way to install it.
    with pytest.raises(MissingExtraError, match=r"pip install 'textgym\[data\]'"):
        require("textgym_no_such_package", "This test")
    # The closed vocabulary of the suite's own envs is unchanged.
    copy = gym.make("textgym/Copy-v0").unwrapped
    assert copy.tokenizer is default_tokenizer() and copy.vocab_size == len(default_tokenizer())
    assert not any(
        cls.open_text for name, cls in TASKS.items() if name not in ("reasoning_gym", "dataset")
    )


# -- ReasoningGym ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_oracle_scores_full_on_300_held_out_items_and_wrong_answers_less(name: str) -> None:
    task = ReasoningGymTask(name, split="test")
    rng = np.random.default_rng(11)
    held_out: dict[str, Problem] = {}
    for _ in range(3000):
        problem = task.sample(rng)
        held_out.setdefault(problem.metadata["question"], problem)
        if len(held_out) == 300:
            break
    assert len(held_out) == 300
    problems = list(held_out.values())
    for problem in problems:
        assert problem.metadata["split"] == "test"
        assert judge_text(task, problem, task.oracle(problem, ())) == (pytest.approx(1.1), True)
    # Another item's answer, or no answer at all, scores below the gold one.
    for problem, other in zip(problems[:40], problems[1:41], strict=True):
        if other.answer.strip().lower() != problem.answer.strip().lower():
            reward, success = judge_text(task, problem, f"answer: {other.answer}")
            assert reward < 1.1 and not success, (problem.answer, other.answer)
    assert judge_text(task, problems[0], "no idea") == (pytest.approx(-0.5), False)
    assert judge_text(task, problems[0], "I don't know.") == (pytest.approx(0.1), False)
    # Played through the env, token by token, with the open tokenizer.
    env = TextEnv(task)
    assert all(play_oracle(env, seed)["success"] for seed in range(3))


def test_train_and_test_never_share_a_question() -> None:
    # A small problem space (2 one-digit terms), so that a leak would show.
    kwargs = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    train = ReasoningGymTask("chain_sum", split="train", **kwargs)
    test = ReasoningGymTask("chain_sum", split="test", **kwargs)
    rng = np.random.default_rng(0)
    seen = {s: {t.sample(rng).metadata["question"] for _ in range(1500)} for s, t in
            (("train", train), ("test", test))}  # fmt: skip
    assert len(seen["train"]) > 100 and len(seen["test"]) > 20
    assert not seen["train"] & seen["test"]
    # The same holds through gym.make, and train/test envs share their spaces.
    a = gym.make("textgym/ReasoningGym-v0", split="train", **kwargs).unwrapped
    b = gym.make("textgym/ReasoningGym-v0", split="test", **kwargs).unwrapped
    assert a.task.max_length == b.task.max_length
    prompts = {
        s: {e.reset(seed=i)[1]["prompt"] for i in range(60)} for s, e in (("a", a), ("b", b))
    }
    assert not prompts["a"] & prompts["b"]


def test_config_reaches_the_generator_and_sets_difficulty() -> None:
    env = gym.make("textgym/ReasoningGym-v0", dataset="chain_sum", min_terms=5, max_terms=5)
    for seed in range(5):
        env.reset(seed=seed)
        problem = env.unwrapped.problem
        assert entry(problem)["metadata"]["num_terms"] == 5
        assert problem.prompt.endswith(
            "End your reply with your final answer, written as: answer: X"
        )
    # Misspelt settings are refused with the generator's own fields, before any work.
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_term'.*'max_terms'"):
        gym.make("textgym/ReasoningGym-v0", dataset="chain_sum", max_term=3)
    with pytest.raises(ConfigError, match=r"no generator 'chain_summ'.*'chain_sum'"):
        gym.make("textgym/ReasoningGym-v0", dataset="chain_summ")
    with pytest.raises(ConfigError, match=r"refused the config of 'chain_sum'.*max_terms"):
        gym.make("textgym/ReasoningGym-v0", dataset="chain_sum", min_terms=4, max_terms=2)
    with pytest.raises(ConfigError, match=r"'rush_hour' generator gives no gold answer"):
        gym.make("textgym/ReasoningGym-v0", dataset="rush_hour")
    assert "max_terms" in inspect.signature(ReasoningGymTask).parameters


def test_a_mix_draws_each_generator_by_its_weight_and_scores_with_each() -> None:
    task = ReasoningGymTask({"chain_sum": 3, "spell_backward": 1}, split="train")
    rng = np.random.default_rng(0)
    problems = [task.sample(rng) for _ in range(400)]
    share = np.mean([p.metadata["dataset"] == "chain_sum" for p in problems])
    assert 0.65 < share < 0.85
    for problem in problems[:50]:
        assert judge_text(task, problem, task.oracle(problem, ()))[1]
    # reasoning-gym's own composite form, with a config per member.
    mix = gym.make("textgym/ReasoningGym-v0", dataset="composite", datasets=[
        {"name": "products", "weight": 1, "config": {"max_digits": 2}},
        {"name": "gcd", "weight": 1, "config": {}},
    ]).unwrapped  # fmt: skip
    assert all(play_oracle(mix, seed)["success"] for seed in range(6))
    with pytest.raises(ConfigError, match="datasets="):
        ReasoningGymTask({"chain_sum": 1, "gcd": 1}, max_terms=3)


def test_the_answer_format_is_configurable_and_stated_in_the_prompt() -> None:
    env = gym.make("textgym/ReasoningGym-v0", answer_format="<answer>{answer}</answer>")
    task = env.unwrapped.task
    assert "written as: <answer>X</answer>" in env.reset(seed=0)[1]["prompt"]
    assert task.reward_spec == (
        "score_answer(template='<answer>{answer}</answer>') + "
        "0.1*answer_format(template='<answer>{answer}</answer>')"
    )
    # The spec rebuilds the same reward (reward= as everywhere).
    same = gym.make("textgym/ReasoningGym-v0", answer_format="<answer>{answer}</answer>",
                    reward=task.reward_spec)  # fmt: skip
    problem = env.unwrapped.problem
    for text in (f"so <answer>{problem.answer}</answer>", f"answer: {problem.answer}", "x"):
        ctx = RewardContext(problem, (), text, np.zeros(0, np.int64))
        assert same.unwrapped.reward(ctx) == env.unwrapped.reward(ctx)
    assert judge_text(task, problem, f"answer: {problem.answer}")[1] is False  # wrong format
    boxed = AnswerTemplate("\\boxed{{answer}}")
    assert boxed.extract("so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert AnswerTemplate().extract("5+3=8. Answer : 8") == "8"
    with pytest.raises(ConfigError, match=r"one \{answer\} slot"):
        AnswerTemplate("answer:")


def test_partial_credit_can_be_turned_off_where_it_is_gamed() -> None:
    # products' score_answer pays len(gold) / len(answer) to an answer containing the gold
    # one: "10" earns half of "0"'s credit. partial=False counts only the exact product.
    products = dict(dataset="products", min_terms=2, max_terms=2)
    partial = gym.make("textgym/ReasoningGym-v0", **products)
    exact = gym.make(
        "textgym/ReasoningGym-v0", **products,
        reward="score_answer(partial=False) + 0.1*answer_format",
    )  # fmt: skip
    assert "partial=False" in repr(exact.unwrapped.reward)
    for env in (partial, exact):
        env.reset(seed=0)
    problem = exact.unwrapped.problem
    gold = str(problem.answer)

    def reward(env: gym.Env, text: str) -> float:  # noqa: E306
        return env.unwrapped.reward(RewardContext(problem, (), text, np.zeros(0, np.int64)))

    right, padded, wrong = f"answer: {gold}", f"answer: {gold}4", "answer: x"
    assert reward(partial, padded) > reward(partial, wrong)  # the gameable credit
    assert reward(exact, padded) == reward(exact, wrong) < 0 < reward(exact, right)
    assert reward(exact, right) == reward(partial, right)
    abstained = reward(exact, "I don't know.")
    assert abstained == reward(partial, "I don't know.") and reward(exact, wrong) < abstained
    with pytest.raises(ValueError, match="partial must be True or False"):
        gym.make("textgym/ReasoningGym-v0", reward="score_answer(partial=1)")


def test_the_lists_and_abstain_variants_price_what_they_say() -> None:
    def reward(env: gym.Env, text: str) -> float:
        ctx = RewardContext(env.unwrapped.problem, (), text, np.zeros(0, np.int64))
        return env.unwrapped.reward(ctx)

    # word_sequence_reversal's score_answer pays the gold list plus a word most of a point;
    # Lists-v0 pays it as a wrong answer, and so the words in their given order.
    lists = gym.make("textgym/ReasoningGym-Lists-v0")
    lists.reset(seed=3)
    problem = lists.unwrapped.problem
    gold = str(problem.answer)
    given = ", ".join(reversed(gold.split(", ")))
    assert score(problem, f"{gold}, the") > 0.5
    assert reward(lists, f"answer: {gold}") == pytest.approx(1.1)
    for wrong in (f"answer: {gold}, the", f"answer: {given}", "answer: x"):
        assert reward(lists, wrong) == pytest.approx(-0.4), wrong
    # Lists-Abstain: a wrong answer costs -1, so "I don't know" pays below P(right) = 1/2.
    strict = gym.make("textgym/ReasoningGym-Lists-Abstain-v0")
    strict.reset(seed=3)
    right = f"answer: {strict.unwrapped.problem.answer}"
    assert reward(strict, right) == pytest.approx(1.1)
    assert reward(strict, "answer: x") == pytest.approx(-0.9)
    assert reward(strict, "i don't know.") == pytest.approx(0.1)


# -- Dataset --------------------------------------------------------------------------------


def test_dataset_from_jsonl_plays_every_row_in_a_seeded_hash_split(jsonl: Path) -> None:
    envs = {
        s: gym.make("textgym/Dataset-v0", data=str(jsonl), split=s).unwrapped
        for s in ("train", "test")
    }
    rows = {s: set(e.task.rows.prompts) for s, e in envs.items()}
    assert rows["train"] and rows["test"] and not rows["train"] & rows["test"]
    assert len(rows["train"]) + len(rows["test"]) == len(ROWS)
    for env in envs.values():
        task = env.task
        for i in range(len(task.rows)):
            problem = Problem(task.rows.prompts[i], task.rows.golds[i], {})
            assert judge_text(task, problem, task.oracle(problem, ())) == (pytest.approx(1.1), True)
        assert all(play_oracle(env, seed)["success"] for seed in range(10))
    # The other columns are the metadata, frozen (infos never share a mutable object).
    spider = DatasetTask(str(jsonl), test_fraction=0.0)
    assert spider.rows.extras[7]["tags"] == ("animals", "counting")
    other = DatasetTask(str(jsonl), split="test", seed=1)
    assert set(other.rows.prompts) != rows["test"]  # another seed holds out other prompts


def test_dataset_from_a_datasets_dataset_and_given_splits(jsonl: Path) -> None:
    table = datasets.Dataset.from_list([{**r, "answer": str(r["answer"])} for r in ROWS])
    env = gym.make("textgym/Dataset-v0", data=table).unwrapped
    assert all(play_oracle(env, seed)["success"] for seed in range(10))
    # A split column, a DatasetDict and a dict of files each give the splits.
    marked = [{**r, "split": "test" if i % 4 == 0 else "train"} for i, r in enumerate(ROWS)]
    assert len(DatasetTask(marked, split="test").rows) == len(ROWS[::4])
    both = datasets.DatasetDict(
        {"train": table.select(range(20)), "test": table.select(range(20, 38))}
    )
    assert len(DatasetTask(both, split="test").rows) == 18
    assert len(DatasetTask({"train": str(jsonl), "test": ROWS[:3]}, split="test").rows) == 3
    with pytest.raises(ConfigError, match=r"no 'test' split; its splits are \['train'\]"):
        DatasetTask({"train": ROWS}, split="test")
    # Open text survives the tokenizer: the context decodes back to the prompt.
    env.reset(options={"problem": Problem("Which emoji is a cat? 🐱 or 🐶 (déjà vu)", "🐱")})
    assert "🐱 or 🐶 (déjà vu)" in env.tokenizer.decode(env.context_ids.tolist())


def test_math_answers_agree_by_math_verify_and_text_exactly() -> None:
    for a, b in [("1/2", "0.5"), ("1/2", "\\frac{1}{2}"), ("0.5", "\\frac{1}{2}"),
                 ("x^2+2x+1", "(x+1)^2"), ("1,000", "1000"), ("72", "\\boxed{72}")]:  # fmt: skip
        assert answers_match(a, b) and answers_match(b, a), (a, b)
    assert not answers_match("1/2", "1/3")
    assert answers_match("Paris", "paris.") and not answers_match("Paris", "Sirap")
    assert answers_match("12", "12.000", "numeric") and not answers_match("12", "13", "numeric")
    task = DatasetTask([{"prompt": "Half of one?", "answer": "1/2"}], test_fraction=0.0)
    half = task.sample(np.random.default_rng(0))
    assert half.answer == "1/2"
    for text in ("answer: 0.5", "answer: \\frac{1}{2}", "It is 2/4, so answer: 1/2"):
        assert judge_text(task, half, text) == (pytest.approx(1.1), True), text
    assert judge_text(task, half, "answer: 0.25") == (pytest.approx(-0.4), False)


def test_gsm8k_answers_and_column_choices(tmp_path: Path) -> None:
    assert gold_answer("She sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "row") == "72"
    gsm = [{"question": "How many clips?", "answer": "48/2 = 24\n#### 72"}]
    task = DatasetTask(gsm, prompt_key="question", split="train", test_fraction=0.0)
    problem = task.sample(np.random.default_rng(0))
    assert problem.answer == "72" and judge_text(task, problem, "answer: 72")[1]
    path = tmp_path / "rows.csv"
    path.write_text("question,solution\nWhat is 1+1?,2\nWhat is 007?,007\n", "utf-8")
    csv = DatasetTask(str(path), prompt_key="question", answer_key="solution", test_fraction=0.0)
    assert sorted(csv.rows.golds) == ["007", "2"]  # CSV cells stay text: 007 is not 7


def test_missing_file_and_column_are_named(tmp_path: Path, jsonl: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=r"No data file at '.*nope\.jsonl'"):
        gym.make("textgym/Dataset-v0", data=str(missing))
    with pytest.raises(ConfigError) as err:
        gym.make("textgym/Dataset-v0", data=str(jsonl), prompt_key="question")
    message = str(err.value)
    assert "no column 'question'" in message and "['prompt', 'answer', 'tags']" in message
    assert "prompt_key=" in message
    with pytest.raises(ConfigError, match=r"no column 'solution'.*answer_key="):
        DatasetTask(ROWS, answer_key="solution")
    with pytest.raises(ConfigError, match=r"must end in one of"):
        DatasetTask(str(tmp_path / "rows.pkl"))
    with pytest.raises(TypeError, match=r"data\[0\] is 'x'"):
        DatasetTask(["x"])
    assert issubclass(type(err.value), UserError)


# -- the open tokenizer ---------------------------------------------------------------------


def test_the_open_tokenizer_spells_any_text_in_chatml() -> None:
    tok = load_tokenizer(OPEN_TOKENIZER_PATH)
    assert 2048 <= len(tok) <= 4096
    for text in ("Spell 'naïve' ⟶ 🐱 ∫x²dx = x³/3", "\t\n  x", "12345 + 678"):
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert tok.tokenize("12345") == list("12345")  # one token per digit
    env = gym.make("textgym/ReasoningGym-v0").unwrapped
    env.reset(seed=0)
    rendered = tok.apply_chat_template(
        env.messages(), add_generation_prompt=True, return_dict=False
    )
    assert env.context_ids.tolist() == rendered
    assert tok.convert_ids_to_tokens(env.context_ids.tolist()[:1]) == ["<|im_start|>"]


def test_the_open_tokenizer_build_is_reproducible() -> None:
    from textgym.tools.build_open_tokenizer import build

    texts = ["answer: 42", "Spell 'naïve' backwards", "chain sum 3 + 4 - 5 =", "🐱 🐶"] * 5
    one, two = build(texts, vocab_size=300), build(texts, vocab_size=300)
    assert one.backend_tokenizer.to_str() == two.backend_tokenizer.to_str()
    assert one.chat_template == load_tokenizer(OPEN_TOKENIZER_PATH).chat_template


def test_budgets_count_the_default_tokenizers_tokens_and_fit_other_tokenizers() -> None:
    from textgym.chat import encode_plain

    task = ReasoningGymTask({"knights_knaves": 1, "emoji_mystery": 1, "circuit_logic": 1})
    rng = np.random.default_rng(0)
    for problem in (task.sample(rng) for _ in range(30)):
        for text in (problem.prompt, task.oracle(problem, ()), " a  b ", ""):
            assert default_tokens(text) == len(encode_plain(default_tokenizer(), text))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt cut to fit would warn
        # The closed tokenizer spells an equation's answer, not the knights' names (below).
        for dataset, tok in (("knights_knaves", None), ("simple_equations", default_tokenizer())):
            env = TextEnv("reasoning_gym", dataset=dataset, tokenizer=tok)
            for seed in range(20):
                env.reset(seed=seed)
    with pytest.raises(ConfigError, match="cannot write this task's answers.*<unk>"):
        TextEnv("reasoning_gym", dataset="knights_knaves", tokenizer=default_tokenizer())


def test_the_class_reward_specs_are_the_default_arguments_ones(jsonl: Path) -> None:
    assert ReasoningGymTask.reward_spec == ReasoningGymTask().reward_spec
    assert DatasetTask.reward_spec == DatasetTask(str(jsonl)).reward_spec


@pytest.mark.parametrize("missing", ["reasoning_gym", "math_verify", "datasets"])
def test_without_the_data_extra_the_ids_list_and_making_one_names_it(
    missing: str, jsonl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, missing, None)  # as if not installed
    assert "textgym/ReasoningGym-Arithmetic-v0" in textgym.env_ids()
    make = {
        "reasoning_gym": lambda: gym.make("textgym/ReasoningGym-Arithmetic-v0", seed=987),
        "math_verify": lambda: gym.make("textgym/Dataset-v0", data=ROWS[:3], test_fraction=0.0),
        "datasets": lambda: gym.make("textgym/Dataset-v0", data=str(jsonl)),
    }[missing]
    with pytest.raises(ModuleNotFoundError, match=rf"'{missing}'.*pip install 'textgym\[data\]'"):
        make()
