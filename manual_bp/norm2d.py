"""Normalisation of (N, C, *) images: the BatchNorm2d, GroupNorm and InstanceNorm2d pairs, then the layers.

Each is a LayerNorm or BatchNorm1d of ``manual_bp.norm`` on a view of the image, with one gamma and
beta per channel: BatchNorm2d normalises each channel over (N, H, W), the rows of the (N H W, C)
view; GroupNorm each sample's group of C / G channels over (C / G, *), a row of the (N, G, C / G *)
view; InstanceNorm2d each (sample, channel) over (H, W), GroupNorm with G = C.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual_bp._checks import (
    check_dtype_arg,
    check_features,
    check_float_array,
    check_ndim,
    check_nonempty,
    check_number,
    check_same_dtype,
)
from manual_bp.init import constant
from manual_bp.module import Module
from manual_bp.norm import batch_norm_backward, batch_norm_forward, layer_norm_backward, layer_norm_forward

Cache = Any


def _per_channel(p: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (C, 1, ..., 1): broadcast over the axes after the channel axis of an (N, C, *) array."""
    return p.reshape(-1, *(1,) * (ndim - 2))


def batch_norm2d_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, Cache, tuple[np.ndarray, np.ndarray]]:
    """Batch normalisation of each channel over (N, H, W), as torch's ``nn.BatchNorm2d(C)``::

        rows = x as (N H W, C),  out = batch_norm_forward(rows, ...) as (N, C, H, W)

    so mu_c = mean_{n,h,w} x, the biased variance normalises and the running variance takes the
    unbiased one (divisor N H W - 1). Evaluation normalises with the running statistics.
    x: (N, C, H, W), gamma, beta: (C,) or None, running_mean, running_var: (C,)
    ->  out: (N, C, H, W), cache, (running_mean', running_var').
    """
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)  # (N H W, C)
    out, cache, stats = batch_norm_forward(rows, gamma, beta, running_mean, running_var, training, momentum, eps)
    return np.ascontiguousarray(out.reshape(N, H, W, C).transpose(0, 3, 1, 2)), (cache, x.shape), stats


def batch_norm2d_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``batch_norm_backward`` on the (N H W, C) rows of dout, dx back to (N, C, H, W).

    dout: (N, C, H, W)  ->  dx: (N, C, H, W), dgamma, dbeta: (C,) or None.
    """
    rows_cache, (N, C, H, W) = cache
    drows = dout.transpose(0, 2, 3, 1).reshape(-1, C)  # (N H W, C)
    dx, dgamma, dbeta = batch_norm_backward(drows, rows_cache)
    return np.ascontiguousarray(dx.reshape(N, H, W, C).transpose(0, 3, 1, 2)), dgamma, dbeta


def group_norm_forward(
    x: np.ndarray, num_groups: int, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    """Group normalisation, as torch's ``nn.GroupNorm(G, C)``: each sample's G groups of C / G consecutive
    channels are normalised over (C / G, *) with their mean and biased variance, then scaled per channel::

        xhat = layer_norm(x as (N, G, C / G * L)) as (N, C, *),   out = xhat * gamma[c] + beta[c]

    x: (N, C, *), gamma, beta: (C,) or None  ->  out: (N, C, *). Cache: (xhat, the LayerNorm cache, gamma,
    has_beta).
    """
    N = x.shape[0]
    xg, ln_cache = layer_norm_forward(x.reshape(N, num_groups, -1), None, None, eps)  # (N, G, C / G L)
    xhat = xg.reshape(x.shape)  # (N, C, *)
    out = xhat * _per_channel(gamma, x.ndim) if gamma is not None else xhat.copy()
    if beta is not None:
        out += _per_channel(beta, x.ndim)
    return out, (xhat, ln_cache, gamma, beta is not None)


def group_norm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """dbeta[c] = sum_{n,*} dout,  dgamma[c] = sum_{n,*} dout * xhat,  dxhat = dout * gamma[c], then
    dx = layer_norm_backward of dxhat over each group's row (N, G, C / G * L).

    dout: (N, C, *)  ->  dx: (N, C, *), dgamma, dbeta: (C,) or None.
    """
    xhat, ln_cache, gamma, has_beta = cache
    sum_axes = (0, *range(2, dout.ndim))  # all but the channel axis
    dbeta = dout.sum(axis=sum_axes) if has_beta else None  # (C,)
    dgamma = (dout * xhat).sum(axis=sum_axes) if gamma is not None else None  # (C,)
    dxhat = dout * _per_channel(gamma, dout.ndim) if gamma is not None else dout  # (N, C, *)
    G = ln_cache[0].shape[1]
    dxg, _, _ = layer_norm_backward(dxhat.reshape(dout.shape[0], G, -1), ln_cache)  # (N, G, C / G L)
    return dxg.reshape(dout.shape), dgamma, dbeta


def instance_norm2d_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, Cache, tuple[np.ndarray, np.ndarray] | None]:
    """Instance normalisation, as torch's ``nn.InstanceNorm2d(C)``: each (sample, channel) over (H, W).

    With the input's statistics (training, or no running statistics): ``group_norm_forward`` with G = C,
    and, when running statistics are given, each moves by the batch mean of the per-instance ones::

        running_mean' = (1 - momentum) running_mean + momentum mean_n mu[n, c]
        running_var'  = (1 - momentum) running_var  + momentum mean_n var[n, c] H W / (H W - 1)  (unbiased)

    Otherwise (evaluation with running statistics): ``batch_norm2d_forward`` in evaluation mode.
    x: (N, C, H, W), gamma, beta: (C,) or None, running_mean, running_var: (C,) or None
    ->  out: (N, C, H, W), cache, (running_mean', running_var') or None (no running statistics).
    """
    if not use_input_stats:
        out, cache, stats = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, False, momentum, eps)
        return out, ("running", cache), stats
    out, cache = group_norm_forward(x, x.shape[1], gamma, beta, eps)
    if running_mean is None or running_var is None:
        return out, ("input", cache), None
    L = x.shape[2] * x.shape[3]
    mu = x.mean(axis=(2, 3))  # (N, C)
    var = x.var(axis=(2, 3)) * (L / (L - 1.0))  # (N, C), unbiased
    new_mean = (1.0 - momentum) * running_mean + momentum * mu.mean(axis=0)
    new_var = (1.0 - momentum) * running_var + momentum * var.mean(axis=0)
    return out, ("input", cache), (new_mean, new_var)


def instance_norm2d_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``group_norm_backward`` (the input's statistics) or ``batch_norm2d_backward`` (the running ones,
    constants: dx = dout * gamma * rstd). dout: (N, C, H, W)  ->  dx: (N, C, H, W), dgamma, dbeta: (C,) or None.
    """
    which, inner = cache
    return group_norm_backward(dout, inner) if which == "input" else batch_norm2d_backward(dout, inner)


