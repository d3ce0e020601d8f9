"""crosscheck: verify manual_bp tensor by tensor against PyTorch autograd and JAX autodiff.

``crosscheck.verify(model, loss_fn, X, y)`` checks one model of yours;
``python -m crosscheck`` runs the default sweep and writes a report.
Importing this package imports neither manual_bp nor the frameworks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["verify"]


def verify(model: Any, loss_fn: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    """Compare a manual_bp model with PyTorch and JAX on (X, y); see ``crosscheck.run.api.verify``."""
    from crosscheck.run.api import verify as _verify

    return _verify(model, loss_fn, X, y, **kwargs)
