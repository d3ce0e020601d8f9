"""S(T), the magnitude each compared tensor is measured against, walked through the network.

A relative error ||a - b|| / ||b|| is the right measure until cancellation makes a tensor much
smaller than the terms that formed it; two correct implementations then differ by eps times the
size of those terms. So each tensor T gets S(T), an upper estimate of the size of its terms,
propagated forward from S(x) = max|x| and backward from G(dlogits) by each kind's rules
(``Kind.scale_fwd``, ``Kind.scale_bwd``) from the reference run's own tensors. Every scale is at
least the tensor's own max |entry|. The rules and their derivations: docs/tolerance.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from crosscheck.kinds import lookup, loss_kind
from crosscheck.kinds.entry import amax
from crosscheck.spec import LayerSpec, NetSpec


class ScaleWalker:
    """Walks the spec tree forward (S of every output) then backward (G of every gradient); the kinds'
    rules call back ``fwd``/``bwd`` for a container's children, ``store`` for a parameter gradient's
    scale, ``dout`` for the size of the gradient a layer receives and ``weight_grad`` for dW = x^T dout."""

    def __init__(self, ref: dict[str, np.ndarray]) -> None:
        self.ref: dict[str, np.ndarray] = ref
        self.S: dict[str, float] = {}
        self.inputs: dict[str, tuple[np.ndarray, float]] = {}
        self.state: dict[str, Any] = {}  # what a kind's forward rule keeps for its backward rule
        self.dout_size: dict[str, float] = {}

    def dout_sizes(self, layers: tuple[LayerSpec, ...], last: float) -> None:
        """max |dout| of every layer, the size (not the rounding) of the gradient it receives, read off the
        reference run: the next layer's dx; for the last layer of a branch, the residual's own dout."""
        for i, layer in enumerate(layers):
            nxt = self.ref.get(f"{layers[i + 1].name}.dx") if i + 1 < len(layers) else None
            a = self.dout_size[layer.name] = (
                last if i + 1 == len(layers) else (amax(nxt) if nxt is not None else math.inf)
            )
            if layer.children:
                self.dout_sizes(layer.children, a)

    def dout(self, layer: LayerSpec, g: float) -> float:
        """max |dout| of ``layer`` (at most its scale g)."""
        return min(self.dout_size.get(layer.name, g), g)

    def store(self, layer: LayerSpec, tensor: str, scale: float) -> None:
        """S of ``<layer>.<tensor>``: the rule's scale, at least the reference tensor's max |entry|."""
        name = f"{layer.name}.{tensor}"
        self.S[name] = max(scale, amax(self.ref[name]))

    def weight_grad(self, layer: LayerSpec, h_in: np.ndarray, s_x: float, g: float, rows: int) -> float:
        """S(dW) of dW = x^T dout (Linear; Conv2d over its windows), first order: each of the ``rows``
        products x dout errs by at most S(x) |dout| + |x| G(dout) + |x| |dout| (the product's own
        rounding), with the sizes |x|, |dout| read off the reference, never S(x) G(dout)."""
        a = self.dout(layer, g)  # max |dout|
        x_max = amax(h_in)
        return rows * (s_x * a + x_max * g + x_max * a)

    def fwd(self, layer: LayerSpec, h: np.ndarray, s_in: float) -> tuple[np.ndarray, float]:
        self.inputs[layer.name] = (h, s_in)
        out = self.ref[f"{layer.name}.out"]
        s_out = lookup(layer.kind).scale_fwd(self, layer, h, s_in, out)
        s = self.S[f"{layer.name}.out"] = max(s_out, amax(out))
        return np.asarray(out, dtype=np.float64), s

    def bwd(self, layer: LayerSpec, g: float) -> float:
        h_in, s_x = self.inputs[layer.name]
        g_in = lookup(layer.kind).scale_bwd(self, layer, g, h_in, s_x)
        if layer.integer_input:
            return 0.0  # no input gradient
        self.S[f"{layer.name}.dx"] = max(g_in, amax(self.ref[f"{layer.name}.dx"]))
        return self.S[f"{layer.name}.dx"]


def scales(
    spec: NetSpec, ref: dict[str, np.ndarray], x: Any, target: Any, *, dloss: float, dout: np.ndarray | None
) -> dict[str, float]:
    """S(T) for every tensor name of one run, from the reference run ``ref``."""
    w = ScaleWalker(ref)
    h = np.asarray(x) if np.asarray(x).dtype.kind in "iu" else np.asarray(x, dtype=np.float64)
    s_in = 0.0 if h.dtype.kind in "iu" else amax(x)
    for layer in spec.layers:
        h, s_in = w.fwd(layer, h, s_in)
    S = w.S
    rows = int(np.prod(h.shape[:-1]))  # the logits' rows: what a mean cross-entropy divides by

    s_z, t_max = s_in, (amax(target) if target is not None and np.asarray(target).dtype.kind == "f" else 1.0)
    if dout is None:
        loss, entry = spec.loss, loss_kind(spec.loss.kind)
        n = int(np.size(h))
        cfg = loss.config
        divisor = entry.divisor(cfg, target, rows, n) if entry.divisor else rows if entry.per_row else n
        r = 1.0 / divisor if cfg["reduction"] == "mean" else 1.0
        S["loss"] = max(amax(ref["loss"]), r * entry.terms(cfg, h, target, s_z, rows, n))
        g = S["dlogits"] = max(abs(dloss) * r * entry.grad_terms(cfg, s_z, t_max), amax(ref["dlogits"]))
    else:
        g = amax(dout)
    w.dout_sizes(spec.layers, amax(ref["dlogits"]) if dout is None else g)
    for layer in reversed(spec.layers):
        g = w.bwd(layer, g)
    return S
