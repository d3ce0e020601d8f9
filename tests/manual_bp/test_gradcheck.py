"""``manual_bp.gradcheck``, the finite-difference oracle itself: it leaves its inputs untouched, resolves
tiny gradients, measures errors as documented and rejects what it cannot judge.

The layer-by-layer checks that use it are tests/kinds/test_gradcheck_layers.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.gradcheck import gradcheck, relative_error
from tests.helpers import case_rng


def test_gradcheck_leaves_inputs_and_params_untouched() -> None:
    r = case_rng("untouched", 0)
    model = mbp.Sequential(mbp.Linear(3, 4, rng=r), mbp.GELU(), mbp.Linear(4, 2, rng=r))
    x = r.standard_normal((4, 3))
    before = model.state_dict()
    x_before = x.copy()
    gradcheck(model, mbp.MSE(), x, r.standard_normal((4, 2)))
    assert np.array_equal(x, x_before)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_sigmoid_cross_entropy_tiny_gradients_resolved() -> None:
    """The case that once reported 8.3e-6: Sigmoid shrinks the input gradient to ~1e-6 while the
    loss (and the finite differences' rounding, ~1e-10 absolute) stay O(1)."""
    r = np.random.default_rng(122)
    N, D, H, C = (int(r.integers(1, 8)), int(r.integers(1, 6)), int(r.integers(1, 6)), int(r.integers(2, 6)))
    model = mbp.Sequential(mbp.Linear(D, H, rng=r), mbp.Sigmoid(), mbp.Linear(H, C, rng=r))
    x = r.standard_normal((N, D)) * float(r.choice([1, 3]))
    y = r.integers(0, C, N)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.ok, str(result)
    assert result.abs_errors["input"] <= result.delta
    # the input gradient really is tiny next to the loss: a pure relative check could not pass
    loss = mbp.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    dx = model.backward(loss.backward())
    assert np.max(np.abs(dx)) < 1e-3


@pytest.mark.parametrize(
    ("a", "n", "resolution", "expected"),
    [
        (np.array([1.0, -2.0]), np.array([1.0, -2.0]), 0.0, 0.0),
        (np.array([1.0, -2.0]), np.array([1.001, -2.0]), 0.0, 0.001 / 1.001),
        (np.array([1e-9, 1.0]), np.array([0.0, 1.0]), 0.0, 1e-9 / 1e-3),  # floor: 1e-3 * scale
        (np.array([1e-6]), np.array([1e-6 + 1e-10]), 1e-4, 1e-10 / 1e-4),  # below the resolution
        (np.array([0.0]), np.array([0.0]), 0.0, 0.0),
    ],
)
def test_relative_error_measure(a: np.ndarray, n: np.ndarray, resolution: float, expected: Any) -> None:
    assert relative_error(a, n, resolution) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_gradcheck_rejects_float32_and_ambiguous_objective() -> None:
    layer = mbp.Linear(2, 2, rng=0, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(layer, None, np.ones((1, 2), np.float32), dout=np.ones((1, 2), np.float32))
    layer64 = mbp.Linear(2, 2, rng=0)
    with pytest.raises(ValueError, match="exactly one of"):
        gradcheck(layer64, mbp.MSE(), np.ones((1, 2)), np.ones((1, 2)), dout=np.ones((1, 2)))
