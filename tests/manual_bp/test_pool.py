"""MaxPool2d and AvgPool2d (manual_bp/pool.py): hand-computed values, overlapping windows, the tie
rule (the first maximum) and non-finite values as torch, both divisors of the average. MaxPool1d, AvgPool1d and
AdaptiveAvgPool2d: finite differences, values by hand, torch's adaptive windows, bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import pool
from manual_bp.gradcheck import gradcheck
from tests.helpers import case_rng
from tests.helpers.cnn import TIES
from tests.helpers.toolbox import POOLS


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
    np.testing.assert_array_equal(
        out[0, 0], [[0, 0.25, 0.75, 0.5], [0.75, 2, 3, 1.75], [2.25, 5, 6, 3.25], [1.5, 3.25, 3.75, 2]]
    )
    np.testing.assert_array_equal(pool.avg_pool2d_backward(np.ones_like(out), cache)[0, 0], np.ones((3, 3)))
    out, cache = pool.avg_pool2d_forward(x, 2, 1, 1, count_include_pad=False)
    np.testing.assert_array_equal(out[0, 0], [[0, 0.5, 1.5, 2], [1.5, 2, 3, 3.5], [4.5, 5, 6, 6.5], [6, 6.5, 7.5, 8]])
    dx = pool.avg_pool2d_backward(np.ones_like(out), cache)[0, 0]  # corner: 1 + 1/2 + 1/2 + 1/4
    np.testing.assert_array_equal(dx[0, 0], 2.25)
    out, cache = pool.avg_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    np.testing.assert_array_equal(out[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(pool.avg_pool2d_backward(np.ones_like(out), cache), np.full((1, 1, 4, 4), 0.25))


# ---------------------------------------------------------------- MaxPool1d, AvgPool1d, AdaptiveAvgPool2d


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("name", list(POOLS))
def test_1d_and_adaptive_pools_gradcheck(name: str, seed: int) -> None:
    """Finite differences in float64 (max relative error <= 1e-6), random upstream gradient, batch and width 1;
    max-pool inputs at least 0.03 apart (no near-tie)."""
    r = case_rng("pool/" + name, seed)
    layer, x = POOLS[name](r, seed)
    dout = r.standard_normal(layer.forward(x).shape)
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok and result.max_error <= 1e-6, f"{name} seed={seed} {layer!r} x.shape={x.shape}\n{result}"


def test_1d_pools_by_hand() -> None:
    x = np.array([1.0, 5.0, 5.0, 2.0, 7.0]).reshape(1, 1, 5)
    out, cache = pool.max_pool1d_forward(x, 2, stride=1)
    np.testing.assert_array_equal(out.ravel(), [5, 5, 5, 7])
    dx = pool.max_pool1d_backward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4), cache)
    np.testing.assert_array_equal(dx.ravel(), [0, 1 + 2, 3, 0, 4])  # the tie (5, 5) goes to the first
    out, cache = pool.avg_pool1d_forward(x, 2, 2, 1, count_include_pad=False)
    np.testing.assert_array_equal(out.ravel(), [1, 5, 4.5])
    np.testing.assert_array_equal(pool.avg_pool1d_backward(np.ones((1, 1, 3)), cache).ravel(), [1, 0.5, 0.5, 0.5, 0.5])
    out, _ = pool.avg_pool1d_forward(x, 2, 2, 1)  # count_include_pad: / 2 always
    np.testing.assert_array_equal(out.ravel(), [0.5, 5, 4.5])
    layer = mbp.MaxPool1d(3, 2, 1, dilation=2)
    assert layer.config() == {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}
    np.testing.assert_array_equal(layer.forward(x).ravel(), [5, 5])  # windows {-1, 1, 3}, {1, 3, 5}: x[4] unread


def test_adaptive_windows_are_torch_s() -> None:
    """Window i covers [floor(i H / H_out), ceil((i + 1) H / H_out)): for H = 5, H_out = 3 they overlap."""
    assert pool.adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert pool.adaptive_windows(4, 2) == [(0, 2), (2, 4)] and pool.adaptive_windows(2, 5)[1] == (0, 1)
    x = np.arange(15.0).reshape(1, 1, 3, 5)
    out, cache = pool.adaptive_avg_pool2d_forward(x, (1, 3))
    np.testing.assert_allclose(out.ravel(), [x[..., 0:2].mean(), x[..., 1:4].mean(), x[..., 3:5].mean()])
    dx = pool.adaptive_avg_pool2d_backward(np.ones((1, 1, 1, 3)), cache)[0, 0, 0]
    np.testing.assert_allclose(dx, [1 / 6, 1 / 6 + 1 / 9, 1 / 9, 1 / 9 + 1 / 6, 1 / 6])  # shared columns add
    g = mbp.AdaptiveAvgPool2d(1)
    np.testing.assert_allclose(g.forward(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-15)
    assert mbp.AdaptiveAvgPool2d((None, 2)).forward(x).shape == (1, 1, 3, 2)


def test_adaptive_pool_keeps_nan_and_inf_in_their_windows() -> None:
    """Each output averages its own window only: a NaN or inf reaches the outputs whose windows hold it."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, np.inf
    out = mbp.AdaptiveAvgPool2d(2).forward(x)[0, 0]
    assert np.isnan(out[0, 0]) and out[1, 1] == np.inf and out[0, 1] == 0 and out[1, 0] == 0


POOL_BAD = [
    (
        lambda: mbp.MaxPool1d(2).forward(np.ones((2, 3))),
        ValueError,
        "MaxPool1d: input must be 3-D (N, C, L), got shape (2, 3) (2-D)",
    ),
    (
        lambda: mbp.MaxPool1d(3).forward(np.ones((1, 1, 2))),
        ValueError,
        "MaxPool1d: the kernel 3 with dilation 1 spans 3, longer than the padded input 2 (input shape (1, 1, 2)",
    ),
    (
        lambda: mbp.MaxPool1d(2, 1, 1, dilation=3).forward(np.ones((1, 1, 2))),
        ValueError,
        "MaxPool1d: window 0 lies entirely in the padding for input shape (1, 1, 2)",
    ),
    (lambda: mbp.AvgPool1d(2, padding=2), ValueError, "AvgPool1d: padding 2 must be at most half the kernel 2"),
    (lambda: mbp.AvgPool1d(2, ceil_mode=True), ValueError, "AvgPool1d: ceil_mode=True is not supported"),
    (lambda: mbp.AdaptiveAvgPool2d(0), ValueError, "AdaptiveAvgPool2d: output_size must be an int >= 1, None or a"),
    (
        lambda: mbp.AdaptiveAvgPool2d(2).forward(np.ones((2, 3, 4))),
        ValueError,
        "AdaptiveAvgPool2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4) (3-D)",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), POOL_BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(POOL_BAD)]
)
def test_1d_and_adaptive_pools_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()
