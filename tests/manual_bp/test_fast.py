"""Gradient storage: a new dW goes into the last one's array only when nothing else refers to it.

``manual_bp.fast`` (docstring, "Gradient storage"): reusing the array saves the
kernel zeroing fresh pages, and must never change an array anyone can still see.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import fast, layers
from manual_bp.fast import take_unshared


@pytest.fixture(autouse=True)
def reuse_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The small layers here are under REUSE_MIN_BYTES: take them too (one test below keeps the default)."""
    monkeypatch.setattr(fast, "REUSE_MIN_BYTES", 0)


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def step(model: mbp.Sequential, x: np.ndarray, dout: np.ndarray, input_grad: bool = True) -> None:
    model.forward(x)
    model.backward(dout, input_grad=input_grad)


def model_and_data(seed: int, dtype: Any = np.float64) -> tuple[mbp.Sequential, list[np.ndarray], list[np.ndarray]]:
    r = np.random.default_rng(seed)
    model = mbp.Sequential(mbp.Linear(5, 7, rng=r, dtype=dtype), mbp.Tanh(), mbp.Linear(7, 3, rng=r, dtype=dtype))
    xs = [r.standard_normal((4, 5)).astype(dtype) for _ in range(3)]
    douts = [r.standard_normal((4, 3)).astype(dtype) for _ in range(3)]
    return model, xs, douts


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_unheld_gradient_storage_is_reused_and_values_match_fresh_arrays(seed: int, input_grad: bool) -> None:
    reused, xs, douts = model_and_data(seed)
    fresh, _, _ = model_and_data(seed)
    step(reused, xs[0], douts[0], input_grad)
    where = {k: address(v) for k, v in reused.grads.items() if k.endswith("W")}
    kept: list[dict[str, np.ndarray]] = []
    for x, dout in zip(xs[1:], douts[1:]):
        step(reused, x, dout, input_grad)
        kept.append(fresh.grads)  # holding fresh's gradients forces new arrays there
        step(fresh, x, dout, input_grad)
        for k, g in reused.grads.items():
            np.testing.assert_array_equal(g, fresh.grads[k], err_msg=f"seed={seed} {k}")
    assert {k: address(v) for k, v in reused.grads.items() if k.endswith("W")} == where, f"seed={seed}"


def dW0(m: mbp.Sequential) -> np.ndarray:
    return m.layers[0].grads["W"]


# name: (what a user keeps, how to read dW (or the part of it they see) back from it, that part of dW)
HOLDERS: dict[str, tuple[Callable[[mbp.Sequential], Any], Callable[[Any], Any], Callable[[np.ndarray], np.ndarray]]] = {
    "the array": (dW0, lambda h: h, lambda g: g),
    "a view": (lambda m: dW0(m)[1:, ::2], lambda h: h, lambda g: g[1:, ::2]),
    "a transpose": (lambda m: dW0(m).T, lambda h: h, lambda g: g.T),
    "model.grads": (lambda m: m.grads, lambda h: h["0.W"], lambda g: g),
    "a copy of the layer's grads dict": (lambda m: dict(m.layers[0].grads), lambda h: h["W"], lambda g: g),
    "a list": (lambda m: [dW0(m)], lambda h: h[0], lambda g: g),
    "a memoryview": (lambda m: memoryview(dW0(m)), np.asarray, lambda g: g),
}


@pytest.mark.parametrize("holder", HOLDERS)
@pytest.mark.parametrize("seed", range(3))
def test_a_held_gradient_is_never_overwritten(seed: int, holder: str) -> None:
    model, xs, douts = model_and_data(seed)
    hold, read, part = HOLDERS[holder]
    step(model, xs[0], douts[0])
    before = dW0(model).copy()
    held = hold(model)
    step(model, xs[1], douts[1])
    np.testing.assert_array_equal(read(held), part(before), err_msg=f"seed={seed}, held through {holder}")
    assert not np.array_equal(dW0(model), before), f"seed={seed}: the new dW must differ"


