"""Losses: a fused, numerically stable forward/backward pair each, and a thin class.

Every loss maps predictions of shape (N, ...) and targets to a scalar L.
``reduction="mean"`` divides the sum by N for cross-entropy (the batch) and by
the number of elements for MSE and binary cross-entropy, exactly as torch does;
``reduction="sum"`` does not divide. The backward takes ``dloss`` = dJ/dL for
an outer objective J (1.0 for plain training) and returns dJ/d(predictions).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from manual_bp._checks import (
    StateError,
    check_float_array,
    check_ndim,
    check_nonempty,
    check_shape,
)
from manual_bp.activations import _sigmoid, log_softmax_forward

Cache = Any
_REDUCTIONS = ("mean", "sum")

# ---------------------------------------------------------------- pairs


# --8<-- [start:softmax_cross_entropy_pair]
def softmax_cross_entropy_forward(
    z: np.ndarray, y: np.ndarray, reduction: str = "mean", label_smoothing: float = 0.0
) -> tuple[np.floating, Cache]:
    """L = reduce_n( -sum_c t_nc * log_softmax(z)_nc ), torch's ``F.cross_entropy``.

    z: (N, C) logits. y: (N,) integer class labels, or (N, C) class probabilities.
    With label smoothing eps the target is t = (1 - eps) * y + eps / C (y one-hot
    for integer labels). log_softmax uses log-sum-exp, so logits of any size give
    a finite loss. Cache: (p = softmax(z), y, eps, 1/N or 1).
    """
    N, C = z.shape
    logp, p = log_softmax_forward(z)  # (N, C) each
    eps = label_smoothing
    if y.ndim == 1:  # integer labels: never build a one-hot matrix
        picked = logp[np.arange(N), y]  # (N,)
        nll = -(1 - eps) * picked
        if eps:
            nll = nll - (eps / C) * logp.sum(axis=1)
        target = y
    else:  # class probabilities
        target = (1 - eps) * y + eps / C if eps else y  # (N, C)
        nll = -(target * logp).sum(axis=1)  # (N,)
    scale = 1.0 / N if reduction == "mean" else 1.0
    return nll.sum() * scale, (p, target, eps, scale)


def softmax_cross_entropy_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dz = dloss * scale * (p * sum_c t_nc - t),  scale = 1/N for the mean.

    For integer labels sum_c t_nc = 1, so dz = dloss * scale * (p - t): the
    softmax Jacobian and the log cancel, which is why the fused rule is stable.
    """
    p, target, eps, scale = cache
    N, C = p.shape
    if target.ndim == 1:
        dz = p - eps / C if eps else p.copy()  # (N, C)
        dz[np.arange(N), target] -= 1 - eps
    else:
        dz = p * target.sum(axis=1, keepdims=True) - target  # (N, C)
    dz *= dloss * scale
    return dz
# --8<-- [end:softmax_cross_entropy_pair]


# --8<-- [start:mse_pair]
def mse_forward(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[np.floating, Cache]:
    """L = reduce( (x - t)^2 ),  mean over all elements (torch's ``MSELoss``). Cache: (x - t, scale)."""
    r = x - t
    scale = 1.0 / r.size if reduction == "mean" else 1.0
    return (r * r).sum() * scale, (r, scale)


def mse_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx = dloss * scale * 2 (x - t)."""
    r, scale = cache
    return (2 * dloss * scale) * r
# --8<-- [end:mse_pair]


# --8<-- [start:bce_with_logits_pair]
def bce_with_logits_forward(
    z: np.ndarray, t: np.ndarray, reduction: str = "mean"
) -> tuple[np.floating, Cache]:
    """L = reduce( max(z, 0) - z t + log(1 + exp(-|z|)) ),  torch's ``BCEWithLogitsLoss``.

    That is -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))] rewritten so that
    exp is only taken of -|z|: finite for logits of any size. Cache: (sigmoid(z), t, scale).
    """
    per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    scale = 1.0 / z.size if reduction == "mean" else 1.0
    return per.sum() * scale, (_sigmoid(z), t, scale)


def bce_with_logits_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dz = dloss * scale * (sigmoid(z) - t)."""
    s, t, scale = cache
    return (dloss * scale) * (s - t)
# --8<-- [end:bce_with_logits_pair]


# ---------------------------------------------------------------- classes


