"""Central finite differences in float64: the framework-free gradient oracle.

For a scalar objective J(theta), the numerical derivative of each entry is

    n_i = (J(theta + h e_i) - J(theta - h e_i)) / (2 h),   h = 1e-6,

and the analytic one, a_i, comes from the model's own backward. Only the
model's forward is used to form n, so a wrong backward cannot hide behind a
matching wrong oracle.

What central differences can resolve
------------------------------------
n_i carries two errors: truncation, h^2 |J'''| / 6 ~ 2e-13 |J'''|, and
rounding. J is computed with an absolute rounding error of a few units of
eps * K (eps = 2.2e-16), where K is the size of the quantities J is built
from,

    K = |J| + sum_k |g_k * out_k| + u,

``out`` the model output and ``g = dJ/d(out)``: a relative rounding of every
output entry moves J by about eps * K (first-order error propagation); ``u`` is
the loss's own unit-sized intermediates (the sum of exp(z - max z), always
>= 1, inside log-sum-exp): 1 per sample, so ``u = 1`` for a mean and N for a
sum reduction, 0 without a loss. Dividing the difference of two such values
by 2h gives the oracle's absolute resolution

    delta = c * eps * K / h,   c = 32 roundings (measured on ~12k random MLP
    tensors: median 0.2, max 2.6 with unit-scale weights, one outlier of 37
    with weights x10 where tanh-GELU computes 1 + tanh ~ 0 in cancellation).

This delta does not shrink with the entry being checked. An entry with
|a_i| = 1e-6 next to |J| ~ 1 is resolved only to 1e-10 / 1e-6 = 1e-4
relative, so no step size lets central differences certify it to 1e-6: the
rounding floor eps * K / h falls as h grows but truncation then rises, and the
best balance (h ~ 1e-5) still resolves ~1e-11 absolute, not a relative 1e-6
of an arbitrarily small entry. (This is what made Linear -> Sigmoid -> Linear
-> cross-entropy "fail" at 8e-6 under a purely relative measure: input-gradient
entries were ~1e-6 because sigmoid', a small weight and 1/N shrink them, while
the loss and its rounding stayed O(1).) With c = 32, delta ~ 7e-9 K and
delta / tol ~ 7e-3 K: smaller entries are checked to about 7e-9 K absolute.

The error measure
-----------------
Per tensor,

    rel = max_i |a_i - n_i| / max(|a_i|, |n_i|, floor),
    floor = max(1e-3 * max(|a|_inf, |n|_inf), delta / tol, 1e-300),

so entries well above the resolution are compared relatively (rel <= tol means
tol relative agreement), the smallest entries of a tensor relative to the
tensor's scale (analytic entries that are zero up to rounding do not explode),
and entries below delta / tol absolutely: rel <= tol there means
|a_i - n_i| <= delta, agreement to what the oracle can see. The tolerance itself
is not loosened; a wrong formula still shows errors of 1e-3 to 1 on the
entries that carry the gradient. ``GradcheckResult`` keeps delta and the raw
max |a - n| per tensor so a report can show both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manual_bp.layers import Module
from manual_bp.losses import Loss

EPS64 = float(np.finfo(np.float64).eps)
ROUNDINGS = 32.0  # c in delta = c * eps * K / h (see the module docstring)


@dataclass
class GradcheckResult:
    """Per-tensor errors ("input" and each parameter name) and the verdict.

    errors: the relative error of the module docstring, per tensor.
    abs_errors: max_i |a_i - n_i| per tensor.
    delta: the finite differences' absolute resolution, c * eps * K / h.
    """

    errors: dict[str, float] = field(default_factory=dict)
    tol: float = 1e-6
    abs_errors: dict[str, float] = field(default_factory=dict)
    delta: float = 0.0

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tol

    def __str__(self) -> str:
        rows = "\n".join(
            f"  {k:>12}: {v:.3e}  (max |a - n| {self.abs_errors.get(k, float('nan')):.2e})"
            for k, v in self.errors.items()
        )
        verdict = "passed" if self.ok else "FAILED"
        head = f"gradcheck {verdict} (tol {self.tol:g}, resolution {self.delta:.2e})"
        return f"{head}:\n{rows}"


def relative_error(a: np.ndarray, n: np.ndarray, resolution: float = 0.0) -> float:
    """max_i |a_i - n_i| / max(|a_i|, |n_i|, floor), floor = max(1e-3 * scale, resolution, 1e-300).

    ``scale`` is the larger of |a|_inf and |n|_inf; ``resolution`` is the
    magnitude below which entries are compared absolutely (``delta / tol`` in
    ``gradcheck``; see the module docstring).
    """
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(n), initial=0.0)))
    floor = max(1e-3 * scale, resolution, 1e-300)
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return float(np.max(np.abs(a - n) / denom, initial=0.0))


def numerical_gradient(f: Callable[[], float], theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``theta``, perturbed in place.

    Every entry is restored to its exact original value afterwards.
    """
    grad = np.zeros_like(theta)
    flat, gflat = theta.reshape(-1), grad.reshape(-1)  # views
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        f_plus = f()
        flat[i] = old - h
        f_minus = f()
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * h)
    return grad


