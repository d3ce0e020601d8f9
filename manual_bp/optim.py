"""Optimisers with torch.optim's exact semantics, written for one array.

Each optimiser defines two methods for a single parameter array ``p``:

    state = init(p)                     # a NamedTuple of arrays (or None entries)
    state = update(p, g, state, t)      # changes p IN PLACE, returns the new state

``Optimizer.step`` maps ``update`` over the named parameters (``"0.W"``,
``"0.b"``, ...), so the model's arrays stay the same objects. A large array is
updated block by block (``manual_bp.fast.update_in_blocks``: the same numbers,
as every rule is elementwise), so ``update`` changes the state arrays in place
and returns new arrays only for fields that were None. State is plain and
inspectable: ``opt.state["0.W"].exp_avg``; ``opt.step_count`` is t, the
number of steps taken (bias corrections start at t = 1, as in torch).

In the formulas: gamma = lr, lambda = weight_decay, mu = momentum,
tau = dampening, eps = eps; ``g`` is dL/dp (negated when ``maximize``).
Scalars are Python floats, so float32 parameters and state stay float32.

>>> opt = Adam(model, lr=1e-3)           # doctest: +SKIP
>>> loss_fn(model.forward(X), y); model.backward(loss_fn.backward()); opt.step()  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from manual_bp import fast
from manual_bp._checks import FLOAT_DTYPES, StateError, check_like


def _number(where: str, name: str, value: Any, high: float | None = None) -> float:
    """``value`` as a float if it is finite and in [0, high) (or >= 0); ValueError otherwise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and value >= 0 and (high is None or value < high):
        return float(value)
    accepted = f"in [0, {high:g})" if high is not None else ">= 0"
    raise ValueError(f"{where}: {name} must be a finite number {accepted}, got {value!r}")


class Optimizer:
    """Base class: holds the parameters, their per-array state and the step counter t.

    ``params`` is a model (anything with ``.params`` and ``.grads`` dicts, e.g.
    ``Sequential``) or a dict name -> array; with a dict, pass the gradients
    to ``step(grads)`` explicitly.
    """

    name: ClassVar[str] = "Optimizer"
    hyper: ClassVar[tuple[str, ...]] = ("lr", "maximize")  # what config() reports

    def __init__(self, params: Any, lr: float, maximize: bool = False) -> None:
        self.lr = _number(self.name, "lr", lr)
        self.maximize = bool(maximize)
        if isinstance(params, Mapping):
            self._model, named = None, dict(params)
        elif hasattr(params, "params") and hasattr(params, "grads"):
            self._model, named = params, dict(params.params)
        else:
            raise TypeError(
                f"{self.name}: expected a model (with .params and .grads) or a dict name -> array, "
                f"got {type(params).__name__}"
            )
        if not named:
            raise ValueError(f"{self.name}: the model has no parameters to optimise")
        for k, p in named.items():
            if not isinstance(p, np.ndarray) or p.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{self.name}: parameter {k!r} must be a float32/float64 ndarray")
        self.params: dict[str, np.ndarray] = named
        self.state: dict[str, Any] = {k: self.init(p) for k, p in named.items()}
        self.step_count = 0

    # -- one array
    def init(self, p: np.ndarray) -> Any:
        raise NotImplementedError

    def update(self, p: np.ndarray, g: np.ndarray, s: Any, t: int) -> Any:
        raise NotImplementedError

    # -- all named arrays
    def step(self, grads: Mapping[str, np.ndarray] | None = None) -> None:
        """One update of every parameter, in place, from ``grads`` (default: ``model.grads``).

        Every gradient is checked (present, same shape and dtype as its
        parameter) before any parameter changes.
        """
        if grads is None:
            if self._model is None:
                raise TypeError(f"{self.name}: built from a dict of arrays; pass the gradients: step(grads)")
            grads = self._model.grads
        for k, p in self.params.items():
            g = grads.get(k)
            if g is None:
                raise StateError(
                    f"{self.name}: no gradient for parameter {k!r}; run the forward pass, the loss and "
                    f"model.backward(loss_fn.backward()) before step()"
                )
            check_like(g, p, self.name, f"gradient of {k!r}", "parameter")
        self.step_count += 1
        for k, p in self.params.items():
            g = -grads[k] if self.maximize else grads[k]
            self.state[k] = fast.update_in_blocks(self.update, p, g, self.state[k], self.step_count)

    def zero_grad(self) -> None:
        """Forget the model's gradients, so that a ``step()`` without a new ``backward`` fails loudly.

        Gradients never accumulate here (every ``backward`` overwrites them), so
        this is optional; with a dict of arrays it does nothing.
        """
        if self._model is not None and hasattr(self._model, "zero_grad"):
            self._model.zero_grad()

    def config(self) -> dict[str, Any]:
        """Hyperparameters as plain data, e.g. for a spec that rebuilds the torch/optax optimiser."""
        return {k: getattr(self, k) for k in self.hyper}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{self.name}({args})"


