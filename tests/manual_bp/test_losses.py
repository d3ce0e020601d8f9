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


# ---------------------------------------------------------------- NLL, multi-margin, L1, Huber, smooth L1; weights


def _labels_with_ignored(r: np.random.Generator, shape: tuple[int, ...], C: int) -> np.ndarray:
    y = r.integers(0, C, shape)
    y.flat[0] = -100  # one ignored label
    return y


NEW_LOSSES: list[tuple[str, Callable[[], mbp.Loss], str, tuple[int, ...]]] = [
    ("CE weighted ignore", lambda: mbp.SoftmaxCrossEntropy(weight=np.array([0.5, 2.0, 1.5])), "ignored", (5, 3)),
    (
        "CE weighted smoothed sum",
        lambda: mbp.SoftmaxCrossEntropy("sum", 0.2, weight=np.array([0.5, 2.0, 1.5])),
        "ignored",
        (5, 3),
    ),
    (
        "CE weighted probs",
        lambda: mbp.SoftmaxCrossEntropy(label_smoothing=0.1, weight=np.array([0.5, 2.0, 1.5])),
        "probs",
        (5, 3),
    ),
    (
        "CE (N, C, d1, d2)",
        lambda: mbp.SoftmaxCrossEntropy(label_smoothing=0.1, weight=np.array([0.5, 2.0, 1.5])),
        "ignored",
        (2, 3, 4, 2),
    ),
    ("CE probs (N, C, d1)", lambda: mbp.SoftmaxCrossEntropy(), "probs", (2, 3, 4)),
    ("NLL", lambda: mbp.NLLLoss(), "labels", (5, 3)),
    ("NLL weighted ignore sum", lambda: mbp.NLLLoss(np.array([0.5, 2.0, 1.5]), reduction="sum"), "ignored", (5, 3)),
    ("NLL (N, C, d1)", lambda: mbp.NLLLoss(np.array([0.5, 2.0, 1.5])), "ignored", (2, 3, 4)),
    ("hinge p=1", lambda: mbp.MultiMarginLoss(), "labels", (5, 3)),
    ("hinge p=2 weighted sum", lambda: mbp.MultiMarginLoss(2, 0.7, np.array([0.5, 2.0, 1.5]), "sum"), "labels", (5, 3)),
    ("L1", lambda: mbp.L1Loss(), "real", (5, 3)),
    ("Huber", lambda: mbp.HuberLoss(delta=0.5), "real", (5, 3)),
    ("Huber sum", lambda: mbp.HuberLoss("sum", 2.0), "real", (5, 3)),
    ("SmoothL1", lambda: mbp.SmoothL1Loss(beta=0.5), "real", (5, 3)),
    ("SmoothL1 beta=0", lambda: mbp.SmoothL1Loss("sum", beta=0.0), "real", (5, 3)),
]


