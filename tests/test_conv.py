"""Conv2d, MaxPool2d and AvgPool2d: finite differences, hand-computed values, tie conventions, parity with
PyTorch and JAX on random CNNs, input handling, bad input, save/load, planted bugs.

Every random case is rebuilt from its test id (layer name and seed, or the CNN case id).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.cases_cnn import cnn_case, hazards
from crosscheck.compare import compare_case, reduction_length
from crosscheck.scales import _conv_gains, _pool_counts
from crosscheck.spec import read_spec
from manual_bp import conv, pool, windows
from manual_bp.gradcheck import gradcheck
from manual_bp.windows import Geometry
from tests.test_gradcheck_layers import case_rng

SEEDS = range(24)
N_PARITY = 60  # CNN case ids in the parity sweep (even float64, odd float32)


# ---------------------------------------------------------------- random layers and inputs


def _fit(r: np.random.Generator, k: int, p: int, d: int) -> int:
    """An input size the dilated kernel fits after padding: span - 2p <= size, at least 1."""
    return max(1, d * (k - 1) + 1 - 2 * p) + int(r.integers(0, 4))


def _conv_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Cycles through batch 1, 1x1 kernels, grouped (depthwise too), non-square strided/dilated, general."""
    kind = seed % 6
    groups = int(r.choice([2, 3])) if kind == 2 else 1
    Cin = groups * (1 if kind == 2 and seed % 12 == 2 else int(r.integers(1, 4)))  # seed 2, 14: depthwise
    Cout = groups * int(r.integers(1, 4))
    k = (1, 1) if kind == 1 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    s = (1, 2) if kind == 3 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    p = (int(r.integers(0, 3)), int(r.integers(0, 3)))
    d = (2, 1) if kind == 3 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
    N = 1 if kind == 0 else int(r.integers(2, 4))
    H, W = _fit(r, k[0], p[0], d[0]), _fit(r, k[1], p[1], d[1])
    layer = mbp.Conv2d(Cin, Cout, k, s, p, d, groups, bias=seed % 4 != 3, rng=r)
    return layer, r.standard_normal((N, Cin, H, W)) * float(r.choice([0.5, 1.0, 3.0]))


