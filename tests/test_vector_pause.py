"""``TextVectorEnv.pause``: rows that wait cost nothing and change nothing, and the LM
rollout steps only the rows that still play."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401
from textgym.episode import EpisodeError, InputError, InputTypeError

ID = "textgym/Copy-Tiny-v0"


def make(n: int = 3, **kwargs: object) -> gym.vector.VectorEnv:
    return gym.make_vec(ID, n, vectorization_mode="vector_entry_point", **kwargs)


def test_a_paused_row_keeps_its_context_and_the_others_step_as_without_it() -> None:
    envs, ref = make(), make()
    obs, _ = envs.reset(seed=[1, 2, 3])
    ref.reset(seed=[1, 2, 3])
    before = obs["input_ids"][1].copy(), int(obs["attention_mask"][1].sum())
    actions = np.array([5, 6, 7])
    envs.unwrapped.pause(np.array([False, True, False]))
    obs, reward, term, trunc, info = envs.step(actions)
    want = ref.step(actions)
    assert reward[1] == 0 and not term[1] and not trunc[1]
    assert (obs["input_ids"][1] == before[0]).all()
    assert int(obs["attention_mask"][1].sum()) == before[1]
    assert all(not info[k][1] for k in info if k.startswith("_"))
    for r in (0, 2):  # the rows that stepped are exactly as in a batch without a pause
        assert (obs["input_ids"][r] == want[0]["input_ids"][r]).all()
        assert reward[r] == want[1][r]
    # Next step, unpaused, row 1 takes the token it would have taken a step earlier.
    obs, *_ = envs.step(actions)
    assert obs["input_ids"][1][before[1]] == 6


def test_pause_lasts_one_step_and_a_finished_row_does_not_autoreset() -> None:
    envs = make(2)
    envs.reset(seed=0)
    eot = envs.unwrapped.eot_id
    # Row 0 ends its episode (Copy is single-turn: the end-of-turn token ends it).
    _, _, term, trunc, _ = envs.step(np.array([eot, 5]))
    assert term[0] or trunc[0]
    for _ in range(3):
        envs.unwrapped.pause(np.array([True, False]))
        obs, reward, term, trunc, info = envs.step(np.array([7, 5]))
        assert reward[0] == 0 and not term[0] and not trunc[0]
        assert "_episode" not in info or not info.get("_episode", np.zeros(2, bool))[0]
    # Unpaused, the row's next step is the autoreset step (its action is ignored).
    obs, reward, term, trunc, _ = envs.step(np.array([7, 5]))
    assert reward[0] == 0
    assert int(obs["attention_mask"][0].sum()) > 0


def test_paused_finished_rows_do_not_block_a_disabled_autoreset_env() -> None:
    envs = make(2, autoreset_mode=AutoresetMode.DISABLED)
    envs.reset(seed=0)
    eot = envs.unwrapped.eot_id
    envs.step(np.array([eot, 5]))
    envs.unwrapped.pause(np.array([True, False]))
    envs.step(np.array([eot, 5]))  # the finished row is paused: no error
    with pytest.raises(EpisodeError, match="DISABLED"):
        envs.step(np.array([eot, 5]))


def test_bad_pause_masks_are_refused_with_the_fix() -> None:
    envs = make()
    envs.reset(seed=0)
    with pytest.raises(InputTypeError, match=r"pause\(rows\) must be a bool array"):
        envs.unwrapped.pause([True, False, True])
    with pytest.raises(InputTypeError, match="astype"):
        envs.unwrapped.pause(np.array([1, 0, 1]))
    with pytest.raises(InputError, match=r"shape \(3,\)"):
        envs.unwrapped.pause(np.array([True, False]))
    envs.unwrapped.pause(np.zeros(3, dtype=bool))  # pausing no row is allowed
    envs.step(np.array([5, 5, 5]))


def test_sub_envs_share_one_task_built_with_the_callers_arguments() -> None:
    # One task for the batch: its tables and caches are built once, not once per row.
    envs = gym.make_vec(
        "textgym/Reasoning-v1", 4, vectorization_mode="vector_entry_point", max_steps=2,
        max_new_tokens=20,
    )  # fmt: skip
    subs = envs.unwrapped.envs
    assert len({id(env.task) for env in subs}) == 1
    assert subs[0].task.max_steps == 2  # the task's argument reached the shared task
    assert all(env.max_new_tokens == 20 for env in subs)  # and the env's reached every row
    _, info = envs.reset(seed=0)
    assert (info["metadata"]["n_steps"] <= 2).all()