def make_new_target(r: np.random.Generator, kind: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    lead = (shape[0], *shape[2:])
    if kind == "labels":
        return r.integers(0, shape[1], lead)
    if kind == "ignored":
        return _labels_with_ignored(r, lead, shape[1])
    if kind == "probs":
        t = r.random(shape)
        return (t / t.sum(1, keepdims=True)).astype(dtype)
    return r.standard_normal(shape).astype(dtype)


def _numeric_grad(loss: mbp.Loss, z: np.ndarray, t: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the loss's own forward."""
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        g[i] = (loss.forward(zp, t) - loss.forward(zm, t)) / (2 * h)
    return g


def _away_from_kinks(z: np.ndarray, t: np.ndarray, loss: mbp.Loss, gap: float = 1e-3) -> np.ndarray:
    """z moved at least ``gap`` away from the loss's kinks (L1 at z = t, the hinge at u = 0)."""
    z = z.copy()
    if isinstance(loss, mbp.L1Loss) or (isinstance(loss, mbp.SmoothL1Loss) and loss.beta == 0):
        r = z - t
        z = np.where(np.abs(r) < gap, t + np.where(r < 0, -2 * gap, 2 * gap), z)
    if isinstance(loss, mbp.MultiMarginLoss):
        rows = np.arange(z.shape[0])
        for _ in range(10):
            u = loss.margin - z[rows, t][:, None] + z
            u[rows, t] = 1.0
            near = np.abs(u) < gap
            if not near.any():
                break
            z[near] += 4 * gap
    return z


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("name", "make", "kind", "shape"), NEW_LOSSES, ids=[n for n, *_ in NEW_LOSSES])
def test_new_losses_match_finite_differences(name: str, make: Callable, kind: str, shape: tuple, seed: int) -> None:
    r = np.random.default_rng([seed, len(name)])
    z = r.standard_normal(shape) * 2
    t = make_new_target(r, kind, shape, np.float64)
    loss = make()
    z = _away_from_kinks(z, t, loss)
    loss.forward(z, t)
    dz = loss.backward(1.3)
    num = 1.3 * _numeric_grad(make(), z, t)
    assert np.max(np.abs(dz - num)) <= 1e-6, f"{name} seed {seed}: {np.max(np.abs(dz - num)):.2e}"


@pytest.mark.parametrize(("name", "make", "kind", "shape"), NEW_LOSSES, ids=[n for n, *_ in NEW_LOSSES])
def test_new_losses_batch_of_one_and_one_class(name: str, make: Callable, kind: str, shape: tuple) -> None:
    r = np.random.default_rng(7)
    one = (1, *shape[1:])
    z = r.standard_normal(one)
    t = make_new_target(r, "labels" if kind == "ignored" else kind, one, np.float64)
    loss = make()
    z = _away_from_kinks(z, t, loss)
    loss.forward(z, t)
    np.testing.assert_allclose(loss.backward(0.8), 0.8 * _numeric_grad(make(), z, t), atol=1e-6, err_msg=name)
    if "weighted" not in name and "(N, C" not in name:  # one class (weights are for 3)
        z1 = r.standard_normal((4, 1))
        t1 = make_new_target(r, "labels" if kind == "ignored" else kind, (4, 1), np.float64)
        loss = make()
        loss.forward(z1, t1)
        np.testing.assert_allclose(loss.backward(), _numeric_grad(make(), z1, t1), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "kind", "shape"), NEW_LOSSES, ids=[n for n, *_ in NEW_LOSSES])
def test_new_losses_keep_dtype_and_mutate_nothing(
    name: str, make: Callable, kind: str, shape: tuple, dtype: type
) -> None:
    r = np.random.default_rng(0)
    z = (r.standard_normal(shape) * 10).astype(dtype)
    t = make_new_target(r, kind, shape, dtype)
    z0, t0 = z.copy(), t.copy()
    loss = make()
    value = loss.forward(z, t)
    g1 = loss.backward(0.7)
    assert np.asarray(value).dtype == dtype and np.ndim(value) == 0, name
    assert g1.dtype == dtype and g1.shape == z.shape, name
    assert np.array_equal(z, z0) and np.array_equal(t, t0), name
    g1 += 1.0
    assert not np.array_equal(loss.backward(0.7), g1)


def test_weighted_mean_is_torch_s() -> None:
    """sum_n w[y_n] l_n / sum_n w[y_n] over the labels not ignored; ignored rows get zero gradient."""
    z = np.log(np.array([[0.5, 0.25, 0.25], [0.125, 0.75, 0.125], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]))
    y = np.array([0, 1, -100, 2])
    w = np.array([2.0, 1.0, 4.0])
    expected = (2 * -np.log(0.5) + 1 * -np.log(0.75) + 4 * -np.log(1 / 3)) / (2 + 1 + 4)
    for loss in (mbp.SoftmaxCrossEntropy(weight=w), mbp.NLLLoss(w)):
        assert loss.forward(z, y) == pytest.approx(expected, rel=1e-14)
        g = loss.backward()
        assert np.all(g[2] == 0), loss
    nll = mbp.NLLLoss(w, ignore_index=1)  # a real class may be ignored too
    expected = (-2 * np.log(0.5) - 2 * np.log(0.2) + 4 * np.log(3)) / 8
    assert nll.forward(z, y.clip(0)) == pytest.approx(expected, rel=1e-14)