# ---------------------------------------------------------------- layers


class _ImageNorm(Module):
    """Shared set-up: eps, dtype, gamma = 1 and beta = 0 per channel when affine, the input checks."""

    def __init__(self, C: int, eps: float, affine: bool, dtype: Any) -> None:
        super().__init__()
        where = type(self).__name__
        self.eps = check_number(where, "eps", eps, positive=True)
        self.dtype = check_dtype_arg(dtype, where)
        self.affine = bool(affine)
        if self.affine:
            self.params["gamma"] = constant((C,), 1.0, self.dtype)
            self.params["beta"] = constant((C,), 0.0, self.dtype)

    def _running(self, C: int, momentum: Any) -> None:
        """torch's running statistics: initially 0 and 1, ``running = (1 - momentum) running + momentum batch``."""
        self.momentum = check_number(type(self).__name__, "momentum", momentum)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1], got {momentum!r}")
        self.buffers["running_mean"] = constant((C,), 0.0, self.dtype)
        self.buffers["running_var"] = constant((C,), 1.0, self.dtype)

    def _check_image_input(self, x: Any, C: int, ndim: int | None, layout: str) -> np.ndarray:
        check_float_array(x, self.where)
        if ndim is not None:
            check_ndim(x, ndim, self.where, layout=layout)
        elif x.ndim < 2:
            raise ValueError(f"{self.where}: input must be {layout}, got shape {x.shape}")
        if x.shape[1] != C:
            raise ValueError(
                f"{self.where}: expected input {layout}, got shape {x.shape}: axis 1 must hold the {C} channels"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _store(self, dgamma: np.ndarray | None, dbeta: np.ndarray | None) -> None:
        if dgamma is not None:
            self.grads["gamma"] = dgamma
        if dbeta is not None:
            self.grads["beta"] = dbeta

    def _update(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        if stats is not None and self.training:  # in place: state_dict() and optimisers hold these very arrays
            np.copyto(self.buffers["running_mean"], stats[0])
            np.copyto(self.buffers["running_var"], stats[1])


class BatchNorm2d(_ImageNorm):
    """Normalise each channel over (N, H, W), as torch's ``nn.BatchNorm2d(num_features)``.

    Training: batch mean and biased variance normalise; the running statistics (``buffers``, initially
    0 and 1) move by ``running = (1 - momentum) running + momentum batch`` with the unbiased variance
    (divisor N H W - 1); evaluation normalises with them. With ``track_running_stats=False`` there are
    none and the batch's own statistics normalise in both modes, as torch.
    x: (N, C, H, W) -> same shape; gamma, beta: (C,) when affine.
    """

    kind = "batch_norm2d"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = np.float64,
    ) -> None:
        C = check_features("BatchNorm2d", "num_features", num_features)
        super().__init__(C, eps, affine, dtype)
        self.num_features, self.track_running_stats = C, bool(track_running_stats)
        self.momentum = check_number("BatchNorm2d", "momentum", momentum)
        if self.track_running_stats:
            self._running(C, momentum)

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "dtype": self.dtype.name,
        }

    @property
    def _batch_stats(self) -> bool:
        return self.training or not self.track_running_stats

    def _check_input(self, x: Any) -> np.ndarray:
        C = self.num_features
        self._check_image_input(x, C, 4, f"(N, {C}, H, W)")
        if self._batch_stats and x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                f"{self.where}: batch statistics need more than one value per channel, got input shape {x.shape}; "
                f"pass N H W >= 2 or call eval() to use the running statistics"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        C = self.num_features
        rm = self.buffers.get("running_mean", np.zeros(C, self.dtype))  # unused without running statistics
        rv = self.buffers.get("running_var", np.ones(C, self.dtype))
        out, cache, stats = batch_norm2d_forward(
            x, self.params.get("gamma"), self.params.get("beta"), rm, rv, self._batch_stats, self.momentum, self.eps
        )
        if self.track_running_stats:
            self._update(stats)
        return out, cache

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = batch_norm2d_backward(dout, cache)
        self._store(dgamma, dbeta)
        return dx


