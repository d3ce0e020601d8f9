"""Seeded toy datasets (no downloads), splits and minibatches.

Every generator takes an explicit ``np.random.Generator`` (or an int seed) and
returns ``X`` of shape (N, 2) float64 and integer labels ``y`` of shape (N,).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from manual_bp.init import as_generator


def _check_n(n: int, where: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{where}: n must be an int >= {minimum}, got {n!r}")
    return int(n)


def two_moons(
    n: int = 200, noise: float = 0.1, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, classes 0 and 1 (n // 2 and n - n // 2 points)."""
    n = _check_n(n, "two_moons", 2)
    gen = as_generator(rng, "two_moons")
    n0 = n // 2
    t0 = gen.uniform(0, math.pi, n0)
    t1 = gen.uniform(0, math.pi, n - n0)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower]) + gen.normal(0, noise, (n, 2))
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n - n0, np.int64)])
    return _shuffled(X, y, gen)


def circles(
    n: int = 200, noise: float = 0.05, factor: float = 0.5, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: outer radius 1 (class 0), inner radius ``factor`` (class 1)."""
    n = _check_n(n, "circles", 2)
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor must lie in (0, 1), got {factor!r}")
    gen = as_generator(rng, "circles")
    n0 = n // 2
    t = gen.uniform(0, 2 * math.pi, n)
    r = np.where(np.arange(n) < n0, 1.0, factor)
    X = np.stack([r * np.cos(t), r * np.sin(t)], axis=1) + gen.normal(0, noise, (n, 2))
    y = (np.arange(n) >= n0).astype(np.int64)
    return _shuffled(X, y, gen)


def spirals(
    n: int = 300, classes: int = 3, noise: float = 0.2, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms (the CS231n spiral), about n / classes points each."""
    n = _check_n(n, "spirals", classes)
    gen = as_generator(rng, "spirals")
    y = np.arange(n) % classes
    r = gen.uniform(0.0, 1.0, n)
    t = y * (2 * math.pi / classes) + 4.0 * r + gen.normal(0, noise, n)
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return _shuffled(X, y.astype(np.int64), gen)


def xor_blobs(
    n: int = 200, std: float = 0.35, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian blobs at (+-1, +-1); the label is the XOR of the coordinates' signs."""
    n = _check_n(n, "xor_blobs", 4)
    gen = as_generator(rng, "xor_blobs")
    corner = np.arange(n) % 4
    sx, sy = np.where(corner % 2 == 0, 1.0, -1.0), np.where(corner < 2, 1.0, -1.0)
    X = np.stack([sx, sy], axis=1) + gen.normal(0, std, (n, 2))
    y = (sx * sy < 0).astype(np.int64)
    return _shuffled(X, y, gen)


def blobs(
    n: int = 300, classes: int = 3, std: float = 0.5, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` isotropic Gaussian blobs with centres evenly spaced on a circle of radius 2."""
    n = _check_n(n, "blobs", classes)
    gen = as_generator(rng, "blobs")
    y = np.arange(n) % classes
    angle = 2 * math.pi * y / classes
    X = 2 * np.stack([np.cos(angle), np.sin(angle)], axis=1) + gen.normal(0, std, (n, 2))
    return _shuffled(X, y.astype(np.int64), gen)


def _shuffled(X: np.ndarray, y: np.ndarray, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = gen.permutation(len(y))
    return X[order], y[order]


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25, rng: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle once and split: (X_train, X_test, y_train, y_test)."""
    if len(X) != len(y):
        raise ValueError(f"train_test_split: X has {len(X)} rows but y has {len(y)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must lie in (0, 1), got {test_fraction!r}")
    n_test = round(len(X) * test_fraction)
    if not 0 < n_test < len(X):
        raise ValueError(f"train_test_split: {len(X)} samples are too few for test_fraction={test_fraction}")
    order = as_generator(rng, "train_test_split").permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def minibatches(
    X: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (X_batch, y_batch) covering every sample once; shuffled when ``rng`` is given.

    Without ``rng`` the batches are views of X and y in order (no copies).
    """
    if len(X) != len(y):
        raise ValueError(f"minibatches: X has {len(X)} rows but y has {len(y)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"minibatches: batch_size must be a positive int, got {batch_size!r}")
    if rng is None:  # in order: slices are views, nothing is copied
        for start in range(0, len(X), batch_size):
            yield X[start : start + batch_size], y[start : start + batch_size]
        return
    order = rng.permutation(len(X))
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]
