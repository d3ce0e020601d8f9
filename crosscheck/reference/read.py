"""Read a manual_bp model into the plain-data spec, by its public attributes only.

``kind``, ``config()``, ``params``, ``buffers``, ``training``, ``name``, ``layers``, and the arrays
a kind's entry names (``Kind.fixed``: a Dropout's mask, an attention layer's padding mask). Nothing
here imports manual_bp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import lookup
from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk


def leaves(model: Any) -> list[Any]:
    """The model's top-level layers in execution order (nested plain ``Sequential`` flattened;
    other containers, such as ``Residual``, stay whole)."""
    if getattr(model, "kind", "") == "sequential":
        return [leaf for child in model.layers for leaf in leaves(child)]
    return [model]


def _layer_spec(layer: Any, name: str) -> LayerSpec:
    entry = lookup(layer.kind)
    config = {k: v for k, v in layer.config().items() if k != "layers"}
    params = {k: np.array(v, copy=True) for k, v in layer.params.items()}
    children: tuple[LayerSpec, ...] = ()
    if hasattr(layer, "layers"):  # a container: params and buffers belong to its children
        params = {}
        children = tuple(
            _layer_spec(c, c.name or f"{name}.{i}")
            for i, c in enumerate(leaf for child in layer.layers for leaf in leaves(child))
        )
    buffers = {} if children else {k: np.array(v, copy=True) for k, v in layer.buffers.items()}
    return LayerSpec(
        name,
        layer.kind,
        config,
        params,
        buffers,
        entry.fixed(layer),
        bool(layer.training),
        children,
        entry.integer_input,
        entry.outputs,
    )


def read_spec(model: Any, loss_fn: Any | None = None) -> NetSpec:
    """Describe a manual_bp layer or ``Sequential`` (and loss) as a ``NetSpec``.

    Read it before the forward whose running statistics are compared (buffers
    are the state the forward starts from) and after the forward that drew any
    Dropout mask (``crosscheck.run.compare`` does both).
    """
    layers = tuple(_layer_spec(layer, layer.name or str(i)) for i, layer in enumerate(leaves(model)))
    dtypes = {p.dtype.name for layer in walk(layers) for p in layer.params.values()}
    if len(dtypes) > 1:
        raise TypeError(f"crosscheck: the model mixes parameter dtypes {sorted(dtypes)}")
    loss = LossSpec(loss_fn.kind, dict(loss_fn.config())) if loss_fn is not None else None
    return NetSpec(layers, loss, dtypes.pop() if dtypes else "")
