"""Activation layers: thin classes over the elementwise and softmax pairs in ``manual_bp.functional``.

Each holds no parameters; its hyperparameters (slope, alpha, beta, threshold,
approximate) are plain attributes listed by ``config()`` and passed to the pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from manual_bp import functional as F
from manual_bp._checks import check_number
from manual_bp.module import Module


class _Elementwise(Module):
    """A parameter-free layer defined by a functional pair and its keyword hyperparameters."""

    _fwd: ClassVar[Callable[..., tuple[np.ndarray, Any]]]
    _bwd: ClassVar[Callable[[np.ndarray, Any], np.ndarray]]

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return type(self)._fwd(x, **self.config())

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return type(self)._bwd(dout, cache)


class Identity(_Elementwise):
    """out = x."""

    kind = "identity"
    _fwd, _bwd = F.identity_forward, F.identity_backward


class ReLU(_Elementwise):
    """out = max(x, 0); ReLU'(0) = 0."""

    kind = "relu"
    _fwd, _bwd = F.relu_forward, F.relu_backward


class LeakyReLU(_Elementwise):
    """out = x if x > 0 else negative_slope * x; derivative at 0 is negative_slope."""

    kind = "leaky_relu"
    _fwd, _bwd = F.leaky_relu_forward, F.leaky_relu_backward

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check_number("LeakyReLU", "negative_slope", negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """out = x if x > 0 else alpha * (exp(x) - 1); derivative at 0 is alpha."""

    kind = "elu"
    _fwd, _bwd = F.elu_forward, F.elu_backward

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Elementwise):
    """out = 1 / (1 + exp(-x))."""

    kind = "sigmoid"
    _fwd, _bwd = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Elementwise):
    """out = tanh(x)."""

    kind = "tanh"
    _fwd, _bwd = F.tanh_forward, F.tanh_backward


class SiLU(_Elementwise):
    """out = x * sigmoid(x) (also called swish)."""

    kind = "silu"
    _fwd, _bwd = F.silu_forward, F.silu_backward


class Softplus(_Elementwise):
    """out = log(1 + exp(beta x)) / beta, and x where beta x > threshold (torch's definition)."""

    kind = "softplus"
    _fwd, _bwd = F.softplus_forward, F.softplus_backward

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = check_number("Softplus", "beta", beta, positive=True)
        self.threshold = check_number("Softplus", "threshold", threshold)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(_Elementwise):
    """out = x * Phi(x) (approximate="none", erf) or its tanh approximation (approximate="tanh")."""

    kind = "gelu"
    _fwd, _bwd = F.gelu_forward, F.gelu_backward

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class Softmax(_Elementwise):
    """Softmax along the last axis: x (*, C) -> p (*, C), rows summing to 1."""

    kind = "softmax"
    min_ndim = 1
    _fwd, _bwd = F.softmax_forward, F.softmax_backward


class LogSoftmax(_Elementwise):
    """Log-softmax along the last axis: x (*, C) -> x - logsumexp(x) (*, C)."""

    kind = "log_softmax"
    min_ndim = 1
    _fwd, _bwd = F.log_softmax_forward, F.log_softmax_backward
