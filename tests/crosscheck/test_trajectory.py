"""Trajectory parity: manual_bp's optimisers step for step against torch.optim and optax.

Each case trains a small seeded MLP for 20 full-batch steps in manual_bp,
torch and JAX and compares the loss, every optimiser state tensor and every
parameter at every step (``crosscheck.trajectory``). Planted bugs (an
off-by-one bias correction in Adam, wrong SGD momentum buffers) must fail and
be localised to the right step and tensor. Replay one case with the command in
its failure message, or ``pytest tests/crosscheck/test_trajectory.py -k <case id>``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import manual_bp.optim as optim
from crosscheck import tolerance
from crosscheck.reference.optim_spec import read_optimizer, trajectory_names
from crosscheck.run import compare
from crosscheck.run.trajectory import (
    TRAJECTORY_SAFETY,
    bound,
    compare_trajectory,
    run_manual,
    run_trajectory,
    step_amplification,
    trajectory_case,
    trajectory_cases,
)
from tests.helpers import require_frameworks

CASES = [c.case_id for c in trajectory_cases()]


# ---------------------------------------------------------------- parity of every case


@pytest.mark.parity
@pytest.mark.parametrize("case_id", CASES)
def test_trajectory(case_id: str) -> None:
    require_frameworks(("torch", "jax"))
    result = run_trajectory(case_id)
    assert result.ok, result.summary()
    assert {(c.backend, c.reference) for c in result.comparisons} >= {("manual_bp", "torch")}
    assert all(len(c.checks) > 0 for c in result.comparisons)


def test_cases_cover_the_settings() -> None:
    cases = trajectory_cases()
    assert len(CASES) == len(set(CASES))
    for dtype in ("float64", "float32"):
        kinds = {(c.optimizer, tuple(sorted(c.hyper))) for c in cases if c.dtype == dtype}
        assert ("SGD", ("dampening", "lr", "momentum")) in kinds
        assert ("SGD", ("lr", "momentum", "nesterov")) in kinds
        assert ("Adam", ("amsgrad", "betas", "lr")) in kinds
        assert ("RMSprop", ("alpha", "centered", "lr")) in kinds
        assert any(c.loss == "mse" for c in cases if c.dtype == dtype)
    for c in cases:  # float32: no ReLU kink to cross during training
        model = c.build()[0]
        assert c.dtype == "float64" or all(layer.kind != "relu" for layer in model)


def test_step_amplification_flags_a_gradient_entry_near_eps() -> None:
    """RMSprop's g / (0.1 |g| + eps) turns sensitive where 0.1 |g| ~ eps; elsewhere only v = 0.01 g^2 (2x) shows."""
    p = {"w": np.zeros(3)}
    well = {"w": np.array([1e-2, -5e-3, 2e-3])}
    near = {"w": np.array([1e-2, -5e-3, 1e-7])}
    hyper = {"lr": 1e-3, "momentum": 0.9}
    assert step_amplification(optim.RMSprop, hyper, p, well) == pytest.approx(2.0, rel=1e-4)
    assert step_amplification(optim.RMSprop, hyper, p, near) > 1e3
    assert step_amplification(optim.SGD, {"lr": 0.1, "momentum": 0.9}, p, near) == pytest.approx(1.0, rel=1e-4)


def test_float32_draws_are_well_conditioned() -> None:
    import manual_bp as mbp

    for c in trajectory_cases():
        if c.dtype != "float32":
            continue
        model, loss_fn, x, y = c._draw(c.draw, "float64")
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        kappa = step_amplification(getattr(mbp.optim, c.optimizer), c.hyper, model.params, model.grads)
        assert kappa <= tolerance.FLOAT32_SAFETY, (c.case_id, kappa)


def test_amsgrad_case_takes_the_max() -> None:
    """The amsgrad case must exercise max(v): v falls below its running max at some step."""
    c = trajectory_case("traj-adam-amsgrad-float64")
    model, loss_fn, opt, x, y = c.build()
    got = run_manual(model, loss_fn, opt, x, y, c.steps)
    taken = [
        k
        for k in range(1, c.steps + 1)
        if np.any(got[f"step{k:02d}.2.W.max_exp_avg_sq"] > got[f"step{k:02d}.2.W.exp_avg_sq"])
    ]
    assert taken, "amsgrad's max was never active: the case does not test it"


@pytest.mark.parity
def test_amsgrad_is_compared_against_torch_alone() -> None:
    require_frameworks(("torch", "jax"))
    result = run_trajectory("traj-adam-amsgrad-float32")
    assert "amsgrad" in result.skipped["jax"]
    assert "no jax reference" in result.description
    assert [(c.backend, c.reference) for c in result.comparisons] == [("manual_bp", "torch")]
    assert any(ch.name.endswith("0.W.max_exp_avg_sq") for ch in result.comparisons[0].checks)


# ---------------------------------------------------------------- planted bugs


def _expect_divergence(result: compare.CaseResult, name: str) -> None:
    """manual_bp fails against every reference first at ``name``; the references agree with each other."""
    assert not result.ok, f"the planted bug went unnoticed: {result.summary()}"
    comp, bad = result.first_divergence  # type: ignore[misc]
    assert (comp.backend, bad.name) == ("manual_bp", name), result.summary()
    for comp in result.comparisons:
        if comp.backend == "manual_bp":
            assert comp.first_divergence is not None and comp.first_divergence.name == name, result.summary()
        else:
            assert comp.ok, f"torch and jax disagree: {result.summary()}"
    assert name in result.summary() and result.replay in result.summary()


