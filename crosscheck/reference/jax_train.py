"""The JAX training reference: K full-batch steps of an optax optimiser on a ``NetSpec``.

The network and loss are ``crosscheck.reference.jax_ref``'s (x64 and highest matmul
precision are switched on there); gradients come from ``jax.value_and_grad``;
updates from optax's own optimisers, composed with optax's public transforms
to torch.optim's semantics (``transformation`` says how, per optimiser). One
training step (gradient, update, apply) is compiled once per run
(``jax_ref.compiled``). Nothing here imports manual_bp.

Where optax cannot express a torch.optim setting, ``unsupported`` returns the
reason and ``run`` raises ``Unsupported``: such a setting is compared against
torch alone, never against formulas of our own.

Recorded under ``crosscheck.reference.optim_spec`` names: the loss before each step, and
after each step every parameter and the optax state mapped to torch's names
(``ScaleByAdamState.mu / nu`` -> ``exp_avg / exp_avg_sq``; ``TraceState.trace``
-> ``momentum_buffer``; ``ScaleByRmsState.nu`` / ``ScaleByRStdDevState.nu, mu``
-> ``square_avg``, ``grad_avg``). Weights are (in, out) in JAX as in manual_bp.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from crosscheck.reference import jax_ref  # switches on jax_enable_x64 and the highest matmul precision
from crosscheck.reference.optim_spec import OptimSpec, step_name
from crosscheck.spec import NetSpec


class Unsupported(NotImplementedError):
    """optax has no public way to express this torch.optim setting."""


def unsupported(opt: OptimSpec, steps: int = 1) -> str | None:
    """Why optax cannot reproduce ``opt`` over ``steps`` steps with torch.optim's semantics, or None if it can."""
    c = opt.config
    if opt.kind in ("adam", "adamw") and c["amsgrad"]:
        return (
            "amsgrad: torch keeps max(v) of the raw second moment and divides by sqrt(1 - beta2^t) "
            "with eps outside, i.e. m_hat / (sqrt(max v) / sqrt(1 - beta2^t) + eps); optax.amsgrad takes "
            "the max of the bias-corrected v_hat (bias_correction_nu=True) or drops the sqrt(1 - beta2^t) "
            "(False), and no constant eps makes either equal torch's"
        )
    if opt.kind == "sgd" and c["momentum"] and c["dampening"] > 1:
        return "dampening > 1: optax.piecewise_constant_schedule takes non-negative scales only (1 - dampening < 0)"
    if opt.kind == "adagrad" and c["eps"] != 0:
        return (
            "adagrad eps: torch divides by sqrt(s) + eps, optax.scale_by_rss multiplies by rsqrt(s + eps) "
            "(eps inside the root); only eps = 0 is the same in both"
        )
    if opt.clip is not None and opt.clip["kind"] == "norm":
        return (
            "clip_grad_norm_: torch scales by max_norm / (norm + 1e-6), optax.clip_by_global_norm by "
            "max_norm / norm; no static max_norm makes them equal"
        )
    return _unsupported_schedule(opt, steps)


def _unsupported_schedule(opt: OptimSpec, steps: int) -> str | None:
    sch = opt.schedule
    if sch is None:
        return None
    if sch["kind"] == "reduce_lr_on_plateau":
        return (
            "reduce_lr_on_plateau: optax.contrib.reduce_on_plateau scales the updates by a factor it keeps "
            "in its own state, with other patience and cooldown rules, not torch's lr"
        )
    if opt.kind == "rmsprop" and opt.config["momentum"]:
        return (
            "a schedule with rmsprop momentum: optax's trace runs on lr_t-scaled updates, torch's buffer on "
            "unscaled ones, so a varying lr makes them differ"
        )
    if sch["kind"] == "one_cycle_lr":
        if sch["cycle_momentum"]:
            return "one_cycle_lr cycle_momentum: optax's schedules set the learning rate only"
        if any(e != int(e) or e < 1 for e in _one_cycle_ends(sch)):
            return (
                "one_cycle_lr: a phase of torch's ends at the fractional step pct_start * total_steps - 1; "
                "optax's piecewise_interpolate_schedule takes integer boundaries"
            )
    if sch["kind"] == "cosine_annealing_lr" and sch["eta_min"] == 0 and steps > sch["T_max"] + 1:
        return (
            "cosine_annealing_lr past T_max with eta_min = 0: torch's rate climbs back from 0, and optax's "
            "cosine_decay_schedule cannot start a rising half-period at 0"
        )
    return None


