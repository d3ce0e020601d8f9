"""Losses: a fused, numerically stable forward/backward pair each, and a thin class.

Every loss maps predictions of shape (N, ...) and targets to a scalar L.
``reduction="mean"`` divides the sum by N for cross-entropy (the batch) and by
the number of elements for MSE and binary cross-entropy, exactly as torch does;
``reduction="sum"`` does not divide. The backward takes ``dloss`` = dJ/dL for
an outer objective J (1.0 for plain training) and returns dJ/d(predictions).

Its length (over 400 lines) is one family kept whole: each loss's fused pair beside its class, as the
placement rule asks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from manual_bp._checks import (
    StateError,
    check_float_array,
    check_ndim,
    check_nonempty,
    check_number,
    check_shape,
)
from manual_bp.activations import _sigmoid, log_softmax_forward

Cache = Any
_REDUCTIONS = ("mean", "sum")

# ---------------------------------------------------------------- pairs


def _class_last(z: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (M, C) with M = N d1 ...: one row per prediction (a view for (N, C))."""
    return z if z.ndim == 2 else np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])


def _class_back(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(M, C) -> (N, C, d1, ...), the inverse of ``_class_last``."""
    if len(shape) == 2:
        return g
    N, C, *d = shape
    return np.ascontiguousarray(np.moveaxis(g.reshape(N, *d, C), -1, 1))


def _label_weights(
    y: np.ndarray, weight: np.ndarray | None, ignore_index: int, dtype: np.dtype, reduction: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """For labels y (M,): (valid (M,), y with ignored rows set to 0, w[y] (0 where ignored), scale, gscale).

    scale = 1 / sum of w[y] over the labels not ignored for the mean (torch's weighted mean), 1 for
    the sum. A mean over zero total weight is NaN, as in torch: the loss's scale is NaN, the
    gradient's too unless every label is ignored (then the gradient is zero).
    """
    valid = y != ignore_index  # (M,)
    yv = np.where(valid, y, 0)
    wy = valid.astype(dtype) if weight is None else np.where(valid, weight[yv], 0).astype(dtype)  # (M,)
    if reduction != "mean":
        return valid, yv, wy, 1.0, 1.0
    total = float(wy.sum())
    if total:
        return valid, yv, wy, 1.0 / total, 1.0 / total
    return valid, yv, wy, np.nan, (np.nan if valid.any() else 0.0)


# --8<-- [start:softmax_cross_entropy_pair]
def softmax_cross_entropy_forward(
    z: np.ndarray,
    y: np.ndarray,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
) -> tuple[np.floating, Cache]:
    """L = reduce_n( -sum_c w_c t_nc * log_softmax(z)_nc ), torch's ``F.cross_entropy``.

    z: (N, C) or (N, C, d1, ...) logits; y: integer labels (N,) or (N, d1, ...), or class
    probabilities of z's shape. With label smoothing eps the target is t = (1 - eps) * y + eps / C
    (y one-hot for labels). weight: (C,) class weights w (default 1). Labels equal to
    ``ignore_index`` add nothing. The mean divides the sum by sum_n w[y_n] over the labels not
    ignored (torch's weighted mean; the number of labels without weights) and by the number of
    rows N d1 ... for probabilities. log_softmax uses log-sum-exp, so logits of any size give a
    finite loss. Cache: (p = softmax(z) (M, C), labels or target, the row coefficients, w, z.shape).
    """
    shape, C = z.shape, z.shape[1]
    logp, p = log_softmax_forward(_class_last(z))  # (M, C) each
    M, eps = p.shape[0], label_smoothing
    w = None if weight is None else weight.astype(z.dtype)  # (C,)
    if y.ndim == z.ndim - 1:  # integer labels: never build a one-hot matrix
        valid, yv, wy, scale, gscale = _label_weights(y.reshape(-1), w, ignore_index, z.dtype, reduction)
        nll = -(1 - eps) * wy * logp[np.arange(M), yv]  # (M,)
        if eps:
            smooth = logp.sum(axis=1) if w is None else logp @ w  # (M,) sum_c w_c log p_nc
            nll = nll - (eps / C) * np.where(valid, smooth, 0)
        return nll.sum() * scale, (p, (yv, valid, wy), eps, gscale, w, shape)
    target = _class_last(y)  # class probabilities (M, C)
    target = (1 - eps) * target + eps / C if eps else target
    tw = target if w is None else target * w  # (M, C) w_c t_nc
    nll = -(tw * logp).sum(axis=1)  # (M,)
    scale = 1.0 / M if reduction == "mean" else 1.0
    return nll.sum() * scale, (p, tw, eps, scale, w, shape)


def softmax_cross_entropy_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dz = dloss * scale * (p * sum_c w_c t_nc - w t),  scale = 1 / (sum of w[y]) or 1/rows for the mean.

    For integer labels without weights sum_c t_nc = 1, so dz = dloss * scale * (p - t): the
    softmax Jacobian and the log cancel, which is why the fused rule is stable. Ignored labels get
    zero rows. Shape: z's.
    """
    p, target, eps, scale, w, shape = cache
    M, C = p.shape
    rows = np.arange(M)
    if isinstance(target, tuple):  # labels: t = (1 - eps) e_y + eps / C, weighted by w[y] and w_c
        yv, valid, wy = target
        if w is None:
            dz = p - eps / C if eps else p.copy()  # (M, C)
            dz[rows, yv] -= 1 - eps
            dz *= (dloss * scale) * (valid[:, None] if not valid.all() else 1.0)
        else:
            a = (1 - eps) * wy  # (M,) the weight of the label's term
            b = (eps / C) * valid.astype(p.dtype)  # (M,) the weight of the smoothing terms
            dz = p * (a + b * w.sum())[:, None] - b[:, None] * w  # (M, C)
            dz[rows, yv] -= a
            dz *= dloss * scale
    else:
        dz = p * target.sum(axis=1, keepdims=True) - target  # (M, C)
        dz *= dloss * scale
    return _class_back(dz, shape)


# --8<-- [end:softmax_cross_entropy_pair]


# --8<-- [start:nll_pair]
def nll_forward(
    x: np.ndarray,
    y: np.ndarray,
    reduction: str = "mean",
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
) -> tuple[np.floating, Cache]:
    """L = reduce_n( -w[y_n] x[n, y_n] ), torch's ``F.nll_loss`` on log-probabilities x.

    x: (N, C) or (N, C, d1, ...); y: labels (N,) or (N, d1, ...). The mean divides by sum_n w[y_n]
    over the labels not equal to ``ignore_index``. Cache: (y, -w[y] scale (M,), x.shape).
    """
    xr = _class_last(x)  # (M, C)
    w = None if weight is None else weight.astype(x.dtype)  # (C,)
    _, yv, wy, scale, gscale = _label_weights(y.reshape(-1), w, ignore_index, x.dtype, reduction)
    return -(wy * xr[np.arange(xr.shape[0]), yv]).sum() * scale, (yv, wy * gscale, x.shape)


def nll_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx[n, y_n] = -dloss * scale * w[y_n], zero elsewhere. Shape: x's."""
    yv, coef, shape = cache
    dx = np.zeros((coef.shape[0], shape[1]), coef.dtype)  # (M, C)
    dx[np.arange(coef.shape[0]), yv] = -dloss * coef
    return _class_back(dx, shape)


# --8<-- [end:nll_pair]


# --8<-- [start:multi_margin_pair]
def multi_margin_forward(
    x: np.ndarray,
    y: np.ndarray,
    p: int = 1,
    margin: float = 1.0,
    weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[np.floating, Cache]:
    """L = reduce_n( w[y_n] / C * sum_{i != y_n} max(0, margin - x[n, y_n] + x[n, i])^p ), torch's
    ``F.multi_margin_loss`` (p = 1 or 2; the mean divides by N; the weight multiplies the power).

    x: (N, C) scores; y: (N,) labels. The true class is not a term. Cache: (y, u (N, C) with u = 0
    where not counted, p, w[y] scale / C (N,)).
    """
    N, C = x.shape
    rows = np.arange(N)
    u = margin - x[rows, y][:, None] + x  # (N, C) the hinge's argument
    u[rows, y] = 0  # i = y is no term
    u = np.maximum(u, 0)  # only u > 0 counts: at u = 0 the term and its derivative are 0; NaN stays NaN
    wy = np.ones(N, x.dtype) if weight is None else weight.astype(x.dtype)[y]  # (N,)
    scale = 1.0 / N if reduction == "mean" else 1.0
    coef = wy * (scale / C)  # (N,)
    h = u if p == 1 else u * u
    return (h.sum(axis=1) * coef).sum(), (y, u, p, coef)


def multi_margin_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx[n, i] = dloss c_n h'(u_ni) for i != y_n (h' = [u > 0] for p = 1, 2u for p = 2),
    dx[n, y_n] = -sum_{i != y_n} dx[n, i]; c_n = w[y_n] scale / C. Shape (N, C)."""
    y, u, p, coef = cache
    g = (u > 0) + 0 * u if p == 1 else 2 * u  # (N, C), zero at y; 0 * u carries a NaN score to its gradient
    g *= (dloss * coef)[:, None]
    g[np.arange(u.shape[0]), y] = -g.sum(axis=1)
    return g


# --8<-- [end:multi_margin_pair]


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
def bce_with_logits_forward(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[np.floating, Cache]:
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


# --8<-- [start:l1_pair]
def l1_forward(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[np.floating, Cache]:
    """L = reduce( |x - t| ), mean over all elements (torch's ``L1Loss``). Cache: (x - t, scale)."""
    r = x - t
    scale = 1.0 / r.size if reduction == "mean" else 1.0
    return np.abs(r).sum() * scale, (r, scale)


def l1_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx = dloss * scale * sign(x - t); 0 where x = t (torch's convention at the kink)."""
    r, scale = cache
    return (dloss * scale) * np.sign(r)


# --8<-- [end:l1_pair]


# --8<-- [start:huber_pair]
def huber_forward(
    x: np.ndarray, t: np.ndarray, reduction: str = "mean", delta: float = 1.0
) -> tuple[np.floating, Cache]:
    """L = reduce( r^2 / 2 if |r| < delta else delta (|r| - delta / 2) ), r = x - t (torch's ``HuberLoss``).

    Cache: (r, delta, scale).
    """
    r = x - t
    a = np.abs(r)
    per = np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    scale = 1.0 / r.size if reduction == "mean" else 1.0
    return per.sum() * scale, (r, delta, scale)


def huber_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx = dloss * scale * clip(r, -delta, delta): continuous, so |r| = delta needs no convention."""
    r, delta, scale = cache
    return (dloss * scale) * np.clip(r, -delta, delta)


# --8<-- [end:huber_pair]


# --8<-- [start:smooth_l1_pair]
def smooth_l1_forward(
    x: np.ndarray, t: np.ndarray, reduction: str = "mean", beta: float = 1.0
) -> tuple[np.floating, Cache]:
    """L = reduce( r^2 / (2 beta) if |r| < beta else |r| - beta / 2 ), r = x - t (torch's ``SmoothL1Loss``).

    beta = 0 is the L1 loss. Cache: (r, beta, scale).
    """
    r = x - t
    a = np.abs(r)
    per = a if beta == 0 else np.where(a < beta, 0.5 * r * r / beta, a - 0.5 * beta)
    scale = 1.0 / r.size if reduction == "mean" else 1.0
    return per.sum() * scale, (r, beta, scale)


def smooth_l1_backward(dloss: float, cache: Cache) -> np.ndarray:
    """dx = dloss * scale * clip(r / beta, -1, 1); sign(r) for beta = 0 (0 at r = 0, as L1)."""
    r, beta, scale = cache
    g = np.sign(r) if beta == 0 else np.clip(r / beta, -1, 1)
    return (dloss * scale) * g


# --8<-- [end:smooth_l1_pair]


# ---------------------------------------------------------------- classes


class Loss:
    """Base class: ``forward(pred, target) -> L`` then ``backward(dloss=1.0) -> dpred``."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Loss]]] = {}  # kind -> class, as ``Module.registry``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Loss.registry[cls.kind] = cls

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
        def show(v: Any) -> str:
            array = isinstance(v, np.ndarray)
            return np.array2string(v, precision=3, threshold=6, separator=", ") if array else repr(v)

        args = ", ".join(f"{k}={show(v)}" for k, v in self.config().items())
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


def _class_weight(where: str, weight: Any) -> np.ndarray | None:
    """A (C,) array of finite class weights, copied as float64 (cast to the predictions' dtype in
    the forward, as torch needs a weight of the input's dtype), or None."""
    if weight is None:
        return None
    if not isinstance(weight, np.ndarray) or weight.dtype.kind not in "fiu" or weight.ndim != 1:
        raise TypeError(f"{where}: weight must be None or a 1-D numpy array of C class weights, got {weight!r}")
    if weight.size == 0 or not np.all(np.isfinite(weight)):
        raise ValueError(f"{where}: weight must hold C >= 1 finite class weights, got {weight!r}")
    return np.array(weight, dtype=np.float64)


def _ignore_index(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: ignore_index must be an int, got {value!r}")
    return int(value)


class _LabelLoss(Loss):
    """A loss on class scores (N, C) or (N, C, d1, ...) and integer labels (N,) or (N, d1, ...)."""

    def __init__(self, reduction: str = "mean", weight: np.ndarray | None = None, ignore_index: int = -100) -> None:
        super().__init__(reduction)
        self.weight = _class_weight(self._where, weight)
        self.ignore_index = _ignore_index(self._where, ignore_index)

    def _check_scores(self, pred: Any) -> np.ndarray:
        z = self._check_pred(pred)
        if z.ndim < 2:
            check_ndim(z, 2, self._where, "predictions")
        if self.weight is not None and self.weight.shape[0] != z.shape[1]:
            raise ValueError(
                f"{self._where}: weight has {self.weight.shape[0]} class weights, the predictions "
                f"{z.shape[1]} classes (shape {z.shape}, classes on axis 1)"
            )
        return z

    def _check_labels(self, z: np.ndarray, y: np.ndarray, ignore: int | None) -> np.ndarray:
        """y if it is an integer array of shape (N, d1, ...) with entries in [0, C) or ``ignore``."""
        N, C = z.shape[:2]
        want = (N, *z.shape[2:])
        if y.ndim == z.ndim and y.dtype.kind in "iub":  # e.g. (N, 1) labels: a shape slip, not a dtype one
            raise ValueError(
                f"{self._where}: integer labels must be {len(want)}-D {'(N,)=' if z.ndim == 2 else ''}{want}, "
                f"got shape {y.shape}; use y.reshape{want if z.ndim > 2 else '(-1)'}"
                + (f" (or pass {z.shape} float probabilities)" if self.kind == "softmax_cross_entropy" else "")
            )
        if y.ndim != len(want):
            raise ValueError(
                f"{self._where}: labels must have shape {want} for predictions {z.shape}, got shape {y.shape}"
            )
        if y.dtype.kind not in "iu":
            raise TypeError(
                f"{self._where}: integer labels must have an integer dtype, got {y.dtype}; use y.astype(np.int64)"
            )
        if y.shape != want:
            if z.ndim == 2:
                raise ValueError(f"{self._where}: {y.shape[0]} labels for a batch of {N} logits")
            raise ValueError(f"{self._where}: labels must have shape {want}, got {y.shape}")
        counted = y if ignore is None else y[y != ignore]
        if counted.size:
            lo, hi = counted.min(), counted.max()
            if lo < 0 or hi >= C:
                skip = f" (labels equal to ignore_index={ignore} are skipped)" if ignore is not None else ""
                raise ValueError(f"{self._where}: labels must lie in [0, {C}), got min {lo}, max {hi}{skip}")
        return y


class SoftmaxCrossEntropy(_LabelLoss):
    """Softmax followed by cross-entropy, fused: torch's ``F.cross_entropy(z, y, weight, ignore_index,
    label_smoothing=...)``.

    pred: (N, C) or (N, C, d1, ...) logits; target: integer labels (N,) or (N, d1, ...) in [0, C)
    (or equal to ``ignore_index``), or class probabilities of the logits' shape and dtype.
    weight: (C,) class weights; the mean over labels is weighted (sum w[y] l / sum w[y]).
    See ``softmax_cross_entropy_forward``.
    """

    kind = "softmax_cross_entropy"

    def __init__(
        self,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        weight: np.ndarray | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(reduction, weight, ignore_index)
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def config(self) -> dict[str, Any]:
        """reduction and label_smoothing; weight and ignore_index only when they are not the defaults."""
        config: dict[str, Any] = {"reduction": self.reduction, "label_smoothing": self.label_smoothing}
        if self.weight is not None:
            config["weight"] = self.weight.copy()
        if self.ignore_index != -100:
            config["ignore_index"] = self.ignore_index
        return config

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L for logits (N, C, ...) and labels (N, ...) or probabilities (N, C, ...)."""
        self._cache = None  # a forward that raises leaves no earlier gradient behind
        z = self._check_scores(pred)
        y = self._check_target(z, target)
        loss, self._cache = softmax_cross_entropy_forward(
            z, y, self.reduction, self.label_smoothing, self.weight, self.ignore_index
        )
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dz, the logits' shape."""
        return self._backward(softmax_cross_entropy_backward, dloss)

    def _check_target(self, z: np.ndarray, y: Any) -> np.ndarray:
        N = z.shape[0]
        if not isinstance(y, np.ndarray):
            raise TypeError(
                f"{self._where}: target must be a numpy.ndarray of integer labels {(N, *z.shape[2:])} "
                f"or class probabilities {z.shape}, got {type(y).__name__}"
            )
        if y.ndim == z.ndim and y.dtype.kind not in "iub":
            return self._check_float_target(z, y)
        if z.ndim == 2 and y.ndim not in (1, 2):
            raise ValueError(
                f"{self._where}: target must be (N,)={(N,)} labels or (N, C)={z.shape} "
                f"probabilities, got shape {y.shape}"
            )
        return self._check_labels(z, y, self.ignore_index)


class NLLLoss(_LabelLoss):
    """Negative log-likelihood of log-probabilities, torch's ``nn.NLLLoss(weight, ignore_index=-100, reduction)``.

    pred: (N, C) or (N, C, d1, ...) log-probabilities (e.g. a ``LogSoftmax`` output); target:
    integer labels (N,) or (N, d1, ...) in [0, C) or equal to ``ignore_index``. See ``nll_forward``.
    """

    kind = "nll"

    def __init__(self, weight: np.ndarray | None = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction, weight, ignore_index)

    def config(self) -> dict[str, Any]:
        return {
            "weight": None if self.weight is None else self.weight.copy(),
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
        }

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L for log-probabilities (N, C, ...) and labels (N, ...)."""
        self._cache = None
        x = self._check_scores(pred)
        if not isinstance(target, np.ndarray):
            raise TypeError(
                f"{self._where}: target must be a numpy.ndarray of integer labels "
                f"{(x.shape[0], *x.shape[2:])}, got {type(target).__name__}"
            )
        y = self._check_labels(x, target, self.ignore_index)
        loss, self._cache = nll_forward(x, y, self.reduction, self.weight, self.ignore_index)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dx, the predictions' shape."""
        return self._backward(nll_backward, dloss)


class MultiMarginLoss(_LabelLoss):
    """Multi-class hinge loss, torch's ``nn.MultiMarginLoss(p=1, margin=1.0, weight=None, reduction)``.

    pred: (N, C) scores; target: (N,) labels in [0, C). p is 1 or 2. At the hinge (u = 0) the
    derivative is 0, as torch takes it. See ``multi_margin_forward``.
    """

    kind = "multi_margin"

    def __init__(
        self, p: int = 1, margin: float = 1.0, weight: np.ndarray | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction, weight)
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 are supported (as torch), got {p!r}")
        self.p = int(p)
        self.margin = check_number("MultiMarginLoss", "margin", margin)

    def config(self) -> dict[str, Any]:
        return {
            "p": self.p,
            "margin": self.margin,
            "weight": None if self.weight is None else self.weight.copy(),
            "reduction": self.reduction,
        }

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L for scores (N, C) and labels (N,)."""
        self._cache = None
        x = self._check_scores(pred)
        check_ndim(x, 2, self._where, "predictions", "(N, C)")
        if not isinstance(target, np.ndarray):
            raise TypeError(
                f"{self._where}: target must be a numpy.ndarray of integer labels "
                f"({x.shape[0]},), got {type(target).__name__}"
            )
        y = self._check_labels(x, target, None)
        loss, self._cache = multi_margin_forward(x, y, self.p, self.margin, self.weight, self.reduction)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dx, shape (N, C)."""
        return self._backward(multi_margin_backward, dloss)


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


class _Elementwise(Loss):
    """A loss on predictions and float targets of the same shape and dtype, mean over all elements.
    A subclass names its pair in ``_pair`` (looked up when called, so the pair can be swapped in tests)."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> np.floating:
        """L = mean or sum of the elementwise loss."""
        self._cache = None
        x = self._check_pred(pred)
        t = self._check_float_target(x, target)
        loss, self._cache = self._pair_forward(x, t)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        """dL/dpred, same shape as pred."""
        return self._backward(self._pair_backward, dloss)

    def _pair_forward(self, x: np.ndarray, t: np.ndarray) -> tuple[np.floating, Cache]:
        raise NotImplementedError

    def _pair_backward(self, dloss: float, cache: Cache) -> np.ndarray:
        raise NotImplementedError


class L1Loss(_Elementwise):
    """Mean absolute error, torch's ``nn.L1Loss(reduction)``; derivative 0 where pred = target (torch's)."""

    kind = "l1"

    def _pair_forward(self, x: np.ndarray, t: np.ndarray) -> tuple[np.floating, Cache]:
        return l1_forward(x, t, self.reduction)

    def _pair_backward(self, dloss: float, cache: Cache) -> np.ndarray:
        return l1_backward(dloss, cache)


class HuberLoss(_Elementwise):
    """Huber loss, torch's ``nn.HuberLoss(reduction, delta=1.0)``: quadratic for |r| < delta, then linear."""

    kind = "huber"

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = check_number("HuberLoss", "delta", delta, positive=True)

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "delta": self.delta}

    def _pair_forward(self, x: np.ndarray, t: np.ndarray) -> tuple[np.floating, Cache]:
        return huber_forward(x, t, self.reduction, self.delta)

    def _pair_backward(self, dloss: float, cache: Cache) -> np.ndarray:
        return huber_backward(dloss, cache)


class SmoothL1Loss(_Elementwise):
    """Smooth L1 loss, torch's ``nn.SmoothL1Loss(reduction, beta=1.0)``: the Huber loss / beta; beta = 0 is L1."""

    kind = "smooth_l1"

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = check_number("SmoothL1Loss", "beta", beta)
        if self.beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta!r}")

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "beta": self.beta}

    def _pair_forward(self, x: np.ndarray, t: np.ndarray) -> tuple[np.floating, Cache]:
        return smooth_l1_forward(x, t, self.reduction, self.beta)

    def _pair_backward(self, dloss: float, cache: Cache) -> np.ndarray:
        return smooth_l1_backward(dloss, cache)
