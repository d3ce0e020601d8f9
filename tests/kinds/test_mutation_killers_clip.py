"""Value tests that pin manual_bp.clip, found by mutation testing (see mutation/README.md).

tests/manual_bp/test_schedule.py checks the clipped values on standard-normal gradients; these pin
what those leave open: one array instead of a dict, no gradients, an empty array and entries below 1
under the infinity norm (its maximum starts from 0), a non-finite norm without ``error_if_nonfinite``
(torch's default, False: the gradients become NaN, no error), and the names in the errors.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import manual_bp as mbp

SEEDS = range(4)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_array_is_clipped_in_place(seed: int) -> None:
    r = np.random.default_rng([900, seed])
    g = r.standard_normal((3, 2))
    before = g.copy()
    total = mbp.clip_grad_norm_(g, 0.5)
    assert total == pytest.approx(math.sqrt(float((before**2).sum())), rel=1e-14), f"seed {seed}"
    np.testing.assert_allclose(g, before * 0.5 / (total + 1e-6), rtol=1e-14, err_msg=f"seed {seed}")
    v = r.standard_normal(5) * 2
    want = np.minimum(np.maximum(v, -0.5), 0.5)
    mbp.clip_grad_value_(v, 0.5)
    np.testing.assert_array_equal(v, want)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_no_gradients_and_empty_arrays(norm_type: float) -> None:
    assert mbp.clip_grad_norm_({}, 1.0, norm_type) == 0.0
    grads = {"w": np.zeros(0), "b": np.array([0.25, -0.5])}
    total = mbp.clip_grad_norm_(grads, 10.0, norm_type)
    want = {2.0: math.sqrt(0.25**2 + 0.5**2), 1.0: 0.75, math.inf: 0.5}[norm_type]
    assert total == pytest.approx(want, rel=1e-15)
    assert mbp.clip_grad_norm_({"w": np.zeros(0)}, 1.0, norm_type) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_infinity_norm_of_small_entries(seed: int) -> None:
    """Every |g| < 1: the norm is the largest |g| (not 1, not 0), and the clip scales by max_norm / it."""
    r = np.random.default_rng([901, seed])
    grads = {"a": r.uniform(-0.9, 0.9, (2, 3)), "b": r.uniform(-0.9, 0.9, 4)}
    before = {k: v.copy() for k, v in grads.items()}
    largest = max(float(np.abs(v).max()) for v in before.values())
    assert mbp.clip_grad_norm_(grads, largest / 2, math.inf) == largest
    for k in grads:
        np.testing.assert_allclose(grads[k], before[k] * (largest / 2) / (largest + 1e-6), rtol=1e-14)


def test_non_finite_norm_without_the_flag_is_no_error() -> None:
    """torch's default error_if_nonfinite=False: the norm is returned and the gradients scaled by 0 or NaN."""
    grads = {"w": np.array([np.inf, 1.0])}
    with np.errstate(invalid="ignore"):  # inf * 0
        assert mbp.clip_grad_norm_(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["w"], [np.nan, 0.0])
    grads = {"w": np.array([np.nan, 1.0])}
    with np.errstate(invalid="ignore"):
        assert math.isnan(mbp.clip_grad_norm_(grads, 1.0, math.inf))
    finite = {"w": np.array([3.0, 4.0])}
    assert mbp.clip_grad_norm_(finite, 10.0, error_if_nonfinite=True) == 5.0


@pytest.mark.parametrize("fn", ["clip_grad_norm_", "clip_grad_value_"])
def test_errors_name_the_function(fn: str) -> None:
    call = getattr(mbp, fn)
    with pytest.raises(TypeError, match="^" + re.escape(f"{fn}: expected a dict name -> gradient array")):
        call([np.ones(2)], 1.0)
    with pytest.raises(TypeError, match="^" + re.escape(f"{fn}: every gradient must be a float32/float64 ndarray")):
        call({"w": np.ones(2, dtype=np.int64)}, 1.0)
    with pytest.raises(TypeError, match="^" + re.escape(f"{fn}: every gradient must be a float32/float64 ndarray")):
        call({"w": [1.0, 2.0]}, 1.0)
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="^" + re.escape(f"{fn}: gradients are clipped in place")):
        call({"w": frozen}, 1.0)
