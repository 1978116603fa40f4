"""Shared fixtures and settings for the skmetaot test suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from hypothesis import HealthCheck, settings

# The benchmarks' harness (benchmarks/harness) is importable as ``harness``, as in the scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# Reproducible property tests: the examples depend only on the test, never on the run.
settings.register_profile(
    "skmetaot",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# HYPOTHESIS_PROFILE=explore draws fresh random examples on each run (to hunt for new failures).
settings.register_profile("explore", parent=settings.get_profile("skmetaot"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "skmetaot"))


@pytest.fixture(autouse=True)
def _seed_torch():
    """Every test starts from the same torch RNG state."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_metadata_routing():
    """scikit-learn's default routing for every test: importing skada (anywhere in the run, e.g.
    a lazy import in a benchmark) turns it on for the whole process. Tests that want it on
    enter their own ``config_context`` inside this one."""
    with sklearn.config_context(enable_metadata_routing=False):
        yield


@pytest.fixture
def rng():
    """A fixed-seed numpy generator."""
    return np.random.default_rng(0)


@pytest.fixture
def cloud_pairs(rng):
    """Four weighted point-cloud pairs of different sizes in [0, 1]^2 (numpy)."""
    pairs = []
    for n, m in [(5, 7), (9, 4), (6, 6), (3, 8)]:
        x, y = rng.random((n, 2)), rng.random((m, 2))
        a, b = rng.random(n) + 0.05, rng.random(m) + 0.05
        pairs.append(((x, a), (y, b)))
    return pairs


@pytest.fixture
def image_pairs(rng):
    """Three pairs of 5 x 6 random "images" with some zero pixels, shape (3, 2, 5, 6)."""
    images = rng.random((3, 2, 5, 6))
    images[images < 0.25] = 0.0
    return images