class SGDState(NamedTuple):
    momentum_buffer: np.ndarray | None  # b; None until the first step (or when mu = 0)


class SGD(Optimizer):
    r"""Stochastic gradient descent, ``torch.optim.SGD``.

    .. math::
        g &\leftarrow g + \lambda p \\
        b &\leftarrow g \;\; (t = 1), \qquad b \leftarrow \mu b + (1 - \tau) g \;\; (t > 1) \\
        g &\leftarrow g + \mu b \;\; \text{(nesterov)}, \qquad g \leftarrow b \;\; \text{(otherwise)} \\
        p &\leftarrow p - \gamma g

    The buffer steps are skipped when mu = 0. The first step copies g into b
    without dampening. Nesterov needs mu > 0 and tau = 0.
    """

    name = "SGD"
    hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        self.momentum = _number("SGD", "momentum", momentum)
        ok = isinstance(dampening, (int, float, np.integer, np.floating)) and math.isfinite(dampening)
        if not ok or isinstance(dampening, bool):
            raise ValueError(f"SGD: dampening must be a finite number, got {dampening!r}")
        self.dampening = float(dampening)
        self.weight_decay = _number("SGD", "weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"SGD: nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={momentum!r}, dampening={dampening!r}"
            )
        super().__init__(params, lr, maximize)

    def init(self, p: np.ndarray) -> SGDState:
        return SGDState(momentum_buffer=None)

    def update(self, p: np.ndarray, g: np.ndarray, s: SGDState, t: int) -> SGDState:
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        if wd:
            g = g + wd * p
        b = s.momentum_buffer
        if mu:
            if b is None:
                b = g.copy()
            else:
                b *= mu
                b += (1 - self.dampening) * g
            g = g + mu * b if self.nesterov else b
        p -= lr * g
        return SGDState(momentum_buffer=b)


class AdamState(NamedTuple):
    exp_avg: np.ndarray  # m, first moment
    exp_avg_sq: np.ndarray  # v, second moment
    max_exp_avg_sq: np.ndarray | None  # max of v over steps (amsgrad only)


