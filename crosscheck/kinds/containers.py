"""Residual: y = x + f(x) over a branch of layers that keeps the shape.

Every rule walks the branch with the same walker that runs it: S(out) = S(x) + S(f(x)) and
G(dx) = G(dout) + G(dx of the branch); the branch's terms add to the skip's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import nn
from crosscheck.kinds.entry import Kind, lookup
from crosscheck.spec import LayerSpec


def _torch(layer: LayerSpec, dtype: Any) -> Any:
    """An ``nn.ModuleList`` of the branch."""
    return nn.ModuleList([lookup(child.kind).torch_module(child, dtype) for child in layer.children])


def _torch_apply(layer: LayerSpec, m: Any, h: Any, apply: Any) -> Any:
    branch = h.clone()  # the branch's own input: its gradient is the branch's share only
    if branch.requires_grad:
        branch.retain_grad()
    b = branch
    for child, cm in zip(layer.children, m):
        b = apply(child, cm, b)
    return h + b


def _jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    b = x
    for child in layer.children:
        b = net.apply(child, b)  # the first child's own probe sees the branch's share of dx only
    return x + b


def _exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    b = x
    for child in layer.children:
        b = net.apply(child, b)  # the first child gets its own nodes: its dx is the branch's share
    return x + b


def _scale_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    b, s_b = h, s_in
    for child in layer.children:
        b, s_b = w.fwd(child, b, s_b)
    return s_in + s_b


def _scale_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    g_b = g
    for child in reversed(layer.children):
        g_b = w.bwd(child, g_b)
    return g + g_b


def _walk(walker: Any, layer: Any, h: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    b, m_b, near = walker.walk(list(layer), h, m)
    return (h, m, True) if near else (h + b, m + m_b, False)


def _describe(layer: Any) -> str:
    return "Residual(" + " ".join(lookup(child.kind).describe(child) for child in layer) + ")"


KINDS = [
    Kind(
        "residual",
        torch_module=_torch,
        torch_apply=_torch_apply,
        jax_apply=_jax,
        scale_fwd=_scale_fwd,
        scale_bwd=_scale_bwd,
        terms=lambda layer, x, y, m, eps: m,
        walk=_walk,
        describe=_describe,
        exact=_exact,
    ),
]
