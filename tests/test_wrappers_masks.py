"""AllowedTokens and MaskInObservation: spaces, mapping, errors, checkers, pickling."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym
from agents.tabular import QLearning
from textgym.wrappers import AllowedTokens, MaskInObservation

ENV_ID = "textgym/Copy-Tiny-v0"


def _allowed_ids(env_id: str = ENV_ID) -> np.ndarray:
    return np.flatnonzero(gym.make(env_id).unwrapped.action_masks())


def _play_oracle(env: gym.Env) -> tuple[float, dict]:
    """One seeded episode of the oracle, acting through ``env``'s own action space."""
    env.reset(seed=0)
    done, reward, info = False, 0.0, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        done = terminated or truncated
    return float(reward), info


# -- AllowedTokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["textgym/Copy-Tiny-v0", "textgym/Reasoning-Tiny-v0"])
def test_allowed_tokens_maps_actions_to_the_allowed_ids(env_id: str) -> None:
    allowed = _allowed_ids(env_id)
    env = AllowedTokens(gym.make(env_id))
    assert env.action_space == spaces.Discrete(len(allowed)) and len(allowed) < 100
    assert env.token_ids.tolist() == allowed.tolist()
    assert env.action_masks().shape == (len(allowed),) and env.action_masks().all()
    env.reset(seed=0)
    base = env.base_env
    for action in range(len(allowed)):
        assert env.token_action(int(allowed[action])) == action
    # Step action 0 and look at the context: the token written is the first allowed id.
    before = len(base.context_ids)
    env.step(0)
    assert base.context_ids[before] == allowed[0]
    reward, info = _play_oracle(env)
    assert info["success"] and reward > 0


def test_allowed_tokens_is_its_own_unwrapped() -> None:
    # Libraries that read spaces from env.unwrapped (Tianshou's DummyEnvWorker) see the
    # shrunken space; the TextEnv's attributes stay readable through it.
    env = AllowedTokens(gym.make(ENV_ID))
    assert env.unwrapped is env
    assert env.unwrapped.action_space == env.action_space
    assert isinstance(env.base_env, textgym.TextEnv)
    assert env.unwrapped.tokenizer is env.base_env.tokenizer
    env.reset(seed=3)
    assert env.unwrapped.messages() == env.base_env.messages()
    # oracle_action answers in actions of the wrapper, not token ids.
    assert env.token_ids[env.unwrapped.oracle_action()] == env.base_env.oracle_action()
    with pytest.raises(AttributeError, match="no attribute 'nonsense'.*TextEnv"):
        _ = env.nonsense


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (4, ValueError, r"Action 4 is outside the action space Discrete\(4\).*\[0, 4\)"),
        (-1, ValueError, r"Action -1 is outside the action space Discrete\(4\)"),
        (np.int64(1000), ValueError, r"Action 1000 is outside"),
        (1.0, TypeError, r"Action 1.0 has type float.*integer action in Discrete\(4\)"),
        (True, TypeError, r"type bool"),
        ("0", TypeError, r"type str"),
        (np.array([0, 1]), ValueError, r"shape \(2,\).*one action"),
    ],
)
def test_allowed_tokens_refuses_bad_actions(action: object, error: type, message: str) -> None:
    env = AllowedTokens(gym.make(ENV_ID))
    assert env.action_space.n == 4  # the messages below name Copy-Tiny's four tokens
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(action)
    env.step(np.array([0]))  # a refused action leaves the episode running; (1,) is accepted


def test_tabular_agent_learns_through_allowed_tokens() -> None:
    # Q-learning reads action_masks() through the wrapper: one row entry per allowed action.
    agent = QLearning(AllowedTokens(gym.make(ENV_ID)), seed=0, log_dir=None)
    result = agent.learn(total_timesteps=2_000).evaluate(n_episodes=50)
    assert result.success_rate == 1.0, result


def test_allowed_tokens_bad_construction() -> None:
    with pytest.raises(TypeError, match="Discrete action space"):
        AllowedTokens(gym.make("Pendulum-v1"))
    with pytest.raises(TypeError, match="action_masks"):
        AllowedTokens(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match=r"MaskInObservation\(AllowedTokens\(env\)\)"):
        AllowedTokens(MaskInObservation(gym.make(ENV_ID)))
    env = AllowedTokens(gym.make(ENV_ID))
    with pytest.raises(ValueError, match="Token id 0 is not an allowed token"):
        env.token_action(0)


# -- MaskInObservation ------------------------------------------------------------------------


def test_mask_in_observation_over_the_vocabulary() -> None:
    env = MaskInObservation(gym.make(ENV_ID))
    vocab = env.action_space.n
    assert env.observation_space["action_mask"] == spaces.Box(0, 1, (vocab,), np.bool_)
    assert env.unwrapped is env and "action_mask" in env.unwrapped.observation_space.spaces
    obs, _ = env.reset(seed=0)
    assert obs["action_mask"].dtype == np.bool_
    assert np.array_equal(obs["action_mask"], env.base_env.action_masks())
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    assert np.array_equal(obs["action_mask"], env.action_masks())


def test_mask_in_observation_over_allowed_tokens() -> None:
    env = MaskInObservation(AllowedTokens(gym.make(ENV_ID)), key="mask")
    obs, _ = env.reset(seed=0)
    assert obs["mask"].shape == (env.action_space.n,) == (4,) and obs["mask"].all()
    assert env.unwrapped.action_space == spaces.Discrete(4)
    assert set(env.unwrapped.observation_space.spaces) == {"input_ids", "attention_mask", "mask"}
    reward, info = _play_oracle(env)
    assert info["success"] and reward > 0


def test_mask_in_observation_bad_construction() -> None:
    with pytest.raises(TypeError, match="Dict observation"):
        MaskInObservation(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="already has a 'input_ids' key"):
        MaskInObservation(gym.make(ENV_ID), key="input_ids")
    with pytest.raises(TypeError, match="key must be a non-empty str"):
        MaskInObservation(gym.make(ENV_ID), key=3)  # type: ignore[arg-type]


# -- both: the checkers, pickling, specs ------------------------------------------------------


WRAPPED = {
    "allowed": lambda: AllowedTokens(gym.make(ENV_ID)),
    "mask": lambda: MaskInObservation(gym.make(ENV_ID)),
    "mask+allowed": lambda: MaskInObservation(AllowedTokens(gym.make(ENV_ID))),
}


@pytest.mark.parametrize("name", list(WRAPPED))
def test_wrapped_envs_pass_gymnasium_and_sb3_check_env(name: str) -> None:
    gym_check_env(WRAPPED[name](), skip_render_check=True)
    sb3_check_env(WRAPPED[name](), skip_render_check=True)


@pytest.mark.parametrize("name", list(WRAPPED))
def test_wrapped_envs_pickle_and_rebuild_from_their_spec(name: str) -> None:
    env = WRAPPED[name]()
    obs, _ = env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    rebuilt = gym.make(env.spec)  # the wrappers are recorded in the spec
    assert str(rebuilt) == str(env)
    for other in (clone, rebuilt):
        other_obs, _ = other.reset(seed=5)
        assert other.action_space == env.action_space
        assert other.observation_space == env.observation_space
        for key in obs:
            assert np.array_equal(obs[key], other_obs[key]), key
        assert other.step(1)[1:4] == env.step(1)[1:4]
        env.reset(seed=5)
