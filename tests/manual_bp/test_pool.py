"""MaxPool2d and AvgPool2d (manual_bp/pool.py): hand-computed values, overlapping windows, the tie
rule (the first maximum) and non-finite values as torch, both divisors of the average."""

from __future__ import annotations

import numpy as np
import pytest

from manual_bp import pool
from tests.helpers.cnn import TIES


def test_max_pool_values_and_overlapping_windows_accumulate() -> None:
    x = np.array([[1.0, 5.0, 2.0], [7.0, 3.0, 0.0], [4.0, 8.0, 6.0]]).reshape(1, 1, 3, 3)
    out, cache = pool.max_pool2d_forward(x, 2, stride=1)
    np.testing.assert_array_equal(out[0, 0], [[7, 5], [8, 8]])
    dx = pool.max_pool2d_backward(np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 2, 0], [1, 0, 0], [0, 3 + 4, 0]])  # 8 is the max of two windows


@pytest.mark.parametrize("name", list(TIES))
def test_max_pool_ties_go_to_the_first_maximum(name: str) -> None:
    """Values measured with torch 2.13 (CPU) and JAX 0.10 (``reduce_window`` max); see test_ties_match_torch_and_jax."""
    x, geometry, expected = TIES[name]
    out, cache = pool.max_pool2d_forward(x.reshape(1, 1, *x.shape), *geometry)
    np.testing.assert_array_equal(pool.max_pool2d_backward(np.ones_like(out), cache)[0, 0], expected)


def test_max_pool_non_finite_values_as_torch() -> None:
    """A NaN is its window's maximum (the last NaN gets the gradient, as torch's CPU kernel); a non-finite
    upstream gradient reaches only the selected elements (not NaN = inf * 0 on the others)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, cache = pool.max_pool2d_forward(x, 2)
    dout = np.ones_like(out)
    dout[0, 0, 0, 0], dout[0, 0, 1, 1] = np.inf, np.nan
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = np.inf, 1.0, 1.0, np.nan
    np.testing.assert_array_equal(pool.max_pool2d_backward(dout, cache)[0, 0], expected)
    x = np.array([[np.nan, 1.0], [np.nan, 2.0]]).reshape(1, 1, 2, 2)
    out, cache = pool.max_pool2d_forward(x, 2)
    assert np.isnan(out).all()
    np.testing.assert_array_equal(pool.max_pool2d_backward(np.ones_like(out), cache).ravel(), [0, 0, 1, 0])


def test_avg_pool_values_both_divisors() -> None:
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, cache = pool.avg_pool2d_forward(x, 2, 1, 1, count_include_pad=True)
    np.testing.assert_array_equal(out[0, 0], [[0, 0.25, 0.75, 0.5], [0.75, 2, 3, 1.75], [2.25, 5, 6, 3.25],
                                              [1.5, 3.25, 3.75, 2]])
    np.testing.assert_array_equal(pool.avg_pool2d_backward(np.ones_like(out), cache)[0, 0], np.ones((3, 3)))
    out, cache = pool.avg_pool2d_forward(x, 2, 1, 1, count_include_pad=False)
    np.testing.assert_array_equal(out[0, 0], [[0, 0.5, 1.5, 2], [1.5, 2, 3, 3.5], [4.5, 5, 6, 6.5],
                                              [6, 6.5, 7.5, 8]])
    dx = pool.avg_pool2d_backward(np.ones_like(out), cache)[0, 0]  # corner: 1 + 1/2 + 1/2 + 1/4
    np.testing.assert_array_equal(dx[0, 0], 2.25)
    out, cache = pool.avg_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    np.testing.assert_array_equal(out[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(pool.avg_pool2d_backward(np.ones_like(out), cache), np.full((1, 1, 4, 4), 0.25))
