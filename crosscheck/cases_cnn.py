"""Seeded random CNN cases: ``cnn_case(i)`` rebuilds the same small CNN, data and upstream gradients from ``i``.

A case draws an input (N, C, H, W) with N in 1..8, C in 1..4, H, W in 1..12;
one or two Conv2d layers with random kernel (1..3 per axis, non-square too),
stride (1..3), padding (0..2), dilation (1..2), groups (a divisor of the
channels), bias or not and weight initialiser, each followed (or not) by a
random activation of ``crosscheck.cases.ACTIVATIONS`` and (or not) by a
MaxPool2d (with dilation sometimes) or an AvgPool2d (``count_include_pad``
either way); then Flatten, a Linear to the classes and a random loss
(``crosscheck.cases._loss_and_target``). Even ids float64, odd ids float32.

Hard inputs: with ``kink`` (40 %), one output channel of every conv followed by
ReLU / LeakyReLU / ELU gets zero weights and bias, so its pre-activation is
exactly 0 in every backend; a max-pool over such a channel then sees exact
ties (all zeros), where every backend sends the gradient to the first element
of the window (see ``manual_bp.pool``).

Inputs are redrawn (and, if that does not help, the weights) while

- a kinked activation (or a Softplus threshold) sees an input near its kink:
  |z| < tol * m, m the magnitude of the terms summed into z (|x| (*) |W| + |b|
  for a convolution; 0 after a ReLU that output an exact 0). An input exactly
  at the kink passes only with m = 0, i.e. when it is exact in every backend
  (the planted zeros); one that a rounded sum of nonzero terms puts there does
  not;
- a max-pool window has a near-tie: its two largest entries a >= b differ by at
  most tol * m (m the largest term magnitude in the window), unless both are
  exactly 0 (the exact zeros above, or ReLU outputs);

tol = 1e-9 in float64, 1e-4 in float32 (``crosscheck.kinks.NEAR_KINK``): two
correct backends may round such entries to opposite sides and then
legitimately disagree by a whole derivative jump or a whole moved gradient.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

import manual_bp as mbp
from crosscheck.cases import ACTIVATIONS, INITS, LOSSES, Case, _activation, _loss_and_target
from crosscheck.kinks import KINKED, NEAR_KINK
from manual_bp.conv import conv2d_forward
from manual_bp.pool import max_pool2d_forward
from manual_bp.windows import Geometry, windows

_SALT = 0x636E  # "cn": apart from crosscheck.cases' streams
LIPSCHITZ = 2.0  # >= max |f'| of every activation drawn here


@dataclass
class CnnCase(Case):
    """A ``Case`` whose description shows the image shape and each layer's geometry."""

    @property
    def description(self) -> str:
        N, *chw = self.x.shape
        parts = [_short(layer) for layer in self.model]
        label = "labels" if self.y.dtype.kind in "iu" else "targets"
        tags = f" [{','.join(self.tags)}]" if self.tags else ""
        return f"{self.dtype} N={N} {tuple(chw)} {' '.join(parts)} {self.loss_fn!r} {label}{tags}"


def _short(layer: mbp.Module) -> str:
    """``Conv2d(2->4 k(3,3) s(1,2) p(1,1) d(2,1) g2)``, ``MaxPool2d(k(2,2) s(1,1) p(1,1) d(2,2))``, ``ReLU()``."""
    if layer.kind == "linear":
        return f"Linear({layer.in_features}->{layer.out_features})"
    if layer.kind in ("conv2d", "max_pool2d", "avg_pool2d"):
        g = layer.geometry
        geo = f"k{g.k} s{g.s} p{g.p}" + (f" d{g.d}" if g.d != (1, 1) else "")
        geo = geo.replace(", ", ",")
        if layer.kind == "conv2d":
            bias = "" if layer.bias else " no-bias"
            return f"Conv2d({layer.in_channels}->{layer.out_channels} {geo} g{layer.groups}{bias})"
        if layer.kind == "avg_pool2d" and not layer.count_include_pad:
            geo += " exclude-pad"
        return f"{type(layer).__name__}({geo})"
    return repr(layer)


