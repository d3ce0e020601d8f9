"""Bad-input battery: every registered layer kind, the losses, the optimisers and save files.

Extends tests/kinds/test_errors.py (exact messages for Linear and the losses),
tests/kinds/test_properties.py (random valid inputs) and tests/manual_bp/test_io.py
(corrupt files): here every kind in ``Module.registry`` is driven through the
same battery, so a new layer is covered as soon as it is registered, and a kind
without an entry in ``KINDS`` below fails loudly.

Documented behaviour on non-finite numbers (docs/numerics.md): NaN propagates,
it is never turned into a different finite number. Every forward output entry
and every loss is either NaN or exactly what the clean input gives; a backward
pulled from a NaN-carrying upstream gradient (the loss's, whenever the loss is
NaN) is NaN wherever it depends on it. ``fit`` stops on a non-finite loss.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.module import Module

DTYPES = [np.float32, np.float64]


@dataclass(frozen=True)
class Kind:
    """How the battery builds one layer kind: a model holding it, a valid input and wrong shapes.

    ``make(dtype)`` returns a ``Sequential`` (same parameters and dropout masks on every call);
    ``where`` is how its errors name the layer that checks the input; ``wrong`` are inputs of a
    wrong shape for it (the empty batch is added for every kind). ``layout_reduction``: K, the
    longest sum whose order NumPy picks by memory layout (0: the kind is bit-for-bit layout-invariant).
    """

    make: Callable[[Any], mbp.Sequential]
    x: Callable[[np.random.Generator, Any], np.ndarray]
    where: str
    wrong: tuple[tuple[int, ...], ...] = ()
    empty: tuple[int, ...] = (0, 4)
    integer_input: bool = False
    layout_reduction: int = 0


def _seq(*layers: Module) -> mbp.Sequential:
    return mbp.Sequential(*layers)


def _normal(*shape: int, scale: float = 1.0) -> Callable[[np.random.Generator, Any], np.ndarray]:
    return lambda r, dt: (scale * r.standard_normal(shape)).astype(dt)


def _elementwise(cls: Callable[[], Module], min_ndim: int = 0) -> Kind:
    wrong = ((),) if min_ndim else ()  # a 0-d array where the last axis is needed
    return Kind(lambda dt: _seq(cls()), _normal(5, 4, scale=2.0), f"{cls().__class__.__name__} '0'", wrong)


KINDS: dict[str, Kind] = {
    "identity": _elementwise(mbp.Identity),
    "relu": _elementwise(mbp.ReLU),
    "leaky_relu": _elementwise(lambda: mbp.LeakyReLU(0.1)),
    "elu": _elementwise(lambda: mbp.ELU(0.7)),
    "sigmoid": _elementwise(mbp.Sigmoid),
    "tanh": _elementwise(mbp.Tanh),
    "silu": _elementwise(mbp.SiLU),
    "softplus": _elementwise(lambda: mbp.Softplus(2.0, 1.0)),
    "gelu": _elementwise(lambda: mbp.GELU("tanh")),
    "softmax": _elementwise(mbp.Softmax, min_ndim=1),
    "log_softmax": _elementwise(mbp.LogSoftmax, min_ndim=1),
    "dropout": Kind(lambda dt: _seq(mbp.Dropout(0.3, rng=7)), _normal(5, 4), "Dropout '0'"),
    "flatten": Kind(lambda dt: _seq(mbp.Flatten()), _normal(5, 2, 3), "Flatten '0'", ((5,),), (0, 2, 3)),
    "linear": Kind(
        lambda dt: _seq(mbp.Linear(4, 3, rng=1, dtype=dt)), _normal(5, 4), "Linear '0'", ((5, 3), (4,), (5, 4, 2))
    ),
    "layer_norm": Kind(lambda dt: _seq(mbp.LayerNorm(4, dtype=dt)), _normal(5, 4), "LayerNorm '0'", ((5, 3), ())),
    "batch_norm": Kind(
        lambda dt: _seq(mbp.BatchNorm1d(4, dtype=dt)),
        _normal(5, 4),
        "BatchNorm1d '0'",
        ((5, 3), (5, 4, 2), (1, 4), (4,)),
    ),
    "embedding": Kind(
        lambda dt: _seq(mbp.Embedding(6, 3, rng=2, dtype=dt)),
        lambda r, dt: r.integers(0, 6, (5, 4)),
        "Embedding '0'",
        ((),),
        (0,),
        integer_input=True,
    ),
    "sequential": Kind(
        lambda dt: _seq(mbp.Sequential(mbp.Linear(4, 3, rng=3, dtype=dt), mbp.Tanh())),
        _normal(5, 4),
        "Linear '0.0'",
        ((5, 3),),
    ),
    "residual": Kind(
        lambda dt: _seq(mbp.Residual(mbp.Linear(4, 4, rng=4, dtype=dt), mbp.GELU())),
        _normal(5, 4),
        "Linear '0.0'",
        ((5, 3),),
    ),
    "conv2d": Kind(
        lambda dt: _seq(mbp.Conv2d(2, 3, 3, padding=1, rng=5, dtype=dt)),
        _normal(3, 2, 5, 5),
        "Conv2d '0'",
        ((3, 3, 5, 5), (3, 2, 5), (2, 5, 5, 2)),
        (0, 2, 5, 5),
        layout_reduction=75,
    ),
    "conv1d": Kind(
        lambda dt: _seq(mbp.Conv1d(2, 3, 3, padding=1, rng=14, dtype=dt)),
        _normal(3, 2, 7),
        "Conv1d '0'",
        ((3, 3, 7), (3, 2, 5, 5), (2, 7)),
        (0, 2, 7),
        layout_reduction=21,
    ),
    "conv_transpose2d": Kind(
        lambda dt: _seq(mbp.ConvTranspose2d(2, 3, 3, stride=2, padding=1, rng=15, dtype=dt)),
        _normal(3, 2, 4, 5),
        "ConvTranspose2d '0'",
        ((3, 3, 4, 5), (3, 2, 5), (2, 4, 5, 2)),
        (0, 2, 4, 5),
        layout_reduction=180,
    ),
    "max_pool1d": Kind(
        lambda dt: _seq(mbp.MaxPool1d(2)),
        _normal(3, 2, 6),
        "MaxPool1d '0'",
        ((3, 2), (3, 2, 1), (3, 2, 4, 4)),
        (0, 2, 6),
    ),
    "avg_pool1d": Kind(
        lambda dt: _seq(mbp.AvgPool1d(3, 2, 1)),
        _normal(3, 2, 6),
        "AvgPool1d '0'",
        ((3, 2), (3, 2, 4, 4)),
        (0, 2, 6),
        layout_reduction=3,
    ),
    "adaptive_avg_pool2d": Kind(
        lambda dt: _seq(mbp.AdaptiveAvgPool2d((2, 3))),
        _normal(3, 2, 5, 7),
        "AdaptiveAvgPool2d '0'",
        ((3, 2, 4), (3, 5)),
        (0, 2, 5, 7),
        layout_reduction=9,
    ),
    "rms_norm": Kind(
        lambda dt: _seq(mbp.RMSNorm(4, dtype=dt)), _normal(5, 4), "RMSNorm '0'", ((5, 3), ()), layout_reduction=4
    ),
    "batch_norm2d": Kind(
        lambda dt: _seq(mbp.BatchNorm2d(2, dtype=dt)),
        _normal(3, 2, 4, 5),
        "BatchNorm2d '0'",
        ((3, 3, 4, 5), (3, 2, 4), (1, 2, 1, 1)),
        (0, 2, 4, 5),
        layout_reduction=60,
    ),
    "group_norm": Kind(
        lambda dt: _seq(mbp.GroupNorm(2, 4, dtype=dt)),
        _normal(3, 4, 3, 5),
        "GroupNorm '0'",
        ((3, 3, 3, 5), (4,)),
        (0, 4, 3, 5),
        layout_reduction=45,
    ),
    "instance_norm2d": Kind(
        lambda dt: _seq(mbp.InstanceNorm2d(3, affine=True, dtype=dt)),
        _normal(2, 3, 4, 5),
        "InstanceNorm2d '0'",
        ((2, 2, 4, 5), (2, 3, 4), (2, 3, 1, 1)),
        (0, 3, 4, 5),
        layout_reduction=40,
    ),
    "max_pool2d": Kind(
        lambda dt: _seq(mbp.MaxPool2d(2)), _normal(3, 2, 4, 6), "MaxPool2d '0'", ((3, 2, 4), (3, 2, 1, 1)), (0, 2, 4, 6)
    ),
    "avg_pool2d": Kind(
        lambda dt: _seq(mbp.AvgPool2d(2)),
        _normal(3, 2, 4, 6),
        "AvgPool2d '0'",
        ((3, 2, 4), (3, 2, 1, 1)),
        (0, 2, 4, 6),
        layout_reduction=4,
    ),
    "multi_head_attention": Kind(
        lambda dt: _seq(mbp.MultiHeadSelfAttention(4, 2, rng=6, dtype=dt)),
        _normal(3, 5, 4),
        "MultiHeadSelfAttention '0'",
        ((3, 5, 3), (5, 4)),
        (0, 5, 4),
    ),
    "rnn": Kind(
        lambda dt: _seq(mbp.RNN(3, 4, nonlinearity="relu", rng=8, dtype=dt)),
        _normal(2, 5, 3),
        "RNN '0'",
        ((2, 5, 2), (5, 3), (2, 5, 3, 1)),
        (0, 5, 3),
        layout_reduction=10,
    ),
    "lstm": Kind(
        lambda dt: _seq(mbp.LSTM(3, 2, 2, bidirectional=True, rng=9, dtype=dt)),
        _normal(2, 5, 3),
        "LSTM '0'",
        ((2, 5, 2), (5, 3)),
        (2, 0, 3),
        layout_reduction=10,
    ),
    "gru": Kind(
        lambda dt: _seq(mbp.GRU(3, 4, batch_first=False, rng=10, dtype=dt)),
        _normal(5, 2, 3),
        "GRU '0'",
        ((5, 2, 4), (2, 3)),
        (5, 0, 3),
        layout_reduction=10,
    ),
    "rnn_cell": Kind(
        lambda dt: _seq(mbp.RNNCell(3, 4, rng=11, dtype=dt)),
        _normal(5, 3),
        "RNNCell '0'",
        ((5, 2), (3,), (5, 3, 1)),
        (0, 3),
        layout_reduction=5,
    ),
    "lstm_cell": Kind(
        lambda dt: _seq(mbp.LSTMCell(3, 4, rng=12, dtype=dt)),
        _normal(5, 3),
        "LSTMCell '0'",
        ((5, 2), (3,)),
        (0, 3),
        layout_reduction=5,
    ),
    "gru_cell": Kind(
        lambda dt: _seq(mbp.GRUCell(3, 4, rng=13, dtype=dt)),
        _normal(5, 3),
        "GRUCell '0'",
        ((5, 2), (3,)),
        (0, 3),
        layout_reduction=5,
    ),
}
REGISTERED = sorted(Module.registry)


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        pytest.fail(
            f"layer kind {name!r} is registered in manual_bp.module.Module.registry but has no entry in "
            f"tests/kinds/test_battery.py KINDS: add one (a model holding it, a valid input, wrong shapes) so the "
            f"bad-input battery covers it"
        )
    return KINDS[name]


def state_of(model: mbp.Sequential) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in {**model.params, **model.buffers}.items()}


def assert_same_state(model: mbp.Sequential, before: dict[str, np.ndarray]) -> None:
    now = {**model.params, **model.buffers}
    assert now.keys() == before.keys()
    for k, v in before.items():
        assert now[k].dtype == v.dtype and np.array_equal(now[k], v, equal_nan=True), k


def run(model: mbp.Sequential, x: np.ndarray, dout: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """Forward, then backward of a random upstream gradient (or ``dout``): every array that comes out."""
    out = model.forward(x)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    dx = model.backward(dout)
    return {
        "out": out,
        "dx": dx,
        **{f"grad {k}": v for k, v in model.grads.items()},
        **{f"buffer {k}": v.copy() for k, v in model.buffers.items()},
    }


# ---------------------------------------------------------------- every kind is in the battery


def test_every_registered_kind_is_in_the_battery() -> None:
    missing = sorted(set(REGISTERED) - set(KINDS))
    assert not missing, (
        f"kinds registered in Module.registry without an entry in tests/kinds/test_battery.py KINDS: {missing}; "
        f"add them so the bad-input battery covers them"
    )


@pytest.mark.parametrize("name", REGISTERED)
def test_every_parameter_and_buffer_is_counted_against_the_entry_budget(name: str) -> None:
    """``io.load`` relies on it: each kind's parameters and buffers are made by ``manual_bp.init``'s
    counting functions, each entry counted once, so a budget of exactly the state's size builds the
    kind and one entry less refuses it."""
    from manual_bp.init import entry_budget
    from manual_bp.model import architecture, build

    arch = architecture(kind_of(name).make(np.float64))
    n = sum(a.size for a in build(arch).state_dict().values())
    with entry_budget(n):
        build(arch)
    if n:
        with entry_budget(n - 1), pytest.raises(ValueError, match="more than the"):
            build(arch)


# ---------------------------------------------------------------- wrong shapes, empty batches, wrong dtypes


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_wrong_shapes_and_empty_batches_name_the_layer(name: str, dtype: type) -> None:
    k = kind_of(name)
    model = k.make(dtype)
    model.forward(k.x(np.random.default_rng(0), dtype))  # a valid forward first: a failure must not disturb it
    before = state_of(model)
    for shape in (*k.wrong, k.empty):
        x = np.zeros(shape, np.int64) if k.integer_input else np.zeros(shape, dtype)
        with pytest.raises(ValueError, match=re.escape(k.where)) as err:
            model.forward(x)
        assert str(shape) in str(err.value) or "-D" in str(err.value) or "empty" in str(err.value), (
            f"{name}: the message should state the shape it got: {err.value}"
        )
        assert_same_state(model, before)


BAD_DTYPES = {
    "object": lambda x: x.astype(object),
    "complex": lambda x: x.astype(np.complex128),
    "bool": lambda x: (x > 0) if x.dtype.kind == "f" else (x > 2),
    "float16": lambda x: x.astype(np.float16),
    "int64": lambda x: x.astype(np.int64),
    "float64 for integer indices": lambda x: x.astype(np.float64),
}


def _bad_dtype_cases() -> list[tuple[str, str]]:
    cases = []
    for name in REGISTERED:
        integer = name in KINDS and KINDS[name].integer_input
        valid = "int64" if integer else "float64 for integer indices"
        cases += [(name, bad) for bad in BAD_DTYPES if bad != valid]
    return cases


@pytest.mark.parametrize(("name", "bad"), _bad_dtype_cases())
def test_wrong_dtypes_are_type_errors_naming_the_layer(name: str, bad: str) -> None:
    k = kind_of(name)
    x = k.x(np.random.default_rng(1), np.float64)
    model = k.make(np.float64)
    before = state_of(model)
    with pytest.raises(TypeError, match=re.escape(k.where)):
        model.forward(BAD_DTYPES[bad](x))
    assert_same_state(model, before)


# ---------------------------------------------------------------- non-contiguous and read-only inputs


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    strided = np.repeat(x, 2, axis=-1)[..., ::2]  # same values, every other element of a bigger array
    ro = x.copy()
    ro.flags.writeable = False
    out = {"strided view": strided, "Fortran order": np.asfortranarray(x), "read-only": ro}
    if x.ndim >= 2:
        out["transposed view"] = np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1)
    for name, v in out.items():
        assert np.array_equal(v, x), name
    assert not out["strided view"].flags.c_contiguous
    return out


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_read_only_inputs_give_the_contiguous_result(name: str, dtype: type) -> None:
    """Views, Fortran order and read-only arrays are accepted as they are (no copy demanded of the
    caller) and give the result of the contiguous array, forward and backward; a non-contiguous
    upstream gradient too. Bit for bit, except where NumPy orders a sum of K terms by memory layout
    (``layout_reduction``): two orders of the same K terms differ by at most 2 (K - 1) eps sum|t|,
    and the terms here are O(1)."""
    k = kind_of(name)
    r = np.random.default_rng(2)
    x = k.x(r, dtype)
    ref = run(k.make(dtype), x, seed=3)
    for layout, xv in _layouts(x).items():
        x0 = xv.copy()
        got = run(k.make(dtype), xv, seed=3)
        np.testing.assert_array_equal(xv, x0)  # the input is untouched
        dout = ref["out"] * 0 + np.random.default_rng(3).standard_normal(ref["out"].shape).astype(dtype)
        dout_layouts = {
            "Fortran-order dout": np.asfortranarray(dout),
            "strided-view dout": np.repeat(dout, 2, axis=-1)[..., ::2],
        }
        got_douts = [(run(k.make(dtype), x, dout=d), what) for what, d in dout_layouts.items()]
        for key in ref:
            for res, what in ((got, layout), *got_douts):
                a, b = res[key], ref[key]
                assert (a is None) == (b is None), (key, what)
                if a is None:
                    continue
                assert a.shape == b.shape and a.dtype == b.dtype, (key, what)
                msg = f"{name}: {key} with {what}"
                if k.layout_reduction:
                    atol = 2 * k.layout_reduction * np.finfo(dtype).eps * max(float(np.abs(b).max()), 1.0)
                    np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=msg)
                else:
                    np.testing.assert_array_equal(a, b, err_msg=msg)


# ---------------------------------------------------------------- NaN and inf: propagate, never a new finite number


def _nan_or_clean(got: dict[str, Any], clean: dict[str, Any], keys: list[str], what: str) -> None:
    """Every entry is NaN or exactly the clean run's value; at least one NaN came out."""
    nan_seen = False
    for key in keys:
        a, b = got[key], clean[key]
        if a is None:
            continue
        nan = np.isnan(a)
        nan_seen |= bool(nan.any())
        assert np.array_equal(a[~nan], b[~nan]), f"{what}: {key} holds finite values that differ from the clean run"
    assert nan_seen, f"{what}: the NaN vanished"