def _distinct(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Entries at least 0.03 apart (a shuffled grid plus jitter): no max-pool window is near a tie, so a
    finite-difference step of 1e-6 never changes which element is the maximum."""
    n = int(np.prod(shape))
    grid = r.permutation(n) * 0.05 + r.uniform(0, 0.02, n)
    return (grid - grid.mean()).reshape(shape)


def _pool_geometry(r: np.random.Generator, dilation: bool) -> tuple[Pair, Pair | None, Pair, Pair]:
    k = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    s = None if r.random() < 0.3 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    p = (int(r.integers(0, k[0] // 2 + 1)), int(r.integers(0, k[1] // 2 + 1)))
    d = (int(r.integers(1, 3)), int(r.integers(1, 3))) if dilation else (1, 1)
    return k, s, p, d


Pair = tuple[int, int]


def _max_pool_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    while True:  # draws until no window lies entirely in the padding (a dilated max-pool's own check)
        k, s, p, d = _pool_geometry(r, dilation=seed % 2 == 1)
        N, C = (1 if seed % 6 == 0 else int(r.integers(2, 4))), int(r.integers(1, 4))
        H, W = _fit(r, k[0], p[0], d[0]), _fit(r, k[1], p[1], d[1])
        layer = mbp.MaxPool2d(k, s, p, d)
        try:
            layer._check_input(np.zeros((N, C, H, W)))
        except ValueError:
            continue
        return layer, _distinct(r, (N, C, H, W))


def _avg_pool_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    k, s, p, _ = _pool_geometry(r, dilation=False)
    N, C = (1 if seed % 6 == 0 else int(r.integers(2, 4))), int(r.integers(1, 4))
    H, W = _fit(r, k[0], p[0], 1), _fit(r, k[1], p[1], 1)
    layer = mbp.AvgPool2d(k, s, p, count_include_pad=seed % 2 == 0)
    return layer, r.standard_normal((N, C, H, W))


MAKERS: dict[str, Callable[[np.random.Generator, int], tuple[mbp.Module, np.ndarray]]] = {
    "Conv2d": _conv_layer,
    "MaxPool2d": _max_pool_layer,
    "AvgPool2d": _avg_pool_layer,
}


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MAKERS))
def test_gradcheck(name: str, seed: int) -> None:
    r = case_rng("conv/" + name, seed)
    layer, x = MAKERS[name](r, seed)
    x_before = x.copy()
    out = layer.forward(x)
    dout = r.standard_normal(out.shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok, f"{name} seed={seed} {layer!r} x.shape={x.shape}\n{result}"
    assert set(result.errors) == {"input", *layer.params}
    np.testing.assert_array_equal(x, x_before)


def _fd_friendly(case_id: int) -> bool:
    """A float64 CNN case small enough for finite differences, without planted kinks, whose activations and
    max-pool windows keep 1e-4 relative distance from every kink and tie (100x the step h = 1e-6)."""
    c = cnn_case(case_id, "float64")
    size = c.x.size + sum(p.size for p in c.model.params.values())
    return size <= 1500 and "kink" not in c.tags and not hazards(list(c.model), c.x, "float32")


FD_CASES = [i for i in range(60) if _fd_friendly(i)][:16]


@pytest.mark.parametrize("case_id", FD_CASES)
def test_gradcheck_random_cnn(case_id: int) -> None:
    """Whole CNNs with their loss: conv -> activation -> pool -> ... -> Flatten -> Linear."""
    c = cnn_case(case_id, "float64")
    result = gradcheck(c.model, c.loss_fn, c.x, c.y)
    assert result.ok, f"cnn case {case_id}: {c.description}\n{result}"


def test_fd_cases_cover_every_layer() -> None:
    assert len(FD_CASES) >= 10
    kinds = {layer.kind for i in FD_CASES for layer in cnn_case(i, "float64").model}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "flatten", "linear"} <= kinds


# ---------------------------------------------------------------- hand-computed values


def test_conv_is_cross_correlation() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    W = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, _ = conv.conv2d_forward(x, W, None)
    # out[0, 0] = 0*1 + 1*2 + 4*3 + 5*4 = 34 (a flipped kernel, true convolution, would give 16)
    expected = np.array([[34.0, 44.0, 54.0], [74.0, 84.0, 94.0], [114.0, 124.0, 134.0]])
    np.testing.assert_array_equal(out[0, 0], expected)
    out, _ = conv.conv2d_forward(x, np.array([[[[1.0, 0.0], [0.0, -1.0]]]]), np.array([0.5]))
    np.testing.assert_array_equal(out, np.full((1, 1, 3, 3), -5.0 + 0.5))


def test_conv_stride_padding_and_gradients_by_hand() -> None:
    x, W = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    out, cache = conv.conv2d_forward(x, W, np.zeros(1), stride=2, padding=1)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 4.0))  # each corner window holds 4 real ones
    dx, dW, db = conv.conv2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # windows covering each pixel
    np.testing.assert_array_equal(dW[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # real pixels under each tap
    np.testing.assert_array_equal(db, [4.0])


def test_conv_groups_dilation_non_square() -> None:
    x = np.array([2.0, 3.0]).reshape(1, 2, 1, 1)
    out, _ = conv.conv2d_forward(x, np.array([5.0, 7.0]).reshape(2, 1, 1, 1), None, groups=2)
    np.testing.assert_array_equal(out.ravel(), [10.0, 21.0])  # each group sees only its own channel
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    out, cache = conv.conv2d_forward(x, np.array([[[[1.0, 10.0]]]]), None, dilation=(1, 2))
    np.testing.assert_array_equal(out.ravel(), [0 + 20, 1 + 30, 2 + 40])  # x[j] + 10 x[j + 2]
    dx, dW, _ = conv.conv2d_backward(np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3), cache)
    np.testing.assert_array_equal(dx.ravel(), [1, 2, 3 + 10, 20, 30])
    np.testing.assert_array_equal(dW.ravel(), [0 * 1 + 1 * 2 + 2 * 3, 2 * 1 + 3 * 2 + 4 * 3])


def test_max_pool_values_and_overlapping_windows_accumulate() -> None:
    x = np.array([[1.0, 5.0, 2.0], [7.0, 3.0, 0.0], [4.0, 8.0, 6.0]]).reshape(1, 1, 3, 3)
    out, cache = pool.max_pool2d_forward(x, 2, stride=1)
    np.testing.assert_array_equal(out[0, 0], [[7, 5], [8, 8]])
    dx = pool.max_pool2d_backward(np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 2, 0], [1, 0, 0], [0, 3 + 4, 0]])  # 8 is the max of two windows


TIES = {  # input, (kernel, stride, padding, dilation), dx for dout = 1: the first maximum of each window
    "all ones 2x2": (np.ones((2, 2)), (2, 2, 0, 1), [[1, 0], [0, 0]]),
    "zeros, overlapping": (np.zeros((3, 3)), (2, 1, 0, 1), [[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
    "zeros, padded 3x3": (np.zeros((3, 3)), (3, 1, 1, 1), [[4, 2, 0], [2, 1, 0], [0, 0, 0]]),
    "row vs column tie": (np.array([[0.0, 2, 0], [2, 0, 0], [0, 0, 0]]), (2, 2, 1, 1),
                          [[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
    "one tied pair, overlapping": (np.array([[0.0, 1, 1], [1, 0, 1], [0, 0, 0]]), (2, 1, 0, 1),
                                   [[0, 2, 0], [1, 0, 1], [0, 0, 0]]),
    "zeros, dilated": (np.zeros((4, 4)), (2, 1, 0, 2), [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
}


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


def test_flatten_nchw() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5))
    out = mbp.Flatten().forward(x)
    assert out.shape == (3, 2 * 4 * 5)
    np.testing.assert_array_equal(out[1], x[1].ravel())  # C, H, W order: torch's nn.Flatten


# ---------------------------------------------------------------- parity with torch and JAX


def _compare(c, frameworks):
    return compare_case(c.model, c.loss_fn, c.x, c.y, dloss=c.dloss, dout=c.dout, frameworks=frameworks,
                        case_id=c.case_id, description=c.description, replay=c.replay)


@pytest.mark.parity
@pytest.mark.parametrize("case_id", range(N_PARITY))
def test_random_cnn_parity(case_id: int, frameworks) -> None:
    result = _compare(cnn_case(case_id), frameworks)
    assert result.ok, result.summary()
    assert len(result.comparisons) == 6
    assert "conv2d" in result.spec.kinds


def test_random_cnn_cases_are_well_formed() -> None:
    seen: set[str] = set()
    for i in range(N_PARITY):
        c = cnn_case(i)
        N, C, H, W = c.x.shape
        assert 1 <= N <= 8 and 1 <= C <= 4 and 1 <= H <= 12 and 1 <= W <= 12, c.description
        assert c.dtype == ("float64" if i % 2 == 0 else "float32") and c.x.dtype == c.dtype
        assert c.dout.shape == c.model.forward(c.x).shape and c.replay == f"python -m crosscheck --case {i}"
        assert not hazards(list(c.model), c.x, c.dtype), c.description
        assert cnn_case(i).description == c.description  # reproducible from the id
        seen |= {layer.kind for layer in c.model} | set(c.tags)
        seen |= {"groups>1" for layer in c.model if getattr(layer, "groups", 1) > 1}
        seen |= {f"dilated {layer.kind}" for layer in c.model if getattr(layer, "geometry", None)
                 and layer.geometry.d != (1, 1)}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "kink", "groups>1", "dilated conv2d",
            "dilated max_pool2d"} <= seen, seen
    assert cnn_case(3, "float64").replay == "python -m crosscheck --case 3 --dtype float64"


def test_hazards_flag_near_ties_and_near_kinks_only() -> None:
    pool = mbp.MaxPool2d(2)
    window = np.array([[1.0, 0.5], [-2.0, 0.0]])
    for second, dtype, near in ((1.0 - 1e-12, "float64", True), (1.0 - 1e-6, "float64", False),
                                (1.0 - 1e-6, "float32", True), (1.0 - 1e-3, "float32", False), (1.0, "float64", True)):
        x = window.copy()
        x[1, 1] = second  # the runner-up of the window
        assert hazards([pool], x.reshape(1, 1, 2, 2).astype(dtype), dtype) is near, (second, dtype)
    assert not hazards([pool], np.zeros((1, 1, 2, 2)), "float64")  # exact zeros: the same tie in every backend
    diff = mbp.Conv2d(2, 1, 1, bias=False, rng=0)
    diff.params["W"][:] = np.array([1.0, -1.0]).reshape(1, 2, 1, 1)  # z = x0 - x1: cancellation
    for gap, near in ((1e-13, True), (1e-6, False)):
        x = np.array([3.0, 3.0 - gap]).reshape(1, 2, 1, 1)
        assert hazards([diff, mbp.ReLU()], x, "float64") is near, gap
    # exactly 0, but by cancelling nonzero terms: another summation order may round it off the kink
    assert hazards([diff, mbp.ReLU()], np.full((1, 2, 1, 1), 3.0), "float64")
    diff.params["W"][:] = 0.0  # a planted zero: every term is 0, so is z in every backend
    assert not hazards([diff, mbp.ReLU()], np.full((1, 2, 1, 1), 3.0), "float64")
    diff.params["W"][:] = np.array([1.0, -1.0]).reshape(1, 2, 1, 1)
    clear = np.array([1.0, 3.0]).reshape(1, 2, 1, 1)  # z = -2, well clear of the kink: ReLU gives an exact 0
    assert not hazards([diff, mbp.ReLU(), mbp.Conv2d(1, 1, 1, bias=False, rng=0), mbp.ReLU()], clear, "float64")


def test_hazards_flag_a_softplus_threshold_hit_by_rounding() -> None:
    """A float32 sum that rounds to exactly threshold / beta (found on a random CNN case: 1.5 with beta 2,
    threshold 3) may round to the other side in another backend, and the branches differ by 1.6%."""
    conv = mbp.Conv2d(1, 1, 1, rng=0, dtype=np.float32)
    conv.params["W"][:], conv.params["b"][:] = 0.5, 1.0
    x = np.full((1, 1, 1, 1), 1.0, np.float32)  # z = 0.5 x + 1 = 1.5 exactly
    assert hazards([conv, mbp.Softplus(beta=2.0, threshold=3.0)], x, "float32")
    assert not hazards([conv, mbp.Softplus(beta=2.0, threshold=3.5)], x, "float32")


@pytest.mark.parity
@pytest.mark.parametrize("name", list(TIES))
def test_ties_match_torch_and_jax(name: str, frameworks) -> None:
    """Exact ties: torch's CPU max_pool2d and JAX's reduce_window max give the first maximum the gradient,
    as manual_bp does (and, with dilation, JAX's reference through its gathered blocks)."""
    x, (k, s, p, d), _ = TIES[name]
    x = np.stack([x, x + 1]).reshape(1, 2, *x.shape)  # two channels
    identity = mbp.Conv2d(2, 2, 1, bias=False, rng=0)  # 1 x + 0 x' is exact: the pool sees the ties unchanged
    identity.params["W"][:] = np.eye(2).reshape(2, 2, 1, 1)
    model = mbp.Sequential(identity, mbp.MaxPool2d(k, s, p, d), mbp.Flatten())
    r = np.random.default_rng(0)
    t, dout = r.standard_normal((2, *model.forward(x).shape))
    result = compare_case(model, mbp.MSE(), x, t, dloss=1.0, dout=dout, frameworks=frameworks)
    assert result.ok, result.summary()  # a gradient sent to another tied element would be off by O(1)


def test_scales_window_counts_and_gains_are_exact() -> None:
    """The scale propagation's pool overlap m, smallest divisor and conv gains against brute force."""
    r = np.random.default_rng(5)
    for _ in range(40):
        k, s, p, _ = _pool_geometry(r, dilation=False)
        H, W = _fit(r, k[0], p[0], 1), _fit(r, k[1], p[1], 1)
        layer = mbp.AvgPool2d(k, s, p, count_include_pad=bool(r.random() < 0.5))
        spec = read_spec(mbp.Sequential(layer)).layers[0]
        out, cache = pool.avg_pool2d_forward(np.ones((1, 1, H, W)), k, s, p, layer.count_include_pad)
        g = Geometry(layer.geometry.k, layer.geometry.s, layer.geometry.p, (1, 1))
        hits = windows.windows(np.ones((1, 1, H, W)), g).sum(axis=(-2, -1))  # real elements per window
        windows_per_pixel = pool.avg_pool2d_backward(np.full(out.shape, float(k[0] * k[1])), (k[0] * k[1], *cache[1:]))
        m, divisor = _pool_counts(spec, (1, 1, H, W))
        assert m == windows_per_pixel.max()
        assert divisor == (k[0] * k[1] if layer.count_include_pad else hits.min())
    W = r.standard_normal((6, 2, 3, 2))
    fwd, bwd = _conv_gains(W, 3)
    assert fwd == pytest.approx(np.abs(W).sum(axis=(1, 2, 3)).max())
    assert bwd == pytest.approx(max(np.abs(W[2 * g:2 * g + 2, c]).sum() for g in range(3) for c in range(2)))


# ---------------------------------------------------------------- input handling


@pytest.mark.parametrize("name", list(MAKERS))
def test_read_only_non_contiguous_inputs_and_dout(name: str) -> None:
    r = case_rng("layout/" + name, 0)
    layer, x = MAKERS[name](r, 4)
    out = layer.forward(x)
    dout = r.standard_normal(out.shape)
    dx = layer.backward(dout)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    xf = np.asfortranarray(x)  # same values, another memory layout
    xs = np.zeros((*x.shape[:3], 2 * x.shape[3]))[..., ::2]  # strided
    xs[...] = x
    for xv in (xf, xs, x.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)):
        xv.setflags(write=False)
        before = xv.copy()
        np.testing.assert_allclose(layer.forward(xv), out, rtol=1e-14, atol=1e-14)
        dv = np.asfortranarray(dout)
        dv.setflags(write=False)
        np.testing.assert_allclose(layer.backward(dv), dx, rtol=1e-14, atol=1e-14)
        for k, v in layer.grads.items():
            np.testing.assert_allclose(v, grads[k], rtol=1e-14, atol=1e-14)
        np.testing.assert_array_equal(xv, before)
        np.testing.assert_array_equal(dv, np.asfortranarray(dout))


@pytest.mark.parametrize("name", list(MAKERS))
def test_float32_stays_float32(name: str) -> None:
    r = case_rng("f32/" + name, 1)
    layer, x = MAKERS[name](r, 5)
    arch = mbp.architecture(layer)
    if "dtype" in arch["config"]:
        arch["config"]["dtype"] = "float32"
    layer32 = mbp.build(arch)
    out = layer32.forward(x.astype(np.float32))
    assert out.dtype == np.float32
    dx = layer32.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in layer32.grads.values())


