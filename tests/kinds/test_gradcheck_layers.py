"""Central-difference gradient checks (float64) for every layer, every loss and Sequential stacks.

Every case is rebuilt from its test id alone: the spec name and an integer seed
feed ``np.random.default_rng([crc32(name), seed])``, which draws the shapes
(batch 1 and width 1 included), the parameters, the input and a random,
non-constant upstream gradient. Kinks are avoided by construction: inputs of
ReLU-like layers keep |x| >= 1e-3, Softplus inputs keep |beta x - threshold|
>= 1e-3 (1e3 times the step h = 1e-6 of the central differences), hidden
pre-activations in stacks are redrawn until they do the same.

The bound is ``gradcheck``'s 1e-6 on its documented error measure (relative,
with entries below the finite differences' resolution compared absolutely).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.gradcheck import GradcheckResult, gradcheck
from tests.helpers import case_rng

TOL = 1e-6
MARGIN = 1e-3  # distance kept from every kink (h = 1e-6)
SEEDS = range(20)


def draw_shape(r: np.random.Generator, seed: int, features: int | None = None) -> tuple[int, ...]:
    """Shapes cycle through batch 1, width 1, a 3-D (N, T, D) input and two general 2-D ones."""
    kind = seed % 5
    N = 1 if kind == 0 else int(r.integers(2, 6))
    D = features if features is not None else (1 if kind == 1 else int(r.integers(2, 6)))
    if kind == 2:
        return (N, int(r.integers(1, 4)), D)
    return (N, D)


def smooth_input(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return r.standard_normal(shape) * float(r.choice([0.5, 1.0, 3.0]))


def away_from(r: np.random.Generator, shape: tuple[int, ...], kink: float) -> np.ndarray:
    """Values on both sides of ``kink``, each at least MARGIN away from it."""
    sign = r.choice([-1.0, 1.0], size=shape)
    return kink + sign * (MARGIN + np.abs(r.standard_normal(shape)) * float(r.choice([0.5, 1.0, 3.0])))


def softplus_input(r: np.random.Generator, shape: tuple[int, ...], beta: float, threshold: float) -> np.ndarray:
    """beta*x straddles the threshold (half the entries) or sits near 0, never within MARGIN of it."""
    bx = np.where(r.random(shape) < 0.5, away_from(r, shape, threshold), smooth_input(r, shape))
    bx = np.where(np.abs(bx - threshold) < MARGIN, threshold + 2 * MARGIN, bx)
    return bx / beta


@dataclass(frozen=True)
class LayerSpec:
    name: str
    make: Callable[[np.random.Generator, int], mbp.Module]  # (rng, in_features) -> layer
    draw: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]

    def __str__(self) -> str:
        return self.name


def _elementwise(name: str, factory: Callable[[], mbp.Module], kink: float | None = None) -> LayerSpec:
    draw = smooth_input if kink is None else (lambda r, shape: away_from(r, shape, kink))
    return LayerSpec(name, lambda r, D: factory(), draw)


def _softplus(beta: float, threshold: float) -> LayerSpec:
    return LayerSpec(
        f"Softplus(beta={beta},threshold={threshold})",
        lambda r, D: mbp.Softplus(beta, threshold),
        lambda r, shape: softplus_input(r, shape, beta, threshold),
    )


def _linear(bias: bool) -> LayerSpec:
    return LayerSpec(
        f"Linear(bias={bias})",
        lambda r, D: mbp.Linear(D, int(r.integers(1, 6)), bias=bias, rng=r),
        smooth_input,
    )


LAYER_SPECS = [
    _linear(True),
    _linear(False),
    _elementwise("Identity", mbp.Identity),
    _elementwise("ReLU", mbp.ReLU, kink=0.0),
    *(_elementwise(f"LeakyReLU({s})", lambda s=s: mbp.LeakyReLU(s), kink=0.0) for s in (0.01, 0.0, -0.5, 0.3, 2.0)),
    *(_elementwise(f"ELU({a})", lambda a=a: mbp.ELU(a), kink=0.0) for a in (1.0, 0.5, 2.5)),
    _elementwise("Sigmoid", mbp.Sigmoid),
    _elementwise("Tanh", mbp.Tanh),
    _elementwise("SiLU", mbp.SiLU),
    _softplus(1.0, 20.0),
    _softplus(2.0, 1.0),
    _softplus(0.5, -1.0),
    _softplus(5.0, 0.5),
    _elementwise("GELU(none)", lambda: mbp.GELU("none")),
    _elementwise("GELU(tanh)", lambda: mbp.GELU("tanh")),
    _elementwise("Softmax", mbp.Softmax),
    _elementwise("LogSoftmax", mbp.LogSoftmax),
]


def run_layer_case(spec: LayerSpec, seed: int) -> tuple[GradcheckResult, str]:
    r = case_rng(spec.name, seed)
    shape = draw_shape(r, seed)
    layer = spec.make(r, shape[-1])
    x = spec.draw(r, shape)
    out = layer.forward(x)
    dout = r.standard_normal(out.shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert set(result.errors) == {"input", *layer.params}
    return result, f"{spec.name} seed={seed} x.shape={shape} out.shape={out.shape}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", LAYER_SPECS, ids=str)
def test_layer(spec: LayerSpec, seed: int) -> None:
    result, where = run_layer_case(spec, seed)
    assert result.ok, f"{where}\n{result}"


# ---------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossSpec:
    name: str
    make: Callable[[], mbp.Loss]
    target: str  # "labels", "probs", "real", "binary"

    def __str__(self) -> str:
        return self.name


LOSS_SPECS = [
    *(
        LossSpec(f"CE(labels,{red},ls={ls})", lambda red=red, ls=ls: mbp.SoftmaxCrossEntropy(red, ls), "labels")
        for red, ls in (("mean", 0.0), ("sum", 0.0), ("mean", 0.1), ("sum", 0.25), ("mean", 1.0))
    ),
    *(
        LossSpec(f"CE(probs,{red},ls={ls})", lambda red=red, ls=ls: mbp.SoftmaxCrossEntropy(red, ls), "probs")
        for red, ls in (("mean", 0.0), ("sum", 0.0), ("mean", 0.1), ("sum", 0.6))
    ),
    LossSpec("MSE(mean)", lambda: mbp.MSE("mean"), "real"),
    LossSpec("MSE(sum)", lambda: mbp.MSE("sum"), "real"),
    LossSpec("BCEWithLogits(mean)", lambda: mbp.BCEWithLogits("mean"), "binary"),
    LossSpec("BCEWithLogits(sum)", lambda: mbp.BCEWithLogits("sum"), "binary"),
]


def draw_target(r: np.random.Generator, kind: str, z: np.ndarray) -> np.ndarray:
    """Targets for predictions ``z``: labels of a random integer dtype, probability rows, reals, [0, 1]."""
    if kind == "labels":
        dtype = (np.int64, np.int32, np.uint8)[int(r.integers(3))]
        return r.integers(0, z.shape[1], z.shape[0]).astype(dtype)
    if kind == "probs":
        t = r.random(z.shape) ** 2
        return t / t.sum(axis=1, keepdims=True)
    if kind == "real":
        return r.standard_normal(z.shape)
    t = r.random(z.shape)  # binary: soft targets plus exact 0 and 1
    t[r.random(z.shape) < 0.3] = 0.0
    t[r.random(z.shape) < 0.3] = 1.0
    return t


def draw_loss_input(r: np.random.Generator, spec: LossSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    shape = draw_shape(r, seed)
    if spec.target in ("labels", "probs"):
        shape = shape[:1] + shape[-1:]  # logits are (N, C)
    z = r.standard_normal(shape) * float(r.choice([1.0, 3.0, 10.0]))
    return z, draw_target(r, spec.target, z)


def run_loss_case(spec: LossSpec, seed: int) -> tuple[GradcheckResult, str]:
    r = case_rng(spec.name, seed)
    z, t = draw_loss_input(r, spec, seed)
    result = gradcheck(mbp.Identity(), spec.make(), z, t)
    return result, f"{spec.name} seed={seed} z.shape={z.shape}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", LOSS_SPECS, ids=str)
def test_loss(spec: LossSpec, seed: int) -> None:
    result, where = run_loss_case(spec, seed)
    assert result.ok, f"{where}\n{result}"


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("spec", LOSS_SPECS, ids=str)
def test_loss_upstream_scalar(spec: LossSpec, seed: int) -> None:
    """backward(dloss) = dloss * backward(1.0) (the latter is gradchecked above), for dloss != 1."""
    r = case_rng("dloss/" + spec.name, seed)
    z, t = draw_loss_input(r, spec, seed)
    dloss = float(r.choice([-1.0, 1.0])) * float(r.uniform(0.1, 5.0))
    loss = spec.make()
    loss.forward(z, t)
    g1, gc = loss.backward(1.0), loss.backward(dloss)
    assert not np.array_equal(gc, g1) or not np.any(g1)
    np.testing.assert_allclose(gc, dloss * g1, rtol=1e-14, atol=1e-300, err_msg=f"{spec.name} seed={seed}")


# ---------------------------------------------------------------- Sequential stacks

ACTIVATIONS: list[tuple[str, Callable[[], mbp.Module]]] = [
    ("relu", mbp.ReLU),
    ("leaky", lambda: mbp.LeakyReLU(-0.2)),
    ("elu", lambda: mbp.ELU(0.8)),
    ("sigmoid", mbp.Sigmoid),
    ("tanh", mbp.Tanh),
    ("silu", mbp.SiLU),
    ("softplus", lambda: mbp.Softplus(2.0, 1.0)),
    ("gelu", mbp.GELU),
    ("gelu_tanh", lambda: mbp.GELU("tanh")),
    ("softmax", mbp.Softmax),
    ("log_softmax", mbp.LogSoftmax),
    ("identity", mbp.Identity),
]


def kink_distance(layer: mbp.Module, z: np.ndarray) -> float:
    """How far the pre-activation ``z`` of ``layer`` is from the layer's kink (inf if it has none)."""
    if isinstance(layer, (mbp.ReLU, mbp.LeakyReLU, mbp.ELU)):
        return float(np.min(np.abs(z)))
    if isinstance(layer, mbp.Softplus):
        return float(np.min(np.abs(layer.beta * z - layer.threshold)))
    return np.inf


