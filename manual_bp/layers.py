"""Layers: thin classes over the pairs in ``manual_bp.functional``.

A layer validates its input, calls the forward pair, keeps the cache, and in
``backward`` hands the cache to the backward pair and stores the parameter
gradients in ``self.grads`` (overwritten, never accumulated). The math is not
repeated here. Hyperparameters are plain attributes, listed by ``config()``.

This module holds ``Linear``, ``Dropout``, ``Embedding`` and ``Flatten``, and
gathers every layer in one namespace: the base class is in ``manual_bp.module``,
the activations in ``manual_bp.activations``, the normalisations in
``manual_bp.norm``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual_bp import functional as F
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

__all__ = [
    "ELU", "GELU", "BatchNorm1d", "Dropout", "Embedding", "Flatten", "Identity", "LayerNorm", "LeakyReLU",
    "Linear", "LogSoftmax", "Module", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
]


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
        return F.linear_forward(x, self.params["W"], self.params.get("b"))

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        W = self.params["W"]
        dx, dW, db = F.linear_backward(dout, cache, need_dx, dW_out=self._grad_storage("W", like=W))
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
            return F.dropout_forward(x, None, self.p)
        if self.frozen:
            if self.mask is None or self.mask.shape != x.shape:
                got = None if self.mask is None else self.mask.shape
                raise ValueError(f"{self.where}: frozen mask of shape {got} does not fit input shape {x.shape}")
        elif self.p == 0.0:
            self.mask = np.ones(x.shape, dtype=bool)
        else:
            self.mask = self.rng.random(x.shape) >= self.p  # P(keep) = 1 - p
        return F.dropout_forward(x, self.mask, self.p)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return F.dropout_backward(dout, cache)


class Embedding(Module):
    """A lookup table: integer indices (N, *) -> rows of W, (N, *, embedding_dim).

    W: (num_embeddings, embedding_dim), torch's layout, initialised N(0, 1) as
    torch does. Gradients accumulate over repeated indices; ``backward`` returns
    None (there is no gradient with respect to integer indices).
    """

    kind = "embedding"

    def __init__(
        self, num_embeddings: int, embedding_dim: int, *, rng: np.random.Generator | int | None = None,
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
        return F.embedding_forward(x, self.params["W"])

    def _backward(self, dout: np.ndarray, cache: Any) -> None:  # type: ignore[override]
        self.grads["W"] = F.embedding_backward(dout, cache)
        return None


class Flatten(Module):
    """x (N, d1, ..., dk) -> (N, d1 * ... * dk), as torch's ``nn.Flatten()``."""

    kind = "flatten"
    min_ndim = 2

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.flatten_forward(x)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return F.flatten_backward(dout, cache)
