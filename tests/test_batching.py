"""``batch_infos`` builds Gymnasium's vector info layout exactly as ``VectorEnv._add_info``."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from gymnasium.vector import VectorEnv

from tests.test_envs import assert_same_infos
from textgym.batching import batch_infos

VALUES = (
    lambda r: r.randint(-5, 5),
    lambda r: r.random(),
    lambda r: r.random() < 0.5,
    lambda r: f"text {r.randint(0, 9)}",
    lambda r: (r.randint(0, 3), "tuple"),
    lambda r: np.float32(r.random()),
    lambda r: np.arange(3) * r.randint(0, 3),
)


def make_info(r: random.Random, keys: list[str], depth: int = 0) -> dict[str, Any]:
    # A key holds a dict in every info or in none, and its leaves one kind of value (as a
    # task writes them; a string after a float fails in both, as numpy refuses it).
    info: dict[str, Any] = {}
    for key in keys:
        if key.startswith("d") and depth < 2:
            inner = ["x", "dy", "z"][: r.randint(1, 3)]
            info[key] = make_info(r, r.sample(inner, len(inner)), depth + 1)
        else:
            info[key] = VALUES[(len(key) * 7 + ord(key[0]) + depth) % len(VALUES)](r)
    return info


def reference(pairs: list[tuple[int, dict[str, Any]]], num_envs: int) -> dict[str, Any]:
    env = VectorEnv()
    env.num_envs = num_envs
    out: dict[str, Any] = {}
    for i, info in sorted(pairs, key=lambda p: p[0]):
        out = env._add_info(out, info, i)
    return out


@pytest.mark.parametrize("same_keys", [True, False])
def test_batch_infos_matches_gymnasium_add_info(same_keys: bool) -> None:
    r = random.Random(int(same_keys))
    for _ in range(300):
        n = r.randint(1, 8)
        rows = r.sample(range(n), r.randint(1, n))
        keys = r.sample(["a", "b", "c", "d1", "d2"], r.randint(0, 5))
        pairs = []
        for i in rows:
            # The same keys in every row (a step's turn ends), or each row its own subset
            # in its own order (an autoreset beside a turn end).
            mine = keys if same_keys else r.sample(keys, r.randint(0, len(keys)))
            pairs.append((i, make_info(r, mine)))
        assert_same_infos(batch_infos(pairs, n), reference(pairs, n), f"{pairs}")
