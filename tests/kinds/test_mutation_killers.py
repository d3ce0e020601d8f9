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
import re

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


# ---------------------------------------------------------------- the elementwise losses by hand


def _elementwise_by_hand(kind: str, r: float, h: float) -> float:
    """One element's loss with torch's branch rule: the quadratic piece only strictly inside |r| < h."""
    a = abs(r)
    if kind == "l1":
        return a
    if kind == "huber":
        return 0.5 * r * r if a < h else h * (a - 0.5 * h)
    return (0.5 * r * r / h if a < h else a - 0.5 * h) if h else a


ELEMENTWISE = {
    "l1": (lambda red, h: mbp.L1Loss(red), lambda x, t, red, h: L.l1_forward(x, t, red), L.l1_forward),
    "huber": (
        lambda red, h: mbp.HuberLoss(red, h),
        lambda x, t, red, h: L.huber_forward(x, t, red, h),
        L.huber_forward,
    ),
    "smooth_l1": (
        lambda red, h: mbp.SmoothL1Loss(red, h),
        lambda x, t, red, h: L.smooth_l1_forward(x, t, red, h),
        L.smooth_l1_forward,
    ),
}


@pytest.mark.parametrize("kind", list(ELEMENTWISE))
@pytest.mark.parametrize("seed", SEEDS)
def test_elementwise_losses_by_hand(kind: str, seed: int) -> None:
    """L1, Huber and smooth L1, layer and pure pair, mean (over every element) and sum, against a loop in
    plain ``math``; residuals drawn on both sides of delta / beta; defaults mean and delta = beta = 1."""
    r = rng_of(seed, 20)
    x = r.standard_normal((3, 4)) * 2
    t = r.standard_normal((3, 4))
    h = float(r.choice([0.5, 2.0]))
    make, pair, pure = ELEMENTWISE[kind]
    for red in ("mean", "sum"):
        total = math.fsum(_elementwise_by_hand(kind, float(a - b), h) for a, b in zip(x.ravel(), t.ravel()))
        want = total / x.size if red == "mean" else total
        assert float(make(red, h).forward(x, t)) == pytest.approx(want, rel=1e-13), f"{kind} {red} seed {seed}"
        assert float(pair(x, t, red, h)[0]) == pytest.approx(want, rel=1e-13), f"{kind} {red} seed {seed}"
    default = math.fsum(_elementwise_by_hand(kind, float(a - b), 1.0) for a, b in zip(x.ravel(), t.ravel())) / x.size
    assert float(pure(x, t)[0]) == pytest.approx(default, rel=1e-13)
    layer = mbp.L1Loss() if kind == "l1" else type(make("mean", 1.0))()
    assert float(layer.forward(x, t)) == pytest.approx(default, rel=1e-13)


def test_smooth_l1_at_beta_takes_the_linear_piece() -> None:
    """|r| = beta exactly: torch's ``|r| < beta`` picks |r| - beta / 2; the quadratic piece r^2 / (2 beta)
    is the same number in exact arithmetic but rounds differently for beta = 0.1."""
    x, t = np.array([0.1, -0.1]), np.zeros(2)
    assert 0.5 * 0.1 * 0.1 / 0.1 != 0.1 - 0.5 * 0.1  # the two pieces round apart here
    assert float(L.smooth_l1_forward(x, t, "sum", 0.1)[0]) == 2 * (0.1 - 0.5 * 0.1)


def test_label_loss_defaults_and_float32_weights() -> None:
    """NLL and multi-margin pure pairs default to torch's (mean; p = 1, margin 1); a float64 class weight
    with float32 log-probabilities keeps the loss and the gradient in float32."""
    r = rng_of(0, 21)
    x = r.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    assert L.nll_forward(x, y)[0] == L.nll_forward(x, y, "mean")[0]
    assert L.multi_margin_forward(x, y)[0] == L.multi_margin_forward(x, y, 1, 1.0, None, "mean")[0]
    x32 = x.astype(np.float32)
    loss, cache = L.nll_forward(x32, y, "mean", np.array([1.0, 2.0, 0.5]))
    assert loss.dtype == np.float32 and L.nll_backward(1.0, cache).dtype == np.float32


