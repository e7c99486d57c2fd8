"""Shared fixtures: the real data folder beside the checkout, the embedded sample, hypothesis profiles."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cococxr._env import use_tf_keras

use_tf_keras()  # the tf-keras environment before any test imports TensorFlow (import cococxr sets nothing)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COCOCXR_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "cococxr" / "sample"

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def shared(name: str) -> Path:
    """Path of a dataset under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} not present (../shared/data is not beside this checkout)")
    return path


@pytest.fixture
def sample_dir() -> Path:
    """The permissively licensed sample shipped inside the package."""
    return SAMPLE
