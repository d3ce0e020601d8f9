"""The PyTorch reference: a ``NetSpec`` rebuilt from ``torch.nn`` modules, differentiated by autograd.

Only torch's own modules, functionals and ``backward()`` are used here, never
manual_bp's formulas (a test parses this file's imports). Every intermediate
output keeps its gradient with ``retain_grad()``. The layout convention lives
in ``_weight_to_torch`` / ``_weight_from_torch`` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crosscheck.spec import LayerSpec, LossSpec, NetSpec

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _weight_to_torch(W: np.ndarray) -> torch.Tensor:
    """manual_bp's W (in, out) -> torch's ``nn.Linear.weight`` (out, in)."""
    w = torch.from_numpy(np.ascontiguousarray(W.T))
    assert tuple(w.shape) == (W.shape[1], W.shape[0])
    return w


def _weight_from_torch(w: torch.Tensor) -> np.ndarray:
    """torch's (out, in) gradient -> manual_bp's layout (in, out)."""
    return w.detach().numpy().T.copy()


def _linear(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    cfg = layer.config
    lin = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"], dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(_weight_to_torch(layer.params["W"]))
        if cfg["bias"]:
            lin.bias.copy_(torch.from_numpy(layer.params["b"]))
    return lin


_ACTIVATIONS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "identity": lambda c: nn.Identity(),
    "relu": lambda c: nn.ReLU(),
    "leaky_relu": lambda c: nn.LeakyReLU(c["negative_slope"]),
    "elu": lambda c: nn.ELU(c["alpha"]),
    "sigmoid": lambda c: nn.Sigmoid(),
    "tanh": lambda c: nn.Tanh(),
    "silu": lambda c: nn.SiLU(),
    "softplus": lambda c: nn.Softplus(beta=c["beta"], threshold=c["threshold"]),
    "gelu": lambda c: nn.GELU(approximate=c["approximate"]),
    "softmax": lambda c: nn.Softmax(dim=-1),
    "log_softmax": lambda c: nn.LogSoftmax(dim=-1),
}

KINDS = frozenset(_ACTIVATIONS) | {"linear"}


def build(spec: NetSpec) -> list[nn.Module]:
    """One torch module per leaf layer, parameters copied from the spec."""
    dtype = _DTYPES[spec.dtype]
    modules = []
    for layer in spec.layers:
        if layer.kind == "linear":
            modules.append(_linear(layer, dtype))
        elif layer.kind in _ACTIVATIONS:
            modules.append(_ACTIVATIONS[layer.kind](layer.config))
        else:
            raise NotImplementedError(f"crosscheck.torch_ref: no torch reference for layer kind {layer.kind!r}")
    return modules


def loss(spec: LossSpec, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss with torch's own functionals."""
    cfg = spec.config
    if spec.kind == "softmax_cross_entropy":
        return F.cross_entropy(z, target, reduction=cfg["reduction"], label_smoothing=cfg["label_smoothing"])
    if spec.kind == "mse":
        return F.mse_loss(z, target, reduction=cfg["reduction"])
    if spec.kind == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(z, target, reduction=cfg["reduction"])
    raise NotImplementedError(f"crosscheck.torch_ref: no torch reference for loss kind {spec.kind!r}")


def _run_once(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, dloss: float, dout: np.ndarray | None
) -> dict[str, np.ndarray]:
    modules = build(spec)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h, outs = xt, []
    for m in modules:
        h = m(h)
        if not h.is_leaf:
            h.retain_grad()
        outs.append(h)
    got = {f"{layer.name}.out": o.detach().numpy().copy() for layer, o in zip(spec.layers, outs)}
    if dout is None:
        L = loss(spec.loss, h, torch.from_numpy(target.copy()))
        got["loss"] = L.detach().numpy().copy()
        L.backward(torch.tensor(dloss, dtype=L.dtype))
        got["dlogits"] = h.grad.numpy().copy()
    else:
        h.backward(torch.from_numpy(dout.copy()))
    for layer, m, inp in zip(spec.layers, modules, [xt, *outs[:-1]]):
        got[f"{layer.name}.dx"] = inp.grad.numpy().copy()
        if layer.kind == "linear":
            got[f"{layer.name}.dW"] = _weight_from_torch(m.weight.grad)
            if layer.config["bias"]:
                got[f"{layer.name}.db"] = m.bias.grad.numpy().copy()
    return got


def run(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, *, dloss: float, dout: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Every named tensor of ``spec.tensor_names`` for both runs, by autograd.

    ``"loss"``: ``loss.backward(dloss)`` for ``loss = spec.loss(logits,
    target)``; ``"vjp"``: the vector-Jacobian product ``logits.backward(dout)``.
    """
    runs = {"vjp": _run_once(spec, x, target, dloss, dout)}
    if spec.loss is not None:
        runs["loss"] = _run_once(spec, x, target, dloss, None)
    return runs
