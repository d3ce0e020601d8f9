"""Property-based tests (Hypothesis) over the public API of the layers and losses.

Valid input of any shape and dtype: finite outputs, gradients of the right shape
and dtype, inputs untouched, bit-identical reruns, and the forward invariants
(softmax rows sum to 1, log-softmax <= 0, losses >= 0). Invalid input: only
TypeError/ValueError, with the layer named. Read-only and non-contiguous
arrays work.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manual_bp as mbp

ACTIVATIONS = [
    lambda: mbp.Identity(),
    lambda: mbp.ReLU(),
    lambda: mbp.LeakyReLU(0.1),
    lambda: mbp.ELU(0.7),
    lambda: mbp.Sigmoid(),
    lambda: mbp.Tanh(),
    lambda: mbp.SiLU(),
    lambda: mbp.Softplus(2.0, 3.0),
    lambda: mbp.GELU("none"),
    lambda: mbp.GELU("tanh"),
    lambda: mbp.Softmax(),
    lambda: mbp.LogSoftmax(),
]
SETTINGS = settings(deadline=None)  # max_examples from the profile (tests/conftest.py): 60, or 2000 "thorough"


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
@given(
    x=arrays(min_dims=2, max_dims=3, scale=1.0), m=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 2**32 - 1)
)
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
        k: (v.shape, v.dtype) for k, v in layer.params.items()
    }
    np.testing.assert_array_equal(layer.params["W"], W0)
    twin = mbp.Linear(d, m, bias, rng=seed, dtype=x.dtype)
    np.testing.assert_array_equal(twin.forward(x), out)  # same seed: bit-identical


@SETTINGS
@given(
    z=arrays(min_dims=2, max_dims=2),
    seed=st.integers(0, 2**32 - 1),
    smoothing=st.sampled_from([0.0, 0.1]),
    reduction=st.sampled_from(["mean", "sum"]),
    form=st.sampled_from(["int", "prob"]),
)
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


# ---------------------------------------------------------------- the other layers, stacks and containers


@st.composite
def layer_cases(draw):
    """(kind, make, x): ``make()`` builds the same layer (same parameters, same dropout mask) every call."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    N = draw(st.integers(1, 6))
    D = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["layer_norm", "batch_norm", "dropout", "embedding", "flatten", "residual", "stack"]))
    if kind == "layer_norm":
        affine, eps = draw(st.booleans()), draw(st.sampled_from([1e-5, 1e-3, 0.5]))
        shape = (N, *draw(st.lists(st.integers(1, 4), max_size=1)), D)
        return kind, lambda: mbp.LayerNorm(D, eps, affine, dtype=dtype), r.standard_normal(shape).astype(dtype)
    if kind == "batch_norm":
        training, affine = draw(st.booleans()), draw(st.booleans())
        N = max(N, 2) if training else N
        stats = (r.standard_normal(D).astype(dtype), (r.random(D) + 0.1).astype(dtype))

        def make_bn():
            bn = mbp.BatchNorm1d(D, momentum=0.3, affine=affine, dtype=dtype).train(training)
            bn.buffers["running_mean"][...], bn.buffers["running_var"][...] = stats
            return bn

        return kind, make_bn, (r.standard_normal((N, D)) * 3 + 1).astype(dtype)
    if kind == "dropout":
        p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
        return kind, lambda: mbp.Dropout(p, rng=seed), r.standard_normal(shape).astype(dtype)
    if kind == "embedding":
        V = draw(st.integers(1, 8))
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        return kind, lambda: mbp.Embedding(V, D, rng=seed, dtype=dtype), r.integers(0, V, shape)
    if kind == "flatten":
        shape = (N, *draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        return kind, lambda: mbp.Flatten(), r.standard_normal(shape).astype(dtype)
    act = draw(st.sampled_from(ACTIVATIONS[:10]))  # shape-keeping elementwise activations
    if kind == "residual":
        return (
            kind,
            lambda: mbp.Residual(mbp.Linear(D, D, rng=seed, dtype=dtype), act()),
            r.standard_normal((N, D)).astype(dtype),
        )
    widths = [D, *draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))]

    def make_stack():
        gen = np.random.default_rng(seed)
        layers = []
        for a, b in pairwise(widths):
            layers += [mbp.Linear(a, b, rng=gen, dtype=dtype), act()]
        return mbp.Sequential(*layers)

    return kind, make_stack, r.standard_normal((N, D)).astype(dtype)


