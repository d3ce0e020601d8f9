"""The bounds: how close two tensors must be (derivation: docs/tolerance.md).

    rel_norm = ||a - b||_2       / max(||b||_2,   S, tiny)
    rel_max  = max_i |a_i - b_i| / max(||b||_inf, S, tiny)

both at most the case's bound: ``1e-10`` in float64 (the verification tier), and
``16 eps32 sqrt(K) (L + 1)`` in float32, K the longest reduction in the case and L the
number of layers, containers and their children counted. S is the size of the terms that
formed the tensor (``crosscheck.tolerance.scales``); tiny, the dtype's smallest normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FLOAT64_BOUND = 1e-10
FLOAT32_SAFETY = 16.0
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


def bound(dtype: str, reduction_length: int, n_layers: int) -> float:
    """The largest admissible relative error for a case (see the module docstring)."""
    if dtype == "float64":
        return FLOAT64_BOUND
    if dtype == "float32":
        return FLOAT32_SAFETY * EPS["float32"] * math.sqrt(max(reduction_length, 1)) * (n_layers + 1)
    raise ValueError(f"crosscheck: no tolerance tier for dtype {dtype!r} (float32 or float64)")


@dataclass(frozen=True)
class TensorCheck:
    """One compared tensor: its errors, the bound and the verdict."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    rel_norm: float
    rel_max: float
    bound: float
    note: str = ""
    detects: float = 0.0  # the smallest ||a - b|| / ||b|| this check is sure to flag (inf when b = 0)

    @property
    def error(self) -> float:
        return max(self.rel_norm, self.rel_max)

    @property
    def ok(self) -> bool:
        return not self.note and self.error <= self.bound

    @property
    def margin(self) -> float:
        """bound / error (inf when the tensors agree exactly)."""
        if self.note:
            return 0.0
        return self.bound / self.error if self.error > 0 else math.inf


def check(name: str, a: np.ndarray, b: np.ndarray, bound: float, scale: float = 0.0) -> TensorCheck:
    """Compare ``a`` with the reference ``b``: shape and dtype first, then values.

    ``scale`` is S, the magnitude of the terms that formed the tensor (0: plain relative error).
    """
    a, b = np.asarray(a), np.asarray(b)
    shape, dtype = tuple(b.shape), b.dtype.name
    nan = math.nan
    if a.shape != b.shape:
        return TensorCheck(name, shape, dtype, nan, nan, nan, bound, f"shape {a.shape} != reference {b.shape}")
    if a.dtype != b.dtype:
        return TensorCheck(name, shape, dtype, nan, nan, nan, bound, f"dtype {a.dtype} != reference {b.dtype}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        if np.array_equal(a, b, equal_nan=True):
            return TensorCheck(name, shape, dtype, 0.0, 0.0, 0.0, bound)
        return TensorCheck(name, shape, dtype, nan, nan, nan, bound, "non-finite values differ")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)  # measure errors without further rounding
    tiny = float(np.finfo(b.dtype).tiny)
    diff = np.abs(a64 - b64)
    max_abs = float(diff.max(initial=0.0))
    norm_b = float(np.linalg.norm(b64.ravel()))
    rel_norm = float(np.linalg.norm(diff.ravel())) / max(norm_b, scale, tiny)
    rel_max = max_abs / max(float(np.abs(b64).max(initial=0.0)), scale, tiny)
    # rel_norm > bound  <=>  ||a - b|| / ||b|| > bound * max(||b||, S) / ||b||: the check's power for this tensor
    detects = bound * max(norm_b, scale, tiny) / norm_b if norm_b > 0 else math.inf
    return TensorCheck(name, shape, dtype, max_abs, rel_norm, rel_max, bound, detects=detects)
