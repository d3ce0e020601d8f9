"""Pure forward/backward pairs: the math of manual_bp, written once.

Every layer is a pair::

    out, cache = <name>_forward(x, ...)
    dx[, dW, db] = <name>_backward(dout, cache)

``dout`` is dL/d(out), the gradient of a scalar loss L with respect to this
pair's output, with the output's shape. The cache holds exactly what backward
reads. Nothing here mutates its arguments, and every result keeps the dtype of
``x`` (float32 or float64): constants are Python floats, which NumPy treats as
weak scalars, so float32 stays float32.

Shapes: ``N`` is the batch, ``*`` any further leading axes, ``D`` features in,
``M`` features out, ``C`` classes (the last axis).

Elementwise activations act on arrays of any shape; their backward is
``dx = dout * f'(x)`` with ``f'`` written out in each docstring. Derivatives at
kinks follow PyTorch: ReLU'(0) = 0, LeakyReLU'(0) = negative_slope,
ELU'(0) = alpha (see the conventions table in the README).

This module holds the pairs of every dense, elementwise, normalisation and
lookup layer; convolution, pooling and attention keep theirs beside their
layers (``conv``, ``pool``, ``attention``). It is longer than the other
modules on purpose: it is the one page where the math of a dense network reads
in order, forward beside backward.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Cache = Any

# ---------------------------------------------------------------- Linear


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, Cache]:
    """out = x @ W + b.

    x: (N, *, D), W: (D, M), b: (M,) or None  ->  out: (N, *, M).
    The weight layout is (in, out), the transpose of torch's ``nn.Linear.weight``.
    """
    out = x @ W  # (N, *, M)
    if b is not None:
        out += b  # broadcast over the leading axes; ``out`` is fresh, x is untouched
    return out, (x, W, b is not None)


def linear_backward(
    dout: np.ndarray, cache: Cache, need_dx: bool = True, dW_out: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """dx = dout @ W.T,  dW = x^T dout (summed over N and *),  db = sum of dout over N and *.

    dout: (N, *, M)  ->  dx: (N, *, D), dW: (D, M), db: (M,) or None.
    ``need_dx=False`` returns dx = None and skips its product (the first layer in training).
    ``dW_out``: a C-contiguous (D, M) array of W's dtype to write dW into (else a new one).
    """
    x, W, has_bias = cache
    D, M = W.shape
    dx = dout @ W.T if need_dx else None  # (N, *, D)
    x2 = x.reshape(-1, D)  # (N*, D)
    dout2 = dout.reshape(-1, M)  # (N*, M)
    dW = np.matmul(x2.T, dout2, out=dW_out)  # (D, M)
    db = dout2.sum(axis=0) if has_bias else None  # (M,)
    return dx, dW, db


# ---------------------------------------------------------------- piecewise linear


def identity_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x (a copy, so later in-place work on ``out`` never reaches the caller's x)."""
    return x.copy(), None


