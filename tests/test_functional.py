"""Closed-form values, huge inputs, dtype preservation and no mutation, for every pair and layer."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import functional as F
from manual_bp import losses as L

DTYPES = [np.float32, np.float64]
EXACT_ONE_SIDE = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])


def fwd_bwd(
    layer: mbp.Module, x: np.ndarray, dout: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out) if dout is None else dout)
    return out, dx


# ---------------------------------------------------------------- closed forms at known points


def test_relu_at_and_around_zero() -> None:
    out, dx = fwd_bwd(mbp.ReLU(), EXACT_ONE_SIDE)
    assert np.array_equal(out, [[0.0, 0.0, 0.0, 0.5, 2.0]])
    assert np.array_equal(dx, [[0.0, 0.0, 0.0, 1.0, 1.0]])  # ReLU'(0) = 0


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0, -0.5, 3.0])
def test_leaky_relu_at_zero_gives_the_slope(slope: float) -> None:
    out, dx = fwd_bwd(mbp.LeakyReLU(slope), EXACT_ONE_SIDE)
    assert np.array_equal(out, [[-2.0 * slope, -0.5 * slope, 0.0, 0.5, 2.0]])
    assert np.array_equal(dx, [[slope, slope, slope, 1.0, 1.0]])  # LeakyReLU'(0) = slope


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5])
def test_elu_at_zero_gives_alpha(alpha: float) -> None:
    out, dx = fwd_bwd(mbp.ELU(alpha), EXACT_ONE_SIDE)
    expected = [alpha * math.expm1(-2.0), alpha * math.expm1(-0.5), 0.0, 0.5, 2.0]
    np.testing.assert_allclose(out[0], expected, rtol=1e-15)
    np.testing.assert_allclose(
        dx[0], [alpha * math.exp(-2.0), alpha * math.exp(-0.5), alpha, 1.0, 1.0], rtol=1e-15
    )
    assert dx[0, 2] == alpha  # ELU'(0) = alpha exactly


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_zero(approximate: str) -> None:
    out, dx = fwd_bwd(mbp.GELU(approximate), np.zeros((2, 3)))
    assert np.array_equal(out, np.zeros((2, 3)))
    assert np.array_equal(dx, np.full((2, 3), 0.5))


def test_gelu_known_values() -> None:
    x = np.array([[-1.0, 1.0, 2.0]])
    Phi = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[0]]
    phi = [math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in x[0]]
    out, dx = fwd_bwd(mbp.GELU("none"), x)
    np.testing.assert_allclose(out[0], [v * P for v, P in zip(x[0], Phi)], rtol=1e-15)
    np.testing.assert_allclose(dx[0], [P + v * p for v, P, p in zip(x[0], Phi, phi)], rtol=1e-15)
    assert out[0, 1] == pytest.approx(0.8413447460685429, rel=1e-15)  # Phi(1)
    t = [math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)) for v in x[0]]
    out_t, _ = fwd_bwd(mbp.GELU("tanh"), x)
    np.testing.assert_allclose(out_t[0], [0.5 * v * (1 + tt) for v, tt in zip(x[0], t)], rtol=1e-15)
    assert np.max(np.abs(out_t - out)) < 1e-3  # the approximation is close, and not equal
    assert not np.array_equal(out_t, out)


@pytest.mark.parametrize(
    ("layer", "value", "slope"),
    [
        (mbp.Sigmoid(), 0.5, 0.25),
        (mbp.Tanh(), 0.0, 1.0),
        (mbp.SiLU(), 0.0, 0.5),
        (mbp.Softplus(), math.log(2.0), 0.5),
        (mbp.Softplus(beta=4.0), math.log(2.0) / 4, 0.5),
        (mbp.Identity(), 0.0, 1.0),
    ],
    ids=repr,
)
def test_smooth_activations_at_zero(layer: mbp.Module, value: float, slope: float) -> None:
    out, dx = fwd_bwd(layer, np.zeros((3, 2)))
    np.testing.assert_allclose(out, value, rtol=1e-15, atol=0)
    np.testing.assert_allclose(dx, slope, rtol=1e-15, atol=0)


def test_softmax_rows_sum_to_one_and_log_softmax_matches() -> None:
    r = np.random.default_rng(0)
    x = r.standard_normal((6, 5)) * np.array([[0.1], [1], [10], [100], [1000], [1]])
    p = mbp.Softmax().forward(x)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=4e-16)
    assert np.all(p >= 0)
    logp = mbp.LogSoftmax().forward(x)
    np.testing.assert_allclose(np.exp(logp), p, rtol=1e-14, atol=1e-300)
    expected = x - (
        x.max(-1, keepdims=True) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
    )
    np.testing.assert_allclose(logp, expected, rtol=1e-14)


def test_softmax_of_equal_logits_is_uniform() -> None:
    p, dx = fwd_bwd(mbp.Softmax(), np.full((2, 4), 7.0), np.arange(8.0).reshape(2, 4))
    assert np.array_equal(p, np.full((2, 4), 0.25))
    # dx = p (dout - p.dout): rows 0..3 -> mean 1.5
    np.testing.assert_allclose(dx, 0.25 * (np.arange(8.0).reshape(2, 4) - [[1.5], [5.5]]), rtol=1e-15)
    logp = mbp.LogSoftmax().forward(np.full((2, 4), -3.0))
    np.testing.assert_allclose(logp, -math.log(4.0), rtol=1e-15)


def test_softmax_backward_annihilates_constant_dout() -> None:
    """Adding a constant to every logit does not change softmax, so its vjp of a constant is 0."""
    r = np.random.default_rng(1)
    layer = mbp.Softmax()
    layer.forward(r.standard_normal((3, 4)))
    np.testing.assert_allclose(layer.backward(np.full((3, 4), 2.5)), 0.0, atol=1e-15)


@pytest.mark.parametrize(("beta", "threshold"), [(1.0, 20.0), (2.0, 1.0), (0.5, -1.0)])
def test_softplus_above_threshold_is_identity_with_grad_exactly_one(beta: float, threshold: float) -> None:
    x = np.array([[threshold / beta + 1e-3, threshold / beta + 0.5, threshold / beta + 1e3]])
    dout = np.array([[0.3, -1.7, 2.0]])
    out, dx = fwd_bwd(mbp.Softplus(beta, threshold), x, dout)
    assert np.array_equal(out, x)
    assert np.array_equal(dx, dout)
    below = np.array([[threshold / beta - 1e-3]])
    out_b, dx_b = fwd_bwd(mbp.Softplus(beta, threshold), below)
    bx = beta * below[0, 0]
    assert out_b[0, 0] == pytest.approx(math.log1p(math.exp(bx)) / beta, rel=1e-14)
    assert dx_b[0, 0] == pytest.approx(1 / (1 + math.exp(-bx)), rel=1e-14)


def test_linear_closed_form() -> None:
    layer = mbp.Linear(2, 3, rng=0)
    layer.params["W"][...] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    layer.params["b"][...] = [0.5, -0.5, 1.0]
    x = np.array([[1.0, -1.0], [2.0, 0.5]])
    out = layer.forward(x)
    assert np.array_equal(out, [[-2.5, -3.5, -2.0], [4.5, 6.0, 10.0]])
    dout = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    dx = layer.backward(dout)
    assert np.array_equal(dx, [[-2.0, -2.0], [4.0, 13.0]])
    assert np.array_equal(layer.grads["W"], [[5.0, 2.0, -1.0], [0.0, 0.5, 1.0]])
    assert np.array_equal(layer.grads["b"], [3.0, 1.0, -1.0])


def test_linear_without_bias_has_no_b() -> None:
    layer = mbp.Linear(2, 3, bias=False, rng=0)
    fwd_bwd(layer, np.ones((4, 2)))
    assert set(layer.params) == set(layer.grads) == {"W"}


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


# ---------------------------------------------------------------- huge inputs: finite, correct limits

BIG = 1e4


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_huge_logits(dtype: type) -> None:
    x = np.array([[BIG, -BIG, 0.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p, dp = fwd_bwd(mbp.Softmax(), x, np.array([[1.0, 2.0, 3.0]], dtype=dtype))
        logp, dlogp = fwd_bwd(mbp.LogSoftmax(), x, np.array([[1.0, 2.0, 3.0]], dtype=dtype))
    assert np.array_equal(p, [[1.0, 0.0, 0.0]])
    assert np.array_equal(dp, [[0.0, 0.0, 0.0]])
    assert np.array_equal(logp, [[0.0, -2 * BIG, -BIG]])
    assert np.array_equal(dlogp, [[1.0 - 6.0, 2.0, 3.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("layer", "out_lim", "grad_lim"),
    [
        (mbp.Sigmoid(), [1.0, 0.0], [0.0, 0.0]),
        (mbp.Tanh(), [1.0, -1.0], [0.0, 0.0]),
        (mbp.Softplus(), [BIG, 0.0], [1.0, 0.0]),
        (mbp.Softplus(threshold=1e9), [BIG, 0.0], [1.0, 0.0]),  # the log(1 + exp) branch itself
        (mbp.SiLU(), [BIG, 0.0], [1.0, 0.0]),
        (mbp.GELU("none"), [BIG, 0.0], [1.0, 0.0]),
        (mbp.GELU("tanh"), [BIG, 0.0], [1.0, 0.0]),
        (mbp.ELU(2.0), [BIG, -2.0], [1.0, 0.0]),
        (mbp.ReLU(), [BIG, 0.0], [1.0, 0.0]),
        (mbp.LeakyReLU(0.1), [BIG, -0.1 * BIG], [1.0, 0.1]),
    ],
    ids=repr,
)
def test_activations_huge_inputs(layer: mbp.Module, out_lim: list, grad_lim: list, dtype: type) -> None:
    x = np.array([[BIG, -BIG]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, dx = fwd_bwd(layer, x)
    np.testing.assert_allclose(out[0], out_lim, rtol=1e-6, atol=0)
    np.testing.assert_allclose(dx[0], grad_lim, rtol=1e-6, atol=0)


# ---------------------------------------------------------------- dtype preservation

LAYERS: list[tuple[str, Callable[[Any], mbp.Module]]] = [
    ("Linear", lambda dt: mbp.Linear(4, 3, rng=0, dtype=dt)),
    ("Linear(bias=False)", lambda dt: mbp.Linear(4, 3, bias=False, rng=0, dtype=dt)),
    ("Identity", lambda dt: mbp.Identity()),
    ("ReLU", lambda dt: mbp.ReLU()),
    ("LeakyReLU", lambda dt: mbp.LeakyReLU(0.2)),
    ("ELU", lambda dt: mbp.ELU(1.5)),
    ("Sigmoid", lambda dt: mbp.Sigmoid()),
    ("Tanh", lambda dt: mbp.Tanh()),
    ("SiLU", lambda dt: mbp.SiLU()),
    ("Softplus", lambda dt: mbp.Softplus(2.0, 1.0)),
    ("GELU(none)", lambda dt: mbp.GELU("none")),
    ("GELU(tanh)", lambda dt: mbp.GELU("tanh")),
    ("Softmax", lambda dt: mbp.Softmax()),
    ("LogSoftmax", lambda dt: mbp.LogSoftmax()),
    (
        "Sequential",
        lambda dt: mbp.Sequential(
            mbp.Linear(4, 5, rng=1, dtype=dt), mbp.GELU(), mbp.Linear(5, 3, rng=2, dtype=dt), mbp.Softplus()
        ),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make"), LAYERS, ids=[n for n, _ in LAYERS])
def test_layer_preserves_dtype(name: str, make: Callable, dtype: type) -> None:
    r = np.random.default_rng(0)
    layer = make(dtype)
    x = r.standard_normal((6, 4)).astype(dtype)
    out = layer.forward(x)
    dx = layer.backward(r.standard_normal(out.shape).astype(dtype))
    assert out.dtype == dtype and dx.dtype == dtype, f"{name}: out {out.dtype}, dx {dx.dtype}"
    assert set(layer.grads) == set(layer.params)
    for k in layer.params:
        assert layer.params[k].dtype == dtype and layer.grads[k].dtype == dtype, f"{name}.{k}"
        assert layer.grads[k].shape == layer.params[k].shape


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


def test_float32_and_float64_models_agree_to_float32_precision() -> None:
    """Same seed, two dtypes: the float32 model is the float64 one rounded, and computes close values."""
    m32 = mbp.Sequential(
        mbp.Linear(3, 4, rng=5, dtype=np.float32), mbp.Tanh(), mbp.Linear(4, 2, rng=6, dtype=np.float32)
    )
    m64 = mbp.Sequential(mbp.Linear(3, 4, rng=5), mbp.Tanh(), mbp.Linear(4, 2, rng=6))
    for k, v in m64.params.items():
        assert np.array_equal(m32.params[k], v.astype(np.float32))
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(m32.forward(x.astype(np.float32)), m64.forward(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- nothing mutates its inputs

PAIRS: list[tuple[str, Callable, Callable]] = [
    ("identity", F.identity_forward, F.identity_backward),
    ("relu", F.relu_forward, F.relu_backward),
    ("leaky_relu", lambda x: F.leaky_relu_forward(x, 0.1), F.leaky_relu_backward),
    ("elu", lambda x: F.elu_forward(x, 1.3), F.elu_backward),
    ("sigmoid", F.sigmoid_forward, F.sigmoid_backward),
    ("tanh", F.tanh_forward, F.tanh_backward),
    ("silu", F.silu_forward, F.silu_backward),
    ("softplus", lambda x: F.softplus_forward(x, 2.0, 1.0), F.softplus_backward),
    ("gelu", lambda x: F.gelu_forward(x, "none"), F.gelu_backward),
    ("gelu_tanh", lambda x: F.gelu_forward(x, "tanh"), F.gelu_backward),
    ("softmax", F.softmax_forward, F.softmax_backward),
    ("log_softmax", F.log_softmax_forward, F.log_softmax_backward),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "fwd", "bwd"), PAIRS, ids=[n for n, _, _ in PAIRS])
def test_functional_pair_mutates_nothing(name: str, fwd: Callable, bwd: Callable, dtype: type) -> None:
    r = np.random.default_rng(0)
    x = (r.standard_normal((4, 5)) * 3).astype(dtype)
    dout = r.standard_normal((4, 5)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    out, cache = fwd(x)
    out0 = out.copy()
    dx = bwd(dout, cache)
    dx_again = bwd(dout, cache)  # backward leaves its cache intact: a second call agrees bit for bit
    assert np.array_equal(x, x0) and np.array_equal(dout, dout0) and np.array_equal(out, out0), name
    assert np.array_equal(dx, dx_again), name
    assert out.dtype == dtype and dx.dtype == dtype, name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_pair_mutates_nothing(dtype: type, bias: bool) -> None:
    r = np.random.default_rng(0)
    x, W = r.standard_normal((2, 3, 4)).astype(dtype), r.standard_normal((4, 5)).astype(dtype)
    b = r.standard_normal(5).astype(dtype) if bias else None
    dout = r.standard_normal((2, 3, 5)).astype(dtype)
    copies = [a.copy() for a in (x, W, dout)] + ([b.copy()] if bias else [])
    out, cache = F.linear_forward(x, W, b)
    grads = F.linear_backward(dout, cache)
    again = F.linear_backward(dout, cache)
    for a, c in zip([x, W, dout] + ([b] if bias else []), copies):
        assert np.array_equal(a, c)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads if g is not None)
    assert all((g is None and h is None) or np.array_equal(g, h) for g, h in zip(grads, again))
    assert (grads[2] is None) == (not bias)


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make"), LAYERS, ids=[n for n, _ in LAYERS])
def test_layer_mutates_nothing(name: str, make: Callable, dtype: type) -> None:
    r = np.random.default_rng(0)
    layer = make(dtype)
    x = (r.standard_normal((6, 4)) * 3).astype(dtype)
    params0 = {k: v.copy() for k, v in layer.params.items()}
    x0 = x.copy()
    out = layer.forward(x)
    dout = r.standard_normal(out.shape).astype(dtype)
    dout0 = dout.copy()
    layer.backward(dout)
    assert np.array_equal(x, x0) and np.array_equal(dout, dout0), name
    assert all(np.array_equal(layer.params[k], v) for k, v in params0.items()), name


def test_loss_functional_pairs_mutate_nothing() -> None:
    r = np.random.default_rng(3)
    z = r.standard_normal((4, 3)) * 5
    y = r.integers(0, 3, 4)
    t = r.random((4, 3))
    for fwd, bwd, target in [
        (
            lambda a, b: L.softmax_cross_entropy_forward(a, b, "mean", 0.1),
            L.softmax_cross_entropy_backward,
            y,
        ),
        (lambda a, b: L.softmax_cross_entropy_forward(a, b, "sum", 0.0), L.softmax_cross_entropy_backward, y),
        (
            lambda a, b: L.softmax_cross_entropy_forward(a, b, "mean", 0.2),
            L.softmax_cross_entropy_backward,
            t,
        ),
        (lambda a, b: L.mse_forward(a, b, "mean"), L.mse_backward, t),
        (lambda a, b: L.bce_with_logits_forward(a, b, "sum"), L.bce_with_logits_backward, t),
    ]:
        z0, target0 = z.copy(), target.copy()
        _, cache = fwd(z, target)
        g1, g2 = bwd(2.0, cache), bwd(2.0, cache)
        assert np.array_equal(z, z0) and np.array_equal(target, target0)
        assert np.array_equal(g1, g2)
