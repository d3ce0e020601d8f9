"""The tolerance policy: how close two tensors must be, and why.

For a tensor ``a`` (one backend) against ``b`` (another) we compute

    rel_norm = ||a - b||_2       / max(||b||_2,   S, tiny)
    rel_max  = max_i |a_i - b_i| / max(||b||_inf, S, tiny)

and require both to be at most the bound of the case's dtype. ``rel_norm`` is
the headline figure; ``rel_max`` catches a single wrong entry that a large
tensor's norm would dilute. ``tiny`` is the dtype's smallest normal number.
``S`` is the magnitude of the terms that formed the tensor (see
``crosscheck.scales``): it only matters when cancellation leaves a tensor far
smaller than those terms (a gradient that is exactly zero in exact arithmetic,
a saturated tanh), where rounding differences are eps * S, not eps * ||b||.

Float64 (the verification tier): ``1e-10``. A correct implementation in float64
differs from another by rounding alone: about eps64 * sqrt(K) per reduction of
length K (eps64 = 2.2e-16), summed over the layers. For the largest cases here
(K = 64 rows or features, 13 layers and a loss) that is ~2e-14, so 1e-10 leaves
a margin of several thousand for summation order and library kernels, while a
wrong formula (a dropped 1/N, a transposed product, a wrong derivative) is off
by 1e-3 to 1e0: eight orders of magnitude above the bound.

Float32 (second tier): ``16 * eps32 * sqrt(K) * (L + 1)``, with eps32 = 1.19e-7,
K the longest reduction in the case (batch rows for dW and db, features for a
product, classes for a softmax; for a convolution its window C_in / groups * kH * kW
and the N * H_out * W_out positions summed into dW and db) and L the number of
layers, containers and their children counted (+1 for the loss).
Each layer adds a rounding error of about eps32 * sqrt(K) (the random-walk
estimate for a sum of K terms); errors add along the L layers; the factor 16
covers the conditioning of activations at initialisation scale and the gap
between the random-walk estimate and unlucky sums. For the seed network with a
batch of 64 it is 6e-5; over the float32 cases of the default sweep the median is
about 1e-4 and the largest 7e-4 (an MLP whose residual blocks count 29 layers).
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
