"""Activations: the elementwise and softmax pairs, then a thin parameter-free layer over each.

Elementwise activations act on arrays of any shape; their backward is
``dx = dout * f'(x)`` with ``f'`` written out in each docstring. Derivatives at
kinks follow PyTorch: ReLU'(0) = 0, LeakyReLU'(0) = negative_slope,
ELU'(0) = alpha (docs/conventions.md). Softmax and LogSoftmax act along the
last axis. A layer's hyperparameters (slope, alpha, beta, threshold,
approximate) are plain attributes listed by ``config()`` and passed to its pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from manual_bp._checks import check_number
from manual_bp.module import Module

Cache = Any

# ---------------------------------------------------------------- piecewise linear


def identity_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x (a copy, so later in-place work on ``out`` never reaches the caller's x)."""
    return x.copy(), None


def identity_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout."""
    return dout.copy()


# --8<-- [start:relu_pair]
def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = max(x, 0). Cache: the mask x > 0."""
    return np.maximum(x, 0), x > 0


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * [x > 0]   (ReLU'(0) = 0)."""
    return dout * cache


# --8<-- [end:relu_pair]


# --8<-- [start:leaky_relu_pair]
def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, Cache]:
    """out = x if x > 0 else negative_slope * x. Cache: (mask x > 0, negative_slope)."""
    positive = x > 0
    return np.where(positive, x, negative_slope * x), (positive, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout if x > 0 else negative_slope * dout   (LeakyReLU'(0) = negative_slope)."""
    positive, negative_slope = cache
    return np.where(positive, dout, negative_slope * dout)


# --8<-- [end:leaky_relu_pair]


# --8<-- [start:elu_pair]
def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, Cache]:
    """out = x if x > 0 else alpha * (exp(x) - 1). Cache: (mask x > 0, out, alpha)."""
    positive = x > 0
    out = np.where(positive, x, alpha * np.expm1(np.minimum(x, 0)))
    return out, (positive, out, alpha)


def elu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout if x > 0 else dout * alpha * exp(x) = dout * (out + alpha)   (ELU'(0) = alpha)."""
    positive, out, alpha = cache
    return np.where(positive, dout, dout * (out + alpha))


# --8<-- [end:elu_pair]


# ---------------------------------------------------------------- smooth activations


# --8<-- [start:sigmoid_pair]
def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = s = 1 / (1 + exp(-x)). Cache: s."""
    s = _sigmoid(x)
    return s, s


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * s * (1 - s)."""
    s = cache
    return dout * s * (1 - s)


# --8<-- [end:sigmoid_pair]


# --8<-- [start:tanh_pair]
def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = t = tanh(x). Cache: t."""
    t = np.tanh(x)
    return t, t


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * (1 - t^2), evaluated as (1 - t)(1 + t).

    For saturated units (|t| near 1) the factored form keeps full relative
    precision: 1 - t is exact there, while 1 - fl(t*t) loses eps / (1 - t^2).
    """
    t = cache
    return dout * ((1 - t) * (1 + t))


# --8<-- [end:tanh_pair]


# --8<-- [start:silu_pair]
def silu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x * s, s = sigmoid(x). Cache: (x, s)."""
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * s * (1 + x * (1 - s))."""
    x, s = cache
    return dout * s * (1 + x * (1 - s))


# --8<-- [end:silu_pair]


# --8<-- [start:softplus_pair]
def softplus_forward(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> tuple[np.ndarray, Cache]:
    """out = log(1 + exp(beta * x)) / beta, and out = x where beta * x > threshold.

    This is torch's definition (``F.softplus``): above the threshold the function
    is the identity, so its derivative there is exactly 1.
    Cache: (mask beta*x > threshold, s = sigmoid(beta * x)).
    """
    bx = beta * x
    linear = bx > threshold
    soft = np.logaddexp(bx, 0) / beta  # log(1 + exp(bx)) without overflow
    return np.where(linear, x, soft), (linear, _sigmoid(bx))


def softplus_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout where beta*x > threshold, else dout * sigmoid(beta * x)."""
    linear, s = cache
    return np.where(linear, dout, dout * s)


# --8<-- [end:softplus_pair]


_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _erfc(z: np.ndarray) -> np.ndarray:
    """erfc elementwise, in float64 (NumPy has no erf; ``math.erfc`` is accurate to about 1 ulp)."""
    return np.fromiter(map(math.erfc, z.ravel().tolist()), np.float64, count=z.size).reshape(z.shape)


# --8<-- [start:gelu_pair]
def gelu_forward(x: np.ndarray, approximate: str = "none") -> tuple[np.ndarray, Cache]:
    """GELU, as torch's ``F.gelu(x, approximate=...)``.

    approximate="none":  out = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2
                         (the erfc form does not cancel to 0 for x << 0).
    approximate="tanh":  out = x * (1 + t) / 2,  t = tanh(sqrt(2/pi) * (x + 0.044715 x^3)).
    Cache: (x, Phi) or (x, t).
    """
    if approximate == "none":
        Phi = (0.5 * _erfc(-x / _SQRT_2)).astype(x.dtype, copy=False)
        return x * Phi, (approximate, x, Phi)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x))
        return 0.5 * x * (1 + t), (approximate, x, t)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """approximate="none":  dx = dout * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2/2) / sqrt(2 pi).

    approximate="tanh":  dx = dout * ((1 + t)/2 + x/2 * (1 - t^2) * sqrt(2/pi) * (1 + 3*0.044715 x^2)).
    """
    approximate, x, aux = cache
    if approximate == "none":
        Phi = aux
        phi = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return dout * (Phi + x * phi)
    t = aux
    du_dx = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
    return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)


# --8<-- [end:gelu_pair]


# ---------------------------------------------------------------- softmax family (last axis)


# --8<-- [start:softmax_pair]
def softmax_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """p = exp(x - max x) / sum exp(x - max x), along the last axis. x: (*, C) -> p: (*, C).

    The max is subtracted out of place: the caller's x is never modified.
    Cache: p.
    """
    e = np.exp(x - x.max(axis=-1, keepdims=True))  # (*, C), every entry in (0, 1]
    p = e / e.sum(axis=-1, keepdims=True)
    return p, p


def softmax_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = p * (dout - sum_c dout_c p_c)   (the Jacobian diag(p) - p p^T applied to dout)."""
    p = cache
    return p * (dout - (dout * p).sum(axis=-1, keepdims=True))


# --8<-- [end:softmax_pair]


# --8<-- [start:log_softmax_pair]
def log_softmax_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x - logsumexp(x), along the last axis, with the max shifted out first.

    x: (*, C) -> out: (*, C), every entry <= 0. Cache: p = softmax(x).

    p is formed as e / sum(e) (two roundings per entry) rather than exp(out),
    whose error grows with |out|; tied logits then give exactly equal p.
    """
    shifted = x - x.max(axis=-1, keepdims=True)  # (*, C)
    e = np.exp(shifted)  # (*, C), entries in (0, 1]
    s = e.sum(axis=-1, keepdims=True)  # (*, 1), in [1, C]
    return shifted - np.log(s), e / s


def log_softmax_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout - p * sum_c dout_c."""
    p = cache
    return dout - p * dout.sum(axis=-1, keepdims=True)


# --8<-- [end:log_softmax_pair]


# ---------------------------------------------------------------- layers


class _Elementwise(Module):
    """A parameter-free layer defined by a forward/backward pair and its keyword hyperparameters."""

    _fwd: ClassVar[Callable[..., tuple[np.ndarray, Any]]]
    _bwd: ClassVar[Callable[[np.ndarray, Any], np.ndarray]]

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return type(self)._fwd(x, **self.config())

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return type(self)._bwd(dout, cache)


class Identity(_Elementwise):
    """out = x."""

    kind = "identity"
    _fwd, _bwd = identity_forward, identity_backward


class ReLU(_Elementwise):
    """out = max(x, 0); ReLU'(0) = 0."""

    kind = "relu"
    _fwd, _bwd = relu_forward, relu_backward


class LeakyReLU(_Elementwise):
    """out = x if x > 0 else negative_slope * x; derivative at 0 is negative_slope."""

    kind = "leaky_relu"
    _fwd, _bwd = leaky_relu_forward, leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_number("LeakyReLU", "negative_slope", negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """out = x if x > 0 else alpha * (exp(x) - 1); derivative at 0 is alpha."""

    kind = "elu"
    _fwd, _bwd = elu_forward, elu_backward

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Elementwise):
    """out = 1 / (1 + exp(-x))."""

    kind = "sigmoid"
    _fwd, _bwd = sigmoid_forward, sigmoid_backward


class Tanh(_Elementwise):
    """out = tanh(x)."""

    kind = "tanh"
    _fwd, _bwd = tanh_forward, tanh_backward


class SiLU(_Elementwise):
    """out = x * sigmoid(x) (also called swish)."""

    kind = "silu"
    _fwd, _bwd = silu_forward, silu_backward


class Softplus(_Elementwise):
    """out = log(1 + exp(beta x)) / beta, and x where beta x > threshold (torch's definition)."""

    kind = "softplus"
    _fwd, _bwd = softplus_forward, softplus_backward

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = check_number("Softplus", "beta", beta, positive=True)
        self.threshold = check_number("Softplus", "threshold", threshold)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(_Elementwise):
    """out = x * Phi(x) (approximate="none", erf) or its tanh approximation (approximate="tanh")."""

    kind = "gelu"
    _fwd, _bwd = gelu_forward, gelu_backward

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class Softmax(_Elementwise):
    """Softmax along the last axis: x (*, C) -> p (*, C), rows summing to 1."""

    kind = "softmax"
    min_ndim = 1
    _fwd, _bwd = softmax_forward, softmax_backward


class LogSoftmax(_Elementwise):
    """Log-softmax along the last axis: x (*, C) -> x - logsumexp(x) (*, C)."""

    kind = "log_softmax"
    min_ndim = 1
    _fwd, _bwd = log_softmax_forward, log_softmax_backward