def test_loss_configs_registry_and_messages() -> None:
    w = np.array([1.0, 2.0])
    nll = mbp.NLLLoss(w, ignore_index=3, reduction="sum")
    cfg = nll.config()
    assert cfg.keys() == {"weight", "ignore_index", "reduction"} and cfg["ignore_index"] == 3
    assert cfg["reduction"] == "sum" and np.array_equal(cfg["weight"], w) and cfg["weight"] is not nll.weight
    assert mbp.NLLLoss().config() == {"weight": None, "ignore_index": -100, "reduction": "mean"}
    mm = mbp.MultiMarginLoss(2, 0.5, w, "sum").config()
    assert mm.keys() == {"p", "margin", "weight", "reduction"}
    assert (mm["p"], mm["margin"], mm["reduction"]) == (2, 0.5, "sum") and np.array_equal(mm["weight"], w)
    assert mbp.MultiMarginLoss().config() == {"p": 1, "margin": 1.0, "weight": None, "reduction": "mean"}
    assert mbp.HuberLoss().config() == {"reduction": "mean", "delta": 1.0}
    assert mbp.HuberLoss("sum", 0.5).config() == {"reduction": "sum", "delta": 0.5}
    assert mbp.SmoothL1Loss().config() == {"reduction": "mean", "beta": 1.0}
    assert mbp.SmoothL1Loss("sum", 0.0).config() == {"reduction": "sum", "beta": 0.0}
    for kind, cls in [
        ("nll", mbp.NLLLoss),
        ("multi_margin", mbp.MultiMarginLoss),
        ("l1", mbp.L1Loss),
        ("huber", mbp.HuberLoss),
        ("smooth_l1", mbp.SmoothL1Loss),
        ("mse", mbp.MSE),
    ]:
        assert L.Loss.registry[kind] is cls
    with pytest.raises(ValueError, match=r"^SmoothL1Loss: beta must be a finite number, got nan"):
        mbp.SmoothL1Loss(beta=float("nan"))
    with pytest.raises(ValueError, match=r"^HuberLoss: delta must be a finite number > 0"):
        mbp.HuberLoss(delta=0.0)


# ---------------------------------------------------------------- RMSNorm and the model classes


@pytest.mark.parametrize("seed", SEEDS)
def test_rms_norm_layer_by_hand(seed: int) -> None:
    """gamma starts at 1; without elementwise_affine there is no gamma and no gradient; a 1-D input is
    one sample; eps=None is the dtype's machine epsilon; errors name RMSNorm and the argument."""
    r = rng_of(seed, 22)
    D = int(r.integers(1, 5))
    layer = mbp.RMSNorm(D)
    np.testing.assert_array_equal(layer.params["gamma"], np.ones(D))
    x = r.standard_normal(D)
    out = layer.forward(x)
    np.testing.assert_allclose(out, x / math.sqrt(float(np.mean(x * x)) + np.finfo(np.float64).eps), rtol=1e-13)
    plain = mbp.RMSNorm(D, eps=0.5, elementwise_affine=False)
    assert plain.params == {} and plain.eps == 0.5
    x2 = r.standard_normal((2, D))
    dout = r.standard_normal((2, D))
    plain.forward(x2)
    plain.backward(dout)
    assert plain.grads == {}
    _, cache = mbp.norm.rms_norm_forward(x2, None, 0.5)
    assert mbp.norm.rms_norm_backward(dout, cache)[1] is None
    with pytest.raises(ValueError, match=r"^RMSNorm: normalized_shape must be a positive int, got 0"):
        mbp.RMSNorm(0)


def test_model_reprs() -> None:
    model = mbp.Sequential(mbp.ReLU(), mbp.Residual(mbp.Tanh(), mbp.Identity()))
    assert repr(model) == "Sequential(\n  (0): ReLU()\n  (1): Residual(Tanh(), Identity())\n)"
    assert repr(mbp.Residual()) == "Residual()"


# ---------------------------------------------------------------- the thin layer classes

LAYER_ERRORS = [
    (lambda: mbp.Dropout(float("nan")), "Dropout: p must be a finite number, got nan"),
    (lambda: mbp.Dropout(rng="x"), "Dropout: rng must be a numpy.random.Generator or an int seed"),
    (lambda: mbp.Embedding(0, 2), "Embedding: num_embeddings must be a positive int, got 0"),
    (lambda: mbp.Embedding(2, 0), "Embedding: embedding_dim must be a positive int, got 0"),
    (lambda: mbp.Embedding(2, 2, dtype=np.int32), "Embedding: dtype must be float32 or float64"),
    (lambda: mbp.Embedding(2, 2, rng=1.5), "Embedding: rng must be a numpy.random.Generator or an int seed"),
    (lambda: mbp.LayerNorm(0), "LayerNorm: normalized_shape must be a positive int, got 0"),
    (lambda: mbp.LayerNorm(2, eps=0), "LayerNorm: eps must be a finite number > 0, got 0"),
    (lambda: mbp.LayerNorm(2, dtype="int32"), "LayerNorm: dtype must be float32 or float64"),
    (lambda: mbp.BatchNorm1d(0), "BatchNorm1d: num_features must be a positive int, got 0"),
    (lambda: mbp.BatchNorm1d(2, momentum=float("nan")), "BatchNorm1d: momentum must be a finite number, got nan"),
    (lambda: mbp.BatchNorm1d(2, eps=-1.0), "BatchNorm1d: eps must be a finite number > 0, got -1.0"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward(np.array([3])), "Embedding: index 3 out of range [0, 3)"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward(np.array([0, -1])), "Embedding: index -1 out of range [0, 3)"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward(np.array(1)), "Embedding: indices must have at least 1 dimension"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward(np.zeros(0, int)), "Embedding: indices is empty (shape (0,))"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward(np.array([1.0])), "Embedding: indices must be an integer numpy"),
    (lambda: mbp.Embedding(3, 2, rng=0).forward([1]), "Embedding: indices must be an integer numpy.ndarray, got list"),
]


