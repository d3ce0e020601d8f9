"""A network as plain data: layer kinds, hyperparameters, parameter arrays, the loss.

``read_spec`` reads a manual_bp model by its public attributes only (``kind``,
``config()``, ``params``, ``name``, ``layers``); nothing here computes, and
nothing here imports manual_bp. The PyTorch and JAX references are built from
this data alone.

Parameter arrays keep manual_bp's layout: a Linear weight ``W`` is (in, out).
Each reference maps layouts in exactly one place (torch: ``weight = W.T``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LayerSpec:
    """One leaf layer: ``kind`` (e.g. "linear", "relu"), its ``config`` and copies of its parameters."""

    name: str
    kind: str
    config: dict[str, Any]
    params: dict[str, np.ndarray] = field(default_factory=dict)


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
        return tuple(layer.kind for layer in self.layers)


def leaves(model: Any) -> list[Any]:
    """The model's leaf layers in execution order (nested ``Sequential`` flattened)."""
    if hasattr(model, "layers"):
        return [leaf for child in model.layers for leaf in leaves(child)]
    return [model]


def read_spec(model: Any, loss_fn: Any | None = None) -> NetSpec:
    """Describe a manual_bp layer or ``Sequential`` (and loss) as a ``NetSpec``."""
    layers = []
    for i, layer in enumerate(leaves(model)):
        config = dict(layer.config())
        params = {k: np.array(v, copy=True) for k, v in layer.params.items()}
        layers.append(LayerSpec(layer.name or str(i), layer.kind, config, params))
    dtypes = {p.dtype.name for layer in layers for p in layer.params.values()}
    if len(dtypes) > 1:
        raise TypeError(f"crosscheck: the model mixes parameter dtypes {sorted(dtypes)}")
    loss = LossSpec(loss_fn.kind, dict(loss_fn.config())) if loss_fn is not None else None
    return NetSpec(tuple(layers), loss, dtypes.pop() if dtypes else "")


# ---------------------------------------------------------------- tensor names
# Every backend returns a dict keyed by these names. Their order is the order in
# which a wrong formula first shows: forward outputs layer by layer, the loss,
# then backward from the logits down, each layer's parameter gradients before
# the gradient it passes to its input. The first failing name localises a bug.


def forward_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """``<layer>.out`` for every layer, then ``loss``."""
    return [f"{layer.name}.out" for layer in spec.layers] + (["loss"] if with_loss else [])


def backward_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """``dlogits`` (loss runs), then per layer from the last: ``<layer>.d<param>``, ``<layer>.dx``."""
    names = ["dlogits"] if with_loss else []
    for layer in reversed(spec.layers):
        names += [f"{layer.name}.d{p}" for p in layer.params]
        names.append(f"{layer.name}.dx")
    return names


def tensor_names(spec: NetSpec, with_loss: bool) -> list[str]:
    """All compared names in forward-then-backward order."""
    return forward_names(spec, with_loss) + backward_names(spec, with_loss)
