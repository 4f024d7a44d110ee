"""textgym.integrations.trl against TRL's real contracts (reward_funcs, environment_factory,
rollout_func) and one real GRPOTrainer step on CPU with a tiny GPT-2."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types

import gymnasium as gym
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import get_json_schema

import textgym
from textgym.errors import ConfigError
from textgym.integrations import trl as tt
from textgym.integrations.problems import problem_of
from textgym.wrappers import TurnLevel

REASONING = "textgym/Reasoning-v0"


def _env_rewards(env_id: str, n: int, wrong: str | None = None) -> list[float]:
    """The env's own reward for the oracle turn (or ``wrong``) on episodes seeded 0..n-1."""
    env = TurnLevel(gym.make(env_id))
    out = []
    for seed in range(n):
        env.reset(seed=seed)
        _, reward, terminated, _, _ = env.step(wrong or env.oracle_turn())
        assert terminated
        out.append(reward)
    return out


def _oracles(env_id: str, n: int) -> list[str]:
    env = TurnLevel(gym.make(env_id))
    texts = []
    for seed in range(n):
        env.reset(seed=seed)
        texts.append(env.oracle_turn())
    return texts


@pytest.mark.parametrize("conversational", [False, True])
def test_reward_func_agrees_with_the_env(conversational):
    ds = tt.dataset(REASONING, 6, conversational=conversational)
    columns = {k: ds[k] for k in ("answer", "metadata", "problem_id")}
    f = tt.reward_func(REASONING)
    assert f.__name__ == "Reasoning-v0"

    def as_completions(texts):
        if conversational:
            return [[{"role": "assistant", "content": t}] for t in texts]
        return texts

    oracle = f(ds["prompt"], as_completions(_oracles(REASONING, 6)), **columns)
    assert oracle == pytest.approx(_env_rewards(REASONING, 6))
    assert min(oracle) >= 1.0
    wrong = f(ds["prompt"], as_completions(["answer: 9999"] * 6), **columns)
    assert wrong == pytest.approx(_env_rewards(REASONING, 6, wrong="answer: 9999"))
    assert max(wrong) < 0.5


def test_reward_func_takes_rewards_specs_and_functions():
    ds = tt.dataset(REASONING, 3)
    texts = _oracles(REASONING, 3)
    spec = tt.reward_func("correctness + 0.1*format")
    assert spec.__name__ == "correctness + 0.1*format"
    assert spec(ds["prompt"], texts, answer=ds["answer"]) == pytest.approx([1.1] * 3)
    env_reward = gym.make(REASONING).unwrapped.reward
    assert tt.reward_func(env_reward, name="r")(ds["prompt"], texts, answer=ds["answer"]) == (
        pytest.approx([1.1] * 3)
    )

    def length(ctx):
        return float(len(ctx.token_ids))

    f = tt.reward_func(length)
    assert f.__name__ == "length"
    # TRL's completion_ids are the turn's ids; the closing end of turn is not part of it.
    eot = textgym.default_tokenizer().eos_token_id
    assert f(["p"], ["x"], completion_ids=[[5, 6, eot]]) == [2.0]
    logged = {}
    tt.reward_func(REASONING)(
        ds["prompt"], texts, answer=ds["answer"], log_metric=logged.__setitem__
    )
    assert set(logged) == {"textgym/correctness", "textgym/format"}
    with pytest.raises(ConfigError, match="Did you mean 'textgym/Reasoning-v1'"):
        tt.reward_func("textgym/Reasoning-v9")
    with pytest.raises(ConfigError, match="3 values for 2"):
        f(["a", "b"], ["x", "y"], answer=["1", "2", "3"])


def test_dataset_columns_seeds_and_splits():
    ds = tt.dataset(REASONING, 20, seed=3)
    assert set(ds.column_names) == {"prompt", "answer", "metadata", "problem_id", "seed"}
    env = gym.make(REASONING)
    env.reset(seed=3)
    first = env.unwrapped.problem
    assert ds[0]["prompt"] == first.prompt and ds[0]["answer"] == first.answer
    assert problem_of(ds[0]) == first  # metadata round-trips through JSON, tuples included
    assert tt.dataset(REASONING, 20, seed=3)["problem_id"] == ds["problem_id"]
    assert tt.dataset(REASONING, 20, seed=4)["problem_id"][:19] == ds["problem_id"][1:]
    train = set(tt.dataset(REASONING, 60)["problem_id"])
    test = set(tt.dataset(REASONING, 60, split="test")["problem_id"])
    assert train and test and not train & test
    assert all(
        json.loads(m)["split"] == "test" for m in tt.dataset(REASONING, 5, split="test")["metadata"]
    )
    chat = tt.dataset(REASONING, 2, conversational=True, system_prompt="Be brief.")
    brief = gym.make(REASONING, system_prompt="Be brief.").unwrapped
    brief.reset(seed=0)
    assert chat[0]["prompt"] == brief.messages() and brief.messages()[0]["role"] == "system"
    dialogue = tt.dataset("textgym/Dialogue-v0", 2)
    assert "answer" not in dialogue.column_names  # open dialogue has no gold answer
    with pytest.raises(ConfigError, match="split must be"):
        tt.dataset(REASONING, 2, split="dev")