def build_stack(r: np.random.Generator, seed: int) -> tuple[mbp.Sequential, np.ndarray, str]:
    """Linear-act-...-Linear with 1 to 3 Linear layers, widths 1..5, input redrawn away from kinks."""
    depth = int(r.integers(1, 4))
    widths = [1 if seed % 5 == 1 and i == 1 else int(r.integers(1, 6)) for i in range(depth + 1)]
    layers: list[mbp.Module] = []
    names = []
    for i in range(depth):
        layers.append(mbp.Linear(widths[i], widths[i + 1], bias=bool(r.random() < 0.8), rng=r))
        names.append(f"Linear({widths[i]},{widths[i + 1]})")
        if i < depth - 1:
            name, factory = ACTIVATIONS[int(r.integers(len(ACTIVATIONS)))]
            layers.append(factory())
            names.append(name)
    model = mbp.Sequential(*layers)
    N = 1 if seed % 5 == 0 else int(r.integers(2, 6))
    for _ in range(1000):
        x = r.standard_normal((N, widths[0])) * float(r.choice([0.5, 1.0, 2.0]))
        h, ok = x, True
        for layer in model:
            ok = ok and kink_distance(layer, h) >= MARGIN
            h = layer.forward(h)
        if ok:
            return model, x, "-".join(names)
    raise AssertionError("no input away from the kinks")  # pragma: no cover


