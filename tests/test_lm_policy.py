"""LM policy, KV sampler and rollouts: exact log-probs, credit masks, KL, errors.

Models are tiny random GPT-2s built in a temporary directory (no downloads).
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import textgym
from agents.common.rollout import Episode, RolloutCollector, gae, make_batch, whiten
from agents.lm.default_model import default_model_path
from agents.lm.policy import LMPolicy, ModelMismatchError, token_logprobs
from agents.lm.sampler import KVSampler
from tests.helpers import ChatTask
from textgym.vector import TextVectorEnv

VOCAB = len(textgym.default_tokenizer())


def tiny_model(path: Path, vocab: int = VOCAB, positions: int = 256, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab, n_positions=positions, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    GPT2LMHeadModel(cfg).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny_lm"))


def multi_turn_envs(n: int) -> TextVectorEnv:
    return TextVectorEnv(n, task=ChatTask(), copy=False)


def copy_envs(n: int) -> gym.vector.VectorEnv:
    return gym.make_vec("textgym/Copy-v0", n, vectorization_mode="vector_entry_point", copy=False)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("make_envs", [copy_envs, multi_turn_envs], ids=["single", "multi"])
def test_train_time_logprobs_match_rollout(model_dir: Path, make_envs, temperature: float) -> None:
    envs = make_envs(6)
    policy = LMPolicy.from_pretrained(model_dir, VOCAB)
    collector = RolloutCollector(envs, policy, temperature, torch.Generator().manual_seed(3))
    episodes = collector.collect(list(range(6)))
    assert len(episodes) == 6
    batch = make_batch(episodes, pad_id=0, eot_id=1)
    with torch.no_grad():
        logits = policy(batch.input_ids, batch.attention_mask).logits[:, :-1]
    recomputed = token_logprobs(logits, batch.targets, temperature)
    m = batch.action_mask
    assert m.sum() == sum(e.num_actions for e in episodes)
    torch.testing.assert_close(recomputed[m], batch.old_logprobs[m], atol=1e-5, rtol=0)
    # The trainers' path: logits only at the agent's decisions, flattened.
    with torch.no_grad():
        flat = policy(
            batch.input_ids, batch.attention_mask, torch.nn.functional.pad(m, (0, 1))
        ).logits
    torch.testing.assert_close(
        token_logprobs(flat, batch.targets[m], temperature),
        batch.old_logprobs[m],
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("make_envs", [copy_envs, multi_turn_envs], ids=["single", "multi"])
def test_rollout_values_match_a_full_forward(model_dir: Path, make_envs) -> None:
    """PPO trains on the values the sampler computed while acting: they must be the values
    a fresh forward over each episode gives at the agent's decisions."""
    envs = make_envs(5)
    policy = LMPolicy.from_pretrained(model_dir, VOCAB, value_head=True)
    # A zero-initialised head would make every value 0 and the check vacuous.
    torch.nn.init.normal_(policy.value_head.weight)
    collector = RolloutCollector(envs, policy, 1.0, torch.Generator().manual_seed(4), values=True)
    episodes = collector.collect(list(range(5)))
    assert all(e.values is not None and e.values.shape == e.logprobs.shape for e in episodes)
    batch = make_batch(episodes, pad_id=0, eot_id=1)
    with torch.no_grad():
        values = policy(batch.input_ids, batch.attention_mask).values[:, :-1]
    m = batch.action_mask
    assert batch.old_values[m].abs().min() > 0
    torch.testing.assert_close(batch.old_values[m], values[m], atol=1e-5, rtol=1e-5)
    assert (batch.old_values[~m] == 0).all()
    # Without values=True the episodes carry none, and asking a head-less policy fails.
    plain = RolloutCollector(envs, policy).collect(list(range(5)))
    assert all(e.values is None for e in plain)
    with pytest.raises(ValueError, match="value head"):
        KVSampler(LMPolicy.from_pretrained(model_dir, VOCAB), 2, max_cache=24, values=True)


