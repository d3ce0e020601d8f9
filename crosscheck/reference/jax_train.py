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
import numpy as np
import optax

from crosscheck.reference import jax_ref  # switches on jax_enable_x64 and the highest matmul precision
from crosscheck.reference.optim_spec import OptimSpec, step_name
from crosscheck.spec import NetSpec


class Unsupported(NotImplementedError):
    """optax has no public way to express this torch.optim setting."""


def unsupported(opt: OptimSpec) -> str | None:
    """Why optax cannot reproduce ``opt`` with torch.optim's semantics, or None if it can."""
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
    return None


def transformation(opt: OptimSpec) -> optax.GradientTransformation:
    """optax's optimiser for ``opt``, composed to torch.optim's semantics.

    - ``maximize``: ``optax.scale(-1)`` first (torch negates the gradient before anything else);
    - coupled weight decay (SGD, Adam, RMSprop): ``optax.add_decayed_weights(wd)`` before the
      optimiser, as torch adds wd * p to the gradient first; AdamW: ``optax.adamw(weight_decay=wd)``,
      whose decay is multiplied by lr as torch's p *= 1 - lr * wd is;
    - SGD: ``optax.sgd(lr, momentum, nesterov)``: ``optax.trace`` starts at zero, so its first trace
      is g, torch's first buffer (a copy of g); later trace = g + mu * trace, torch's buffer with
      dampening 0. Dampening tau: ``optax.scale_by_schedule(piecewise_constant_schedule(1, {1: 1 - tau}))``
      before the trace scales every gradient but the first by 1 - tau, as torch does;
    - Adam: ``optax.adam(lr, b1, b2, eps, eps_root=0)``: eps outside the square root; m_hat / (sqrt(v_hat)
      + eps) equals torch's (m / bc1) / (sqrt(v) / sqrt(bc2) + eps);
    - RMSprop: ``optax.rmsprop(lr, decay=alpha, eps, initial_scale=0, eps_in_sqrt=False, centered,
      momentum, bias_correction=False)``: torch's sqrt(v) + eps (or sqrt(v - g_bar^2) + eps), no bias
      correction, zero start. Its momentum trace runs on the lr-scaled update, so trace = -lr * torch's
      buffer; ``_state`` divides by -lr to report it in torch's terms.
    """
    reason = unsupported(opt)
    if reason is not None:
        raise Unsupported(f"crosscheck.jax_train: {opt.kind}: {reason}")
    c = opt.config
    lr, wd = c["lr"], c["weight_decay"]
    chain: list[optax.GradientTransformation] = [optax.scale(-1.0)] if c["maximize"] else []
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
        chain.append(optax.rmsprop(lr, decay=c["alpha"], eps=c["eps"], initial_scale=0.0, eps_in_sqrt=False,
                                   centered=c["centered"], momentum=c["momentum"] or None, nesterov=False,
                                   bias_correction=False))
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
    return out


class _Step(NamedTuple):
    params: Any
    state: Any
    loss: Any


def run(spec: NetSpec, opt: OptimSpec, x: np.ndarray, target: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """``steps`` full-batch steps on (x, target); the named losses, parameters and state (module docstring)."""
    tx = transformation(opt)
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
