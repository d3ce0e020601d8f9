"""Schedulers (manual_bp/schedule.py), clipping (manual_bp/clip.py) and Adagrad (manual_bp/optim.py).

The closed forms below are written out from torch's documentation, independently of manual_bp; the
schedulers compute torch's recursive forms, so they agree to rounding. A parity test (marked
``parity``) steps torch.optim.lr_scheduler beside every scheduler and asks for the same floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import schedule as S


def _opt(lr: float = 0.1, cls: Any = mbp.SGD, **kw: Any) -> mbp.Optimizer:
    return cls({"w": np.zeros(3)}, lr=lr, **kw)


def _lrs(sched: Any, n: int, metrics: Callable[[int], float] | None = None) -> list[float]:
    """The lr each of n optimiser steps uses: the one set at construction, then after each step()."""
    out = []
    for k in range(n):
        out.append(sched.optimizer.lr)
        sched.step() if metrics is None else sched.step(metrics(k))
    return out


# ---------------------------------------------------------------- closed forms (torch's documentation)

CLOSED: dict[str, tuple[Callable[[mbp.Optimizer], Any], Callable[[int], float]]] = {
    "step": (lambda o: S.StepLR(o, 3, 0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
    "multi-step": (lambda o: S.MultiStepLR(o, [2, 5, 5], 0.1), lambda t: 0.1 * 0.1 ** ((t >= 2) + 2 * (t >= 5))),
    "exponential": (lambda o: S.ExponentialLR(o, 0.9), lambda t: 0.1 * 0.9**t),
    "cosine": (
        lambda o: S.CosineAnnealingLR(o, 7, 0.01),
        lambda t: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / 7)) / 2,
    ),
    "linear": (lambda o: S.LinearLR(o, 0.25, 0.75, 6), lambda t: 0.1 * (0.25 + 0.5 * min(t, 6) / 6)),
}


@pytest.mark.parametrize("name", list(CLOSED))
def test_schedulers_follow_the_closed_form(name: str) -> None:
    """40 steps: past T_max the cosine climbs back (periodic, no restart), past total_iters LinearLR stays."""
    make, closed = CLOSED[name]
    got = _lrs(make(_opt()), 40)
    np.testing.assert_allclose(got, [closed(t) for t in range(40)], rtol=1e-13, err_msg=name)


def test_cosine_recursion_takes_torchs_branch_where_the_denominator_vanishes() -> None:
    """At t = T_max + 1 the recursive form's 1 + cos(pi (t - 1) / T) is 0; torch switches formulas there."""
    sched = S.CosineAnnealingLR(_opt(), 4, 0.0)
    got = _lrs(sched, 6)
    assert got[4] == pytest.approx(0.0, abs=1e-17) and got[5] == pytest.approx(0.1 * (1 - math.cos(math.pi / 4)) / 2)


def test_one_cycle_phases() -> None:
    """Up from max_lr / div to max_lr at step pct_start T - 1, down to max_lr / (div final) at T - 1; momentum
    the opposite way between max_momentum and base_momentum."""
    opt = _opt(cls=mbp.SGD, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.2, div_factor=10.0, final_div_factor=100.0)
    lrs, moms = [], []
    for _ in range(10):
        lrs.append(opt.lr)
        moms.append(opt.momentum)
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[1] == pytest.approx(1.0) and lrs[9] == pytest.approx(1e-3)
    assert moms[0] == pytest.approx(0.95) and moms[1] == pytest.approx(0.85) and moms[9] == pytest.approx(0.95)
    assert np.all(np.diff(lrs[1:]) < 0)
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 11 times; total_steps is 10"):
        sched.step()
    adam = _opt(cls=mbp.Adam, betas=(0.9, 0.99))
    S.OneCycleLR(adam, max_lr=0.5, total_steps=10)
    assert adam.betas == (0.95, 0.99)  # beta1 carries the momentum
    with pytest.raises(ValueError, match="cycle_momentum needs an optimiser with momentum or betas"):
        S.OneCycleLR(_opt(cls=mbp.Adagrad), max_lr=0.5, total_steps=10)