# ---------------------------------------------------------------- architecture


def _conv(rng: np.random.Generator, C: int, H: int, W: int, dtype: str) -> mbp.Conv2d | None:
    """A random Conv2d that fits a (C, H, W) input, or None if 20 draws did not fit."""
    divisors = [g for g in range(1, C + 1) if C % g == 0]
    for _ in range(20):
        groups = int(rng.choice(divisors)) if rng.random() < 0.4 else 1
        C_out = groups * int(rng.integers(1, 4))
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.5 else (1, 1)
        p = (int(rng.integers(0, 3)), int(rng.integers(0, 3))) if rng.random() < 0.6 else (0, 0)
        d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
        Ho, Wo = Geometry(k, s, p, d).out_shape(H, W)
        if Ho >= 1 and Wo >= 1:
            init = str(INITS[rng.integers(len(INITS))])
            return mbp.Conv2d(C, C_out, k, s, p, d, groups, bool(rng.random() > 0.2), rng=rng, dtype=dtype,
                              init=init)
    return None


def _pool(rng: np.random.Generator, H: int, W: int) -> mbp.Module | None:
    """A random MaxPool2d or AvgPool2d that fits an (H, W) input (no window entirely in the padding)."""
    for _ in range(20):
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        s = None if rng.random() < 0.5 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        try:
            if rng.random() < 0.6:
                d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
                layer: mbp.Module = mbp.MaxPool2d(k, s, p, d)
            else:
                layer = mbp.AvgPool2d(k, s, p, count_include_pad=bool(rng.random() < 0.6))
            layer.forward(np.zeros((1, 1, H, W)))  # the layer's own checks: the kernel fits, no empty window
        except ValueError:
            continue
        return layer
    return None


def _layers(rng: np.random.Generator, C: int, H: int, W: int, classes: int, dtype: str) -> list[mbp.Module]:
    layers: list[mbp.Module] = []
    shape = (C, H, W)
    for _ in range(int(rng.integers(1, 3))):
        conv = _conv(rng, *shape, dtype)
        if conv is None:
            break
        layers.append(conv)
        shape = (conv.out_channels, *conv.geometry.out_shape(*shape[1:]))
        if rng.random() < 0.85:
            layers.append(_activation(rng, ACTIVATIONS))
        if rng.random() < 0.5 and (pool := _pool(rng, *shape[1:])) is not None:
            layers.append(pool)
            shape = (shape[0], *pool.geometry.out_shape(*shape[1:]))
    init = str(INITS[rng.integers(len(INITS))])
    return [*layers, mbp.Flatten(), mbp.Linear(int(np.prod(shape)), classes, bool(rng.random() > 0.2), rng=rng,
                                               dtype=dtype, init=init)]


def _plant_kinks(rng: np.random.Generator, layers: list[mbp.Module]) -> bool:
    """Zero one output channel (weights and bias) of every conv followed by a kinked activation."""
    planted = False
    for conv, act in itertools.pairwise(layers):
        if conv.kind == "conv2d" and act.kind in KINKED:
            o = int(rng.integers(conv.out_channels))
            conv.params["W"][o] = 0
            if "b" in conv.params:
                conv.params["b"][o] = 0
            planted = True
    return planted


# ---------------------------------------------------------------- hazards: near kinks and near ties


def _near_tie(h: np.ndarray, m: np.ndarray, g: Geometry, tol: float) -> bool:
    """Some window's two largest entries a >= b satisfy a - b <= tol * (largest m in the window), other
    than an exact tie at 0."""
    win = windows(h, g, -np.inf).reshape(*h.shape[:2], *g.out_shape(*h.shape[2:]), -1)  # (N, C, Ho, Wo, kH kW)
    if win.shape[-1] < 2:
        return False
    top = np.sort(win, axis=-1)[..., -2:]  # (..., 2): b, a
    b, a = top[..., 0], top[..., 1]
    m_win = windows(m, g, 0.0).reshape(win.shape).max(axis=-1)
    near = (a - b <= tol * m_win) & ~((a == 0) & (b == 0))
    return bool(np.any(near))