class Adam(Optimizer):
    r"""Adam, ``torch.optim.Adam`` (weight decay coupled: added to the gradient).

    .. math::
        g &\leftarrow g + \lambda p \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v, v) \;\; \text{(amsgrad)}, \qquad \hat v = v \;\; \text{(otherwise)} \\
        p &\leftarrow p - \frac{\gamma}{1 - \beta_1^t} \cdot
            \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    m and v start at zero and t at 1, so the bias corrections
    1 - beta^t undo the zero start; eps is added after the square root.
    """

    name = "Adam"
    hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    decoupled: ClassVar[bool] = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{self.name}: betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
        self.betas = (
            _number(self.name, "betas[0] (beta1)", betas[0], high=1.0),
            _number(self.name, "betas[1] (beta2)", betas[1], high=1.0),
        )
        self.eps = _number(self.name, "eps", eps)
        self.weight_decay = _number(self.name, "weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        super().__init__(params, lr, maximize)

    def init(self, p: np.ndarray) -> AdamState:
        return AdamState(np.zeros_like(p), np.zeros_like(p), np.zeros_like(p) if self.amsgrad else None)

    def bias_correction(self, t: int) -> tuple[float, float]:
        """(1 - beta1^t, 1 - beta2^t) for step t = 1, 2, ..."""
        b1, b2 = self.betas
        return 1 - b1**t, 1 - b2**t

    def update(self, p: np.ndarray, g: np.ndarray, s: AdamState, t: int) -> AdamState:
        lr, (b1, b2), wd = self.lr, self.betas, self.weight_decay
        if wd and self.decoupled:
            p *= 1 - lr * wd
        elif wd:
            g = g + wd * p
        m, v, v_max = s
        m *= b1
        m += (1 - b1) * g
        g2 = g * g
        g2 *= 1 - b2
        v *= b2
        v += g2  # v = b2 v + (1 - b2) g^2
        if v_max is not None:
            np.maximum(v_max, v, out=v_max)
        bc1, bc2 = self.bias_correction(t)
        delta = np.sqrt(v if v_max is None else v_max)
        delta /= math.sqrt(bc2)
        delta += self.eps  # denom = sqrt(v_hat) / sqrt(1 - b2^t) + eps
        np.divide(m, delta, out=delta)
        delta *= lr / bc1  # (lr / (1 - b1^t)) m / denom; in place, the same operations in the same order
        p -= delta
        return s


class AdamW(Adam):
    r"""AdamW, ``torch.optim.AdamW``: Adam with decoupled weight decay.

    .. math::
        p \leftarrow p (1 - \gamma \lambda), \quad \text{then Adam's update with } \lambda = 0

    Default weight_decay = 1e-2 (torch's).
    """

    name = "AdamW"
    decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class RMSpropState(NamedTuple):
    square_avg: np.ndarray  # v
    momentum_buffer: np.ndarray | None  # b (momentum > 0 only), starts at zero
    grad_avg: np.ndarray | None  # g_bar (centered only)


class RMSprop(Optimizer):
    r"""RMSprop, ``torch.optim.RMSprop``.

    .. math::
        g &\leftarrow g + \lambda p \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2 \\
        \bar g &\leftarrow \alpha \bar g + (1 - \alpha) g, \quad
            d = \sqrt{v - \bar g^2} + \epsilon \;\; \text{(centered)}, \qquad d = \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g / d, \quad p \leftarrow p - \gamma b \;\; (\mu > 0), \qquad
            p \leftarrow p - \gamma g / d \;\; (\mu = 0)

    v, g_bar and b start at zero; no bias correction.
    """

    name = "RMSprop"
    hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        self.alpha = _number("RMSprop", "alpha", alpha)
        self.eps = _number("RMSprop", "eps", eps)
        self.weight_decay = _number("RMSprop", "weight_decay", weight_decay)
        self.momentum = _number("RMSprop", "momentum", momentum)
        self.centered = bool(centered)
        super().__init__(params, lr, maximize)

    def init(self, p: np.ndarray) -> RMSpropState:
        return RMSpropState(
            np.zeros_like(p),
            np.zeros_like(p) if self.momentum > 0 else None,
            np.zeros_like(p) if self.centered else None,
        )

    def update(self, p: np.ndarray, g: np.ndarray, s: RMSpropState, t: int) -> RMSpropState:
        lr, a, mu, wd = self.lr, self.alpha, self.momentum, self.weight_decay
        if wd:
            g = g + wd * p
        v, b, g_bar = s
        v *= a
        v += (1 - a) * (g * g)
        if g_bar is not None:
            g_bar *= a
            g_bar += (1 - a) * g
            d = np.sqrt(v - g_bar * g_bar) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if b is not None:
            b *= mu
            b += g / d
            p -= lr * b
        else:
            p -= lr * (g / d)
        return s


class AdagradState(NamedTuple):
    sum: np.ndarray  # s, the sum of squared gradients (torch's state key "sum"), starts at the initial value


class Adagrad(Optimizer):
    r"""Adagrad, ``torch.optim.Adagrad``.

    .. math::
        g &\leftarrow g + \lambda p \\
        \tilde\gamma &= \gamma / (1 + (t - 1) \eta) \\
        s &\leftarrow s + g^2 \\
        p &\leftarrow p - \tilde\gamma \, g / (\sqrt{s} + \epsilon)

    eta = lr_decay; s starts at ``initial_accumulator_value``; eps is added after the square root.
    """

    name = "Adagrad"
    hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        self.lr_decay = _number("Adagrad", "lr_decay", lr_decay)
        self.weight_decay = _number("Adagrad", "weight_decay", weight_decay)
        self.initial_accumulator_value = _number("Adagrad", "initial_accumulator_value", initial_accumulator_value)
        self.eps = _number("Adagrad", "eps", eps)
        super().__init__(params, lr, maximize)

    def init(self, p: np.ndarray) -> AdagradState:
        return AdagradState(np.full_like(p, self.initial_accumulator_value))

    def update(self, p: np.ndarray, g: np.ndarray, s: AdagradState, t: int) -> AdagradState:
        if self.weight_decay:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (t - 1) * self.lr_decay)
        acc = s.sum
        acc += g * g  # s = s + g^2, in place
        std = np.sqrt(acc)
        std += self.eps
        p -= clr * (g / std)
        return s