def _float_params(model: mbp.Sequential) -> list[str]:
    return [k for k, v in model.params.items() if v.dtype.kind == "f"]


def _nan_cases() -> list[tuple[str, str]]:
    """(kind, where the NaN goes): into the input unless it holds integer indices, into the
    parameters where there are any, into the upstream gradient always."""
    cases = []
    for name in REGISTERED:
        k = KINDS.get(name)
        if k is None or not k.integer_input:
            cases.append((name, "input"))
        if k is None or _float_params(k.make(np.float64)):
            cases.append((name, "parameter"))
        cases.append((name, "dout"))
    return cases


@pytest.mark.parametrize(("name", "where"), _nan_cases())
def test_nan_propagates_and_never_becomes_a_different_finite_number(name: str, where: str) -> None:
    """NaN in the input or in a parameter: every forward output (and BatchNorm's running
    statistics) is NaN or what the clean run gives. NaN in the upstream gradient: every gradient
    (input and parameters) is NaN or what the clean run gives, and the NaN reaches dx."""
    k = kind_of(name)
    r = np.random.default_rng(4)
    x = k.x(r, np.float64)
    clean = run(k.make(np.float64), x, seed=5)
    model = k.make(np.float64)
    dout = None
    if where == "input":
        x = x.copy()
        x.flat[x.size // 2] = np.nan
    elif where == "parameter":
        for p in _float_params(model):  # one NaN in every parameter array
            model.params[p].flat[0] = np.nan
    else:
        dout = np.random.default_rng(5).standard_normal(clean["out"].shape)
        dout.flat[dout.size // 2] = np.nan
    with np.errstate(invalid="ignore"):  # NumPy flags NaN operands (e.g. logaddexp); the values are IEEE's
        got = run(model, x, dout=dout, seed=5)
    if where == "dout":
        grads = [key for key in got if key.startswith("grad") or key == "dx"]
        _nan_or_clean(got, clean, grads, f"{name}, NaN in dout")
        if got["dx"] is not None:
            assert np.isnan(got["dx"]).any(), f"{name}: a NaN upstream gradient did not reach dx"
    else:
        keys = ["out"] + [key for key in got if key.startswith("buffer")]
        _nan_or_clean(got, clean, keys, f"{name}, NaN in the {where}")


LOSSES = {
    "ce-labels": (lambda: mbp.SoftmaxCrossEntropy(), lambda r, z: r.integers(0, z.shape[1], z.shape[0])),
    "ce-probs-smoothed": (
        lambda: mbp.SoftmaxCrossEntropy("sum", 0.1),
        lambda r, z: r.dirichlet(np.ones(z.shape[1]), z.shape[0]),
    ),
    "mse": (lambda: mbp.MSE(), lambda r, z: r.standard_normal(z.shape)),
    "bce": (lambda: mbp.BCEWithLogits("sum"), lambda r, z: r.random(z.shape)),
    "ce-weighted-ignored": (
        lambda: mbp.SoftmaxCrossEntropy(label_smoothing=0.1, weight=np.array([0.5, 2.0, 1.5])),
        lambda r, z: np.where(np.arange(z.shape[0]) == 3, -100, r.integers(0, z.shape[1], z.shape[0])),
    ),
    # NLL reads x[n, y_n] only: the labels pick the column the NaN tests poison
    "nll-last-class": (lambda: mbp.NLLLoss(np.array([0.5, 2.0, 1.5])), lambda r, z: np.full(z.shape[0], 2)),
    "hinge": (lambda: mbp.MultiMarginLoss(), lambda r, z: r.integers(0, z.shape[1], z.shape[0])),
    "hinge-p2": (
        lambda: mbp.MultiMarginLoss(2, 0.5, np.array([0.5, 2.0, 1.5]), "sum"),
        lambda r, z: r.integers(0, z.shape[1], z.shape[0]),
    ),
    "l1": (lambda: mbp.L1Loss(), lambda r, z: r.standard_normal(z.shape)),
    "huber": (lambda: mbp.HuberLoss("sum", 0.5), lambda r, z: r.standard_normal(z.shape)),
    "smooth-l1": (lambda: mbp.SmoothL1Loss(beta=0.5), lambda r, z: r.standard_normal(z.shape)),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("seed", range(3))
def test_nan_in_predictions_gives_a_nan_loss_and_nan_gradient_rows(name: str, seed: int) -> None:
    make, target = LOSSES[name]
    r = np.random.default_rng(seed)
    z = r.standard_normal((4, 3))
    t = target(r, z)
    loss = make()
    clean_grad = (loss.forward(z, t), loss.backward(0.5))[1]
    z[1, 2] = np.nan
    assert np.isnan(loss.forward(z, t))
    g = loss.backward(0.5)
    if name.startswith("nll"):  # dL/dx = -w[y] / sum w[y] does not depend on x: the clean gradient exactly
        assert np.array_equal(g, clean_grad)
        return
    assert np.isnan(g[1, 2]), name
    finite = ~np.isnan(g)
    if name.startswith("ce"):  # a row's softmax couples its entries: the whole row is NaN
        assert np.isnan(g[1]).all()
    elif name.startswith("hinge"):  # the true class's gradient sums its row: NaN too; the rest as clean
        assert np.isnan(g[1, t[1]])
        assert np.array_equal(g[finite], clean_grad[finite])
    else:
        assert np.array_equal(g[finite], clean_grad[finite])


@pytest.mark.parametrize("name", ["ce-probs-smoothed", "mse"])
def test_nan_in_float_targets_gives_a_nan_loss(name: str) -> None:
    make, target = LOSSES[name]
    r = np.random.default_rng(0)
    z = r.standard_normal((4, 3))
    t = target(r, z)
    t[2, 0] = np.nan
    loss = make()
    assert np.isnan(loss.forward(z, t))
    assert np.isnan(loss.backward()).any()


def test_nan_bce_targets_are_refused() -> None:
    """BCE targets must lie in [0, 1]; NaN does not, so it is an error rather than a NaN loss."""
    t = np.full((2, 2), 0.5)
    t[0, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape("BCEWithLogits: targets must lie in [0, 1]")):
        mbp.BCEWithLogits().forward(np.zeros((2, 2)), t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_logits(dtype: type) -> None:
    """+inf logit: inf - inf in log-sum-exp, NaN loss (torch agrees). -inf for a class other than
    the label: probability 0, finite loss and gradient; -inf for the label: infinite loss."""
    ce = mbp.SoftmaxCrossEntropy(reduction="sum")
    z = np.array([[np.inf, 0.0, 1.0]], dtype=dtype)
    with np.errstate(invalid="ignore"):
        assert np.isnan(ce.forward(z, np.array([1])))
    z = np.array([[-np.inf, 0.0, 0.0]], dtype=dtype)
    assert ce.forward(z, np.array([1])) == pytest.approx(np.log(2.0), rel=1e-6)
    np.testing.assert_allclose(ce.backward(), [[0.0, -0.5, 0.5]], rtol=1e-6)
    assert ce.forward(z, np.array([0])) == np.inf


# ---------------------------------------------------------------- a failed forward leaves no earlier gradient behind


@pytest.mark.parametrize("name", REGISTERED)
def test_backward_after_a_failed_forward_is_a_state_error(name: str) -> None:
    k = kind_of(name)
    model = k.make(np.float64)
    out = model.forward(k.x(np.random.default_rng(0), np.float64))
    bad = np.zeros(k.empty, np.int64 if k.integer_input else np.float64)
    with pytest.raises(ValueError, match=re.escape(k.where)):
        model.forward(bad)
    with pytest.raises(mbp.StateError, match=re.escape(k.where) + r".*backward\(\) called before forward\(\)"):
        model.backward(np.ones_like(out))


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_backward_after_a_failed_forward_is_a_state_error(name: str) -> None:
    make, target = LOSSES[name]
    r = np.random.default_rng(0)
    z = r.standard_normal((4, 3))
    loss = make()
    loss.forward(z, target(r, z))
    with pytest.raises((TypeError, ValueError)):
        loss.forward(z, np.zeros((4, 3), np.float32))  # a target of the wrong dtype
    with pytest.raises(mbp.StateError, match=r"backward\(\) called before forward\(\)"):
        loss.backward()


# ---------------------------------------------------------------- loss targets: kinds, dtypes, layouts


@pytest.mark.parametrize("loss_cls", [mbp.MSE, mbp.BCEWithLogits, mbp.SoftmaxCrossEntropy])
@pytest.mark.parametrize("bad", ["object", "complex", "bool", "float16", "int64", "list"])
def test_float_targets_of_a_wrong_kind_are_type_errors(loss_cls: type, bad: str) -> None:
    z = np.full((3, 2), 0.25)
    t = np.full((3, 2), 0.5)
    target: Any = {
        "object": t.astype(object),
        "complex": t.astype(complex),
        "bool": t > 0,
        "float16": t.astype(np.float16),
        "int64": t.astype(np.int64),
        "list": t.tolist(),
    }[bad]
    name = loss_cls.__name__
    if loss_cls is mbp.SoftmaxCrossEntropy:
        if bad == "list":
            pattern = f"{name}: target must be a numpy.ndarray"
        elif bad in ("bool", "int64"):  # (N, C) integers: a shape slip of labels, a ValueError
            with pytest.raises(ValueError, match=re.escape(f"{name}: integer labels must be 1-D")):
                loss_cls().forward(z, target)
            return
        else:
            pattern = f"{name}: target must have dtype float32 or float64, got {target.dtype}"
    elif bad == "list":
        pattern = f"{name}: target must be a numpy.ndarray of float32 or float64, got list"
    else:
        pattern = f"{name}: target must have dtype float32 or float64, got {target.dtype}"
    with pytest.raises(TypeError, match=re.escape(pattern)):
        loss_cls().forward(z, target)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_accept_views_and_read_only_arrays(name: str, dtype: type) -> None:
    make, target = LOSSES[name]
    r = np.random.default_rng(1)
    z = (r.standard_normal((4, 3)) * 3).astype(dtype)
    t = target(r, z)
    t = t.astype(dtype) if t.dtype.kind == "f" else t
    ref = make()
    ref_value, ref_grad = ref.forward(z, t), ref.backward(0.7)
    # the loss sums n >= 0 terms, in an order NumPy picks by memory layout: two orders differ by
    # at most 2 (n - 1) eps times the sum itself; the gradient is elementwise, hence exact
    rtol = 2 * (z.size - 1) * float(np.finfo(dtype).eps)
    for zl, tl in zip(_layouts(z).items(), _layouts(t).items()):
        loss = make()
        assert loss.forward(zl[1], tl[1]) == pytest.approx(ref_value, rel=rtol, abs=0), (zl[0], tl[0])
        np.testing.assert_array_equal(loss.backward(0.7), ref_grad, err_msg=f"{zl[0]} / {tl[0]}")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_labels_out_of_range_in_every_integer_dtype(dtype: type) -> None:
    z = np.zeros((3, 4))
    info = np.iinfo(dtype)
    for bad in {4, int(info.max), int(info.min) if info.min < 0 else 5}:
        y = np.array([0, bad, 1], dtype=dtype)
        with pytest.raises(ValueError, match=re.escape("SoftmaxCrossEntropy: labels must lie in [0, 4)")):
            mbp.SoftmaxCrossEntropy().forward(z, y)
    emb = mbp.Embedding(4, 2, rng=0)
    with pytest.raises(ValueError, match=re.escape("Embedding: index") + ".*" + re.escape("out of range [0, 4)")):
        emb.forward(np.array([[0, int(info.max)]], dtype=dtype))


# ---------------------------------------------------------------- huge logits against torch float64

HUGE = 1e4


@pytest.mark.parity
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("loss_name", ["ce-labels", "ce-probs-smoothed", "bce"])
def test_huge_logits_match_torch_float64(loss_name: str, seed: int) -> None:
    """Logits of +-1e4 (and mixtures with O(1) ones): finite loss and gradient, equal to torch's
    float64 ``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits`` to 1e-12 relative: both
    compute the same stable expressions, so only rounding separates them."""
    from tests.helpers import require_frameworks

    require_frameworks(("torch",))
    import torch
    import torch.nn.functional as TF

    r = np.random.default_rng(seed)
    z = r.choice([-HUGE, HUGE, 0.0, 1.0, -3.0], size=(6, 4)) + r.standard_normal((6, 4)) * (seed % 2)
    make, target = LOSSES[loss_name]
    t = target(r, z)
    loss = make()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = float(loss.forward(z, t))
        grad = loss.backward(1.0)
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t)
    if loss_name == "ce-labels":
        ref = TF.cross_entropy(zt, tt)
    elif loss_name == "ce-probs-smoothed":
        ref = TF.cross_entropy(zt, tt, reduction="sum", label_smoothing=0.1)
    else:
        ref = TF.binary_cross_entropy_with_logits(zt, tt, reduction="sum")
    ref.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- optimisers given mismatched gradients


def _trained_optimisers() -> list[tuple[str, mbp.Sequential, mbp.Optimizer]]:
    out = []
    for make in (
        lambda m: mbp.SGD(m, lr=0.1, momentum=0.9, nesterov=True),
        lambda m: mbp.Adam(m, lr=0.01, amsgrad=True),
        lambda m: mbp.AdamW(m, lr=0.01),
        lambda m: mbp.RMSprop(m, lr=0.01, momentum=0.5, centered=True),
    ):
        model = mbp.Sequential(mbp.Linear(3, 4, rng=0), mbp.Tanh(), mbp.Linear(4, 2, rng=1))
        opt = make(model)
        x, y = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 1, 1, 0, 1])
        loss = mbp.SoftmaxCrossEntropy()
        for _ in range(2):  # non-trivial optimiser state
            loss.forward(model.forward(x), y)
            model.backward(loss.backward())
            opt.step()
        out.append((type(opt).__name__, model, opt))
    return out


def _opt_state(opt: mbp.Optimizer) -> dict[str, Any]:
    return {k: [None if a is None else a.copy() for a in s] for k, s in opt.state.items()}


@pytest.mark.parametrize(
    ("case", "exc"),
    [
        ("missing key", mbp.StateError),
        ("wrong shape", ValueError),
        ("transposed", ValueError),
        ("wrong dtype", TypeError),
        ("integer dtype", TypeError),
        ("not an array", TypeError),
    ],
)
def test_optimiser_refuses_mismatched_grads_and_changes_nothing(case: str, exc: type) -> None:
    for name, model, opt in _trained_optimisers():
        grads = {k: np.ones_like(v) for k, v in model.params.items()}
        if case == "missing key":
            del grads["2.b"]
        elif case == "wrong shape":
            grads["2.b"] = np.ones(3)
        elif case == "transposed":
            grads["0.W"] = np.ones((4, 3))
        elif case == "wrong dtype":
            grads["2.W"] = grads["2.W"].astype(np.float32)
        elif case == "integer dtype":
            grads["2.W"] = grads["2.W"].astype(np.int64)
        else:
            grads["2.W"] = grads["2.W"].tolist()
        params, state, t = state_of(model), _opt_state(opt), opt.step_count
        with pytest.raises(exc, match=re.escape(name) + ".*'(2.b|0.W|2.W)'"):
            opt.step(grads)
        assert_same_state(model, params)
        assert opt.step_count == t, name
        for k, s in _opt_state(opt).items():
            for a, b in zip(s, state[k]):
                assert (a is None and b is None) or np.array_equal(a, b), (name, k)


# ---------------------------------------------------------------- save files


def _model() -> mbp.Sequential:
    return mbp.Sequential(mbp.Linear(3, 4, rng=0), mbp.BatchNorm1d(4), mbp.ReLU(), mbp.Linear(4, 2, rng=1))


class MarkerFile:
    """Unpickling this creates the file at ``path``: proof that a loader ran code from the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (Path(self.path),))


def _npz_with(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _bad_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    marker = tmp_path / "PWNED"
    data = good.read_bytes()
    arrays = _arrays(good)
    files: dict[str, Path] = {}
    for frac in (0.0, 0.1, 0.5, 0.9):
        files[f"truncated to {frac:.0%}"] = tmp_path / f"trunc{frac}.npz"
        files[f"truncated to {frac:.0%}"].write_bytes(data[: int(len(data) * frac)])
    files["truncated by one byte"] = tmp_path / "trunc-1.npz"
    files["truncated by one byte"].write_bytes(data[:-1])
    flipped = bytearray(data)
    first = data.index(b"\x93NUMPY")  # inside the first stored array: its CRC no longer matches
    flipped[first + 200] ^= 0xFF
    files["flipped byte"] = tmp_path / "flipped.npz"
    files["flipped byte"].write_bytes(bytes(flipped))
    payload = np.array([MarkerFile(str(marker))], dtype=object)
    files["pickle in a parameter"] = _npz_with(tmp_path / "p1.npz", {**arrays, "0.W": payload})
    files["pickle as the architecture"] = _npz_with(tmp_path / "p2.npz", {**arrays, "__architecture__": payload})
    files["plain pickle file"] = tmp_path / "p3.npz"
    files["plain pickle file"].write_bytes(pickle.dumps({"0.W": MarkerFile(str(marker))}))
    with zipfile.ZipFile(tmp_path / "p4.npz", "w") as zf:  # a .npy member whose header announces objects
        for k, v in arrays.items():
            zf.writestr(f"{k}.npy", _npy_bytes(payload if k == "3.b" else v))
    files["pickled .npy member"] = tmp_path / "p4.npz"
    arch = json.loads(str(arrays["__architecture__"]))
    for label, model_entry in {
        "architecture not an object": "linear",
        "unknown layer kind": {"kind": "rm -rf", "config": {}},
        "unexpected config key": {
            "kind": "sequential",
            "config": {"layers": [{"kind": "linear", "config": {"in_features": 3, "out_features": 4, "evil": 1}}]},
        },
        "sequential without layers": {"kind": "sequential", "config": {}},
        "a layer instead of a model": {"kind": "relu", "config": {}},
    }.items():
        meta = np.array(json.dumps({**arch, "model": model_entry}))
        files[label] = _npz_with(tmp_path / f"arch-{len(files)}.npz", {**arrays, "__architecture__": meta})
    files["extra key"] = _npz_with(tmp_path / "extra.npz", {**arrays, "4.W": np.zeros((2, 2))})
    files["missing buffer"] = _npz_with(
        tmp_path / "nobuf.npz", {k: v for k, v in arrays.items() if k != "1.running_var"}
    )
    files["buffer of the wrong shape"] = _npz_with(tmp_path / "bufshape.npz", {**arrays, "1.running_mean": np.zeros(5)})
    files["scalar for an array"] = _npz_with(tmp_path / "scalar.npz", {**arrays, "0.b": np.array(0.0)})
    files["integer parameter"] = _npz_with(tmp_path / "int.npz", {**arrays, "0.b": np.zeros(4, np.int64)})
    return files


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


ARCHITECTURE_CASES = {
    "architecture not an object",
    "unknown layer kind",
    "unexpected config key",
    "sequential without layers",
    "a layer instead of a model",
}
BAD_FILES = [
    "truncated to 0%",
    "truncated to 10%",
    "truncated to 50%",
    "truncated to 90%",
    "truncated by one byte",
    "flipped byte",
    "pickle in a parameter",
    "pickle as the architecture",
    "plain pickle file",
    "pickled .npy member",
    "architecture not an object",
    "unknown layer kind",
    "unexpected config key",
    "sequential without layers",
    "a layer instead of a model",
    "extra key",
    "missing buffer",
    "buffer of the wrong shape",
    "scalar for an array",
    "integer parameter",
]


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_save_files_are_refused_and_change_nothing(tmp_path: Path, case: str) -> None:
    model = _model()
    model.forward(np.random.default_rng(0).standard_normal((6, 3)))  # running statistics move off 0 and 1
    good = mbp.save(tmp_path / "good.npz", model)
    path = _bad_files(tmp_path, good)[case]
    target = _model()
    before = state_of(target)
    loaders = [mbp.load] if case in ARCHITECTURE_CASES else [mbp.load, lambda p: mbp.load_into(p, target)]
    for load in loaders:  # load_into reads the arrays only: the architecture entry is load's business
        with pytest.raises((ValueError, TypeError), match="load"):
            load(path)
    assert not (tmp_path / "PWNED").exists(), "a pickled payload ran"
    assert_same_state(target, before)
    assert_same_state(mbp.load(good), state_of(model))  # the good file next to them still loads, bit for bit


def test_the_marker_payload_is_live(tmp_path: Path) -> None:
    """Control for the test above: loading with pickles allowed really creates the marker file."""
    marker = tmp_path / "PWNED"
    path = _npz_with(tmp_path / "p.npz", {"x": np.array([MarkerFile(str(marker))], dtype=object)})
    with np.load(path, allow_pickle=True) as f:
        f["x"]
    assert marker.exists()
