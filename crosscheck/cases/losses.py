"""Loss cases: an MLP of the ``mlp`` family (the same blueprint, from the same id) ending in one of the
losses below, drawn by its entry: class-weighted cross-entropy with ignored labels, NLL (after a
LogSoftmax 70% of the time), the multi-class hinge, L1, Huber and smooth L1. Logits near a loss's kink
(L1 at z = t, the hinge at u = 0) are redrawn, as inputs near an activation's kink are (``hazards``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from crosscheck.cases.common import Case
from crosscheck.cases.mlp import SALT, blueprint, build

# kind -> (labels drawn: "weighted"/"int" labels or "prob" float targets, the fewest classes)
LOSS_FAMILY = {
    "softmax_cross_entropy": ("weighted", 2),
    "nll": ("int", 1),
    "multi_margin": ("int", 2),
    "l1": ("prob", 1),
    "huber": ("prob", 1),
    "smooth_l1": ("prob", 1),
}


def loss_case(case_id: int, dtype: str | None = None) -> Case:
    """The loss case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    rng = np.random.default_rng([SALT, 3, case_id])
    kinds = tuple(LOSS_FAMILY)
    kind = kinds[rng.integers(len(kinds))]
    labels, c_min = LOSS_FAMILY[kind]
    bp = blueprint(case_id, dtype)
    acts = bp.activations
    if kind == "nll" and rng.random() < 0.7:
        acts = (*acts[:-1], "log_softmax")  # log-probabilities, as NLLLoss expects (it takes any scores)
    bp = dataclasses.replace(
        bp, dims=(*bp.dims[:-1], max(bp.dims[-1], c_min)), activations=acts, loss=kind, labels=labels
    )
    c = build(bp, str(case_id))
    c.replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    return c
