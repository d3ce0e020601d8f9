"""Saving and loading (manual_bp/io.py): .npz files, atomic writes, no pickles, a budget for crafted files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import manual_bp as mbp

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
            rewrite(good, tmp_path / "shape.npz", **{"3.b": np.zeros(3)}),  # the last key: nothing before it may land
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


@pytest.mark.parametrize(
    "layer",
    [
        {
            "kind": "linear",
            "config": {"in_features": 6000, "out_features": 6000, "bias": True, "dtype": "float64", "init": "torch"},
        },
        {
            "kind": "layer_norm",
            "config": {"normalized_shape": 5_000_000, "eps": 1e-5, "elementwise_affine": True, "dtype": "float64"},
        },
        {"kind": "embedding", "config": {"num_embeddings": 100_000, "embedding_dim": 100, "dtype": "float64"}},
    ],
)
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
    path = _crafted(
        tmp_path,
        "wider.npz",
        {
            "kind": "linear",
            "config": {"in_features": 3, "out_features": 50, "bias": True, "dtype": "float64", "init": "torch"},
        },
    )
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
