"""``textgym serve`` and RemoteEnv on loopback: a served env plays exactly as a local one
(spaces, observations, rewards, flags and infos, dtypes too), sessions are isolated and
freed, mistakes get textgym's messages, and any OpenEnv client can talk to the server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.utils.env_checker import data_equivalence
from openenv.core import GenericEnvClient
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym
from textgym.cli import main
from textgym.episode import InputError, InputTypeError
from textgym.errors import ConfigError, ConfigTypeError
from textgym.remote import (
    RemoteConnectionError,
    RemoteEnv,
    SessionClosedError,
    UnservedEnvError,
)
from textgym.remote.protocol import TAG, decode, encode, space_from_json, space_to_json
from textgym.serve import ServerThread
from textgym.wrappers import TurnLevel


def latest(name: str) -> str:
    """The newest registered version of ``textgym/<name>`` (an older one warns as deprecated)."""
    return max(
        (i for i in textgym.env_ids() if i.rsplit("-v", 1)[0] == f"textgym/{name}"),
        key=lambda i: int(i.rsplit("-v", 1)[1]),
    )


DIALOGUE, DIALOGUE_TINY = latest("Dialogue"), latest("Dialogue-Tiny")
#: Played by the concurrent sessions: single- and multi-turn, both views.
MIXED = ["textgym/Copy-v0", "textgym/Reasoning-v0", DIALOGUE_TINY]
SESSIONS = 32


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(max_sessions=SESSIONS + 8) as running:
        yield running


def local(env_id: str, view: str, **kwargs: Any) -> gym.Env:
    env = gym.make(env_id, **kwargs)
    return TurnLevel(env) if view == "turn" else env


def oracle(env: gym.Env, view: str) -> Any:
    return env.oracle_turn() if view == "turn" else env.unwrapped.oracle_action()


def same(remote: tuple, mine: tuple) -> None:
    """Two ``reset`` or ``step`` results are equal in value and type (dtypes too)."""
    assert len(remote) == len(mine)
    for got, want in zip(remote, mine, strict=True):
        assert type(got) is type(want), (got, want)
        assert data_equivalence(got, want, exact=True), (got, want)


def sessions(server: ServerThread) -> int:
    with urllib.request.urlopen(server.url + "/sessions") as answer:
        return json.load(answer)["active_sessions"]


def wait_for(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the wire ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": (1, ("x", 2.5)), "b": [None, True, "t"], 3: "int key", (1, 2): "tuple key"},
        {"nan": math.nan, "inf": -math.inf, TAG: "a real key", "np": np.float32("nan")},
        {"ids": np.arange(6, dtype=np.int64).reshape(2, 3), "mask": np.array([True, False])},
        [np.int8(-3), np.float64(0.1), np.str_("s"), np.array([1.5, np.inf], np.float32)],
        [np.array([], np.int64), np.array(["ab", "c"]), np.bool_(True), -0.0, 10**30],
    ],
)
def test_values_cross_the_wire_exactly(value: Any) -> None:
    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    # NaN is not equal to itself: compare what encode sees (types, dtypes, tags) and repr.
    assert encode(back) == encode(value) and repr(back) == repr(value)
    assert type(back) is type(value)
    with pytest.raises(TypeError, match="cannot be sent as JSON"):
        encode({"reward": object()}, "kwargs")


def test_spaces_cross_the_wire_equal() -> None:
    for view in ("token", "turn"):
        env = local("textgym/Reasoning-Tiny-v0", view)
        for space in (env.observation_space, env.action_space):
            back = space_from_json(json.loads(json.dumps(space_to_json(space))))
            assert back == space and type(back) is type(space)
        if view == "turn":
            assert (back.allowed == env.action_space.allowed).all()


# -- playing ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [DIALOGUE, "textgym/Reasoning-v0"])
@pytest.mark.parametrize("view", ["token", "turn"])
def test_a_remote_trajectory_is_the_local_one(server: ServerThread, env_id: str, view: str) -> None:
    remote, mine = RemoteEnv(server.url, env_id, view=view), local(env_id, view)
    try:
        assert remote.observation_space == mine.observation_space
        assert remote.action_space == mine.action_space
        assert (remote.action_masks() == mine.unwrapped.action_masks()).all()
        rng = np.random.default_rng(0)
        # Seeded, then unseeded resets: the server's env keeps its RNG across resets.
        for seed in (7, None, None):
            same(remote.reset(seed=seed), mine.reset(seed=seed))
            done = False
            while not done:
                # Mostly the oracle, sometimes a random action: wrong turns and cut-offs too.
                action = oracle(mine, view)
                if rng.random() < 0.2:
                    mine.action_space.seed(int(rng.integers(1 << 30)))
                    action = mine.action_space.sample()
                step = remote.step(action)
                same(step, mine.step(action))
                done = step[2] or step[3]
        assert remote.messages() == mine.unwrapped.messages()
    finally:
        remote.close()


def test_32_concurrent_sessions_play_oracle_episodes(server: ServerThread) -> None:
    before = sessions(server)
    all_open = threading.Barrier(SESSIONS, timeout=120)
    counted: list[int] = []

    def play(i: int) -> bool:
        env_id, view = MIXED[i % len(MIXED)], ("token", "turn")[i % 2]
        remote, twin = RemoteEnv(server.url, env_id, view=view), local(env_id, view)
        try:
            if all_open.wait() == 0:  # every session is open now: count them once
                counted.append(sessions(server))
            for episode in range(2):
                seed = 1000 * i + episode  # a different problem in every session
                same(remote.reset(seed=seed), twin.reset(seed=seed))
                done = False
                while not done:
                    action = oracle(twin, view)
                    step = remote.step(action)
                    same(step, twin.step(action))  # anything another session did shows here
                    done = step[2] or step[3]
                if not step[4]["success"]:
                    return False
            return True
        finally:
            remote.close()

    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(play, range(SESSIONS)))
    assert results == [True] * SESSIONS
    assert counted == [before + SESSIONS]
    assert wait_for(lambda: sessions(server) == before, 10)


def test_both_checkers_accept_a_remote_env(server: ServerThread) -> None:
    for env_id, view in (("textgym/Reasoning-v0", "token"), (DIALOGUE, "turn")):
        for check in (gym_check_env, sb3_check_env):
            env = RemoteEnv(server.url, env_id, view=view)
            try:
                check(env, skip_render_check=True)
            finally:
                env.close()


def test_a_vector_env_of_remote_envs_is_the_local_one(server: ServerThread) -> None:
    def remote() -> RemoteEnv:
        return RemoteEnv(server.url, "textgym/Copy-Tiny-v0")

    before = sessions(server)
    remotes = gym.vector.SyncVectorEnv([remote] * 3)
    mine = gym.vector.SyncVectorEnv([lambda: gym.make("textgym/Copy-Tiny-v0")] * 3)
    try:
        same(remotes.reset(seed=5), mine.reset(seed=5))
        mine.action_space.seed(0)
        for _ in range(30):  # several episodes each: autoreset included
            actions = mine.action_space.sample()
            same(remotes.step(actions), mine.step(actions))
    finally:
        remotes.close()
    assert wait_for(lambda: sessions(server) == before, 10)


def test_render_and_state_come_from_the_server(server: ServerThread) -> None:
    remote = RemoteEnv(server.url, "textgym/Copy-v0", render_mode="ansi", reward="exact_match")
    mine = gym.make("textgym/Copy-v0", render_mode="ansi", reward="exact_match")
    try:
        same(remote.reset(seed=2), mine.reset(seed=2))
        for _ in range(2):
            action = mine.unwrapped.oracle_action()
            same(remote.step(action), mine.step(action))
        assert remote.render() == mine.render()
        state = remote.state()
        assert state["step_count"] == 2
        assert state["kwargs"] == {"render_mode": "ansi", "reward": "exact_match"}
    finally:
        remote.close()


# -- sessions are freed -----------------------------------------------------------------

CLIENT = """
import sys, time
from textgym.remote import RemoteEnv
env = RemoteEnv(sys.argv[1], "textgym/Reasoning-v0")
env.reset(seed=0)
for _ in range(3):
    env.step(7)
