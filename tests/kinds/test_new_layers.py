"""LayerNorm, Flatten, BatchNorm1d, Embedding, Residual and Dropout, layer by layer over one table: finite
differences, dtypes, save/load, bad input, planted bugs that finite differences must catch.

Every case is rebuilt from its test id (layer name and seed). The parity tests are in
tests/crosscheck/test_new_layers.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.gradcheck import gradcheck
from tests.helpers import case_rng
from tests.helpers.new_layers import HOME, PLANTS, _affine, _plant_net

SEEDS = range(20)


def _width(r: np.random.Generator, seed: int) -> int:
    return 1 if seed % 5 == 1 else int(r.integers(2, 7))


def _batch(r: np.random.Generator, seed: int, lo: int = 1) -> int:
    return max(lo, 1 if seed % 5 == 0 else int(r.integers(2, 7)))


# name -> (rng, seed) -> (layer, x)
Maker = Callable[[np.random.Generator, int], tuple[mbp.Module, np.ndarray]]


def _layer_norm(affine: bool, eps: float) -> Maker:
    def make(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
        D = _width(r, seed)
        shape = (_batch(r, seed), int(r.integers(1, 4)), D) if seed % 5 == 2 else (_batch(r, seed), D)
        return _affine(mbp.LayerNorm(D, eps, affine), r), r.standard_normal(shape) * float(r.choice([0.1, 1, 5]))

    return make


def _batch_norm(affine: bool, train: bool, momentum: float = 0.1) -> Maker:
    def make(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
        D = _width(r, seed)
        N = _batch(r, seed, lo=2 if train else 1)  # training needs N >= 2 (see test_batch_norm_one_sample)
        layer = _affine(mbp.BatchNorm1d(D, momentum=momentum, affine=affine), r).train(train)
        return layer, r.standard_normal((N, D)) * float(r.choice([0.1, 1, 5])) + float(r.choice([0, 3]))

    return make


def _dropout(p: float, train: bool = True) -> Maker:
    def make(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
        return mbp.Dropout(p, rng=seed).train(train), r.standard_normal((_batch(r, seed), _width(r, seed)))

    return make


def _embedding(seq: bool) -> Maker:
    def make(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
        V = int(r.integers(1, 5))  # few rows: repeated indices are the rule
        shape = (_batch(r, seed), int(r.integers(1, 4))) if seq else (_batch(r, seed),)
        return mbp.Embedding(V, _width(r, seed), rng=r), r.integers(0, V, shape)

    return make


def _flatten(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    shape = (_batch(r, seed), *(int(r.integers(1, 4)) for _ in range(int(r.integers(1, 4)))))
    return mbp.Flatten(), r.standard_normal(shape)


def _residual(kind: str) -> Maker:
    def make(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
        D, N = _width(r, seed), _batch(r, seed, lo=2)
        branch: list[mbp.Module] = [mbp.Linear(D, D, rng=r)]
        if kind == "norm":
            branch += [_affine(mbp.LayerNorm(D), r), mbp.Tanh(), mbp.Dropout(0.3, rng=seed)]
        elif kind == "nested":
            branch += [mbp.Residual(mbp.Linear(D, D, rng=r), mbp.SiLU()), _affine(mbp.BatchNorm1d(D), r)]
        else:
            branch.append(mbp.GELU())
        return mbp.Residual(*branch), r.standard_normal((N, D))

    return make


MAKERS: dict[str, Maker] = {
    "LayerNorm": _layer_norm(True, 1e-5),
    "LayerNorm(no affine)": _layer_norm(False, 1e-5),
    "LayerNorm(eps=0.1)": _layer_norm(True, 0.1),
    "Flatten": _flatten,
    "BatchNorm1d(train)": _batch_norm(True, True),
    "BatchNorm1d(train,no affine)": _batch_norm(False, True),
    "BatchNorm1d(train,momentum=1)": _batch_norm(True, True, 1.0),
    "BatchNorm1d(eval)": _batch_norm(True, False),
    "BatchNorm1d(eval,no affine)": _batch_norm(False, False),
    "Embedding": _embedding(False),
    "Embedding(seq)": _embedding(True),
    "Residual": _residual("plain"),
    "Residual(norm,dropout)": _residual("norm"),
    "Residual(nested,batchnorm)": _residual("nested"),
    "Dropout(0.5)": _dropout(0.5),
    "Dropout(0)": _dropout(0.0),
    "Dropout(0.999)": _dropout(0.999),
    "Dropout(eval)": _dropout(0.5, train=False),
}


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MAKERS))
def test_gradcheck(name: str, seed: int) -> None:
    r = case_rng("new/" + name, seed)
    layer, x = MAKERS[name](r, seed)
    x_before, state = x.copy(), {k: v.copy() for k, v in {**layer.params, **layer.buffers}.items()}
    out = layer.forward(x)
    dout = r.standard_normal(out.shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok, f"{name} seed={seed} x.shape={x.shape}\n{result}"
    expected = set(layer.params) | (set() if x.dtype.kind in "iu" else {"input"})
    assert set(result.errors) == expected
    np.testing.assert_array_equal(x, x_before)  # inputs never mutated
    after = {**layer.params, **layer.buffers}
    # gradcheck restores buffers; the forward above moved them once, so compare params only
    assert all(np.array_equal(after[k], state[k]) for k in layer.params)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("objective", ["ce", "mse"])
def test_gradcheck_stacks(objective: str, seed: int) -> None:
    """MLPs with norms, dropout and residual blocks; an embedding front-end; a loss on top."""
    r = case_rng("new-stack/" + objective, seed)
    N, D, C = int(r.integers(2, 6)), int(r.integers(1, 5)), int(r.integers(2, 4))
    front: list[mbp.Module] = [mbp.Embedding(4, D, rng=r)] if seed % 2 else [mbp.Flatten(), mbp.Linear(2 * D, D, rng=r)]
    model = mbp.Sequential(
        *front,
        _affine(mbp.BatchNorm1d(D), r),
        mbp.Tanh(),
        mbp.Dropout(0.4, rng=seed),
        mbp.Residual(mbp.Linear(D, D, rng=r), _affine(mbp.LayerNorm(D), r), mbp.GELU()),
        mbp.Linear(D, C, rng=r),
    )
    x = r.integers(0, 4, N) if seed % 2 else r.standard_normal((N, 2, D))
    if objective == "ce":
        loss, y = mbp.SoftmaxCrossEntropy(), r.integers(0, C, N)
    else:
        loss, y = mbp.MSE(), r.standard_normal((N, C))
    result = gradcheck(model, loss, x, y)
    assert result.ok, f"seed={seed}\n{result}"


# ---------------------------------------------------------------- dtypes, save and load


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_dtype_preserved(name: str, dtype: str) -> None:
    r = case_rng("dtype/" + name, 3)
    layer, x = MAKERS[name](r, 3)
    model = _cast(layer, np.float32) if dtype == "float32" else layer
    if dtype == "float32" and x.dtype.kind == "f":
        x = x.astype(np.float32)
    model.train(layer.training)
    out = model.forward(x)
    assert out.dtype == np.dtype(dtype)
    dx = model.backward(np.ones_like(out))
    assert dx is None or dx.dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in model.grads.values())


def _cast(layer: mbp.Module, dtype: type) -> mbp.Module:
    """The same layer rebuilt in ``dtype`` (configs carry a dtype where the layer has parameters)."""

    def conv(arch: dict) -> dict:
        cfg = dict(arch["config"])
        if "dtype" in cfg:
            cfg["dtype"] = np.dtype(dtype).name
        if "layers" in cfg:
            cfg["layers"] = [conv(a) for a in cfg["layers"]]
        return {"kind": arch["kind"], "config": cfg}

    return mbp.build(conv(mbp.architecture(layer)))


def test_save_load_round_trip_with_new_layers(tmp_path) -> None:
    r = np.random.default_rng(1)
    model = mbp.Sequential(
        mbp.Embedding(5, 4, rng=r),
        _affine(mbp.BatchNorm1d(4), r),
        mbp.ReLU(),
        mbp.Dropout(0.2, rng=1),
        mbp.Residual(mbp.Linear(4, 4, rng=r), _affine(mbp.LayerNorm(4), r)),
        mbp.Linear(4, 2, rng=r),
    )
    path = mbp.save(tmp_path / "m.npz", model)
    back = mbp.load(path)
    assert sorted(back.state_dict()) == sorted(model.state_dict())
    assert "1.running_var" in back.state_dict() and "4.1.gamma" in back.state_dict()
    idx = r.integers(0, 5, 6)
    model.eval(), back.eval()
    np.testing.assert_array_equal(model.forward(idx), back.forward(idx))


# ---------------------------------------------------------------- bad input


BAD = [
    (
        lambda: mbp.Embedding(3, 2).forward(np.array([0, 3])),
        ValueError,
        "Embedding: index 3 out of range [0, 3) in indices of shape (2,)",
    ),
    (lambda: mbp.Embedding(3, 2).forward(np.array([-1, 0])), ValueError, "Embedding: index -1 out of range [0, 3)"),
    (
        lambda: mbp.Embedding(3, 2).forward(np.array([0.0, 1.0])),
        TypeError,
        "Embedding: indices must be an integer numpy.ndarray, got float64",
    ),
    (lambda: mbp.Dropout(1.0), ValueError, "Dropout: p must be in [0, 1), got 1.0"),
    (lambda: mbp.Dropout(-0.1), ValueError, "Dropout: p must be in [0, 1), got -0.1"),
    (lambda: mbp.Dropout(1.5), ValueError, "Dropout: p must be in [0, 1), got 1.5"),
    (
        lambda: mbp.LayerNorm(4).forward(np.ones((2, 3))),
        ValueError,
        "LayerNorm: expected input (..., 4), got shape (2, 3): the last axis must hold 4 features",
    ),
    (
        lambda: mbp.LayerNorm(4).forward(np.ones((2, 4), np.float32)),
        TypeError,
        "LayerNorm: input dtype float32 does not match the parameters' dtype float64",
    ),
    (
        lambda: mbp.BatchNorm1d(4).forward(np.ones((2, 3))),
        ValueError,
        "BatchNorm1d: expected input (N, 4), got shape (2, 3)",
    ),
    (
        lambda: mbp.BatchNorm1d(4).forward(np.ones((2, 3, 4))),
        ValueError,
        "BatchNorm1d: expected input (N, 4), got shape (2, 3, 4); flatten other axes first",
    ),
    (lambda: mbp.BatchNorm1d(4, momentum=1.5), ValueError, "BatchNorm1d: momentum must be in [0, 1], got 1.5"),
    (lambda: mbp.Flatten().forward(np.ones(3)), ValueError, "Flatten: input must have at least 2 dimension(s)"),
    (
        lambda: mbp.Sequential(mbp.Residual(mbp.Linear(3, 2, rng=0))).forward(np.ones((2, 3))),
        ValueError,
        "Residual '0': the branch maps input (2, 3) float64 to (2, 2) float64",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(BAD)]
)
def test_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()


# ---------------------------------------------------------------- planted bugs


@pytest.mark.parametrize("name", ["batch_norm_backward_missing_term", "embedding_grad_overwritten"])
def test_planted_backward_bugs_fail_finite_differences(name: str, monkeypatch) -> None:
    model, x, y, _ = _plant_net(case_rng("plant-fd/" + name, 0))
    assert gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y).ok
    attr, bad, _ = PLANTS[name]
    monkeypatch.setattr(HOME[attr], attr, bad)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert not result.ok and result.max_error > 1e-3, str(result)