def run_stack_case(seed: int, objective: str) -> tuple[GradcheckResult, str]:
    r = case_rng("stack/" + objective, seed)
    model, x, arch = build_stack(r, seed)
    out = model.forward(x)
    if objective == "dout":
        loss, target, dout = None, None, r.standard_normal(out.shape)
    else:
        dout = None
        loss = {
            "ce_labels": lambda: mbp.SoftmaxCrossEntropy(str(r.choice(["mean", "sum"])), float(r.choice([0, 0.1]))),
            "ce_probs": lambda: mbp.SoftmaxCrossEntropy(str(r.choice(["mean", "sum"]))),
            "mse": lambda: mbp.MSE(str(r.choice(["mean", "sum"]))),
            "bce": lambda: mbp.BCEWithLogits(str(r.choice(["mean", "sum"]))),
        }[objective]()
        kind = {"ce_labels": "labels", "ce_probs": "probs", "mse": "real", "bce": "binary"}[objective]
        target = draw_target(r, kind, out)
    result = gradcheck(model, loss, x, target, dout=dout)
    assert set(result.errors) == {"input", *model.params}
    return result, f"stack seed={seed} objective={objective} arch={arch} x.shape={x.shape} loss={loss!r}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("objective", ["dout", "ce_labels", "ce_probs", "mse", "bce"])
def test_sequential_stack(objective: str, seed: int) -> None:
    result, where = run_stack_case(seed, objective)
    assert result.ok, f"{where}\n{result}"


def test_nested_sequential() -> None:
    r = case_rng("nested", 0)
    inner = mbp.Sequential(mbp.Linear(3, 4, rng=r), mbp.Tanh(), mbp.Linear(4, 4, rng=r))
    model = mbp.Sequential(mbp.Linear(2, 3, rng=r), inner, mbp.SiLU(), mbp.Linear(4, 3, rng=r))
    x = r.standard_normal((5, 2))
    y = r.integers(0, 3, 5)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert set(result.errors) == {"input", "0.W", "0.b", "1.0.W", "1.0.b", "1.2.W", "1.2.b", "3.W", "3.b"}
    assert result.ok, str(result)