def test_conv_without_input_grad_gives_the_same_parameter_gradients() -> None:
    r = np.random.default_rng(3)
    layer = mbp.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, rng=r)
    x = r.standard_normal((2, 2, 5, 6))
    dout = r.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    full = {k: v.copy() for k, v in layer.grads.items()}
    assert dx.shape == x.shape and layer.backward(dout, input_grad=False) is None
    for k, v in full.items():
        np.testing.assert_array_equal(layer.grads[k], v)


def test_conv_init_like_torch() -> None:
    layer = mbp.Conv2d(6, 8, (3, 2), groups=2, rng=0)
    bound = 1 / np.sqrt(3 * 3 * 2)  # fan_in = in_channels / groups * kH * kW
    assert layer.params["W"].shape == (8, 3, 3, 2) and layer.params["b"].shape == (8,)
    for p in layer.params.values():
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    np.testing.assert_array_equal(mbp.Conv2d(6, 8, (3, 2), groups=2, rng=0).params["W"], layer.params["W"])


def test_save_load_and_build_round_trip(tmp_path) -> None:
    r = np.random.default_rng(2)
    model = mbp.Sequential(
        mbp.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), rng=r), mbp.ReLU(),
        mbp.MaxPool2d(2, 1, 1, dilation=2), mbp.Conv2d(4, 4, 1, groups=4, bias=False, rng=r),
        mbp.AvgPool2d((2, 1), padding=(1, 0), count_include_pad=False), mbp.Flatten(),
    )
    x = r.standard_normal((2, 3, 7, 8))
    features = model.forward(x).shape[1]
    model.layers.append(mbp.Linear(features, 3, rng=r))
    model = mbp.Sequential(*model.layers)
    back = mbp.load(mbp.save(tmp_path / "cnn.npz", model))
    assert mbp.architecture(back) == mbp.architecture(model)
    assert sorted(back.state_dict()) == ["0.W", "0.b", "3.W", "6.W", "6.b"]
    np.testing.assert_array_equal(back.forward(x), model.forward(x))
    rebuilt = mbp.build(mbp.architecture(model))
    assert [layer.config() for layer in rebuilt] == [layer.config() for layer in model]
    for layer in model:
        assert type(layer)(**layer.config()).config() == layer.config()


