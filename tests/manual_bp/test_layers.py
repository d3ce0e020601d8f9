"""Linear, Dropout, Embedding and Flatten (manual_bp/layers.py), and what every layer keeps: closed forms,
dtype preservation, inputs never mutated."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from tests.helpers import DTYPES, fwd_bwd

# ---------------------------------------------------------------- closed forms and behaviour


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


def test_flatten_nchw() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 5))
    out = mbp.Flatten().forward(x)
    assert out.shape == (3, 2 * 4 * 5)
    np.testing.assert_array_equal(out[1], x[1].ravel())  # C, H, W order: torch's nn.Flatten


def test_embedding_accumulates_repeated_indices() -> None:
    emb = mbp.Embedding(3, 2, rng=0)
    idx = np.array([1, 1, 1, 0])
    emb.forward(idx)
    dout = np.arange(8.0).reshape(4, 2)
    assert emb.backward(dout) is None  # no gradient for integer indices
    np.testing.assert_array_equal(emb.grads["W"], [[6, 7], [6, 9], [0, 0]])


def test_dropout_masks_p0_eval_and_generator() -> None:
    x = np.random.default_rng(0).standard_normal((50, 40))
    a, b = mbp.Dropout(0.3, rng=7), mbp.Dropout(0.3, rng=7)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))  # same seed, same mask
    keep = a.mask.mean()
    assert 0.6 < keep < 0.8 and a.mask.dtype == bool
    np.testing.assert_allclose(a.forward(x)[a.mask], x[a.mask] / 0.7, rtol=1e-15)
    np.testing.assert_array_equal(mbp.Dropout(0.0, rng=1).forward(x), x)
    np.testing.assert_array_equal(mbp.Dropout(0.9, rng=1).eval().forward(x), x)
    hi = mbp.Dropout(0.999, rng=1)
    out = hi.forward(x)
    assert np.all(np.isfinite(out)) and np.allclose(out[hi.mask], x[hi.mask] * 1000, rtol=1e-12)


def test_frozen_dropout_with_the_wrong_shape() -> None:
    d = mbp.Dropout(0.5, rng=0)
    d.forward(np.ones((2, 3)))
    d.frozen = True
    message = "Dropout: frozen mask of shape (2, 3) does not fit input shape (4, 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        d.forward(np.ones((4, 3)))


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
