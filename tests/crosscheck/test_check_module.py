"""check_module on a user's layer objects and a model of them; register_kind with a custom activation."""

from __future__ import annotations

import numpy as np
import pytest


class MyLinear:
    """A user's linear layer in manual_bp's protocol, with an optional slip in db."""

    def __init__(self, D: int, M: int, mean_db: bool = False) -> None:
        rng = np.random.default_rng(D * 10 + M)
        self.params = {"W": rng.normal(size=(D, M)), "b": rng.normal(size=M)}
        self.grads: dict[str, np.ndarray] = {}
        self.mean_db = mean_db

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.mean(axis=0) if self.mean_db else dout.sum(axis=0)
        return dout @ self.params["W"].T


class MyTanh:
    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.out**2)


@pytest.mark.parity
@pytest.mark.parametrize("width", [(1, 1), (4, 3)])
def test_a_correct_layer_object_passes(width: tuple[int, int], frameworks: tuple[str, ...]) -> None:
    import crosscheck

    report = crosscheck.check_module(MyLinear(*width), like="linear", cases=4, against=frameworks)
    assert report.ok, "\n".join(r.summary() for r in report.failures)
    assert report.results[0].spec.layers[0].config == {"in_features": width[0], "out_features": width[1], "bias": True}
    assert crosscheck.check_module(MyTanh(), like="tanh", cases=3, against=frameworks).ok


@pytest.mark.parity
def test_a_mean_bias_gradient_is_diagnosed(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    report = crosscheck.check_module(MyLinear(4, 3, mean_db=True), like="linear", cases=3, against=frameworks)
    bad = [r for r in report.results if not r.ok]
    assert [r.case_id for r in bad] == ["module/0/1", "module/0/2"]  # case 0 is a batch of 1: mean = sum
    assert all(r.first_divergence[1].name == "layer.db" and "a mean where a sum belongs" in r.summary() for r in bad)


@pytest.mark.parity
def test_a_manual_bp_style_model_is_compared_layer_by_layer(frameworks: tuple[str, ...]) -> None:
    import crosscheck
    import manual_bp as mb

    model = mb.Sequential(mb.Linear(3, 4, rng=0), mb.Tanh(), mb.Linear(4, 2, rng=1))
    report = crosscheck.check_module(model, cases=2, against=frameworks)
    assert report.ok and {c.name for c in report.results[0].comparisons[0].checks} >= {"0.dW", "2.db", "1.dx"}


def test_an_object_without_kind_or_like_is_refused() -> None:
    import crosscheck

    with pytest.raises(ValueError, match="pass like='linear'"):
        crosscheck.check_module(MyTanh())


@pytest.fixture
def softsign():
    """A custom kind: out = a x / (1 + |x|), a learnable per-feature scale a; removed afterwards."""
    import crosscheck
    from crosscheck.check import unregister_kind

    def torch_forward(x, a):
        return a * x / (1 + x.abs())

    def jax_forward(x, a):
        import jax.numpy as jnp

        return a * x / (1 + jnp.abs(x))

    adapter = crosscheck.register_kind(
        "softsign", torch=torch_forward, jax=jax_forward, params=lambda rng, shape: {"a": rng.normal(size=shape[1:])}
    )
    yield adapter
    unregister_kind("softsign")


def softsign_forward(x, a):
    return a * x / (1 + np.abs(x)), (x, a)


def softsign_backward(dout, cache):
    x, a = cache
    return dout * a / (1 + np.abs(x)) ** 2, (dout * x / (1 + np.abs(x))).sum(axis=0)


def softsign_backward_slip(dout, cache):
    x, a = cache
    return dout * a / (1 + np.abs(x)), (dout * x / (1 + np.abs(x))).sum(axis=0)  # the square is missing


@pytest.mark.parity
def test_a_custom_kind_checks_a_users_pair(softsign, frameworks: tuple[str, ...]) -> None:
    import crosscheck

    assert softsign.grads == ("dx", "da")
    assert crosscheck.check_pair(softsign_forward, softsign_backward, kind="softsign", cases=6, seed=1).ok
    bad = crosscheck.check_pair(softsign_forward, softsign_backward_slip, kind="softsign", cases=6, seed=1)
    assert bad.failures and all(r.first_divergence[1].name == "softsign.dx" for r in bad.failures)


def test_a_custom_kind_needs_a_forward() -> None:
    import crosscheck

    with pytest.raises(ValueError, match="give its forward in torch= or jax="):
        crosscheck.register_kind("nothing")


@pytest.mark.subprocess
def test_registering_does_not_import_the_frameworks_until_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, crosscheck; crosscheck.register_kind('k', jax=lambda x: x); "
        "print('torch' in sys.modules, 'jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr
