"""The gradient checks can fail: plant a wrong backward, watch ``gradcheck`` reject it.

Each plant replaces one backward rule with a plausible mistake through
``monkeypatch``: module functions in ``manual_bp.layers`` (``Linear`` calls
``linear_backward`` through its module) and ``manual_bp.losses`` (the loss
classes look their rule up in the module at call time), or the ``_bwd`` /
``_fwd`` class attributes of the elementwise layers. Every test first checks the
same case passes unplanted, then that the plant was really called and that the
reported error exceeds 1e-3, a thousand times the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import functional as F
from manual_bp import layers
from manual_bp import losses as L
from manual_bp.gradcheck import gradcheck

DETECTED = 1e-3
Case = tuple[mbp.Module, "mbp.Loss | None", np.ndarray, Any, "np.ndarray | None"]


def away_from_zero(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return r.choice([-1.0, 1.0], size=shape) * (1e-3 + np.abs(r.standard_normal(shape)) * 2)


# ---------------------------------------------------------------- the wrong rules


def linear_dW_layout(dout: np.ndarray, cache: Any, need_dx: bool = True, dW_out: Any = None) -> tuple:
    """dW computed as (dout^T x), then reshaped into (D, M): right size, wrong layout."""
    x, W, has_bias = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    return dout @ W.T, (dout2.T @ x2).reshape(D, M), dout2.sum(0) if has_bias else None


def linear_dW_transposed(dout: np.ndarray, cache: Any, need_dx: bool = True, dW_out: Any = None) -> tuple:
    """dW = (x^T dout)^T: shape (M, D) instead of (D, M)."""
    x, W, has_bias = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    return dout @ W.T, (x2.T @ dout2).T, dout2.sum(0) if has_bias else None


def linear_db_first_row(dout: np.ndarray, cache: Any, need_dx: bool = True, dW_out: Any = None) -> tuple:
    """db from the first sample only: the sum over the batch dropped."""
    x, W, _ = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    return dout @ W.T, x2.T @ dout2, dout2[0].copy()


def linear_dx_untransposed(dout: np.ndarray, cache: Any, need_dx: bool = True, dW_out: Any = None) -> tuple:
    """dx = dout @ W instead of dout @ W.T (only shape-valid for a square W)."""
    x, W, has_bias = cache
    D, M = W.shape
    x2, dout2 = x.reshape(-1, D), dout.reshape(-1, M)
    return dout @ W, x2.T @ dout2, dout2.sum(0) if has_bias else None


def linear_dW_averaged(dout: np.ndarray, cache: Any, need_dx: bool = True, dW_out: Any = None) -> tuple:
    """dW divided by N: a mean where the chain rule gives a sum."""
    dx, dW, db = _orig_linear_backward(dout, cache)
    return dx, dW / dout.shape[0], db


_orig_linear_backward = layers.linear_backward
_orig_ce_backward = L.softmax_cross_entropy_backward


def ce_without_1_over_N(dloss: float, cache: Any) -> np.ndarray:
    p, target, eps, _, w, shape = cache
    return _orig_ce_backward(dloss, (p, target, eps, 1.0, w, shape))


def ce_ignores_smoothing(dloss: float, cache: Any) -> np.ndarray:
    p, target, _, scale, w, shape = cache
    return _orig_ce_backward(dloss, (p, target, 0.0, scale, w, shape))


def mse_without_2(dloss: float, cache: Any) -> np.ndarray:
    r, scale = cache
    return (dloss * scale) * r


def bce_sign_flipped(dloss: float, cache: Any) -> np.ndarray:
    s, t, scale = cache
    return (dloss * scale) * (t - s)


def bce_without_mean(dloss: float, cache: Any) -> np.ndarray:
    s, t, _ = cache
    return dloss * (s - t)


def gelu_none_with_tanh_rule(dout: np.ndarray, cache: Any) -> np.ndarray:
    _, x, _ = cache
    t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
    return F.gelu_backward(dout, ("tanh", x, t))


def sigmoid_plus(dout: np.ndarray, cache: Any) -> np.ndarray:
    s = cache
    return dout * s * (1 + s)


def softmax_no_sum_term(dout: np.ndarray, cache: Any) -> np.ndarray:
    p = cache
    return p * dout


def log_softmax_no_sum_term(dout: np.ndarray, cache: Any) -> np.ndarray:
    return dout.copy()


def tanh_one_minus_t(dout: np.ndarray, cache: Any) -> np.ndarray:
    t = cache
    return dout * (1 - t)


def silu_no_product_term(dout: np.ndarray, cache: Any) -> np.ndarray:
    _, s = cache
    return dout * s


def elu_alpha_one(dout: np.ndarray, cache: Any) -> np.ndarray:
    positive, out, _ = cache
    return np.where(positive, dout, dout * (out + 1.0))


def leaky_ignores_slope(dout: np.ndarray, cache: Any) -> np.ndarray:
    positive, _ = cache
    return np.where(positive, dout, 0.0)


def softplus_ignores_threshold(dout: np.ndarray, cache: Any) -> np.ndarray:
    _, s = cache
    return dout * s


# ---------------------------------------------------------------- the cases


def linear_case(r: np.random.Generator, D: int = 3, M: int = 4, N: int = 5) -> Case:
    layer = mbp.Linear(D, M, rng=r)
    x = r.standard_normal((N, D))
    return layer, None, x, None, r.standard_normal((N, M))


def stack_ce_case(r: np.random.Generator, reduction: str = "mean", label_smoothing: float = 0.0) -> Case:
    model = mbp.Sequential(mbp.Linear(3, 4, rng=r), mbp.Tanh(), mbp.Linear(4, 3, rng=r))
    x = r.standard_normal((6, 3))
    return model, mbp.SoftmaxCrossEntropy(reduction, label_smoothing), x, r.integers(0, 3, 6), None


def loss_case(r: np.random.Generator, loss: mbp.Loss, target: str) -> Case:
    model = mbp.Sequential(mbp.Linear(3, 4, rng=r))
    x = r.standard_normal((5, 3))
    t = r.standard_normal((5, 4)) if target == "real" else r.random((5, 4))
    return model, loss, x, t, None


def act_case(r: np.random.Generator, layer: mbp.Module, draw: Callable | None = None) -> Case:
    x = (draw or (lambda r, s: r.standard_normal(s) * 2))(r, (4, 5))
    return layer, None, x, None, r.standard_normal((4, 5))


def softplus_case(r: np.random.Generator) -> Case:
    layer = mbp.Softplus(beta=2.0, threshold=1.0)  # beta x on both sides of 1, away from it
    bx = 1.0 + r.choice([-1.0, 1.0], size=(4, 5)) * (1e-3 + np.abs(r.standard_normal((4, 5))))
    return layer, None, bx / 2.0, None, r.standard_normal((4, 5))


@dataclass(frozen=True)
class Plant:
    name: str
    owner: Any  # module or class holding the rule
    attr: str
    bad: Callable
    case: Callable[[np.random.Generator], Case]

    def __str__(self) -> str:
        return self.name


PLANTS = [
    Plant("linear dW wrong layout", layers, "linear_backward", linear_dW_layout, linear_case),
    Plant("linear dW transposed (M, D)", layers, "linear_backward", linear_dW_transposed, linear_case),
    Plant("linear db first row only", layers, "linear_backward", linear_db_first_row, linear_case),
    Plant("linear dx = dout @ W", layers, "linear_backward", linear_dx_untransposed, lambda r: linear_case(r, 4, 4)),
    Plant("linear dW / N", layers, "linear_backward", linear_dW_averaged, linear_case),
    Plant("CE backward without 1/N", L, "softmax_cross_entropy_backward", ce_without_1_over_N, stack_ce_case),
    Plant(
        "CE backward ignores label smoothing",
        L,
        "softmax_cross_entropy_backward",
        ce_ignores_smoothing,
        lambda r: stack_ce_case(r, "sum", 0.2),
    ),
    Plant(
        "MSE backward without the 2",
        L,
        "mse_backward",
        mse_without_2,
        lambda r: loss_case(r, mbp.MSE(), "real"),
    ),
    Plant(
        "BCE backward sign flipped",
        L,
        "bce_with_logits_backward",
        bce_sign_flipped,
        lambda r: loss_case(r, mbp.BCEWithLogits(), "binary"),
    ),
    Plant(
        "BCE backward without the mean",
        L,
        "bce_with_logits_backward",
        bce_without_mean,
        lambda r: loss_case(r, mbp.BCEWithLogits(), "binary"),
    ),
    Plant(
        "GELU(none) with the tanh rule",
        mbp.GELU,
        "_bwd",
        gelu_none_with_tanh_rule,
        lambda r: act_case(r, mbp.GELU()),
    ),
    Plant("sigmoid s(1+s)", mbp.Sigmoid, "_bwd", sigmoid_plus, lambda r: act_case(r, mbp.Sigmoid())),
    Plant(
        "softmax without the sum term",
        mbp.Softmax,
        "_bwd",
        softmax_no_sum_term,
        lambda r: act_case(r, mbp.Softmax()),
    ),
    Plant(
        "log_softmax without the sum term",
        mbp.LogSoftmax,
        "_bwd",
        log_softmax_no_sum_term,
        lambda r: act_case(r, mbp.LogSoftmax()),
    ),
    Plant("tanh 1 - t", mbp.Tanh, "_bwd", tanh_one_minus_t, lambda r: act_case(r, mbp.Tanh())),
    Plant("SiLU without x s (1 - s)", mbp.SiLU, "_bwd", silu_no_product_term, lambda r: act_case(r, mbp.SiLU())),
    Plant(
        "ELU alpha taken as 1",
        mbp.ELU,
        "_bwd",
        elu_alpha_one,
        lambda r: act_case(r, mbp.ELU(2.5), away_from_zero),
    ),
    Plant(
        "LeakyReLU slope ignored",
        mbp.LeakyReLU,
        "_bwd",
        leaky_ignores_slope,
        lambda r: act_case(r, mbp.LeakyReLU(0.1), away_from_zero),
    ),
    Plant("Softplus threshold ignored", mbp.Softplus, "_bwd", softplus_ignores_threshold, softplus_case),
]


def check(case: Case) -> mbp.GradcheckResult:
    model, loss, x, y, dout = case
    return gradcheck(model, loss, x, y, dout=dout)


def counted(fn: Callable, calls: list[int]) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return fn(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("plant", PLANTS, ids=str)
def test_plant_is_caught(plant: Plant, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = check(plant.case(np.random.default_rng(seed)))
    assert clean.ok, f"control case fails unplanted: {plant.name} seed={seed}\n{clean}"

    calls = [0]
    bad = counted(plant.bad, calls)
    monkeypatch.setattr(plant.owner, plant.attr, staticmethod(bad) if isinstance(plant.owner, type) else bad)
    result = check(plant.case(np.random.default_rng(seed)))
    assert calls[0] > 0, f"the plant {plant.name} was never called"
    assert not result.ok
    assert result.max_error > DETECTED, f"{plant.name} seed={seed}: only {result.max_error:.3e}\n{result}"


def test_plant_is_undone_after_monkeypatch() -> None:
    """monkeypatch restores the originals: the suite's other tests see the real rules."""
    assert layers.linear_backward is _orig_linear_backward
    assert L.softmax_cross_entropy_backward is _orig_ce_backward
    assert mbp.Sigmoid._bwd is F.sigmoid_backward
    assert mbp.GELU._bwd is F.gelu_backward


