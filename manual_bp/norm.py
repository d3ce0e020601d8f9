"""Normalisation layers, LayerNorm and BatchNorm1d: thin classes over the pairs in ``manual_bp.functional``."""

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
from manual_bp.init import constant
from manual_bp.module import Module


def _check_last_dim(x: np.ndarray, D: int, where: str, layout: str) -> None:
    if x.shape[-1] != D:
        raise ValueError(f"{where}: expected input {layout}, got shape {x.shape}: the last axis must hold {D} features")


class _Norm(Module):
    """Shared set-up of LayerNorm and BatchNorm1d: gamma = 1 and beta = 0 when affine."""

    def __init__(self, D: int, eps: float, affine: bool, dtype: Any) -> None:
        super().__init__()
        where = type(self).__name__
        self.eps = check_number(where, "eps", eps, positive=True)
        self.dtype = check_dtype_arg(dtype, where)
        if affine:
            self.params["gamma"] = constant((D,), 1.0, self.dtype)
            self.params["beta"] = constant((D,), 0.0, self.dtype)

    def _check_norm_input(self, x: Any, D: int, ndim: int, layout: str) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, ndim, self.where)
        _check_last_dim(x, D, self.where, layout)
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _store_grads(self, dgamma: np.ndarray | None, dbeta: np.ndarray | None) -> None:
        if dgamma is not None:
            self.grads["gamma"] = dgamma
        if dbeta is not None:
            self.grads["beta"] = dbeta


class LayerNorm(_Norm):
    """Normalise each sample over its last axis: out = (x - mean) / sqrt(var + eps) * gamma + beta.

    x: (N, *, normalized_shape) -> out: same shape. Biased variance, as torch's
    ``nn.LayerNorm(normalized_shape, eps, elementwise_affine)``; gamma, beta: (D,).
    """

    kind = "layer_norm"

    def __init__(
        self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, *, dtype: Any = np.float64
    ) -> None:
        D = check_features("LayerNorm", "normalized_shape", normalized_shape)
        super().__init__(D, eps, bool(elementwise_affine), dtype)
        self.normalized_shape, self.elementwise_affine = D, bool(elementwise_affine)

    def config(self) -> dict[str, Any]:
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_norm_input(x, self.normalized_shape, 1, f"(..., {self.normalized_shape})")

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return F.layer_norm_forward(x, self.params.get("gamma"), self.params.get("beta"), self.eps)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = F.layer_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx


class BatchNorm1d(_Norm):
    """Normalise each feature over the batch, as torch's ``nn.BatchNorm1d(num_features)`` on (N, D).

    Training: batch mean and biased variance normalise; the running statistics
    (``buffers["running_mean"]``, ``buffers["running_var"]``, initially 0 and 1)
    move by ``running = (1 - momentum) * running + momentum * batch`` with the
    unbiased batch variance. Evaluation: the running statistics normalise.
    x: (N, num_features) -> out: same shape; gamma, beta: (D,) when ``affine``.
    """

    kind = "batch_norm"

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, *,
        dtype: Any = np.float64,
    ) -> None:
        D = check_features("BatchNorm1d", "num_features", num_features)
        super().__init__(D, eps, bool(affine), dtype)
        self.momentum = check_number("BatchNorm1d", "momentum", momentum)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum!r}")
        self.num_features, self.affine = D, bool(affine)
        self.buffers["running_mean"] = constant((D,), 0.0, self.dtype)
        self.buffers["running_var"] = constant((D,), 1.0, self.dtype)

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "dtype": self.dtype.name}

    def _check_input(self, x: Any) -> np.ndarray:
        D = self.num_features
        self._check_norm_input(x, D, 2, f"(N, {D})")
        if x.ndim != 2:
            raise ValueError(f"{self.where}: expected input (N, {D}), got shape {x.shape}; flatten other axes first")
        if self.training and x.shape[0] < 2:
            raise ValueError(
                f"{self.where}: training needs more than one sample per feature, got input shape {x.shape}; "
                f"pass a batch of N >= 2 or call eval() to use the running statistics"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        b = self.buffers
        out, cache, (mean, var) = F.batch_norm_forward(
            x, self.params.get("gamma"), self.params.get("beta"), b["running_mean"], b["running_var"],
            self.training, self.momentum, self.eps,
        )
        if self.training:  # in place: state_dict() and optimisers hold these very arrays
            np.copyto(b["running_mean"], mean)
            np.copyto(b["running_var"], var)
        return out, cache

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = F.batch_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx
