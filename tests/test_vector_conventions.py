"""The native vector env follows Gymnasium's vector conventions where other libraries
(TorchRL's GymWrapper, Gymnasium's own wrappers) rely on them."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401
from textgym.errors import ConfigError

ID = "textgym/Copy-Tiny-v0"


def make(**kwargs):  # noqa: ANN003, ANN201
    return gym.make_vec(ID, 3, vectorization_mode="vector_entry_point", **kwargs)


@pytest.mark.parametrize("mode", [None, AutoresetMode.NEXT_STEP, "NextStep", "next_step"])
def test_next_step_autoreset_mode_is_accepted(mode: object) -> None:
    envs = make(autoreset_mode=mode)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, "same"])
def test_other_autoreset_modes_are_refused_with_the_way_out(mode: object) -> None:
    with pytest.raises(ConfigError, match=r"NEXT_STEP.*DISABLED.*vectorization_mode='sync'"):
        make(autoreset_mode=mode)


@pytest.mark.parametrize("mode", [AutoresetMode.DISABLED, "disabled"])
def test_disabled_autoreset_waits_for_a_reset_mask(mode: object) -> None:
    import numpy as np

    from textgym.episode import EpisodeError

    envs = make(autoreset_mode=mode)
    assert envs.autoreset_mode is AutoresetMode.DISABLED
    assert envs.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    envs.reset(seed=0)
    eot = envs.unwrapped.eot_id
    _, _, terminated, truncated, _ = envs.step(np.full(3, eot))  # an empty turn ends Copy
    done = terminated | truncated
    assert done.all()
    with pytest.raises(EpisodeError, match=r"DISABLED: reset them with envs.reset\(options"):
        envs.step(np.full(3, eot))
    envs.reset(options={"reset_mask": done})
    envs.step(np.full(3, eot))  # every sub-env is running again


def test_torchrl_wraps_the_native_vector_env() -> None:
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs

    env = GymWrapper(make(autoreset_mode=AutoresetMode.DISABLED))
    check_env_specs(env)
    rollout = env.rollout(30, break_when_any_done=False)
    assert rollout.batch_size[0] == 3 and rollout["next", "done"].any()


def test_np_random_seed_matches_sync_vector_env() -> None:
    native, sync = make(), gym.make_vec(ID, 3, vectorization_mode="sync")
    native.reset(seed=42)
    sync.reset(seed=42)
    assert native.np_random_seed == sync.np_random_seed == (42, 43, 44)
    assert len(native.np_random) == 3


def test_bad_masks_and_actions_raise_gymnasiums_exception_types() -> None:
    import numpy as np

    # The types of the current Gymnasium's SyncVectorEnv (1.1's asserts instead).
    native = make()
    native.reset(seed=0)
    for bad in ([True, False, True], np.array([1, 0, 1]), 1, 0.5):
        with pytest.raises(TypeError):
            native.reset(options={"reset_mask": bad})
    with pytest.raises(ValueError):
        native.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(TypeError, match=r"single action 3.*np.array"):
        native.step(3)


def test_torchrl_parallel_env_runs_textgym_in_worker_processes() -> None:
    pytest.importorskip("torchrl")
    import functools

    from torchrl.envs import GymEnv, ParallelEnv
    from torchrl.envs.utils import check_env_specs

    # The "textgym:" prefix makes each worker import textgym before it makes the env; a
    # partial (not a lambda) pickles to the workers as it is.
    env = ParallelEnv(2, functools.partial(GymEnv, "textgym:textgym/Copy-Tiny-v0"))
    try:
        check_env_specs(env)
        rollout = env.rollout(20, break_when_any_done=False)
        assert rollout.batch_size[:1] == (2,) and rollout["next", "done"].any()
    finally:
        env.close()
