"""The kind registry: one entry per layer kind and per loss kind (``Kind``, ``LossKind``).

``lookup(kind)`` gives a layer kind's entry, ``loss_kind(kind)`` a loss's. One module per family
registers its entries here; ``register`` adds a user's own. See docs/adding-a-layer.md.
"""

from __future__ import annotations

from crosscheck.kinds import (
    activations,
    attention,
    containers,
    conv,
    conv1d,
    conv_transpose,
    dense,
    losses,
    norms,
    recurrent,
)
from crosscheck.kinds.entry import LOSSES, REGISTRY, Kind, LossKind, lookup, loss_kind, register

for _family in (dense, activations, norms, conv, conv1d, conv_transpose, attention, containers, recurrent, losses):
    register(*_family.KINDS)

__all__ = ["LOSSES", "REGISTRY", "Kind", "LossKind", "lookup", "loss_kind", "register"]
