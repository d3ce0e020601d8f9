"""Saving and loading (.npz, atomic, no pickles), initialisers and the seeded toy datasets."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import data, init

DTYPES = [np.float32, np.float64]


def model_of(dtype: type = np.float64, seed: int = 0) -> mbp.Sequential:
    gen = np.random.default_rng(seed)
    return mbp.Sequential(
        mbp.Linear(3, 5, rng=gen, dtype=dtype),
        mbp.LeakyReLU(0.2),
        mbp.Sequential(mbp.Linear(5, 4, bias=False, rng=gen, dtype=dtype), mbp.GELU("tanh")),
        mbp.Linear(4, 2, rng=gen, dtype=dtype),
    )


def same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def rewrite(src: Path, dst: Path, drop: tuple[str, ...] = (), **replace: object) -> Path:
    """Copy a saved file's arrays, dropping or replacing entries (names with dots via **{...})."""
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    arrays.update(replace)
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)
    return dst


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_bit_exact(tmp_path: Path, dtype: type) -> None:
    model = model_of(dtype)
    path = mbp.save(tmp_path / "m.npz", model)
    loaded = mbp.load(path)
    assert same_state(model.state_dict(), loaded.state_dict())
    assert set(loaded.params) == {"0.W", "0.b", "2.0.W", "3.W", "3.b"}
    assert mbp.architecture(loaded) == mbp.architecture(model)
    assert loaded[2][1].approximate == "tanh" and loaded[1].negative_slope == 0.2
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(dtype)
    out = loaded.forward(x)
    assert out.dtype == dtype and np.array_equal(out, model.forward(x))


