"""Initialisers (manual_bp/init.py): seeded and bit-identical, torch's bounds, the documented spreads."""

from __future__ import annotations

import math

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import init

INITS = ["torch", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal"]


@pytest.mark.parametrize("name", INITS)
def test_initialiser_same_seed_bit_identical(name: str) -> None:
    fn = init.INITIALIZERS[name]
    a = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float64))
    b = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float64))
    c = fn(np.random.default_rng(8), (30, 20), 30, 20, np.dtype(np.float64))
    f32 = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float32))
    assert a.shape == (30, 20) and a.dtype == np.float64 and f32.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(f32, a.astype(np.float32))  # drawn in float64, then rounded


def test_torch_uniform_bounds() -> None:
    fan_in = 50
    W = init.torch_uniform(np.random.default_rng(0), (fan_in, 400), fan_in, 400, np.dtype(np.float64))
    bound = 1 / math.sqrt(fan_in)
    assert np.max(np.abs(W)) <= bound
    assert np.max(W) > 0.99 * bound and np.min(W) < -0.99 * bound  # the full interval is used
    b = mbp.Linear(fan_in, 7, rng=0).params["b"]
    assert np.max(np.abs(b)) <= bound and b.shape == (7,)


@pytest.mark.parametrize(
    ("name", "std"),
    [
        ("torch", lambda fi, fo: 1 / math.sqrt(3 * fi)),
        ("kaiming_uniform", lambda fi, fo: math.sqrt(2 / fi)),
        ("kaiming_normal", lambda fi, fo: math.sqrt(2 / fi)),
        ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
        ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ],
)
def test_initialiser_std(name: str, std: object) -> None:
    """On 200k samples the sample std is within ~0.2% of the target (3 sigma ~0.5%): allow 2%."""
    fi, fo = 400, 500
    W = init.INITIALIZERS[name](np.random.default_rng(1), (fi, fo), fi, fo, np.dtype(np.float64))
    target = std(fi, fo)  # type: ignore[operator]
    assert W.std() == pytest.approx(target, rel=0.02)
    assert abs(W.mean()) < 5 * target / math.sqrt(W.size)


def test_linear_uses_the_named_initialiser() -> None:
    W = mbp.Linear(400, 300, rng=3, init="kaiming_normal").params["W"]
    assert W.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert np.array_equal(W, init.kaiming_normal(np.random.default_rng(3), (400, 300), 400, 300, np.dtype(np.float64)))
    zero = mbp.Linear(3, 2, rng=0, init="zeros").params["W"]
    assert np.array_equal(zero, np.zeros((3, 2)))


def test_as_generator() -> None:
    g = np.random.default_rng(0)
    assert init.as_generator(g, "x") is g
    assert init.as_generator(5, "x").random() == np.random.default_rng(5).random()
    with pytest.raises(TypeError, match=r"x: rng must be a numpy\.random\.Generator or an int seed, got bool"):
        init.as_generator(True, "x")