@pytest.mark.parity
@pytest.mark.parametrize(
    ("shift", "first"),
    [
        (lambda t: t + 1, "step01.0.W"),  # one step ahead: wrong from step 1 on
        (lambda t: max(t - 1, 1), "step02.0.W"),  # one step behind (t - 1 would divide by 1 - beta^0 = 0)
    ],
    ids=["t+1", "t-1"],
)
def test_planted_adam_bias_correction_off_by_one(monkeypatch: pytest.MonkeyPatch, shift, first: str) -> None:
    """The moments are right (bias correction does not enter them), so the parameter is named first."""
    require_frameworks(("torch", "jax"))
    right = optim.Adam.bias_correction
    monkeypatch.setattr(optim.Adam, "bias_correction", lambda self, t: right(self, shift(t)))
    _expect_divergence(run_trajectory("traj-adam-default-float64"), first)


def _sgd_update_ema_buffer(self, p, g, s, t):
    """SGD.update with a classic slip: b <- mu b + (1 - mu) g (an EMA) instead of mu b + (1 - tau) g."""
    if self.weight_decay:
        g = g + self.weight_decay * p
    b = s.momentum_buffer
    b = g.copy() if b is None else self.momentum * b + (1 - self.momentum) * g
    p -= self.lr * (g + self.momentum * b if self.nesterov else b)
    return optim.SGDState(momentum_buffer=b)


def _sgd_update_dampened_first_step(self, p, g, s, t):
    """SGD.update with the other slip: dampening already on the first step, b <- (1 - tau) g."""
    if self.weight_decay:
        g = g + self.weight_decay * p
    b = s.momentum_buffer
    b = (1 - self.dampening) * g if b is None else self.momentum * b + (1 - self.dampening) * g
    p -= self.lr * (g + self.momentum * b if self.nesterov else b)
    return optim.SGDState(momentum_buffer=b)


@pytest.mark.parity
@pytest.mark.parametrize(
    ("update", "case_id", "first"),
    [
        (_sgd_update_ema_buffer, "traj-sgd-momentum-float64", "step02.0.W.momentum_buffer"),
        (_sgd_update_dampened_first_step, "traj-sgd-dampening-float64", "step01.0.W.momentum_buffer"),
    ],
    ids=["ema-buffer", "dampened-first-step"],
)
def test_planted_sgd_momentum_bug(monkeypatch: pytest.MonkeyPatch, update, case_id: str, first: str) -> None:
    """A wrong buffer is named before the parameter it moves, at the first step where it differs."""
    require_frameworks(("torch", "jax"))
    monkeypatch.setattr(optim.SGD, "update", update)
    _expect_divergence(run_trajectory(case_id), first)


# ---------------------------------------------------------------- names, bounds, report, API


def test_names_order_state_before_parameter() -> None:
    present = {
        "step01.loss",
        "step01.0.W",
        "step01.0.W.exp_avg",
        "step01.0.W.exp_avg_sq",
        "step01.0.b",
        "step01.0.b.exp_avg",
        "step01.0.b.exp_avg_sq",
        "step01.0.W.odd",
    }
    names = trajectory_names("adam", ["0.W", "0.b"], 1, present)
    assert names == [
        "step01.loss",
        "step01.0.W.exp_avg",
        "step01.0.W.exp_avg_sq",
        "step01.0.W",
        "step01.0.b.exp_avg",
        "step01.0.b.exp_avg_sq",
        "step01.0.b",
        "step01.0.W.odd",
    ]


def test_bound_float64_flat_float32_linear_in_steps() -> None:
    assert bound("float64", 16, 5, 1) == bound("float64", 16, 5, 20) == 1e-10
    b1, b20 = bound("float32", 16, 5, 1), bound("float32", 16, 5, 20)
    assert b20 == pytest.approx(20 * b1)
    assert b1 == pytest.approx(TRAJECTORY_SAFETY * tolerance.bound("float32", 16, 5))
    assert b20 < 1e-2  # still far below the size of a wrong update rule


def test_compare_trajectory_leaves_model_and_optimiser_alone() -> None:
    model, loss_fn, opt, x, y = trajectory_case("traj-adam-default-float32").build()
    before = copy.deepcopy(model.params)
    result = compare_trajectory(model, loss_fn, opt, x, y, steps=3, frameworks=())
    assert opt.step_count == 0 and all(np.array_equal(model.params[k], v) for k, v in before.items())
    assert result.comparisons == [] and result.optimizer == "adam"
    assert read_optimizer(opt).config["betas"] == (0.9, 0.999)
    opt.step_count = 1
    with pytest.raises(ValueError, match="fresh"):
        compare_trajectory(model, loss_fn, opt, x, y, frameworks=())


@pytest.mark.parity
def test_report_kinds_for_trajectories() -> None:
    require_frameworks(("torch",))
    from crosscheck.run.report import Report

    result = run_trajectory("traj-rmsprop-momentum-float64", frameworks=("torch",))
    rows = {(r["kind"], r["tensor"]) for r in Report([result]).summary()}
    assert rows == {
        ("rmsprop", "loss"),
        ("rmsprop", "param"),
        ("rmsprop", "square_avg"),
        ("rmsprop", "momentum_buffer"),
    }
    assert all(c.mode == "train" for c in result.comparisons)