def test_load_into_replaces_every_parameter(tmp_path: Path) -> None:
    path = mbp.save(tmp_path / "m.npz", model_of(seed=0))
    other = model_of(seed=1)
    assert not same_state(other.state_dict(), model_of(seed=0).state_dict())
    params_before = other.params  # load_into writes in place: the same arrays get the new values
    mbp.load_into(path, other)
    assert same_state(other.state_dict(), model_of(seed=0).state_dict())
    assert all(other.params[k] is params_before[k] for k in params_before)


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "m.npz"
    mbp.save(target, model_of(seed=0))
    mbp.save(target, model_of(seed=1))  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    assert same_state(mbp.load(target).state_dict(), model_of(seed=1).state_dict())


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.npz"
    mbp.save(target, model_of(seed=0))
    old_bytes = target.read_bytes()

    def crash(f: object, **arrays: object) -> None:
        f.write(b"PK\x03\x04 half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        mbp.save(target, model_of(seed=1))
    assert target.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_rejects_non_models(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="save: expected a manual_bp Sequential, got Linear"):
        mbp.save(tmp_path / "m.npz", mbp.Linear(2, 2, rng=0))


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mbp.load(tmp_path / "nope.npz")


def corrupt_cases(tmp_path: Path, good: Path) -> dict[str, tuple[Path, type, str]]:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive at all")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    bad_json = rewrite(good, tmp_path / "json.npz", __architecture__=np.array("{not json"))
    bad_version = rewrite(
        good, tmp_path / "version.npz", __architecture__=np.array(json.dumps({"format": 99, "model": {}}))
    )
    W = np.load(good)["0.W"]
    return {
        "garbage": (garbage, ValueError, "is not a valid manual_bp model file"),
        "truncated": (truncated, ValueError, "is not a valid manual_bp model file"),
        "no-architecture": (
            rewrite(good, tmp_path / "noarch.npz", drop=("__architecture__",)),
            ValueError,
            "__architecture__",
        ),
        "bad-json": (bad_json, ValueError, "corrupt architecture entry"),
        "bad-version": (bad_version, ValueError, "unsupported format"),
        "missing-key": (
            rewrite(good, tmp_path / "missing.npz", drop=("3.b",)),
            ValueError,
            r"missing keys \['3.b'\]",
        ),
        "extra-key": (
            rewrite(good, tmp_path / "extra.npz", **{"9.W": np.zeros(2)}),
            ValueError,
            r"unexpected keys \['9.W'\]",
        ),
        "wrong-shape": (
            rewrite(
                good, tmp_path / "shape.npz", **{"3.b": np.zeros(3)}
            ),  # the last key: nothing before it may land
            ValueError,
            r"'3.b' has shape \(3,\), the model expects \(2,\)",
        ),
        "wrong-dtype": (
            rewrite(good, tmp_path / "dtype.npz", **{"3.b": np.zeros(2, np.float32)}),
            TypeError,
            r"'3.b' has dtype float32, the model expects float64",
        ),
        "transposed": (
            rewrite(good, tmp_path / "transposed.npz", **{"0.W": W.T.copy()}),
            ValueError,
            r"'0.W' has shape \(5, 3\), the model expects \(3, 5\)",
        ),
    }


CORRUPT = [
    "garbage",
    "truncated",
    "no-architecture",
    "bad-json",
    "bad-version",
    "missing-key",
    "extra-key",
    "wrong-shape",
    "wrong-dtype",
    "transposed",
]


@pytest.mark.parametrize("case", CORRUPT)
def test_bad_file_raises_and_leaves_model_untouched(tmp_path: Path, case: str) -> None:
    good = mbp.save(tmp_path / "good.npz", model_of(seed=0))
    path, exc, pattern = corrupt_cases(tmp_path, good)[case]
    model = model_of(seed=1)
    before = model.state_dict()
    with pytest.raises(exc, match=pattern):
        mbp.load_into(path, model)
    assert same_state(model.state_dict(), before)
    with pytest.raises(exc, match=pattern):
        mbp.load(path)


PICKLE_RAN: list[str] = []


def _payload_ran(tag: str) -> str:
    PICKLE_RAN.append(tag)
    return tag


class Payload:
    """Unpickling this calls ``_payload_ran``: proof that a loader ran pickled code."""

    def __reduce__(self) -> tuple:
        return (_payload_ran, ("executed",))


def test_pickled_objects_are_refused_without_running(tmp_path: Path) -> None:
    good = mbp.save(tmp_path / "good.npz", model_of(seed=0))
    evil = rewrite(good, tmp_path / "evil.npz", **{"0.b": np.array([Payload()], dtype=object)})
    with np.load(evil, allow_pickle=True) as f:  # control: the file really carries a live payload
        f["0.b"]
    assert PICKLE_RAN == ["executed"]
    PICKLE_RAN.clear()
    model = model_of(seed=1)
    before = model.state_dict()
    with pytest.raises(ValueError, match="not a valid manual_bp model file"):
        mbp.load_into(evil, model)
    with pytest.raises(ValueError, match="not a valid manual_bp model file"):
        mbp.load(evil)
    assert PICKLE_RAN == []
    assert same_state(model.state_dict(), before)


def _crafted(tmp_path: Path, name: str, layer: dict) -> Path:
    """A valid file whose architecture entry is replaced by one holding ``layer`` first."""
    good = mbp.save(tmp_path / "good.npz", model_of(seed=0))
    with np.load(good, allow_pickle=False) as f:
        meta = json.loads(str(f["__architecture__"]))
    meta["model"]["config"]["layers"][0] = layer
    return rewrite(good, tmp_path / name, __architecture__=np.array(json.dumps(meta)))


@pytest.mark.parametrize("layer", [
    {"kind": "linear", "config": {"in_features": 6000, "out_features": 6000, "bias": True, "dtype": "float64",
                                  "init": "torch"}},
    {"kind": "layer_norm", "config": {"normalized_shape": 5_000_000, "eps": 1e-5, "elementwise_affine": True,
                                      "dtype": "float64"}},
    {"kind": "embedding", "config": {"num_embeddings": 100_000, "embedding_dim": 100, "dtype": "float64"}},
])
def test_a_crafted_architecture_fails_before_it_allocates(tmp_path: Path, layer: dict) -> None:
    """A 67-byte change to the architecture entry must not make ``load`` allocate and fill 80-290 MB:
    it is built within twice the file's own entries (plus 2^20), so it fails before allocating."""
    import tracemalloc

    path = _crafted(tmp_path, "crafted.npz", layer)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="does not match the file's arrays"):
            mbp.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"load allocated {peak / 2**20:.0f} MiB before refusing the file"


def test_a_small_architecture_mismatch_still_names_the_keys(tmp_path: Path) -> None:
    """The budget's slack lets a file with a few entries too few build, so the key-by-key check names them."""
    path = _crafted(tmp_path, "wider.npz", {"kind": "linear", "config": {
        "in_features": 3, "out_features": 50, "bias": True, "dtype": "float64", "init": "torch"}})
    with pytest.raises(ValueError, match=r"'0.W' has shape \(3, 5\), the model expects \(3, 50\)"):
        mbp.load(path)


def test_a_deeply_nested_architecture_entry_is_a_value_error(tmp_path: Path) -> None:
    good = mbp.save(tmp_path / "good.npz", model_of(seed=0))
    deep = rewrite(good, tmp_path / "deep.npz", __architecture__=np.array("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ValueError, match="corrupt architecture entry"):
        mbp.load(deep)


def test_saved_file_is_a_plain_npz(tmp_path: Path) -> None:
    path = mbp.save(tmp_path / "m.npz", model_of())
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
    assert names == sorted(f"{k}.npy" for k in ["__architecture__", "0.W", "0.b", "2.0.W", "3.W", "3.b"])
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__architecture__"]))
    assert meta["format"] == 1 and meta["model"]["kind"] == "sequential"


# ---------------------------------------------------------------- initialisers

INITS = ["torch", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal"]


@pytest.mark.parametrize("name", INITS)
def test_initialiser_same_seed_bit_identical(name: str) -> None:
    fn = init.INITIALIZERS[name]
    a = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float64))
    b = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float64))
    c = fn(np.random.default_rng(8), (30, 20), 30, 20, np.dtype(np.float64))
    f32 = fn(np.random.default_rng(7), (30, 20), 30, 20, np.dtype(np.float32))
    assert a.shape == (30, 20) and a.dtype == np.float64 and f32.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(f32, a.astype(np.float32))  # drawn in float64, then rounded


