"""Conv2d, MaxPool2d and AvgPool2d against crosscheck: finite differences on the random CNN cases, parity with
PyTorch and JAX (random CNNs, exact ties), hazards and scales, planted bugs caught at the right tensor.

Every random case is rebuilt from its test id (layer name and seed, or the CNN case id).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.cases.cnn import cnn_case
from crosscheck.cases.common import ACTIVATIONS
from crosscheck.cases.hazards import hazards
from crosscheck.kinds.conv import conv_gains as _conv_gains
from crosscheck.kinds.conv import pool_counts as _pool_counts
from crosscheck.reference.read import read_spec
from crosscheck.run.api import run_case
from crosscheck.run.compare import compare_case
from crosscheck.tolerance import reduction_length
from manual_bp import conv, pool, windows
from manual_bp.gradcheck import gradcheck
from manual_bp.windows import Geometry
from tests.helpers.cnn import TIES, _fit, _pool_geometry

N_PARITY = 60  # CNN case ids in the parity sweep (even float64, odd float32)


# ---------------------------------------------------------------- finite differences on the random CNN cases


def _fd_friendly(case_id: int) -> bool:
    """A float64 CNN case small enough for finite differences, without planted kinks, whose activations and
    max-pool windows keep 1e-4 relative distance from every kink and tie (100x the step h = 1e-6)."""
    c = cnn_case(case_id, "float64")
    size = c.x.size + sum(p.size for p in c.model.params.values())
    return size <= 1500 and "kink" not in c.tags and not hazards(list(c.model), c.x, "float32")


FD_CASES = [i for i in range(60) if _fd_friendly(i)][:16]


@pytest.mark.parametrize("case_id", FD_CASES)
def test_gradcheck_random_cnn(case_id: int) -> None:
    """Whole CNNs with their loss: conv -> activation -> pool -> ... -> Flatten -> Linear."""
    c = cnn_case(case_id, "float64")
    result = gradcheck(c.model, c.loss_fn, c.x, c.y)
    assert result.ok, f"cnn case {case_id}: {c.description}\n{result}"


def test_fd_cases_cover_every_layer() -> None:
    assert len(FD_CASES) >= 10
    kinds = {layer.kind for i in FD_CASES for layer in cnn_case(i, "float64").model}
    assert {"conv2d", "max_pool2d", "avg_pool2d", "flatten", "linear"} <= kinds


# ---------------------------------------------------------------- parity with torch and JAX


def _compare(c, frameworks):
    return run_case(c, frameworks)


@pytest.mark.parity
@pytest.mark.parametrize("case_id", range(N_PARITY))
def test_random_cnn_parity(case_id: int, frameworks) -> None:
    result = _compare(cnn_case(case_id), frameworks)
    assert result.ok, result.summary()
    assert len(result.comparisons) == 6
    assert "conv2d" in result.spec.kinds


def test_random_cnn_cases_are_well_formed() -> None:
    seen: set[str] = set()
    for i in range(N_PARITY):
        c = cnn_case(i)
        N, C, H, W = c.x.shape
        assert 1 <= N <= 8 and 1 <= C <= 4 and 1 <= H <= 12 and 1 <= W <= 12, c.description
        assert c.dtype == ("float64" if i % 2 == 0 else "float32") and c.x.dtype == c.dtype
        assert c.dout.shape == c.model.forward(c.x).shape and c.replay == f"python -m crosscheck --case {i}"
        assert not hazards(list(c.model), c.x, c.dtype), c.description
        assert cnn_case(i).description == c.description  # reproducible from the id
        seen |= {layer.kind for layer in c.model} | set(c.tags)
        seen |= {"groups>1" for layer in c.model if getattr(layer, "groups", 1) > 1}
        seen |= {
            f"dilated {layer.kind}"
            for layer in c.model
            if getattr(layer, "geometry", None) and layer.geometry.d != (1, 1)
        }
    assert {"conv2d", "max_pool2d", "avg_pool2d", "kink", "groups>1", "dilated conv2d", "dilated max_pool2d"} <= seen, (
        seen
    )
    assert cnn_case(3, "float64").replay == "python -m crosscheck --case 3 --dtype float64"


def test_hazards_flag_near_ties_and_near_kinks_only() -> None:
    pool = mbp.MaxPool2d(2)
    window = np.array([[1.0, 0.5], [-2.0, 0.0]])
    for second, dtype, near in (
        (1.0 - 1e-12, "float64", True),
        (1.0 - 1e-6, "float64", False),
        (1.0 - 1e-6, "float32", True),
        (1.0 - 1e-3, "float32", False),
        (1.0, "float64", True),
    ):
        x = window.copy()
        x[1, 1] = second  # the runner-up of the window
        assert hazards([pool], x.reshape(1, 1, 2, 2).astype(dtype), dtype) is near, (second, dtype)
    assert not hazards([pool], np.zeros((1, 1, 2, 2)), "float64")  # exact zeros: the same tie in every backend
    diff = mbp.Conv2d(2, 1, 1, bias=False, rng=0)
    diff.params["W"][:] = np.array([1.0, -1.0]).reshape(1, 2, 1, 1)  # z = x0 - x1: cancellation
    for gap, near in ((1e-13, True), (1e-6, False)):
        x = np.array([3.0, 3.0 - gap]).reshape(1, 2, 1, 1)
        assert hazards([diff, mbp.ReLU()], x, "float64") is near, gap
    # exactly 0, but by cancelling nonzero terms: another summation order may round it off the kink
    assert hazards([diff, mbp.ReLU()], np.full((1, 2, 1, 1), 3.0), "float64")
    diff.params["W"][:] = 0.0  # a planted zero: every term is 0, so is z in every backend
    assert not hazards([diff, mbp.ReLU()], np.full((1, 2, 1, 1), 3.0), "float64")
    diff.params["W"][:] = np.array([1.0, -1.0]).reshape(1, 2, 1, 1)
    clear = np.array([1.0, 3.0]).reshape(1, 2, 1, 1)  # z = -2, well clear of the kink: ReLU gives an exact 0
    assert not hazards([diff, mbp.ReLU(), mbp.Conv2d(1, 1, 1, bias=False, rng=0), mbp.ReLU()], clear, "float64")


def test_hazards_flag_a_softplus_threshold_hit_by_rounding() -> None:
    """A float32 sum that rounds to exactly threshold / beta (found on a random CNN case: 1.5 with beta 2,
    threshold 3) may round to the other side in another backend, and the branches differ by 1.6%."""
    conv = mbp.Conv2d(1, 1, 1, rng=0, dtype=np.float32)
    conv.params["W"][:], conv.params["b"][:] = 0.5, 1.0
    x = np.full((1, 1, 1, 1), 1.0, np.float32)  # z = 0.5 x + 1 = 1.5 exactly
    assert hazards([conv, mbp.Softplus(beta=2.0, threshold=3.0)], x, "float32")
    assert not hazards([conv, mbp.Softplus(beta=2.0, threshold=3.5)], x, "float32")


@pytest.mark.parity
@pytest.mark.parametrize("name", list(TIES))
def test_ties_match_torch_and_jax(name: str, frameworks) -> None:
    """Exact ties: torch's CPU max_pool2d and JAX's reduce_window max give the first maximum the gradient,
    as manual_bp does (and, with dilation, JAX's reference through its gathered blocks)."""
    x, (k, s, p, d), _ = TIES[name]
    x = np.stack([x, x + 1]).reshape(1, 2, *x.shape)  # two channels
    identity = mbp.Conv2d(2, 2, 1, bias=False, rng=0)  # 1 x + 0 x' is exact: the pool sees the ties unchanged
    identity.params["W"][:] = np.eye(2).reshape(2, 2, 1, 1)
    model = mbp.Sequential(identity, mbp.MaxPool2d(k, s, p, d), mbp.Flatten())
    r = np.random.default_rng(0)
    t, dout = r.standard_normal((2, *model.forward(x).shape))
    result = compare_case(model, mbp.MSE(), x, t, dloss=1.0, dout=dout, frameworks=frameworks)
    assert result.ok, result.summary()  # a gradient sent to another tied element would be off by O(1)


def test_scales_window_counts_and_gains_are_exact() -> None:
    """The scale propagation's pool overlap m, smallest divisor and conv gains against brute force."""
    r = np.random.default_rng(5)
    for _ in range(40):
        k, s, p, _ = _pool_geometry(r, dilation=False)
        H, W = _fit(r, k[0], p[0], 1), _fit(r, k[1], p[1], 1)
        layer = mbp.AvgPool2d(k, s, p, count_include_pad=bool(r.random() < 0.5))
        spec = read_spec(mbp.Sequential(layer)).layers[0]
        out, cache = pool.avg_pool2d_forward(np.ones((1, 1, H, W)), k, s, p, layer.count_include_pad)
        g = Geometry(layer.geometry.k, layer.geometry.s, layer.geometry.p, (1, 1))
        hits = windows.windows(np.ones((1, 1, H, W)), g).sum(axis=(-2, -1))  # real elements per window
        windows_per_pixel = pool.avg_pool2d_backward(np.full(out.shape, float(k[0] * k[1])), (k[0] * k[1], *cache[1:]))
        m, divisor = _pool_counts(spec, (1, 1, H, W))
        assert m == windows_per_pixel.max()
        assert divisor == (k[0] * k[1] if layer.count_include_pad else hits.min())
    W = r.standard_normal((6, 2, 3, 2))
    fwd, bwd = _conv_gains(W, 3)
    assert fwd == pytest.approx(np.abs(W).sum(axis=(1, 2, 3)).max())
    assert bwd == pytest.approx(max(np.abs(W[2 * g : 2 * g + 2, c]).sum() for g in range(3) for c in range(2)))


# ---------------------------------------------------------------- planted bugs


def _flipped_forward(x, W, b, *args):
    return GOOD["conv2d_forward"](x, W[:, :, ::-1, ::-1], b, *args)  # true convolution


def _flipped_dx(dout, cache, need_dx=True):
    cols, W, *rest = cache
    dx, _, _ = GOOD["conv2d_backward"](dout, (cols, W[:, :, ::-1, ::-1], *rest), need_dx)
    _, dW, db = GOOD["conv2d_backward"](dout, cache, need_dx)
    return dx, dW, db


def _stride_one_dx(dout, cache, need_dx=True):
    _, dW, db = GOOD["conv2d_backward"](dout, cache, need_dx=False)
    cols, W, _, x_shape, g = cache
    N, groups, K, _ = cols.shape
    dout_t = dout.transpose(1, 2, 3, 0).reshape(groups, W.shape[0] // groups, -1)
    dcols = W.reshape(groups, -1, K).transpose(0, 2, 1) @ dout_t  # as conv2d_backward, then scattered
    dwin = dcols.reshape(x_shape[1], *g.k, *dout.shape[2:], N)  # as if the forward had used stride 1
    return windows.scatter_windows(dwin, g._replace(s=(1, 1)), *x_shape[2:]) if need_dx else None, dW, db


def _max_to_whole_window(dout, cache):
    _, x_shape, g = cache
    C, Ho, Wo, N = dout.transpose(1, 2, 3, 0).shape
    dwin = np.broadcast_to(dout.transpose(1, 2, 3, 0)[:, None, None], (C, *g.k, Ho, Wo, N))
    return windows.scatter_windows(dwin, g, *x_shape[2:])  # every element of the window, not only the maximum


def _avg_not_divided(dout, cache):
    return GOOD["avg_pool2d_backward"](dout, (1, *cache[1:]))  # divisor 1 instead of the count


GOOD = {
    name: getattr(conv, name)
    for name in (
        "conv2d_forward",
        "conv2d_backward",
        "max_pool2d_forward",
        "max_pool2d_backward",
        "avg_pool2d_backward",
    )
}


PLANTS = {  # (module whose layer calls it, function, planted replacement)
    "conv forward flips the kernel": (conv, "conv2d_forward", _flipped_forward),
    "conv dx uses the flipped kernel": (conv, "conv2d_backward", _flipped_dx),
    "conv dx scattered with stride 1": (conv, "conv2d_backward", _stride_one_dx),
    "max-pool gradient to the whole window": (pool, "max_pool2d_backward", _max_to_whole_window),
    "avg-pool gradient not divided by the count": (pool, "avg_pool2d_backward", _avg_not_divided),
}


def _plant_net(seed: int) -> tuple[mbp.Sequential, np.ndarray, np.ndarray, np.ndarray]:
    """x (2, 2, 9, 8) -> Conv2d(2, 4, 3, stride 2, padding 1) -> Tanh -> MaxPool2d(2, 1) -> Conv2d(4, 3, (2, 3))
    -> AvgPool2d(2, padding 1) -> Flatten -> Linear -> CE: every planted formula is used."""
    r = np.random.default_rng(seed)
    layers = [
        mbp.Conv2d(2, 4, 3, stride=2, padding=1, rng=r),
        mbp.Tanh(),
        mbp.MaxPool2d(2, 1),
        mbp.Conv2d(4, 3, (2, 3), rng=r),
        mbp.AvgPool2d(2, padding=1),
        mbp.Flatten(),
    ]
    x = r.standard_normal((2, 2, 9, 8))
    while hazards(layers, x, "float32"):  # keep every max-pool window 1e-4 away from a tie
        x = r.standard_normal((2, 2, 9, 8))
    features = mbp.Sequential(*layers).forward(x).shape[1]
    model = mbp.Sequential(*layers, mbp.Linear(features, 3, rng=r))
    return model, x, r.integers(0, 3, 2), r.standard_normal((2, 3))


def test_plant_net_passes_finite_differences() -> None:
    model, x, y, _ = _plant_net(0)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.ok, result


@pytest.mark.parametrize("name", list(PLANTS))
def test_plant_is_caught_by_finite_differences(name: str, monkeypatch) -> None:
    model, x, y, _ = _plant_net(0)  # passes unpatched: test_plant_net_passes_finite_differences
    monkeypatch.setattr(*PLANTS[name])
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.max_error > 1e-3, f"{name} went unnoticed:\n{result}"


EXPECTED_FIRST = {  # (mode, first diverging tensor) in forward-then-backward order
    "conv forward flips the kernel": ("loss", "0.out"),
    "conv dx uses the flipped kernel": ("loss", "3.dx"),
    "conv dx scattered with stride 1": ("loss", "0.dx"),
    "max-pool gradient to the whole window": ("loss", "2.dx"),
    "avg-pool gradient not divided by the count": ("loss", "4.dx"),
}


@pytest.mark.parity
def test_plant_net_agrees_with_the_references(frameworks) -> None:
    model, x, y, dout = _plant_net(1)
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert result.ok, result.summary()


@pytest.mark.parity
@pytest.mark.parametrize("name", list(PLANTS))
def test_plant_is_caught_by_the_references_at_the_right_tensor(name: str, monkeypatch, frameworks) -> None:
    model, x, y, dout = _plant_net(1)  # agrees unpatched: test_plant_net_agrees_with_the_references
    loss_fn = mbp.SoftmaxCrossEntropy()
    monkeypatch.setattr(*PLANTS[name])
    result = compare_case(model, loss_fn, x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert not result.ok, f"{name} went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp" and bad.error > 100 * bad.bound, (bad.name, bad.error)
    assert (comp.mode, bad.name) == EXPECTED_FIRST[name]


def _tied_forward(x, *geometry):
    out, cache = GOOD["max_pool2d_forward"](x, *geometry)
    return out, (cache, x, geometry)


def _to_every_tied_maximum(dout, cache):
    """Every element equal to its window's maximum gets the window's whole gradient (not only the first)."""
    (_, x_shape, g), x, _ = cache
    win = windows.windows(x, g, -np.inf)  # (N, C, Ho, Wo, kH, kW)
    is_max = win == win.max(axis=(-2, -1), keepdims=True)
    dwin = np.where(is_max, dout[..., None, None], 0.0).transpose(1, 4, 5, 2, 3, 0)  # (C, kH, kW, Ho, Wo, N)
    return windows.scatter_windows(dwin, g, *x_shape[2:])


@pytest.mark.parity
def test_plant_ties_duplicated_is_caught_on_exact_ties(monkeypatch, frameworks) -> None:
    """Finite differences cannot judge a tie (no derivative there); the references can: a kink-planted
    CNN case holds all-zero channels, whose max-pool windows are exact ties."""
    c = next(
        c
        for c in map(cnn_case, range(200))
        if "kink" in c.tags and any(a.kind == "relu" and b.kind == "max_pool2d" for a, b in itertools.pairwise(c.model))
    )
    assert _compare(c, frameworks).ok
    monkeypatch.setattr(pool, "max_pool2d_forward", _tied_forward)
    monkeypatch.setattr(pool, "max_pool2d_backward", _to_every_tied_maximum)
    result = _compare(c, frameworks)
    assert not result.ok, f"case {c.case_id}: duplicated tie gradients went unnoticed"
    _, bad = result.first_divergence
    pools = {layer.name for layer in c.model if layer.kind == "max_pool2d"}
    assert bad.name.endswith(".dx") and bad.name[:-3] in pools, bad.name


# (x shape, Conv2d arguments) on which XLA 0.10's CPU compiler aborted the process while compiling the input
# gradient, when the JAX reference put the padding inside lax.conv_general_dilated (crosscheck.kinds.conv)
JAX_ABORT_GEOMETRIES = [
    ((5, 4, 1, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (3, 2), "stride": (3, 2), "padding": (1, 1)}),
    ((5, 4, 2, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (3, 2), "stride": (3, 2), "padding": (1, 1)}),
    ((5, 4, 1, 10), {"in_channels": 4, "out_channels": 3, "kernel_size": (2, 2), "stride": (2, 2), "padding": (1, 1)}),
]


_ABORT_CHILD = """
import json, sys
import numpy as np
import manual_bp as mbp
from crosscheck.run.compare import compare_case
from crosscheck.tolerance import reduction_length
for shape, kw in json.loads(sys.argv[1]):
    r = np.random.default_rng(0)
    x = r.standard_normal(shape)
    conv = mbp.Conv2d(**kw, rng=r)
    features = mbp.Sequential(conv, mbp.Flatten()).forward(x).shape[1]
    model = mbp.Sequential(conv, mbp.Tanh(), mbp.Flatten(), mbp.Linear(features, 2, rng=r))
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, r.integers(0, 2, shape[0]), dloss=1.3,
                          dout=r.standard_normal((shape[0], 2)), frameworks=tuple(sys.argv[2].split(",")))
    print("ok" if result.ok else result.summary(), flush=True)
"""


@pytest.mark.parity
def test_jax_reference_survives_padded_strided_geometries(frameworks) -> None:
    """Compiled in a child process: an abort inside XLA would otherwise take the test process down with it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    cases = json.dumps(
        [
            [list(shape), {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}]
            for shape, kw in JAX_ABORT_GEOMETRIES
        ]
    )
    child = subprocess.run(
        [sys.executable, "-c", _ABORT_CHILD, cases, ",".join(frameworks)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert child.returncode == 0, f"exit {child.returncode}:\n{child.stderr[-3000:]}"
    assert child.stdout.split("\n")[:-1] == ["ok"] * len(JAX_ABORT_GEOMETRIES), child.stdout


def test_float32_bound_counts_the_convolutions_reductions() -> None:
    """K of the float32 bound is the longest sum: for a convolution also C_in / groups * kH * kW (the forward)
    and N * H_out * W_out (dW, db), read here off the layers' actual outputs. Cases whose only summing layers
    are Conv2d and Linear must give exactly that K; the others (image norms, transposed convolutions) at least."""
    grown = 0
    for case_id in range(60):
        c = cnn_case(case_id)
        rows = int(np.prod(c.x.shape[:-1]))
        sums = [rows, c.x.shape[-1]]
        h = c.x
        for layer in c.model:
            out = layer.forward(h)
            if layer.kind == "conv2d":
                kh, kw = layer.geometry.k
                sums += [layer.in_channels // layer.groups * kh * kw, out.shape[0] * out.shape[2] * out.shape[3]]
            elif layer.kind == "linear":
                sums += [layer.in_features, layer.out_features]
            h = out
        K = reduction_length(read_spec(c.model, c.loss_fn), c.x)
        plain = {layer.kind for layer in c.model} <= {
            "conv2d",
            "linear",
            "flatten",
            "max_pool2d",
            "avg_pool2d",
            *ACTIVATIONS,
        }
        assert K == max(sums) if plain else K >= max(sums), (c.case_id, K, sums)
        dense = [n for layer in c.model if layer.kind == "linear" for n in (layer.in_features, layer.out_features)]
        grown += plain and K > max(rows, c.x.shape[-1], *dense)
    assert grown >= 10, grown  # the convolutions' sums are the longest in many cases
