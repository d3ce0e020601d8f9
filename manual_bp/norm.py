"""Normalisation over the last axis or the batch: the LayerNorm, RMSNorm and BatchNorm1d pairs, then the layers
over them. The image norms (BatchNorm2d, GroupNorm, InstanceNorm2d) are in ``manual_bp.norm2d``."""

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
from manual_bp.init import constant
from manual_bp.module import Module

Cache = Any

# ---------------------------------------------------------------- normalisation


# --8<-- [start:layer_norm_pair]
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


def layer_norm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
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


# --8<-- [end:layer_norm_pair]


# --8<-- [start:rms_norm_pair]
def rms_norm_forward(x: np.ndarray, gamma: np.ndarray | None, eps: float) -> tuple[np.ndarray, Cache]:
    """Root-mean-square normalisation over the last axis, as torch's ``nn.RMSNorm(D)`` (``torch.rms_norm``)::

        ms = mean_d x^2,  rstd = 1 / sqrt(ms + eps),  xhat = x * rstd,  out = xhat * gamma

    (no mean is subtracted and there is no bias). x: (N, *, D), gamma: (D,) or None -> out: (N, *, D).
    Cache: (xhat, rstd, gamma).
    """
    ms = (x * x).mean(axis=-1, keepdims=True)  # (N, *, 1)
    rstd = 1.0 / np.sqrt(ms + eps)  # (N, *, 1)
    xhat = x * rstd  # (N, *, D)
    out = xhat * gamma if gamma is not None else xhat.copy()
    return out, (xhat, rstd, gamma)


def rms_norm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None]:
    """dxhat = dout * gamma,  dx = rstd * (dxhat - xhat * mean_d(dxhat * xhat)),
    dgamma = sum over N, * of dout * xhat.

    The second term of dx is the path through rstd: d rstd / dx_k = -rstd^3 x_k / D.
    dout: (N, *, D)  ->  dx: (N, *, D), dgamma: (D,) or None.
    """
    xhat, rstd, gamma = cache
    D = xhat.shape[-1]
    dxhat = dout * gamma if gamma is not None else dout  # (N, *, D)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)  # (N, *, 1)
    dx = rstd * (dxhat - xhat * mean_dxhat_xhat)  # (N, *, D)
    dgamma = (dout * xhat).reshape(-1, D).sum(axis=0) if gamma is not None else None  # (D,)
    return dx, dgamma


# --8<-- [end:rms_norm_pair]


# --8<-- [start:batch_norm_pair]
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


def batch_norm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
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


# --8<-- [end:batch_norm_pair]


# ---------------------------------------------------------------- layers


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
        return {
            "normalized_shape": self.normalized_shape,
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "dtype": self.dtype.name,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_norm_input(x, self.normalized_shape, 1, f"(..., {self.normalized_shape})")

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return layer_norm_forward(x, self.params.get("gamma"), self.params.get("beta"), self.eps)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = layer_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx


class RMSNorm(_Norm):
    """Root-mean-square normalisation over the last axis: out = x / sqrt(mean(x^2) + eps) * gamma, as torch's
    ``nn.RMSNorm(normalized_shape, eps, elementwise_affine)``.

    ``eps=None`` (torch's default) uses the machine epsilon of the input's dtype, ``np.finfo(x.dtype).eps``.
    x: (N, *, normalized_shape) -> out: same shape; gamma: (D,) when ``elementwise_affine`` (no bias).
    """

    kind = "rms_norm"

    def __init__(
        self,
        normalized_shape: int,
        eps: float | None = None,
        elementwise_affine: bool = True,
        *,
        dtype: Any = np.float64,
    ) -> None:
        D = check_features("RMSNorm", "normalized_shape", normalized_shape)
        super().__init__(D, 1.0, False, dtype)  # gamma alone is made below: RMSNorm has no beta
        self.eps = None if eps is None else check_number("RMSNorm", "eps", eps, positive=True)  # type: ignore[assignment]
        self.normalized_shape, self.elementwise_affine = D, bool(elementwise_affine)
        if self.elementwise_affine:
            self.params["gamma"] = constant((D,), 1.0, self.dtype)

    def config(self) -> dict[str, Any]:
        return {
            "normalized_shape": self.normalized_shape,
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "dtype": self.dtype.name,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_norm_input(x, self.normalized_shape, 1, f"(..., {self.normalized_shape})")

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        eps = float(np.finfo(x.dtype).eps) if self.eps is None else self.eps
        return rms_norm_forward(x, self.params.get("gamma"), eps)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma = rms_norm_backward(dout, cache)
        self._store_grads(dgamma, None)
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
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        *,
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
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "dtype": self.dtype.name,
        }

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
        out, cache, (mean, var) = batch_norm_forward(
            x,
            self.params.get("gamma"),
            self.params.get("beta"),
            b["running_mean"],
            b["running_var"],
            self.training,
            self.momentum,
            self.eps,
        )
        if self.training:  # in place: state_dict() and optimisers hold these very arrays
            np.copyto(b["running_mean"], mean)
            np.copyto(b["running_var"], var)
        return out, cache

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = batch_norm_backward(dout, cache)
        self._store_grads(dgamma, dbeta)
        return dx
