"""Trajectory parity: K full-batch training steps of manual_bp against torch.optim and optax, step by step.

``compare_trajectory`` runs manual_bp's own loop (forward, loss, backward,
``optimizer.step``) on deep copies of a model and a fresh optimiser, and the
same K steps in ``crosscheck.reference.torch_train`` (torch.optim) and
``crosscheck.reference.jax_train`` (optax), which receive only plain data: the
``NetSpec``, an ``OptimSpec`` read from the optimiser's ``config()``, the data.
At every step it compares the loss (before the step), then every optimiser
state tensor and every parameter (after the step), under the names of
``crosscheck.reference.optim_spec`` (``step03.loss``, ``step03.0.W.exp_avg``,
``step03.0.W``): the first failing name gives the step and the tensor. The
result is a ``crosscheck.run.compare.CaseResult`` (mode ``"train"``, pairs
manual_bp vs torch, manual_bp vs jax, torch vs jax), so it goes into
``crosscheck.run.report.Report`` like any other case. A setting optax cannot
express is compared against torch alone; the reason is kept in
``TrajectoryResult.skipped`` and shown in the description.

Tolerance (``bound``), per compared tensor of step k = 1..K:

- float64: ``tolerance.FLOAT64_BOUND`` = 1e-10, as for one pass. Rounding adds
  about eps64 per operation and step, so after K = 20 steps the backends
  differ by ~1e-14 (measured on the cases below: worst 5e-15, smallest margin
  2e4), while a wrong update rule (an off-by-one bias correction, a dampened
  first momentum step, eps inside the root) is off by 1e-5 to 1e-1.
- float32: ``TRAJECTORY_SAFETY * k * B`` with ``B = tolerance.bound("float32",
  reduction_length, n_layers)``, the single forward/backward bound derived in
  ``crosscheck.tolerance``. How K enters: step k's gradient carries a fresh
  relative error of at most B, and it is evaluated at parameters that already
  carry the error of steps 1..k-1; with small steps (lr * curvature << 1)
  that inherited error passes through about unchanged, so errors add up
  linearly, k * B after k steps (the worst case of a sqrt(k) random walk).
  ``TRAJECTORY_SAFETY = 2`` is the optimiser's own arithmetic: a squared
  gradient (exp_avg_sq, square_avg) has twice the gradient's relative error,
  and Adam's and RMSprop's m / sqrt(v) adds the errors of numerator and
  denominator. It was fixed from this argument, not fitted to measurements.
  The argument needs a well-conditioned step: Adam's and RMSprop's
  elementwise g / (c |g| + eps) amplifies a gradient's rounding up to
  c max|g| / eps-fold for an entry near eps / c. Float32 draws whose first
  step amplifies more than ``tolerance.FLOAT32_SAFETY``-fold are redrawn
  (``TrajectoryCase``, ``step_amplification``), as ``crosscheck.cases``
  redraws inputs near a ReLU kink. Measured on the cases below: float32
  worst 6e-6, smallest margin 21 (bound / error).

The float32 cases use smooth activations only (Tanh, SiLU): a float32 rounding
difference of ~1e-7 in the parameters can move a ReLU pre-activation across 0
during training, after which two correct backends legitimately differ by a
whole derivative jump. The float64 cases keep a ReLU (crossing needs a
pre-activation within ~1e-14 of 0 relative to its terms).

Its length (just over 400 lines): the trajectory settings table sits beside the run it drives.
"""

from __future__ import annotations

import copy
import importlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

import manual_bp as mbp
from crosscheck import tolerance
from crosscheck.reference import FRAMEWORKS, reference
from crosscheck.reference.optim_spec import ALL_STATE_FIELDS, read_optimizer, step_name, trajectory_names
from crosscheck.reference.read import read_spec
from crosscheck.run.compare import CaseResult, Comparison, check_named
from crosscheck.tolerance import reduction_length

DEFAULT_STEPS = 20
TRAJECTORY_SAFETY = 2.0
_SALT = 0x7472  # "tr": keeps trajectory streams apart from crosscheck.cases
MAX_DRAWS = 50