print("mid-episode", flush=True)
time.sleep(120)
"""


def test_a_killed_client_frees_its_session(server: ServerThread) -> None:
    before = sessions(server)
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, server.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout is not None and client.stdout.readline() == "mid-episode\n"
        assert sessions(server) == before + 1
    finally:
        client.kill()
        client.wait()
    assert wait_for(lambda: sessions(server) == before, 10)


def test_an_abandoned_session_is_freed_after_the_idle_timeout() -> None:
    with ServerThread(idle_timeout=0.2, env_ids=["textgym/Copy-v0"]) as idle:
        abandoned = RemoteEnv(idle.url, "textgym/Copy-v0")
        abandoned.reset(seed=0)
        abandoned.step(5)
        # OpenEnv's reaper looks every max(timeout / 4, 5) seconds.
        assert wait_for(lambda: idle.active_sessions == 0, 20)
        with pytest.raises(SessionClosedError, match=r"after 0.2 s without a message"):
            abandoned.step(5)
        abandoned.close()


# -- mistakes ---------------------------------------------------------------------------


def test_mistakes_get_textgym_messages(server: ServerThread) -> None:
    url = server.url
    with pytest.raises(UnservedEnvError, match=r"Did you mean 'textgym/Copy-v0'\?"):
        RemoteEnv(url, "textgym/Cpy-v0")
    with pytest.raises(UnservedEnvError, match="is not a textgym env"):
        RemoteEnv(url, "CartPole-v1")
    with pytest.raises(ConfigTypeError, match="Did you mean 'max_length'"):
        RemoteEnv(url, "textgym/Copy-v0", max_lenght=40)
    with pytest.raises(ConfigError, match=r"max_length must be an integer in \[8"):
        RemoteEnv(url, "textgym/Copy-v0", max_length=3)
    with pytest.raises(ConfigTypeError, match="reward is function .* spec string"):
        RemoteEnv(url, "textgym/Copy-v0", reward=lambda ctx: 1.0)
    with pytest.raises(ConfigError, match="Did you mean 'turn'"):
        RemoteEnv(url, "textgym/Copy-v0", view="turns")
    assert wait_for(lambda: server.active_sessions == 0, 10)  # refused sessions are freed
    env, mine = RemoteEnv(url, "textgym/Copy-v0"), gym.make("textgym/Copy-v0")
    try:
        for call in (lambda e: e.step(3), lambda e: e.reset(seed=-1), lambda e: e.reset(seed="x")):
            with pytest.raises(Exception) as remote_error:
                call(env)
            with pytest.raises(Exception) as local_error:
                call(mine)
            assert type(remote_error.value) is type(local_error.value)
            assert str(remote_error.value) == str(local_error.value)
        env.reset(seed=0)
        with pytest.raises(InputError, match=r"outside the vocabulary: token ids are in \[0,"):
            env.step(10**6)
        with pytest.raises(InputTypeError, match="cannot be sent as JSON"):
            env.step(object())
    finally:
        env.close()


def test_an_unreachable_or_full_server_is_named() -> None:
    with ServerThread(max_sessions=1, idle_timeout=None, env_ids=["textgym/Copy-v0"]) as small:
        first = RemoteEnv(small.url, "textgym/Copy-v0")
        with pytest.raises(
            RemoteConnectionError, match=r"is full \(1/1 sessions\).*--max-sessions"
        ):
            RemoteEnv(small.url, "textgym/Copy-v0")
        first.close()
        url = small.url
    message = f"No textgym server answers at {url} .*`textgym serve --port {url.rsplit(':', 1)[1]}`"
    with pytest.raises(RemoteConnectionError, match=message):
        RemoteEnv(url, "textgym/Copy-v0")
    with pytest.raises(ConfigError, match="url must be the server's address"):
        RemoteEnv("localhost:8000", "textgym/Copy-v0")


# -- OpenEnv's own clients --------------------------------------------------------------


def test_an_openenv_client_plays_the_server(server: ServerThread) -> None:
    mine = gym.make("textgym/Copy-v0")
    obs, _ = mine.reset(seed=4)
    with GenericEnvClient(base_url=server.url).sync() as client:
        result = client.reset(env_id="textgym/Copy-v0", seed=4)
        assert result.observation["input_ids"] == obs["input_ids"].tolist()
        while not result.done:
            action = mine.unwrapped.oracle_action()
            result = client.step({"token": action})
            obs, reward, *_ = mine.step(action)
            assert result.observation["input_ids"] == obs["input_ids"].tolist()
            assert result.reward == reward
        assert result.observation["info"]["success"] is True
        assert client.state()["env_id"] == "textgym/Copy-v0"
    # OpenEnv's stateless HTTP calls: each request gets a fresh session.
    request = urllib.request.Request(
        server.url + "/step",
        data=json.dumps({"action": {"token": 1}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    assert "EpisodeError: step() was called before reset()" in json.load(refused.value)["detail"]
    for path in ("/health", "/schema", "/metadata"):
        with urllib.request.urlopen(server.url + path) as answer:
            assert answer.status == 200


# -- the command line and the imports ---------------------------------------------------


def test_serve_refuses_bad_flags_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "notanumber"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("textgym serve: error: argument --port: invalid int value: 'notanumber'")
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be in [0, 65535]" in capsys.readouterr().err


def test_importing_textgym_imports_no_server_library_and_a_missing_one_is_named() -> None:
    code = (
        "import sys, textgym, textgym.cli\n"
        "heavy = [m for m in ('openenv', 'fastapi', 'uvicorn', 'websockets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "sys.modules['websockets'] = None\n"
        "from textgym.cli import main\n"
        "sys.exit(main(['serve', '--port', '0']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") <= 2
    assert "needs 'websockets'" in done.stderr
    assert "pip install 'textgym[integrations]'" in done.stderr
