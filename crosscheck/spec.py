"""A network as plain data: layer kinds, hyperparameters, parameter arrays, the loss.

``crosscheck.reference.read.read_spec`` fills it from a manual_bp model's public
attributes; nothing here computes, and nothing here imports manual_bp or a kind
entry. The PyTorch and JAX references are built from this data alone.

Parameter arrays keep manual_bp's layout: a Linear weight ``W`` is (in, out).
Each reference maps layouts in exactly one place (torch: ``weight = W.T``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` (e.g. "linear", "batch_norm", "residual"), its ``config`` and copies of its arrays.

    params: trainable arrays; buffers: running statistics *before* the forward
    (BatchNorm1d's ``running_mean`` / ``running_var``); fixed: arrays manual_bp
    drew or was given that the references must reuse (Dropout's boolean keep ``mask``, a
    multi-head attention's ``key_padding_mask`` (N, T), True = padded key);
    training: the layer's mode; children: the sub-layers of a container other
    than a plain ``Sequential`` (a ``Residual`` branch), in order.
    """

    name: str
    kind: str
    config: dict[str, Any]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    fixed: dict[str, np.ndarray] = field(default_factory=dict)
    training: bool = True
    children: tuple[LayerSpec, ...] = ()
    integer_input: bool = False  # the layer takes integer indices (Embedding): no input gradient
    outputs: tuple[str, ...] = ()  # arrays compared besides the output, read off the layer (an RNN's h_n)


@dataclass(frozen=True)
class LossSpec:
    """The loss: ``kind`` ("softmax_cross_entropy", "mse", "bce_with_logits") and its ``config``."""

    kind: str
    config: dict[str, Any]


@dataclass(frozen=True)
class NetSpec:
    """A chain of leaf layers applied in order, then the loss (or none)."""

    layers: tuple[LayerSpec, ...]
    loss: LossSpec | None
    dtype: str

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(layer.kind for layer in walk(self.layers))


def window_count(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    """The windows of a convolution or pooling along one axis: floor((size + 2 p - d (k - 1) - 1) / s) + 1."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def walk(layers: tuple[LayerSpec, ...]) -> list[LayerSpec]:
    """Every layer of a spec tree, each container before its children."""
    return [node for layer in layers for node in (layer, *walk(layer.children))]


# ---------------------------------------------------------------- tensor names
# Every backend returns a dict keyed by these names. Their order is the order in
# which a wrong formula first shows: forward outputs layer by layer, the loss,
# then backward from the logits down, each layer's parameter gradients before
# the gradient it passes to its input. The first failing name localises a bug.


def forward_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """``<layer>.out`` for every layer (a container's children first), each followed by the
    layer's buffers after the forward (``<layer>.running_mean``, ...), then ``loss``."""
    return _forward(spec.layers) + (["loss"] if with_loss else [])


def _forward(layers: tuple[LayerSpec, ...]) -> list[str]:
    names: list[str] = []
    for layer in layers:
        names += _forward(layer.children)
        names.append(f"{layer.name}.out")
        names += [f"{layer.name}.{o}" for o in layer.outputs]
        names += [f"{layer.name}.{b}" for b in layer.buffers]
    return names


def _backward(layers: tuple[LayerSpec, ...]) -> list[str]:
    names: list[str] = []
    for layer in reversed(layers):
        names += _backward(layer.children)
        names += [f"{layer.name}.d{p}" for p in layer.params]
        if not layer.integer_input:
            names.append(f"{layer.name}.dx")
    return names


def backward_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """``dlogits`` (loss runs), then per layer from the last: ``<layer>.d<param>``, ``<layer>.dx``
    (a container's children first: ``1.1.dW``, ``1.1.dx``, ``1.0.dx``, then ``1.dx``; no ``dx``
    for integer inputs)."""
    return (["dlogits"] if with_loss else []) + _backward(spec.layers)


def tensor_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """All compared names in forward-then-backward order."""
    return forward_names(spec, with_loss) + backward_names(spec, with_loss)
