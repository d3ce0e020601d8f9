"""Trajectory parity with learning-rate schedules, gradient clipping and Adagrad (``crosscheck.run.trajectory``
``SCHEDULE_SETTINGS``): each case exercises what it names, settings optax cannot express are compared against
torch alone with the reason kept, and planted bugs (a cosine schedule one step ahead, Adagrad's eps inside the
root, clipping without torch's 1e-6) fail at the right step and tensor. Replay one case with the command in its
failure message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.reference.optim_spec import read_optimizer
from crosscheck.run.trajectory import SCHEDULE_SETTINGS, run_manual, run_trajectory, trajectory_case
from manual_bp import optim
from manual_bp import schedule as S

IDS = [f"traj-{name}-{dtype}" for dtype in ("float64", "float32") for name, *_ in SCHEDULE_SETTINGS]
TORCH_ONLY = {
    "sgd-one-cycle-momentum": "cycle_momentum",
    "sgd-plateau": "reduce_lr_on_plateau",
    "adam-clip-norm": "clip_grad_norm_",
    "sgd-clip-norm-inf": "clip_grad_norm_",
    "adagrad-default-cosine": "adagrad eps",
}


@pytest.mark.parity
@pytest.mark.parametrize("case_id", IDS)
def test_schedule_trajectory(case_id: str, frameworks) -> None:
    result = run_trajectory(case_id, frameworks)
    assert result.ok, result.summary()
    name = case_id.removeprefix("traj-").rsplit("-", 1)[0]
    pairs = {(c.backend, c.reference) for c in result.comparisons}
    if name in TORCH_ONLY:
        assert TORCH_ONLY[name] in result.skipped["jax"], result.skipped
        assert pairs == {("manual_bp", "torch")}
    else:
        assert pairs == {("manual_bp", "torch"), ("manual_bp", "jax"), ("torch", "jax")}, result.skipped


def _lrs_and_grads(case_id: str) -> tuple[list[float], list[dict[str, np.ndarray]]]:
    """The lr of every step and the gradients before clipping, from manual_bp's own loop."""
    c = trajectory_case(case_id)
    model, loss_fn, opt, x, y = c.build()
    sched = c.scheduler(opt)
    lrs, grads = [], []
    for _ in range(c.steps):
        lrs.append(opt.lr)
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        grads.append({k: g.copy() for k, g in model.grads.items()})
        opt.step()
        if sched is not None:
            sched.step(float(loss)) if sched.kind == "reduce_lr_on_plateau" else sched.step()
    return lrs, grads


def test_cases_exercise_what_they_name() -> None:
    lrs, _ = _lrs_and_grads("traj-sgd-plateau-float64")
    assert len(set(lrs)) >= 4, lrs  # the plateau cut the rate at least 3 times in 20 steps
    lrs, _ = _lrs_and_grads("traj-sgd-cosine-float64")
    assert lrs[8] < lrs[9] < lrs[15] and lrs[16] > lrs[17]  # past T_max = 8 it climbs back, then falls
    lrs, _ = _lrs_and_grads("traj-sgd-linear-warmup-float64")
    assert lrs[0] == pytest.approx(0.02) and lrs[8] == lrs[19] == pytest.approx(0.2)
    lrs, _ = _lrs_and_grads("traj-adam-one-cycle-float64")
    assert max(lrs) == pytest.approx(0.05) and lrs.index(max(lrs)) == 5  # the peak at pct_start T - 1
    _, grads = _lrs_and_grads("traj-sgd-clip-value-float64")
    assert all(max(np.abs(g).max() for g in gs.values()) > 0.05 for gs in grads[:5])  # clipping acts
    for case_id, max_norm in (("traj-adam-clip-norm-float64", 0.1), ("traj-sgd-clip-norm-inf-float64", 0.05)):
        _, grads = _lrs_and_grads(case_id)
        norm_type = trajectory_case(case_id).clip["norm_type"]
        total = [np.linalg.norm(np.concatenate([g.ravel() for g in gs.values()]), ord=norm_type) for gs in grads]
        assert sum(t > max_norm for t in total) >= 10, (case_id, total)


