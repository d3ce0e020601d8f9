"""Input validation shared by every layer and loss.

Each check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong
shape or value) with a message that names the layer, states what was expected
and what was given, and says how to fix the call. Nothing is cast or broadcast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class StateError(ValueError, RuntimeError):
    """A method was called in the wrong order (e.g. ``backward`` before ``forward``)."""


def check_float_array(x: Any, where: str, what: str = "input") -> np.ndarray:
    """Return ``x`` if it is a float32/float64 ndarray; raise TypeError otherwise."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{where}: {what} must be a numpy.ndarray of float32 or float64, "
            f"got {type(x).__name__}; wrap it with np.asarray(..., dtype=np.float64)"
        )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: {what} must have dtype float32 or float64, got {x.dtype}; "
            f"convert explicitly, e.g. {what}.astype(np.float64)"
        )
    return x


def check_ndim(x: np.ndarray, ndim: int, where: str, what: str = "input", layout: str = "") -> None:
    """Raise ValueError unless ``x.ndim == ndim``."""
    if x.ndim != ndim:
        hint = f" {layout}" if layout else ""
        raise ValueError(f"{where}: {what} must be {ndim}-D{hint}, got shape {x.shape} ({x.ndim}-D)")


def check_min_ndim(x: np.ndarray, ndim: int, where: str, what: str = "input") -> None:
    """Raise ValueError unless ``x.ndim >= ndim``."""
    if x.ndim < ndim:
        raise ValueError(f"{where}: {what} must have at least {ndim} dimension(s), got shape {x.shape}")


def check_nonempty(x: np.ndarray, where: str, what: str = "input") -> None:
    """Raise ValueError on an empty batch (any zero-length axis)."""
    if x.size == 0:
        raise ValueError(f"{where}: {what} is empty (shape {x.shape}); pass at least one sample")


def check_same_dtype(x: np.ndarray, ref_dtype: np.dtype, where: str, what: str = "input") -> None:
    """Raise TypeError when ``x`` and the layer's parameters differ in dtype."""
    if x.dtype != ref_dtype:
        raise TypeError(
            f"{where}: {what} dtype {x.dtype} does not match the parameters' dtype "
            f"{ref_dtype}; build the layer with dtype={x.dtype} or cast the {what}"
        )


def check_shape(x: np.ndarray, shape: tuple[int, ...], where: str, what: str) -> None:
    """Raise ValueError unless ``x.shape == shape`` exactly (no broadcasting)."""
    if x.shape != tuple(shape):
        raise ValueError(f"{where}: {what} must have shape {tuple(shape)}, got {x.shape}")


def check_like(a: Any, ref: np.ndarray, where: str, what: str, ref_name: str) -> np.ndarray:
    """Return ``a`` if it is an ndarray with ``ref``'s shape and dtype; raise TypeError or ValueError
    naming ``what`` and ``ref_name`` otherwise (a gradient against its parameter, a loaded array
    against the model's)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where}: {what} must be a numpy.ndarray, got {type(a).__name__}")
    if a.shape != ref.shape:
        raise ValueError(f"{where}: {what} has shape {a.shape}, {ref_name} {ref.shape}")
    if a.dtype != ref.dtype:
        raise TypeError(f"{where}: {what} has dtype {a.dtype}, {ref_name} {ref.dtype}")
    return a


def check_dout(dout: Any, out_shape: tuple[int, ...], out_dtype: np.dtype, where: str) -> np.ndarray:
    """Validate an upstream gradient against the forward output it belongs to."""
    check_float_array(dout, where, "dout")
    check_shape(dout, out_shape, where, "dout (same as the forward output)")
    if dout.dtype != out_dtype:
        raise TypeError(f"{where}: dout dtype {dout.dtype} does not match the forward output dtype {out_dtype}")
    return dout


def check_dtype_arg(dtype: Any, where: str) -> np.dtype:
    """Normalise a ``dtype=`` argument; only float32 and float64 are accepted."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype!r}") from err
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dt}")
    return dt


def check_number(where: str, name: str, value: Any, positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number (and > 0 when ``positive``); ValueError otherwise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{where}: {name} must be {need}, got {value!r}")
    return float(value)


def check_features(where: str, name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer (a feature or table size); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)