# ---------------------------------------------------------------- bad input

BAD = [
    (lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((3, 5, 5))), ValueError,
     "Conv2d: input must be 4-D (N, 3, H, W), got shape (3, 5, 5) (3-D)"),
    (lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 2, 5, 5))), ValueError,
     "Conv2d: expected input (N, 3, H, W), got shape (2, 2, 5, 5): axis 1 must hold the 3 input channels"),
    (lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 3, 5, 5), np.float32)), TypeError,
     "Conv2d: input dtype float32 does not match the parameters' dtype float64"),
    (lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 3, 5, 5), np.int64)), TypeError,
     "Conv2d: input must have dtype float32 or float64, got int64"),
    (lambda: mbp.Conv2d(1, 1, (3, 5), padding=(0, 1), dilation=(1, 2)).forward(np.ones((1, 1, 3, 4))), ValueError,
     "Conv2d: the kernel (3, 5) with dilation (1, 2) spans (3, 9), larger than the padded input (3, 6) "
     "(input shape (1, 1, 3, 4), padding (0, 1))"),
    (lambda: mbp.Conv2d(4, 6, 3, groups=4), ValueError,
     "Conv2d: groups=4 must divide in_channels=4 and out_channels=6"),
    (lambda: mbp.Conv2d(3, 4, 3, stride=0), ValueError, "Conv2d: stride must be an int >= 1 or a pair of them, got 0"),
    (lambda: mbp.Conv2d(3, 4, (1, 2, 3)), ValueError, "Conv2d: kernel_size must be an int >= 1 or a pair of them"),
    (lambda: mbp.Conv2d(3, 4, 3, padding=-1), ValueError, "Conv2d: padding must be an int >= 0 or a pair of them"),
    (lambda: mbp.Conv2d(0, 4, 3), ValueError, "Conv2d: in_channels must be a positive int, got 0"),
    (lambda: mbp.MaxPool2d(2, padding=2), ValueError,
     "MaxPool2d: padding (2, 2) must be at most half the kernel (2, 2)"),
    (lambda: mbp.AvgPool2d((3, 1), padding=(1, 1)), ValueError,
     "AvgPool2d: padding (1, 1) must be at most half the kernel (3, 1)"),
    (lambda: mbp.MaxPool2d(3).forward(np.ones((1, 2, 2, 5))), ValueError,
     "MaxPool2d: the kernel (3, 3) with dilation (1, 1) spans (3, 3), larger than the padded input (2, 5)"),
    (lambda: mbp.MaxPool2d(2, 1, 1, dilation=3).forward(np.ones((1, 1, 2, 2))), ValueError,
     "MaxPool2d: window 0 along H lies entirely in the padding for input shape (1, 1, 2, 2)"),
    (lambda: mbp.AvgPool2d(2).forward(np.ones((4, 4))), ValueError,
     "AvgPool2d: input must be 4-D (N, C, H, W), got shape (4, 4) (2-D)"),
    (lambda: mbp.AvgPool2d(2).forward(np.ones((0, 1, 4, 4))), ValueError, "AvgPool2d: input is empty"),
]