def test_environment_factory_plays_a_dialogue_to_success():
    env_id = "textgym/Dialogue-v0"
    ds = tt.dataset(env_id, 3, conversational=True)
    factory = tt.environment_factory(env_id)
    for row in ds:
        env = factory()
        # What GRPOTrainer does (grpo_trainer.py, __init__ and _generate_and_score_completions):
        # list the class's functions, reset with the whole row, call the tools, get_reward.
        members = dict(inspect.getmembers(type(env), predicate=inspect.isfunction))
        tools = [m for m in members if m not in ("reset", "get_reward") and not m.startswith("_")]
        assert "reset" in members and "get_reward" in members and tools == ["send_message"]
        schema = get_json_schema(env.send_message)
        assert schema["function"]["parameters"]["required"] == ["message"]
        assert env.reset(**row) is None  # the prompt already holds the opening

        ref = TurnLevel(gym.make(env_id))
        ref.reset(seed=row["seed"], options={"problem": problem_of(row)})
        total, done = 0.0, False
        while not done:
            turn = ref.oracle_turn()
            _, reward, terminated, truncated, info = ref.step(turn)
            total += reward
            done = terminated or truncated
            reply = env.send_message(message=turn)
            assert reply.startswith(info.get("user_reply", ""))
        assert reply.endswith(tt.ENDED)
        assert info["success"] and env.success
        assert env.get_reward() == pytest.approx(total) and total > 0
        assert env.messages == ref.messages()
        with pytest.raises(textgym.EpisodeError, match="ended"):
            env.send_message("more")
    # Without a dataset row, reset draws a problem and returns its opening for TRL to append.
    env = factory()
    assert env.reset(prompt=[{"role": "user", "content": ""}], seed=0)


def _tiny_model(eot_logit: float = 6.0) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(textgym.default_tokenizer()), n_layer=1, n_embd=32, n_head=2, n_positions=256
    )
    model = GPT2LMHeadModel(config)
    # A constant last hidden state e0, and the end of turn alone aligned with it: turns of a
    # few tokens, so multi-turn episodes reach the simulated user.
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[textgym.default_tokenizer().eos_token_id, 0] = eot_logit
    return model


def test_rollout_func_is_token_in_token_out():
    env_id = "textgym/Dialogue-v0"
    ds = tt.dataset(env_id, 2, conversational=True)
    prompts = [p for p in ds["prompt"] for _ in range(2)]  # TRL repeats each prompt G times
    trainer = types.SimpleNamespace(
        model=_tiny_model(),
        processing_class=textgym.default_tokenizer(),
        temperature=1.0,
        train_dataset=ds,
        args=types.SimpleNamespace(seed=7),
    )
    out = tt.rollout_func(env_id)(prompts, trainer)
    assert set(out) >= {"prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward"}
    assert len(out["completion_ids"]) == len(prompts) and out["env_seed"] == [7, 8, 9, 10]
    assert any(0 in mask for mask in out["env_mask"])  # the user replied at least once
    for i, prompt in enumerate(prompts):
        row = ds[i // 2]
        env = gym.make(env_id).unwrapped
        env.reset(seed=out["env_seed"][i], options={"problem": problem_of(row)})
        assert out["prompt_ids"][i] == env.context_ids.tolist()
        assert (
            out["prompt_ids"][i]
            == (
                textgym.default_tokenizer().apply_chat_template(prompt, add_generation_prompt=True)[
                    "input_ids"
                ]
            )
        )
        ids, mask, logps = out["completion_ids"][i], out["env_mask"][i], out["logprobs"][i]
        assert len(ids) == len(mask) == len(logps)
        # Replay the sampled tokens: the env itself must write exactly the masked ones.
        full = out["prompt_ids"][i] + ids
        for k, token in enumerate(ids):
            if mask[k]:
                assert logps[k] < 0
                env.step(token)
            else:
                assert logps[k] == 0.0
            if k + 1 == len(ids) or mask[k + 1]:
                assert env.context_ids.tolist() == full[: len(out["prompt_ids"][i]) + k + 1]
        assert env.episode.done


# TRL 1.16 itself uses the names transformers 5.2+ deprecates (GRPOConfig's default
# gradient_checkpointing=True, model.gradient_checkpointing_*): TRL's to rename, not ours.
@pytest.mark.filterwarnings(r"ignore:`(is_)?gradient_checkpointing\w*` is deprecated:FutureWarning")
def test_grpo_trainer_steps_with_textgym(tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = textgym.default_tokenizer()
    args = dict(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
    )
    trainer = GRPOTrainer(
        model=_tiny_model(),
        processing_class=tokenizer,
        reward_funcs=[tt.reward_func("textgym/Reasoning-Tiny-v0")],
        train_dataset=tt.dataset("textgym/Reasoning-Tiny-v0", 8),
        args=GRPOConfig(**args),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert "rewards/Reasoning-Tiny-v0/mean" in trainer.state.log_history[0]

    def env_return(prompts, completions, env_reward, **kwargs):
        return env_reward

    trainer = GRPOTrainer(
        model=_tiny_model(),
        processing_class=tokenizer,
        reward_funcs=[env_return],
        train_dataset=tt.dataset("textgym/Dialogue-v0", 4, conversational=True),
        rollout_func=tt.rollout_func("textgym/Dialogue-v0"),
        args=GRPOConfig(**{**args, "max_completion_length": 192}),
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert "rewards/env_return/mean" in trainer.state.log_history[0]


def test_import_textgym_does_not_import_trl():
    code = "import sys, textgym; assert 'trl' not in sys.modules, 'trl'; assert 'datasets' not in sys.modules, 'datasets'; assert 'textgym.integrations.trl' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