@pytest.mark.parametrize(("call", "message"), LAYER_ERRORS, ids=[str(i) for i in range(len(LAYER_ERRORS))])
def test_layer_errors_name_the_layer_and_the_argument(call: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match="^" + re.escape(message)):
        call()  # type: ignore[operator]


def test_embedding_accepts_every_index_in_range() -> None:
    layer = mbp.Embedding(3, 2, rng=0)
    idx = np.array([[0, 2], [1, 2]], dtype=np.uint8)
    np.testing.assert_array_equal(layer.forward(idx), layer.params["W"][idx])


def test_dropout_frozen_mask_and_p_zero() -> None:
    """A frozen Dropout reuses its mask and refuses a missing or misfitting one; p = 0 keeps everything."""
    layer = mbp.Dropout(0.5, rng=0)
    layer.frozen = True
    with pytest.raises(ValueError, match=r"^Dropout: frozen mask of shape None does not fit input shape \(2, 2\)"):
        layer.forward(np.ones((2, 2)))
    layer.mask = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match=r"^Dropout: frozen mask of shape \(2, 3\) does not fit input shape \(2, 2\)"):
        layer.forward(np.ones((2, 2)))
    mask = np.array([[True, False], [False, True]])
    layer.mask = mask
    np.testing.assert_array_equal(layer.forward(np.full((2, 2), 3.0)), [[6.0, 0.0], [0.0, 6.0]])
    assert layer.mask is mask
    keep = mbp.Dropout(0.0, rng=0)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(keep.forward(x), x)
    assert keep.mask.dtype == bool and keep.mask.all()


def test_sequential_train_load_build_and_residual() -> None:
    """train(mode) reaches every layer and returns the model; load_state_dict copies all or nothing and
    names the key; build rebuilds the architecture; Residual's backward is dout + the branch's dx."""
    inner = mbp.Sequential(mbp.Dropout(0.5, rng=0))
    model = mbp.Sequential(mbp.Linear(2, 2, rng=0), inner)
    assert model.train(False) is model and not any(m.training for m in model.modules())
    assert model.train() is model and all(m.training for m in model.modules())
    state = {"0.W": np.arange(4.0).reshape(2, 2), "0.b": np.array([1.0, -1.0])}
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.params["0.W"], state["0.W"])
    np.testing.assert_array_equal(model.params["0.b"], state["0.b"])
    bad = {"0.W": np.zeros((2, 2)), "0.b": np.zeros(3)}
    with pytest.raises(ValueError, match=r"^Sequential\.load_state_dict: '0\.b' has shape \(3,\), the model expects"):
        model.load_state_dict(bad)
    np.testing.assert_array_equal(model.params["0.W"], state["0.W"])  # nothing written
    with pytest.raises(ValueError, match=r"^Sequential\.load_state_dict: missing keys \['0\.b'\], unexpected keys"):
        model.load_state_dict({"0.W": state["0.W"]})
    with pytest.raises(TypeError, match=r"^Sequential\.load_state_dict: '0\.W' has dtype float32"):
        model.load_state_dict({"0.W": np.zeros((2, 2), np.float32), "0.b": np.zeros(2)})
    rebuilt = mbp.build(mbp.architecture(model))
    assert mbp.architecture(rebuilt) == mbp.architecture(model) and type(rebuilt[1]) is mbp.Sequential
    assert type(mbp.build({"kind": "relu"})) is mbp.ReLU
    with pytest.raises(ValueError, match=r"^build: unknown layer kind 'nope'; known kinds: \["):
        mbp.build({"kind": "nope"})
    res = mbp.Residual(mbp.Linear(2, 2, rng=1))
    with pytest.raises(mbp.StateError, match=r"^Residual: backward\(\) called before forward\(\)"):
        res.backward(np.ones((1, 2)))
    x, dout = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0]])
    W = res.params["0.W"]
    np.testing.assert_allclose(res.forward(x), x + x @ W + res.params["0.b"], rtol=1e-15)
    np.testing.assert_allclose(res.backward(dout), dout + dout @ W.T, rtol=1e-15)
    np.testing.assert_allclose(res.grads["0.W"], x.T @ dout, rtol=1e-15)


def test_activation_defaults_are_torchs() -> None:
    assert mbp.LeakyReLU().config() == {"negative_slope": 0.01}
    assert mbp.ELU().config() == {"alpha": 1.0}
    assert mbp.Softplus().config() == {"beta": 1.0, "threshold": 20.0}


def test_dropout_p_zero_draws_nothing_and_loss_repr() -> None:
    """p = 0 keeps every unit without drawing from the generator; a loss's repr abbreviates its weight."""
    gen = np.random.default_rng(5)
    mbp.Dropout(0.0, rng=gen).forward(np.ones((3, 4)))
    assert gen.random() == np.random.default_rng(5).random()
    assert (
        repr(mbp.NLLLoss(np.arange(8.0)))
        == "NLLLoss(weight=[0., 1., 2., ..., 5., 6., 7.], ignore_index=-100, reduction='mean')"
    )
