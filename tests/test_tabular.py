"""Tabular Q-learning / SARSA and the random baseline: learning, API, checkpoints, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import textgym
from agents.baselines import RandomAgent
from agents.common import read_log
from agents.common.checkpoint import save_checkpoint
from agents.tabular import (
    SARSA,
    CheckpointError,
    DiscreteObservation,
    ExactContext,
    PromptAndLastK,
    QLearning,
    load,
)

TINY_IDS = [env_id for env_id in textgym.env_ids() if "-Tiny-" in env_id]

#: Q-learning's training budget (env steps, default hyper-parameters, seed 0) per tiny
#: variant. With the default exploration schedule (epsilon decays over 30% of the budget),
#: the greedy policy is right on every problem at ~15-25k steps on the multi-turn variants.
#: Wall time on the 2-core dev machine: Copy-Tiny ~0.1 s, the others ~1-2 s each.
#: A new tiny variant without an entry gets DEFAULT_BUDGET and should add one.
Q_BUDGET = {
    "textgym/Copy-Tiny-v0": 2_000,
    "textgym/Reasoning-Tiny-v0": 30_000,
    "textgym/CustomerService-Tiny-v0": 40_000,
    "textgym/Dialogue-Tiny-v0": 40_000,
}
DEFAULT_BUDGET = 40_000


def test_the_registry_has_tiny_variants() -> None:
    assert "textgym/Copy-Tiny-v0" in TINY_IDS


# -- learning -----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", TINY_IDS)
def test_q_learning_solves_each_tiny_variant(env_id: str) -> None:
    budget = Q_BUDGET.get(env_id, DEFAULT_BUDGET)
    agent = QLearning(env_id, seed=0).learn(budget)
    # Fresh evaluation seeds: the greedy policy must be right on (practically) every problem.
    result = agent.evaluate(n_episodes=200, seed=123)
    assert result.success_rate >= 0.99, (env_id, budget, result)


@pytest.mark.parametrize("env_id", TINY_IDS)
def test_sarsa_improves_clearly_over_random(env_id: str) -> None:
    budget = Q_BUDGET.get(env_id, DEFAULT_BUDGET) // 2
    random_score = RandomAgent(env_id, seed=0).evaluate(n_episodes=200, seed=123)
    sarsa = SARSA(env_id, seed=0).learn(budget).evaluate(n_episodes=200, seed=123)
    assert sarsa.success_rate >= random_score.success_rate + 0.5, (random_score, sarsa)
    assert sarsa.mean_return > random_score.mean_return


def test_early_stop_records_when_the_target_was_reached() -> None:
    agent = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(
        5_000, eval_freq=100, n_eval_episodes=50, target_success=0.99
    )
    assert agent.solved_at is not None
    assert agent.solved_at["success_rate"] >= 0.99
    assert agent.num_timesteps == agent.solved_at["timesteps"] < 5_000
    assert agent.eval_history[-1] == agent.solved_at
    assert [r["timesteps"] for r in agent.eval_history] == sorted(
        r["timesteps"] for r in agent.eval_history
    )


def test_same_seed_same_table() -> None:
    a = QLearning("textgym/Copy-Tiny-v0", seed=3).learn(500)
    b = QLearning("textgym/Copy-Tiny-v0", seed=3).learn(500)
    c = QLearning("textgym/Copy-Tiny-v0", seed=4).learn(500)
    assert a.table.keys() == b.table.keys()
    assert all(np.array_equal(a.table[k][1], b.table[k][1]) for k in a.table)
    assert a.table.keys() != c.table.keys() or any(
        not np.array_equal(a.table[k][1], c.table[k][1]) for k in a.table
    )


def test_exact_states_store_only_allowed_actions() -> None:
    env = gym.make("textgym/Copy-Tiny-v0")
    allowed = np.flatnonzero(env.unwrapped.action_masks())
    agent = QLearning(env, seed=0).learn(300)
    assert agent.table
    for actions, q in agent.table.values():
        assert np.array_equal(actions, allowed)
        assert q.shape == actions.shape
    # One shared action-id array, not one per state.
    assert len({id(actions) for actions, _ in agent.table.values()}) == 1


def test_q_values_converge_to_the_task_rewards() -> None:
    # Copy-Tiny, exact context, lr 1, gamma 1: Q(prompt, right word) = 1 once learned.
    env = gym.make("textgym/Copy-Tiny-v0")
    agent = QLearning(env, seed=0, learning_rate=1.0, gamma=1.0).learn(2_000)
    obs, _ = env.reset(seed=0)
    actions, q = agent.table[ExactContext()(obs)]
    word = env.unwrapped.oracle_action()
    assert q[list(actions).index(word)] == pytest.approx(1.0)
    assert q.max() == pytest.approx(1.0)


@pytest.mark.parametrize("cls", [QLearning, SARSA])
def test_a_step_both_terminated_and_truncated_does_not_bootstrap(cls: type) -> None:
    # A step limit of 2 makes Gymnasium's TimeLimit set truncated on the very step whose <eot>
    # terminates Copy-Tiny's 2-token episode. The episode ended, so the target is the reward
    # alone (at most 1.0 here), never reward + gamma * initial_q (0.5 by default), even for features
    # that do bootstrap truncations.
    env = gym.make("textgym/Copy-Tiny-v0", max_episode_steps=2)
    agent = cls(env, seed=0, features=PromptAndLastK(k=2), learning_rate=1.0, gamma=1.0)
    assert agent._bootstraps(truncated=True)
    agent.learn(2_000)
    assert max(float(q.max()) for _, q in agent.table.values()) == pytest.approx(1.0)


def test_prompt_and_last_k_features_learn_copy_tiny() -> None:
    # k=2 tells "green" from "red green" and "green green" (k=1 would alias them: the
    # state after "green" would no longer say whether ending the turn is right).
    agent = QLearning("textgym/Copy-Tiny-v0", seed=0, features=PromptAndLastK(k=2)).learn(2_000)
    assert agent.evaluate(100, seed=7).success_rate >= 0.99
    # The abstraction bootstraps at truncation by default (the length is hidden from it).
    assert agent._bootstraps(truncated=True)


def test_custom_features_function() -> None:
    env = gym.make("textgym/Copy-Tiny-v0")
    calls: list[int] = []

    def word_and_last_two(obs: dict[str, np.ndarray]) -> tuple[int, ...]:
        # "<user> copy : WORD <eot> <agent> ...": the word to copy, then the last two tokens.
        calls.append(1)
        n = int(obs["attention_mask"].sum())
        return (int(obs["input_ids"][3]), *(int(t) for t in obs["input_ids"][n - 2 : n]))

    agent = QLearning(env, seed=0, features=word_and_last_two).learn(2_000)
    assert calls
    assert agent.evaluate(100, seed=7).success_rate >= 0.99


def test_discrete_observation_envs_work_too() -> None:
    # A sanity check outside text: deterministic FrozenLake is solved exactly.
    env = gym.make("FrozenLake-v1", is_slippery=False)
    agent = QLearning(env, seed=0, gamma=0.95).learn(5_000)
    assert isinstance(agent.features, DiscreteObservation)
    assert agent.evaluate(20, env=gym.make("FrozenLake-v1", is_slippery=False)).mean_return == 1.0


@pytest.mark.parametrize("decay", ["linear", "exponential"])
def test_epsilon_schedule_endpoints(decay: str) -> None:
    agent = QLearning(
        "textgym/Copy-Tiny-v0",
        epsilon_start=0.8,
        epsilon_end=0.1,
        exploration_fraction=0.5,
        epsilon_decay=decay,
    )
    assert agent._exploration(0.0) == pytest.approx(0.8)
    assert agent._exploration(0.5) == pytest.approx(0.1)
    assert agent._exploration(0.9) == pytest.approx(0.1)
    assert 0.1 < agent._exploration(0.25) < 0.8


# -- predict ------------------------------------------------------------------------------


def test_predict_follows_the_sb3_signature_and_masks() -> None:
    env = gym.make("textgym/Copy-Tiny-v0")
    agent = QLearning(env, seed=0).learn(1_000)
    obs, _ = env.reset(seed=0)
    action, state = agent.predict(obs, deterministic=True)
    assert state is None and isinstance(action, int)
    assert action == env.unwrapped.oracle_action()
    # A mask that forbids the learned action forces another allowed one.
    mask = env.unwrapped.action_masks()
    mask[action] = False
    other, _ = agent.predict(obs, deterministic=True, action_masks=mask)
    assert other != action and mask[other]
    # Batched observations give one action per row.
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    actions, _ = agent.predict(batch, action_masks=np.stack([mask, mask]))
    assert actions.tolist() == [other, other]


def test_unseen_states_get_a_reproducible_allowed_action() -> None:
    env = gym.make("textgym/Reasoning-Tiny-v0", split="test")
    agent = QLearning(gym.make("textgym/Reasoning-Tiny-v0"), seed=0)  # nothing learned
    mask = env.unwrapped.action_masks()
    picks = set()
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        a1, _ = agent.predict(obs, deterministic=True, action_masks=mask)
        a2, _ = agent.predict(obs, deterministic=True, action_masks=mask)
        assert a1 == a2 and mask[a1]
        picks.add(a1)
    assert len(picks) > 1  # spread over the allowed tokens, not always the first id


def test_random_agent_is_uniform_over_allowed_tokens() -> None:
    env = gym.make("textgym/Copy-Tiny-v0")
    agent = RandomAgent(env, seed=0)
    obs, _ = env.reset(seed=0)
    mask = env.unwrapped.action_masks()
    picks = [agent.predict(obs, action_masks=mask)[0] for _ in range(400)]
    assert set(picks) == set(np.flatnonzero(mask).tolist())
    # Copy-Tiny: right word (1/4) then end of turn (1/4).
    assert agent.evaluate(800, seed=1).success_rate == pytest.approx(1 / 16, abs=0.03)


def test_random_agent_learn_logs_the_same_curves(tmp_path) -> None:
    RandomAgent("textgym/Copy-Tiny-v0", seed=0, log_dir=tmp_path, log_interval=200).learn(1_000)
    series = read_log(tmp_path)
    assert {"charts/episodic_return", "charts/success_rate", "charts/episodic_length"} <= set(
        series
    )


# -- logging and progress -----------------------------------------------------------------


def test_learning_curves_go_to_the_shared_logger(tmp_path) -> None:
    agent = QLearning(
        "textgym/Copy-Tiny-v0", seed=0, log_dir=tmp_path, log_interval=100, tensorboard=False
    )
    agent.learn(1_000, eval_freq=250, n_eval_episodes=20)
    agent.close()
    series = read_log(tmp_path / "progress.csv")
    for key in (
        "charts/episodic_return",
        "charts/success_rate",
        "charts/epsilon",
        "eval/success_rate",
        "tabular/states",
    ):
        assert key in series, key
    steps = [s for s, _, _ in series["charts/success_rate"]]
    assert steps == sorted(steps) and steps[-1] <= 1_000
    assert series["eval/success_rate"][-1][2] == 1.0
    # learn() closed its files; continuing appends to the same run on the same step axis.
    agent.learn(500, reset_num_timesteps=False)
    steps = [s for s, _, _ in read_log(tmp_path)["charts/success_rate"]]
    assert steps == sorted(steps) and 1_000 < steps[-1] <= 1_500


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    QLearning("textgym/Copy-Tiny-v0", seed=0).learn(300, progress_bar=True)
    assert "300/300" in capsys.readouterr().err


# -- checkpoints --------------------------------------------------------------------------


def rewrite_checkpoint(path: Path, out: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Copy the checkpoint at ``path`` to ``out`` with its JSON header changed by ``edit``
    (the tensors kept), as someone tampering with a file would."""
    with safe_open(str(path), framework="np") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    state = json.loads(metadata["state"])
    edit(state)
    metadata["state"] = json.dumps(state)
    save_file(tensors, str(out), metadata=metadata)
    return out