@pytest.mark.parametrize(("call", "exc", "message"), BAD,
                         ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(BAD)])
def test_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_error_names_the_layer_in_a_model() -> None:
    model = mbp.Sequential(mbp.Conv2d(1, 2, 3, rng=0), mbp.MaxPool2d(2), mbp.Conv2d(3, 1, 1, rng=0))
    with pytest.raises(ValueError, match=re.escape("Conv2d '2': expected input (N, 3, H, W), got shape (1, 2, 2, 2)")):
        model.forward(np.ones((1, 1, 6, 6)))
    with pytest.raises(ValueError, match=re.escape("Conv2d '0': dout (same as the forward output) must have shape")):
        model.layers[0].backward(np.ones((1, 2, 3, 3)))


# ---------------------------------------------------------------- planted bugs


def _flipped_forward(x, W, b, *args):
    return GOOD["conv2d_forward"](x, W[:, :, ::-1, ::-1], b, *args)  # true convolution


def _flipped_dx(dout, cache, need_dx=True):
    cols, W, *rest = cache
    dx, _, _ = GOOD["conv2d_backward"](dout, (cols, W[:, :, ::-1, ::-1], *rest), need_dx)
    _, dW, db = GOOD["conv2d_backward"](dout, cache, need_dx)
    return dx, dW, db


