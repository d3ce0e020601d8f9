"""Save and load models as ``.npz``: arrays plus a JSON architecture, never pickles.

``save`` writes to a temporary file in the target directory and renames it
over the target, so a crash never leaves a half-written file. ``load`` opens
the file with ``allow_pickle=False``: a file holding pickled objects is refused
without running anything; and it builds the saved architecture within about
twice the file's own number of entries (``init.entry_budget``), so an
architecture that asks for far more parameters than the file holds fails before
it allocates them.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from manual_bp.init import entry_budget
from manual_bp.model import Sequential, architecture, build

_ARCH_KEY = "__architecture__"
FORMAT_VERSION = 1


def save(path: str | os.PathLike, model: Sequential) -> Path:
    """Write ``model`` (architecture + parameters + buffers) to ``path`` atomically."""
    if not isinstance(model, Sequential):
        raise TypeError(f"save: expected a manual_bp Sequential, got {type(model).__name__}")
    path = Path(path)
    meta = json.dumps({"format": FORMAT_VERSION, "model": architecture(model)})
    arrays = {_ARCH_KEY: np.array(meta), **model.state_dict()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (metadata, arrays) from a saved file; ValueError on anything malformed."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise ValueError(f"load: {path} is not a valid manual_bp model file ({err})") from err
    if _ARCH_KEY not in arrays:
        raise ValueError(f"load: {path} has no {_ARCH_KEY!r} entry; it was not written by manual_bp.save")
    try:
        meta = json.loads(str(arrays.pop(_ARCH_KEY)))
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"load: {path} has a corrupt architecture entry ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or "model" not in meta:
        raise ValueError(f"load: {path} has an unsupported format (expected version {FORMAT_VERSION})")
    return meta, arrays


def _budget(arrays: dict[str, np.ndarray]) -> tuple[int, str]:
    """Entries the saved architecture may allocate: twice the file's own, plus 2^20 so that a file
    missing a small array still builds and reports the missing key by name."""
    n = sum(a.size for a in arrays.values())
    return 2 * n + 2**20, f" (twice the file's {n}, plus 2^20): the architecture does not match the file's arrays"


def load(path: str | os.PathLike) -> Sequential:
    """Rebuild the model saved at ``path``; the round trip is bit-exact."""
    meta, arrays = read_arrays(path)
    try:
        with entry_budget(*_budget(arrays)):
            model = build(meta["model"])
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as err:  # a malformed architecture
        raise ValueError(f"load: {path} has an invalid architecture entry ({type(err).__name__}: {err})") from err
    if not isinstance(model, Sequential):
        raise ValueError(f"load: {path} does not describe a Sequential model")
    model.load_state_dict(arrays)
    return model


def load_into(path: str | os.PathLike, model: Sequential) -> Sequential:
    """Load saved parameters into an existing ``model``; on any error the model is untouched."""
    _, arrays = read_arrays(path)
    model.load_state_dict(arrays)
    return model