def test_torch_uniform_bounds() -> None:
    fan_in = 50
    W = init.torch_uniform(np.random.default_rng(0), (fan_in, 400), fan_in, 400, np.dtype(np.float64))
    bound = 1 / math.sqrt(fan_in)
    assert np.max(np.abs(W)) <= bound
    assert np.max(W) > 0.99 * bound and np.min(W) < -0.99 * bound  # the full interval is used
    b = mbp.Linear(fan_in, 7, rng=0).params["b"]
    assert np.max(np.abs(b)) <= bound and b.shape == (7,)


@pytest.mark.parametrize(
    ("name", "std"),
    [
        ("torch", lambda fi, fo: 1 / math.sqrt(3 * fi)),
        ("kaiming_uniform", lambda fi, fo: math.sqrt(2 / fi)),
        ("kaiming_normal", lambda fi, fo: math.sqrt(2 / fi)),
        ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
        ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ],
)
def test_initialiser_std(name: str, std: object) -> None:
    """On 200k samples the sample std is within ~0.2% of the target (3 sigma ~0.5%): allow 2%."""
    fi, fo = 400, 500
    W = init.INITIALIZERS[name](np.random.default_rng(1), (fi, fo), fi, fo, np.dtype(np.float64))
    target = std(fi, fo)  # type: ignore[operator]
    assert W.std() == pytest.approx(target, rel=0.02)
    assert abs(W.mean()) < 5 * target / math.sqrt(W.size)


def test_linear_uses_the_named_initialiser() -> None:
    W = mbp.Linear(400, 300, rng=3, init="kaiming_normal").params["W"]
    assert W.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert np.array_equal(
        W, init.kaiming_normal(np.random.default_rng(3), (400, 300), 400, 300, np.dtype(np.float64))
    )
    zero = mbp.Linear(3, 2, rng=0, init="zeros").params["W"]
    assert np.array_equal(zero, np.zeros((3, 2)))


def test_as_generator() -> None:
    g = np.random.default_rng(0)
    assert init.as_generator(g, "x") is g
    assert init.as_generator(5, "x").random() == np.random.default_rng(5).random()
    with pytest.raises(
        TypeError, match=r"x: rng must be a numpy\.random\.Generator or an int seed, got bool"
    ):
        init.as_generator(True, "x")


# ---------------------------------------------------------------- datasets

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
