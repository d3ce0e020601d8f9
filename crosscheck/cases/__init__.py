"""Seeded random cases: ``case(i)`` rebuilds the same model, data and upstream gradients from ``i``.

Each id is drawn by one family (``family``): an MLP (``mlp``: norms, dropout, residual blocks,
embeddings), a CNN (``cnn``) or a Transformer block (``transformer``), in the shares of
``FAMILIES``. The families share ``common`` and the hazard walk of ``hazards``. docs/cases.md
describes what each draws.
"""

from __future__ import annotations

import numpy as np

from crosscheck.cases.cnn import cnn_case
from crosscheck.cases.common import ACTIVATIONS, INITS, LOSSES, Case
from crosscheck.cases.mlp import SALT, Blueprint, blueprint, blueprints, build, mlp_case, seed_case
from crosscheck.cases.transformer import attention_case

FAMILIES = {"mlp": 0.70, "cnn": 0.15, "transformer": 0.15}  # share of case ids
_BUILDERS = {"mlp": mlp_case, "cnn": cnn_case, "transformer": attention_case}


def family(case_id: int) -> str:
    """Which generator draws case ``case_id``, in the shares of ``FAMILIES``."""
    u = np.random.default_rng([SALT, 2, case_id]).random()
    return "cnn" if u < FAMILIES["cnn"] else "transformer" if u < FAMILIES["cnn"] + FAMILIES["transformer"] else "mlp"


def case(case_id: int, dtype: str | None = None) -> Case:
    """The case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    return _BUILDERS[family(case_id)](case_id, dtype)


__all__ = ["ACTIVATIONS", "FAMILIES", "INITS", "LOSSES", "Blueprint", "Case", "attention_case", "blueprint",
           "blueprints", "build", "case", "cnn_case", "family", "mlp_case", "seed_case"]