def test_kv_sampler_blocks_and_rebuild_match_full_forward(model_dir: Path) -> None:
    """Rows advancing by different amounts (users' replies) and cache rebuilds are exact."""
    policy = LMPolicy.from_pretrained(model_dir, VOCAB, value_head=True).eval()
    torch.nn.init.normal_(policy.value_head.weight)
    rng = np.random.default_rng(0)
    n, width = 3, 40
    ids = rng.integers(5, VOCAB, size=(n, width))
    lengths = np.array([4, 7, 2])
    # A small cache forces a rebuild on the way.
    sampler = KVSampler(policy, n, max_cache=24, values=True)
    schedule = [np.array([1, 1, 1]), np.array([5, 1, 1]), np.array([1, 1, 9]), np.array([1, 6, 1])]
    active = np.array([True, True, True])
    for step, grow in enumerate(schedule * 2):
        if step > 0:
            lengths = lengths + grow
        if step == 3:
            active = np.array([True, False, True])  # row 1 waits a step, then refeeds
        elif step == 4:
            active = np.array([True, True, True])
        elif step == 6:
            sampler.retire(np.array([0]))  # row 0 is done: it leaves the cache
            active = np.array([False, True, True])
        rows, got, got_values = sampler.logits_and_values(ids, lengths, active)
        assert rows.tolist() == np.flatnonzero(active).tolist()
        for k, r in enumerate(rows):
            ctx = torch.as_tensor(ids[r : r + 1, : lengths[r]])
            want = policy(ctx, torch.ones_like(ctx))
            torch.testing.assert_close(got[k], want.logits[0, -1], atol=1e-5, rtol=0)
            torch.testing.assert_close(got_values[k], want.values[0, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("subset", [False, True])
def test_row_cache_padding_never_lands_on_a_real_slot(subset: bool) -> None:
    from agents.lm.row_cache import RowCache

    # Row 0's 4 real tokens end on the last of 8 slots while the block is 8 wide: its 4
    # padding columns point past the buffer. They must not overwrite its last real key.
    cache = RowCache(num_rows=3 if subset else 2, capacity=8)
    rows = np.array([0, 2]) if subset else None
    cache.begin(np.array([4, 0]), np.array([4, 8]), width=8, rows=rows)
    keys = torch.arange(2 * 8, dtype=torch.float32).reshape(2, 1, 8, 1) + 1
    padding = torch.arange(4, 8)
    keys[0, 0, padding] = -1.0  # what row 0's padding columns carry
    got, _ = cache.update(keys, keys.clone(), 0)
    torch.testing.assert_close(got[0, 0, 4:8, 0], keys[0, 0, :4, 0])  # its real tokens
    torch.testing.assert_close(got[1, 0, :8, 0], keys[1, 0, :, 0])
    cache.end()


def test_masks_exclude_prompt_and_user_tokens(model_dir: Path) -> None:
    envs = multi_turn_envs(4)
    policy = LMPolicy.from_pretrained(model_dir, VOCAB)
    episodes = RolloutCollector(envs, policy).collect([0, 1, 2, 3])
    batch = make_batch(episodes, pad_id=0, eot_id=1)
    tok = envs.envs[0].tokenizer
    chat = envs.envs[0].chat
    for i, e in enumerate(episodes):
        # Rebuild the context turn by turn from the env's own record: agent tokens are
        # exactly the decisions under the mask.
        expected = np.zeros(e.tokens.size, dtype=bool)
        pos = 0
        opening = [
            *chat.user_ids,
            *tok.encode("copy: red blue", add_special_tokens=False),
            chat.eot_id,
            *chat.agent_ids,
        ]
        assert e.tokens[: len(opening)].tolist() == opening
        pos = len(opening)
        while pos < e.tokens.size:
            # Agent turn: up to and including <eot> (or the turn limit).
            start = pos
            while pos < e.tokens.size and e.tokens[pos] != chat.eot_id and pos - start < 6:
                pos += 1
            if pos < e.tokens.size and e.tokens[pos] == chat.eot_id:
                pos += 1
            expected[start:pos] = True
            if pos < e.tokens.size:  # the user's reply: <user> ... <eot> <agent>
                assert e.tokens[pos] == chat.user_ids[0]
                while e.tokens[pos] != chat.agent_ids[0]:
                    pos += 1
                pos += 1
        assert batch.action_mask[i, : e.tokens.size - 1].numpy().tolist() == expected[1:].tolist()
        assert not batch.action_mask[i, e.tokens.size - 1 :].any()
        assert len(e.turns) >= 1


def test_kl_to_reference_is_zero_before_first_update(model_dir: Path) -> None:
    envs = copy_envs(4)
    policy = LMPolicy.from_pretrained(model_dir, VOCAB, value_head=True)
    reference = policy.reference()
    assert all(not p.requires_grad for p in reference.parameters())
    episodes = RolloutCollector(envs, policy).collect([0, 1, 2, 3])
    batch = make_batch(episodes, pad_id=0, eot_id=1)
    with torch.no_grad():
        ref = token_logprobs(
            reference(batch.input_ids, batch.attention_mask).logits[:, :-1], batch.targets, 1.0
        )
    kl = (batch.old_logprobs - ref)[batch.action_mask]
    assert kl.abs().max() < 1e-5


def test_value_head_starts_at_zero_and_saves(model_dir: Path, tmp_path: Path) -> None:
    policy = LMPolicy.from_pretrained(model_dir, VOCAB, value_head=True)
    ids = torch.tensor([[3, 10, 11, 1, 4]])
    out = policy(ids, torch.ones_like(ids))
    assert out.values is not None and out.values.shape == (1, 5)
    assert out.values.abs().max() == 0
    with torch.no_grad():
        policy.value_head.bias.fill_(0.5)  # type: ignore[union-attr]
    policy.save_pretrained(tmp_path / "saved")
    again = LMPolicy.from_pretrained(tmp_path / "saved", VOCAB, value_head=True)
    assert torch.allclose(again(ids, torch.ones_like(ids)).values, torch.full((1, 5), 0.5))


def test_vocabulary_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    envs = copy_envs(2)
    policy = LMPolicy.from_pretrained(tiny_model(tmp_path / "small", vocab=50), VOCAB)
    with pytest.raises(
        ModelMismatchError, match="vocabulary of 50 tokens.*1358|different tokenizer"
    ):
        policy.check_env(envs)


def test_short_context_model_is_a_clear_error(tmp_path: Path) -> None:
    envs = gym.make_vec("textgym/Reasoning-v0", 2, vectorization_mode="vector_entry_point")
    policy = LMPolicy.from_pretrained(tiny_model(tmp_path / "short", positions=16), VOCAB)
    with pytest.raises(ModelMismatchError, match="16 positions"):
        policy.check_env(envs)


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    from textgym.errors import UserError

    with pytest.raises(FileNotFoundError, match="does not exist") as caught:
        LMPolicy.from_pretrained(str(tmp_path / "nope"), VOCAB)
    assert isinstance(caught.value, UserError)  # the CLI prints it in one line


def test_value_head_is_loaded_from_a_local_directory(model_dir: Path, tmp_path: Path) -> None:
    policy = LMPolicy.from_pretrained(model_dir, VOCAB, value_head=True)
    assert policy.value_head is not None
    torch.nn.init.constant_(policy.value_head.bias, 0.25)  # a zero head would pass unloaded
    policy.save_pretrained(tmp_path / "saved")
    again = LMPolicy.from_pretrained(tmp_path / "saved", VOCAB, value_head=True)
    assert again.value_head is not None and float(again.value_head.bias.detach()) == 0.25


def test_groups_share_problems_and_greedy_is_deterministic(model_dir: Path) -> None:
    envs = gym.make_vec(
        "textgym/Reasoning-v0", 4, vectorization_mode="vector_entry_point", copy=False
    )
    policy = LMPolicy.from_pretrained(model_dir, VOCAB)
    collector = RolloutCollector(envs, policy)
    a = collector.collect([7, 7, 9, 9], groups=[0, 0, 1, 1], greedy=True)
    b = collector.collect([7, 7, 9, 9], groups=[0, 0, 1, 1], greedy=True)
    assert [e.tokens.tolist() for e in a] == [e.tokens.tolist() for e in b]
    assert a[0].tokens.tolist() == a[1].tokens.tolist()  # same seed, same problem, greedy
    prompt = lambda e: e.tokens[: e.action_positions[0]].tolist()  # noqa: E731
    assert prompt(a[0]) != prompt(a[2])


def test_gae_matches_hand_computation_over_gapped_actions() -> None:
    # One episode: actions at decisions 1, 2 and 5 (a user reply in between), reward at the end.
    mask = torch.tensor([[False, True, True, False, False, True]])
    rewards = torch.tensor([[0.0, 0.0, 0.5, 0.0, 0.0, 1.0]])
    values = torch.tensor([[9.0, 0.2, 0.4, 9.0, 9.0, 0.6]])
    adv, ret = gae(rewards, values, mask, torch.tensor([0.3]), gamma=0.9, lam=0.8)
    d3 = 1.0 + 0.9 * 0.3 - 0.6
    d2 = 0.5 + 0.9 * 0.6 - 0.4
    d1 = 0.0 + 0.9 * 0.4 - 0.2
    a3 = d3
    a2 = d2 + 0.9 * 0.8 * a3
    a1 = d1 + 0.9 * 0.8 * a2
    torch.testing.assert_close(adv[0, [1, 2, 5]], torch.tensor([a1, a2, a3]))
    assert adv[0, [0, 3, 4]].abs().sum() == 0
    torch.testing.assert_close(ret[0, [1, 2, 5]], torch.tensor([a1 + 0.2, a2 + 0.4, a3 + 0.6]))


def test_whiten_is_masked() -> None:
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    m = torch.tensor([[True, True, False], [True, True, False]])
    w = whiten(x, m)
    assert w[:, 2].abs().sum() == 0
    assert abs(float(w[m].mean())) < 1e-6 and abs(float(w[m].std(unbiased=False)) - 1) < 1e-3


def test_shipped_default_model_matches_default_tokenizer() -> None:
    from agents.lm.build_default_model import _vocab_hash, words_size
    from agents.lm.default_model import DEFAULT_MODEL_DIR, build_info

    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    tokenizer = textgym.default_tokenizer()
    # The model covers the ledger's words; the spare slots beyond them spell nothing.
    assert config["vocab_size"] == words_size(tokenizer), (
        "The default tokenizer gained words; rebuild with "
        "`python -m agents.lm.build_default_model`."
    )
    assert build_info()["tokenizer_sha256"] == _vocab_hash(tokenizer)
    info = build_info()
    assert info["noise"] > 0 and info["vocab_size"] == config["vocab_size"]
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert size < 10_000_000


def test_predict_works_with_the_shared_evaluation(model_dir: Path) -> None:
    from agents.common.evaluation import evaluate_policy

    policy = LMPolicy.from_pretrained(model_dir, VOCAB).eval()
    env = gym.make("textgym/Copy-v0")
    result = evaluate_policy(policy, env, n_episodes=3, seed=0)
    assert result.episodes == 3 and 0.0 <= result.success_rate <= 1.0
    # Greedy predict agrees with the batched sampler's greedy rollout.
    envs = copy_envs(3)
    greedy = RolloutCollector(envs, policy).collect([0, 1, 2], greedy=True)
    obs, _ = env.reset(seed=0)
    tokens = []
    for _ in range(greedy[0].num_actions):
        action, _ = policy.predict(obs)
        tokens.append(int(action))
        obs, *_ = env.step(int(action))
    assert tokens == greedy[0].tokens[greedy[0].action_positions].tolist()


def test_an_episode_that_terminated_is_never_bootstrapped() -> None:
    """Gymnasium's TimeLimit sets truncated on the step that terminates too; the episode
    ended, so PPO must not add V(s_T) after it (as stable-baselines3: terminal wins)."""

    def episode(terminated: bool, truncated: bool) -> Episode:
        return Episode(
            tokens=np.array([5, 6, 1]),
            action_positions=np.array([1, 2]),
            logprobs=np.zeros(2, dtype=np.float32),
            rewards=np.array([0.0, 1.0], dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            success=True,
            group=0,
            seed=0,
        )

    flags = [(True, True), (False, True), (True, False)]
    batch = make_batch([episode(*f) for f in flags], pad_id=0, eot_id=1)
    assert batch.truncated.tolist() == [False, True, False]


@pytest.mark.parametrize("env_id", ["textgym/Reasoning-Easy-v1", "textgym/Dialogue-v1"])
def test_the_rollout_steps_only_rows_still_playing(env_id: str) -> None:
    """Every sub-env step of a round is an agent token of an unfinished episode: finished
    rows pause (TextVectorEnv.pause) instead of playing and discarding new episodes."""
    envs = gym.make_vec(env_id, 8, vectorization_mode="vector_entry_point", copy=False)
    # The default model ends its turns (a random tiny one runs every turn to its budget).
    policy = LMPolicy.from_pretrained(str(default_model_path()), VOCAB)
    collector = RolloutCollector(envs, policy)
    episodes = collector.collect(list(range(8)))
    assert len({e.num_actions for e in episodes}) > 1  # the rows finished at different steps
    assert collector.stats.env_steps == sum(e.num_actions for e in episodes)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_kv_sampler_is_exact_on_rotary_models(arch: str) -> None:
    """Users bring Llama- and Qwen-style models (rotary positions, grouped KV heads): the
    per-row cache gives them the logits of a fresh forward too, through prompts, replies of
    different lengths and a cache that outgrows its first allocation."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    cls, cfg = {"llama": (LlamaForCausalLM, LlamaConfig), "qwen2": (Qwen2ForCausalLM, Qwen2Config)}[
        arch
    ]
    torch.manual_seed(0)
    vocab = 300
    model = cls(
        cfg(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    ).eval()  # fmt: skip
    ids = np.random.default_rng(0).integers(5, vocab, size=(3, 60))
    sampler = KVSampler(LMPolicy(model, vocab), 3, max_cache=16)
    lengths, active = np.array([4, 7, 2]), np.ones(3, dtype=bool)
    for grow in ([0, 0, 0], [1, 1, 1], [5, 1, 1], [1, 1, 9], [1, 6, 1], [3, 3, 3]):
        lengths = lengths + np.array(grow)
        rows, got = sampler.logits(ids, lengths, active)
        for k, r in enumerate(rows):
            with torch.no_grad():
                want = model(input_ids=torch.as_tensor(ids[r : r + 1, : lengths[r]])).logits[0, -1]
            torch.testing.assert_close(got[k], want, atol=1e-5, rtol=0)