def test_everything_ignored_gives_nan_mean_and_zero_gradient() -> None:
    z = np.zeros((3, 2))
    y = np.full(3, -100)
    for loss in (mbp.SoftmaxCrossEntropy(), mbp.NLLLoss(), mbp.SoftmaxCrossEntropy(label_smoothing=0.1)):
        assert np.isnan(loss.forward(z, y))
        assert np.array_equal(loss.backward(), np.zeros((3, 2)))
        loss = type(loss)(reduction="sum")
        assert loss.forward(z, y) == 0


def test_hinge_closed_form_and_kink() -> None:
    """u = margin - x_y + x_i for i != y; the true class is no term; at u = 0 the derivative is 0 (torch's)."""
    x = np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]])
    y = np.array([0, 1])
    mm = mbp.MultiMarginLoss(reduction="sum")
    # row 0: u = (1 - 1 + 0, 1 - 1 + 2) = (0, 2): 2 / 3; row 1: u = (1, 1): 2 / 3
    assert mm.forward(x, y) == pytest.approx(4 / 3, rel=1e-15)
    np.testing.assert_allclose(mm.backward(), [[-1 / 3, 0.0, 1 / 3], [1 / 3, -2 / 3, 1 / 3]], rtol=1e-15)
    mm2 = mbp.MultiMarginLoss(p=2, margin=1.0, weight=np.array([3.0, 1.0, 1.0]))
    assert mm2.forward(x, y) == pytest.approx((3 * 4 / 3 + 2 / 3) / 2, rel=1e-15)


def test_elementwise_kinks_follow_torch() -> None:
    """L1 (and smooth L1 with beta = 0): derivative 0 at r = 0; Huber at |r| = delta: +-delta from both sides."""
    x, t = np.array([1.0, 2.0, -3.0]), np.array([1.0, 0.0, -1.0])
    for loss in (mbp.L1Loss("sum"), mbp.SmoothL1Loss("sum", beta=0.0)):
        loss.forward(x, t)
        np.testing.assert_array_equal(loss.backward(), [0.0, 1.0, -1.0])
    hub = mbp.HuberLoss("sum", delta=2.0)
    assert hub.forward(x, t) == pytest.approx(0 + 2.0 + 2.0, rel=1e-15)
    np.testing.assert_array_equal(hub.backward(), [0.0, 2.0, -2.0])
    sl1 = mbp.SmoothL1Loss("sum", beta=2.0)
    assert sl1.forward(x, t) == pytest.approx(0 + 1.0 + 1.0, rel=1e-15)
    np.testing.assert_array_equal(sl1.backward(), [0.0, 1.0, -1.0])


def test_old_constructor_still_works() -> None:
    assert mbp.SoftmaxCrossEntropy("sum", 0.1).config() == {"reduction": "sum", "label_smoothing": 0.1}
    ce = mbp.SoftmaxCrossEntropy(weight=np.array([1.0, 2.0]), ignore_index=1)
    rebuilt = type(ce)(**ce.config())
    assert rebuilt.ignore_index == 1 and np.array_equal(rebuilt.weight, [1.0, 2.0])