def hazards(layers: list[mbp.Module], x: np.ndarray, dtype: str) -> bool:
    """True if a kinked activation sees an input near its kink or a max-pool window has a near-tie
    (see the module docstring). Runs the layers' forwards. ``m`` bounds the size of the terms behind each
    value (its rounding scale): a conv or Linear sums |W| max(|h|, m) + |b|, an activation scales m by
    its Lipschitz bound 2, a pool keeps the largest m of the window."""
    tol = NEAR_KINK[dtype]
    h, m = x, np.abs(x.astype(np.float64))
    for layer in layers:
        if layer.kind == "conv2d":
            g, b = layer.geometry, layer.params.get("b")
            absW = np.abs(layer.params["W"].astype(np.float64))
            absb = None if b is None else np.abs(b.astype(np.float64))
            m = conv2d_forward(np.maximum(np.abs(h), m), absW, absb, g.s, g.p, g.d, layer.groups)[0]
        elif layer.kind in KINKED or layer.kind == "softplus":
            z = h * layer.beta - layer.threshold if layer.kind == "softplus" else h
            width = tol * (m * layer.beta if layer.kind == "softplus" else m)
            if np.any(np.abs(z) < width):  # z = 0 passes only with m = 0: exact zeros, as the planted ones
                return True
            m = np.where(h > 0, LIPSCHITZ * m, 0.0) if layer.kind == "relu" else LIPSCHITZ * m  # ReLU's 0 is exact
        elif layer.kind == "max_pool2d":
            if _near_tie(h, m, layer.geometry, tol):
                return True
            m = max_pool2d_forward(m, *layer.geometry)[0]
        elif layer.kind == "avg_pool2d":
            m = max_pool2d_forward(m, *layer.geometry[:3])[0]  # an average is at most the window's largest
        elif layer.kind == "flatten":
            m = m.reshape(m.shape[0], -1)
        elif layer.kind == "linear":
            m = np.maximum(np.abs(h), m) @ np.abs(layer.params["W"]) + np.abs(layer.params.get("b", 0.0))
        else:
            m = LIPSCHITZ * m
        h = layer.forward(h)
    return False


# ---------------------------------------------------------------- the case


def cnn_case(case_id: int, dtype: str | None = None) -> Case:
    """The CNN case with this id (even ids float64, odd float32 unless ``dtype``)."""
    rng = np.random.default_rng([_SALT, case_id])
    replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    N, C = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    H, W = int(rng.integers(1, 13)), int(rng.integers(1, 13))
    loss_kind = LOSSES[rng.integers(len(LOSSES))]
    classes = int(rng.integers(2, 7)) if loss_kind == "softmax_cross_entropy" else int(rng.integers(1, 7))
    labels = "int" if rng.random() < 0.6 else "prob"
    loss_fn, y = _loss_and_target(rng, loss_kind, labels, dtype, N, classes)
    kink = rng.random() < 0.4
    scale = float(rng.choice([0.5, 1.0, 3.0]))
    for _ in range(30):
        layers = _layers(rng, C, H, W, classes, dtype)
        tags = ["kink"] if kink and _plant_kinks(rng, layers) else []
        for _ in range(20):
            x = (scale * rng.standard_normal((N, C, H, W))).astype(dtype)
            if not hazards(layers, x, dtype):
                break
        else:
            continue
        break
    else:
        raise RuntimeError(f"crosscheck CNN case {case_id}: could not draw inputs away from kinks and ties")
    model = mbp.Sequential(*layers)
    dout = rng.standard_normal((N, classes)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return CnnCase(str(case_id), dtype, model, loss_fn, x, y, dloss, dout, tuple(tags), replay=replay)