def _one_cycle_ends(sch: dict[str, Any]) -> list[float]:
    """The end steps of torch's OneCycleLR phases but the last (total_steps - 1)."""
    T, p = sch["total_steps"], sch["pct_start"]
    return [p * T - 1, 2 * p * T - 2] if sch["three_phase"] else [p * T - 1]


def _lr(opt: OptimSpec, steps: int) -> Any:
    """The learning rate: a float, or the optax schedule of count (0 for the first update) equal to
    torch's scheduler at ``last_epoch`` = count; the one place where torch's schedules become optax's.

    - StepLR: ``exponential_decay(base, step_size, gamma, staircase=True)``; ExponentialLR: the same with
      ``transition_steps=1``; MultiStepLR: ``piecewise_constant_schedule(base, {m: gamma^(times m is listed)})``
      (optax scales at count >= m, torch at last_epoch = m);
    - LinearLR: ``linear_schedule(base start_factor, base end_factor, total_iters)``;
    - CosineAnnealingLR: torch's rate is periodic in t (no restart: it climbs back after T_max); optax's
      ``cosine_decay_schedule(base, T_max, alpha=eta_min / base)`` is its falling half-periods and
      ``cosine_decay_schedule(eta_min, T_max, alpha=base / eta_min)`` its rising ones, joined at multiples
      of T_max over the run (``join_schedules``);
    - OneCycleLR (no momentum cycling): ``piecewise_interpolate_schedule("cosine" | "linear", max_lr /
      div_factor, {end of each phase: the ratio of its end to its start lr})``, the phases ending at torch's
      (integer) end steps.
    """
    sch = opt.schedule
    if sch is None:
        return opt.config["lr"]
    schedule = _schedule(opt, steps)
    # optax counts in int32, and int32 / int is float32 in JAX: the count as float64 keeps the rate float64
    return lambda count: schedule(jnp.asarray(count, jnp.float64))


