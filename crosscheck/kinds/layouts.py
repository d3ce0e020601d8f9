"""Weight layouts: manual_bp's against torch's, mapped here and nowhere else (docs/conventions.md).

manual_bp keeps a Linear's and attention's weights as (in, out), so that ``x @ W`` reads like the
math; torch's ``nn.Linear.weight`` is (out, in) and ``nn.MultiheadAttention`` stacks the three input
projections in ``in_proj_weight``. A Conv2d weight is (C_out, C_in / groups, kH, kW) in both. JAX's
``x @ W`` takes manual_bp's layout as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import torch


def weight_to_torch(W: np.ndarray) -> Any:
    """manual_bp's W (in, out) -> torch's ``nn.Linear.weight`` (out, in)."""
    w = torch.from_numpy(np.ascontiguousarray(W.T))
    assert tuple(w.shape) == (W.shape[1], W.shape[0])
    return w


def weight_from_torch(w: Any) -> np.ndarray:
    """torch's (out, in) gradient -> manual_bp's layout (in, out)."""
    return w.detach().numpy().T.copy()


def in_proj_to_torch(Wq: np.ndarray, Wk: np.ndarray, Wv: np.ndarray) -> Any:
    """manual_bp's Wq, Wk, Wv, (in, out) each -> ``nn.MultiheadAttention.in_proj_weight`` = [Wq^T; Wk^T; Wv^T]."""
    w = torch.cat([weight_to_torch(W) for W in (Wq, Wk, Wv)])
    assert tuple(w.shape) == (3 * Wq.shape[1], Wq.shape[0])
    return w


def in_proj_from_torch(g: Any) -> dict[str, np.ndarray]:
    """The gradient of ``in_proj_weight`` (3D, D) -> manual_bp's dWq, dWk, dWv, (D, D) each."""
    D = g.shape[1]
    assert tuple(g.shape) == (3 * D, D)
    return {f"dW{n}": weight_from_torch(g[i * D : (i + 1) * D]) for i, n in enumerate("qkv")}


def conv_weight_to_torch(W: np.ndarray, cfg: dict[str, Any]) -> Any:
    """manual_bp's Conv2d W is already torch's ``nn.Conv2d.weight`` layout (C_out, C_in / groups, kH, kW):
    no transpose; its gradient comes back in the same layout."""
    expected = (cfg["out_channels"], cfg["in_channels"] // cfg["groups"], *cfg["kernel_size"])
    assert W.shape == tuple(expected), (W.shape, expected)
    return torch.from_numpy(W.copy())


def copy_into(param: Any, value: Any) -> None:
    """Copy a spec array (or a tensor already in torch's layout) into a torch parameter or buffer."""
    with torch.no_grad():
        param.copy_(torch.as_tensor(value))


def grad(param: Any) -> np.ndarray:
    """A torch parameter's gradient as a NumPy copy (same layout)."""
    return param.grad.numpy().copy()
