"""Shared fixtures. Importing textgym registers every ``textgym/*`` id."""

from __future__ import annotations

import os

import pytest
import torch

import textgym

# Two cores: more threads only add contention between torch and the envs.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ENV_IDS = textgym.env_ids()


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    """Every registered textgym id."""
    return request.param
