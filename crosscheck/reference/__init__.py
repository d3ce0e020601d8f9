"""The references: a spec rebuilt from PyTorch's and JAX's own ops, and the spec reader.

``reference(framework)`` imports a framework's driver on first use, with an install hint if the
framework is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

FRAMEWORKS = ("torch", "jax")


def reference(framework: str) -> Any:
    """The reference module for ``framework`` ("torch" or "jax"), imported on first use."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"crosscheck: unknown framework {framework!r}; choose from {FRAMEWORKS}")
    try:
        return importlib.import_module(f"crosscheck.reference.{framework}_ref")
    except ImportError as err:
        raise ImportError(
            f"crosscheck: the {framework} reference needs {err.name!r}; "
            f"install it with `pip install manual-bp[{framework}]`"
        ) from err
