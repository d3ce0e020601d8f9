"""Performance devices, kept apart from the math: ``Module`` and the optimisers call them.

None of them changes a number: each gives the bits of the plain code it replaces
(tests/manual_bp/test_fast.py, tests/manual_bp/test_optim.py).

- **Gradient storage** (``set_aside``, ``take_unshared``). A new gradient may be
  written into the array that held the same gradient after the last
  ``backward``, but only when nothing outside the layer refers to that array
  any more (no variable, view, dict or optimiser holds it), so that no one can
  see it change. A gradient you kept is never touched: the new one then goes to
  a fresh array. Why: a fresh array of tens of MB is fresh memory that the
  kernel zeroes page by page on the first write (20-30 ms of a 850 ms float64
  step for the 4096 x 4096 dW of ``benchmarks``' large MLP); arrays under
  ``REUSE_MIN_BYTES`` are always new, as their memory is recycled by malloc
  anyway. NumPy applies the same rule when it reuses an operand no one else
  holds as the output of an expression (temporary elision).
- **Blocked optimiser updates** (``update_in_blocks``). A large array is
  updated in blocks of ``BLOCK_BYTES`` (views of it and of its state), which
  gives the same numbers because every update rule is elementwise, and keeps
  each block's temporaries in cache.
- **C-order operands** (``operand``, for layers with ``Module.contiguous``).
  NumPy < 2.3 multiplies strided operands without BLAS, in another summation
  order; one copy to C order keeps every layout of the same values at the
  contiguous input's bits on every NumPy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

# ---------------------------------------------------------------- gradient storage

REUSE_MIN_BYTES = 1 << 20  # smaller arrays come from malloc's pool, whose pages are mapped already


def _pop_with_refcount(store: dict[str, np.ndarray], name: str) -> tuple[np.ndarray | None, int]:
    a = store.pop(name, None)
    return a, sys.getrefcount(a)


# the count of an array that only ``store`` held, measured through the same code (it varies across CPython versions)
_, _ALONE = _pop_with_refcount({"a": np.empty(0)}, "a")


def set_aside(grads: dict[str, np.ndarray], reusable: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Empty ``grads`` (the last backward's gradients) and return those named in ``reusable`` of at least
    ``REUSE_MIN_BYTES``: the storage ``take_unshared`` may give the new ones. The rest are freed here,
    before the new gradients exist. No local name may hold a gradient: it would count as a holder."""
    spare = {k: grads[k] for k in reusable if k in grads and grads[k].nbytes >= REUSE_MIN_BYTES}
    grads.clear()
    return spare


def take_unshared(
    store: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray | None:
    """Pop ``store[name]`` and return it if nothing else refers to it and it can hold a
    C-contiguous ``shape``/``dtype`` result; else None (the caller allocates)."""
    a, refs = _pop_with_refcount(store, name)
    if a is None or refs > _ALONE:
        return None
    fits = a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
    return a if fits and a.flags.owndata and a.flags.writeable else None


# ---------------------------------------------------------------- blocked optimiser updates

# bytes of each array in one block of an update: 64K float32 or 32K float64 elements, so that a block's
# arrays and temporaries stay in a core's L2 cache (measured on Adam: 1.25x faster than 16K elements in float32)
BLOCK_BYTES = 1 << 18


def update_in_blocks(update: Callable[..., Any], p: np.ndarray, g: np.ndarray, s: Any, t: int) -> Any:
    """``update(p, g, s, t)`` applied block by block over the flat arrays (an elementwise rule gives the same
    numbers): each block's temporaries (g + lambda p, g^2, m / denom, ...) stay in cache instead of streaming
    arrays the size of p through memory several times. ``s`` is the NamedTuple state of ``p``."""
    arrays = (p, g, *(a for a in s if a is not None))
    n = max(BLOCK_BYTES // p.itemsize, 1)  # elements per block
    if p.size <= n or not all(a.flags.c_contiguous for a in arrays):  # reshape(-1) must give views
        return update(p, g, s, t)
    p_flat, g_flat = p.reshape(-1), g.reshape(-1)
    s_flat = [None if a is None else a.reshape(-1) for a in s]
    new: list[Any] = []
    for i in range(0, p.size, n):
        block = slice(i, i + n)
        s_i = type(s)(*(None if a is None else a[block] for a in s_flat))
        new.append(update(p_flat[block], g_flat[block], s_i, t))
    # fields that were None and now hold an array (SGD's first momentum buffer) are assembled;
    # every other array was updated in place through its block views
    fields = [
        a if a is not None or new[0][j] is None else np.concatenate([n[j] for n in new]).reshape(p.shape)
        for j, a in enumerate(s)
    ]
    return type(s)(*fields)


# ---------------------------------------------------------------- C-order operands


def operand(a: np.ndarray, contiguous: bool) -> np.ndarray:
    """``a`` in C order when ``contiguous`` (a copy only if it is not C-contiguous already), else ``a``."""
    return np.ascontiguousarray(a) if contiguous else a
