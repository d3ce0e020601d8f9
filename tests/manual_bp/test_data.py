"""The seeded toy datasets and batching helpers (manual_bp/data.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from manual_bp import data

DATASETS = {
    "two_moons": (lambda n, rng: data.two_moons(n, rng=rng), 2),
    "circles": (lambda n, rng: data.circles(n, rng=rng), 2),
    "spirals": (lambda n, rng: data.spirals(n, classes=3, rng=rng), 3),
    "xor_blobs": (lambda n, rng: data.xor_blobs(n, rng=rng), 2),
    "blobs": (lambda n, rng: data.blobs(n, classes=4, rng=rng), 4),
}


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_deterministic_shapes_labels(name: str) -> None:
    make, classes = DATASETS[name]
    X, y = make(101, 3)
    X2, y2 = make(101, np.random.default_rng(3))
    X3, _ = make(101, 4)
    assert X.shape == (101, 2) and X.dtype == np.float64 and y.shape == (101,) and y.dtype == np.int64
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, X3)
    assert set(np.unique(y)) == set(range(classes))
    counts = np.bincount(y, minlength=classes)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 101
    assert np.all(np.isfinite(X))
    assert len(np.unique(y[:20])) > 1  # shuffled, not sorted by class


def test_dataset_geometry() -> None:
    X, y = data.circles(2000, noise=0.05, factor=0.5, rng=0)
    radius = np.linalg.norm(X, axis=1)
    assert radius[y == 0].mean() == pytest.approx(1.0, abs=0.02)
    assert radius[y == 1].mean() == pytest.approx(0.5, abs=0.02)
    X, y = data.xor_blobs(2000, std=0.35, rng=0)
    assert np.mean(y == (X[:, 0] * X[:, 1] < 0)) > 0.95
    X, y = data.blobs(3000, classes=3, std=0.5, rng=0)
    for c in range(3):
        centre = 2 * np.array([math.cos(2 * math.pi * c / 3), math.sin(2 * math.pi * c / 3)])
        np.testing.assert_allclose(X[y == c].mean(0), centre, atol=0.05)


def test_dataset_bad_n() -> None:
    with pytest.raises(ValueError, match="two_moons: n must be an int >= 2, got 1"):
        data.two_moons(1)
    with pytest.raises(ValueError, match="spirals: n must be an int >= 3, got True"):
        data.spirals(True)


@pytest.mark.parametrize("seed", range(5))
def test_train_test_split_disjoint_and_covering(seed: int) -> None:
    n = 37 + seed
    X = np.arange(n, dtype=np.float64)[:, None] * [1.0, -1.0]  # row i holds (i, -i)
    y = np.arange(n)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_fraction=0.3, rng=seed)
    assert len(yte) == round(0.3 * n) and len(ytr) + len(yte) == n
    assert set(ytr).isdisjoint(yte) and set(ytr) | set(yte) == set(range(n))
    assert np.array_equal(Xtr[:, 0], ytr) and np.array_equal(Xte[:, 0], yte)  # rows stay paired
    again = data.train_test_split(X, y, test_fraction=0.3, rng=seed)
    assert np.array_equal(again[3], yte)
    assert not np.array_equal(np.sort(yte), np.arange(len(yte)))  # shuffled, not the first rows


def test_train_test_split_errors() -> None:
    X, y = np.zeros((10, 2)), np.zeros(10, np.int64)
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        data.train_test_split(X, y[:9])
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\), got 1.0"):
        data.train_test_split(X, y, test_fraction=1.0)
    with pytest.raises(ValueError, match="2 samples are too few"):
        data.train_test_split(X[:2], y[:2], test_fraction=0.1)


@pytest.mark.parametrize("batch_size", [1, 4, 7, 10, 50])
@pytest.mark.parametrize("shuffle", [False, True])
def test_minibatches_cover_every_sample_once(batch_size: int, shuffle: bool) -> None:
    n = 23
    X = np.arange(n, dtype=np.float64)[:, None] * [1.0, 2.0]
    y = np.arange(n)
    rng = np.random.default_rng(0) if shuffle else None
    epochs = []
    for _ in range(2):
        batches = list(data.minibatches(X, y, batch_size, rng))
        assert [len(b[1]) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
        assert 1 <= len(batches[-1][1]) <= batch_size and len(batches) == math.ceil(n / batch_size)
        seen = np.concatenate([b[1] for b in batches])
        assert np.array_equal(np.sort(seen), y)  # every sample exactly once
        assert all(np.array_equal(bx[:, 0], by) for bx, by in batches)  # X and y stay paired
        epochs.append(seen)
    if not shuffle:
        assert np.array_equal(epochs[0], y) and np.array_equal(epochs[1], y)
    elif batch_size < n:
        assert not np.array_equal(epochs[0], epochs[1])  # a fresh order each epoch


def test_minibatches_errors() -> None:
    X, y = np.zeros((5, 2)), np.zeros(5, np.int64)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        list(data.minibatches(X, y, 0))
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        list(data.minibatches(X, y[:4], 2))
