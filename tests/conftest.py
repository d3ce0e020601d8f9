"""Shared test helpers. No framework is imported at module level: the NumPy-only suite runs without them."""

from __future__ import annotations

import os
from collections.abc import Callable

if os.environ.get("PYTEST_XDIST_WORKER"):  # one core per worker: see crosscheck.api.one_thread_per_process
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Hypothesis budgets. "ci" (the default) keeps the suite fast; "thorough" is the raised budget:
# HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py. A test that names its own
# max_examples keeps it under every profile.
settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> Callable[[int], np.random.Generator]:
    """``rng(seed)`` -> a fresh ``np.random.Generator``; the seed goes in the test id to replay."""
    return np.random.default_rng


# ---------------------------------------------------------------- parity (PyTorch / JAX)


def require_frameworks(frameworks: tuple[str, ...] = ("torch", "jax")) -> tuple[str, ...]:
    """The references for a parity test: skip with a reason when one is missing,
    fail instead when ``CROSSCHECK_REQUIRE`` (set by CI) names it."""
    from crosscheck.reference import reference

    required = {f.strip() for f in os.environ.get("CROSSCHECK_REQUIRE", "").split(",") if f.strip()}
    for fw in frameworks:
        try:
            reference(fw)
        except ImportError as err:
            if fw in required:
                pytest.fail(f"CROSSCHECK_REQUIRE names {fw}, but it cannot be imported: {err}")
            pytest.skip(f"parity test needs {fw}: {err}")
    return frameworks


@pytest.fixture
def frameworks() -> tuple[str, ...]:
    """Both references, or a skip (a failure under CROSSCHECK_REQUIRE) when one is missing."""
    return require_frameworks()
