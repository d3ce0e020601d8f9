"""Optimisers: values against hand-unrolled formulas, state, in-place updates, dtypes, errors.

The hand formulas below are written out from torch.optim's documented update
rules, independently of ``manual_bp.optim``. A parity test against torch.optim
itself (marked ``parity``) runs when torch is installed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import SGD, Adam, AdamW, RMSprop
from manual_bp.optim import AdamState

RTOL, ATOL = 1e-12, 1e-14


@pytest.fixture
def case() -> tuple[np.ndarray, list[np.ndarray]]:
    """A random parameter (4, 3) and three gradients of different scales (float64)."""
    rng = np.random.default_rng(1234)
    p0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) * s for s in (1.0, 0.3, 2.0)]
    return p0, grads


def run3(cls, p0: np.ndarray, grads: list[np.ndarray], **hp):
    """Apply ``cls`` to a copy of p0 for each gradient; return (optimiser, final p, p after each step)."""
    p = p0.copy()
    opt = cls({"w": p}, **hp)
    after = []
    for g in grads:
        opt.step({"w": g})
        after.append(p.copy())
    assert opt.params["w"] is p
    return opt, p, after


def seed_model(dtype=np.float64) -> mbp.Sequential:
    gen = np.random.default_rng(0)
    return mbp.Sequential(mbp.Linear(2, 3, rng=gen, dtype=dtype), mbp.ReLU(), mbp.Linear(3, 2, rng=gen, dtype=dtype))


def backward_once(model: mbp.Sequential, dtype=np.float64) -> None:
    gen = np.random.default_rng(1)
    X, y = gen.normal(size=(8, 2)).astype(dtype), gen.integers(0, 2, 8)
    loss_fn = mbp.SoftmaxCrossEntropy()
    loss_fn(model(X), y)
    model.backward(loss_fn.backward())


# ---------------------------------------------------------------- SGD


def test_sgd_plain(case):
    p0, (g1, g2, g3) = case
    lr = 0.1
    _, p, _ = run3(SGD, p0, [g1, g2, g3], lr=lr)
    np.testing.assert_allclose(p, p0 - lr * g1 - lr * g2 - lr * g3, rtol=RTOL, atol=ATOL)


def test_sgd_momentum_dampening_weight_decay(case):
    p0, (g1, g2, g3) = case
    lr, mu, tau, wd = 0.1, 0.9, 0.25, 0.01
    opt, _, after = run3(SGD, p0, [g1, g2, g3], lr=lr, momentum=mu, dampening=tau, weight_decay=wd)
    d1 = g1 + wd * p0
    b1 = d1  # first step: buffer = gradient, no dampening
    p1 = p0 - lr * b1
    d2 = g2 + wd * p1
    b2 = mu * b1 + (1 - tau) * d2
    p2 = p1 - lr * b2
    d3 = g3 + wd * p2
    b3 = mu * b2 + (1 - tau) * d3
    p3 = p2 - lr * b3
    for got, want in zip(after, [p1, p2, p3]):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(opt.state["w"].momentum_buffer, b3, rtol=RTOL, atol=ATOL)
    assert opt.step_count == 3


def test_sgd_first_step_buffer_is_not_dampened(case):
    p0, (g1, *_) = case
    _, p, _ = run3(SGD, p0, [g1], lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(p, p0 - 0.1 * g1, rtol=RTOL, atol=ATOL)


def test_sgd_nesterov(case):
    p0, (g1, g2, g3) = case
    lr, mu, wd = 0.05, 0.8, 0.1
    *_, after = run3(SGD, p0, [g1, g2, g3], lr=lr, momentum=mu, nesterov=True, weight_decay=wd)
    d1 = g1 + wd * p0
    b1 = d1
    p1 = p0 - lr * (d1 + mu * b1)
    d2 = g2 + wd * p1
    b2 = mu * b1 + d2
    p2 = p1 - lr * (d2 + mu * b2)
    d3 = g3 + wd * p2
    b3 = mu * b2 + d3
    p3 = p2 - lr * (d3 + mu * b3)
    for got, want in zip(after, [p1, p2, p3]):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_sgd_without_momentum_keeps_no_buffer(case):
    p0, grads = case
    opt, _, _ = run3(SGD, p0, grads, lr=0.1)
    assert opt.state["w"].momentum_buffer is None


def test_maximize_is_descent_on_the_negated_gradient(case):
    p0, grads = case
    for cls in (SGD, Adam, AdamW, RMSprop):
        _, p_max, _ = run3(cls, p0, grads, lr=0.01, maximize=True)
        _, p_neg, _ = run3(cls, p0, [-g for g in grads], lr=0.01)
        np.testing.assert_array_equal(p_max, p_neg, err_msg=cls.__name__)


# ---------------------------------------------------------------- Adam / AdamW


def adam_by_hand(p0, grads, lr, b1, b2, eps, wd=0.0, amsgrad=False, decoupled=False):
    """torch.optim.Adam / AdamW, one line per formula; returns (p after each step, m, v, v_max)."""
    p, m, v, v_max = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    after = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        v_max = np.maximum(v_max, v)
        v_used = v_max if amsgrad else v
        p = p - lr / (1 - b1**t) * m / (np.sqrt(v_used) / math.sqrt(1 - b2**t) + eps)
        after.append(p)
    return after, m, v, v_max


def check_adam_unrolled(cls, p0, grads, lr=0.01, b1=0.9, b2=0.999, eps=0.1):
    """Adam written out step by step for 3 steps (eps large enough that its placement matters)."""
    g1, g2, g3 = grads
    m1 = (1 - b1) * g1
    v1 = (1 - b2) * g1**2
    p1 = p0 - lr / (1 - b1) * m1 / (np.sqrt(v1) / math.sqrt(1 - b2) + eps)
    m2 = b1 * m1 + (1 - b1) * g2
    v2 = b2 * v1 + (1 - b2) * g2**2
    p2 = p1 - lr / (1 - b1**2) * m2 / (np.sqrt(v2) / math.sqrt(1 - b2**2) + eps)
    m3 = b1 * m2 + (1 - b1) * g3
    v3 = b2 * v2 + (1 - b2) * g3**2
    p3 = p2 - lr / (1 - b1**3) * m3 / (np.sqrt(v3) / math.sqrt(1 - b2**3) + eps)
    opt, _, after = run3(cls, p0, grads, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0)
    for got, want in zip(after, [p1, p2, p3]):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(opt.state["w"].exp_avg, m3, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(opt.state["w"].exp_avg_sq, v3, rtol=RTOL, atol=ATOL)


def test_adam_unrolled_three_steps(case):
    check_adam_unrolled(Adam, *case)


def test_planted_bias_correction_off_by_one_is_caught(case):
    class OffByOne(Adam):
        def bias_correction(self, t):
            return super().bias_correction(t + 1)

    with pytest.raises(AssertionError):
        check_adam_unrolled(OffByOne, *case)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_options(case, amsgrad, wd):
    p0, grads = case
    hp = dict(lr=0.02, betas=(0.8, 0.95), eps=1e-3, weight_decay=wd, amsgrad=amsgrad)
    opt, _, after = run3(Adam, p0, grads, **hp)
    want, m, v, v_max = adam_by_hand(p0, grads, 0.02, 0.8, 0.95, 1e-3, wd, amsgrad)
    for got, w in zip(after, want):
        np.testing.assert_allclose(got, w, rtol=RTOL, atol=ATOL)
    s = opt.state["w"]
    assert isinstance(s, AdamState)
    np.testing.assert_allclose(s.exp_avg, m, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(s.exp_avg_sq, v, rtol=RTOL, atol=ATOL)
    if amsgrad:
        np.testing.assert_allclose(s.max_exp_avg_sq, v_max, rtol=RTOL, atol=ATOL)
    else:
        assert s.max_exp_avg_sq is None


def test_amsgrad_uses_the_running_max(case):
    """A big then small gradient: amsgrad keeps the big second moment, plain Adam forgets it."""
    p0, _ = case
    grads = [np.full_like(p0, 10.0), np.full_like(p0, 0.01), np.full_like(p0, 0.01)]
    _, p_ams, _ = run3(Adam, p0, grads, lr=0.1, betas=(0.9, 0.5), amsgrad=True)
    _, p_plain, _ = run3(Adam, p0, grads, lr=0.1, betas=(0.9, 0.5))
    assert not np.allclose(p_ams, p_plain)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_decoupled_weight_decay(case, amsgrad):
    p0, grads = case
    *_, after = run3(AdamW, p0, grads, lr=0.01, weight_decay=0.5, amsgrad=amsgrad)
    want, *_ = adam_by_hand(p0, grads, 0.01, 0.9, 0.999, 1e-8, 0.5, amsgrad, decoupled=True)
    for got, w in zip(after, want):
        np.testing.assert_allclose(got, w, rtol=RTOL, atol=ATOL)
    # coupled decay (Adam) gives a different result
    _, p_adam, _ = run3(Adam, p0, grads, lr=0.01, weight_decay=0.5, amsgrad=amsgrad)
    assert not np.allclose(after[-1], p_adam)


def test_adamw_default_weight_decay_is_torchs():
    assert AdamW({"w": np.zeros(2)}).weight_decay == 1e-2
    assert Adam({"w": np.zeros(2)}).weight_decay == 0.0


def test_adam_first_step_moves_each_entry_by_lr(case):
    """At t = 1, m_hat = g and v_hat = g^2, so the update is -lr * g / (|g| + eps) ~ -lr * sign(g)."""
    p0, (g1, *_) = case
    lr = 1e-3
    _, p, _ = run3(Adam, p0, [g1], lr=lr)
    np.testing.assert_allclose(p - p0, -lr * np.sign(g1), rtol=1e-6)


# ---------------------------------------------------------------- RMSprop


def rmsprop_by_hand(p0, grads, lr, alpha, eps, wd=0.0, mu=0.0, centered=False):
    p, v, g_bar, b = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    after = []
    for g in grads:
        g = g + wd * p
        v = alpha * v + (1 - alpha) * g**2
        if centered:
            g_bar = alpha * g_bar + (1 - alpha) * g
            d = np.sqrt(v - g_bar**2) + eps
        else:
            d = np.sqrt(v) + eps
        if mu > 0:
            b = mu * b + g / d
            p = p - lr * b
        else:
            p = p - lr * g / d
        after.append(p)
    return after, v, g_bar, b


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.01),
        dict(lr=0.01, alpha=0.9, eps=0.1, weight_decay=0.1),
        dict(lr=0.01, alpha=0.9, eps=1e-3, momentum=0.7),
        dict(lr=0.01, alpha=0.9, eps=1e-3, momentum=0.7, centered=True, weight_decay=0.05),
    ],
    ids=["plain", "wd-eps", "momentum", "centered-momentum-wd"],
)
def test_rmsprop(case, hp):
    p0, grads = case
    opt, _, after = run3(RMSprop, p0, grads, **hp)
    want, v, g_bar, b = rmsprop_by_hand(
        p0,
        grads,
        hp["lr"],
        hp.get("alpha", 0.99),
        hp.get("eps", 1e-8),
        hp.get("weight_decay", 0.0),
        hp.get("momentum", 0.0),
        hp.get("centered", False),
    )
    for got, w in zip(after, want):
        np.testing.assert_allclose(got, w, rtol=RTOL, atol=ATOL)
    s = opt.state["w"]
    np.testing.assert_allclose(s.square_avg, v, rtol=RTOL, atol=ATOL)
    if hp.get("centered"):
        np.testing.assert_allclose(s.grad_avg, g_bar, rtol=RTOL, atol=ATOL)
    else:
        assert s.grad_avg is None
    if hp.get("momentum"):
        np.testing.assert_allclose(s.momentum_buffer, b, rtol=RTOL, atol=ATOL)
    else:
        assert s.momentum_buffer is None


# ---------------------------------------------------------------- with a model: in place, dtypes

ALL = [
    (SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
]


@pytest.mark.parametrize("cls, hp", ALL, ids=[c.__name__ for c, _ in ALL])
def test_updates_model_arrays_in_place(cls, hp):
    model = seed_model()
    before = {k: (v, v.copy()) for k, v in model.params.items()}
    opt = cls(model, **hp)
    backward_once(model)
    opt.step()
    for k, (arr, old) in before.items():
        assert model.params[k] is arr, f"{k} was replaced instead of updated in place"
        assert not np.array_equal(arr, old), f"{k} did not change"
    assert model.layers[0].params["W"] is before["0.W"][0]


@pytest.mark.parametrize("cls, hp", ALL, ids=[c.__name__ for c, _ in ALL])
def test_float32_stays_float32(cls, hp, case):
    p0, grads = case
    opt, p, _ = run3(cls, p0.astype(np.float32), [g.astype(np.float32) for g in grads], **hp)
    _, p64, _ = run3(cls, p0, grads, **hp)
    assert p.dtype == np.float32
    for name, arr in opt.state["w"]._asdict().items():
        assert arr is None or arr.dtype == np.float32, name
    np.testing.assert_allclose(p, p64, rtol=1e-5, atol=1e-5)

    model = seed_model(np.float32)
    opt = cls(model, **hp)
    backward_once(model, np.float32)
    opt.step()
    assert all(v.dtype == np.float32 for v in model.params.values())


def test_training_reduces_the_loss():
    for cls, hp in ALL:
        model = seed_model()
        gen = np.random.default_rng(3)
        X, y = mbp.data.blobs(100, classes=2, rng=gen)
        loss_fn = mbp.SoftmaxCrossEntropy()
        opt = cls(model, **hp)
        first = float(loss_fn(model(X), y))
        for _ in range(30):
            loss_fn(model(X), y)
            model.backward(loss_fn.backward())
            opt.step()
        assert float(loss_fn(model(X), y)) < first, cls.__name__


# ---------------------------------------------------------------- errors

BAD = [
    (SGD, dict(lr=-0.1), "lr", ">= 0"),
    (SGD, dict(lr=float("nan")), "lr", ">= 0"),
    (SGD, dict(lr="0.1"), "lr", ">= 0"),
    (SGD, dict(momentum=-0.5), "momentum", ">= 0"),
    (SGD, dict(weight_decay=-1e-4), "weight_decay", ">= 0"),
    (SGD, dict(nesterov=True), "nesterov", "momentum > 0"),
    (SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov", "dampening == 0"),
    (SGD, dict(dampening=float("inf")), "dampening", "finite"),
    (Adam, dict(lr=-1e-3), "lr", ">= 0"),
    (Adam, dict(betas=(1.0, 0.999)), "betas[0]", "[0, 1)"),
    (Adam, dict(betas=(-0.1, 0.999)), "betas[0]", "[0, 1)"),
    (Adam, dict(betas=(0.9, 1.5)), "betas[1]", "[0, 1)"),
    (Adam, dict(betas=(0.9,)), "betas", "pair"),
    (Adam, dict(eps=-1e-8), "eps", ">= 0"),
    (Adam, dict(weight_decay=-0.1), "weight_decay", ">= 0"),
    (AdamW, dict(lr=-1.0), "lr", ">= 0"),
    (AdamW, dict(betas=(0.9, 1.0)), "betas[1]", "[0, 1)"),
    (AdamW, dict(weight_decay=-0.01), "weight_decay", ">= 0"),
    (RMSprop, dict(lr=-0.01), "lr", ">= 0"),
    (RMSprop, dict(alpha=-0.1), "alpha", ">= 0"),
    (RMSprop, dict(eps=-1.0), "eps", ">= 0"),
    (RMSprop, dict(momentum=-0.9), "momentum", ">= 0"),
    (RMSprop, dict(weight_decay=-1.0), "weight_decay", ">= 0"),
]


@pytest.mark.parametrize("cls, hp, name, accepted", BAD, ids=[f"{c.__name__}-{h}" for c, h, _, _ in BAD])
def test_bad_hyperparameter_is_named(cls, hp, name, accepted):
    with pytest.raises(ValueError) as err:
        cls({"w": np.zeros(3)}, **hp)
    msg = str(err.value)
    assert msg.startswith(f"{cls.__name__}:"), msg
    assert name in msg and accepted in msg, msg


def test_zero_lr_and_eps_are_allowed_as_in_torch():
    Adam({"w": np.zeros(3)}, lr=0.0, eps=0.0, betas=(0.0, 0.0))
    SGD({"w": np.zeros(3)}, lr=0.0)


def test_step_before_backward_names_the_parameter():
    model = seed_model()
    opt = Adam(model)
    with pytest.raises(mbp.StateError, match=r"no gradient for parameter '0\.W'.*backward"):
        opt.step()
    assert opt.step_count == 0


def test_bad_gradients_are_rejected_before_any_update():
    p, q = np.zeros((2, 3)), np.zeros(3)
    opt = SGD({"a": p, "b": q}, lr=0.1)
    with pytest.raises(ValueError, match=r"'b' has shape \(4,\), parameter \(3,\)"):
        opt.step({"a": np.ones((2, 3)), "b": np.ones(4)})
    with pytest.raises(TypeError, match=r"'b' has dtype float32, parameter float64"):
        opt.step({"a": np.ones((2, 3)), "b": np.ones(3, np.float32)})
    with pytest.raises(mbp.StateError, match="'b'"):
        opt.step({"a": np.ones((2, 3))})
    assert not p.any() and opt.step_count == 0  # 'a' untouched: all gradients are checked first


def test_construction_errors():
    with pytest.raises(ValueError, match="no parameters"):
        SGD({}, lr=0.1)
    with pytest.raises(TypeError, match="model"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match=r"'w'.*float32/float64"):
        SGD({"w": np.zeros(3, np.int64)}, lr=0.1)
    with pytest.raises(TypeError, match=r"pass the gradients"):
        SGD({"w": np.zeros(3)}, lr=0.1).step()


def test_config_and_repr():
    opt = Adam({"w": np.zeros(3)}, lr=0.5, amsgrad=True)
    assert opt.config()["betas"] == (0.9, 0.999) and opt.config()["amsgrad"] is True
    assert repr(opt).startswith("Adam(lr=0.5")
    opt.zero_grad()  # no-op: gradients are overwritten by every backward


# ---------------------------------------------------------------- parity with torch.optim

TORCH_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.8, centered=True)),
]


@pytest.mark.parity
@pytest.mark.parametrize("name, hp", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)])
def test_matches_torch_optim(name, hp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    p0 = rng.normal(size=(5, 4))
    p = p0.copy()
    opt = getattr(mbp, name)({"w": p}, **hp)
    tp = torch.tensor(p0, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **hp)
    for _ in range(5):
        g = rng.normal(size=p0.shape)
        opt.step({"w": g})
        tp.grad = torch.tensor(g)
        topt.step()
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-13, atol=1e-15)
    tstate = topt.state[tp]  # the state fields carry torch's names
    for field, arr in opt.state["w"]._asdict().items():
        if arr is not None:
            np.testing.assert_allclose(arr, tstate[field].numpy(), rtol=1e-13, atol=1e-15)
    if "step" in tstate:
        assert int(tstate["step"]) == opt.step_count


def test_zero_grad_makes_a_stale_step_fail():
    rng = np.random.default_rng(0)
    model = mbp.Sequential(mbp.Linear(3, 2, rng=rng))
    loss_fn = mbp.MSE()
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    loss_fn.forward(model.forward(x), t)
    model.backward(loss_fn.backward())
    opt = mbp.SGD(model, lr=0.1)
    opt.step()
    opt.zero_grad()
    assert model.grads == {}
    with pytest.raises(mbp.StateError, match=r"no gradient for parameter '0\.W'"):
        opt.step()


BLOCKED = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "amsgrad": True, "maximize": True}),
    (AdamW, {"lr": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    (RMSprop, {"lr": 0.01}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls, hp", BLOCKED, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(BLOCKED)])
def test_blocked_update_is_bit_identical_to_whole_arrays(cls, hp, dtype, monkeypatch):
    """Large arrays are updated block by block; the numbers, the state and the in-place arrays are
    exactly those of one update over the whole array (3 steps, a size that leaves a partial block)."""
    from manual_bp import fast

    rng = np.random.default_rng(7)
    shape = (3 * fast.BLOCK_BYTES // np.dtype(dtype).itemsize // 64 + 1, 64 + 3)  # > 3 blocks, and a partial one
    p0 = rng.normal(size=shape).astype(dtype)
    grads = [rng.normal(size=shape).astype(dtype) * s for s in (1.0, 0.3, 2.0)]
    _, blocked, _ = run3(cls, p0, grads, **hp)
    opt_b = cls({"w": p0.copy()}, **hp)
    monkeypatch.setattr(fast, "BLOCK_BYTES", p0.nbytes)  # one block: the plain whole-array update
    opt_w = cls({"w": p0.copy()}, **hp)
    for g in grads:
        opt_w.step({"w": g})
    monkeypatch.undo()
    for g in grads:
        opt_b.step({"w": g})
    np.testing.assert_array_equal(blocked, opt_w.params["w"])
    np.testing.assert_array_equal(opt_b.params["w"], opt_w.params["w"])
    for a, b in zip(opt_b.state["w"], opt_w.state["w"]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == shape and a.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, b)
