"""Elementwise activations, Softmax and LogSoftmax (last axis).

Tolerance: S(out) = sup|f'| S(x); G(dx) = 2 G(dout) + max|dout| sup|f''| S(x) (the move of f'(x) under
x's own rounding). Case generator: a kink (ReLU, LeakyReLU, ELU at 0, Softplus at its threshold) must
not see an input within tol * m of it unless m = 0. See docs/tolerance.md and docs/cases.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import jax, jnp, nn
from crosscheck.kinds.entry import Kind, amax
from crosscheck.spec import LayerSpec

LIPSCHITZ = 2.0  # >= sup |f'| of every activation (GELU 1.13, ELU alpha <= 2, softmax rows)
NOISE = 64  # |x| < NOISE eps m: x may be nothing but the rounding of its terms (sums of <= 64 terms)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


# ---------------------------------------------------------------- tolerance rules


def _scale_fwd(lipschitz: Callable[[dict[str, Any]], float]) -> Callable[..., float]:
    """S(out) = sup|f'| S(x)."""
    return lambda w, layer, h, s_in, out: lipschitz(layer.config) * s_in


def _scale_bwd(
    curvature: Callable[[dict[str, Any], int], float], gain: Callable[[int], float] = lambda C: LIPSCHITZ
) -> Callable[..., float]:
    """G(dx) = gain G(dout) + max|dout| sup|f''| S(x): x arrives with rounding eps S(x), which moves f'(x)."""

    def rule(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
        C = h_in.shape[-1]
        return gain(C) * g + w.dout(layer, g) * curvature(layer.config, C) * s_x

    return rule


def _log_softmax_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    """log p = x - logsumexp(x): terms |out| and the shift, 2 S(x)."""
    return amax(out) + LIPSCHITZ * s_in


# ---------------------------------------------------------------- case-generator rules


def _exact_out(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """Clear of its kink, a piecewise activation's output is as exact as its input (a clamped 0 exactly)."""
    return np.abs(y)


def _smooth(slope: Callable[[np.ndarray, np.ndarray, Any], np.ndarray]) -> Callable[..., np.ndarray]:
    """m carried through (times |f'|) where x is at the rounding level of its terms, else |y|."""

    def terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        noise = np.abs(x) < NOISE * eps * m
        return np.where(noise, slope(x64, y64, layer) * m, np.abs(y64))

    return terms


def _gelu_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """GELU's x (1 + erf(x / sqrt 2)) / 2 and its tanh form cancel for x << 0: terms of size |x| there."""
    m = _smooth(lambda x, y, layer: np.full(x.shape, 1.13))(layer, x, y, m, eps)
    return np.maximum(m, np.where(np.asarray(x, np.float64) < 0, np.abs(np.asarray(x, np.float64)), 0.0))


def _input_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    return np.abs(x)


def kink_at_zero(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    """An input within tol m of 0; exactly 0 passes only with m = 0 (exact in every backend)."""
    return bool(np.any(np.abs(h) < tol * m))


def _softplus_threshold(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    """beta x within tol beta m of the threshold, where Softplus switches to the identity."""
    return bool(np.any(np.abs(h * layer.beta - layer.threshold) < tol * (m * layer.beta)))


# ---------------------------------------------------------------- JAX forms of torch's conventions


def _leaky_relu(x: Any, negative_slope: float) -> Any:
    """x if x > 0 else slope x; the derivative at 0 is the slope, as torch's (``jax.nn.leaky_relu``
    tests x >= 0 and would give 1 there)."""
    return jnp.where(x > 0, x, negative_slope * x)


def _softplus(x: Any, beta: float, threshold: float) -> Any:
    """torch's Softplus: jax.nn.softplus(beta x) / beta, and x itself where beta x > threshold."""
    return jnp.where(beta * x > threshold, x, jax.nn.softplus(beta * x) / beta)


# ---------------------------------------------------------------- exact forwards (high-precision Var scalars)


def _rowwise(f: Callable[[list[Any]], list[Any]]) -> Callable[..., Any]:
    """A function of each last-axis row (Softmax, LogSoftmax) as an exact forward."""

    def exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
        out = np.empty(x.shape, dtype=object)
        for idx in np.ndindex(*x.shape[:-1]):
            out[idx] = f(list(x[idx]))
        return out

    return exact


def _softmax_row(row: list[Any]) -> list[Any]:
    e = [ex.exp(v) for v in row]
    s = ex.total(e)
    return [v / s for v in e]


def _log_softmax_row(row: list[Any]) -> list[Any]:
    lse = ex.log(ex.total([ex.exp(v) for v in row]))
    return [v - lse for v in row]


def _gelu(x: Any, c: dict[str, Any]) -> Any:
    """x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, or torch's tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    m = ex.mp()
    if c["approximate"] == "tanh":
        return 0.5 * x * (1 + ex.tanh(m.sqrt(2 / m.pi) * (x + ex.mpf(0.044715) * x**3)))
    return x * (1 + ex.erf(x / m.sqrt(2))) / 2


def _elementwise(f: Callable[[Any, dict[str, Any]], Any]) -> Callable[..., Any]:
    return lambda layer, p, x, net: ex.elementwise(x, lambda v: f(v, layer.config))


# the kink conventions: ReLU'(0) = 0, LeakyReLU'(0) = slope, ELU'(0) = alpha, Softplus the identity past its
# threshold (beta x > threshold), each by the branch its value takes
EXACT: dict[str, Callable[..., Any]] = {
    "identity": lambda layer, p, x, net: x,
    "relu": _elementwise(lambda x, c: ex.relu(x)),
    "leaky_relu": _elementwise(lambda x, c: x if x > 0 else x * ex.mpf(c["negative_slope"])),
    "elu": _elementwise(lambda x, c: x if x > 0 else ex.mpf(c["alpha"]) * (ex.exp(x) - 1)),
    "sigmoid": _elementwise(lambda x, c: ex.sigmoid(x)),
    "tanh": _elementwise(lambda x, c: ex.tanh(x)),
    "silu": _elementwise(lambda x, c: x * ex.sigmoid(x)),
    "softplus": _elementwise(
        lambda x, c: (
            x
            if x * ex.mpf(c["beta"]) > ex.mpf(c["threshold"])
            else ex.log1p(ex.exp(x * ex.mpf(c["beta"]))) / ex.mpf(c["beta"])
        )
    ),
    "gelu": _elementwise(_gelu),
    "softmax": _rowwise(_softmax_row),
    "log_softmax": _rowwise(_log_softmax_row),
}


def _activation(
    kind: str,
    torch_module: Callable[[dict[str, Any]], Any],
    jax_fn: Callable[[Any, dict[str, Any]], Any],
    lipschitz: Callable[[dict[str, Any]], float],
    curvature: Callable[[dict[str, Any], int], float],
    terms: Callable[..., np.ndarray],
    **extra: Any,
) -> Kind:
    return Kind(
        kind,
        torch_module=lambda layer, dtype: torch_module(layer.config),
        jax_apply=lambda layer, p, x, net: jax_fn(x, layer.config),
        scale_fwd=extra.pop("scale_fwd", _scale_fwd(lipschitz)),
        scale_bwd=extra.pop("scale_bwd", _scale_bwd(curvature)),
        terms=terms,
        exact=EXACT.get(kind),
        **extra,
    )


def _const(v: float) -> Callable[..., float]:
    return lambda *args: v


def _slope(x: np.ndarray, y: np.ndarray, layer: Any) -> np.ndarray:
    return np.ones(x.shape)


KINDS = [
    _activation("identity", lambda c: nn.Identity(), lambda x, c: x, _const(1.0), _const(0.0), _smooth(_slope)),
    _activation(
        "relu",
        lambda c: nn.ReLU(),
        lambda x, c: jax.nn.relu(x),
        _const(1.0),
        _const(0.0),
        _exact_out,
        hazard=kink_at_zero,
    ),
    _activation(
        "leaky_relu",
        lambda c: nn.LeakyReLU(c["negative_slope"]),
        lambda x, c: _leaky_relu(x, c["negative_slope"]),
        lambda c: max(1.0, abs(c["negative_slope"])),
        _const(0.0),
        _exact_out,
        hazard=kink_at_zero,
        draw=lambda rng: {"negative_slope": float(rng.choice([0.01, 0.1, 0.3, -0.2]))},
    ),
    _activation(
        "elu",
        lambda c: nn.ELU(c["alpha"]),
        lambda x, c: jax.nn.elu(x, c["alpha"]),
        lambda c: max(1.0, abs(c["alpha"])),
        lambda c, C: abs(c["alpha"]),
        _exact_out,
        hazard=kink_at_zero,
        draw=lambda rng: {"alpha": float(rng.choice([1.0, 0.5, 1.7]))},
    ),
    _activation(
        "sigmoid",
        lambda c: nn.Sigmoid(),
        lambda x, c: jax.nn.sigmoid(x),
        _const(0.25),
        _const(0.0963),
        _smooth(lambda x, y, layer: y * (1 - y)),
    ),
    _activation(
        "tanh",
        lambda c: nn.Tanh(),
        lambda x, c: jnp.tanh(x),
        _const(1.0),
        _const(0.77),
        _smooth(lambda x, y, layer: 1 - y * y),
    ),
    _activation(
        "silu",
        lambda c: nn.SiLU(),
        lambda x, c: jax.nn.silu(x),
        _const(1.1),
        _const(0.5),
        _smooth(lambda x, y, layer: np.abs(_sigmoid(x) * (1 + x * (1 - _sigmoid(x))))),
    ),
    _activation(
        "softplus",
        lambda c: nn.Softplus(beta=c["beta"], threshold=c["threshold"]),
        lambda x, c: _softplus(x, c["beta"], c["threshold"]),
        _const(1.0),
        lambda c, C: c["beta"] / 4,
        _exact_out,
        hazard=_softplus_threshold,
        draw=lambda rng: {"beta": float(rng.choice([1.0, 0.5, 2.0])), "threshold": float(rng.choice([20.0, 1.0, 3.0]))},
    ),
    _activation(
        "gelu",
        lambda c: nn.GELU(approximate=c["approximate"]),
        lambda x, c: jax.nn.gelu(x, approximate=c["approximate"] == "tanh"),
        _const(1.13),
        _const(0.8),
        _gelu_terms,
        draw=lambda rng: {"approximate": str(rng.choice(["none", "tanh"]))},
    ),
    # Softmax: dx = p (dout - <dout, p>), each p_j off by at most 2 p_j eps S(x): curvature 6
    _activation(
        "softmax",
        lambda c: nn.Softmax(dim=-1),
        lambda x, c: jax.nn.softmax(x, axis=-1),
        _const(LIPSCHITZ),
        _const(6.0),
        _input_terms,
    ),
    # LogSoftmax: dx = dout - p sum(dout): gain 1 + C, curvature 2 C
    _activation(
        "log_softmax",
        lambda c: nn.LogSoftmax(dim=-1),
        lambda x, c: jax.nn.log_softmax(x, axis=-1),
        _const(LIPSCHITZ),
        lambda c, C: 2.0 * C,
        _input_terms,
        scale_fwd=_log_softmax_fwd,
        scale_bwd=_scale_bwd(lambda c, C: 2.0 * C, gain=lambda C: 1 + C),
    ),
]
