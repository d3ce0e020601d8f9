"""Kinks on purpose, near-kinks never: the MLP cases' hazards at ReLU, LeakyReLU, ELU and Softplus.

``plant_kinks`` zeroes a weight column (and its bias) before a kinked
activation, so that unit's pre-activation is exactly 0 in every backend and the
derivative conventions there are compared. ``near_kink`` flags inputs within
``NEAR_KINK[dtype]`` times the size m of the terms summed into them of a kink
(or of a Softplus threshold): there two correct implementations may round to
opposite sides and legitimately disagree by a whole derivative jump, so such a
case is redrawn. An input exactly at the kink is safe only when it is exact in
every backend, i.e. every term summed into it is zero (m = 0, as for the planted
zeros); one that lands there by the rounding of nonzero terms (a float32 sum
that happens to equal ``threshold / beta``) is a hazard like any other.

m is carried forward where a value sits at the rounding level of its own terms
(|h| < ``NOISE`` eps m: the cancelled sums behind a normalisation of equal rows,
a GELU deep in its negative tail, where the erf and tanh forms that torch and
JAX use cancel to about eps |x|): there the next layer's terms are sized by m,
not by |h|, through Linear layers and through smooth activations (times their
slope). Everywhere else m restarts from the sizes of the values themselves, and
an exact zero (a clamped ReLU output, a dropped unit) stays exact.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

import manual_bp as mbp

KINKED = ("relu", "leaky_relu", "elu")
NEAR_KINK = {"float64": 1e-9, "float32": 1e-4}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


# |h| < NOISE eps m: h may be nothing but the rounding of its terms (a sum of n <= 64 terms, the cases'
# widest layer, rounds by up to n eps m), so its size says nothing about its error
NOISE = 64
# |f'(x)| of the smooth activations, from the input x and the output y (GELU: its supremum, 1.129)
SLOPES = {
    "sigmoid": lambda x, y: y * (1 - y),
    "tanh": lambda x, y: 1 - y * y,
    "silu": lambda x, y: np.abs(_sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "gelu": lambda x, y: np.full(x.shape, 1.13),
    "identity": lambda x, y: np.ones(x.shape),
}


def plant_kinks(rng: np.random.Generator, layers: list[mbp.Module]) -> bool:
    """Zero a weight column (and its bias) of each Linear followed by a kinked activation."""
    planted = False
    batch_norm = any(layer.kind == "batch_norm" for layer in layers)
    for lin, act in itertools.pairwise(layers):
        if batch_norm and lin.kind == "linear" and lin.out_features == 1:
            continue  # zeroing the only unit makes every sample alike: BatchNorm would normalise rounding noise
        if lin.kind == "linear" and act.kind in KINKED:
            j = int(rng.integers(lin.out_features))
            lin.params["W"][:, j] = 0
            if "b" in lin.params:
                lin.params["b"][j] = 0
            planted = True
    return planted


def near_kink(layers: list[mbp.Module], x: np.ndarray, dtype: str) -> bool:
    """True if some kinked activation (or Softplus threshold) sees an input near its kink, or exactly at it
    without being exact in every backend (see the module docstring).

    "Near" is relative to the size of the terms summed into that input,
    m = |h| @ |W| + |b| after a Linear, max |out| after a normalisation, which
    is what its rounding error scales with. Residual branches are walked too.
    Dropout masks drawn here are the ones ``build`` freezes for the comparison.
    """
    return _near_kink_walk(layers, x, np.abs(x) if x.dtype.kind == "f" else x, dtype)[2]


def _norm_terms(layer: Any, h: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The size of the terms behind a normalisation's output: |gamma| (max(m, |x|) + |mean|) rstd + |beta|.
    A column that is constant up to rounding comes out as amplified rounding noise: this flags it. Over a
    single feature a LayerNorm gives x - mean = 0 exactly, so its output is exactly beta: no rounding, m = 0."""
    axis = -1 if layer.kind == "layer_norm" else 0
    if layer.kind == "layer_norm" and h.shape[-1] == 1:
        return np.zeros(h.shape)
    if layer.kind == "batch_norm" and not layer.training:
        mu, var = layer.buffers["running_mean"], layer.buffers["running_var"]
    else:
        mu, var = h.mean(axis=axis, keepdims=True), h.var(axis=axis, keepdims=True)
    big = np.maximum(np.abs(h), m).max(axis=axis, keepdims=True)
    A = (big + np.abs(mu)) / np.sqrt(var + layer.eps)
    gamma, beta = layer.params.get("gamma", 1.0), layer.params.get("beta", 0.0)
    return np.broadcast_to(A * np.abs(gamma) + np.abs(beta), h.shape).astype(np.float64)


def _near_kink_walk(layers: Any, h: np.ndarray, m: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray, bool]:
    for layer in layers:
        if layer.kind == "residual":
            b, m_b, near = _near_kink_walk(layer, h, m, dtype)
            if near:
                return h, m, True
            h, m = h + b, m + m_b
            continue
        if layer.kind in KINKED or layer.kind == "softplus":
            z = h * layer.beta - layer.threshold if layer.kind == "softplus" else h
            width = NEAR_KINK[dtype] * (m * layer.beta if layer.kind == "softplus" else m)
            if np.any(np.abs(z) < width):  # z = 0 passes only with m = 0: exact zeros, as the planted ones
                return h, m, True
        y = layer.forward(h)  # (a Dropout draws here the mask that build freezes)
        h, m = y, _terms(layer, h, y, m, dtype)
    return h, m, False


def _terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, dtype: str) -> np.ndarray:
    """The size of the terms behind each entry of ``layer``'s output y, from its input x and theirs, m."""
    noise = np.abs(x) < NOISE * np.finfo(dtype).eps * m  # inputs at the rounding level of their terms
    if layer.kind == "linear":
        return np.where(noise, m, np.abs(x)) @ np.abs(layer.params["W"]) + np.abs(layer.params.get("b", 0.0))
    if layer.kind in KINKED or layer.kind == "softplus":
        return np.abs(y)  # clear of the kink, the output is as exact as its input (a clamped 0 exactly)
    if layer.kind in SLOPES:
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        m = np.where(noise, SLOPES[layer.kind](x64, y64) * m, np.abs(y64))
        if layer.kind == "gelu":  # x (1 + erf(x / sqrt 2)) / 2 and the tanh form cancel for x << 0
            m = np.maximum(m, np.where(x64 < 0, np.abs(x64), 0.0))
        return m
    if layer.kind in ("batch_norm", "layer_norm"):
        return _norm_terms(layer, x, m)
    if layer.kind == "embedding":
        return np.full(y.shape, np.abs(y).max(initial=0.0))
    if layer.kind == "dropout":
        return np.where(layer.mask, m / (1 - layer.p), 0.0) if layer.training else m  # a dropped unit: exact 0
    if layer.kind == "flatten":
        return m.reshape(m.shape[0], -1)
    return np.abs(x)
