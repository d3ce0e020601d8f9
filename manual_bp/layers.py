"""Linear, Dropout, Embedding and Flatten: their pairs, then the layers over them; and every layer in one namespace.

The base class is in ``manual_bp.module``, the activations in
``manual_bp.activations``, the normalisations in ``manual_bp.norm``; all are
re-exported here. A layer validates its input, calls its forward pair, keeps
the cache, and in ``backward`` hands the cache to the backward pair and stores
the parameter gradients in ``self.grads`` (overwritten, never accumulated).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual_bp._checks import (
    check_dtype_arg,
    check_features,
    check_float_array,
    check_min_ndim,
    check_nonempty,
    check_number,
    check_same_dtype,
)
from manual_bp.activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from manual_bp.init import as_generator, get_initializer, standard_normal
from manual_bp.module import Module
from manual_bp.norm import BatchNorm1d, LayerNorm

Cache = Any

__all__ = [
    "ELU",
    "GELU",
    "BatchNorm1d",
    "Dropout",
    "Embedding",
    "Flatten",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Module",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]

# ---------------------------------------------------------------- Linear


# --8<-- [start:linear_pair]
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


# --8<-- [end:linear_pair]


# ---------------------------------------------------------------- dropout, embedding, reshaping


# --8<-- [start:dropout_pair]
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


# --8<-- [end:dropout_pair]


# --8<-- [start:embedding_pair]
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


# --8<-- [end:embedding_pair]


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x reshaped to (N, prod of the other axes), as torch's ``nn.Flatten()`` (a copy).

    x: (N, d1, ..., dk)  ->  out: (N, d1 * ... * dk). Cache: x.shape.
    """
    return x.reshape(x.shape[0], -1).copy(), x.shape


def flatten_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout reshaped back to x's shape.  dout: (N, d1 * ... * dk)  ->  dx: (N, d1, ..., dk)."""
    return dout.reshape(cache).copy()


# ---------------------------------------------------------------- layers


class Linear(Module):
    """Fully connected layer: out = x @ W + b, W of shape (in_features, out_features).

    x: (N, *, in_features) -> out: (N, *, out_features). ``init`` names the
    weight initialiser (see ``manual_bp.init``; default: torch's uniform), the
    bias uses torch's uniform with fan_in = in_features.
    """

    kind = "linear"
    reusable_grads = ("W",)
    contiguous = True  # see Module.contiguous

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
        init: str = "torch",
    ) -> None:
        super().__init__()
        for n, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear: {n} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.bias, self.init = bool(bias), init
        self.dtype = check_dtype_arg(dtype, "Linear")
        gen = as_generator(rng, "Linear")
        D, M = self.in_features, self.out_features
        self.params["W"] = get_initializer(init, "Linear")(gen, (D, M), D, M, self.dtype)
        if self.bias:
            self.params["b"] = get_initializer("torch", "Linear")(gen, (M,), D, M, self.dtype)

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "dtype": self.dtype.name,
            "init": self.init,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, 2, self.where)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self.where}: expected input (N, ..., {self.in_features}), got shape {x.shape}: "
                f"the last axis must hold in_features={self.in_features}"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return linear_forward(x, self.params["W"], self.params.get("b"))

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        W = self.params["W"]
        dx, dW, db = linear_backward(dout, cache, need_dx, dW_out=self._grad_storage("W", like=W))
        self.grads["W"] = dW
        if db is not None:
            self.grads["b"] = db
        return dx

    def _param_backward(self, dout: np.ndarray, cache: Any) -> None:
        return self._backward(dout, cache, need_dx=False)  # skips the product dout @ W.T


class Dropout(Module):
    """Inverted dropout: in training, out = x * keep / (1 - p) with keep ~ Bernoulli(1 - p); identity in eval.

    The keep mask is drawn from ``rng`` (an explicit ``np.random.Generator`` or
    seed) on every training forward and kept in ``self.mask`` (bool, x's shape).
    With ``frozen = True`` the next training forwards reuse ``self.mask`` instead
    of drawing (finite differences and cross-checks need a fixed mask).
    0 <= p < 1; p = 0 keeps everything.
    """

    kind = "dropout"

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = check_number("Dropout", "p", p)
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r} (p = 1 would drop every unit)")
        self.rng = as_generator(rng, "Dropout")
        self.mask: np.ndarray | None = None
        self.frozen = False

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if not self.training:
            return dropout_forward(x, None, self.p)
        if self.frozen:
            if self.mask is None or self.mask.shape != x.shape:
                got = None if self.mask is None else self.mask.shape
                raise ValueError(f"{self.where}: frozen mask of shape {got} does not fit input shape {x.shape}")
        elif self.p == 0.0:
            self.mask = np.ones(x.shape, dtype=bool)
        else:
            self.mask = self.rng.random(x.shape) >= self.p  # P(keep) = 1 - p
        return dropout_forward(x, self.mask, self.p)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return dropout_backward(dout, cache)


class Embedding(Module):
    """A lookup table: integer indices (N, *) -> rows of W, (N, *, embedding_dim).

    W: (num_embeddings, embedding_dim), torch's layout, initialised N(0, 1) as
    torch does. Gradients accumulate over repeated indices; ``backward`` returns
    None (there is no gradient with respect to integer indices).
    """

    kind = "embedding"

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_features("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_features("Embedding", "embedding_dim", embedding_dim)
        self.dtype = check_dtype_arg(dtype, "Embedding")
        gen = as_generator(rng, "Embedding")
        self.params["W"] = standard_normal(gen, (self.num_embeddings, self.embedding_dim), self.dtype)

    def config(self) -> dict[str, Any]:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(
                f"{self.where}: indices must be an integer numpy.ndarray, got {got}; "
                f"convert explicitly, e.g. idx.astype(np.int64)"
            )
        check_min_ndim(x, 1, self.where, "indices")
        check_nonempty(x, self.where, "indices")
        V = self.num_embeddings
        bad = (x < 0) | (x >= V)
        if np.any(bad):
            raise ValueError(
                f"{self.where}: index {x[bad].flat[0]} out of range [0, {V}) in indices of shape {x.shape}; "
                f"num_embeddings={V}"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return embedding_forward(x, self.params["W"])

    def _backward(self, dout: np.ndarray, cache: Any) -> None:  # type: ignore[override]
        self.grads["W"] = embedding_backward(dout, cache)
        return None


class Flatten(Module):
    """x (N, d1, ..., dk) -> (N, d1 * ... * dk), as torch's ``nn.Flatten()``."""

    kind = "flatten"
    min_ndim = 2

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return flatten_forward(x)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return flatten_backward(dout, cache)
