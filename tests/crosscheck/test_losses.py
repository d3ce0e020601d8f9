"""The losses against crosscheck: parity with PyTorch and JAX inside small networks (float64 and float32,
random upstream gradients, batch and width of 1, class weights and ignored labels), (N, C, d1, ...) logits
against torch's functionals, the loss family's cases of the default sweep, and planted bugs caught at the
loss. Every case is rebuilt from its test id."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck import cases
from crosscheck.run.api import run_case
from crosscheck.run.compare import compare_case
from manual_bp import losses as L
from tests.helpers import case_rng

pytestmark = pytest.mark.parity

W3 = np.array([0.5, 2.0, 1.5])

# name -> (loss, target(r, N, C, dtype), head activation or None, classes)
LOSSES: dict[str, tuple[Callable[[], mbp.Loss], Callable[..., np.ndarray], mbp.Module | None, int]] = {
    "ce-weighted-ignored": (
        lambda: mbp.SoftmaxCrossEntropy(label_smoothing=0.1, weight=W3),
        lambda r, N, C, dt: np.where(np.arange(N) == 0, -100, r.integers(0, C, N)),
        None,
        3,
    ),
    "ce-weighted-probs-sum": (
        lambda: mbp.SoftmaxCrossEntropy("sum", weight=W3),
        lambda r, N, C, dt: r.dirichlet(np.ones(C), N).astype(dt),
        None,
        3,
    ),
    "nll-log-softmax": (
        lambda: mbp.NLLLoss(W3, ignore_index=1),
        lambda r, N, C, dt: r.integers(0, C, N),
        mbp.LogSoftmax(),
        3,
    ),
    "nll-sum": (lambda: mbp.NLLLoss(reduction="sum"), lambda r, N, C, dt: r.integers(0, C, N), None, 3),
    "hinge-p1": (lambda: mbp.MultiMarginLoss(), lambda r, N, C, dt: r.integers(0, C, N), None, 3),
    "hinge-p2-weighted": (
        lambda: mbp.MultiMarginLoss(2, 0.5, W3, "sum"),
        lambda r, N, C, dt: r.integers(0, C, N),
        None,
        3,
    ),
    "l1": (lambda: mbp.L1Loss(), lambda r, N, C, dt: r.standard_normal((N, C)).astype(dt), None, 3),
    "huber": (lambda: mbp.HuberLoss("sum", 0.5), lambda r, N, C, dt: r.standard_normal((N, C)).astype(dt), None, 3),
    "smooth-l1": (
        lambda: mbp.SmoothL1Loss(beta=0.5),
        lambda r, N, C, dt: r.standard_normal((N, C)).astype(dt),
        None,
        3,
    ),
    "smooth-l1-beta0": (
        lambda: mbp.SmoothL1Loss("sum", 0.0),
        lambda r, N, C, dt: r.standard_normal((N, C)).astype(dt),
        None,
        1,
    ),
}


def _case(name: str, seed: int, dtype: str, N: int, D: int) -> tuple:
    make, target, head, C = LOSSES[name]
    r = case_rng(name, seed)
    layers = [mbp.Linear(D, 4, rng=r, dtype=dtype), mbp.Tanh(), mbp.Linear(4, C, rng=r, dtype=dtype)]
    model = mbp.Sequential(*layers, *([head] if head is not None else []))
    x = r.standard_normal((N, D)).astype(dtype)
    y = target(r, N, C, dtype)
    loss_fn = make()
    if N == 1 and isinstance(loss_fn, (mbp.SoftmaxCrossEntropy, mbp.NLLLoss)) and y.dtype.kind in "iu":
        y = np.where(y == loss_fn.ignore_index, 0, y)
        y = np.where(y == loss_fn.ignore_index, 2, y)  # one label that counts
    return model, loss_fn, x, y, r.standard_normal((N, C)).astype(dtype), float(r.uniform(0.5, 2.0))


@pytest.mark.parametrize(
    ("dtype", "N", "D"), [("float64", 6, 5), ("float32", 6, 5), ("float64", 1, 1), ("float32", 1, 3)]
)
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_match_torch_and_jax(name: str, seed: int, dtype: str, N: int, D: int, frameworks) -> None:
    model, loss_fn, x, y, dout, dloss = _case(name, seed, dtype, N, D)
    result = compare_case(
        model, loss_fn, x, y, dloss=dloss, dout=dout, frameworks=frameworks, case_id=f"{name}-{seed}-{dtype}-{N}x{D}"
    )
    assert result.ok, result.summary()


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 2, 3), (1, 1, 5)])
@pytest.mark.parametrize("which", ["ce", "ce-probs", "nll"])
def test_class_axis_one_matches_torch(which: str, shape: tuple, frameworks) -> None:
    """(N, C, d1, ...) logits with labels (N, d1, ...): torch's functionals, float64, to rounding."""
    import torch
    import torch.nn.functional as TF

    r = case_rng(which, len(shape))
    C = shape[1]
    z = r.standard_normal(shape)
    w = r.uniform(0.2, 2.0, C)
    y = r.integers(0, C, (shape[0], *shape[2:]))
    y.flat[-1] = -100
    if which == "ce-probs":
        y = np.moveaxis(r.dirichlet(np.ones(C), (shape[0], *shape[2:])), -1, 1).copy()
    ours = mbp.NLLLoss(w) if which == "nll" else mbp.SoftmaxCrossEntropy(label_smoothing=0.2, weight=w)
    value, grad = ours.forward(z, y), ours.backward(1.7)
    zt = torch.tensor(z, requires_grad=True)
    fn = (
        TF.nll_loss
        if which == "nll"
        else lambda a, b, weight: TF.cross_entropy(a, b, weight=weight, label_smoothing=0.2)
    )
    ref = fn(zt, torch.from_numpy(y), weight=torch.tensor(w))
    ref.backward(torch.tensor(1.7, dtype=torch.float64))
    assert value == pytest.approx(ref.item(), rel=1e-13, abs=1e-15)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_loss_family_cases_pass_and_draw_every_new_loss(frameworks) -> None:
    """The default sweep's first loss-family cases (each loss kind once, both dtypes) pass."""
    ids: dict[str, int] = {}
    for i in range(500):
        if cases.family(i) == "losses":
            ids.setdefault(cases.case(i).loss_fn.kind, i)
    assert set(ids) == {"softmax_cross_entropy", "nll", "multi_margin", "l1", "huber", "smooth_l1"}
    for kind, i in sorted(ids.items()):
        result = run_case(cases.case(i), frameworks)
        assert result.ok, f"case {i} ({kind}): {result.summary()}"


