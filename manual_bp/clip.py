"""Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_: in place, on a dict of
gradients (``model.grads``) before ``optimizer.step``.

>>> model.backward(loss_fn.backward()); clip_grad_norm_(model.grads, 1.0); opt.step()   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp._checks import FLOAT_DTYPES


def _grads(where: str, grads: Any) -> list[np.ndarray]:
    if isinstance(grads, np.ndarray):
        grads = {"": grads}
    if not isinstance(grads, Mapping):
        raise TypeError(
            f"{where}: expected a dict name -> gradient array (model.grads) or one array, got {type(grads).__name__}"
        )
    out = list(grads.values())
    for g in out:
        if not isinstance(g, np.ndarray) or g.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{where}: every gradient must be a float32/float64 ndarray, got {type(g).__name__}")
        if not g.flags.writeable:
            raise ValueError(f"{where}: gradients are clipped in place; got a read-only array")
    return out


def clip_grad_norm_(grads: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    r"""Scale every gradient by min(1, max_norm / (N + 1e-6)), N the norm of all gradients together.

    .. math::
        N = \Big(\sum_k \|g_k\|_q^q\Big)^{1/q} \;\; (q = \text{norm\_type}), \qquad
        N = \max_k \max |g_k| \;\; (q = \infty)

    computed as torch does: the norm of the per-array norms. The 1e-6 is torch's; the gradients are
    multiplied even when the factor is 1. Returns N (before clipping). ``error_if_nonfinite``: a
    NaN or infinite N is a ValueError instead of NaN gradients.
    """
    where = "clip_grad_norm_"
    arrays = _grads(where, grads)
    max_norm = float(max_norm)
    q = float(norm_type)
    if not arrays:
        return 0.0
    if q == math.inf:
        norms = [float(np.max(np.abs(g), initial=0.0)) for g in arrays]
        total = max(norms)
    elif q > 0:
        norms = [float(np.sum(np.abs(g) ** q)) ** (1 / q) if q != 2 else float(np.sqrt(np.sum(g * g))) for g in arrays]
        total = float(np.sum(np.array(norms) ** q)) ** (1 / q) if q != 2 else float(np.sqrt(np.sum(np.square(norms))))
    else:
        raise ValueError(f"{where}: norm_type must be > 0 or inf, got {norm_type!r}")
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(
            f"{where}: the total norm of order {norm_type} of the gradients is {total}; "
            f"pass error_if_nonfinite=False to clip anyway"
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in arrays:
        g *= coef
    return total


def clip_grad_value_(grads: Any, clip_value: float) -> None:
    """Clip every gradient entry to [-clip_value, clip_value], in place (torch's ``clip_grad_value_``)."""
    arrays = _grads("clip_grad_value_", grads)
    c = float(clip_value)
    for g in arrays:
        np.clip(g, -c, c, out=g)