def test_reduce_on_plateau_patience_cooldown_and_min_lr() -> None:
    sched = S.ReduceLROnPlateau(_opt(1.0), factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    metrics = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    got = _lrs(sched, len(metrics), lambda k: metrics[k])
    # bad epochs 1, 2 -> cut after step 2 (lr for step 3), cooldown 1 epoch, then 2 more bad -> cut, ...
    assert got == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2]


def test_last_epoch_and_initial_lr() -> None:
    """The first scheduler records initial_lr; a second one reuses it; resuming needs it."""
    opt = _opt(0.3)
    S.LinearLR(opt, start_factor=0.5, total_iters=4)
    assert opt.lr == pytest.approx(0.15) and opt.initial_lr == 0.3
    second = S.CosineAnnealingLR(opt, T_max=10)
    assert second.base_lr == 0.3 and second.config()["base_lr"] == 0.3
    with pytest.raises(ValueError, match=r"resuming with last_epoch=5 needs optimizer\.initial_lr"):
        S.StepLR(_opt(), 2, last_epoch=5)
    opt = _opt(0.3)
    opt.initial_lr = 0.3  # type: ignore[attr-defined]
    resumed = S.CosineAnnealingLR(opt, T_max=10, eta_min=0.0, last_epoch=4)
    assert resumed.last_epoch == 5 and opt.lr == 0.3  # torch's construction step keeps the current lr
    resumed.step()  # then the recursion from it: lr (1 + cos(6 pi / 10)) / (1 + cos(5 pi / 10))
    assert opt.lr == pytest.approx(0.3 * (1 + math.cos(math.pi * 6 / 10)), rel=1e-14)


BAD = [
    (lambda: S.StepLR(_opt(), 0), ValueError, "StepLR: step_size must be a positive int, got 0"),
    (lambda: S.StepLR({"w": 1}, 2), TypeError, "StepLR: expected a manual_bp optimiser, got dict"),
    (lambda: S.MultiStepLR(_opt(), [1.5]), ValueError, "MultiStepLR: milestones must be ints"),
    (lambda: S.ExponentialLR(_opt(), math.nan), ValueError, "ExponentialLR: gamma must be a finite number"),
    (lambda: S.CosineAnnealingLR(_opt(), 3, last_epoch=-2), ValueError, "last_epoch must be an int >= -1"),
    (lambda: S.LinearLR(_opt(), start_factor=0.0), ValueError, "LinearLR: start_factor must be in (0, 1]"),
    (lambda: S.LinearLR(_opt(), end_factor=1.5), ValueError, "LinearLR: end_factor must be in [0, 1]"),
    (lambda: S.OneCycleLR(_opt(), 0.1), ValueError, "OneCycleLR: define either total_steps or"),
    (lambda: S.OneCycleLR(_opt(), 0.1, 10, pct_start=1), ValueError, "pct_start must be a float in [0, 1]"),
    (lambda: S.OneCycleLR(_opt(), 0.1, 10, anneal_strategy="exp"), ValueError, "anneal_strategy must be"),
    (lambda: S.ReduceLROnPlateau(_opt(), factor=1.0), ValueError, "ReduceLROnPlateau: factor must be < 1.0"),
    (lambda: S.ReduceLROnPlateau(_opt(), mode="up"), ValueError, "mode must be 'min' or 'max'"),
    (lambda: mbp.Adagrad({"w": np.zeros(2)}, lr_decay=-1.0), ValueError, "Adagrad: lr_decay must be a finite number"),
    (lambda: mbp.clip_grad_norm_({"w": np.ones(2)}, 1.0, norm_type=0), ValueError, "norm_type must be > 0 or inf"),
    (lambda: mbp.clip_grad_value_([np.ones(2)], 1.0), TypeError, "clip_grad_value_: expected a dict"),
    (
        lambda: mbp.clip_grad_norm_({"w": np.full(2, np.inf)}, 1.0, error_if_nonfinite=True),
        ValueError,
        "the total norm of order 2.0 of the gradients is inf",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments(call: Callable[[], Any], exc: type, message: str) -> None:
    import re

    with pytest.raises(exc, match=re.escape(message)):
        call()


# ---------------------------------------------------------------- clipping and Adagrad


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm(norm_type: float, seed: int) -> None:
    r = np.random.default_rng(seed)
    grads = {"a": r.standard_normal((3, 4)), "b": r.standard_normal(1)}
    flat = np.concatenate([g.ravel() for g in grads.values()])
    total = np.max(np.abs(flat)) if norm_type == math.inf else np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    before = {k: g.copy() for k, g in grads.items()}
    for max_norm in (total / 3, 10 * total):
        grads = {k: g.copy() for k, g in before.items()}
        got = mbp.clip_grad_norm_(grads, max_norm, norm_type)
        assert got == pytest.approx(total, rel=1e-13)
        coef = min(max_norm / (total + 1e-6), 1.0)  # torch's 1e-6
        for k in grads:
            np.testing.assert_allclose(grads[k], before[k] * coef, rtol=1e-14, err_msg=f"seed {seed}")


def test_clip_grad_value_in_place_and_dtype() -> None:
    g = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], np.float32)
    grads = {"w": g}
    mbp.clip_grad_value_(grads, 1.0)
    assert grads["w"] is g and g.dtype == np.float32
    np.testing.assert_array_equal(g, [-1.0, -0.5, 0.0, 0.5, 1.0])