def identity_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout."""
    return dout.copy()


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = max(x, 0). Cache: the mask x > 0."""
    return np.maximum(x, 0), x > 0


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * [x > 0]   (ReLU'(0) = 0)."""
    return dout * cache


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, Cache]:
    """out = x if x > 0 else negative_slope * x. Cache: (mask x > 0, negative_slope)."""
    positive = x > 0
    return np.where(positive, x, negative_slope * x), (positive, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout if x > 0 else negative_slope * dout   (LeakyReLU'(0) = negative_slope)."""
    positive, negative_slope = cache
    return np.where(positive, dout, negative_slope * dout)


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, Cache]:
    """out = x if x > 0 else alpha * (exp(x) - 1). Cache: (mask x > 0, out, alpha)."""
    positive = x > 0
    out = np.where(positive, x, alpha * np.expm1(np.minimum(x, 0)))
    return out, (positive, out, alpha)


def elu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout if x > 0 else dout * alpha * exp(x) = dout * (out + alpha)   (ELU'(0) = alpha)."""
    positive, out, alpha = cache
    return np.where(positive, dout, dout * (out + alpha))


# ---------------------------------------------------------------- smooth activations


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


def silu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x * s, s = sigmoid(x). Cache: (x, s)."""
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * s * (1 + x * (1 - s))."""
    x, s = cache
    return dout * s * (1 + x * (1 - s))


def softplus_forward(
    x: np.ndarray, beta: float = 1.0, threshold: float = 20.0
) -> tuple[np.ndarray, Cache]:
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


_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _erfc(z: np.ndarray) -> np.ndarray:
    """erfc elementwise, in float64 (NumPy has no erf; ``math.erfc`` is accurate to about 1 ulp)."""
    return np.fromiter(map(math.erfc, z.ravel().tolist()), np.float64, count=z.size).reshape(z.shape)


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


# ---------------------------------------------------------------- softmax family (last axis)


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


# ---------------------------------------------------------------- normalisation


def layer_norm_forward(
    x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    """Layer normalisation over the last axis, as torch's ``nn.LayerNorm(D)``.

    mu = mean_d x,  var = mean_d (x - mu)^2 (biased),  rstd = 1 / sqrt(var + eps),
    xhat = (x - mu) * rstd,  out = xhat * gamma + beta (gamma, beta: None without affine).

    x: (N, *, D), gamma, beta: (D,)  ->  out: (N, *, D). Cache: (xhat, rstd, gamma, has_beta).
    """
    mu = x.mean(axis=-1, keepdims=True)  # (N, *, 1)
    xc = x - mu  # (N, *, D)
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (N, *, 1), biased: divides by D
    rstd = 1.0 / np.sqrt(var + eps)  # (N, *, 1)
    xhat = xc * rstd  # (N, *, D)
    out = xhat * gamma if gamma is not None else xhat.copy()
    if beta is not None:
        out += beta
    return out, (xhat, rstd, gamma, beta is not None)


def layer_norm_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """dxhat = dout * gamma,
    dx = rstd * (dxhat - mean_d dxhat - xhat * mean_d(dxhat * xhat)),
    dgamma = sum over N, * of dout * xhat,  dbeta = sum over N, * of dout.

    The three terms of dx come from xhat's direct path, mu and var (the same
    derivation as ``batch_norm_backward``, along the last axis instead of the batch).
    dout: (N, *, D)  ->  dx: (N, *, D), dgamma, dbeta: (D,) or None.
    """
    xhat, rstd, gamma, has_beta = cache
    D = xhat.shape[-1]
    dxhat = dout * gamma if gamma is not None else dout  # (N, *, D)
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)  # (N, *, 1)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)  # (N, *, 1)
    dx = rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # (N, *, D)
    dgamma = (dout * xhat).reshape(-1, D).sum(axis=0) if gamma is not None else None  # (D,)
    dbeta = dout.reshape(-1, D).sum(axis=0) if has_beta else None  # (D,)
    return dx, dgamma, dbeta


def batch_norm_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, Cache, tuple[np.ndarray, np.ndarray]]:
    """Batch normalisation over the batch axis, as torch's ``nn.BatchNorm1d(D)`` on (N, D).

    Training (batch statistics; numbered lines are undone by ``batch_norm_backward``)::

        (1) mu   = mean_n x                       (D,)
        (2) xc   = x - mu                         (N, D)
        (3) var  = mean_n xc^2                    (D,)   biased (/ N): used to normalise
        (4) rstd = 1 / sqrt(var + eps)            (D,)
        (5) xhat = xc * rstd                      (N, D)
        (6) out  = xhat * gamma + beta            (N, D)

        running_mean' = (1 - momentum) * running_mean + momentum * mu
        running_var'  = (1 - momentum) * running_var  + momentum * var * N / (N - 1)   (unbiased)

    Evaluation: xhat = (x - running_mean) / sqrt(running_var + eps); the running
    statistics are returned unchanged. Nothing is updated in place: the caller
    stores the returned statistics. Training needs N >= 2 (one sample has no
    variance; torch raises too).

    x: (N, D), gamma, beta: (D,) or None, running_mean, running_var: (D,)
    ->  out: (N, D), cache, (running_mean', running_var').
    """
    if not training:
        rstd = 1.0 / np.sqrt(running_var + eps)  # (D,)
        xhat = (x - running_mean) * rstd  # (N, D)
        out = xhat * gamma if gamma is not None else xhat.copy()
        if beta is not None:
            out += beta
        return out, (False, xhat, None, rstd, gamma, beta is not None), (running_mean, running_var)
    N = x.shape[0]
    mu = x.mean(axis=0)  # (1) (D,)
    xc = x - mu  # (2) (N, D)
    var = (xc * xc).mean(axis=0)  # (3) (D,)
    rstd = 1.0 / np.sqrt(var + eps)  # (4) (D,)
    xhat = xc * rstd  # (5) (N, D)
    out = xhat * gamma if gamma is not None else xhat.copy()  # (6)
    if beta is not None:
        out += beta
    new_mean = (1.0 - momentum) * running_mean + momentum * mu
    new_var = (1.0 - momentum) * running_var + momentum * (var * (N / (N - 1.0)))
    return out, (True, xhat, xc, rstd, gamma, beta is not None), (new_mean, new_var)


def batch_norm_backward(
    dout: np.ndarray, cache: Cache
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Backward of ``batch_norm_forward``, one step per forward line, last line first.

    Training::

        dbeta  = sum_n dout                       (D,)    undoes (6), the + beta
        dgamma = sum_n dout * xhat                (D,)    undoes (6), the * gamma
        dxhat  = dout * gamma                     (N, D)  undoes (6), path to xhat
        drstd  = sum_n dxhat * xc                 (D,)    undoes (5), path to rstd
        dxc    = dxhat * rstd                     (N, D)  undoes (5), path to xc
        dvar   = -0.5 * rstd^3 * drstd            (D,)    undoes (4)
        dxc   += 2 * xc * dvar / N                (N, D)  undoes (3)
        dmu    = -sum_n dxc                       (D,)    undoes (2), path to mu
        dx     = dxc + dmu / N                    (N, D)  undoes (2) and (1)

    Evaluation (the statistics are constants): dx = dout * gamma * rstd.
    dout: (N, D)  ->  dx: (N, D), dgamma, dbeta: (D,) or None.
    """
    training, xhat, xc, rstd, gamma, has_beta = cache
    dbeta = dout.sum(axis=0) if has_beta else None  # (D,)
    dgamma = (dout * xhat).sum(axis=0) if gamma is not None else None  # (D,)
    dxhat = dout * gamma if gamma is not None else dout  # (N, D)
    if not training:
        return dxhat * rstd, dgamma, dbeta
    N = dout.shape[0]
    drstd = (dxhat * xc).sum(axis=0)  # (D,)
    dxc = dxhat * rstd  # (N, D)
    dvar = -0.5 * rstd * rstd * rstd * drstd  # (D,)
    dxc += (2.0 / N) * xc * dvar  # (N, D)
    dmu = -dxc.sum(axis=0)  # (D,)
    dx = dxc + dmu / N  # (N, D)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- dropout, embedding, reshaping


def dropout_forward(x: np.ndarray, keep: np.ndarray | None, p: float) -> tuple[np.ndarray, Cache]:
    """Inverted dropout: out = x * keep / (1 - p), as torch's ``F.dropout`` in training mode.

    ``keep`` is a boolean mask of x's shape (True: the entry is kept), drawn by the
    caller (``layers.Dropout`` draws it from its explicit generator with P(keep) = 1 - p);
    ``keep=None`` is evaluation mode: out = x (a copy). 0 <= p < 1.
    x: (N, *)  ->  out: (N, *). Cache: (keep, 1 / (1 - p)).
    """
    if keep is None:
        return x.copy(), (None, 1.0)
    scale = 1.0 / (1.0 - p)
    return x * (keep * scale).astype(x.dtype, copy=False), (keep, scale)


def dropout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * keep / (1 - p)  (eval mode: dx = dout)."""
    keep, scale = cache
    if keep is None:
        return dout.copy()
    return dout * (keep * scale).astype(dout.dtype, copy=False)


def embedding_forward(idx: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = W[idx]: row idx of the table for every index.

    idx: (N, *) integers in [0, V), W: (V, D)  ->  out: (N, *, D). Cache: (idx, V).
    The table layout (num_embeddings, embedding_dim) is torch's ``nn.Embedding.weight``.
    """
    return W[idx], (idx, W.shape[0])


def embedding_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dW[v] = sum of dout over every position where idx == v (np.add.at: repeated
    indices accumulate; a plain ``dW[idx] = dout`` would keep only the last).

    dout: (N, *, D)  ->  dW: (V, D). There is no gradient with respect to the integer indices.
    """
    idx, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)  # (V, D)
    np.add.at(dW, idx.reshape(-1), dout.reshape(-1, dout.shape[-1]))
    return dW


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x reshaped to (N, prod of the other axes), as torch's ``nn.Flatten()`` (a copy).

    x: (N, d1, ..., dk)  ->  out: (N, d1 * ... * dk). Cache: x.shape.
    """
    return x.reshape(x.shape[0], -1).copy(), x.shape


def flatten_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout reshaped back to x's shape.  dout: (N, d1 * ... * dk)  ->  dx: (N, d1, ..., dk)."""
    return dout.reshape(cache).copy()


def residual_forward(x: np.ndarray, fx: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x + f(x), f a sub-network evaluated by the caller.  x, fx: (N, *)  ->  out: (N, *)."""
    return x + fx, None


def residual_backward(dout: np.ndarray, dx_branch: np.ndarray) -> np.ndarray:
    """dx = dout (the skip path) + dx_branch (dout pulled back through f by the caller)."""
    return dout + dx_branch