class Loss:
    """Base class: ``forward(pred, target) -> L`` then ``backward(dloss=1.0) -> dpred``."""

    kind: ClassVar[str] = ""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{self._where}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._cache: Cache = None

    @property
    def _where(self) -> str:
        return type(self).__name__

    def config(self) -> dict[str, Any]:
        """Hyperparameters as plain data (read by ``crosscheck.spec``)."""
        return {"reduction": self.reduction}

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        return self.forward(pred, target)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def _check_pred(self, pred: Any, ndim: int | None = None) -> np.ndarray:
        check_float_array(pred, self._where, "predictions")
        if ndim is not None:
            check_ndim(pred, ndim, self._where, "predictions")
        check_nonempty(pred, self._where, "predictions")
        return pred

    def _check_float_target(self, pred: np.ndarray, target: Any) -> np.ndarray:
        check_float_array(target, self._where, "target")
        check_shape(target, pred.shape, self._where, "target (same as the predictions)")
        if target.dtype != pred.dtype:
            raise TypeError(
                f"{self._where}: target dtype {target.dtype} does not match the predictions' "
                f"dtype {pred.dtype}; cast the target"
            )
        return target

    def _backward_cache(self, dloss: Any) -> Cache:
        if self._cache is None:
            raise StateError(f"{self._where}: backward() called before forward()")
        if not isinstance(dloss, (int, float, np.integer, np.floating)) or not np.isfinite(dloss):
            raise ValueError(f"{self._where}: dloss must be a finite scalar, got {dloss!r}")
        return self._cache

    def _backward(self, rule: Any, dloss: Any) -> np.ndarray:
        cache = self._backward_cache(dloss)
        return rule(float(dloss), cache)  # a Python float keeps float32 gradients float32


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused: ``F.cross_entropy(z, y, label_smoothing=...)``.

    pred: (N, C) logits; target: (N,) integer labels in [0, C) or (N, C) class
    probabilities of the logits' dtype. See ``softmax_cross_entropy_forward``.
    """

    kind = "softmax_cross_entropy"

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0):
            raise ValueError(
                f"SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "label_smoothing": self.label_smoothing}

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L for logits (N, C) and labels (N,) or probabilities (N, C)."""
        self._cache = None  # a forward that raises leaves no earlier gradient behind
        z = self._check_pred(pred, ndim=2)
        y = self._check_target(z, target)
        loss, self._cache = softmax_cross_entropy_forward(z, y, self.reduction, self.label_smoothing)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dz, shape (N, C)."""
        return self._backward(softmax_cross_entropy_backward, dloss)

    def _check_target(self, z: np.ndarray, y: Any) -> np.ndarray:
        N, C = z.shape
        if not isinstance(y, np.ndarray):
            raise TypeError(
                f"{self._where}: target must be a numpy.ndarray of integer labels (N,) "
                f"or class probabilities (N, C), got {type(y).__name__}"
            )
        if y.ndim == 2 and y.dtype.kind in "iub":  # e.g. (N, 1) labels: a shape slip, not a dtype one
            raise ValueError(
                f"{self._where}: integer labels must be 1-D (N,)={(N,)}, got shape {y.shape}; "
                f"use y.reshape(-1) (or pass (N, C)={z.shape} float probabilities)"
            )
        if y.ndim == 2:
            return self._check_float_target(z, y)
        if y.ndim != 1:
            raise ValueError(
                f"{self._where}: target must be (N,)={N,} labels or (N, C)={z.shape} "
                f"probabilities, got shape {y.shape}"
            )
        if y.dtype.kind not in "iu":
            raise TypeError(
                f"{self._where}: integer labels must have an integer dtype, got {y.dtype}; "
                f"use y.astype(np.int64) (or pass (N, C) probabilities)"
            )
        if y.shape[0] != N:
            raise ValueError(f"{self._where}: {y.shape[0]} labels for a batch of {N} logits")
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= C:
            raise ValueError(f"{self._where}: labels must lie in [0, {C}), got min {lo}, max {hi}")
        return y


class MSE(Loss):
    """Mean squared error, torch's ``nn.MSELoss``: pred and target of the same shape and dtype."""

    kind = "mse"

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L = mean or sum of (pred - target)^2."""
        self._cache = None
        x = self._check_pred(pred)
        t = self._check_float_target(x, target)
        loss, self._cache = mse_forward(x, t, self.reduction)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dpred, same shape as pred."""
        return self._backward(mse_backward, dloss)


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits, torch's ``nn.BCEWithLogitsLoss``; targets in [0, 1]."""

    kind = "bce_with_logits"

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L = mean or sum of the elementwise binary cross-entropy."""
        self._cache = None
        z = self._check_pred(pred)
        t = self._check_float_target(z, target)
        if not np.all((t >= 0) & (t <= 1)):
            raise ValueError(f"{self._where}: targets must lie in [0, 1]")
        loss, self._cache = bce_with_logits_forward(z, t, self.reduction)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dz, same shape as z."""
        return self._backward(bce_with_logits_backward, dloss)