@pytest.mark.parametrize("seed", range(3))
def test_adagrad_hand_formula(seed: int) -> None:
    """s = s0 + sum g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps), weight decay added to g."""
    r = np.random.default_rng(seed)
    p0 = r.standard_normal((2, 3))
    hyper = {"lr": 0.1, "lr_decay": 0.2, "weight_decay": 0.05, "initial_accumulator_value": 0.3, "eps": 1e-3}
    params = {"w": p0.copy()}
    opt = mbp.Adagrad(params, **hyper)
    p, s = p0.copy(), np.full((2, 3), 0.3)
    for t in range(1, 6):
        g = r.standard_normal((2, 3))
        opt.step({"w": g})
        g = g + 0.05 * p
        s = s + g * g
        p = p - 0.1 / (1 + (t - 1) * 0.2) * g / (np.sqrt(s) + 1e-3)
        np.testing.assert_allclose(params["w"], p, rtol=1e-13, err_msg=f"seed {seed} step {t}")
        np.testing.assert_allclose(opt.state["w"].sum, s, rtol=1e-14)


def test_adagrad_keeps_float32() -> None:
    params = {"w": np.ones(3, np.float32)}
    opt = mbp.Adagrad(params, lr=0.1)
    opt.step({"w": np.full(3, 0.5, np.float32)})
    assert params["w"].dtype == np.float32 and opt.state["w"].sum.dtype == np.float32


# ---------------------------------------------------------------- torch parity (exact lr sequences)

