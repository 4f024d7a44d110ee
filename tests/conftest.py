"""Shared fixtures. Importing textgym registers every ``textgym/*`` id."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

import textgym

# Two cores: more threads only add contention between torch and the envs.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests are reproducible (derandomize: the same examples every run) and never
# fail on timing (no deadline): the suite must not flake on a loaded 2-core machine.
settings.register_profile("textgym", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("textgym")

#: Every id gym.make builds from the id alone; tests/test_tasks_external.py covers
#: textgym/Dataset-v0, which needs data=.
ENV_IDS = textgym.env_ids(standalone=True)


@pytest.fixture(params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    """Every registered textgym id."""
    return request.param
