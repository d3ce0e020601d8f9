"""Kinks on purpose, near-kinks never: one walk of the size of the terms behind every value.

``plant_kinks`` zeroes one output unit (weights and bias) of each layer followed by a kinked
activation, so that unit's pre-activation is exactly 0 in every backend and the derivative
conventions there are compared. ``hazards`` walks the layers' own forwards with m, the size of the
terms summed into each value (each kind's ``terms`` rule), and asks each kind's ``hazard`` rule
whether an input lies within ``NEAR_KINK[dtype]`` times m of a kink or, for a max-pool, of a tie.
There two correct implementations may round to opposite sides and legitimately disagree by a whole
derivative jump, so such a case is redrawn. An input exactly on a kink is safe only when it is exact
in every backend: every term summed into it is zero (m = 0, as for the planted zeros). The rules are
on docs/cases.md.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from crosscheck.kinds import REGISTRY, lookup, loss_kind
from crosscheck.kinds.activations import kink_at_zero

NEAR_KINK = {"float64": 1e-9, "float32": 1e-4}
KINKED = tuple(kind for kind, entry in REGISTRY.items() if entry.hazard is kink_at_zero)  # ReLU, LeakyReLU, ELU


class HazardWalker:
    """Runs manual_bp layers forward, carrying m beside every value and stopping at the first hazard."""

    def __init__(self, dtype: str) -> None:
        self.tol, self.eps = NEAR_KINK[dtype], float(np.finfo(dtype).eps)

    def walk(self, layers: list[Any], h: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(output, its terms, whether a hazard was met) of running ``layers`` on h with terms m."""
        for layer in layers:
            entry = lookup(layer.kind)
            if entry.walk is not None:  # a container walks its children
                h, m, near = entry.walk(self, layer, h, m)
                if near:
                    return h, m, True
                continue
            if entry.hazard(layer, h, m, self.tol):
                return h, m, True
            y = layer.forward(h)  # (a Dropout draws here the mask that the case freezes)
            h, m = y, entry.terms(layer, h, y, m, self.eps)
        return h, m, False


def hazards(layers: list[Any], x: np.ndarray, dtype: str, loss_fn: Any = None, target: Any = None) -> bool:
    """True if some layer's input lies near a kink or a tie (see the module docstring), or, given a loss,
    the logits lie near the loss's kink (``LossKind.hazard``: L1 at z = t, a hinge at u = 0); runs the forwards."""
    walker = HazardWalker(dtype)
    h, m, near = walker.walk(layers, x, np.abs(x) if x.dtype.kind == "f" else x)
    rule = loss_kind(loss_fn.kind).hazard if loss_fn is not None and not near else None
    return near or (rule is not None and bool(rule(loss_fn.config(), h, target, m, walker.tol)))


def plant_kinks(rng: np.random.Generator, layers: list[Any]) -> bool:
    """Zero one output unit of each layer that can (``Kind.plant``) followed by a kinked activation."""
    planted = False
    batch_stats = any(lookup(layer.kind).buffers for layer in layers)  # a BatchNorm normalises over the batch
    for layer, act in itertools.pairwise(layers):
        plant = lookup(layer.kind).plant
        if plant is None or act.kind not in KINKED:
            continue
        if batch_stats and getattr(layer, "out_features", None) == 1:
            continue  # zeroing the only unit makes every sample alike: BatchNorm would normalise rounding noise
        plant(layer, rng)
        planted = True
    return planted
