"""Losses (manual_bp/losses.py): closed forms, huge logits, dtype preservation, inputs never mutated."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from tests.helpers import BIG, DTYPES

# ---------------------------------------------------------------- closed forms


def test_cross_entropy_closed_form() -> None:
    z = np.zeros((4, 3))
    y = np.array([0, 2, 1, 2])
    loss = mbp.SoftmaxCrossEntropy()
    assert loss.forward(z, y) == pytest.approx(math.log(3), rel=1e-15)
    expected = (np.full((4, 3), 1 / 3) - np.eye(3)[y]) / 4
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-15)
    ls = mbp.SoftmaxCrossEntropy(reduction="sum", label_smoothing=0.3)
    assert ls.forward(z, y) == pytest.approx(4 * math.log(3), rel=1e-15)
    target = 0.7 * np.eye(3)[y] + 0.1
    np.testing.assert_allclose(ls.backward(), np.full((4, 3), 1 / 3) - target, rtol=1e-14, atol=1e-16)


def test_mse_and_bce_closed_form() -> None:
    x, t = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    mse = mbp.MSE()
    assert mse.forward(x, t) == pytest.approx((1 + 0 + 4 + 16) / 4, rel=1e-15)
    np.testing.assert_allclose(mse.backward(), 2 * (x - t) / 4, rtol=1e-15)
    bce = mbp.BCEWithLogits(reduction="sum")
    z, tt = np.zeros((2, 3)), np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    assert bce.forward(z, tt) == pytest.approx(6 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(bce.backward(), 0.5 - tt, rtol=1e-15)


# ---------------------------------------------------------------- huge logits: finite, correct limits


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_huge_logits(dtype: type) -> None:
    z = np.array([[BIG, -BIG], [-BIG, BIG], [BIG, BIG]], dtype=dtype)
    y = np.array([1, 1, 0])
    loss = mbp.SoftmaxCrossEntropy(reduction="sum")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(z, y)
        dz = loss.backward()
    assert value == pytest.approx(2 * BIG + math.log(2), rel=1e-6)  # 2e4 + 0 + log 2
    np.testing.assert_allclose(dz, [[1.0, -1.0], [0.0, 0.0], [-0.5, 0.5]], atol=1e-6)
    probs = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=dtype)
    mean = mbp.SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = mean.forward(z[:2], probs)
        dz = mean.backward()
    assert value == pytest.approx((0.5 * 2 * BIG + 0.25 * 2 * BIG) / 2, rel=1e-6)
    np.testing.assert_allclose(dz, [[0.25, -0.25], [-0.125, 0.125]], atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_huge_logits(dtype: type) -> None:
    z = np.array([BIG, -BIG, BIG, -BIG, BIG], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=dtype)
    bce = mbp.BCEWithLogits(reduction="sum")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = bce.forward(z, t)
        dz = bce.backward()
    assert value == pytest.approx(BIG + BIG + 0.5 * BIG, rel=1e-6)
    np.testing.assert_allclose(dz, [0.0, 0.0, 1.0, -1.0, 0.5], atol=1e-6)


# ---------------------------------------------------------------- dtype preservation and no mutation


LOSSES: list[tuple[str, Callable[[], mbp.Loss], str]] = [
    ("CE labels", lambda: mbp.SoftmaxCrossEntropy(), "labels"),
    ("CE labels smoothed sum", lambda: mbp.SoftmaxCrossEntropy("sum", 0.1), "labels"),
    ("CE probs", lambda: mbp.SoftmaxCrossEntropy(), "probs"),
    ("CE probs smoothed", lambda: mbp.SoftmaxCrossEntropy(label_smoothing=0.2), "probs"),
    ("MSE", lambda: mbp.MSE(), "real"),
    ("MSE sum", lambda: mbp.MSE("sum"), "real"),
    ("BCEWithLogits", lambda: mbp.BCEWithLogits(), "binary"),
]


def make_target(r: np.random.Generator, kind: str, shape: tuple[int, int], dtype: Any) -> np.ndarray:
    if kind == "labels":
        return r.integers(0, shape[1], shape[0])
    if kind == "probs":
        t = r.random(shape)
        return (t / t.sum(1, keepdims=True)).astype(dtype)
    if kind == "real":
        return r.standard_normal(shape).astype(dtype)
    return r.random(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "kind"), LOSSES, ids=[n for n, _, _ in LOSSES])
def test_loss_preserves_dtype(name: str, make: Callable, kind: str, dtype: type) -> None:
    r = np.random.default_rng(0)
    z = r.standard_normal((5, 3)).astype(dtype)
    loss = make()
    value = loss.forward(z, make_target(r, kind, z.shape, dtype))
    dz = loss.backward(0.7)
    assert np.asarray(value).dtype == dtype and np.ndim(value) == 0, f"{name}: loss {np.asarray(value).dtype}"
    assert dz.dtype == dtype and dz.shape == z.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "kind"), LOSSES, ids=[n for n, _, _ in LOSSES])
def test_loss_mutates_nothing(name: str, make: Callable, kind: str, dtype: type) -> None:
    """The caller's logits and targets are untouched (the seed's softmax subtracted the max in place)."""
    r = np.random.default_rng(0)
    z = (r.standard_normal((5, 3)) * 10).astype(dtype)
    t = make_target(r, kind, z.shape, dtype)
    z0, t0 = z.copy(), t.copy()
    loss = make()
    loss.forward(z, t)
    g1 = loss.backward(1.0)
    g2 = loss.backward(1.0)
    assert np.array_equal(z, z0) and np.array_equal(t, t0), name
    assert np.array_equal(g1, g2), name
    g1 += 1.0  # the returned gradient is the caller's to modify: the next backward is unaffected
    assert np.array_equal(loss.backward(1.0), g2)
