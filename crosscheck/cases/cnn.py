"""CNN cases: ``cnn_case(i)`` draws an image (N, C, H, W), one or two Conv2d layers of random geometry
(groups, dilation, padding, stride), each followed or not by a BatchNorm2d, GroupNorm or InstanceNorm2d,
an activation, a MaxPool2d or AvgPool2d and a ConvTranspose2d, then sometimes an AdaptiveAvgPool2d,
Flatten, a Linear and a loss. The norms, transposed convolutions and adaptive pools come from a stream
of their own, so a case whose first draw holds none of them draws the layers it drew before they
existed. Kinks planted by ``kink``; inputs near a kink or a max-pool near-tie redrawn
(``crosscheck.cases.hazards``). docs/cases.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import manual_bp as mbp
from crosscheck.cases.common import ACTIVATIONS, INITS, LOSSES, Case, activation, describe, loss_and_target
from crosscheck.cases.hazards import hazards, plant_kinks
from manual_bp.windows import Geometry

_SALT = 0x636E  # "cn": apart from the MLP cases' streams


@dataclass
class CnnCase(Case):
    """A ``Case`` whose description shows the image shape and each layer's geometry."""

    @property
    def description(self) -> str:
        N, *chw = self.x.shape
        parts = " ".join(describe(layer) for layer in self.model)
        return f"{self.dtype} N={N} {tuple(chw)} {parts} {self.loss_fn!r} {self._labels}{self._tags}"


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
            return mbp.Conv2d(C, C_out, k, s, p, d, groups, bool(rng.random() > 0.2), rng=rng, dtype=dtype, init=init)
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


def _norm(extra: np.random.Generator, N: int, shape: tuple[int, ...], dtype: str) -> mbp.Module | None:
    """A BatchNorm2d, GroupNorm or InstanceNorm2d over (N, *shape) with random eps, affine parameters, running
    statistics and mode; None where the drawn kind has a single value per statistic (torch raises too)."""
    C, H, W = shape
    kind = ("batch_norm2d", "group_norm", "instance_norm2d")[extra.integers(3)]
    eps, affine = float(extra.choice([1e-5, 1e-3, 0.1])), bool(extra.random() < 0.8)
    training = bool(extra.random() < 0.75)
    if kind == "group_norm":
        G = int(extra.choice([g for g in range(1, C + 1) if C % g == 0]))
        layer: mbp.Module = mbp.GroupNorm(G, C, eps, affine, dtype=dtype)
        if N * C // G * H * W < 2:
            return None
    else:
        cls = mbp.BatchNorm2d if kind == "batch_norm2d" else mbp.InstanceNorm2d
        track = kind == "batch_norm2d" or bool(extra.random() < 0.5)
        layer = cls(C, eps, float(extra.choice([0.1, 0.0, 0.5, 1.0])), affine, track, dtype=dtype)
        if track:
            layer.buffers["running_mean"][:] = extra.standard_normal(C)
            layer.buffers["running_var"][:] = extra.uniform(0.2, 3.0, C)
        values = N * H * W if kind == "batch_norm2d" else H * W
        if values < 2 and (training or not track):
            return None
    if affine:
        layer.params["gamma"][:] = extra.choice([-1.0, 1.0], C) * extra.uniform(0.5, 1.5, C)
        layer.params["beta"][:] = 0.5 * extra.standard_normal(C)
    return layer.train(training)


def _transposed(extra: np.random.Generator, C: int, H: int, W: int, dtype: str) -> mbp.ConvTranspose2d | None:
    """A random ConvTranspose2d on a (C, H, W) input (output at most 16 x 16), or None if 20 draws did not fit."""
    divisors = [g for g in range(1, C + 1) if C % g == 0]
    for _ in range(20):
        groups = int(extra.choice(divisors)) if extra.random() < 0.4 else 1
        k = (int(extra.integers(1, 4)), int(extra.integers(1, 4)))
        s = (int(extra.integers(1, 3)), int(extra.integers(1, 3)))
        d = (int(extra.integers(1, 3)), int(extra.integers(1, 3))) if extra.random() < 0.3 else (1, 1)
        p = (int(extra.integers(0, 2)), int(extra.integers(0, 2)))
        op = tuple(int(extra.integers(0, max(s[a], d[a]))) for a in range(2))
        layer = mbp.ConvTranspose2d(
            C,
            groups * int(extra.integers(1, 3)),
            k,
            s,
            p,
            op,
            groups,
            bool(extra.random() > 0.2),
            d,
            rng=extra,
            dtype=dtype,
        )
        Ho, Wo = layer.out_shape(H, W)
        if 1 <= Ho <= 16 and 1 <= Wo <= 16:
            return layer
    return None


