"""Weight initialisers. Each takes an explicit ``np.random.Generator``.

Values are drawn in float64 and then rounded to the requested dtype, so a
float32 and a float64 model built from the same seed hold the same numbers up
to rounding, and the same seed always gives a bit-identical model.

fan_in and fan_out are those of a weight of shape (in, out): fan_in = in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Initializer = Callable[[np.random.Generator, tuple, int, int, np.dtype], np.ndarray]


def torch_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for ``nn.Linear`` weight and bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """He uniform for ReLU: U(-b, b), b = sqrt(2) * sqrt(3 / fan_in)."""
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_normal(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """He normal for ReLU: N(0, 2 / fan_in)."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape).astype(dtype)


def xavier_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """Glorot uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_normal(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape).astype(dtype)


def zeros(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """All zeros (biases; never for a weight that must break symmetry)."""
    return np.zeros(shape, dtype=dtype)


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
