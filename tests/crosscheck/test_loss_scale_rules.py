"""Each loss kind's term-size rules (``terms``, ``grad_terms``, ``divisor``) on their own: the loss run in
float32 and in float64 on the same float32-exact logits and targets; the float32 loss and dlogits must lie
within the float32 bound of the float64 run, measured against the rule's S (``crosscheck.tolerance.scales``).

The logits are chosen where the plain relative error is useless: confident rows (p - 1 for the label
cancels), hinge arguments margin - z_y + z_i from large scores (the margin rounds against them), huge
offsets, class weights of different sizes, so a rule that undercounts its terms fails here
(``test_the_loss_examples_need_the_rules``). (Residuals z - t of nearby float32 numbers are exact, so the
elementwise losses round only in their sums.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck import tolerance
from crosscheck.kinds import LOSSES
from crosscheck.reference.read import read_spec
from crosscheck.run.compare import run_manual

Make = Callable[[np.random.Generator], tuple[mbp.Loss, np.ndarray, np.ndarray]]  # (loss, z, target) float64


def _logits(r: np.random.Generator, N: int, C: int, offset: float = 300.0) -> np.ndarray:
    return offset + r.standard_normal((N, C))  # huge, nearly equal: the loss is a small difference


def _labels(r: np.random.Generator, N: int, C: int, ignore: bool = False) -> np.ndarray:
    y = r.integers(0, C, N)
    if ignore and N > 1:
        y[0] = -100
    return y


def _weights(r: np.random.Generator, C: int) -> np.ndarray:
    return r.uniform(0.1, 3.0, C)


def _dims(r: np.random.Generator) -> tuple[int, int]:
    return int(r.integers(1, 9)), int(r.integers(2, 7))


def _ce(r: np.random.Generator) -> tuple[mbp.Loss, np.ndarray, np.ndarray]:
    N, C = _dims(r)
    loss = mbp.SoftmaxCrossEntropy(str(r.choice(["mean", "sum"])), float(r.choice([0.0, 0.2])), weight=_weights(r, C))
    y = _labels(r, N, C)
    z = r.standard_normal((N, C))
    z[np.arange(N), y] += 20.0  # confident rows: p_y - 1 ~ -1e-9 and the loss ~ 1e-9 come from cancellation
    if N > 1:
        y[0] = -100
    return loss, z, y


def _ce_probs(r: np.random.Generator) -> tuple[mbp.Loss, np.ndarray, np.ndarray]:
    N, C = _dims(r)
    return mbp.SoftmaxCrossEntropy(weight=_weights(r, C)), _logits(r, N, C), r.dirichlet(np.ones(C), N)


def _nll(r: np.random.Generator) -> tuple[mbp.Loss, np.ndarray, np.ndarray]:
    N, C = _dims(r)
    return (
        mbp.NLLLoss(_weights(r, C), reduction=str(r.choice(["mean", "sum"]))),
        _logits(r, N, C),
        _labels(r, N, C, ignore=True),
    )


def _hinge(r: np.random.Generator) -> tuple[mbp.Loss, np.ndarray, np.ndarray]:
    N, C = _dims(r)
    loss = mbp.MultiMarginLoss(int(r.integers(1, 3)), 0.1, _weights(r, C), str(r.choice(["mean", "sum"])))
    return loss, _logits(r, N, C, offset=1e3), _labels(r, N, C)  # 0.1 - z_y rounds at eps |z_y|


def _elementwise(make: Callable[[np.random.Generator], mbp.Loss]) -> Make:
    def build(r: np.random.Generator) -> tuple[mbp.Loss, np.ndarray, np.ndarray]:
        N, C = _dims(r)
        z = _logits(r, N, C, offset=50.0)
        return make(r), z, z + 0.3 * r.standard_normal((N, C))  # z - t cancels: |r| << |z| + |t|

    return build


EXAMPLES: dict[str, list[Make]] = {
    "softmax_cross_entropy": [_ce, _ce_probs],
    "nll": [_nll],
    "multi_margin": [_hinge],
    "mse": [_elementwise(lambda r: mbp.MSE())],
    "bce_with_logits": [lambda r: (mbp.BCEWithLogits(), _logits(r, 3, 4, offset=20.0), r.random((3, 4)))],
    "l1": [_elementwise(lambda r: mbp.L1Loss(str(r.choice(["mean", "sum"]))))],
    "huber": [_elementwise(lambda r: mbp.HuberLoss(delta=float(r.choice([0.1, 1.0]))))],
    "smooth_l1": [_elementwise(lambda r: mbp.SmoothL1Loss("sum", float(r.choice([0.0, 0.1, 1.0]))))],
}
CASES = [(kind, i) for kind in sorted(EXAMPLES) for i in range(len(EXAMPLES[kind]))]
SEEDS = range(6)


def _checks(kind: str, i: int, seed: int, scale_of: Callable[[dict[str, float], str], float]) -> list[Any]:
    loss, z, t = EXAMPLES[kind][i](np.random.default_rng([seed, 64]))
    z32 = z.astype(np.float32)
    t32 = t.astype(np.float32) if t.dtype.kind == "f" else t
    t64 = t32.astype(np.float64) if t.dtype.kind == "f" else t
    model64, model32 = mbp.Sequential(mbp.Identity()), mbp.Sequential(mbp.Identity())
    ref = run_manual(model64, loss, z32.astype(np.float64), t64, dloss=1.3)
    got = run_manual(model32, loss, z32, t32, dloss=1.3)
    spec = read_spec(model64, loss)
    S = tolerance.scales(spec, ref, z32.astype(np.float64), t64, dloss=1.3, dout=None)
    bound = tolerance.bound("float32", tolerance.reduction_length(spec, z32.astype(np.float64)), 1)
    return [
        tolerance.check(n, np.asarray(got[n], np.float64), np.asarray(ref[n]), bound, scale_of(S, n))
        for n in ("loss", "dlogits")
    ]


def test_every_loss_kind_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(LOSSES), "add an example for each registered loss kind"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("kind", "i"), CASES)
def test_float32_loss_rounding_stays_within_the_rule(kind: str, i: int, seed: int) -> None:
    bad = [c for c in _checks(kind, i, seed, lambda S, n: S.get(n, 0.0)) if not c.ok]
    assert not bad, f"{kind} example {i} seed {seed}: " + "; ".join(
        f"{c.name}: rel_norm {c.rel_norm:.2e} rel_max {c.rel_max:.2e} > {c.bound:.2e} {c.note}" for c in bad
    )


def test_the_loss_examples_need_the_rules() -> None:
    """Without S the same float32 runs fail: the examples exercise cancellation."""
    failing = {
        kind
        for kind, i in CASES
        for seed in SEEDS[:3]
        if not all(c.ok for c in _checks(kind, i, seed, lambda S, n: 0.0))
    }
    assert {"softmax_cross_entropy", "multi_margin"} <= failing, sorted(failing)
