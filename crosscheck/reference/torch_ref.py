"""The PyTorch reference: a ``NetSpec`` rebuilt from ``torch.nn`` modules, differentiated by autograd.

Each layer is built, applied and read back by its kind's entry (``crosscheck.kinds``); this driver
runs them and collects every named tensor. Only torch's own modules, functionals and ``backward()``
are used, never manual_bp's formulas (a test parses the imports). Every intermediate output keeps its
gradient with ``retain_grad()``; layouts are mapped in ``crosscheck.kinds.layouts`` only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from crosscheck.kinds import lookup, loss_kind
from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build(spec: NetSpec) -> list[nn.Module]:
    """One torch module per top-level layer, parameters and buffers copied from the spec by each kind's
    entry (a Residual becomes an ``nn.ModuleList`` of its branch)."""
    dtype = _DTYPES[spec.dtype]
    return [lookup(layer.kind).torch_module(layer, dtype) for layer in spec.layers]


def _apply(
    layer: LayerSpec, m: nn.Module, h: torch.Tensor, seen: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """The layer's output; ``seen[name] = (input, output)`` with the output's gradient retained."""
    out = lookup(layer.kind).torch_apply(layer, m, h, lambda child, cm, b: _apply(child, cm, b, seen))
    if out.requires_grad and not out.is_leaf:
        out.retain_grad()
    seen[layer.name] = (h, out)
    return out


def loss(spec: LossSpec, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss with torch's own functionals."""
    return loss_kind(spec.kind).torch_loss(spec.config, z, target)


def _by_name(layers: Any, modules: Any) -> dict[str, nn.Module]:
    """Spec name -> torch module, through Residual branches."""
    named: dict[str, nn.Module] = {}
    for layer, m in zip(layers, modules):
        named[layer.name] = m
        if layer.children:
            named.update(_by_name(layer.children, m))
    return named


def _run_once(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, dloss: float, dout: np.ndarray | None
) -> dict[str, np.ndarray]:
    modules = build(spec)
    integer = x.dtype.kind in "iu"
    xt = torch.from_numpy(x.astype(np.int64)) if integer else torch.from_numpy(x.copy()).requires_grad_(True)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    h = xt
    for layer, m in zip(spec.layers, modules):
        h = _apply(layer, m, h, seen)
    mods = _by_name(spec.layers, modules)
    got = {f"{name}.out": o.detach().numpy().copy() for name, (_, o) in seen.items()}
    got.update(_running(spec, mods))
    got.update(
        {
            f"{layer.name}.{o}": getattr(mods[layer.name], o).detach().numpy().copy()
            for layer in walk(spec.layers)
            for o in layer.outputs
        }
    )  # left on the module by torch_apply
    if dout is None:
        L = loss(spec.loss, h, torch.from_numpy(target.copy()))
        got["loss"] = L.detach().numpy().copy()
        L.backward(torch.tensor(dloss, dtype=L.dtype))
        got["dlogits"] = h.grad.numpy().copy()
    else:
        h.backward(torch.from_numpy(dout.copy()))
    for layer in walk(spec.layers):
        inp, _ = seen[layer.name]
        if not layer.integer_input:
            got[f"{layer.name}.dx"] = inp.grad.numpy().copy() if inp.grad is not None else np.zeros(inp.shape, x.dtype)
        got.update({f"{layer.name}.{k}": v for k, v in lookup(layer.kind).torch_grads(layer, mods[layer.name]).items()})
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


def running_buffers(spec: NetSpec, xs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The running statistics after each of several forwards (one per batch in ``xs``) of the same
    torch modules, buffers starting from the spec's: ``[{"<layer>.running_mean": ..., ...}, ...]``."""
    modules = build(spec)
    named = _by_name(spec.layers, modules)
    steps = []
    with torch.no_grad():
        for x in xs:
            h = torch.from_numpy(x.astype(np.int64) if x.dtype.kind in "iu" else x.copy())
            for layer, m in zip(spec.layers, modules):
                h = _apply(layer, m, h, {})
            steps.append(_running(spec, named))
    return steps


def _running(spec: NetSpec, named: dict[str, nn.Module]) -> dict[str, np.ndarray]:
    """Every running buffer of the spec's layers (``<layer>.running_mean``, ...), read off the modules."""
    return {
        f"{layer.name}.{b}": getattr(named[layer.name], b).detach().numpy().copy()
        for layer in walk(spec.layers)
        for b in layer.buffers
    }
