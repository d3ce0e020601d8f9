"""Weight initialisers. Each takes an explicit ``np.random.Generator``.

Values are drawn in float64 and then rounded to the requested dtype, so a
float32 and a float64 model built from the same seed hold the same numbers up
to rounding, and the same seed always gives a bit-identical model.

fan_in and fan_out are those of a weight of shape (in, out): fan_in = in.

Every parameter and buffer of a manual_bp layer is made by a function of this
module, which counts its entries against ``entry_budget`` (when one is active)
before allocating: ``io.load`` builds a file's architecture within the file's
own entry count, so a crafted architecture cannot allocate beyond its data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

import numpy as np

Initializer = Callable[[np.random.Generator, tuple, int, int, np.dtype], np.ndarray]

_left: ContextVar[tuple[list[int], str] | None] = ContextVar("manual_bp.init.entries_left", default=None)


@contextmanager
def entry_budget(n: int, why: str = "") -> Iterator[None]:
    """Inside the block, the parameters and buffers made here may hold ``n`` entries in all; the
    first one beyond that raises ValueError (ending with ``why``) before it is allocated."""
    token = _left.set(([int(n)], why))
    try:
        yield
    finally:
        _left.reset(token)


def _count(shape: tuple) -> None:
    budget = _left.get()
    if budget is None:
        return
    left, why = budget
    n = math.prod(shape)
    if n > left[0]:
        raise ValueError(
            f"an array of shape {tuple(shape)} would take {n} entries, more than the {left[0]} "
            f"left of a budget of entries{why}"
        )
    left[0] -= n


def _counted(make: Initializer) -> Initializer:
    @wraps(make)
    def counted(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
        _count(shape)
        return make(rng, shape, fan_in, fan_out, dtype)

    return counted


@_counted
def torch_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for ``nn.Linear`` weight and bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


@_counted
def kaiming_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """He uniform for ReLU: U(-b, b), b = sqrt(2) * sqrt(3 / fan_in)."""
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


@_counted
def kaiming_normal(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """He normal for ReLU: N(0, 2 / fan_in)."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape).astype(dtype)


@_counted
def xavier_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """Glorot uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


@_counted
def xavier_normal(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape).astype(dtype)


@_counted
def zeros(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """All zeros (biases; never for a weight that must break symmetry)."""
    return np.zeros(shape, dtype=dtype)


def constant(shape: tuple, value: float, dtype: np.dtype) -> np.ndarray:
    """Every entry ``value`` (norm layers' gamma = 1 and beta = 0, running statistics, attention biases)."""
    _count(shape)
    return np.zeros(shape, dtype) if value == 0 else np.full(shape, value, dtype)


def standard_normal(rng: np.random.Generator, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """N(0, 1) entries, drawn in float64 (torch's ``nn.Embedding``)."""
    _count(shape)
    return rng.standard_normal(shape).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "torch": torch_uniform,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "zeros": zeros,
}


def get_initializer(name: str, where: str) -> Initializer:
    """Look an initialiser up by name; a ValueError lists the valid names."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"{where}: unknown init {name!r}; choose one of {sorted(INITIALIZERS)}") from None


def as_generator(rng: np.random.Generator | int | None, where: str) -> np.random.Generator:
    """Accept a Generator or an integer seed; None gives a fresh, unseeded generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"{where}: rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")
