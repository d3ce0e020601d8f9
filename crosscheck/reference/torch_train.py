"""The PyTorch training reference: K full-batch steps of ``torch.optim`` on a ``NetSpec``.

The network and loss are ``crosscheck.reference.torch_ref``'s (torch modules and
functionals, parameters copied from the spec); gradients come from
``loss.backward()``; updates from ``torch.optim.{SGD, Adam, AdamW, RMSprop, Adagrad}``
built from an ``OptimSpec`` (plain data), with its ``torch.optim.lr_scheduler`` stepped after
each optimiser step and ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` before it.
Nothing here imports manual_bp.

Recorded under ``crosscheck.reference.optim_spec`` names: the loss before each step, and
after each step every parameter and every tensor of ``optimizer.state[p]``
(torch's keys are manual_bp's state field names; the scalar ``step`` is not a
tensor of the parameter's shape and is left out). Weights and their state are
mapped from torch's (out, in) to manual_bp's (in, out) by ``torch_ref``'s
layout helper, the one place that knows the layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from crosscheck.kinds.layouts import weight_from_torch
from crosscheck.reference import torch_ref
from crosscheck.reference.optim_spec import OptimSpec, step_name
from crosscheck.spec import NetSpec


def optimizer(opt: OptimSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimiser that ``opt`` describes, over ``params``."""
    c = opt.config
    if opt.kind == "sgd":
        return torch.optim.SGD(
            params,
            lr=c["lr"],
            momentum=c["momentum"],
            dampening=c["dampening"],
            weight_decay=c["weight_decay"],
            nesterov=c["nesterov"],
            maximize=c["maximize"],
        )
    if opt.kind in ("adam", "adamw"):
        cls = torch.optim.Adam if opt.kind == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=c["lr"],
            betas=tuple(c["betas"]),
            eps=c["eps"],
            weight_decay=c["weight_decay"],
            amsgrad=c["amsgrad"],
            maximize=c["maximize"],
        )
    if opt.kind == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=c["lr"],
            alpha=c["alpha"],
            eps=c["eps"],
            weight_decay=c["weight_decay"],
            momentum=c["momentum"],
            centered=c["centered"],
            maximize=c["maximize"],
        )
    if opt.kind == "adagrad":
        return torch.optim.Adagrad(
            params,
            lr=c["lr"],
            lr_decay=c["lr_decay"],
            weight_decay=c["weight_decay"],
            initial_accumulator_value=c["initial_accumulator_value"],
            eps=c["eps"],
            maximize=c["maximize"],
        )
    raise NotImplementedError(f"crosscheck.torch_train: no torch.optim reference for {opt.kind!r}")


_SCHEDULERS = {  # OptimSpec.schedule kind -> torch.optim.lr_scheduler built from its arguments
    "step_lr": lambda o, c: torch.optim.lr_scheduler.StepLR(o, c["step_size"], c["gamma"]),
    "multi_step_lr": lambda o, c: torch.optim.lr_scheduler.MultiStepLR(o, c["milestones"], c["gamma"]),
    "exponential_lr": lambda o, c: torch.optim.lr_scheduler.ExponentialLR(o, c["gamma"]),
    "cosine_annealing_lr": lambda o, c: torch.optim.lr_scheduler.CosineAnnealingLR(o, c["T_max"], c["eta_min"]),
    "linear_lr": lambda o, c: torch.optim.lr_scheduler.LinearLR(
        o, c["start_factor"], c["end_factor"], c["total_iters"]
    ),
    "one_cycle_lr": lambda o, c: torch.optim.lr_scheduler.OneCycleLR(
        o,
        c["max_lr"],
        total_steps=c["total_steps"],
        pct_start=c["pct_start"],
        anneal_strategy=c["anneal_strategy"],
        cycle_momentum=c["cycle_momentum"],
        base_momentum=c["base_momentum"],
        max_momentum=c["max_momentum"],
        div_factor=c["div_factor"],
        final_div_factor=c["final_div_factor"],
        three_phase=c["three_phase"],
    ),
    "reduce_lr_on_plateau": lambda o, c: torch.optim.lr_scheduler.ReduceLROnPlateau(
        o,
        c["mode"],
        c["factor"],
        c["patience"],
        c["threshold"],
        c["threshold_mode"],
        c["cooldown"],
        c["min_lr"],
        c["eps"],
    ),
}


def scheduler(opt: OptimSpec, optim: torch.optim.Optimizer) -> Any:
    """The torch.optim.lr_scheduler that ``opt.schedule`` describes, on ``optim`` (None without one)."""
    if opt.schedule is None:
        return None
    if opt.schedule["kind"] not in _SCHEDULERS:
        raise NotImplementedError(f"crosscheck.torch_train: no lr_scheduler reference for {opt.schedule['kind']!r}")
    return _SCHEDULERS[opt.schedule["kind"]](optim, opt.schedule)


def clip(opt: OptimSpec, params: list[nn.Parameter]) -> None:
    """torch.nn.utils.clip_grad_norm_ or clip_grad_value_ on the gradients, as ``opt.clip`` says."""
    if opt.clip is None:
        return
    if opt.clip["kind"] == "norm":
        torch.nn.utils.clip_grad_norm_(params, opt.clip["max_norm"], opt.clip["norm_type"])
    else:
        torch.nn.utils.clip_grad_value_(params, opt.clip["clip_value"])


def named_parameters(spec: NetSpec, modules: list[nn.Module]) -> list[tuple[str, nn.Parameter]]:
    """(manual_bp name, torch parameter) in the spec's order: ``"0.W"`` -> weight, ``"0.b"`` -> bias."""
    attr = {"W": "weight", "b": "bias"}
    named = []
    for layer, module in zip(spec.layers, modules):
        if layer.params and layer.kind != "linear":
            raise NotImplementedError(f"crosscheck.torch_train: parameters of layer kind {layer.kind!r}")
        named += [(f"{layer.name}.{k}", getattr(module, attr[k])) for k in layer.params]
    return named


def _to_numpy(name: str, t: torch.Tensor) -> np.ndarray:
    """A parameter or state tensor in manual_bp's layout (weights transposed by torch_ref)."""
    if name.endswith(".W"):
        return weight_from_torch(t)
    return t.detach().numpy().copy()


def run(spec: NetSpec, opt: OptimSpec, x: np.ndarray, target: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """``steps`` full-batch steps on (x, target); the named losses, parameters and state (module docstring)."""
    modules = torch_ref.build(spec)
    named = named_parameters(spec, modules)
    optim = optimizer(opt, [p for _, p in named])
    sched = scheduler(opt, optim)
    xt, tt = torch.from_numpy(x.copy()), torch.from_numpy(target.copy())
    got: dict[str, np.ndarray] = {}
    for k in range(1, steps + 1):
        optim.zero_grad(set_to_none=True)
        h = xt
        for m in modules:
            h = m(h)
        L = torch_ref.loss(spec.loss, h, tt)
        got[step_name(k, steps, "loss")] = L.detach().numpy().copy()
        L.backward()
        clip(opt, [p for _, p in named])
        optim.step()
        if sched is not None:  # after the optimiser's step; ReduceLROnPlateau on the step's loss
            sched.step(L.item()) if opt.schedule["kind"] == "reduce_lr_on_plateau" else sched.step()
        for name, p in named:
            for field, v in optim.state[p].items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape:
                    got[step_name(k, steps, f"{name}.{field}")] = _to_numpy(name, v)
            got[step_name(k, steps, name)] = _to_numpy(name, p)
    return got
