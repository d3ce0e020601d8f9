"""Verify anyone's backward: a user's layer pairs (``check_pair``) and modules (``check_module``) against
the PyTorch and JAX references or the shipped golden answers, with a diagnosis of the first mismatch.
See docs/check-your-own.md."""

from __future__ import annotations

from crosscheck.check.adapters import ADAPTERS, Adapter, Drawn, adapter_for
from crosscheck.check.custom import register_kind, unregister_kind
from crosscheck.check.module import check_module
from crosscheck.check.pair import CheckResult, check_pair

__all__ = [
    "ADAPTERS",
    "Adapter",
    "CheckResult",
    "Drawn",
    "adapter_for",
    "check_module",
    "check_pair",
    "register_kind",
    "unregister_kind",
]