def normalized_mean_tolerance(x: np.ndarray, norm_eps: float, axis: int) -> np.ndarray:
    """How far from 0 the mean of (x - mean) / sqrt(var + eps) may round, along ``axis`` (length K).

    The mean of x rounds by about K eps max|x|; dividing by the standard deviation
    magnifies that by max|x| / sqrt(var + eps), large for a nearly constant row or column.
    """
    K, eps = x.shape[axis], float(np.finfo(x.dtype).eps)
    x64 = x.astype(np.float64)
    return 16 * eps * K * (1 + np.abs(x64).max(axis) / np.sqrt(x64.var(axis) + norm_eps))


def test_batch_norm_of_a_nearly_constant_column_has_mean_zero_within_the_magnified_rounding() -> None:
    """Found by Hypothesis: column 0 spans 3.18-3.22 (std 0.018), so the mean's rounding is magnified 178x."""
    x = np.array([[3.1832514, 2.6303766], [3.21896, 0.9656475]], dtype=np.float32)
    bn = mbp.BatchNorm1d(2, affine=False, dtype=np.float32)
    out = bn.forward(x)
    tol = normalized_mean_tolerance(x, bn.eps, 0)
    assert np.all(np.abs(out.mean(0)) <= tol), (out.mean(0), tol)
    np.testing.assert_allclose(np.abs(out), [[0.98467, 0.99999], [0.98467, 0.99999]], rtol=1e-4)


def _run(layer, x, dout_seed):
    out = layer.forward(x)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape).astype(out.dtype)
    dx = layer.backward(dout)
    return out, dx, {k: v.copy() for k, v in layer.grads.items()}, {k: v.copy() for k, v in layer.buffers.items()}


@SETTINGS
@given(case=layer_cases(), dout_seed=st.integers(0, 2**32 - 1))
def test_layer_and_container_properties(case, dout_seed):
    kind, make, x = case
    layer = make()
    params0 = {k: v.copy() for k, v in layer.params.items()}
    x_ro = _frozen(x)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, dx, grads, buffers = _run(layer, x_ro, dout_seed)
    dtype = layer.params[next(iter(layer.params))].dtype if layer.params else x.dtype
    assert out.dtype == dtype and np.all(np.isfinite(out)), kind
    if kind == "embedding":
        assert dx is None and out.shape == (*x.shape, layer.embedding_dim)
        assert np.array_equal(out, layer.params["W"][x])
    else:
        assert dx.shape == x.shape and dx.dtype == x.dtype and np.all(np.isfinite(dx)), kind
    assert {k: (g.shape, g.dtype) for k, g in grads.items()} == {k: (p.shape, p.dtype) for k, p in params0.items()}
    assert all(np.all(np.isfinite(g)) for g in grads.values()), kind
    np.testing.assert_array_equal(x_ro, x)  # the input is untouched
    for k, v in params0.items():  # forward and backward never write to the parameters
        np.testing.assert_array_equal(layer.params[k], v)
    again = _run(make(), x, dout_seed)  # same seed, same input: bit-identical
    for a, b in zip((out, dx), again[:2]):
        assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b)), kind
    for mine, theirs in zip((grads, buffers), again[2:]):
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine), kind
    eps = float(np.finfo(dtype).eps)
    if kind == "layer_norm" and not layer.elementwise_affine:
        tol = normalized_mean_tolerance(x, layer.eps, -1)  # each row: mean 0, mean square <= 1
        assert np.all(np.abs(out.mean(-1)) <= tol), (out.mean(-1), tol)
        assert np.all((out * out).mean(-1) <= 1 + tol)
    if kind == "batch_norm" and layer.training and not layer.affine:
        tol = normalized_mean_tolerance(x, layer.eps, 0)
        assert np.all(np.abs(out.mean(0)) <= tol), (out.mean(0), tol)
    if kind == "dropout":
        assert np.all(out[~layer.mask] == 0)
        np.testing.assert_allclose(out[layer.mask], x[layer.mask] / (1 - layer.p), rtol=2 * eps)
    if kind == "flatten":
        assert out.shape == (x.shape[0], x[0].size) and np.array_equal(out.ravel(), x.ravel())


# ---------------------------------------------------------------- random invalid input: documented errors only