def _schedule(opt: OptimSpec, steps: int) -> Any:
    sch, base = opt.schedule, opt.config["lr"]
    kind = sch["kind"]
    if kind == "step_lr":
        return optax.exponential_decay(base, sch["step_size"], sch["gamma"], staircase=True)
    if kind == "exponential_lr":
        return optax.exponential_decay(base, 1, sch["gamma"])
    if kind == "multi_step_lr":
        counts = {m: sch["milestones"].count(m) for m in sch["milestones"]}
        return optax.piecewise_constant_schedule(base, {m: sch["gamma"] ** n for m, n in counts.items()})
    if kind == "linear_lr":
        return optax.linear_schedule(base * sch["start_factor"], base * sch["end_factor"], sch["total_iters"])
    if kind == "cosine_annealing_lr":
        T, lo = sch["T_max"], sch["eta_min"]
        falling = optax.cosine_decay_schedule(base, T, alpha=lo / base)
        if steps <= T + 1:
            return falling
        rising = optax.cosine_decay_schedule(lo, T, alpha=base / lo)
        pieces = [falling if i % 2 == 0 else rising for i in range(steps // T + 1)]
        return optax.join_schedules(pieces, [T * (i + 1) for i in range(len(pieces) - 1)])
    if kind == "one_cycle_lr":
        ends = [int(e) for e in _one_cycle_ends(sch)] + [sch["total_steps"] - 1]
        div, final = sch["div_factor"], sch["final_div_factor"]
        ratios = [div, 1 / div, 1 / final] if sch["three_phase"] else [div, 1 / (div * final)]
        kind_ = "cosine" if sch["anneal_strategy"] == "cos" else "linear"
        return optax.schedules.piecewise_interpolate_schedule(kind_, sch["max_lr"] / div, dict(zip(ends, ratios)))
    raise Unsupported(f"crosscheck.jax_train: no optax schedule for {kind!r}")


def transformation(opt: OptimSpec, steps: int = 1) -> optax.GradientTransformation:
    """optax's optimiser for ``opt``, composed to torch.optim's semantics.

    - gradient clipping by value: ``optax.clip(clip_value)`` first (torch clips before the step);
    - ``maximize``: ``optax.scale(-1)`` first (torch negates the gradient before anything else);
    - coupled weight decay (SGD, Adam, RMSprop, Adagrad): ``optax.add_decayed_weights(wd)`` before the
      optimiser, as torch adds wd * p to the gradient first; AdamW: ``optax.adamw(weight_decay=wd)``,
      whose decay is multiplied by lr as torch's p *= 1 - lr * wd is;
    - the learning rate: a constant or the schedule of ``_lr``;
    - SGD: ``optax.sgd(lr, momentum, nesterov)``: ``optax.trace`` starts at zero, so its first trace
      is g, torch's first buffer (a copy of g); later trace = g + mu * trace, torch's buffer with
      dampening 0. Dampening tau: ``optax.scale_by_schedule(piecewise_constant_schedule(1, {1: 1 - tau}))``
      before the trace scales every gradient but the first by 1 - tau, as torch does;
    - Adam: ``optax.adam(lr, b1, b2, eps, eps_root=0)``: eps outside the square root; m_hat / (sqrt(v_hat)
      + eps) equals torch's (m / bc1) / (sqrt(v) / sqrt(bc2) + eps);
    - RMSprop: ``optax.rmsprop(lr, decay=alpha, eps, initial_scale=0, eps_in_sqrt=False, centered,
      momentum, bias_correction=False)``: torch's sqrt(v) + eps (or sqrt(v - g_bar^2) + eps), no bias
      correction, zero start. Its momentum trace runs on the lr-scaled update, so trace = -lr * torch's
      buffer; ``_state`` divides by -lr to report it in torch's terms;
    - Adagrad (eps = 0 only, see ``unsupported``): ``optax.scale_by_rss(initial_accumulator_value, eps=0)``
      (optax's default starts the sum at 0.1, torch's at 0), then torch's lr_decay as
      ``optax.scale_by_schedule(count -> 1 / (1 + count lr_decay))`` (count = t - 1), then the lr.
    """
    reason = unsupported(opt, steps)
    if reason is not None:
        raise Unsupported(f"crosscheck.jax_train: {opt.kind}: {reason}")
    c = opt.config
    lr, wd = _lr(opt, steps), c["weight_decay"]
    chain: list[optax.GradientTransformation] = []
    if opt.clip is not None:
        chain.append(optax.clip(opt.clip["clip_value"]))
    if c["maximize"]:
        chain.append(optax.scale(-1.0))
    if wd and opt.kind != "adamw":
        chain.append(optax.add_decayed_weights(wd))
    if opt.kind == "sgd":
        mu, tau = c["momentum"], c["dampening"]
        if mu and tau:
            chain.append(optax.scale_by_schedule(optax.piecewise_constant_schedule(1.0, {1: 1.0 - tau})))
        chain.append(optax.sgd(lr, momentum=mu or None, nesterov=c["nesterov"]))
    elif opt.kind == "adam":
        b1, b2 = c["betas"]
        chain.append(optax.adam(lr, b1=b1, b2=b2, eps=c["eps"], eps_root=0.0))
    elif opt.kind == "adamw":
        b1, b2 = c["betas"]
        chain.append(optax.adamw(lr, b1=b1, b2=b2, eps=c["eps"], eps_root=0.0, weight_decay=wd))
    elif opt.kind == "rmsprop":
        chain.append(
            optax.rmsprop(
                lr,
                decay=c["alpha"],
                eps=c["eps"],
                initial_scale=0.0,
                eps_in_sqrt=False,
                centered=c["centered"],
                momentum=c["momentum"] or None,
                nesterov=False,
                bias_correction=False,
            )
        )
    elif opt.kind == "adagrad":
        chain.append(optax.scale_by_rss(initial_accumulator_value=c["initial_accumulator_value"], eps=0.0))
        if c["lr_decay"]:
            decay = c["lr_decay"]
            chain.append(optax.scale_by_schedule(lambda count: 1.0 / (1.0 + count * decay)))
        chain.append(optax.scale_by_learning_rate(lr))
    else:
        raise Unsupported(f"crosscheck.jax_train: no optax reference for {opt.kind!r}")
    return optax.chain(*chain)


def _find(state: Any, cls: type) -> Any:
    """The one sub-state of type ``cls`` in a (nested) optax chain state, or None."""
    if isinstance(state, cls):
        return state
    found = [s for s in (_find(sub, cls) for sub in state) if s is not None] if isinstance(state, tuple) else []
    if len(found) > 1:
        raise RuntimeError(f"crosscheck.jax_train: {len(found)} {cls.__name__} in one optax state")
    return found[0] if found else None


def _state(opt: OptimSpec, state: Any) -> dict[str, Any]:
    """optax's state as {torch state key: per-layer pytree like the parameters}."""
    out: dict[str, Any] = {}
    if opt.kind == "sgd":
        trace = _find(state, optax.TraceState)
        if trace is not None:
            out["momentum_buffer"] = trace.trace
    elif opt.kind in ("adam", "adamw"):
        adam = _find(state, optax.ScaleByAdamState)
        out["exp_avg"], out["exp_avg_sq"] = adam.mu, adam.nu
    elif opt.kind == "rmsprop":
        if opt.config["centered"]:
            sd = _find(state, optax.ScaleByRStdDevState)
            out["square_avg"], out["grad_avg"] = sd.nu, sd.mu
        else:
            out["square_avg"] = _find(state, optax.ScaleByRmsState).nu
        trace = _find(state, optax.TraceState)
        if trace is not None:  # optax.rmsprop traces -lr * (g / d); torch's buffer traces g / d
            out["momentum_buffer"] = jax.tree.map(lambda t: np.asarray(t) / -opt.config["lr"], trace.trace)
    elif opt.kind == "adagrad":
        out["sum"] = _find(state, optax.ScaleByRssState).sum_of_squares
    return out


class _Step(NamedTuple):
    params: Any
    state: Any
    loss: Any


def run(spec: NetSpec, opt: OptimSpec, x: np.ndarray, target: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """``steps`` full-batch steps on (x, target); the named losses, parameters and state (module docstring)."""
    tx = transformation(opt, steps)
    params = [dict(layer.params) for layer in spec.layers]  # NumPy: the compiled step transfers them
    no_probes = [0.0] * len(spec.layers)

    def objective(p: Any, x: Any, t: Any) -> Any:
        return jax_ref.loss(spec.loss, jax_ref.forward(spec, p, x, no_probes)[-1], t)

    def train_step(p: Any, s: Any, x: Any, t: Any) -> _Step:
        L, g = jax.value_and_grad(objective)(p, x, t)
        updates, s = tx.update(g, s, p)
        return _Step(optax.apply_updates(p, updates), s, L)

    state = tx.init(params)
    step = jax_ref.compiled(train_step, params, state, x, target)
    got: dict[str, np.ndarray] = {}
    for k in range(1, steps + 1):
        params, state, L = step(params, state, x, target)
        got[step_name(k, steps, "loss")] = np.asarray(L)
        named_state = _state(opt, state)
        for i, layer in enumerate(spec.layers):
            for name in layer.params:
                for field, tree in named_state.items():
                    got[step_name(k, steps, f"{layer.name}.{name}.{field}")] = np.array(tree[i][name])
                got[step_name(k, steps, f"{layer.name}.{name}")] = np.array(params[i][name])
    return got