def _stride_one_dx(dout, cache, need_dx=True):
    _, dW, db = GOOD["conv2d_backward"](dout, cache, need_dx=False)
    cols, W, _, x_shape, g = cache
    N, groups, K, _ = cols.shape
    dout_t = dout.transpose(1, 2, 3, 0).reshape(groups, W.shape[0] // groups, -1)
    dcols = W.reshape(groups, -1, K).transpose(0, 2, 1) @ dout_t  # as conv2d_backward, then scattered
    dwin = dcols.reshape(x_shape[1], *g.k, *dout.shape[2:], N)  # as if the forward had used stride 1
    return windows.scatter_windows(dwin, g._replace(s=(1, 1)), *x_shape[2:]) if need_dx else None, dW, db


def _max_to_whole_window(dout, cache):
    _, x_shape, g = cache
    C, Ho, Wo, N = dout.transpose(1, 2, 3, 0).shape
    dwin = np.broadcast_to(dout.transpose(1, 2, 3, 0)[:, None, None], (C, *g.k, Ho, Wo, N))
    return windows.scatter_windows(dwin, g, *x_shape[2:])  # every element of the window, not only the maximum


def _avg_not_divided(dout, cache):
    return GOOD["avg_pool2d_backward"](dout, (1, *cache[1:]))  # divisor 1 instead of the count


GOOD = {name: getattr(conv, name) for name in
        ("conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_backward")}
PLANTS = {  # (module whose layer calls it, function, planted replacement)
    "conv forward flips the kernel": (conv, "conv2d_forward", _flipped_forward),
    "conv dx uses the flipped kernel": (conv, "conv2d_backward", _flipped_dx),
    "conv dx scattered with stride 1": (conv, "conv2d_backward", _stride_one_dx),
    "max-pool gradient to the whole window": (pool, "max_pool2d_backward", _max_to_whole_window),
    "avg-pool gradient not divided by the count": (pool, "avg_pool2d_backward", _avg_not_divided),
}


def _plant_net(seed: int) -> tuple[mbp.Sequential, np.ndarray, np.ndarray, np.ndarray]:
    """x (2, 2, 9, 8) -> Conv2d(2, 4, 3, stride 2, padding 1) -> Tanh -> MaxPool2d(2, 1) -> Conv2d(4, 3, (2, 3))
    -> AvgPool2d(2, padding 1) -> Flatten -> Linear -> CE: every planted formula is used."""
    r = np.random.default_rng(seed)
    layers = [mbp.Conv2d(2, 4, 3, stride=2, padding=1, rng=r), mbp.Tanh(), mbp.MaxPool2d(2, 1),
              mbp.Conv2d(4, 3, (2, 3), rng=r), mbp.AvgPool2d(2, padding=1), mbp.Flatten()]
    x = r.standard_normal((2, 2, 9, 8))
    while hazards(layers, x, "float32"):  # keep every max-pool window 1e-4 away from a tie
        x = r.standard_normal((2, 2, 9, 8))
    features = mbp.Sequential(*layers).forward(x).shape[1]
    model = mbp.Sequential(*layers, mbp.Linear(features, 3, rng=r))
    return model, x, r.integers(0, 3, 2), r.standard_normal((2, 3))


def test_plant_net_passes_finite_differences() -> None:
    model, x, y, _ = _plant_net(0)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.ok, result


@pytest.mark.parametrize("name", list(PLANTS))
def test_plant_is_caught_by_finite_differences(name: str, monkeypatch) -> None:
    model, x, y, _ = _plant_net(0)  # passes unpatched: test_plant_net_passes_finite_differences
    monkeypatch.setattr(*PLANTS[name])
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.max_error > 1e-3, f"{name} went unnoticed:\n{result}"


EXPECTED_FIRST = {  # (mode, first diverging tensor) in forward-then-backward order
    "conv forward flips the kernel": ("loss", "0.out"),
    "conv dx uses the flipped kernel": ("loss", "3.dx"),
    "conv dx scattered with stride 1": ("loss", "0.dx"),
    "max-pool gradient to the whole window": ("loss", "2.dx"),
    "avg-pool gradient not divided by the count": ("loss", "4.dx"),
}


@pytest.mark.parity
def test_plant_net_agrees_with_the_references(frameworks) -> None:
    model, x, y, dout = _plant_net(1)
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert result.ok, result.summary()


@pytest.mark.parity
@pytest.mark.parametrize("name", list(PLANTS))
def test_plant_is_caught_by_the_references_at_the_right_tensor(name: str, monkeypatch, frameworks) -> None:
    model, x, y, dout = _plant_net(1)  # agrees unpatched: test_plant_net_agrees_with_the_references
    loss_fn = mbp.SoftmaxCrossEntropy()
    monkeypatch.setattr(*PLANTS[name])
    result = compare_case(model, loss_fn, x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert not result.ok, f"{name} went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp" and bad.error > 100 * bad.bound, (bad.name, bad.error)
    assert (comp.mode, bad.name) == EXPECTED_FIRST[name]


def _tied_forward(x, *geometry):
    out, cache = GOOD["max_pool2d_forward"](x, *geometry)
    return out, (cache, x, geometry)


def _to_every_tied_maximum(dout, cache):
    """Every element equal to its window's maximum gets the window's whole gradient (not only the first)."""
    (_, x_shape, g), x, _ = cache
    win = windows.windows(x, g, -np.inf)  # (N, C, Ho, Wo, kH, kW)
    is_max = win == win.max(axis=(-2, -1), keepdims=True)
    dwin = np.where(is_max, dout[..., None, None], 0.0).transpose(1, 4, 5, 2, 3, 0)  # (C, kH, kW, Ho, Wo, N)
    return windows.scatter_windows(dwin, g, *x_shape[2:])


@pytest.mark.parity
def test_plant_ties_duplicated_is_caught_on_exact_ties(monkeypatch, frameworks) -> None:
    """Finite differences cannot judge a tie (no derivative there); the references can: a kink-planted
    CNN case holds all-zero channels, whose max-pool windows are exact ties."""
    c = next(c for c in map(cnn_case, range(200)) if "kink" in c.tags and any(
        a.kind == "relu" and b.kind == "max_pool2d" for a, b in itertools.pairwise(c.model)))
    assert _compare(c, frameworks).ok
    monkeypatch.setattr(pool, "max_pool2d_forward", _tied_forward)
    monkeypatch.setattr(pool, "max_pool2d_backward", _to_every_tied_maximum)
    result = _compare(c, frameworks)
    assert not result.ok, f"case {c.case_id}: duplicated tie gradients went unnoticed"
    _, bad = result.first_divergence
    pools = {layer.name for layer in c.model if layer.kind == "max_pool2d"}
    assert bad.name.endswith(".dx") and bad.name[:-3] in pools, bad.name


# (x shape, Conv2d arguments) on which XLA 0.10's CPU compiler aborted the process while compiling the input
# gradient, when the JAX reference put the padding inside lax.conv_general_dilated (crosscheck.jax_ref._conv2d)
JAX_ABORT_GEOMETRIES = [
    ((5, 4, 1, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (3, 2), "stride": (3, 2), "padding": (1, 1)}),
    ((5, 4, 2, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (3, 2), "stride": (3, 2), "padding": (1, 1)}),
    ((5, 4, 1, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (2, 2), "stride": (2, 2), "padding": (1, 1)}),
]
_ABORT_CHILD = """
import json, sys
import numpy as np
import manual_bp as mbp
from crosscheck.compare import compare_case, reduction_length
for shape, kw in json.loads(sys.argv[1]):
    r = np.random.default_rng(0)
    x = r.standard_normal(shape)
    conv = mbp.Conv2d(**kw, rng=r)
    features = mbp.Sequential(conv, mbp.Flatten()).forward(x).shape[1]
    model = mbp.Sequential(conv, mbp.Tanh(), mbp.Flatten(), mbp.Linear(features, 2, rng=r))
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, r.integers(0, 2, shape[0]), dloss=1.3,
                          dout=r.standard_normal((shape[0], 2)), frameworks=tuple(sys.argv[2].split(",")))
    print("ok" if result.ok else result.summary(), flush=True)
"""


@pytest.mark.parity
def test_jax_reference_survives_padded_strided_geometries(frameworks) -> None:
    """Compiled in a child process: an abort inside XLA would otherwise take the test process down with it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    cases = json.dumps([[list(shape), {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}]
                        for shape, kw in JAX_ABORT_GEOMETRIES])
    child = subprocess.run([sys.executable, "-c", _ABORT_CHILD, cases, ",".join(frameworks)],
                           capture_output=True, text=True, env=env, timeout=600)
    assert child.returncode == 0, f"exit {child.returncode}:\n{child.stderr[-3000:]}"
    assert child.stdout.split("\n")[:-1] == ["ok"] * len(JAX_ABORT_GEOMETRIES), child.stdout



def test_float32_bound_counts_the_convolutions_reductions() -> None:
    """K of the float32 bound is the longest sum: for a convolution also C_in / groups * kH * kW (the forward)
    and N * H_out * W_out (dW, db), read here off the layers' actual outputs."""
    grown = 0
    for case_id in range(60):
        c = cnn_case(case_id)
        rows = int(np.prod(c.x.shape[:-1]))
        sums = [rows, c.x.shape[-1]]
        h = c.x
        for layer in c.model:
            out = layer.forward(h)
            if layer.kind == "conv2d":
                kh, kw = layer.geometry.k
                sums += [layer.in_channels // layer.groups * kh * kw, out.shape[0] * out.shape[2] * out.shape[3]]
            elif layer.kind == "linear":
                sums += [layer.in_features, layer.out_features]
            h = out
        K = reduction_length(read_spec(c.model, c.loss_fn), c.x)
        assert K == max(sums), (c.case_id, K, sums)
        dense = [n for layer in c.model if layer.kind == "linear" for n in (layer.in_features, layer.out_features)]
        grown += K > max(rows, c.x.shape[-1], *dense)
    assert grown >= 10, grown  # the convolutions' sums are the longest in many cases