def test_relu_kink_convention_needs_the_closed_form_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """ReLU'(0) = 1 (mask x >= 0) is invisible to central differences away from the kink;
    the closed-form check at x = 0 (tests/manual_bp/test_activations.py) is what catches it."""
    r = np.random.default_rng(0)
    monkeypatch.setattr(mbp.ReLU, "_fwd", staticmethod(lambda x: (np.maximum(x, 0), x >= 0)))
    layer = mbp.ReLU()
    x = away_from_zero(r, (4, 5))
    assert gradcheck(layer, None, x, dout=r.standard_normal((4, 5))).ok
    layer.forward(np.zeros((1, 3)))
    assert np.array_equal(layer.backward(np.ones((1, 3))), np.ones((1, 3)))  # the wrong ReLU'(0) = 1


def test_plant_caught_where_gradients_are_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolution floor does not hide bugs in the tiny-gradient regime that motivated it:
    Sigmoid -> Linear -> cross-entropy with input gradients ~1e-6 and an O(1) loss."""

    def case() -> Case:
        r = np.random.default_rng(122)
        N, D, H, C = (
            int(r.integers(1, 8)),
            int(r.integers(1, 6)),
            int(r.integers(1, 6)),
            int(r.integers(2, 6)),
        )
        model = mbp.Sequential(mbp.Linear(D, H, rng=r), mbp.Sigmoid(), mbp.Linear(H, C, rng=r))
        x = r.standard_normal((N, D)) * float(r.choice([1, 3]))
        return model, mbp.SoftmaxCrossEntropy(), x, r.integers(0, C, N), None

    assert check(case()).ok
    monkeypatch.setattr(L, "softmax_cross_entropy_backward", ce_without_1_over_N)
    assert check(case()).max_error > DETECTED
    monkeypatch.undo()
    monkeypatch.setattr(mbp.Sigmoid, "_bwd", staticmethod(lambda dout, s: dout * s * (1 - s) * (1 + 1e-3)))
    result = check(case())
    assert not result.ok, str(result)  # a 0.1% slip on gradients of ~1e-4 is still seen