def bound(dtype: str, reduction_length: int, n_layers: int, step: int) -> float:
    """The largest admissible relative error of a tensor at step ``step`` (see the module docstring)."""
    single = tolerance.bound(dtype, reduction_length, n_layers)
    if dtype == "float64":
        return single
    return TRAJECTORY_SAFETY * max(step, 1) * single


def train_reference(framework: str) -> Any:
    """``crosscheck.reference.torch_train`` or ``.jax_train``; ImportError (with an install hint) if missing."""
    reference(framework)  # the framework itself first: compare's clear ImportError
    return importlib.import_module(f"crosscheck.reference.{framework}_train")


@dataclass
class TrajectoryResult(CaseResult):
    """A ``CaseResult`` of a training run; ``optimizer`` is the OptimSpec kind ("adam", ...).

    ``skipped``: framework -> why it could not run this setting (compared without it).
    """

    optimizer: str = ""
    skipped: dict[str, str] = field(default_factory=dict)

    def kind_of(self, name: str) -> tuple[str, str]:
        """(optimiser kind, "loss" | "param" | state field) of a compared name, for the report."""
        what = name.split(".", 1)[1] if "." in name else name
        if what == "loss":
            return self.optimizer, "loss"
        last = what.rsplit(".", 1)[-1]
        return self.optimizer, last if last in ALL_STATE_FIELDS else "param"


def clip_grads(grads: dict[str, np.ndarray], clip: dict[str, Any] | None) -> None:
    """manual_bp's clipping that ``clip`` (``OptimSpec.clip``) names, in place."""
    if clip is None:
        return
    if clip["kind"] == "norm":
        mbp.clip_grad_norm_(grads, clip["max_norm"], clip["norm_type"])
    elif clip["kind"] == "value":
        mbp.clip_grad_value_(grads, clip["clip_value"])
    else:
        raise ValueError(f"crosscheck: clip kind must be 'norm' or 'value', got {clip['kind']!r}")


