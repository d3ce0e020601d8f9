"""Shared test helpers. No framework is imported at module level: the NumPy-only suite runs without them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # one core per worker: see crosscheck.run.api.one_thread_per_process
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import require_frameworks

# Hypothesis budgets. "ci" (the default) keeps the suite fast; "thorough" is the raised budget:
# HYPOTHESIS_PROFILE=thorough python -m pytest tests/kinds/test_properties.py. A test that names its own
# max_examples keeps it under every profile. "mutation" is the default under mutmut (which runs this copy
# of the tests in its mutants/ folder): examples from a fixed seed and none replayed from the example
# database, so that whether a mutant is killed does not depend on the runs before it.
settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("mutation", max_examples=60, deadline=None, derandomize=True, database=None)
_UNDER_MUTMUT = Path(__file__).resolve().parents[1].name == "mutants"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mutation" if _UNDER_MUTMUT else "ci"))


@pytest.fixture
def rng() -> Callable[[int], np.random.Generator]:
    """``rng(seed)`` -> a fresh ``np.random.Generator``; the seed goes in the test id to replay."""
    return np.random.default_rng


# ---------------------------------------------------------------- parity (PyTorch / JAX)


@pytest.fixture
def frameworks() -> tuple[str, ...]:
    """Both references, or a skip (a failure under CROSSCHECK_REQUIRE) when one is missing."""
    return require_frameworks()
