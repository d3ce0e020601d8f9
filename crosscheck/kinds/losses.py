"""Loss kinds: softmax cross-entropy, MSE and BCE with logits.

S of the summed loss (before a mean's 1/n), first order: per term, the error S(z) carries through
|dl/dz| plus the size of the terms the loss adds (z the reference logits, t the target):

    cross-entropy  per row    2 Y S(z) + (1 + Y) max|z| + log C,  Y = max row sum of |t| (1 for labels)
    BCE            per entry  S(z) + (1 + max|t|) max|z| + 1   (|dl/dz| = |sigmoid(z) - t| <= 1)
    MSE            per entry  (2 S(z) + d) d,  d = max|z| + max|t|   (|dl/dz| = 2 |z - t|)

and G(dlogits) = |dloss| r A, A = 2 for the cross-entropies, 2 (S(z) + max|t|) for MSE.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import F, jax, jnp, optax
from crosscheck.kinds.entry import LossKind, amax


def _floats(target: Any) -> bool:
    return target is not None and np.asarray(target).dtype.kind == "f"


def _reduce(cfg: dict[str, Any], per: Any) -> Any:
    """optax's losses are per example: reduced as torch reduces."""
    return jnp.mean(per) if cfg["reduction"] == "mean" else jnp.sum(per)


# ---------------------------------------------------------------- softmax cross-entropy


def _ce_jax(cfg: dict[str, Any], z: Any, target: Any) -> Any:
    eps = cfg["label_smoothing"]
    if target.ndim == 1:
        if eps == 0:
            per = optax.losses.softmax_cross_entropy_with_integer_labels(z, target)
        else:
            onehot = jax.nn.one_hot(target, z.shape[-1], dtype=z.dtype)
            per = optax.losses.softmax_cross_entropy(z, optax.losses.smooth_labels(onehot, eps))
    else:
        t = optax.losses.smooth_labels(target, eps) if eps else target
        per = optax.losses.softmax_cross_entropy(z, t)
    return _reduce(cfg, per)


def _ce_terms(z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    Y = float(np.abs(np.asarray(target)).sum(axis=-1).max(initial=0.0)) if _floats(target) else 1.0
    return rows * (2 * Y * s_z + (1 + Y) * amax(z) + math.log(max(z.shape[-1], 2)))


def _ce_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """Label smoothing (40%); integer labels or class probabilities (Dirichlet rows or one-hot)."""
    config = {"label_smoothing": 0.0 if rng.random() < 0.6 else float(rng.choice([0.05, 0.1, 0.3]))}
    if labels == "int":
        return config, rng.integers(0, C, N)
    t = rng.dirichlet(np.full(C, 0.5), N) if rng.random() < 0.7 else np.eye(C)[rng.integers(0, C, N)]
    return config, t.astype(dtype)


CROSS_ENTROPY = LossKind(
    "softmax_cross_entropy",
    torch_loss=lambda cfg, z, t: F.cross_entropy(z, t, reduction=cfg["reduction"],
                                                 label_smoothing=cfg["label_smoothing"]),
    jax_loss=_ce_jax,
    terms=_ce_terms,
    grad_terms=lambda s_z, t_max: 2.0,
    draw=_ce_draw,
    per_row=True,
)


# ---------------------------------------------------------------- MSE and BCE with logits


def _mse_terms(z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    d = amax(z) + (amax(target) if _floats(target) else 1.0)
    return n * (2 * s_z + d) * d


def _bce_terms(z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    return n * (s_z + (1 + (amax(target) if _floats(target) else 1.0)) * amax(z) + 1)


def _bce_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """Soft targets in [0, 1) (60%) or hard 0/1 targets."""
    t = rng.random((N, C)) if rng.random() < 0.6 else rng.integers(0, 2, (N, C)).astype(float)
    return {}, t.astype(dtype)


MSE = LossKind(
    "mse",
    torch_loss=lambda cfg, z, t: F.mse_loss(z, t, reduction=cfg["reduction"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, optax.losses.squared_error(z, t)),
    terms=_mse_terms,
    grad_terms=lambda s_z, t_max: 2 * (s_z + t_max),
    draw=lambda rng, labels, dtype, N, C: ({}, rng.standard_normal((N, C)).astype(dtype)),
)

BCE_WITH_LOGITS = LossKind(
    "bce_with_logits",
    torch_loss=lambda cfg, z, t: F.binary_cross_entropy_with_logits(z, t, reduction=cfg["reduction"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, optax.losses.sigmoid_binary_cross_entropy(z, t)),
    terms=_bce_terms,
    grad_terms=lambda s_z, t_max: 2.0,
    draw=_bce_draw,
)

KINDS = [CROSS_ENTROPY, MSE, BCE_WITH_LOGITS]