# ---------------------------------------------------------------- planted bugs


def _hinge_counting_the_true_class(x, y, p=1, margin=1.0, weight=None, reduction="mean"):
    N, C = x.shape
    u = np.maximum(margin - x[np.arange(N), y][:, None] + x, 0)  # the true class's u = margin is a term too
    wy = np.ones(N) if weight is None else weight[y]
    scale = 1.0 / N if reduction == "mean" else 1.0
    coef = (wy * (scale / C)).astype(x.dtype)
    return ((u if p == 1 else u * u).sum(axis=1) * coef).sum(), (y, np.where(np.eye(C, dtype=bool)[y], 0, u), p, coef)


PLANTS = {
    "hinge_counts_the_true_class": ("multi_margin_forward", _hinge_counting_the_true_class, "hinge-p1", "loss"),
    # the gradient's mean divides by the number of labels counted, not by the sum of their weights
    "weighted_mean_unweighted": (
        "softmax_cross_entropy_forward",
        lambda good: (
            lambda z, y, red, eps, w, ii: (lambda out: (out[0], (*out[1][:3], 1 / out[1][1][1].sum(), *out[1][4:])))(
                good(z, y, red, eps, w, ii)
            )
        ),
        "ce-weighted-ignored",
        "dlogits",
    ),
    "l1_gradient_of_mse": ("l1_backward", lambda dloss, cache: (dloss * cache[1]) * cache[0], "l1", "dlogits"),
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_planted_loss_bugs_are_caught_at_the_loss(plant: str, monkeypatch, frameworks) -> None:
    attr, bad, name, first = PLANTS[plant]
    good = getattr(L, attr)
    monkeypatch.setattr(L, attr, bad if plant != "weighted_mean_unweighted" else bad(good))
    for seed in range(3):
        model, loss_fn, x, y, dout, dloss = _case(name, seed, "float64", 6, 5)
        result = compare_case(model, loss_fn, x, y, dloss=dloss, dout=dout, frameworks=frameworks)
        assert not result.ok, f"{plant} seed {seed}: the planted bug went unnoticed"
        comp, check = result.first_divergence
        assert comp.backend == "manual_bp" and check.name == first, (plant, seed, check.name)