BAD = [
    (
        lambda: mbp.NLLLoss(np.ones(4)).forward(np.zeros((2, 3)), np.array([0, 1])),
        ValueError,
        "NLLLoss: weight has 4 class weights, the predictions 3 classes",
    ),
    (
        lambda: mbp.NLLLoss().forward(np.zeros((2, 3)), np.array([0, 3])),
        ValueError,
        "NLLLoss: labels must lie in [0, 3), got min 0, max 3 (labels equal to ignore_index=-100 are skipped)",
    ),
    (
        lambda: mbp.NLLLoss().forward(np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64)),
        ValueError,
        "NLLLoss: labels must have shape (2, 4), got (2, 3)",
    ),
    (lambda: mbp.NLLLoss().forward(np.zeros((2, 3)), [0, 1]), TypeError, "NLLLoss: target must be a numpy.ndarray"),
    (lambda: mbp.NLLLoss(weight=[1.0, 2.0]), TypeError, "NLLLoss: weight must be None or a 1-D numpy array"),
    (lambda: mbp.NLLLoss(weight=np.array([1.0, np.nan])), ValueError, "NLLLoss: weight must hold C >= 1 finite"),
    (lambda: mbp.NLLLoss(ignore_index=1.5), TypeError, "NLLLoss: ignore_index must be an int"),
    (
        lambda: mbp.SoftmaxCrossEntropy().forward(np.zeros((2, 3, 4)), np.zeros((2, 1), np.int64)),
        ValueError,
        "SoftmaxCrossEntropy: labels must have shape (2, 4), got (2, 1)",
    ),
    (lambda: mbp.MultiMarginLoss(p=3), ValueError, "MultiMarginLoss: only p == 1 and p == 2 are supported"),
    (lambda: mbp.MultiMarginLoss(margin=np.inf), ValueError, "MultiMarginLoss: margin must be a finite number"),
    (
        lambda: mbp.MultiMarginLoss().forward(np.zeros((2, 3, 1)), np.zeros((2, 1), np.int64)),
        ValueError,
        "MultiMarginLoss: predictions must be 2-D (N, C), got shape (2, 3, 1)",
    ),
    (
        lambda: mbp.MultiMarginLoss().forward(np.zeros((2, 3)), np.array([0, -100])),
        ValueError,
        "MultiMarginLoss: labels must lie in [0, 3), got min -100, max 0",
    ),
    (lambda: mbp.HuberLoss(delta=0.0), ValueError, "HuberLoss: delta must be a finite number > 0"),
    (lambda: mbp.SmoothL1Loss(beta=-1.0), ValueError, "SmoothL1Loss: beta must be >= 0"),
    (
        lambda: mbp.L1Loss().forward(np.zeros((2, 3)), np.zeros((2, 2))),
        ValueError,
        "L1Loss: target (same as the predictions) must have shape (2, 3), got (2, 2)",
    ),
    (
        lambda: mbp.HuberLoss().forward(np.zeros((2, 3)), np.zeros((2, 3), np.float32)),
        TypeError,
        "HuberLoss: target dtype float32 does not match the predictions' dtype float64",
    ),
    (lambda: mbp.L1Loss(reduction="none"), ValueError, "L1Loss: reduction must be one of"),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(BAD)]
)
def test_new_losses_refuse_bad_input(call: Callable, exc: type, message: str) -> None:
    import re

    with pytest.raises(exc, match=re.escape(message)):
        call()


def _kink_distance(loss: mbp.Loss, z: np.ndarray, t: np.ndarray) -> float:
    """How far the logits are from the loss's kink (inf for a loss without one)."""
    if isinstance(loss, mbp.L1Loss) or (isinstance(loss, mbp.SmoothL1Loss) and loss.beta == 0):
        return float(np.abs(z - t).min())
    if isinstance(loss, mbp.MultiMarginLoss):
        rows = np.arange(z.shape[0])
        u = loss.margin - z[rows, t][:, None] + z
        u[rows, t] = np.inf
        return float(np.abs(u).min())
    return np.inf


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("name", "make", "kind", "shape"),
    [n for n in NEW_LOSSES if len(n[3]) == 2],
    ids=[n[0] for n in NEW_LOSSES if len(n[3]) == 2],
)
def test_new_losses_inside_a_network_pass_gradcheck(
    name: str, make: Callable, kind: str, shape: tuple, seed: int
) -> None:
    """manual_bp.gradcheck (central differences of the forward) through Linear -> Tanh -> Linear -> loss,
    drawn at least 1e-3 away from a kink (h = 1e-6 moves the logits by about 1e-6)."""
    from manual_bp.gradcheck import gradcheck

    N, C = shape
    loss = make()
    for draw in range(20):
        r = np.random.default_rng([seed, 11, len(name), draw])
        model = mbp.Sequential(mbp.Linear(4, 5, rng=r), mbp.Tanh(), mbp.Linear(5, C, rng=r))
        x = r.standard_normal((N, 4))
        t = make_new_target(r, kind, shape, np.float64)
        if _kink_distance(loss, model.forward(x), t) > 1e-3:
            break
    check = gradcheck(model, loss, x, t)
    assert check.max_error < 1e-6, f"{name} seed {seed} draw {draw}: {check}"