@pytest.mark.parametrize("D, M, reused", [(512, 256, True), (8, 8, False)])
def test_only_arrays_of_at_least_reuse_min_bytes_are_taken(monkeypatch, D: int, M: int, reused: bool) -> None:
    monkeypatch.setattr(fast, "REUSE_MIN_BYTES", 1 << 20)  # the default: 512 x 256 float64 is exactly 1 MiB
    calls: list[str] = []
    monkeypatch.setattr(fast, "take_unshared", lambda *a: calls.append(a[1]) or take_unshared(*a))
    r = np.random.default_rng(0)
    layer = mbp.Linear(D, M, rng=r)
    for _ in range(2):
        layer.forward(r.standard_normal((3, D)))
        layer.backward(r.standard_normal((3, M)))
    assert calls == (["W"] if reused else [])  # the first backward has no earlier dW


@pytest.mark.parametrize("default_threshold", [True, False])
def test_gradients_not_reused_are_freed_before_the_new_ones_are_computed(monkeypatch, default_threshold: bool) -> None:
    """db is never reused, and a dW under REUSE_MIN_BYTES is not: neither may stay alive beside its successor."""
    if default_threshold:
        monkeypatch.setattr(fast, "REUSE_MIN_BYTES", 1 << 20)
    r = np.random.default_rng(5)
    layer = mbp.Linear(6, 4, rng=r)
    x, dout = r.standard_normal((3, 6)), r.standard_normal((3, 4))
    layer.forward(x)
    layer.backward(dout)
    old = {k: weakref.ref(v) for k, v in layer.grads.items()}
    alive: list[dict[str, bool]] = []
    compute = layers.linear_backward

    def spy(*args: Any, **kwargs: Any) -> Any:
        alive.append({k: ref() is not None for k, ref in old.items()})
        return compute(*args, **kwargs)

    monkeypatch.setattr(layers, "linear_backward", spy)
    layer.forward(x)
    layer.backward(dout)
    assert alive == [{"W": not default_threshold, "b": False}]


def test_zero_grad_frees_the_gradients() -> None:
    model, xs, douts = model_and_data(0)
    step(model, xs[0], douts[0])
    old = [weakref.ref(g) for g in model.grads.values()]
    model.zero_grad()
    assert model.grads == {}
    gc.collect()
    assert all(ref() is None for ref in old), "zero_grad must not keep the gradients as spare storage"


def test_a_backward_that_raises_keeps_no_spare_storage() -> None:
    model, xs, douts = model_and_data(1)
    step(model, xs[0], douts[0])
    lin = model.layers[2]
    with pytest.raises(ValueError):
        lin.backward(douts[0][:, :2])  # wrong shape: rejected before any storage is taken
    with pytest.raises(ValueError):
        model.backward(np.full((4, 3), np.nan)[:, :2])
    assert all(layer._spare == {} for layer in model.layers)


def test_take_unshared_counts_every_holder() -> None:
    a = np.zeros((3, 4))
    store = {"W": a}
    assert take_unshared(store, "W", (3, 4), a.dtype) is None, "a local name also holds it"
    assert store == {}, "the entry is taken out either way"
    store = {"W": np.zeros((3, 4))}
    got = take_unshared(store, "W", (3, 4), np.dtype(np.float64))
    assert got is not None and got.shape == (3, 4)
    for shape, dtype in (((4, 3), np.float64), ((3, 4), np.float32)):
        store = {"W": np.zeros((3, 4))}
        assert take_unshared(store, "W", shape, np.dtype(dtype)) is None, (shape, dtype)
    store = {"W": np.zeros((4, 3)).T}  # a view: its base holds the memory
    assert take_unshared(store, "W", (3, 4), np.dtype(np.float64)) is None
    store = {"W": np.asfortranarray(np.zeros((3, 4)))}
    assert take_unshared(store, "W", (3, 4), np.dtype(np.float64)) is None
    readonly = np.zeros((3, 4))
    readonly.flags.writeable = False
    store = {"W": readonly}
    del readonly
    assert take_unshared(store, "W", (3, 4), np.dtype(np.float64)) is None
    assert take_unshared({}, "W", (3, 4), np.dtype(np.float64)) is None