def run_manual(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    scheduler: Any = None,
    clip: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """manual_bp's own K steps, in place: the loss before each step, then state and parameters after it.
    Each step: forward, loss, backward, ``clip``, ``optimizer.step``, ``scheduler.step()`` (a
    ReduceLROnPlateau: ``step(loss)``)."""
    got: dict[str, Any] = {}
    plateau = scheduler is not None and scheduler.kind == "reduce_lr_on_plateau"
    for k in range(1, steps + 1):
        loss = loss_fn.forward(model.forward(x), y)
        got[step_name(k, steps, "loss")] = np.asarray(loss).copy()
        model.backward(loss_fn.backward())
        grads = model.grads
        clip_grads(grads, clip)
        optimizer.step(grads)
        if scheduler is not None:
            scheduler.step(float(loss)) if plateau else scheduler.step()
        for name, p in optimizer.params.items():
            state = optimizer.state[name]
            fields = state._asdict() if hasattr(state, "_asdict") else vars(state)
            for f, v in fields.items():
                if v is not None:
                    got[step_name(k, steps, f"{name}.{f}")] = np.array(v, copy=True)
            got[step_name(k, steps, name)] = p.copy()
    return got


def compare_trajectory(
    model: Any,
    loss_fn: Any,
    optimizer: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = DEFAULT_STEPS,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    case_id: str = "user",
    description: str = "",
    replay: str = "",
    scheduler: Any = None,
    clip: dict[str, Any] | None = None,
) -> TrajectoryResult:
    """Train copies of ``model`` with ``optimizer``'s settings for ``steps`` full-batch steps in every backend.

    ``optimizer`` must be a fresh manual_bp optimiser built on ``model`` (no
    step taken); neither it nor the model is changed. ``scheduler``: a fresh
    ``manual_bp.schedule`` scheduler built on ``optimizer``, stepped after each
    step; ``clip``: ``{"kind": "norm", "max_norm": m, "norm_type": q}`` or
    ``{"kind": "value", "clip_value": c}``, applied to the gradients before each
    step. x: (N, in); y: the loss's targets. Returns a ``TrajectoryResult``
    comparing all pairs at every step.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"compare_trajectory: steps must be a positive int, got {steps!r}")
    if getattr(optimizer, "step_count", 0) != 0:
        raise ValueError(
            f"compare_trajectory: the optimiser has taken {optimizer.step_count} steps; the references start "
            f"from zero state, so pass a freshly built optimiser"
        )
    if scheduler is not None and (scheduler.optimizer is not optimizer or scheduler.last_epoch != 0):
        raise ValueError("compare_trajectory: pass a freshly built scheduler (last_epoch 0) on this optimiser")
    # one deepcopy keeps them linked
    model, loss_fn, optimizer, scheduler = copy.deepcopy((model, loss_fn, optimizer, scheduler))
    own = model.params
    if any(own.get(k) is not p for k, p in optimizer.params.items()):
        raise ValueError("compare_trajectory: the optimiser was not built on this model's parameters")
    spec = read_spec(model, loss_fn)
    opt = read_optimizer(optimizer, scheduler, clip)
    refs = {fw: train_reference(fw) for fw in frameworks}
    runs = {"manual_bp": run_manual(model, loss_fn, optimizer, x, y, steps, scheduler, clip)}
    skipped: dict[str, str] = {}
    for fw, ref in refs.items():
        reason = getattr(ref, "unsupported", lambda o, s: None)(opt, steps)
        if reason is not None:
            skipped[fw] = reason
            continue
        runs[fw] = ref.run(spec, opt, x, y, steps)
    params = [f"{layer.name}.{k}" for layer in spec.layers for k in layer.params]
    names = trajectory_names(opt.kind, params, steps, {n for got in runs.values() for n in got})
    R, L = reduction_length(spec, x), len(spec.layers)
    bounds = {k: bound(spec.dtype, R, L, k) for k in range(1, steps + 1)}

    def step_of(name: str) -> int:
        return int(name.split(".", 1)[0].removeprefix("step"))

    if skipped:
        description += "".join(f" [no {fw} reference: {why.split(':', 1)[0]}]" for fw, why in skipped.items())
    result = TrajectoryResult(
        case_id, description, spec.dtype, spec, bounds[steps], replay=replay, optimizer=opt.kind, skipped=skipped
    )
    backends = list(runs)
    for i, a in enumerate(backends):
        for b in backends[i + 1 :]:
            checks = [check_named(n, runs[a], runs[b], bounds[step_of(n)]) for n in names]
            result.comparisons.append(Comparison("train", a, b, checks))
    return result


# ---------------------------------------------------------------- the trajectory cases


def step_amplification(
    optimizer_cls: Any,
    hyper: dict[str, Any],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    eta: float = 1e-9,
) -> float:
    """How much the first step of ``optimizer_cls(**hyper)`` amplifies a gradient error (float64).

    For every tensor T that step produces (each state field, each parameter):
    max_i |T_i(g + h) - T_i(g - h)| / (2 eta max|T|) with h = eta max|g| for
    each gradient tensor, i.e. the error of T relative to its largest entry per
    unit error of g relative to its largest entry; the result is the largest.
    All optimisers here act elementwise, so shifting every entry at once gives
    every entry its own central difference. Entries that are exactly zero (a
    dead unit) are left alone: every backend computes them exactly.
    """
    after = []
    for sign in (1.0, -1.0):
        p = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
        opt = optimizer_cls(p, **hyper)
        opt.step({k: g + sign * eta * float(np.abs(g).max(initial=0.0)) * (g != 0) for k, g in grads.items()})
        tensors = dict(p)
        for k, state in opt.state.items():
            tensors.update({f"{k}.{f}": v for f, v in state._asdict().items() if v is not None})
        after.append(tensors)
    kappa = 0.0
    for name, plus in after[0].items():
        scale = float(np.abs(plus).max(initial=0.0))
        if scale > 0:
            kappa = max(kappa, float(np.abs(plus - after[1][name]).max()) / (2 * eta * scale))
    return kappa


@dataclass(frozen=True)
class TrajectoryCase:
    """One optimiser setting on a small seeded MLP: 4 -> 8 Tanh -> 8 ReLU (float32: SiLU) -> 3, batch 16.

    float32 data are redrawn (as ``crosscheck.cases`` redraws inputs near a
    ReLU kink) while the first step amplifies a gradient error more than
    ``tolerance.FLOAT32_SAFETY``-fold (``step_amplification``, the conditioning
    allowance inside the single-pass bound B). That happens for Adam and
    RMSprop when a gradient entry lies near the optimiser's eps: there
    g / (c |g| + eps) turns from +-1/c (insensitive) to g / eps, and a float32
    rounding of the gradient of 1e-9 moves RMSprop's momentum buffer by 1e-1.
    """

    case_id: str
    optimizer: str  # a class of manual_bp.optim: "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"
    hyper: dict[str, Any]
    loss: str = "softmax_cross_entropy"  # or "mse"
    dtype: str = "float64"
    steps: int = DEFAULT_STEPS
    schedule: tuple[str, dict[str, Any]] | None = None  # a class of manual_bp.schedule and its arguments
    clip: dict[str, Any] | None = None  # compare_trajectory's clip

    def _draw(self, draw: int, dtype: str) -> tuple[mbp.Sequential, mbp.Loss, np.ndarray, np.ndarray]:
        """Model, loss, x (16, 4), y of draw ``draw``, in ``dtype`` (the architecture follows ``self.dtype``)."""
        rng = np.random.default_rng([_SALT, zlib.crc32(self.case_id.encode()), draw])
        model = mbp.Sequential(
            mbp.Linear(4, 8, rng=rng, dtype=dtype),
            mbp.Tanh(),
            mbp.Linear(8, 8, rng=rng, dtype=dtype),
            mbp.ReLU() if self.dtype == "float64" else mbp.SiLU(),
            mbp.Linear(8, 3, rng=rng, dtype=dtype),
        )
        x = rng.standard_normal((16, 4)).astype(dtype)
        if self.loss == "mse":
            return model, mbp.MSE(), x, rng.standard_normal((16, 3)).astype(dtype)
        return model, mbp.SoftmaxCrossEntropy(), x, rng.integers(0, 3, 16)

    @cached_property
    def draw(self) -> int:
        """The first draw whose first step is well conditioned (float64 cases: always 0)."""
        if self.dtype == "float64":
            return 0
        for draw in range(MAX_DRAWS):
            model, loss_fn, x, y = self._draw(draw, "float64")  # the same numbers, without float32 rounding
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            cls = getattr(mbp.optim, self.optimizer)
            if step_amplification(cls, self.hyper, model.params, model.grads) <= tolerance.FLOAT32_SAFETY:
                return draw
        raise RuntimeError(f"crosscheck trajectory {self.case_id}: no well-conditioned draw in {MAX_DRAWS}")

    def build(self) -> tuple[mbp.Sequential, mbp.Loss, mbp.Optimizer, np.ndarray, np.ndarray]:
        """(model, loss_fn, fresh optimiser, x (16, 4), y), all from the case id's seed."""
        model, loss_fn, x, y = self._draw(self.draw, self.dtype)
        return model, loss_fn, getattr(mbp.optim, self.optimizer)(model, **self.hyper), x, y

    def scheduler(self, optimizer: mbp.Optimizer) -> Any:
        """The case's fresh scheduler on ``optimizer`` (None without one)."""
        if self.schedule is None:
            return None
        name, kwargs = self.schedule
        return getattr(mbp.schedule, name)(optimizer, **kwargs)

    @property
    def description(self) -> str:
        act = "ReLU" if self.dtype == "float64" else "SiLU"
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        loss = "MSE" if self.loss == "mse" else "SoftmaxCrossEntropy"
        draw = f" (draw {self.draw})" if self.draw else ""
        extra = ""
        if self.schedule is not None:
            extra += f" {self.schedule[0]}({', '.join(f'{k}={v!r}' for k, v in self.schedule[1].items())})"
        if self.clip is not None:
            extra += f" clip {', '.join(f'{k}={v!r}' for k, v in self.clip.items() if k != 'kind')}"
        return (
            f"{self.optimizer}({hyper}){extra} {self.dtype} N=16 4->8 Tanh->8 {act}->3 {loss}{draw}, {self.steps} steps"
        )

    @property
    def replay(self) -> str:
        return (
            f'python -c "from crosscheck.run.trajectory import run_trajectory; '
            f"print(run_trajectory('{self.case_id}').summary())\""
        )


SETTINGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sgd-plain", "SGD", {"lr": 0.1}),
    ("sgd-momentum", "SGD", {"lr": 0.1, "momentum": 0.9}),
    ("sgd-dampening", "SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("sgd-nesterov", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd-weight-decay", "SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05}),
    ("adam-default", "Adam", {}),
    ("adam-weight-decay", "Adam", {"lr": 1e-2, "weight_decay": 0.1}),
    # beta2 = 0.9 lets v fall within 20 steps, so amsgrad's max is actually taken
    ("adam-amsgrad", "Adam", {"lr": 1e-2, "betas": (0.9, 0.9), "amsgrad": True}),
    ("adamw", "AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("rmsprop-plain", "RMSprop", {"lr": 1e-3}),
    ("rmsprop-momentum", "RMSprop", {"lr": 1e-3, "momentum": 0.9}),
    ("rmsprop-centered", "RMSprop", {"lr": 1e-3, "alpha": 0.9, "centered": True}),
    ("rmsprop-weight-decay", "RMSprop", {"lr": 1e-3, "weight_decay": 0.1}),
)
MSE_SETTINGS = ("sgd-momentum", "adam-default", "rmsprop-centered")
# (name, optimiser, its arguments, (scheduler, its arguments) or None, clip or None): schedules, clipping and
# Adagrad; over 20 steps each schedule changes the rate several times
SCHEDULE_SETTINGS: tuple[
    tuple[str, str, dict[str, Any], tuple[str, dict[str, Any]] | None, dict[str, Any] | None], ...
] = (
    ("sgd-step-lr", "SGD", {"lr": 0.1, "momentum": 0.9}, ("StepLR", {"step_size": 5, "gamma": 0.5}), None),
    ("sgd-multi-step-lr", "SGD", {"lr": 0.2}, ("MultiStepLR", {"milestones": [0, 4, 9, 9], "gamma": 0.5}), None),
    ("adam-exponential-lr", "Adam", {"lr": 2e-2}, ("ExponentialLR", {"gamma": 0.9}), None),
    # T_max < steps: past T_max torch's rate climbs back (and its recursion takes the special branch)
    ("sgd-cosine", "SGD", {"lr": 0.1, "momentum": 0.9}, ("CosineAnnealingLR", {"T_max": 8, "eta_min": 0.01}), None),
    ("adamw-cosine", "AdamW", {"lr": 1e-2, "weight_decay": 0.1}, ("CosineAnnealingLR", {"T_max": 20}), None),
    (
        "sgd-linear-warmup",
        "SGD",
        {"lr": 0.2, "momentum": 0.5},
        ("LinearLR", {"start_factor": 0.1, "end_factor": 1.0, "total_iters": 8}),
        None,
    ),
    (
        "adam-one-cycle",
        "Adam",
        {"lr": 1e-2},
        ("OneCycleLR", {"max_lr": 0.05, "total_steps": 20, "pct_start": 0.3, "cycle_momentum": False}),
        None,
    ),
    (
        "sgd-one-cycle-linear-3phase",
        "SGD",
        {"lr": 0.1, "momentum": 0.9},
        (
            "OneCycleLR",
            {
                "max_lr": 0.3,
                "total_steps": 20,
                "pct_start": 0.25,
                "anneal_strategy": "linear",
                "three_phase": True,
                "cycle_momentum": False,
            },
        ),
        None,
    ),
    (
        "sgd-one-cycle-momentum",
        "SGD",
        {"lr": 0.1, "momentum": 0.9},
        ("OneCycleLR", {"max_lr": 0.3, "total_steps": 20}),
        None,
    ),  # torch only: optax cannot cycle momentum
    # mode "max" on a falling loss: every epoch is bad, so the rate is cut every patience + 1 + cooldown steps
    (
        "sgd-plateau",
        "SGD",
        {"lr": 0.1, "momentum": 0.9},
        ("ReduceLROnPlateau", {"mode": "max", "factor": 0.5, "patience": 2, "cooldown": 1}),
        None,
    ),
    ("sgd-clip-value", "SGD", {"lr": 0.1, "momentum": 0.9}, None, {"kind": "value", "clip_value": 0.05}),
    ("adam-clip-norm", "Adam", {"lr": 1e-2}, None, {"kind": "norm", "max_norm": 0.1, "norm_type": 2.0}),
    (
        "sgd-clip-norm-inf",
        "SGD",
        {"lr": 0.1},
        ("StepLR", {"step_size": 7}),
        {"kind": "norm", "max_norm": 0.05, "norm_type": float("inf")},
    ),
    (
        "adagrad",
        "Adagrad",
        {"lr": 0.05, "lr_decay": 0.05, "weight_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 0.0},
        None,
        None,
    ),
    ("adagrad-default-cosine", "Adagrad", {"lr": 0.05}, ("CosineAnnealingLR", {"T_max": 20}), None),
)


def trajectory_cases() -> list[TrajectoryCase]:
    """Every setting of ``SETTINGS`` with cross-entropy, those of ``MSE_SETTINGS`` with MSE, and every
    setting of ``SCHEDULE_SETTINGS``; float64 and float32."""
    out = []
    for dtype in ("float64", "float32"):
        for name, cls, hyper in SETTINGS:
            out.append(TrajectoryCase(f"traj-{name}-{dtype}", cls, hyper, dtype=dtype))
        for name, cls, hyper in SETTINGS:
            if name in MSE_SETTINGS:
                out.append(TrajectoryCase(f"traj-{name}-mse-{dtype}", cls, hyper, loss="mse", dtype=dtype))
        for name, cls, hyper, schedule, clip in SCHEDULE_SETTINGS:
            out.append(TrajectoryCase(f"traj-{name}-{dtype}", cls, hyper, dtype=dtype, schedule=schedule, clip=clip))
    return out


def trajectory_case(case_id: str) -> TrajectoryCase:
    """The case with this id (``trajectory_cases`` lists them)."""
    for c in trajectory_cases():
        if c.case_id == case_id:
            return c
    raise ValueError(f"crosscheck: no trajectory case {case_id!r}; see crosscheck.run.trajectory.trajectory_cases()")


def run_trajectory(case_id: str, frameworks: tuple[str, ...] = FRAMEWORKS) -> TrajectoryResult:
    """Build the case and compare its trajectory in every backend."""
    c = trajectory_case(case_id)
    model, loss_fn, optimizer, x, y = c.build()
    return compare_trajectory(
        model,
        loss_fn,
        optimizer,
        x,
        y,
        steps=c.steps,
        frameworks=frameworks,
        case_id=c.case_id,
        description=c.description,
        replay=c.replay,
        scheduler=c.scheduler(optimizer),
        clip=c.clip,
    )


# ---------------------------------------------------------------- for the sweep (crosscheck.run.cli)


def trajectory_ids(dtype: str | None = None, shard: tuple[int, int] = (0, 1)) -> list[str]:
    """Ids of the trajectory cases of one dtype (None: both) in shard ``i`` of ``n``."""
    i, n = shard
    ids = [c.case_id for c in trajectory_cases() if dtype is None or c.dtype == dtype]
    return [cid for k, cid in enumerate(ids) if k % n == i]


def run_trajectories(
    case_ids: Iterable[str] | None = None,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    progress: Callable[[int, CaseResult], None] | None = None,
) -> list[TrajectoryResult]:
    """Run trajectory cases (default: all); ``progress(i, result)`` after each, as ``api.run_sweep``."""
    for fw in frameworks:
        train_reference(fw)  # a missing framework fails before any work
    results = []
    for i, cid in enumerate(trajectory_ids() if case_ids is None else case_ids):
        results.append(run_trajectory(cid, frameworks))
        if progress is not None:
            progress(i, results[-1])
    return results