TORCH: dict[str, tuple[Callable[[mbp.Optimizer], Any], Callable[[Any, Any], Any], str, dict[str, Any]]] = {
    "step": (lambda o: S.StepLR(o, 3, 0.5), lambda T, o: T.StepLR(o, 3, 0.5), "SGD", {}),
    "multi-step": (
        lambda o: S.MultiStepLR(o, [0, 3, 8, 8, 12], 0.5),
        lambda T, o: T.MultiStepLR(o, [0, 3, 8, 8, 12], 0.5),
        "SGD",
        {},
    ),
    "exponential": (lambda o: S.ExponentialLR(o, 0.9), lambda T, o: T.ExponentialLR(o, 0.9), "SGD", {}),
    "cosine": (lambda o: S.CosineAnnealingLR(o, 7, 0.01), lambda T, o: T.CosineAnnealingLR(o, 7, 0.01), "SGD", {}),
    "linear": (lambda o: S.LinearLR(o, 0.1, 0.9, 8), lambda T, o: T.LinearLR(o, 0.1, 0.9, 8), "SGD", {}),
    "one-cycle": (
        lambda o: S.OneCycleLR(o, 0.5, total_steps=40),
        lambda T, o: T.OneCycleLR(o, 0.5, total_steps=40),
        "SGD",
        {"momentum": 0.9},
    ),
    "one-cycle-3phase-adam": (
        lambda o: S.OneCycleLR(o, 0.5, epochs=4, steps_per_epoch=10, three_phase=True, anneal_strategy="linear"),
        lambda T, o: T.OneCycleLR(o, 0.5, epochs=4, steps_per_epoch=10, three_phase=True, anneal_strategy="linear"),
        "Adam",
        {},
    ),
    "plateau-max": (
        lambda o: S.ReduceLROnPlateau(o, "max", 0.5, 2, cooldown=1),
        lambda T, o: T.ReduceLROnPlateau(o, "max", 0.5, 2, cooldown=1),
        "SGD",
        {},
    ),
    "plateau-abs": (
        lambda o: S.ReduceLROnPlateau(o, patience=1, threshold=0.05, threshold_mode="abs"),
        lambda T, o: T.ReduceLROnPlateau(o, patience=1, threshold=0.05, threshold_mode="abs"),
        "SGD",
        {},
    ),
}
METRIC = [1.0, 0.9, 0.88, 0.87, 0.5, 0.49, 0.48, 0.3]


def _torch_lrs(name: str, n: int = 40) -> tuple[list[float], list[float], list[float], list[float]]:
    import warnings

    import torch

    make, make_torch, cls, kw = TORCH[name]
    opt = _opt(0.1, getattr(mbp, cls), **kw)
    sched = make(opt)
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    topt = getattr(torch.optim, cls)([p], lr=0.1, **kw)
    tsched = make_torch(torch.optim.lr_scheduler, topt)
    ours, theirs, our_m, their_m = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that no optimiser step came before the scheduler's
        for k in range(n):
            ours.append(opt.lr)
            theirs.append(topt.param_groups[0]["lr"])
            our_m.append(opt.betas[0] if cls == "Adam" else opt.momentum)
            group = topt.param_groups[0]
            their_m.append(group["betas"][0] if cls == "Adam" else group["momentum"])
            args = (METRIC[k % 8],) if name.startswith("plateau") else ()
            sched.step(*args)
            tsched.step(*args)
    return ours, theirs, our_m, their_m


@pytest.mark.parity
@pytest.mark.parametrize("name", list(TORCH))
def test_schedulers_match_torch_float_for_float(name: str) -> None:
    from tests.helpers import require_frameworks

    require_frameworks(("torch",))
    ours, theirs, our_m, their_m = _torch_lrs(name)
    assert ours == theirs, name  # the same recursive formulas: the same floats
    assert our_m == their_m, name
    assert len(set(ours)) > 3, f"{name}: the rate hardly changes, the test would not see a wrong schedule"


@pytest.mark.parity
def test_a_cosine_schedule_off_by_one_step_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import require_frameworks

    require_frameworks(("torch",))
    right = S.CosineAnnealingLR.get_lr

    def one_step_ahead(self: Any) -> float:
        self.last_epoch += 1
        try:
            return right(self)
        finally:
            self.last_epoch -= 1

    monkeypatch.setattr(S.CosineAnnealingLR, "get_lr", one_step_ahead)
    ours, theirs, _, _ = _torch_lrs("cosine")
    assert ours[0] == theirs[0] and ours[1] != theirs[1]