VALID = {  # (make, valid input shape, the invalid forms that apply, integer indices?)
    "Linear": (lambda: mbp.Linear(3, 2, rng=0), (4, 3), ("dtype", "empty", "width", "rank", "kind"), False),
    "Tanh": (mbp.Tanh, (4, 3), ("dtype", "empty", "kind"), False),
    "Softmax": (mbp.Softmax, (4, 3), ("dtype", "empty", "kind", "rank"), False),
    "LayerNorm": (lambda: mbp.LayerNorm(3), (4, 3), ("dtype", "empty", "width", "kind"), False),
    "BatchNorm1d": (lambda: mbp.BatchNorm1d(3), (4, 3), ("dtype", "empty", "width", "rank", "kind"), False),
    "Dropout": (lambda: mbp.Dropout(0.5, rng=0), (4, 3), ("dtype", "empty", "kind"), False),
    "Embedding": (lambda: mbp.Embedding(5, 2, rng=0), (4, 3), ("dtype", "empty", "rank", "kind", "range"), True),
    "Flatten": (mbp.Flatten, (4, 3), ("dtype", "empty", "rank", "kind"), False),
}


@st.composite
def invalid_inputs(draw):
    name = draw(st.sampled_from(sorted(VALID)))
    make, shape, forms, integer = VALID[name]
    form = draw(st.sampled_from(forms))
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = r.integers(0, 5, shape) if integer else r.standard_normal(shape)
    if form == "dtype":
        bad = draw(st.sampled_from(["float64", "int32", "bool", "complex64", "float16", "object", "uint8"]))
        if (bad in ("int32", "uint8")) == integer or (bad == "float64" and not integer):
            bad = "complex64"
        x = x.astype(bad)
    elif form == "empty":
        axis = draw(st.integers(0, x.ndim - 1))
        x = np.take(x, [], axis=axis)
    elif form == "width":
        x = np.concatenate([x] * draw(st.integers(2, 3)), axis=-1)
    elif form == "rank":
        x = x[0, 0] if name in ("Softmax", "Embedding") else (x[0] if name != "BatchNorm1d" else x[..., None])
    elif form == "kind":
        x = draw(st.sampled_from([x.tolist(), tuple(map(tuple, x.tolist())), 3.0, None, "x"]))
    else:  # indices out of range
        x = x.copy()
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([-1, 5, 6, 2**40]))
    return name, make, form, x


@SETTINGS
@given(case=invalid_inputs())
def test_invalid_input_raises_only_documented_errors_naming_the_layer(case):
    name, make, form, x = case
    model = mbp.Sequential(make())
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises((TypeError, ValueError)) as err:
        model.forward(x)
    assert type(err.value) in (TypeError, ValueError), f"{form}: {type(err.value).__name__}"
    assert f"{name} '0'" in str(err.value), f"{form}: {err.value}"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@st.composite
def invalid_targets(draw):
    C = draw(st.integers(2, 5))
    N = draw(st.integers(1, 5))
    z = np.zeros((N, C))
    form = draw(
        st.sampled_from(
            [
                "label range",
                "label count",
                "label dtype",
                "probs shape",
                "probs dtype",
                "3-D",
                "not an array",
                "bce range",
                "mse shape",
            ]
        )
    )
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = r.integers(0, C, N)
    loss = mbp.SoftmaxCrossEntropy()
    if form == "label range":
        y[draw(st.integers(0, N - 1))] = draw(st.sampled_from([-1, C, C + 7, -(2**31)]))
    elif form == "label count":
        y = r.integers(0, C, N + draw(st.integers(1, 3)))
    elif form == "label dtype":
        y = y.astype(draw(st.sampled_from(["float64", "float32", "bool", "complex128", "object"])))
    elif form == "probs shape":
        y = r.random((N, C + draw(st.integers(1, 2))))
    elif form == "probs dtype":
        y = r.random((N, C)).astype(draw(st.sampled_from(["float32", "float16", "complex128"])))
    elif form == "3-D":
        y = r.random((N, C, 1))
    elif form == "not an array":
        y = y.tolist()
    elif form == "bce range":
        loss, y = mbp.BCEWithLogits(), r.random((N, C)) + draw(st.sampled_from([1.5, -1.5, np.nan]))
    else:
        loss, y = mbp.MSE(), r.random((N, C + 1))
    return loss, form, z, y


@SETTINGS
@given(case=invalid_targets())
def test_invalid_targets_raise_only_documented_errors_naming_the_loss(case):
    loss, form, z, y = case
    with pytest.raises((TypeError, ValueError)) as err:
        loss.forward(z, y)
    assert type(err.value) in (TypeError, ValueError), f"{form}: {type(err.value).__name__}"
    assert str(err.value).startswith(type(loss).__name__ + ":"), f"{form}: {err.value}"
