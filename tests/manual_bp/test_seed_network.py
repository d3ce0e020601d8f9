"""The seed network, 2 -> Linear(2, 3) -> ReLU -> Linear(3, 2) -> SoftmaxCrossEntropy, against its
vectorised backward written out by hand, and the seed's three slips shown fixed."""

from __future__ import annotations

import numpy as np
import pytest

import manual_bp as mbp


def seed_net(seed: int) -> mbp.Sequential:
    gen = np.random.default_rng(seed)
    return mbp.Sequential(mbp.Linear(2, 3, rng=gen), mbp.ReLU(), mbp.Linear(3, 2, rng=gen))


def by_hand(X: np.ndarray, y: np.ndarray, W1, b1, W2, b2) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """The seed's forward and vectorised backward, with its slips corrected (1/N, stable log-softmax)."""
    N = X.shape[0]
    Y = np.eye(W2.shape[1])[y]  # (N, C) one-hot
    z1 = X @ W1 + b1  # (N, 3)
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2 + b2  # (N, 2)
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(N), y]))
    dz2 = (p - Y) / N  # (N, 2)
    dW2 = a1.T @ dz2  # (3, 2)
    db2 = dz2.sum(0)
    da1 = dz2 @ W2.T  # (N, 3)
    dz1 = da1 * (z1 > 0)
    dW1 = X.T @ dz1  # (2, 3)
    db1 = dz1.sum(0)
    dX = dz1 @ W1.T
    return float(loss), {"0.W": dW1, "0.b": db1, "2.W": dW2, "2.b": db2}, dX


def run(model: mbp.Sequential, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    loss_fn = mbp.SoftmaxCrossEntropy()
    loss = float(loss_fn.forward(model.forward(X), y))
    dX = model.backward(loss_fn.backward())
    return loss, {k: v.copy() for k, v in model.grads.items()}, dX


@pytest.mark.parametrize("seed", range(10))
def test_grads_match_the_hand_written_backward(seed: int) -> None:
    r = np.random.default_rng(1000 + seed)
    model = seed_net(seed)
    N = 1 + seed % 7
    X = r.standard_normal((N, 2)) * 2
    y = r.integers(0, 2, N)
    loss, grads, dX = run(model, X, y)
    p = model.params
    loss_ref, grads_ref, dX_ref = by_hand(X, y, p["0.W"], p["0.b"], p["2.W"], p["2.b"])
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    assert set(grads) == set(grads_ref)
    for k, ref in grads_ref.items():
        np.testing.assert_allclose(grads[k], ref, rtol=1e-12, atol=1e-15, err_msg=f"{k} seed={seed}")
    np.testing.assert_allclose(dX, dX_ref, rtol=1e-12, atol=1e-15, err_msg=f"dX seed={seed}")
    assert any(np.any(g != 0) for g in grads.values())


def test_param_names() -> None:
    model = seed_net(0)
    assert set(model.params) == {"0.W", "0.b", "2.W", "2.b"}
    assert [model.params[k].shape for k in ("0.W", "0.b", "2.W", "2.b")] == [(2, 3), (3,), (3, 2), (2,)]
    run(model, np.ones((3, 2)), np.array([0, 1, 1]))
    assert set(model.grads) == {"0.W", "0.b", "2.W", "2.b"}


def test_same_seed_bit_identical_models() -> None:
    a, b, c = seed_net(42), seed_net(42), seed_net(43)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]) and a.params[k].dtype == b.params[k].dtype
    assert any(not np.array_equal(a.params[k], c.params[k]) for k in a.params)
    X, y = np.array([[0.3, -1.2], [2.0, 0.5]]), np.array([1, 0])
    la, ga, _ = run(a, X, y)
    lb, gb, _ = run(b, X, y)
    assert la == lb and all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_slip_1_logits_not_mutated() -> None:
    z = np.array([[3.0, 1.0], [-2.0, 5.0]])
    z0 = z.copy()
    loss_fn = mbp.SoftmaxCrossEntropy()
    loss_fn.forward(z, np.array([0, 1]))
    loss_fn.backward()
    mbp.Softmax().forward(z)
    mbp.LogSoftmax().forward(z)
    assert np.array_equal(z, z0)  # the seed's softmax subtracted the row max in place


def test_slip_2_confident_mistake_costs_its_full_loss() -> None:
    """logits [0, 800] with label 0: the loss is 800 (log-sum-exp), not -log(1e-15) ~ 34.5."""
    loss_fn = mbp.SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = loss_fn.forward(np.array([[0.0, 800.0]]), np.array([0]))
        dz = loss_fn.backward()
    assert loss == pytest.approx(800.0, rel=1e-15)
    assert np.array_equal(dz, [[-1.0, 1.0]])
    mixed = mbp.SoftmaxCrossEntropy().forward(np.array([[0.0, 800.0], [0.0, 800.0]]), np.array([0, 1]))
    assert mixed == pytest.approx(400.0, rel=1e-15)


def test_slip_3_mean_loss_gradient_has_the_1_over_N() -> None:
    """Duplicating every row leaves the mean loss and its parameter gradients unchanged."""
    r = np.random.default_rng(7)
    X = r.standard_normal((5, 2)) * 2
    y = r.integers(0, 2, 5)
    model = seed_net(3)
    loss1, grads1, dX1 = run(model, X, y)
    loss2, grads2, dX2 = run(model, np.concatenate([X, X]), np.concatenate([y, y]))
    assert loss2 == pytest.approx(loss1, rel=1e-14)
    for k in grads1:
        np.testing.assert_allclose(grads2[k], grads1[k], rtol=1e-13, atol=1e-16, err_msg=k)
    np.testing.assert_allclose(dX2, np.concatenate([dX1, dX1]) / 2, rtol=1e-13, atol=1e-16)
    summed = mbp.SoftmaxCrossEntropy(reduction="sum")
    summed.forward(model.forward(X), y)
    model.backward(summed.backward())
    np.testing.assert_allclose(model.grads["2.W"], 5 * grads1["2.W"], rtol=1e-13)
