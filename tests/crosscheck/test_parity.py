"""manual_bp against PyTorch and JAX on seeded random cases: every activation and gradient.

Each test id is the case id; a failure prints the first diverging tensor and
``python -m crosscheck --case <id>`` to replay it. ``CROSSCHECK_CASES`` sets how
many random cases run (default 500: even ids float64, odd ids float32).
"""

from __future__ import annotations

import os

import pytest

from crosscheck.cases import case, seed_case
from crosscheck.run.api import run_case

N_CASES = int(os.environ.get("CROSSCHECK_CASES", "500"))
pytestmark = pytest.mark.parity


def _compare(c, frameworks):
    return run_case(c, frameworks)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_seed_network(dtype, frameworks):
    result = _compare(seed_case(dtype), frameworks)
    assert result.ok, result.summary()
    kinds = {layer.kind for layer in result.spec.layers}
    assert kinds == {"linear", "relu"} and result.spec.loss.kind == "softmax_cross_entropy"


@pytest.mark.parametrize("case_id", range(N_CASES))
def test_random_case(case_id, frameworks):
    result = _compare(case(case_id), frameworks)
    assert result.ok, result.summary()
    # every comparison really ran: 3 pairs x 2 runs, each tensor of the spec checked
    assert len(result.comparisons) == 6
    assert all(len(comp.checks) >= 2 * len(result.spec.layers) for comp in result.comparisons)