def _layers(
    rng: np.random.Generator, extra: np.random.Generator, N: int, C: int, H: int, W: int, classes: int, dtype: str
) -> list[mbp.Module]:
    """The main stream ``rng`` draws what it drew before the image norms, the transposed convolutions and the
    adaptive pools existed; ``extra`` draws those."""
    layers: list[mbp.Module] = []
    shape = (C, H, W)
    for _ in range(int(rng.integers(1, 3))):
        conv = _conv(rng, *shape, dtype)
        if conv is None:
            break
        layers.append(conv)
        shape = (conv.out_channels, *conv.geometry.out_shape(*shape[1:]))
        if extra.random() < 0.3 and (norm := _norm(extra, N, shape, dtype)) is not None:
            layers.append(norm)
        if rng.random() < 0.85:
            layers.append(activation(rng, ACTIVATIONS))
        if rng.random() < 0.5 and (pool := _pool(rng, *shape[1:])) is not None:
            layers.append(pool)
            shape = (shape[0], *pool.geometry.out_shape(*shape[1:]))
        if extra.random() < 0.2 and (up := _transposed(extra, *shape, dtype)) is not None:
            layers.append(up)
            shape = (up.out_channels, *up.out_shape(*shape[1:]))
    if extra.random() < 0.25:
        size = (
            1
            if extra.random() < 0.6
            else tuple(None if extra.random() < 0.2 else int(extra.integers(1, 4)) for _ in range(2))
        )
        layers.append(mbp.AdaptiveAvgPool2d(size))
        shape = (shape[0], *layers[-1].out_shape(*shape[1:]))
    init = str(INITS[rng.integers(len(INITS))])
    return [
        *layers,
        mbp.Flatten(),
        mbp.Linear(int(np.prod(shape)), classes, bool(rng.random() > 0.2), rng=rng, dtype=dtype, init=init),
    ]


# ---------------------------------------------------------------- the case


def cnn_case(case_id: int, dtype: str | None = None) -> Case:
    """The CNN case with this id (even ids float64, odd float32 unless ``dtype``)."""
    rng = np.random.default_rng([_SALT, case_id])
    extra = np.random.default_rng([_SALT, 1, case_id])  # the kinds added later: the main stream stays as it was
    replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    N, C = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    H, W = int(rng.integers(1, 13)), int(rng.integers(1, 13))
    loss_kind = LOSSES[rng.integers(len(LOSSES))]
    classes = int(rng.integers(2, 7)) if loss_kind == "softmax_cross_entropy" else int(rng.integers(1, 7))
    labels = "int" if rng.random() < 0.6 else "prob"
    loss_fn, y = loss_and_target(rng, loss_kind, labels, dtype, N, classes)
    kink = rng.random() < 0.4
    scale = float(rng.choice([0.5, 1.0, 3.0]))
    for _ in range(30):
        layers = _layers(rng, extra, N, C, H, W, classes, dtype)
        tags = ["kink"] if kink and plant_kinks(rng, layers) else []
        buffers = [(v, v.copy()) for layer in layers for v in layer.buffers.values()]
        for _ in range(20):
            x = (scale * rng.standard_normal((N, C, H, W))).astype(dtype)
            if not hazards(layers, x, dtype):
                break
        else:
            continue
        break
    else:
        raise RuntimeError(f"crosscheck CNN case {case_id}: could not draw inputs away from kinks and ties")
    for v, old in buffers:  # the hazard walk ran the norms' forwards: back to the drawn running statistics
        np.copyto(v, old)
    model = mbp.Sequential(*layers)
    dout = rng.standard_normal((N, classes)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return CnnCase(str(case_id), dtype, model, loss_fn, x, y, dloss, dout, tuple(tags), replay=replay)
