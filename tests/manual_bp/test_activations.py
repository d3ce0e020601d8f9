"""Activations (manual_bp/activations.py): closed-form values at known points and kinks, huge inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import manual_bp as mbp
from tests.helpers import BIG, DTYPES, fwd_bwd

EXACT_ONE_SIDE = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])


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
    np.testing.assert_allclose(dx[0], [alpha * math.exp(-2.0), alpha * math.exp(-0.5), alpha, 1.0, 1.0], rtol=1e-15)
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
    expected = x - (x.max(-1, keepdims=True) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)))
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


# ---------------------------------------------------------------- huge inputs: finite, correct limits


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
