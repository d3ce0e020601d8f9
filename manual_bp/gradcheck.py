"""Central finite differences in float64: the framework-free gradient oracle.

For a scalar objective J(theta), the numerical derivative of each entry is

    dJ/dtheta_i ~ (J(theta + h e_i) - J(theta - h e_i)) / (2 h),

whose error is O(h^2) (truncation) + O(eps_64 |J| / h) (rounding); h = 1e-6
balances both near 1e-10 for J of order one. The analytic gradient comes from
the model's own backward. Only the model's forward is used to form the
numerical one, so a wrong backward cannot hide behind a matching wrong oracle.

Errors are reported per tensor as

    rel = max_i |a_i - n_i| / max(|a_i|, |n_i|, floor),  floor = 1e-3 * max(|a|_inf, |n|_inf, 1e-12),

a relative error that does not explode on entries that are zero up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from manual_bp.layers import Module
from manual_bp.losses import Loss


@dataclass
class GradcheckResult:
    """Per-tensor max relative errors ("input" and each parameter name) and the verdict."""

    errors: dict[str, float] = field(default_factory=dict)
    tol: float = 1e-6

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tol

    def __str__(self) -> str:
        rows = "\n".join(f"  {k:>12}: {v:.3e}" for k, v in self.errors.items())
        return f"gradcheck {'passed' if self.ok else 'FAILED'} (tol {self.tol:g}):\n{rows}"


def relative_error(a: np.ndarray, n: np.ndarray) -> float:
    """max_i |a_i - n_i| / max(|a_i|, |n_i|, floor) (see the module docstring)."""
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(n), initial=0.0)), 1e-12)
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), 1e-3 * scale)
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
    the model's parameters are left exactly as they were.
    """
    if x.dtype != np.float64 or any(p.dtype != np.float64 for p in model.params.values()):
        raise TypeError("gradcheck: finite differences need float64 inputs and parameters")
    if (loss_fn is None) == (dout is None):
        raise ValueError("gradcheck: pass exactly one of loss_fn (with y) or dout")
    x = x.copy()  # perturbed in place below; the caller's array is never touched

    def J() -> float:
        out = model.forward(x)
        return float(loss_fn.forward(out, y)) if loss_fn is not None else float(np.sum(dout * out))

    out = model.forward(x)
    if loss_fn is not None:
        loss_fn.forward(out, y)
        g = loss_fn.backward(1.0)
    else:
        g = dout
    dx = model.backward(g)
    analytic = {"input": dx, **{k: v.copy() for k, v in model.grads.items()}}

    result = GradcheckResult(tol=tol)
    result.errors["input"] = relative_error(analytic["input"], numerical_gradient(J, x, h))
    for name, theta in model.params.items():
        result.errors[name] = relative_error(analytic[name], numerical_gradient(J, theta, h))
    return result