class GroupNorm(_ImageNorm):
    """Normalise each sample's groups of num_channels / num_groups channels, as torch's
    ``nn.GroupNorm(num_groups, num_channels, eps, affine)`` (no running statistics; the same in training
    and evaluation). x: (N, C, *) -> same shape; gamma, beta: (C,) when affine."""

    kind = "group_norm"

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *, dtype: Any = np.float64
    ) -> None:
        G = check_features("GroupNorm", "num_groups", num_groups)
        C = check_features("GroupNorm", "num_channels", num_channels)
        if C % G:
            raise ValueError(f"GroupNorm: num_channels={C} must be divisible by num_groups={G}")
        super().__init__(C, eps, affine, dtype)
        self.num_groups, self.num_channels = G, C

    def config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_channels": self.num_channels,
            "eps": self.eps,
            "affine": self.affine,
            "dtype": self.dtype.name,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        self._check_image_input(x, self.num_channels, None, f"(N, {self.num_channels}, *)")
        if x.size // self.num_groups == 1:  # torch's check: N (C / G) * spatial must exceed 1
            raise ValueError(
                f"{self.where}: expected more than one value per group over the batch, got input "
                f"shape {x.shape} with {self.num_groups} groups"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return group_norm_forward(x, self.num_groups, self.params.get("gamma"), self.params.get("beta"), self.eps)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = group_norm_backward(dout, cache)
        self._store(dgamma, dbeta)
        return dx


class InstanceNorm2d(_ImageNorm):
    """Normalise each (sample, channel) over (H, W), as torch's ``nn.InstanceNorm2d(num_features, eps,
    momentum, affine=False, track_running_stats=False)``.

    With ``track_running_stats`` the running statistics (``buffers``, initially 0 and 1) move in training
    by the batch mean of the per-instance mean and unbiased variance, and normalise in evaluation;
    without, the input's own statistics always normalise. x: (N, C, H, W) -> same shape.
    """

    kind = "instance_norm2d"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        dtype: Any = np.float64,
    ) -> None:
        C = check_features("InstanceNorm2d", "num_features", num_features)
        super().__init__(C, eps, affine, dtype)
        self.num_features, self.track_running_stats = C, bool(track_running_stats)
        self.momentum = check_number("InstanceNorm2d", "momentum", momentum)
        if self.track_running_stats:
            self._running(C, momentum)

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "dtype": self.dtype.name,
        }

    @property
    def _input_stats(self) -> bool:
        return self.training or not self.track_running_stats

    def _check_input(self, x: Any) -> np.ndarray:
        C = self.num_features
        self._check_image_input(x, C, 4, f"(N, {C}, H, W)")
        if self._input_stats and x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                f"{self.where}: instance statistics need more than one spatial element, got input "
                f"shape {x.shape}; pass H W >= 2"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        b = self.buffers
        out, cache, stats = instance_norm2d_forward(
            x,
            self.params.get("gamma"),
            self.params.get("beta"),
            b.get("running_mean"),
            b.get("running_var"),
            self._input_stats,
            self.momentum,
            self.eps,
        )
        self._update(stats)
        return out, cache

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, dgamma, dbeta = instance_norm2d_backward(dout, cache)
        self._store(dgamma, dbeta)
        return dx
