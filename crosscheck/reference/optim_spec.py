"""An optimiser as plain data, and the names under which a training trajectory is compared.

``read_optimizer`` reads a manual_bp optimiser by its public attributes only
(``name`` and ``config()``); nothing here imports manual_bp, so the torch and
JAX training references (``torch_train``, ``jax_train``) can take an
``OptimSpec`` without reaching into manual_bp.

Names, for step k = 1..K (zero-padded, e.g. ``step03``):

- ``step03.loss``: the loss at the parameters *before* step 3;
- ``step03.0.W.exp_avg``: an optimiser state tensor of parameter ``0.W`` after step 3;
- ``step03.0.W``: parameter ``0.W`` after step 3 (manual_bp's (in, out) layout).

Within a step the order is the order in which a wrong formula first shows: the
loss, then per parameter its state tensors in the order the update computes
them, then the parameter itself (a wrong moment names the moment, a wrong final
update with right moments, e.g. a bias correction, names the parameter).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# State tensors per optimiser kind, in the order one step computes them. The
# names are manual_bp's state fields, which are also torch.optim's state keys.
STATE_FIELDS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
    "adagrad": ("sum",),
}
ALL_STATE_FIELDS = frozenset(f for fields in STATE_FIELDS.values() for f in fields)


@dataclass(frozen=True)
class OptimSpec:
    """``kind`` ("sgd", "adam", "adamw", "rmsprop", "adagrad") and its hyperparameters in torch.optim's names.

    ``schedule``: the learning-rate scheduler stepped after every optimiser step, as
    ``{"kind": "cosine_annealing_lr", "T_max": 8, ..., "base_lr": 0.1}`` (torch.optim.lr_scheduler's
    arguments; ``config["lr"]`` is then ``base_lr``, the lr before the scheduler set the first one), or
    None. ``clip``: the gradient clipping before every step, ``{"kind": "norm", "max_norm": 1.0,
    "norm_type": 2.0}`` (``clip_grad_norm_``) or ``{"kind": "value", "clip_value": 0.1}``
    (``clip_grad_value_``), or None.
    """

    kind: str
    config: dict[str, Any]
    schedule: dict[str, Any] | None = None
    clip: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in STATE_FIELDS:
            raise NotImplementedError(
                f"crosscheck: no training reference for optimiser kind {self.kind!r}; supported: {sorted(STATE_FIELDS)}"
            )


def read_optimizer(optimizer: Any, scheduler: Any = None, clip: dict[str, Any] | None = None) -> OptimSpec:
    """Describe a manual_bp optimiser (``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``), its
    scheduler (``kind`` and ``config()``) and gradient clipping as an ``OptimSpec``."""
    name = getattr(optimizer, "name", type(optimizer).__name__)
    config = dict(optimizer.config())
    schedule = None
    if scheduler is not None:
        schedule = {"kind": scheduler.kind, **scheduler.config()}
        config["lr"] = schedule["base_lr"]  # the scheduler has already set the first step's lr
    return OptimSpec(str(name).lower(), config, schedule, dict(clip) if clip is not None else None)


def step_width(steps: int) -> int:
    """Digits of the step number in names: 2 up to 99 steps."""
    return max(2, len(str(steps)))


def step_name(k: int, steps: int, what: str) -> str:
    """``step_name(3, 20, "0.W") == "step03.0.W"``."""
    return f"step{k:0{step_width(steps)}d}.{what}"


def trajectory_names(kind: str, params: Iterable[str], steps: int, present: Iterable[str]) -> list[str]:
    """Every compared name in order (see the module docstring).

    ``present``: the names some backend produced. Canonical names that no
    backend produced (e.g. ``max_exp_avg_sq`` without amsgrad) are left out;
    names outside the canonical list are appended, so that nothing any backend
    returns escapes comparison.
    """
    params = list(params)
    have = set(present)
    order = []
    for k in range(1, steps + 1):
        order.append(step_name(k, steps, "loss"))
        for p in params:
            order += [step_name(k, steps, f"{p}.{s}") for s in STATE_FIELDS[kind]]
            order.append(step_name(k, steps, p))
    names = [n for n in order if n in have]
    known = set(order)
    return names + sorted(have - known)
