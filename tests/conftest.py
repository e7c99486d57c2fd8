"""Pytest setup: the tf-keras environment, hypothesis profiles and the ``sample_dir`` fixture.

What tests share as code (paths, data builders, strategies) is in ``helpers.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cococxr._env import use_tf_keras

use_tf_keras()  # the tf-keras environment before any test imports TensorFlow (import cococxr sets nothing)

from helpers import SAMPLE  # noqa: E402  # after use_tf_keras, like every test module

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def sample_dir() -> Path:
    """The permissively licensed sample shipped inside the package."""
    return SAMPLE
