"""Learning-rate schedulers with torch.optim.lr_scheduler's exact semantics, for one manual_bp optimiser.

A scheduler changes ``optimizer.lr`` (and, for ``OneCycleLR``, the momentum) in place. As in torch:

- building it takes the first scheduler step (``last_epoch`` -1 -> 0), which sets the learning rate of
  the first optimiser step (``LinearLR`` multiplies it by ``start_factor``, ``OneCycleLR`` sets
  ``max_lr / div_factor``);
- ``step()`` is called AFTER ``optimizer.step()``: step k of the optimiser uses the learning rate at
  ``last_epoch = k - 1``;
- the first scheduler records ``optimizer.initial_lr`` (the lr it started from, torch's
  ``group["initial_lr"]``), which is ``base_lr``; building one with ``last_epoch >= 0`` (resuming)
  needs it to exist;
- each ``get_lr`` is torch's *recursive* form (from the current lr), not the closed form: the two
  differ by rounding, and chained schedulers compose only through the recursive one.

One optimiser step per scheduler step: whether a step is a batch or an epoch is the caller's choice
(call ``step()`` once per epoch for an epoch-based schedule).

>>> opt = SGD(model, lr=0.1); sched = CosineAnnealingLR(opt, T_max=10)          # doctest: +SKIP
>>> for epoch in range(10): train_one_epoch(opt); sched.step()                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

from manual_bp.optim import Optimizer


def _positive_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


def _finite(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


class LRScheduler:
    """Base class, torch's ``LRScheduler(optimizer, last_epoch=-1)``; subclasses define ``get_lr``."""

    kind: ClassVar[str] = ""
    hyper: ClassVar[tuple[str, ...]] = ()  # constructor arguments that config() reports

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        where = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a manual_bp optimiser, got {type(optimizer).__name__}")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"{where}: last_epoch must be an int >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            if getattr(optimizer, "initial_lr", None) is None:
                optimizer.initial_lr = optimizer.lr  # type: ignore[attr-defined]
        elif getattr(optimizer, "initial_lr", None) is None:
            raise ValueError(
                f"{where}: resuming with last_epoch={last_epoch} needs optimizer.initial_lr (the lr the schedule "
                f"started from); set it, or build the scheduler with last_epoch=-1"
            )
        self.base_lr: float = optimizer.initial_lr  # type: ignore[attr-defined]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> float:
        """The learning rate at ``last_epoch``, from the optimiser's current one (torch's recursive form)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance ``last_epoch`` by one and set ``optimizer.lr``; call it after ``optimizer.step()``."""
        self._step_count += 1
        self.last_epoch += 1
        self.optimizer.lr = float(self.get_lr())

    def get_last_lr(self) -> list[float]:
        """[the learning rate set by the last step], as torch (one parameter group)."""
        return [self.optimizer.lr]

    def config(self) -> dict[str, Any]:
        """Hyperparameters as plain data, with ``base_lr`` (the lr the schedule started from)."""
        return {**{k: getattr(self, k) for k in self.hyper}, "base_lr": self.base_lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper)
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """lr *= gamma every ``step_size`` steps, torch's ``StepLR(optimizer, step_size, gamma=0.1)``."""

    kind = "step_lr"
    hyper = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = _finite("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class MultiStepLR(LRScheduler):
    """lr *= gamma at each milestone (twice at a milestone listed twice), torch's ``MultiStepLR``."""

    kind = "multi_step_lr"
    hyper = ("milestones", "gamma")

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        ms = list(milestones)
        if not all(isinstance(m, int) and not isinstance(m, bool) for m in ms):
            raise ValueError(f"MultiStepLR: milestones must be ints, got {ms!r}")
        self.milestones = sorted(ms)
        self._counts = Counter(ms)
        self.gamma = _finite("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        lr = self.optimizer.lr
        if self.last_epoch not in self._counts:
            return lr
        return lr * self.gamma ** self._counts[self.last_epoch]


class ExponentialLR(LRScheduler):
    """lr *= gamma every step, torch's ``ExponentialLR(optimizer, gamma)``."""

    kind = "exponential_lr"
    hyper = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _finite("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        return self.optimizer.lr if self._is_initial else self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing, torch's ``CosineAnnealingLR(optimizer, T_max, eta_min=0.0)``.

    Closed form eta_t = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2, periodic in t (no
    restart: past T_max the rate climbs back). Computed as torch does, recursively:

    .. math::
        \eta_t = \frac{1 + \cos(\pi t / T)}{1 + \cos(\pi (t - 1) / T)} (\eta_{t-1} - \eta_{min}) + \eta_{min},

    except at t with (t - 1 - T) mod 2T = 0, where the denominator is 0 and
    eta_t = eta_{t-1} + (base_lr - eta_min) (1 - cos(pi / T)) / 2.
    """

    kind = "cosine_annealing_lr"
    hyper = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _finite("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        lr, t, T, lo = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return lr
        if self._step_count == 1 and t > 0:  # resumed: the closed form
            return lo + (self.base_lr - lo) * (1 + math.cos(t * math.pi / T)) / 2
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - lo) + lo


class LinearLR(LRScheduler):
    """Linear warm-up (or decay) of the factor from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then constant: torch's ``LinearLR(optimizer, start_factor=1/3, end_factor=1.0, total_iters=5)``,
    computed recursively: lr_t = lr_{t-1} (1 + (e - s) / (T s + (t - 1) (e - s)))."""

    kind = "linear_lr"
    hyper = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        s = _finite("LinearLR", "start_factor", start_factor)
        e = _finite("LinearLR", "end_factor", end_factor)
        if not 0 < s <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= e <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        self.start_factor, self.end_factor = s, e
        self.total_iters = _positive_int("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        lr, t, s, e, T = self.optimizer.lr, self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return lr * s
        if self._is_initial or t > T:
            return lr
        return lr * (1.0 + (e - s) / (T * s + (t - 1) * (e - s)))


class OneCycleLR(LRScheduler):
    """The 1cycle policy, torch's ``OneCycleLR(optimizer, max_lr, total_steps=None, epochs=None,
    steps_per_epoch=None, pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
    max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False)``.

    The lr goes from max_lr / div_factor up to max_lr over the steps 0..pct_start total - 1, then down to
    max_lr / (div_factor final_div_factor) at total - 1 (three_phase: up, down to the start, down to the
    minimum), annealed by cos or linearly; with ``cycle_momentum`` the momentum (SGD, RMSprop) or beta1
    (Adam) moves the opposite way between max_momentum and base_momentum. Closed form per step, as torch.
    """

    kind = "one_cycle_lr"
    hyper = (
        "max_lr",
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "cycle_momentum",
        "base_momentum",
        "max_momentum",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        where = "OneCycleLR"
        if total_steps is not None:
            self.total_steps = _positive_int(where, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _positive_int(where, "epochs", epochs) * _positive_int(
                where, "steps_per_epoch", steps_per_epoch
            )
        else:
            raise ValueError(f"{where}: define either total_steps or (epochs and steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"{where}: pct_start must be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.max_lr = _finite(where, "max_lr", max_lr)
        self.pct_start, self.anneal_strategy, self.three_phase = pct_start, anneal_strategy, bool(three_phase)
        self.div_factor = _finite(where, "div_factor", div_factor)
        self.final_div_factor = _finite(where, "final_div_factor", final_div_factor)
        self.base_momentum = _finite(where, "base_momentum", base_momentum)
        self.max_momentum = _finite(where, "max_momentum", max_momentum)
        self.cycle_momentum = bool(cycle_momentum)
        T, p = self.total_steps, pct_start
        initial, peak = "initial_lr", "max_lr"
        if self.three_phase:  # (end step, start lr, end lr, start momentum, end momentum)
            self._phases = [
                (float(p * T) - 1, initial, peak, "max_momentum", "base_momentum"),
                (float(2 * p * T) - 2, peak, initial, "base_momentum", "max_momentum"),
                (T - 1, initial, "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (float(p * T) - 1, initial, peak, "max_momentum", "base_momentum"),
                (T - 1, peak, "min_lr", "base_momentum", "max_momentum"),
            ]
        if self.cycle_momentum:
            if not (hasattr(optimizer, "betas") or hasattr(optimizer, "momentum")):
                raise ValueError(
                    f"{where}: cycle_momentum needs an optimiser with momentum or betas "
                    f"(SGD, RMSprop, Adam, AdamW), got {type(optimizer).__name__}"
                )
            self._use_beta1 = hasattr(optimizer, "betas")
        if last_epoch == -1:
            optimizer.initial_lr = self.max_lr / self.div_factor  # type: ignore[attr-defined]
            if self.cycle_momentum:
                self._set_momentum(optimizer, self.max_momentum)
        self._values = {
            "initial_lr": self.max_lr / self.div_factor,
            "max_lr": self.max_lr,
            "min_lr": self.max_lr / self.div_factor / self.final_div_factor,
            "max_momentum": self.max_momentum,
            "base_momentum": self.base_momentum,
        }
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, optimizer: Optimizer, m: float) -> None:
        if self._use_beta1:
            optimizer.betas = (m, *optimizer.betas[1:])  # type: ignore[attr-defined]
        else:
            optimizer.momentum = m  # type: ignore[attr-defined]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> float:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times; total_steps is {self.total_steps}")
        start = 0.0
        v = self._values
        for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
            if t <= end or i == len(self._phases) - 1:
                pct = (t - start) / (end - start)
                if self.cycle_momentum:
                    self._set_momentum(self.optimizer, self._anneal(v[m0], v[m1], pct))
                return self._anneal(v[lr0], v[lr1], pct)
            start = end
        raise AssertionError("unreachable")


class ReduceLROnPlateau:
    """lr *= factor when a metric stops improving, torch's ``ReduceLROnPlateau(optimizer, mode="min",
    factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)``.

    ``step(metric)`` after each epoch: a metric better than best (1 -+ threshold) (rel) or best -+ threshold
    (abs) resets the count of bad epochs; more than ``patience`` bad epochs set lr = max(lr factor, min_lr)
    (unless that changes it by eps or less) and start ``cooldown`` epochs in which bad epochs are not counted.
    """

    kind = "reduce_lr_on_plateau"
    hyper = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        where = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a manual_bp optimiser, got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"{where}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{where}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.factor = _finite(where, "factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"{where}: factor must be < 1.0, got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"{where}: patience must be an int >= 0, got {patience!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"{where}: cooldown must be an int >= 0, got {cooldown!r}")
        self.optimizer, self.mode, self.threshold_mode = optimizer, mode, threshold_mode
        self.patience, self.cooldown = patience, cooldown
        self.threshold = _finite(where, "threshold", threshold)
        self.min_lr = _finite(where, "min_lr", min_lr)
        self.eps = _finite(where, "eps", eps)
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics: float) -> None:
        """Count the epoch as good or bad by ``metrics`` and reduce the lr after too many bad ones."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown are not counted
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def get_last_lr(self) -> list[float]:
        return [self.optimizer.lr]

    def config(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.hyper}, "base_lr": self.base_lr}

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau({', '.join(f'{k}={getattr(self, k)!r}' for k in self.hyper)})"
