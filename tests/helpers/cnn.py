"""Random Conv2d, MaxPool2d and AvgPool2d layers with their inputs, and max-pool tie cases: shared by
tests/manual_bp/test_conv.py, tests/manual_bp/test_pool.py and tests/crosscheck/test_conv.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import manual_bp as mbp


def _fit(r: np.random.Generator, k: int, p: int, d: int) -> int:
    """An input size the dilated kernel fits after padding: span - 2p <= size, at least 1."""
    return max(1, d * (k - 1) + 1 - 2 * p) + int(r.integers(0, 4))


def _conv_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Cycles through batch 1, 1x1 kernels, grouped (depthwise too), non-square strided/dilated, general."""
    kind = seed % 6
    groups = int(r.choice([2, 3])) if kind == 2 else 1
    Cin = groups * (1 if kind == 2 and seed % 12 == 2 else int(r.integers(1, 4)))  # seed 2, 14: depthwise
    Cout = groups * int(r.integers(1, 4))
    k = (1, 1) if kind == 1 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    s = (1, 2) if kind == 3 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    p = (int(r.integers(0, 3)), int(r.integers(0, 3)))
    d = (2, 1) if kind == 3 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
    N = 1 if kind == 0 else int(r.integers(2, 4))
    H, W = _fit(r, k[0], p[0], d[0]), _fit(r, k[1], p[1], d[1])
    layer = mbp.Conv2d(Cin, Cout, k, s, p, d, groups, bias=seed % 4 != 3, rng=r)
    return layer, r.standard_normal((N, Cin, H, W)) * float(r.choice([0.5, 1.0, 3.0]))


def _distinct(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Entries at least 0.03 apart (a shuffled grid plus jitter): no max-pool window is near a tie, so a
    finite-difference step of 1e-6 never changes which element is the maximum."""
    n = int(np.prod(shape))
    grid = r.permutation(n) * 0.05 + r.uniform(0, 0.02, n)
    return (grid - grid.mean()).reshape(shape)


def _pool_geometry(r: np.random.Generator, dilation: bool) -> tuple[Pair, Pair | None, Pair, Pair]:
    k = (int(r.integers(1, 4)), int(r.integers(1, 4)))
    s = None if r.random() < 0.3 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    p = (int(r.integers(0, k[0] // 2 + 1)), int(r.integers(0, k[1] // 2 + 1)))
    d = (int(r.integers(1, 3)), int(r.integers(1, 3))) if dilation else (1, 1)
    return k, s, p, d


Pair = tuple[int, int]


def _max_pool_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    while True:  # draws until no window lies entirely in the padding (a dilated max-pool's own check)
        k, s, p, d = _pool_geometry(r, dilation=seed % 2 == 1)
        N, C = (1 if seed % 6 == 0 else int(r.integers(2, 4))), int(r.integers(1, 4))
        H, W = _fit(r, k[0], p[0], d[0]), _fit(r, k[1], p[1], d[1])
        layer = mbp.MaxPool2d(k, s, p, d)
        try:
            layer._check_input(np.zeros((N, C, H, W)))
        except ValueError:
            continue
        return layer, _distinct(r, (N, C, H, W))


def _avg_pool_layer(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    k, s, p, _ = _pool_geometry(r, dilation=False)
    N, C = (1 if seed % 6 == 0 else int(r.integers(2, 4))), int(r.integers(1, 4))
    H, W = _fit(r, k[0], p[0], 1), _fit(r, k[1], p[1], 1)
    layer = mbp.AvgPool2d(k, s, p, count_include_pad=seed % 2 == 0)
    return layer, r.standard_normal((N, C, H, W))


MAKERS: dict[str, Callable[[np.random.Generator, int], tuple[mbp.Module, np.ndarray]]] = {
    "Conv2d": _conv_layer,
    "MaxPool2d": _max_pool_layer,
    "AvgPool2d": _avg_pool_layer,
}


TIES = {  # input, (kernel, stride, padding, dilation), dx for dout = 1: the first maximum of each window
    "all ones 2x2": (np.ones((2, 2)), (2, 2, 0, 1), [[1, 0], [0, 0]]),
    "zeros, overlapping": (np.zeros((3, 3)), (2, 1, 0, 1), [[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
    "zeros, padded 3x3": (np.zeros((3, 3)), (3, 1, 1, 1), [[4, 2, 0], [2, 1, 0], [0, 0, 0]]),
    "row vs column tie": (
        np.array([[0.0, 2, 0], [2, 0, 0], [0, 0, 0]]),
        (2, 2, 1, 1),
        [[1, 1, 0], [1, 1, 0], [0, 0, 0]],
    ),
    "one tied pair, overlapping": (
        np.array([[0.0, 1, 1], [1, 0, 1], [0, 0, 0]]),
        (2, 1, 0, 1),
        [[0, 2, 0], [1, 0, 1], [0, 0, 0]],
    ),
    "zeros, dilated": (np.zeros((4, 4)), (2, 1, 0, 2), [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
}