def read_header(path: Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, read without loading anything else."""
    with safe_open(str(path), framework="np") as f:
        return json.loads(f.metadata()["state"])


def test_save_load_round_trip(tmp_path) -> None:
    env = gym.make("textgym/Reasoning-Tiny-v0")
    agent = SARSA(env, seed=0, learning_rate=0.3, features=PromptAndLastK(k=2)).learn(3_000)
    path = agent.save(tmp_path / "sarsa")
    # The one checkpoint format of every learner: safetensors, with a JSON header.
    assert path.name == "sarsa.safetensors"
    meta = read_header(path)["agent"]
    assert meta["format"] == "textgym-agent" and meta["version"] == 2
    assert meta["algo"] == "sarsa" and meta["env_id"] == "textgym/Reasoning-Tiny-v0"

    loaded = SARSA.load(tmp_path / "sarsa")  # suffix optional, no env needed to predict
    assert loaded.learning_rate == 0.3 and isinstance(loaded.features, PromptAndLastK)
    assert loaded.num_timesteps == 3_000
    assert loaded.table.keys() == agent.table.keys()
    for key, (actions, q) in agent.table.items():
        assert np.array_equal(loaded.table[key][0], actions)
        assert np.array_equal(loaded.table[key][1], q)
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        mask = env.unwrapped.action_masks()
        assert loaded.predict(obs, action_masks=mask) == agent.predict(obs, action_masks=mask)
    # The exploration stream continues where it was saved.
    assert loaded.rng.bit_generator.state == agent.rng.bit_generator.state
    # agents.tabular.load dispatches on the saved algorithm; learning can continue.
    again = load(path, env=gym.make("textgym/Reasoning-Tiny-v0"))
    assert isinstance(again, SARSA)
    again.learn(100, reset_num_timesteps=False)
    assert again.num_timesteps == 3_100


def test_random_agent_checkpoint(tmp_path) -> None:
    path = RandomAgent("textgym/Copy-Tiny-v0", seed=5).save(tmp_path / "random.safetensors")
    assert path == tmp_path / "random.safetensors"
    loaded = load(path)
    assert isinstance(loaded, RandomAgent) and loaded.seed == 5


def test_load_missing_file_says_so(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        QLearning.load(tmp_path / "nope")


def test_load_corrupt_file_says_so(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable textgym checkpoint"):
        QLearning.load(bad)
    # A truncated real checkpoint.
    good = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(200).save(tmp_path / "q")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.safetensors.*not a readable"):
        QLearning.load(cut)


def test_an_old_npz_checkpoint_is_refused_unopened(tmp_path) -> None:
    old = tmp_path / "q.npz"
    np.savez(old, meta=np.array("{}"), q=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"q\.npz.*older textgym.*Train the agent again"):
        QLearning.load(old)


def test_load_rejects_foreign_files_other_versions_and_algorithms(tmp_path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weights": np.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a textgym checkpoint"):
        QLearning.load(foreign)
    # An LM run's checkpoint is a textgym checkpoint, but holds no agent.
    lm = save_checkpoint(tmp_path / "lm.safetensors", {"model": {}, "update": 1})
    with pytest.raises(CheckpointError, match="holds no tabular agent"):
        QLearning.load(lm)

    path = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(200).save(tmp_path / "q")
    with pytest.raises(CheckpointError, match="QLearning.load"):
        SARSA.load(path)

    def future(state: dict[str, Any]) -> None:
        state["agent"]["version"] = 99

    with pytest.raises(CheckpointError, match="version 99"):
        QLearning.load(rewrite_checkpoint(path, tmp_path / "future.safetensors", future))

    def wrong_arrays(state: dict[str, Any]) -> None:
        state["model"]["q"] = state["model"]["keys"]  # the table's values swapped for its keys

    with pytest.raises(CheckpointError, match="damaged"):
        QLearning.load(rewrite_checkpoint(path, tmp_path / "swapped.safetensors", wrong_arrays))


def test_custom_features_must_be_passed_again_on_load(tmp_path) -> None:
    def key(obs: dict[str, np.ndarray]) -> bytes:
        return obs["input_ids"][: int(obs["attention_mask"].sum())].tobytes()

    path = QLearning("textgym/Copy-Tiny-v0", seed=0, features=key).learn(200).save(tmp_path / "c")
    with pytest.raises(CheckpointError, match="features=my_function"):
        QLearning.load(path)
    assert QLearning.load(path, features=key).table


# -- bad input ----------------------------------------------------------------------------


def test_unknown_hyperparameter_is_named_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match="'learning_rat'.*Did you mean 'learning_rate'"):
        QLearning("textgym/Copy-Tiny-v0", learning_rat=0.1)
    with pytest.raises(TypeError, match="unknown hyper-parameter 'gama'"):
        SARSA("textgym/Copy-Tiny-v0", gama=0.9)
    with pytest.raises(TypeError, match="unknown hyper-parameter 'epsilon'"):
        RandomAgent("textgym/Copy-Tiny-v0", epsilon=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be a number in \\(0, 1\\]"),
        ({"gamma": 1.5}, "gamma must be"),
        ({"epsilon_start": -0.1}, "epsilon_start must be"),
        ({"epsilon_decay": "cosine"}, "epsilon_decay must be"),
        ({"epsilon_decay": "exponential", "epsilon_end": 0.0}, "must be > 0"),
        ({"features": "exactt"}, "Did you mean 'exact'"),
        ({"seed": -1}, "seed must be an int"),
    ],
)
def test_bad_hyperparameter_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QLearning("textgym/Copy-Tiny-v0", **kwargs)


def test_non_discrete_action_space_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a Discrete action space"):
        QLearning(gym.make("Pendulum-v1"))
    with pytest.raises(TypeError, match="needs a Discrete action space"):
        RandomAgent(gym.make("Pendulum-v1"))


def test_token_features_on_a_non_token_env_are_refused() -> None:
    with pytest.raises(TypeError, match="reads textgym token observations"):
        QLearning(gym.make("CartPole-v1"), features="prompt_last_k")


def test_learn_arguments_are_checked() -> None:
    agent = QLearning("textgym/Copy-Tiny-v0")
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.learn(0)
    with pytest.raises(ValueError, match="set eval_freq"):
        agent.learn(100, target_success=0.9)


def test_loaded_agent_without_env_cannot_learn(tmp_path) -> None:
    path = QLearning("textgym/Copy-Tiny-v0", seed=0).learn(100).save(tmp_path / "q")
    with pytest.raises(RuntimeError, match="set_env"):
        QLearning.load(path).learn(100)


# -- the benchmark script -------------------------------------------------------------------


def test_baselines_benchmark_writes_its_results(tmp_path) -> None:
    from benchmarks import baselines

    argv = ["--envs", "textgym/Copy-Tiny-v0", "--algos", "random", "q_learning", "--seeds", "0"]
    assert baselines.main([*argv, "--out", str(tmp_path), "--no-readme"]) == 0
    data = json.loads((tmp_path / "baselines.json").read_text())
    rows = {row["algo"]: row for row in data["rows"]}
    assert rows["q_learning"]["success_rate"] == 1.0 and rows["q_learning"]["solved"] == 1
    assert rows["q_learning"]["success_vs_random"] > 0.9
    assert "| Copy-Tiny-v0 | Q-learning | 1.000" in (tmp_path / "baselines.md").read_text()
    assert (tmp_path / "baselines.png").stat().st_size > 0


def test_readme_table_is_the_benchmark_output() -> None:
    from benchmarks import baselines

    # The reference run is committed: a missing file is a failure, not a reason to skip.
    results = baselines.RESULTS / "baselines.md"
    assert results.exists(), "run `python -m benchmarks.baselines` to produce the table"
    output = results.read_text().strip()
    rows = [line for line in output.splitlines() if line.startswith("|")]
    assert rows
    for path in baselines.READMES:
        block = path.read_text().split(baselines.BEGIN, 1)[1].split(baselines.END, 1)[0]
        assert block.strip() == output, (
            f"{path}: run `python -m benchmarks.baselines --render-only`"
        )
        assert all(row in block for row in rows)


def test_evaluating_zero_episodes_is_an_error() -> None:
    from agents.common import evaluate_policy

    agent = RandomAgent("textgym/Copy-Tiny-v0", seed=0)
    with pytest.raises(ValueError, match="n_episodes must be >= 1"):
        evaluate_policy(agent, gym.make("textgym/Copy-Tiny-v0"), n_episodes=0)
