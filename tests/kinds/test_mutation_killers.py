"""Value tests that pin exact formulas of manual_bp's math, found by mutation testing.

Each test kills a class of mutants of ``manual_bp/functional.py`` and
``manual_bp/losses.py`` that survived the rest of the NumPy-only suite (see
mutation/README.md): a mutant that changes the forward *and* the cache
consistently fools finite differences (the forward is the oracle), so these
tests compare with references written independently here, in plain Python
``math`` or in NumPy written differently, over many seeds. The seed is in the
test id.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import functional as F
from manual_bp import losses as L
from manual_bp.gradcheck import gradcheck

SEEDS = range(8)


def rng_of(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([salt, seed])


# ---------------------------------------------------------------- defaults of the functional pairs are torch's


@pytest.mark.parametrize("seed", SEEDS)
def test_functional_defaults_are_torchs(seed: int) -> None:
    """Called without hyperparameters, each pair uses torch's defaults: LeakyReLU 0.01, ELU 1.0,
    Softplus(beta=1, threshold=20), GELU "none", LayerNorm / BatchNorm eps 1e-5, BatchNorm
    training with momentum 0.1, losses with reduction "mean" and no label smoothing."""
    r = rng_of(seed, 1)
    x = r.standard_normal((5, 4)) * 3
    x[0, :3] = [20.5, 19.5, 40.0]  # Softplus: between threshold 20 and 21, below, far above
    same = np.testing.assert_array_equal
    same(F.leaky_relu_forward(x)[0], F.leaky_relu_forward(x, 0.01)[0])
    same(F.elu_forward(x)[0], F.elu_forward(x, 1.0)[0])
    same(F.softplus_forward(x)[0], F.softplus_forward(x, 1.0, 20.0)[0])
    same(F.gelu_forward(x)[0], F.gelu_forward(x, "none")[0])
    gamma, beta = r.standard_normal(4), r.standard_normal(4)
    same(F.layer_norm_forward(x, gamma, beta)[0], F.layer_norm_forward(x, gamma, beta, 1e-5)[0])
    rm, rv = r.standard_normal(4), r.random(4) + 0.5
    out, _, stats = F.batch_norm_forward(x, gamma, beta, rm, rv)
    out_e, _, stats_e = F.batch_norm_forward(x, gamma, beta, rm, rv, True, 0.1, 1e-5)
    same(out, out_e)
    same(stats[0], stats_e[0])
    same(stats[1], stats_e[1])
    y = r.integers(0, 4, 5)
    t = r.random((5, 4))
    assert L.softmax_cross_entropy_forward(x, y)[0] == L.softmax_cross_entropy_forward(x, y, "mean", 0.0)[0]
    assert L.mse_forward(x, t)[0] == L.mse_forward(x, t, "mean")[0]
    assert L.bce_with_logits_forward(x, t)[0] == L.bce_with_logits_forward(x, t, "mean")[0]


# ---------------------------------------------------------------- what backward skips, and None for absent parameters


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_backward_writes_dW_into_dW_out(seed: int) -> None:
    r = rng_of(seed, 3)
    x, W = r.standard_normal((5, 3)), r.standard_normal((3, 2))
    dout = r.standard_normal((5, 2))
    _, cache = F.linear_forward(x, W, None)
    storage = np.full((3, 2), np.nan)
    _, dW, _ = F.linear_backward(dout, cache, dW_out=storage)
    assert dW is storage
    np.testing.assert_array_equal(storage, F.linear_backward(dout, cache)[1])
    np.testing.assert_allclose(storage, x.T @ dout, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_backward_without_dx(seed: int) -> None:
    r = rng_of(seed, 2)
    x, W, b = r.standard_normal((4, 3)), r.standard_normal((3, 2)), r.standard_normal(2)
    dout = r.standard_normal((4, 2))
    _, cache = F.linear_forward(x, W, b)
    dx, dW, db = F.linear_backward(dout, cache, need_dx=False)
    assert dx is None
    full = F.linear_backward(dout, cache)
    np.testing.assert_allclose(full[0], dout @ W.T, rtol=1e-12, atol=0)  # dx by default
    np.testing.assert_array_equal(dW, full[1])
    np.testing.assert_array_equal(db, full[2])
    model = mbp.Sequential(mbp.Linear(3, 2, rng=seed))
    model.forward(x)
    assert model.backward(dout, input_grad=False) is None
    assert set(model.grads) == {"0.W", "0.b"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_norm_backward_returns_none_for_absent_gamma_or_beta(norm: str, seed: int) -> None:
    r = rng_of(seed, 3)
    x, dout = r.standard_normal((5, 3)), r.standard_normal((5, 3))
    gamma, beta = r.standard_normal(3), r.standard_normal(3)

    def run(g: np.ndarray | None, b: np.ndarray | None) -> tuple:
        if norm == "layer":
            _, cache = F.layer_norm_forward(x, g, b)
            return F.layer_norm_backward(dout, cache)
        _, cache, _ = F.batch_norm_forward(x, g, b, np.zeros(3), np.ones(3))
        return F.batch_norm_backward(dout, cache)

    _, dgamma, dbeta = run(gamma, None)
    assert dgamma is not None and dbeta is None
    _, dgamma, dbeta = run(None, beta)
    assert dgamma is None and dbeta is not None
    np.testing.assert_allclose(dbeta, dout.sum(0), rtol=1e-15)
    layer = mbp.LayerNorm(3, elementwise_affine=False) if norm == "layer" else mbp.BatchNorm1d(3, affine=False)
    layer.forward(x)
    layer.backward(dout)
    assert layer.params == {} and layer.grads == {}


# ---------------------------------------------------------------- Softplus exactly at its threshold


@pytest.mark.parametrize("seed", SEEDS)
def test_softplus_at_the_threshold_takes_the_log_branch(seed: int) -> None:
    """torch switches to the identity only where beta * x > threshold (strictly); at equality
    the value is log(1 + exp(threshold)) / beta and the derivative sigmoid(threshold)."""
    r = rng_of(seed, 4)
    beta = float(r.choice([0.5, 1.0, 2.0, 4.0]))  # powers of 2: beta * x is exact
    threshold = float(r.choice([-1.0, 0.0, 1.0, 3.0, 20.0]))
    x = np.full((2, 3), threshold / beta)
    assert np.all(beta * x == threshold)
    dout = r.standard_normal((2, 3))
    out, cache = F.softplus_forward(x, beta, threshold)
    dx = F.softplus_backward(dout, cache)
    expected = math.log1p(math.exp(threshold)) / beta
    slope = 1.0 / (1.0 + math.exp(-threshold))
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    np.testing.assert_allclose(dx, dout * slope, rtol=1e-15)


# ---------------------------------------------------------------- BatchNorm: evaluation and running statistics by hand


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_eval_uses_the_running_statistics(seed: int) -> None:
    r = rng_of(seed, 5)
    N, D = int(r.integers(1, 6)), int(r.integers(1, 5))
    x = r.standard_normal((N, D)) * 2 + 1
    rm, rv = r.standard_normal(D), r.random(D) * 3 + 0.1
    gamma, beta, eps = r.standard_normal(D), r.standard_normal(D), float(r.choice([1e-5, 0.1]))
    dout = r.standard_normal((N, D))
    out, cache, stats = F.batch_norm_forward(x, gamma, beta, rm, rv, training=False, eps=eps)
    dx, _, _ = F.batch_norm_backward(dout, cache)
    for n in range(N):
        for d in range(D):
            ref = (x[n, d] - rm[d]) / math.sqrt(rv[d] + eps) * gamma[d] + beta[d]
            assert out[n, d] == pytest.approx(ref, rel=1e-13, abs=1e-14), (n, d)
            assert dx[n, d] == pytest.approx(dout[n, d] * gamma[d] / math.sqrt(rv[d] + eps), rel=1e-13)
    assert stats[0] is rm and stats[1] is rv  # evaluation never moves the running statistics


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_running_statistics_over_several_steps(seed: int) -> None:
    """running = (1 - m) * running + m * batch, with the unbiased batch variance, step after step
    from non-trivial starting values (torch's sense of momentum)."""
    r = rng_of(seed, 6)
    D, m = 3, float(r.uniform(0.05, 0.95))
    rm, rv = r.standard_normal(D), r.random(D) + 0.5
    for step in range(3):
        N = int(r.integers(2, 7))
        x = r.standard_normal((N, D)) * 3 + step
        _, _, (rm_new, rv_new) = F.batch_norm_forward(x, None, None, rm, rv, True, m)
        for d in range(D):
            col = [x[n, d] for n in range(N)]
            mean = math.fsum(col) / N
            var_unbiased = math.fsum((v - mean) ** 2 for v in col) / (N - 1)
            assert rm_new[d] == pytest.approx((1 - m) * rm[d] + m * mean, rel=1e-12, abs=1e-14), (step, d)
            assert rv_new[d] == pytest.approx((1 - m) * rv[d] + m * var_unbiased, rel=1e-12), (step, d)
        rm, rv = rm_new, rv_new


# ---------------------------------------------------------------- losses: reductions, smoothing, unnormalised targets


def _log_softmax_row(z: list[float]) -> list[float]:
    top = max(z)
    lse = top + math.log(math.fsum(math.exp(v - top) for v in z))
    return [v - lse for v in z]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_probability_targets_with_smoothing(reduction: str, seed: int) -> None:
    """L = reduce_n -sum_c ((1 - eps) t_nc + eps / C) log_softmax(z)_nc, against plain Python."""
    r = rng_of(seed, 7)
    N, C = int(r.integers(1, 6)), int(r.integers(2, 6))
    z = r.standard_normal((N, C)) * 2
    t = r.dirichlet(np.ones(C), N)
    eps = float(r.choice([0.05, 0.3, 1.0]))
    loss_fn = mbp.SoftmaxCrossEntropy(reduction, eps)
    value = loss_fn.forward(z, t)
    rows = [
        -math.fsum(((1 - eps) * t[n, c] + eps / C) * lp for c, lp in enumerate(_log_softmax_row(list(z[n]))))
        for n in range(N)
    ]
    expected = math.fsum(rows) / (N if reduction == "mean" else 1)
    assert value == pytest.approx(expected, rel=1e-13)
    dz = loss_fn.backward(0.7)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    target = (1 - eps) * t + eps / C
    np.testing.assert_allclose(dz, 0.7 * (p - target) / (N if reduction == "mean" else 1), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_gradient_with_unnormalised_targets(seed: int) -> None:
    """torch accepts probability targets whose rows do not sum to 1; the gradient is then
    p * sum_c t_c - t, not p - t. Finite differences of the forward decide."""
    r = rng_of(seed, 8)
    N, C = int(r.integers(1, 5)), int(r.integers(2, 5))
    z = r.standard_normal((N, C))
    t = r.random((N, C)) * 2  # row sums anywhere in (0, 2C)
    result = gradcheck(mbp.Sequential(mbp.Identity()), mbp.SoftmaxCrossEntropy(), z, t)
    assert result.ok, str(result)


@pytest.mark.parametrize("seed", SEEDS)
def test_mse_and_bce_reductions_by_hand(seed: int) -> None:
    r = rng_of(seed, 9)
    shape = (int(r.integers(1, 5)), int(r.integers(1, 5)))
    x, t = r.standard_normal(shape) * 3, r.standard_normal(shape)
    p = r.random(shape)
    n = x.size
    sq = [(a - b) ** 2 for a, b in zip(x.ravel(), t.ravel())]
    bce = [max(a, 0.0) - a * b + math.log1p(math.exp(-abs(a))) for a, b in zip(x.ravel(), p.ravel())]
    for reduction, div in (("mean", n), ("sum", 1)):
        mse = mbp.MSE(reduction)
        assert mse(x, t) == pytest.approx(math.fsum(sq) / div, rel=1e-13)
        np.testing.assert_allclose(mse.backward(1.5), 1.5 * 2 * (x - t) / div, rtol=1e-14)
        b = mbp.BCEWithLogits(reduction)
        assert b(x, p) == pytest.approx(math.fsum(bce) / div, rel=1e-13)
        s = 1 / (1 + np.exp(-x))
        np.testing.assert_allclose(b.backward(1.5), 1.5 * (s - p) / div, rtol=1e-13)


# ---------------------------------------------------------------- loss classes: plain-data config, repr, call


def test_loss_config_repr_and_call() -> None:
    ce = mbp.SoftmaxCrossEntropy("sum", 0.25)
    assert ce.config() == {"reduction": "sum", "label_smoothing": 0.25}
    assert repr(ce) == "SoftmaxCrossEntropy(reduction='sum', label_smoothing=0.25)"
    for cls in (mbp.MSE, mbp.BCEWithLogits):
        loss = cls("sum")
        assert loss.config() == {"reduction": "sum"}
        assert repr(loss) == f"{cls.__name__}(reduction='sum')"
        assert type(loss)(**loss.config()).config() == loss.config()
    z, y = np.array([[0.0, 1.0], [2.0, -1.0]]), np.array([1, 0])
    assert ce(z, y) == ce.forward(z, y)
