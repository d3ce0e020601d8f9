"""Helpers shared by the test folders: a test file never imports another test file.

The family modules beside this one hold the random layers and planted bugs that a
family's NumPy-only tests (tests/manual_bp, tests/kinds) and its parity tests
(tests/crosscheck) both use.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

import manual_bp as mbp

DTYPES = [np.float32, np.float64]
BIG = 1e4  # a huge input: exp(BIG) overflows every float dtype


def case_rng(name: str, seed: int) -> np.random.Generator:
    """The generator of one case, reproducible from the test id (name, seed)."""
    return np.random.default_rng([zlib.crc32(name.encode()), seed])


def fwd_bwd(layer: mbp.Module, x: np.ndarray, dout: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out) if dout is None else dout)
    return out, dx


def require_frameworks(frameworks: tuple[str, ...] = ("torch", "jax")) -> tuple[str, ...]:
    """The references for a parity test: skip with a reason when one is missing,
    fail instead when ``CROSSCHECK_REQUIRE`` (set by CI) names it."""
    from crosscheck.reference import reference

    required = {f.strip() for f in os.environ.get("CROSSCHECK_REQUIRE", "").split(",") if f.strip()}
    for fw in frameworks:
        try:
            reference(fw)
        except ImportError as err:
            if fw in required:
                pytest.fail(f"CROSSCHECK_REQUIRE names {fw}, but it cannot be imported: {err}")
            pytest.skip(f"parity test needs {fw}: {err}")
    return frameworks