def test_spec_reads_the_lr_before_the_scheduler() -> None:
    _, _, opt, _, _ = trajectory_case("traj-sgd-linear-warmup-float64").build()
    sched = S.LinearLR(opt, start_factor=0.1, total_iters=8)
    spec = read_optimizer(opt, sched, {"kind": "value", "clip_value": 0.5})
    assert opt.lr == pytest.approx(0.02) and spec.config["lr"] == 0.2
    assert spec.schedule == {
        "kind": "linear_lr",
        "start_factor": 0.1,
        "end_factor": 1.0,
        "total_iters": 8,
        "base_lr": 0.2,
    }
    assert spec.clip == {"kind": "value", "clip_value": 0.5}


def test_a_used_scheduler_is_refused() -> None:
    from crosscheck.run.trajectory import compare_trajectory

    c = trajectory_case("traj-sgd-step-lr-float64")
    model, loss_fn, opt, x, y = c.build()
    sched = c.scheduler(opt)
    sched.step()
    with pytest.raises(ValueError, match="freshly built scheduler"):
        compare_trajectory(model, loss_fn, opt, x, y, steps=2, frameworks=(), scheduler=sched)


def test_run_manual_steps_the_scheduler_after_the_optimiser() -> None:
    c = trajectory_case("traj-sgd-step-lr-float64")
    model, loss_fn, opt, x, y = c.build()
    got = run_manual(model, loss_fn, opt, x, y, 6, c.scheduler(opt))
    model2, loss_fn2, opt2, _, _ = c.build()
    for k in range(6):  # by hand: steps 1-5 at lr 0.1, step 6 at 0.05
        opt2.lr = 0.1 if k < 5 else 0.05
        loss_fn2.forward(model2.forward(x), y)
        model2.backward(loss_fn2.backward())
        opt2.step()
    np.testing.assert_array_equal(got["step06.0.W"], model2.params["0.W"])


# ---------------------------------------------------------------- planted bugs


def _expect(result: Any, name: str) -> None:
    assert not result.ok, f"the planted bug went unnoticed: {result.summary()}"
    comp, bad = result.first_divergence
    assert (comp.backend, bad.name) == ("manual_bp", name), result.summary()
    assert all(c.ok for c in result.comparisons if c.backend != "manual_bp"), "the references disagree"


@pytest.mark.parity
def test_planted_cosine_one_step_ahead(monkeypatch: pytest.MonkeyPatch, frameworks) -> None:
    """The first step's lr is right (set at construction); step 2 uses t = 2's: its parameter is named."""
    right = S.CosineAnnealingLR.get_lr

    def one_step_ahead(self: Any) -> float:
        self.last_epoch += 1
        try:
            return right(self)
        finally:
            self.last_epoch -= 1

    monkeypatch.setattr(S.CosineAnnealingLR, "get_lr", one_step_ahead)
    _expect(run_trajectory("traj-sgd-cosine-float64", frameworks), "step02.0.W")


@pytest.mark.parity
def test_planted_adagrad_eps_inside_the_root(monkeypatch: pytest.MonkeyPatch, frameworks) -> None:
    def update(self: Any, p: np.ndarray, g: np.ndarray, s: Any, t: int) -> Any:
        g = g + self.weight_decay * p
        acc = s.sum
        acc += g * g
        p -= self.lr / (1 + (t - 1) * self.lr_decay) * g / np.sqrt(acc + 1e-6)  # optax's placement, eps 1e-6
        return s

    monkeypatch.setattr(optim.Adagrad, "update", update)
    _expect(run_trajectory("traj-adagrad-float64", frameworks), "step01.0.W")


@pytest.mark.parity
def test_planted_clip_norm_without_torchs_epsilon(monkeypatch: pytest.MonkeyPatch, frameworks) -> None:
    def clip(grads: dict[str, np.ndarray], max_norm: float, norm_type: float = 2.0) -> float:
        total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
        for g in grads.values():
            g *= min(max_norm / total, 1.0)
        return total

    monkeypatch.setattr(mbp, "clip_grad_norm_", clip)
    _expect(run_trajectory("traj-adam-clip-norm-float64", frameworks), "step01.0.W.exp_avg")
