"""LayerNorm, Flatten, BatchNorm1d, Embedding, Residual and Dropout: finite differences, parity with
PyTorch and JAX (train and eval; running statistics over several steps), planted bugs, bad input.

Every case is rebuilt from its test id (layer name and seed) as in ``test_gradcheck_layers``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.compare import compare_case, compare_running_buffers
from manual_bp import functional as F
from manual_bp import layers, norm
from manual_bp.gradcheck import gradcheck
from tests.test_gradcheck_layers import case_rng

SEEDS = range(20)


def _affine(layer: mbp.Module, r: np.random.Generator) -> mbp.Module:
    """Random gamma (both signs) and beta, so that dgamma/dbeta are not hidden by gamma = 1, beta = 0."""
    if "gamma" in layer.params:
        D = layer.params["gamma"].shape[0]
        layer.params["gamma"][:] = r.choice([-1.0, 1.0], D) * r.uniform(0.5, 2.0, D)
        layer.params["beta"][:] = r.standard_normal(D)
    if "running_var" in layer.buffers:
        D = layer.buffers["running_var"].shape[0]
        layer.buffers["running_mean"][:] = r.standard_normal(D)
        layer.buffers["running_var"][:] = r.uniform(0.3, 3.0, D)
    return layer


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
    front: list[mbp.Module] = (
        [mbp.Embedding(4, D, rng=r)] if seed % 2 else [mbp.Flatten(), mbp.Linear(2 * D, D, rng=r)]
    )
    model = mbp.Sequential(
        *front, _affine(mbp.BatchNorm1d(D), r), mbp.Tanh(), mbp.Dropout(0.4, rng=seed),
        mbp.Residual(mbp.Linear(D, D, rng=r), _affine(mbp.LayerNorm(D), r), mbp.GELU()), mbp.Linear(D, C, rng=r),
    )
    x = r.integers(0, 4, N) if seed % 2 else r.standard_normal((N, 2, D))
    if objective == "ce":
        loss, y = mbp.SoftmaxCrossEntropy(), r.integers(0, C, N)
    else:
        loss, y = mbp.MSE(), r.standard_normal((N, C))
    result = gradcheck(model, loss, x, y)
    assert result.ok, f"seed={seed}\n{result}"


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


# ---------------------------------------------------------------- behaviour


def test_batch_norm_one_sample_in_training_is_a_clear_error(frameworks) -> None:
    import torch

    with pytest.raises(ValueError, match=re.escape("BatchNorm1d: training needs more than one sample per feature, "
                                                   "got input shape (1, 3)")):
        mbp.BatchNorm1d(3).forward(np.ones((1, 3)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3, dtype=torch.float64)(torch.ones(1, 3, dtype=torch.float64))
    mbp.BatchNorm1d(3).eval().forward(np.ones((1, 3)))  # eval mode uses the running statistics: fine


def test_batch_norm_running_statistics_follow_torch_momentum() -> None:
    r = np.random.default_rng(0)
    bn, x = mbp.BatchNorm1d(3, momentum=0.1), r.standard_normal((5, 3))
    bn.forward(x)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-15)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-15)
    out = bn.forward(x)  # normalised with the biased variance
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-13)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    bn.eval().forward(x)
    assert all(np.array_equal(before[k], bn.buffers[k]) for k in before)  # eval never updates


def test_embedding_accumulates_repeated_indices() -> None:
    emb = mbp.Embedding(3, 2, rng=0)
    idx = np.array([1, 1, 1, 0])
    emb.forward(idx)
    dout = np.arange(8.0).reshape(4, 2)
    assert emb.backward(dout) is None  # no gradient for integer indices
    np.testing.assert_array_equal(emb.grads["W"], [[6, 7], [6, 9], [0, 0]])


def test_dropout_masks_p0_eval_and_generator() -> None:
    x = np.random.default_rng(0).standard_normal((50, 40))
    a, b = mbp.Dropout(0.3, rng=7), mbp.Dropout(0.3, rng=7)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))  # same seed, same mask
    keep = a.mask.mean()
    assert 0.6 < keep < 0.8 and a.mask.dtype == bool
    np.testing.assert_allclose(a.forward(x)[a.mask], x[a.mask] / 0.7, rtol=1e-15)
    np.testing.assert_array_equal(mbp.Dropout(0.0, rng=1).forward(x), x)
    np.testing.assert_array_equal(mbp.Dropout(0.9, rng=1).eval().forward(x), x)
    hi = mbp.Dropout(0.999, rng=1)
    out = hi.forward(x)
    assert np.all(np.isfinite(out)) and np.allclose(out[hi.mask], x[hi.mask] * 1000, rtol=1e-12)


def test_save_load_round_trip_with_new_layers(tmp_path) -> None:
    r = np.random.default_rng(1)
    model = mbp.Sequential(
        mbp.Embedding(5, 4, rng=r), _affine(mbp.BatchNorm1d(4), r), mbp.ReLU(), mbp.Dropout(0.2, rng=1),
        mbp.Residual(mbp.Linear(4, 4, rng=r), _affine(mbp.LayerNorm(4), r)), mbp.Linear(4, 2, rng=r),
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
    (lambda: mbp.Embedding(3, 2).forward(np.array([0, 3])), ValueError,
     "Embedding: index 3 out of range [0, 3) in indices of shape (2,)"),
    (lambda: mbp.Embedding(3, 2).forward(np.array([-1, 0])), ValueError, "Embedding: index -1 out of range [0, 3)"),
    (lambda: mbp.Embedding(3, 2).forward(np.array([0.0, 1.0])), TypeError,
     "Embedding: indices must be an integer numpy.ndarray, got float64"),
    (lambda: mbp.Dropout(1.0), ValueError, "Dropout: p must be in [0, 1), got 1.0"),
    (lambda: mbp.Dropout(-0.1), ValueError, "Dropout: p must be in [0, 1), got -0.1"),
    (lambda: mbp.Dropout(1.5), ValueError, "Dropout: p must be in [0, 1), got 1.5"),
    (lambda: mbp.LayerNorm(4).forward(np.ones((2, 3))), ValueError,
     "LayerNorm: expected input (..., 4), got shape (2, 3): the last axis must hold 4 features"),
    (lambda: mbp.LayerNorm(4).forward(np.ones((2, 4), np.float32)), TypeError,
     "LayerNorm: input dtype float32 does not match the parameters' dtype float64"),
    (lambda: mbp.BatchNorm1d(4).forward(np.ones((2, 3))), ValueError,
     "BatchNorm1d: expected input (N, 4), got shape (2, 3)"),
    (lambda: mbp.BatchNorm1d(4).forward(np.ones((2, 3, 4))), ValueError,
     "BatchNorm1d: expected input (N, 4), got shape (2, 3, 4); flatten other axes first"),
    (lambda: mbp.BatchNorm1d(4, momentum=1.5), ValueError, "BatchNorm1d: momentum must be in [0, 1], got 1.5"),
    (lambda: mbp.Flatten().forward(np.ones(3)), ValueError, "Flatten: input must have at least 2 dimension(s)"),
    (lambda: mbp.Sequential(mbp.Residual(mbp.Linear(3, 2, rng=0))).forward(np.ones((2, 3))), ValueError,
     "Residual '0': the branch maps input (2, 3) float64 to (2, 2) float64"),
]


@pytest.mark.parametrize(("call", "exc", "message"), BAD,
                         ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(BAD)])
def test_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_frozen_dropout_with_the_wrong_shape() -> None:
    d = mbp.Dropout(0.5, rng=0)
    d.forward(np.ones((2, 3)))
    d.frozen = True
    message = "Dropout: frozen mask of shape (2, 3) does not fit input shape (4, 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        d.forward(np.ones((4, 3)))


# ---------------------------------------------------------------- parity with PyTorch and JAX


def _parity_models(r: np.random.Generator, dtype: str) -> dict[str, tuple[mbp.Sequential, np.ndarray, int]]:
    """name -> (model, x, C): each new layer inside a small network, in both modes where it has two."""
    def lin(i: int, o: int) -> mbp.Linear:
        return mbp.Linear(i, o, rng=r, dtype=dtype)

    x = r.standard_normal((7, 4)).astype(dtype)
    models = {
        "layer_norm": (mbp.Sequential(lin(4, 5), _affine(mbp.LayerNorm(5, dtype=dtype), r), mbp.GELU(), lin(5, 3)), x),
        "layer_norm_3d": (mbp.Sequential(mbp.LayerNorm(4, elementwise_affine=False, dtype=dtype), mbp.Flatten(),
                                         lin(8, 3)), r.standard_normal((7, 2, 4)).astype(dtype)),
        "batch_norm_train": (mbp.Sequential(lin(4, 5), _affine(mbp.BatchNorm1d(5, dtype=dtype), r), mbp.ReLU(),
                                            lin(5, 3)), x),
        "batch_norm_eval": (mbp.Sequential(lin(4, 5), _affine(mbp.BatchNorm1d(5, momentum=0.3, dtype=dtype), r),
                                           mbp.Tanh(), lin(5, 3)).eval(), x),
        "batch_norm_no_affine": (mbp.Sequential(mbp.BatchNorm1d(4, affine=False, dtype=dtype), lin(4, 3)), x),
        "embedding": (mbp.Sequential(mbp.Embedding(3, 4, rng=r, dtype=dtype), mbp.Flatten(), lin(8, 3)),
                      r.integers(0, 3, (7, 2))),
        "flatten": (mbp.Sequential(lin(4, 3), mbp.SiLU(), mbp.Flatten(), lin(6, 3)),
                    r.standard_normal((7, 2, 4)).astype(dtype)),
        "residual": (mbp.Sequential(lin(4, 5), mbp.Residual(lin(5, 5), _affine(mbp.LayerNorm(5, dtype=dtype), r),
                                                           mbp.ReLU(), mbp.Residual(lin(5, 5), mbp.Tanh())),
                                    lin(5, 3)), x),
        "dropout_train": (mbp.Sequential(lin(4, 6), mbp.ReLU(), mbp.Dropout(0.5, rng=3), lin(6, 3)), x),
        "dropout_eval": (mbp.Sequential(lin(4, 6), mbp.Dropout(0.5, rng=3), lin(6, 3)).eval(), x),
        "dropout_near_1": (mbp.Sequential(lin(4, 6), mbp.Dropout(0.999, rng=3), lin(6, 3)), x),
    }
    return models


PARITY = ["layer_norm", "layer_norm_3d", "batch_norm_train", "batch_norm_eval", "batch_norm_no_affine", "embedding",
          "flatten", "residual", "dropout_train", "dropout_eval", "dropout_near_1"]


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", PARITY)
def test_parity(name: str, dtype: str, frameworks) -> None:
    r = case_rng("parity/" + name, 0)
    model, x = _parity_models(r, dtype)[name]
    y = r.integers(0, 3, 7)
    dout = r.standard_normal((7, 3)).astype(dtype)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks,
                          case_id=name)
    assert result.ok, result.summary()
    if dtype == "float64":
        assert all(c.error <= 1e-10 for comp in result.comparisons for c in comp.checks)
    names = {c.name for c in result.comparisons[0].checks}
    if name.startswith("batch_norm"):
        assert {"1.running_mean", "1.running_var"} <= names or {"0.running_mean", "0.running_var"} <= names
    if name == "embedding":
        assert "0.dW" in names and "0.dx" not in names
    if name == "residual":
        assert {"1.0.dx", "1.3.0.dW", "1.3.dx", "1.dx"} <= names
    after = model.state_dict()
    assert all(np.array_equal(state[k], after[k]) for k in state)  # the model is left as it was


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("affine", [True, False])
def test_running_buffers_after_several_steps(affine: bool, dtype: str, frameworks) -> None:
    r = case_rng("buffers", int(affine))
    model = mbp.Sequential(_affine(mbp.BatchNorm1d(4, momentum=0.3, affine=affine, dtype=dtype), r),
                           mbp.Linear(4, 4, rng=r, dtype=dtype), mbp.Residual(mbp.BatchNorm1d(4, dtype=dtype)))
    xs = [(r.standard_normal((int(r.integers(2, 9)), 4)) * 3 + 1).astype(dtype) for _ in range(5)]
    checks = compare_running_buffers(model, xs, frameworks)
    assert len(checks) == 5 * 4 * len(frameworks)
    bad = [c for c in checks if not c.ok]
    assert not bad, bad[0]
    if dtype == "float64":
        assert max(c.error for c in checks) <= 1e-10


# ---------------------------------------------------------------- planted bugs


def _bn_unbiased_normalise(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    out, cache, stats = GOOD["batch_norm_forward"](x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if not training:
        return out, cache, stats
    N = x.shape[0]
    xc = x - x.mean(axis=0)
    rstd = 1.0 / np.sqrt((xc * xc).sum(axis=0) / (N - 1) + eps)  # the bug: unbiased variance normalises
    xhat = xc * rstd
    out = xhat * gamma + beta if gamma is not None else xhat
    return out, (True, xhat, xc, rstd, gamma, beta is not None), stats


def _bn_backward_missing_term(dout, cache):
    training, xhat, _xc, rstd, gamma, has_beta = cache
    if not training:
        return GOOD["batch_norm_backward"](dout, cache)
    dbeta, dgamma = dout.sum(axis=0), (dout * xhat).sum(axis=0)
    dxhat = dout * gamma if gamma is not None else dout
    dxc = dxhat * rstd  # the bug: the path through var (dxc += 2 xc dvar / N) is dropped
    dx = dxc - dxc.sum(axis=0) / dout.shape[0]
    return dx, (dgamma if gamma is not None else None), (dbeta if has_beta else None)


def _embedding_overwrites(dout, cache):
    idx, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    dW[idx.reshape(-1)] = dout.reshape(-1, dout.shape[-1])  # the bug: repeated indices keep only the last row
    return dW


GOOD = {name: getattr(F, name) for name in ("batch_norm_forward", "batch_norm_backward", "embedding_backward")}
HOME = {"batch_norm_forward": norm, "batch_norm_backward": norm, "embedding_backward": layers}  # the layers call these
PLANTS = {
    "batch_norm_unbiased_variance": ("batch_norm_forward", _bn_unbiased_normalise, ("loss", "1.out")),
    "batch_norm_backward_missing_term": ("batch_norm_backward", _bn_backward_missing_term, ("loss", "1.dx")),
    "embedding_grad_overwritten": ("embedding_backward", _embedding_overwrites, ("loss", "0.dW")),
}


def _plant_net(r: np.random.Generator):
    """indices (12,) -> Embedding(4, 5) -> BatchNorm1d(5) -> Tanh -> Linear(5, 3) -> CE; indices repeat."""
    model = mbp.Sequential(mbp.Embedding(4, 5, rng=r), _affine(mbp.BatchNorm1d(5), r), mbp.Tanh(),
                           mbp.Linear(5, 3, rng=r))
    return model, r.integers(0, 4, 12), r.integers(0, 3, 12), r.standard_normal((12, 3))


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_bug_is_caught_at_the_right_tensor(name: str, seed: int, monkeypatch, frameworks) -> None:
    model, x, y, dout = _plant_net(case_rng("plant/" + name, seed))
    clean = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert clean.ok, clean.summary()
    attr, bad, expected = PLANTS[name]
    monkeypatch.setattr(HOME[attr], attr, bad)
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert not result.ok, "the planted bug went unnoticed"
    comp, first = result.first_divergence
    assert comp.backend == "manual_bp"
    assert (comp.mode, first.name) == expected, result.summary()
    assert first.error > 100 * first.bound, f"{first.name}: error {first.error:.2e} barely above the bound"


@pytest.mark.parametrize("name", ["batch_norm_backward_missing_term", "embedding_grad_overwritten"])
def test_planted_backward_bugs_fail_finite_differences(name: str, monkeypatch) -> None:
    model, x, y, _ = _plant_net(case_rng("plant-fd/" + name, 0))
    assert gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y).ok
    attr, bad, _ = PLANTS[name]
    monkeypatch.setattr(HOME[attr], attr, bad)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert not result.ok and result.max_error > 1e-3, str(result)
