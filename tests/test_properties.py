"""Property-based tests (Hypothesis) over the public API of the layers and losses.

Valid input of any shape and dtype: finite outputs, gradients of the right shape
and dtype, inputs untouched, bit-identical reruns, and the forward invariants
(softmax rows sum to 1, log-softmax <= 0, losses >= 0). Invalid input: only
TypeError/ValueError, with the layer named. Read-only and non-contiguous
arrays work.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manual_bp as mbp

ACTIVATIONS = [
    lambda: mbp.Identity(), lambda: mbp.ReLU(), lambda: mbp.LeakyReLU(0.1), lambda: mbp.ELU(0.7),
    lambda: mbp.Sigmoid(), lambda: mbp.Tanh(), lambda: mbp.SiLU(), lambda: mbp.Softplus(2.0, 3.0),
    lambda: mbp.GELU("none"), lambda: mbp.GELU("tanh"), lambda: mbp.Softmax(), lambda: mbp.LogSoftmax(),
]
SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def arrays(draw, min_dims=1, max_dims=3, scale=None):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=min_dims, max_size=max_dims)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    s = scale if scale is not None else draw(st.sampled_from([1e-6, 1.0, 30.0, 1e4]))
    return (s * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


@SETTINGS
@given(make=st.sampled_from(ACTIVATIONS), x=arrays(), seed=st.integers(0, 2**32 - 1))
def test_activation_properties(make, x, seed):
    layer = make()
    x_ro = _frozen(x)  # read-only: any write into the input raises
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = layer.forward(x_ro)
        dout = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
        dx = layer.backward(dout)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    np.testing.assert_array_equal(x_ro, x)
    again = make()
    np.testing.assert_array_equal(again.forward(x), out)
    np.testing.assert_array_equal(again.backward(dout), dx)
    if layer.kind == "softmax":
        np.testing.assert_allclose(out.sum(-1), 1, rtol=0, atol=8 * np.finfo(x.dtype).eps * x.shape[-1])
        assert np.all(out >= 0)
    if layer.kind == "log_softmax":
        assert np.all(out <= 0)


@SETTINGS
@given(x=arrays(min_dims=2, max_dims=3, scale=1.0), m=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_linear_properties(x, m, bias, seed):
    d = x.shape[-1]
    layer = mbp.Linear(d, m, bias, rng=seed, dtype=x.dtype)
    W0 = layer.params["W"].copy()
    out = layer.forward(_frozen(x))
    dout = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    dx = layer.backward(dout)
    assert out.shape == (*x.shape[:-1], m) and out.dtype == x.dtype
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert {k: (v.shape, v.dtype) for k, v in layer.grads.items()} == {
        k: (v.shape, v.dtype) for k, v in layer.params.items()}
    np.testing.assert_array_equal(layer.params["W"], W0)
    twin = mbp.Linear(d, m, bias, rng=seed, dtype=x.dtype)
    np.testing.assert_array_equal(twin.forward(x), out)  # same seed: bit-identical


@SETTINGS
@given(z=arrays(min_dims=2, max_dims=2), seed=st.integers(0, 2**32 - 1), smoothing=st.sampled_from([0.0, 0.1]),
       reduction=st.sampled_from(["mean", "sum"]), form=st.sampled_from(["int", "prob"]))
def test_cross_entropy_properties(z, seed, smoothing, reduction, form):
    rng = np.random.default_rng(seed)
    N, C = z.shape
    y = rng.integers(0, C, N) if form == "int" else rng.dirichlet(np.ones(C), N).astype(z.dtype)
    loss_fn = mbp.SoftmaxCrossEntropy(reduction, smoothing)
    z_ro, y_ro = _frozen(z), _frozen(y)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        L = loss_fn.forward(z_ro, y_ro)
        dz = loss_fn.backward(1.0)
    assert np.isfinite(L) and L >= -8 * np.finfo(z.dtype).eps * max(1.0, float(np.abs(z).max()))
    assert dz.shape == z.shape and dz.dtype == z.dtype and np.all(np.isfinite(dz))
    # the gradient of each row sums to 0 (probabilities sum to 1); scaled by 1/N for the mean
    tol = 16 * np.finfo(z.dtype).eps * C
    np.testing.assert_allclose(dz.sum(-1) * (N if reduction == "mean" else 1), 0, atol=tol * (1 + smoothing))


@SETTINGS
@given(x=arrays(min_dims=1, max_dims=3), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["mse", "bce"]))
def test_elementwise_loss_properties(x, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "mse":
        loss_fn, t = mbp.MSE(), rng.standard_normal(x.shape).astype(x.dtype)
    else:
        loss_fn, t = mbp.BCEWithLogits(), rng.random(x.shape).astype(x.dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        L = loss_fn.forward(_frozen(x), _frozen(t))
        dx = loss_fn.backward(0.5)
    assert np.isfinite(L) and L >= 0
    assert dx.shape == x.shape and dx.dtype == x.dtype and np.all(np.isfinite(dx))


def test_non_contiguous_inputs_work_and_match_contiguous():
    rng = np.random.default_rng(0)
    model = mbp.Sequential(mbp.Linear(3, 4, rng=rng), mbp.Tanh(), mbp.Linear(4, 2, rng=rng))
    big = rng.standard_normal((10, 6))
    x = big[::2, ::2]  # strided view, not contiguous
    assert not x.flags.c_contiguous
    out = model.forward(x)
    dx = model.backward(np.ones_like(out))
    np.testing.assert_allclose(model.forward(np.ascontiguousarray(x)), out, rtol=1e-15)
    np.testing.assert_allclose(model.backward(np.ones_like(out)), dx, rtol=1e-15)


BAD_INPUTS = {
    "int": np.ones((3, 4), dtype=np.int64),
    "bool": np.ones((3, 4), dtype=bool),
    "complex": np.ones((3, 4), dtype=np.complex128),
    "object": np.array([[1.0] * 4] * 3, dtype=object),
    "float16": np.ones((3, 4), dtype=np.float16),
    "list": [[1.0] * 4] * 3,
    "wrong width": np.ones((3, 5)),
    "1-D": np.ones(4),
    "empty": np.ones((0, 4)),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_raise_documented_errors_naming_the_layer(name):
    model = mbp.Sequential(mbp.Linear(4, 3, rng=0), mbp.ReLU())
    before = model.state_dict()
    with pytest.raises((TypeError, ValueError), match="Linear '0'"):
        model.forward(BAD_INPUTS[name])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_nan_input_propagates_and_never_turns_finite():
    """Documented behaviour: NaN in the input propagates through forward and backward, row by
    row, as in torch; it never comes out as a plausible number. ``fit`` rejects it up front.
    (inf follows IEEE arithmetic: tanh(inf) = 1 is finite, as in torch.)"""
    model = mbp.Sequential(mbp.Linear(4, 3, rng=0), mbp.Tanh(), mbp.Linear(3, 2, rng=1))
    x = np.ones((2, 4))
    x[0, 1] = np.nan
    out = model.forward(x)
    dx = model.backward(np.ones_like(out))
    assert np.all(np.isnan(out[0])) and np.all(np.isfinite(out[1]))
    assert np.all(np.isnan(dx[0])) and np.all(np.isfinite(dx[1]))
    assert np.all(np.isnan(model.grads["0.W"]))  # the parameter gradient sums over the NaN row
