"""Bad input gets an error that names the problem and the fix."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym import EpisodeError, RewardError, TextEnv, TokenizerError
from textgym.tokenizer import build_tokenizer


@pytest.fixture
def env() -> TextEnv:
    e = TextEnv("copy")
    e.reset(seed=0)
    return e


@pytest.mark.parametrize("action", [-1, 10**6])
def test_action_outside_vocabulary(env: TextEnv, action: int) -> None:
    with pytest.raises(ValueError, match=r"outside the vocabulary.*\[0, \d+\)"):
        env.step(action)


@pytest.mark.parametrize("action", ["red", 3.0, 2.5, None, True, [1, 2]])
def test_action_of_wrong_type(env: TextEnv, action: object) -> None:
    with pytest.raises(TypeError, match="one integer token id"):
        env.step(action)


def test_numpy_integer_actions_accepted(env: TextEnv) -> None:
    env.step(np.int64(5))
    env.step(np.array(6))
    env.step(np.array([7], dtype=np.int32))


@pytest.mark.parametrize("shape", [(1, 1), (2,), (0,)])
def test_action_array_of_wrong_shape(env: TextEnv, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"shape \({shape[0]},.*one token id.*make_vec"):
        env.step(np.full(shape, 3, dtype=np.int64))


def test_step_before_reset() -> None:
    with pytest.raises(EpisodeError, match=r"before reset\(\).*call env.reset\(\)"):
        TextEnv("copy").step(0)


def test_step_after_episode_end(env: TextEnv) -> None:
    env.step(env.chat.eot_id)
    with pytest.raises(EpisodeError, match=r"after the episode ended.*reset\(\)"):
        env.step(0)


def test_unknown_make_kwarg_suggests_the_right_one() -> None:
    with pytest.raises(TypeError, match=r"Unknown argument 'lenght'.*Did you mean 'length'"):
        gym.make("textgym/Copy-v0", lenght=4)


def test_unknown_task() -> None:
    with pytest.raises(KeyError, match=r"Unknown task 'cpy'.*Did you mean 'copy'"):
        TextEnv("cpy")


def test_bad_render_mode() -> None:
    with pytest.raises(ValueError, match="render_mode='rgb' is not supported"):
        TextEnv("copy", render_mode="rgb")


def test_rgb_array_render_mode_is_disabled_not_fatal() -> None:
    # stable-baselines3 asks for rgb_array when it builds an env from an id string.
    with pytest.warns(UserWarning, match="no 'rgb_array' frames.*use 'ansi'"):
        env = TextEnv("copy", render_mode="rgb_array")
    assert env.render_mode is None


def _tokenizer_without(token: str):
    tok = build_tokenizer(["copy: red blue"], ["red", "blue", "copy"])
    setattr(tok, token, None)
    return tok


def test_tokenizer_without_eot() -> None:
    tok = _tokenizer_without("eos_token")
    # With a chat template the turn ends where the template ends an assistant turn.
    assert TextEnv("copy", tokenizer=tok).chat.eot_id == tok.convert_tokens_to_ids("<eot>")
    tok.chat_template = None
    with pytest.raises(TokenizerError, match=r"no eos token.*ends an agent turn.*chat template"):
        TextEnv("copy", tokenizer=tok)


def test_tokenizer_without_pad() -> None:
    with pytest.raises(TokenizerError, match=r"no pad token.*pad_token = tokenizer.eos_token"):
        TextEnv("copy", tokenizer=_tokenizer_without("pad_token"))


def test_missing_tokenizer_path(tmp_path) -> None:
    with pytest.raises(TokenizerError, match="path does not exist"):
        TextEnv("copy", tokenizer=str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "value, pattern",
    [
        (math.nan, "returned nan.*finite"),
        (math.inf, "returned inf.*finite"),
        (None, "returned None.*finite number"),
        ("1.0", "returned '1.0'.*finite number"),
    ],
)
def test_reward_returning_garbage(value: object, pattern: str) -> None:
    def broken(ctx):
        return value

    env = TextEnv("copy", reward=broken)
    env.reset(seed=0)
    with pytest.raises(RewardError, match=f"Reward 'broken' {pattern}"):
        env.step(env.chat.eot_id)


def test_reward_not_callable() -> None:
    with pytest.raises(TypeError, match="reward must be a textgym Reward or a function"):
        TextEnv("copy", reward=3)


def test_vector_env_rejects_bad_actions() -> None:
    envs = gym.make_vec("textgym/Copy-v0", 2, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    with pytest.raises(TypeError, match="integer token ids"):
        envs.step(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        envs.step(np.array([0, 10**6]))
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        envs.step(np.array([0, 1, 2]))


def test_a_prompt_cut_by_max_length_warns() -> None:
    env = TextEnv("copy", max_length=8)
    with pytest.warns(UserWarning, match="does not fit max_length=8.*Raise max_length"):
        env.reset(seed=0)
    assert env.episode.length == 7  # cut from the left, leaving the agent one slot


def test_vector_env_reset_mask_errors() -> None:
    envs = gym.make_vec("textgym/Copy-v0", 2, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="only some sub-envs.*without a mask first"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    envs.reset(seed=0)
    # Gymnasium's exception types: the wrong kind of mask is a TypeError.
    with pytest.raises(TypeError, match=r"bool array of shape \(2,\).*dtype int64"):
        envs.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(TypeError, match=r"a numpy array.*got \[True, False\] \(list\)"):
        envs.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        envs.reset(options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(ValueError, match="marks no sub-env"):
        envs.reset(options={"reset_mask": np.array([False, False])})
    options = {"reset_mask": np.array([False, True])}
    envs.reset(options=options)
    assert "reset_mask" in options  # the caller's dict is left as it was


def test_vector_env_refuses_human_render_mode() -> None:
    with pytest.raises(ValueError, match="render_mode='ansi'.*one string per sub-env"):
        gym.make_vec(
            "textgym/Copy-v0", 2, vectorization_mode="vector_entry_point", render_mode="human"
        )


def test_default_tokenizer_is_offline_fast_tokenizer() -> None:
    from transformers import PreTrainedTokenizerFast

    tok = textgym.default_tokenizer()
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.eos_token == "<eot>" and tok.pad_token == "<pad>"
    ids = tok.encode("answer: 120", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids)[-3:] == ["1", "2", "0"]  # one token per digit
    assert tok.decode(ids) == "answer: 120"
