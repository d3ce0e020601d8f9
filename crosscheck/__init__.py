"""crosscheck: verify manual_bp tensor by tensor against PyTorch autograd and JAX autodiff.

``crosscheck.verify(model, loss_fn, X, y)`` checks one model of yours;
``crosscheck.check_pair(forward, backward, kind=...)`` checks a layer pair you wrote yourself
(docs/check-your-own.md); ``python -m crosscheck`` runs the default sweep and writes a report.
Importing this package imports neither manual_bp nor the frameworks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_module", "check_pair", "register_kind", "verify"]


def verify(model: Any, loss_fn: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    """Compare a manual_bp model with PyTorch and JAX on (X, y); see ``crosscheck.run.api.verify``."""
    from crosscheck.run.api import verify as _verify

    return _verify(model, loss_fn, X, y, **kwargs)


def check_pair(forward: Any, backward: Any = None, kind: str = "linear", **kwargs: Any) -> Any:
    """Compare your own layer pair with PyTorch and JAX (or the golden answers); see
    ``crosscheck.check.pair.check_pair``."""
    from crosscheck.check.pair import check_pair as _check_pair

    return _check_pair(forward, backward, kind, **kwargs)


def check_module(obj: Any, like: str | None = None, **kwargs: Any) -> Any:
    """Compare your own layer object (or a model of them) with PyTorch and JAX; see
    ``crosscheck.check.module.check_module``."""
    from crosscheck.check.module import check_module as _check_module

    return _check_module(obj, like, **kwargs)


def register_kind(name: str, **kwargs: Any) -> Any:
    """Add a layer kind of your own from its torch or JAX forward; see ``crosscheck.check.custom.register_kind``."""
    from crosscheck.check.custom import register_kind as _register_kind

    return _register_kind(name, **kwargs)
