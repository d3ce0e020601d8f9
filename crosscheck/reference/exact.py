"""The exact reference: every named tensor of a case in high-precision arithmetic (mpmath, 50 digits).

From the plain-data spec and the exact values of the float input, parameters, buffers, target, ``dloss``
and ``dout``, each layer's kind entry computes its forward on ``Var`` scalars (``Kind.exact``, the loss's
``LossKind.exact``) and reverse mode over the tape gives ``dlogits``, every ``dx`` and every parameter
gradient. Nothing is rounded to a float: the values come back as ``mpmath.mpf`` object arrays, under the
names of ``crosscheck.spec.tensor_names``. It imports neither manual_bp nor a framework (a test parses
its imports). See docs/exact.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import lookup, loss_kind
from crosscheck.kinds._exact import TooLarge, Var, backward, copy, grads, leaves, mp, set_budget, values
from crosscheck.spec import LayerSpec, NetSpec, walk

DIGITS = 50  # mpmath's working precision (decimal digits)
MAX_NODES = 200_000  # scalar operations per run (forward tape); a bigger case is skipped, not run


class Unsupported(NotImplementedError):
    """A case holds a layer or loss kind without an exact forward."""


def missing(spec: NetSpec) -> list[str]:
    """The kinds of the spec (layers and loss) that have no exact forward."""
    kinds = [lookup(layer.kind) for layer in walk(spec.layers)]
    lacking = [k.kind for k in kinds if k.exact is None]
    if spec.loss is not None and loss_kind(spec.loss.kind).exact is None:
        lacking.append(spec.loss.kind)
    return sorted(set(lacking))


class _Net:
    """The state of one exact forward: Var parameters and buffers by layer name, each layer's input and output."""

    def __init__(self, spec: NetSpec) -> None:
        self.params = {layer.name: {k: leaves(v) for k, v in layer.params.items()} for layer in walk(spec.layers)}
        self.buffers: dict[str, dict[str, np.ndarray]] = {
            layer.name: {k: leaves(v) for k, v in layer.buffers.items()} for layer in walk(spec.layers) if layer.buffers
        }
        self.seen: dict[str, tuple[Any, np.ndarray]] = {}

    def apply(self, layer: LayerSpec, x: np.ndarray) -> np.ndarray:
        """One layer (a container runs its children through this too): its input gets its own nodes, so that
        the gradient reaching them is this layer's ``dx`` alone."""
        h = x if layer.integer_input else copy(x)
        out = lookup(layer.kind).exact(layer, self.params[layer.name], h, self)  # type: ignore[misc]
        self.seen[layer.name] = (h, out)
        return out


def _run_once(
    spec: NetSpec, x: np.ndarray, target: Any, dloss: float, dout: np.ndarray | None
) -> dict[str, np.ndarray]:
    net = _Net(spec)
    h = np.asarray(x) if x.dtype.kind in "iu" else leaves(x)
    for layer in spec.layers:
        h = net.apply(layer, h)
    got: dict[str, np.ndarray] = {}
    for layer in walk(spec.layers):
        got[f"{layer.name}.out"] = values(net.seen[layer.name][1])
        got.update(
            {f"{layer.name}.{b}": values(v) for b, v in net.buffers.get(layer.name, {}).items() if b in layer.buffers}
        )
    if dout is None:
        L = loss_kind(spec.loss.kind).exact(spec.loss.config, h, target)  # type: ignore[union-attr, misc]
        got["loss"] = np.array(L.v, dtype=object)
        backward([(L, dloss)])
        got["dlogits"] = grads(h)
    else:
        backward(zip(h.ravel(), np.asarray(dout).ravel()))
    for layer in walk(spec.layers):
        inp, _ = net.seen[layer.name]
        if not layer.integer_input:
            got[f"{layer.name}.dx"] = grads(inp)
        got.update({f"{layer.name}.d{k}": grads(v) for k, v in net.params[layer.name].items()})
    return got


def run(
    spec: NetSpec, x: np.ndarray, target: Any, *, dloss: float, dout: np.ndarray, max_nodes: int = MAX_NODES
) -> dict[str, dict[str, np.ndarray]]:
    """Every named tensor of both runs (``"vjp"``: the upstream gradient ``dout`` on the logits; ``"loss"``: the
    loss pulled back with ``dloss``), exactly, as mpf object arrays. Raises ``Unsupported`` for a kind without
    an exact forward and ``TooLarge`` past ``max_nodes`` scalar operations in one run."""
    lacking = missing(spec)
    if lacking:
        raise Unsupported(f"crosscheck.exact: no exact forward for {lacking}")
    with mp().workdps(DIGITS):
        try:
            set_budget(max_nodes)
            runs = {"vjp": _run_once(spec, x, target, dloss, dout)}
            if spec.loss is not None:
                set_budget(max_nodes)
                runs["loss"] = _run_once(spec, x, target, dloss, None)
        finally:
            set_budget(0)
    return runs


__all__ = ["DIGITS", "MAX_NODES", "TooLarge", "Unsupported", "Var", "missing", "run"]
