"""torch and JAX for the kind entries, imported on first use.

The entries hold their torch and JAX code beside their other rules, but the case generator and
the tolerance use the entries without the frameworks (a NumPy-only install has neither). Each name
here is a stand-in that imports its module when an attribute is first read; the imports are plain
statements, so the independence test sees exactly which modules the references reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _Lazy:
    def __init__(self, load: Callable[[], Any]) -> None:
        self._load, self._module = load, None

    def __getattr__(self, name: str) -> Any:
        if self._module is None:
            self._module = self._load()
        return getattr(self._module, name)


def _torch() -> Any:
    import torch

    return torch


def _nn() -> Any:
    from torch import nn

    return nn


def _functional() -> Any:
    import torch.nn.functional

    return torch.nn.functional


def _jax() -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    return jax


def _jnp() -> Any:
    _jax()
    import jax.numpy

    return jax.numpy


def _optax() -> Any:
    _jax()
    import optax

    return optax


torch: Any = _Lazy(_torch)
nn: Any = _Lazy(_nn)
F: Any = _Lazy(_functional)
jax: Any = _Lazy(_jax)
jnp: Any = _Lazy(_jnp)
optax: Any = _Lazy(_optax)
