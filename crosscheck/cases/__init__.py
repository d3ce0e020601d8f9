"""Seeded random cases: ``case(i)`` rebuilds the same model, data and upstream gradients from ``i``.

Each id is drawn by one family (``family``): an MLP (``mlp``: norms, dropout, residual blocks,
embeddings), a CNN (``cnn``), a Transformer block (``transformer``), an MLP ending in one of the
further losses (``losses``: weighted cross-entropy, NLL, hinge, L1, Huber, smooth L1) or a 1-D
convolution network (``conv1d``: Conv1d, MaxPool1d, AvgPool1d), in the shares of
``FAMILIES``. The families share ``common`` and the hazard walk of ``hazards``. docs/cases.md
describes what each draws.
"""

from __future__ import annotations

import numpy as np

from crosscheck.cases.cnn import cnn_case
from crosscheck.cases.common import ACTIVATIONS, INITS, LOSSES, Case
from crosscheck.cases.conv1d import conv1d_case
from crosscheck.cases.losses import loss_case
from crosscheck.cases.mlp import SALT, Blueprint, blueprint, blueprints, build, mlp_case, seed_case
from crosscheck.cases.recurrent import recurrent_case
from crosscheck.cases.transformer import attention_case

FAMILIES = {"mlp": 0.58, "cnn": 0.15, "transformer": 0.15, "losses": 0.06, "conv1d": 0.06}  # share of case ids
_BUILDERS = {
    "mlp": mlp_case,
    "cnn": cnn_case,
    "transformer": attention_case,
    "losses": loss_case,
    "conv1d": conv1d_case,
}

# Recurrent networks take the top of the MLPs' range of u (family), so that every other family keeps its ids.
FAMILIES["recurrent"] = 0.08
FAMILIES["mlp"] = round(FAMILIES["mlp"] - FAMILIES["recurrent"], 6)
_BUILDERS["recurrent"] = recurrent_case


def family(case_id: int) -> str:
    """Which generator draws case ``case_id``, in the shares of ``FAMILIES``."""
    u = np.random.default_rng([SALT, 2, case_id]).random()
    if u >= 1.0 - FAMILIES["recurrent"]:
        return "recurrent"
    edge = 0.0
    for name in ("cnn", "transformer", "losses", "conv1d"):  # losses and conv1d: carved from the MLPs' range
        edge += FAMILIES[name]
        if u < edge:
            return name
    return "mlp"


def case(case_id: int, dtype: str | None = None) -> Case:
    """The case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    return _BUILDERS[family(case_id)](case_id, dtype)


__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "INITS",
    "LOSSES",
    "Blueprint",
    "Case",
    "attention_case",
    "blueprint",
    "blueprints",
    "build",
    "case",
    "cnn_case",
    "conv1d_case",
    "family",
    "loss_case",
    "mlp_case",
    "seed_case",
]
