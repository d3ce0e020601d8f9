"""1-D convolution cases: ``conv1d_case(i)`` draws a sequence batch (N, C, L), one or two Conv1d layers of random
geometry (groups, dilation, padding, stride), each followed or not by an activation and a MaxPool1d or
AvgPool1d, then Flatten, a Linear and a loss. Kinks planted by ``kink``; inputs near a kink or a max-pool
near-tie redrawn (``crosscheck.cases.hazards``). docs/cases.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import manual_bp as mbp
from crosscheck.cases.common import ACTIVATIONS, INITS, LOSSES, Case, activation, describe, loss_and_target
from crosscheck.cases.hazards import hazards, plant_kinks

_SALT = 0x6331  # "c1": apart from the other families' streams


@dataclass
class Conv1dCase(Case):
    """A ``Case`` whose description shows the sequence shape and each layer's geometry."""

    @property
    def description(self) -> str:
        N, *cl = self.x.shape
        parts = " ".join(describe(layer) for layer in self.model)
        return f"{self.dtype} N={N} {tuple(cl)} {parts} {self.loss_fn!r} {self._labels}{self._tags}"


def _length(L: int, k: int, s: int, p: int, d: int) -> int:
    return (L + 2 * p - d * (k - 1) - 1) // s + 1


def _conv(rng: np.random.Generator, C: int, L: int, dtype: str) -> mbp.Conv1d | None:
    """A random Conv1d that fits a (C, L) input, or None if 20 draws did not fit."""
    divisors = [g for g in range(1, C + 1) if C % g == 0]
    for _ in range(20):
        groups = int(rng.choice(divisors)) if rng.random() < 0.4 else 1
        C_out = groups * int(rng.integers(1, 4))
        k = int(rng.integers(1, 5))
        s = int(rng.integers(1, 4)) if rng.random() < 0.5 else 1
        p = int(rng.integers(0, 3)) if rng.random() < 0.6 else 0
        d = int(rng.integers(1, 3)) if rng.random() < 0.3 else 1
        if _length(L, k, s, p, d) >= 1:
            init = str(INITS[rng.integers(len(INITS))])
            return mbp.Conv1d(C, C_out, k, s, p, d, groups, bool(rng.random() > 0.2), rng=rng, dtype=dtype, init=init)
    return None


def _pool(rng: np.random.Generator, L: int) -> mbp.Module | None:
    """A random MaxPool1d or AvgPool1d that fits a length-L input (no window entirely in the padding)."""
    for _ in range(20):
        k = int(rng.integers(1, 4))
        s = None if rng.random() < 0.5 else int(rng.integers(1, 4))
        p = int(rng.integers(0, k // 2 + 1))
        try:
            if rng.random() < 0.6:
                layer: mbp.Module = mbp.MaxPool1d(k, s, p, int(rng.integers(1, 3)) if rng.random() < 0.3 else 1)
            else:
                layer = mbp.AvgPool1d(k, s, p, count_include_pad=bool(rng.random() < 0.6))
            layer.forward(np.zeros((1, 1, L)))  # the layer's own checks: the kernel fits, no empty window
        except ValueError:
            continue
        return layer
    return None


def _layers(rng: np.random.Generator, C: int, L: int, classes: int, dtype: str) -> list[mbp.Module]:
    layers: list[mbp.Module] = []
    for _ in range(int(rng.integers(1, 3))):
        conv = _conv(rng, C, L, dtype)
        if conv is None:
            break
        layers.append(conv)
        C, L = conv.out_channels, _length(L, *(v[1] for v in conv.geometry))
        if rng.random() < 0.85:
            layers.append(activation(rng, ACTIVATIONS))
        if rng.random() < 0.5 and (pool := _pool(rng, L)) is not None:
            layers.append(pool)
            L = pool.forward(np.zeros((1, 1, L))).shape[2]
    init = str(INITS[rng.integers(len(INITS))])
    return [
        *layers,
        mbp.Flatten(),
        mbp.Linear(C * L, classes, bool(rng.random() > 0.2), rng=rng, dtype=dtype, init=init),
    ]


def conv1d_case(case_id: int, dtype: str | None = None) -> Case:
    """The 1-D convolution case with this id (even ids float64, odd float32 unless ``dtype``)."""
    rng = np.random.default_rng([_SALT, case_id])
    replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    N, C, L = int(rng.integers(1, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 17))
    loss_kind = LOSSES[rng.integers(len(LOSSES))]
    classes = int(rng.integers(2, 7)) if loss_kind == "softmax_cross_entropy" else int(rng.integers(1, 7))
    labels = "int" if rng.random() < 0.6 else "prob"
    loss_fn, y = loss_and_target(rng, loss_kind, labels, dtype, N, classes)
    kink = rng.random() < 0.4
    scale = float(rng.choice([0.5, 1.0, 3.0]))
    for _ in range(30):
        layers = _layers(rng, C, L, classes, dtype)
        tags = ["kink"] if kink and plant_kinks(rng, layers) else []
        for _ in range(20):
            x = (scale * rng.standard_normal((N, C, L))).astype(dtype)
            if not hazards(layers, x, dtype):
                break
        else:
            continue
        break
    else:
        raise RuntimeError(f"crosscheck Conv1d case {case_id}: could not draw inputs away from kinks and ties")
    model = mbp.Sequential(*layers)
    dout = rng.standard_normal((N, classes)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return Conv1dCase(str(case_id), dtype, model, loss_fn, x, y, dloss, dout, tuple(tags), replay=replay)
