"""Value tests that pin manual_bp.schedule's rules, found by mutation testing (see mutation/README.md).

The closed-form and torch-parity tests of tests/manual_bp/test_schedule.py fix the common paths; these
pin what they leave open: ReduceLROnPlateau against a loop written here from torch's documented rule
(both modes, both threshold modes, cooldown, min_lr and eps, metrics placed on either side of the
threshold), the constructors' defaults (torch's), a resumed ``last_epoch``, OneCycleLR's linear anneal,
and the names in the argument errors. The seed is in the test id.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import schedule as S

SEEDS = range(8)


def _opt(lr: float = 0.1, cls: Any = mbp.SGD, **kw: Any) -> mbp.Optimizer:
    return cls({"w": np.zeros(3)}, lr=lr, **kw)


# ---------------------------------------------------------------- ReduceLROnPlateau against a loop


def _plateau_loop(lr: float, metrics: list[float], hp: dict[str, Any]) -> list[float]:
    """The lr each epoch uses (before its step), from torch's rule written out."""
    best = math.inf if hp["mode"] == "min" else -math.inf
    bad = cool = 0
    t = hp["threshold"]
    out = []
    for m in metrics:
        out.append(lr)
        if hp["mode"] == "min":
            limit = best * (1 - t) if hp["threshold_mode"] == "rel" else best - t  # torch: best * rel_epsilon
            better = m < limit
        else:
            limit = best * (1 + t) if hp["threshold_mode"] == "rel" else best + t
            better = m > limit
        if better:
            best, bad = m, 0
        else:
            bad = bad + 1
        if cool:
            cool, bad = cool - 1, 0
        if bad > hp["patience"]:
            reduced = max(lr * hp["factor"], hp["min_lr"])
            if lr - reduced > hp["eps"]:
                lr = reduced
            cool, bad = hp["cooldown"], 0
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_reduce_on_plateau_against_a_loop(seed: int) -> None:
    r = np.random.default_rng([700, seed])
    hp = {
        "mode": ("min", "max")[seed % 2],
        "threshold_mode": ("rel", "abs")[(seed // 2) % 2],
        "factor": float(r.choice([0.5, 0.25, 0.9])),
        "patience": int(r.integers(0, 3)),
        "threshold": float(r.choice([0.05, 0.1])),
        "cooldown": int(r.integers(0, 3)),
        "min_lr": float(r.choice([0.0, 0.05])),
        "eps": float(r.choice([1e-8, 0.02])),
    }
    # metrics around 1 in steps of a quarter threshold: some beat the best by more than the threshold,
    # some by less, some tie it
    sign = -1.0 if hp["mode"] == "min" else 1.0
    metrics = [1.0]
    for _ in range(60):
        metrics.append(metrics[-1] + sign * hp["threshold"] * float(r.choice([-1.0, 0.0, 0.25, 0.5, 1.5, 3.0])))
    sched = S.ReduceLROnPlateau(_opt(1.0), **hp)
    got = []
    for m in metrics:
        got.append(sched.optimizer.lr)
        sched.step(m)
    assert got == _plateau_loop(1.0, metrics, hp), f"seed {seed}, {hp}"
    assert sched.last_epoch == len(metrics)


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_on_plateau_threshold_boundaries(mode: str, threshold_mode: str) -> None:
    """A metric better than the best by less than the threshold is a bad epoch; by more, a good one.
    With patience 0 every bad epoch cuts the lr by the factor."""
    t = 0.25
    s = -1.0 if mode == "min" else 1.0
    sched = S.ReduceLROnPlateau(
        _opt(1.0), mode=mode, factor=0.5, patience=0, threshold=t, threshold_mode=threshold_mode
    )
    assert sched.best == (math.inf if mode == "min" else -math.inf)
    sched.step(4.0)  # good: the first metric always is
    assert sched.best == 4.0 and sched.optimizer.lr == 1.0
    sched.step(4.0 + s * 0.5 * (t if threshold_mode == "abs" else 4.0 * t))  # half the threshold: bad
    assert sched.best == 4.0 and sched.optimizer.lr == 0.5 and sched.num_bad_epochs == 0
    sched.step(4.0 + s * 2.0 * (t if threshold_mode == "abs" else 4.0 * t))  # twice the threshold: good
    assert sched.best == 4.0 + s * 2.0 * (t if threshold_mode == "abs" else 4.0 * t)
    assert sched.optimizer.lr == 0.5 and sched.num_bad_epochs == 0


def test_reduce_on_plateau_cooldown_counts_down_by_one() -> None:
    sched = S.ReduceLROnPlateau(_opt(1.0), factor=0.5, patience=0, cooldown=3)
    lrs = []
    for m in [1.0] + [2.0] * 9:
        sched.step(m)
        lrs.append(sched.optimizer.lr)
    # cut at epoch 2, then 3 epochs of cooldown, then the next cut at the first counted bad epoch
    assert lrs == [1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125]


def test_reduce_on_plateau_defaults_config_and_repr() -> None:
    """torch's defaults: mode min, factor 0.1, patience 10, threshold 1e-4 rel, cooldown 0, min_lr 0, eps 1e-8."""
    sched = S.ReduceLROnPlateau(_opt(0.3))
    want = {
        "mode": "min",
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "threshold_mode": "rel",
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    }
    assert sched.config() == {**want, "base_lr": 0.3}
    assert repr(sched) == (
        "ReduceLROnPlateau(mode='min', factor=0.1, patience=10, threshold=0.0001, "
        "threshold_mode='rel', cooldown=0, min_lr=0.0, eps=1e-08)"
    )
    assert (sched.last_epoch, sched.num_bad_epochs, sched.cooldown_counter, sched.best) == (0, 0, 0, math.inf)
    assert sched.get_last_lr() == [0.3]
    # patience 10: the lr is cut after the 11th bad epoch, by 0.1
    for _ in range(12):
        sched.step(1.0)
    assert sched.optimizer.lr == pytest.approx(0.03, rel=1e-15)
    assert S.ReduceLROnPlateau(_opt(), patience=0, cooldown=0).patience == 0


# ---------------------------------------------------------------- the LRScheduler family


def test_scheduler_defaults_config_and_repr() -> None:
    multi = S.MultiStepLR(_opt(), [5, 2, 5])
    assert multi.config() == {"milestones": [2, 5, 5], "gamma": 0.1, "base_lr": 0.1}
    assert repr(multi) == "MultiStepLR(milestones=[2, 5, 5], gamma=0.1)"
    assert repr(S.StepLR(_opt(), 3)) == "StepLR(step_size=3, gamma=0.1)"
    assert repr(S.ExponentialLR(_opt(), 0.5)) == "ExponentialLR(gamma=0.5)"
    assert S.CosineAnnealingLR(_opt(), 4).config() == {"T_max": 4, "eta_min": 0.0, "base_lr": 0.1}
    lin = S.LinearLR(_opt())
    assert lin.config() == {"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5, "base_lr": 0.1}
    one = S.OneCycleLR(_opt(momentum=0.9), 1.0, 10)
    assert one.config() == {
        "max_lr": 1.0,
        "total_steps": 10,
        "pct_start": 0.3,
        "anneal_strategy": "cos",
        "cycle_momentum": True,
        "base_momentum": 0.85,
        "max_momentum": 0.95,
        "div_factor": 25.0,
        "final_div_factor": 1e4,
        "three_phase": False,
        "base_lr": 0.04,
    }


@pytest.mark.parametrize("gamma", [None, 0.5])
def test_multi_step_milestone_counts(gamma: float | None) -> None:
    """The lr is multiplied by gamma (default 0.1) once per listing of a milestone, in any order."""
    g = 0.1 if gamma is None else gamma
    opt = _opt(1.0)
    sched = S.MultiStepLR(opt, [6, 2, 6, 6]) if gamma is None else S.MultiStepLR(opt, [6, 2, 6, 6], gamma)
    lrs = []
    for _ in range(8):
        lrs.append(opt.lr)
        sched.step()
    want = [1.0, 1.0, g, g, g, g, g**4, g**4]
    np.testing.assert_allclose(lrs, want, rtol=1e-15)


RESUMABLE = {
    "StepLR": lambda o, e: S.StepLR(o, 2, 0.5, last_epoch=e),
    "MultiStepLR": lambda o, e: S.MultiStepLR(o, [3], 0.5, last_epoch=e),
    "ExponentialLR": lambda o, e: S.ExponentialLR(o, 0.5, last_epoch=e),
    "CosineAnnealingLR": lambda o, e: S.CosineAnnealingLR(o, 10, last_epoch=e),
    "LinearLR": lambda o, e: S.LinearLR(o, 0.5, 1.0, 10, last_epoch=e),
    "OneCycleLR": lambda o, e: S.OneCycleLR(o, 1.0, 20, last_epoch=e),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_resumed_last_epoch_is_kept(name: str) -> None:
    """Built with last_epoch = 4 (initial_lr set), the construction step makes it 5."""
    opt = _opt(0.2, momentum=0.9)
    opt.initial_lr = 0.2  # type: ignore[attr-defined]
    sched = RESUMABLE[name](opt, 4)
    assert sched.last_epoch == 5 and sched._step_count == 1
    sched.step()
    assert sched.last_epoch == 6


def test_exponential_resumed_multiplies_from_the_current_lr() -> None:
    opt = _opt(0.2)
    opt.initial_lr = 0.4  # type: ignore[attr-defined]
    sched = S.ExponentialLR(opt, 0.5, last_epoch=3)
    assert opt.lr == 0.2 and sched.base_lr == 0.4
    sched.step()
    assert opt.lr == 0.1


@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_linear_anneal(three_phase: bool) -> None:
    """anneal_strategy="linear": straight lines between the phase ends (torch's _annealing_linear)."""
    T, p, top, div, final = 20, 0.25, 2.0, 10.0, 100.0
    opt = _opt(momentum=0.9)
    sched = S.OneCycleLR(
        opt,
        top,
        T,
        pct_start=p,
        anneal_strategy="linear",
        div_factor=div,
        final_div_factor=final,
        three_phase=three_phase,
    )
    lo, least = top / div, top / div / final
    if three_phase:
        ends = [(p * T - 1, lo, top, 0.95, 0.85), (2 * p * T - 2, top, lo, 0.85, 0.95), (T - 1, lo, least, 0.95, 0.95)]
    else:
        ends = [(p * T - 1, lo, top, 0.95, 0.85), (T - 1, top, least, 0.85, 0.95)]
    for t in range(T):
        start = 0.0
        for end, a, b, ma, mb in ends:
            if t <= end or end == T - 1:
                frac = (t - start) / (end - start)
                want_lr, want_m = a + (b - a) * frac, ma + (mb - ma) * frac
                break
            start = end
        assert opt.lr == pytest.approx(want_lr, rel=1e-13, abs=1e-15), f"step {t}"
        assert opt.momentum == pytest.approx(want_m, rel=1e-13), f"step {t}"
        sched.step() if t < T - 1 else None


# ---------------------------------------------------------------- errors name the scheduler and the argument

BAD = [
    (lambda: S.StepLR(_opt(), 2, gamma=math.inf), "StepLR: gamma must be a finite number"),
    (lambda: S.MultiStepLR(_opt(), [2], gamma=math.nan), "MultiStepLR: gamma must be a finite number"),
    (lambda: S.MultiStepLR(_opt(), [True]), "MultiStepLR: milestones must be ints, got [True]"),
    (lambda: S.CosineAnnealingLR(_opt(), 0), "CosineAnnealingLR: T_max must be a positive int, got 0"),
    (lambda: S.CosineAnnealingLR(_opt(), 3, eta_min=math.nan), "CosineAnnealingLR: eta_min must be a finite"),
    (lambda: S.LinearLR(_opt(), start_factor=math.nan), "LinearLR: start_factor must be a finite number"),
    (lambda: S.LinearLR(_opt(), end_factor=math.inf), "LinearLR: end_factor must be a finite number"),
    (lambda: S.LinearLR(_opt(), total_iters=0), "LinearLR: total_iters must be a positive int, got 0"),
    (lambda: S.OneCycleLR(_opt(), 1.0, 0), "OneCycleLR: total_steps must be a positive int, got 0"),
    (lambda: S.OneCycleLR(_opt(), 1.0, epochs=0, steps_per_epoch=3), "OneCycleLR: epochs must be a positive int"),
    (
        lambda: S.OneCycleLR(_opt(), 1.0, epochs=2, steps_per_epoch=0),
        "OneCycleLR: steps_per_epoch must be a positive int",
    ),
    (lambda: S.OneCycleLR(_opt(), math.nan, 5), "OneCycleLR: max_lr must be a finite number"),
    (lambda: S.OneCycleLR(_opt(), 1.0, 5, div_factor=math.nan), "OneCycleLR: div_factor must be a finite"),
    (lambda: S.OneCycleLR(_opt(), 1.0, 5, final_div_factor=math.nan), "OneCycleLR: final_div_factor must be"),
    (lambda: S.OneCycleLR(_opt(), 1.0, 5, base_momentum=math.nan), "OneCycleLR: base_momentum must be a"),
    (lambda: S.OneCycleLR(_opt(), 1.0, 5, max_momentum=math.nan), "OneCycleLR: max_momentum must be a"),
    (lambda: S.ReduceLROnPlateau({"w": 1}), "ReduceLROnPlateau: expected a manual_bp optimiser, got dict"),
    (lambda: S.ReduceLROnPlateau(_opt(), threshold_mode="x"), "ReduceLROnPlateau: threshold_mode must be"),
    (lambda: S.ReduceLROnPlateau(_opt(), factor=math.nan), "ReduceLROnPlateau: factor must be a finite"),
    (lambda: S.ReduceLROnPlateau(_opt(), patience=-1), "ReduceLROnPlateau: patience must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), patience=True), "ReduceLROnPlateau: patience must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), patience=1.0), "ReduceLROnPlateau: patience must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), cooldown=-1), "ReduceLROnPlateau: cooldown must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), cooldown=False), "ReduceLROnPlateau: cooldown must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), cooldown=1.0), "ReduceLROnPlateau: cooldown must be an int >= 0"),
    (lambda: S.ReduceLROnPlateau(_opt(), threshold=math.nan), "ReduceLROnPlateau: threshold must be a finite"),
    (lambda: S.ReduceLROnPlateau(_opt(), min_lr=math.inf), "ReduceLROnPlateau: min_lr must be a finite"),
    (lambda: S.ReduceLROnPlateau(_opt(), eps=math.nan), "ReduceLROnPlateau: eps must be a finite number"),
]


@pytest.mark.parametrize(("call", "message"), BAD, ids=[m.split(" must")[0] for _, m in BAD])
def test_errors_name_the_scheduler_and_the_argument(call: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match="^" + re.escape(message)):
        call()


def test_argument_checks_accept_the_edges_and_refuse_bools() -> None:
    """step_size 1, start_factor 1, end_factor 0, pct_start 0 and 1 are allowed; True, 1.5 and strings are not
    numbers here."""
    assert S.StepLR(_opt(), 1).step_size == 1
    assert S.LinearLR(_opt(), start_factor=1.0).start_factor == 1.0
    assert S.LinearLR(_opt(), end_factor=0.0).end_factor == 0.0
    for pct in (0.0, 1.0):
        assert S.OneCycleLR(_opt(momentum=0.9), 1.0, 10, pct_start=pct).pct_start == pct
    bad = [
        (lambda: S.StepLR(_opt(), True), "StepLR: step_size must be a positive int, got True"),
        (lambda: S.StepLR(_opt(), 2, gamma=True), "StepLR: gamma must be a finite number, got True"),
        (lambda: S.StepLR(_opt(), 2, gamma="a"), "StepLR: gamma must be a finite number, got 'a'"),
        (lambda: S.StepLR(_opt(), 2, last_epoch=True), "StepLR: last_epoch must be an int >= -1, got True"),
        (lambda: S.StepLR(_opt(), 2, last_epoch=1.5), "StepLR: last_epoch must be an int >= -1, got 1.5"),
        (lambda: S.LinearLR(_opt(), start_factor=1.5), "LinearLR: start_factor must be in (0, 1], got 1.5"),
        (lambda: S.OneCycleLR(_opt(), 1.0, 10, pct_start=1.5), "OneCycleLR: pct_start must be a float in [0, 1]"),
        (lambda: S.OneCycleLR(_opt(), 1.0, epochs=2), "OneCycleLR: define either total_steps or (epochs and"),
        (lambda: S.OneCycleLR(_opt(), 1.0, steps_per_epoch=2), "OneCycleLR: define either total_steps or"),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            call()
    assert S.OneCycleLR(_opt(momentum=0.9), 1.0, epochs=2, steps_per_epoch=5).total_steps == 10


def test_one_cycle_cos_anneal_and_phase_ends() -> None:
    """anneal_strategy="cos" (the default) between the phase ends, torch's _annealing_cos; at a phase's last
    step the phase itself gives the value (pct = 1: exactly its end value)."""
    T, p, top, div = 10, 0.3, 0.9, 3.0
    opt = _opt(momentum=0.9)
    sched = S.OneCycleLR(opt, top, T, pct_start=p, div_factor=div, final_div_factor=1.0)
    lo = top / div
    end1 = p * T - 1
    for t in range(T):
        if t <= end1:
            frac, a, b, ma, mb = t / end1, lo, top, 0.95, 0.85
        else:
            frac, a, b, ma, mb = (t - end1) / (T - 1 - end1), top, lo, 0.85, 0.95
        want = b + (a - b) / 2 * (math.cos(math.pi * frac) + 1)
        assert opt.lr == pytest.approx(want, rel=1e-14), f"step {t}"
        assert opt.momentum == pytest.approx(mb + (ma - mb) / 2 * (math.cos(math.pi * frac) + 1), rel=1e-14)
        if t == end1:
            assert opt.lr == top and opt.momentum == 0.85  # exact: the first phase's end, not the second's start
        if t < T - 1:
            sched.step()


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_on_plateau_a_tie_is_no_improvement_and_eps_is_strict(mode: str, threshold_mode: str) -> None:
    """threshold 0: a metric equal to the best is a bad epoch (strict comparison, torch's); a cut that
    changes the lr by exactly eps is skipped (old - new > eps)."""
    sched = S.ReduceLROnPlateau(
        _opt(1.0), mode=mode, factor=0.5, patience=0, threshold=0.0, threshold_mode=threshold_mode
    )
    sched.step(2.0)
    sched.step(2.0)
    assert sched.optimizer.lr == 0.5
    skip = S.ReduceLROnPlateau(_opt(1.0), factor=0.5, patience=0, eps=0.5)
    skip.step(1.0)
    skip.step(1.0)
    assert skip.optimizer.lr == 1.0