def gradcheck(
    model: Module,
    loss_fn: Loss | None,
    x: np.ndarray,
    y: Any = None,
    dout: np.ndarray | None = None,
    h: float = 1e-6,
    tol: float = 1e-6,
) -> GradcheckResult:
    """Compare ``model.backward`` with central differences for every parameter and the input.

    The objective is ``loss_fn(model(x), y)``, or, with ``loss_fn=None``, the
    random projection J = sum(dout * model(x)) so that any upstream gradient
    ``dout`` can be checked. Model and data must be float64. The caller's x and
    the model's parameters are left exactly as they were. Errors are measured
    as in the module docstring: relative, with entries below the oracle's
    resolution compared absolutely. A gradient that is missing or whose shape
    or dtype differs from its tensor's gets the error inf. Integer inputs
    (Embedding indices) have no gradient and are not checked. Running
    statistics are restored afterwards; every layer that draws a dropout mask (``Dropout``, an RNN's
    dropout between layers: the layers with a ``frozen`` flag) reuses the mask of the
    first forward throughout (and is unfrozen again at the end).
    """
    integer_input = isinstance(x, np.ndarray) and x.dtype.kind in "iu"  # Embedding indices: no input gradient
    if (x.dtype != np.float64 and not integer_input) or any(p.dtype != np.float64 for p in model.params.values()):
        raise TypeError("gradcheck: finite differences need float64 inputs and parameters")
    if (loss_fn is None) == (dout is None):
        raise ValueError("gradcheck: pass exactly one of loss_fn (with y) or dout")
    x = x.copy()  # perturbed in place below; the caller's array is never touched
    buffers = {k: v.copy() for k, v in model.buffers.items()}  # BatchNorm's running statistics
    dropouts = [m for m in model.modules() if hasattr(m, "frozen")]  # the layers that draw masks
    was_frozen = [(m, m.frozen, m.mask) for m in dropouts]
    try:
        return _gradcheck(model, loss_fn, x, y, dout, h, tol, integer_input, dropouts)
    finally:
        for k, v in model.buffers.items():
            np.copyto(v, buffers[k])
        for m, frozen, mask in was_frozen:
            m.frozen, m.mask = frozen, mask


def _gradcheck(
    model: Module,
    loss_fn: Loss | None,
    x: np.ndarray,
    y: Any,
    dout: np.ndarray | None,
    h: float,
    tol: float,
    integer_input: bool,
    dropouts: list[Module],
) -> GradcheckResult:

    def J() -> float:
        out = model.forward(x)
        return float(loss_fn.forward(out, y)) if loss_fn is not None else float(np.sum(dout * out))

    out = model.forward(x)  # draws each Dropout's mask once; every later forward reuses it
    for m in dropouts:
        m.frozen = True
    if loss_fn is not None:
        J0 = float(loss_fn.forward(out, y))
        g = loss_fn.backward(1.0)
        n_samples = out.shape[0] if out.ndim else 1
        unit = float(n_samples) if getattr(loss_fn, "reduction", "mean") == "sum" else 1.0
    else:
        g = dout
        J0 = float(np.sum(dout * out))
        unit = 0.0
    dx = model.backward(g)
    analytic = {"input": dx, **{k: v.copy() for k, v in model.grads.items()}}

    K = abs(J0) + float(np.sum(np.abs(g * out))) + unit  # magnitude J is built from
    delta = ROUNDINGS * EPS64 * K / h  # absolute resolution of the central differences
    result = GradcheckResult(tol=tol, delta=delta)
    tensors = {**({} if integer_input else {"input": x}), **model.params}
    for name, theta in tensors.items():
        a = analytic.get(name)
        if not isinstance(a, np.ndarray) or a.shape != theta.shape or a.dtype != theta.dtype:
            # a missing or misshapen gradient is a failure, not a broadcast error (or a silent broadcast)
            result.errors[name] = result.abs_errors[name] = np.inf
            continue
        n = numerical_gradient(J, theta, h)
        result.errors[name] = relative_error(a, n, delta / tol)
        result.abs_errors[name] = float(np.max(np.abs(a - n), initial=0.0))
    return result
