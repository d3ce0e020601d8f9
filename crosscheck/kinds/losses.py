"""Loss kinds: cross-entropy, NLL, multi-margin, MSE, BCE with logits, L1, Huber and smooth L1.

S of the summed loss (before a mean's 1/divisor), first order: per term, the error S(z) carries through
|dl/dz| plus the size of the terms the loss adds (z the reference logits, t the target, w the class
weights, 1 without; d = max|z| + max|t|):

    cross-entropy  per row    c (2 Y S(z) + (1 + Y) max|z| + log C),  Y = max row sum of |t| (1 for labels),
                              c = (1 - eps) |w[y]| + eps mean|w| for a label (0 if ignored), max|w| for probabilities
    NLL            per row    |w[y]| S(z)                (l = -w[y] z[y]: one term)
    multi-margin   per row    |w[y]| (2 S(z) + u) u^(p-1) p,  u = |margin| + 2 max|z|   ((C - 1) / C <= 1)
    BCE            per entry  S(z) + (1 + max|t|) max|z| + 1   (|dl/dz| = |sigmoid(z) - t| <= 1)
    MSE            per entry  (2 S(z) + d) d                    (|dl/dz| = 2 |z - t|)
    L1             per entry  S(z) + d                          (|dl/dz| <= 1, |l| <= d)
    Huber          per entry  delta (S(z) + d)                  (|dl/dz| <= delta, |l| <= delta |r|)
    smooth L1      per entry  S(z) + d                          (Huber / beta)

and G(dlogits) = |dloss| r A with A = 2 max|w| (cross-entropy), max|w| (NLL, multi-margin p = 1: each
entry one coefficient, the true class a sum of C - 1 of them over C), 2 max|w| (|margin| + 4 S(z)) (p = 2),
2 (S(z) + max|t|) (MSE), 1 (L1), S(z) + max|t| (Huber: clip(r, +-delta) is r unclipped, whose terms are
|z| + |t|, and +-delta <= |r| clipped), (S(z) + max|t|) / beta (smooth L1; 1 for beta = 0), 2 (BCE).
docs/tolerance.md has the derivations. L1 (and smooth L1 with beta = 0) has a kink at z = t and the hinge
one at u = 0: ``hazard`` says when a logit lies near one, and the case generator redraws it.

Its length (just over 400 lines): eight loss kinds, each a short entry.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import F, jax, jnp, optax, torch
from crosscheck.kinds.entry import LossKind, amax


def _floats(target: Any) -> bool:
    return target is not None and np.asarray(target).dtype.kind == "f"


def _reduce(cfg: dict[str, Any], per: Any) -> Any:
    """optax's losses are per example: reduced as torch reduces."""
    return jnp.mean(per) if cfg["reduction"] == "mean" else jnp.sum(per)


def _w(cfg: dict[str, Any], C: int) -> np.ndarray:
    """The class weights of a config as float64 (ones without)."""
    w = cfg.get("weight")
    return np.ones(C) if w is None else np.asarray(w, dtype=np.float64)


def _torch_weight(cfg: dict[str, Any], z: Any) -> Any:
    w = cfg.get("weight")
    return None if w is None else torch.tensor(np.asarray(w), dtype=z.dtype)


def _labels(cfg: dict[str, Any], target: Any, C: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels with ignored ones set to 0, the mask of the labels not ignored), flat."""
    y = np.asarray(target).reshape(-1)
    valid = y != cfg.get("ignore_index", -100)
    return np.where(valid, y, 0), valid


def _label_divisor(cfg: dict[str, Any], target: Any, rows: int, n: int) -> float:
    """A mean over labels divides by sum of w[y] over those not ignored; over probabilities by the rows."""
    if _floats(target):
        return rows
    w = cfg.get("weight")
    y, valid = _labels(cfg, target, 0)
    return float(valid.sum()) if w is None else float(np.asarray(w, dtype=np.float64)[y][valid].sum())


def _draw_class_weights(rng: np.random.Generator, labels: np.ndarray, C: int) -> tuple[dict[str, Any], np.ndarray]:
    """Class weights (always) and ignored labels (half the time): ignore_index -100 on about a quarter of
    the labels (at least one counts), or a real class (0) ignored as torch allows."""
    config: dict[str, Any] = {"weight": rng.uniform(0.2, 2.0, C)}
    u = rng.random()
    if u < 0.35 and labels.size > 1:
        drop = rng.random(labels.shape) < 0.25
        drop[rng.integers(labels.size)] = False
        labels = np.where(drop, -100, labels)
    elif u < 0.5 and C > 1 and np.any(labels != 0):
        config["ignore_index"] = 0
    return config, labels


# ---------------------------------------------------------------- exact forms (high-precision Var scalars)


def _exact_reduce(cfg: dict[str, Any], per: list[Any], divisor: Any) -> Any:
    """The exact sum of the per-term losses, divided by ``divisor`` for a mean."""
    L = ex.total(per)
    return L / divisor if cfg["reduction"] == "mean" else L


def _exact_weights(cfg: dict[str, Any], C: int) -> list[Any]:
    w = cfg.get("weight")
    return [ex.mpf(1)] * C if w is None else [ex.mpf(v) for v in np.asarray(w, np.float64)]


def _ce_exact(cfg: dict[str, Any], z: Any, target: Any) -> Any:
    """-sum_c w_c t_c log p_c per row, t the smoothed one-hot label ((1 - eps) onehot + eps / C) or the smoothed
    probabilities; ignored labels count 0; a mean over labels divides by sum of w[y] over those not ignored,
    over probabilities by the rows. (N, C) logits only."""
    if z.ndim != 2:
        raise NotImplementedError("crosscheck.exact: cross-entropy on (N, C) logits only")
    N, C = z.shape
    w, eps = _exact_weights(cfg, C), ex.mpf(cfg["label_smoothing"])
    t = np.asarray(target)
    labels = t.dtype.kind in "iu"
    per, divisor = [], ex.mpf(0) if labels else ex.mpf(N)
    for n in range(N):
        row = list(z[n])
        lse = ex.log(ex.total([ex.exp(v) for v in row]))
        if labels:
            if t[n] == cfg.get("ignore_index", -100):
                continue
            q = [eps / C + (1 - eps if c == t[n] else 0) for c in range(C)]
            divisor += w[int(t[n])]
        else:
            q = [ex.mpf(t[n, c]) * (1 - eps) + eps / C for c in range(C)]
        per += [(lse - row[c]) * (w[c] * q[c]) for c in range(C)]
    return _exact_reduce(cfg, per, divisor)


# ---------------------------------------------------------------- softmax cross-entropy


def _ce_jax(cfg: dict[str, Any], z: Any, target: Any) -> Any:
    """optax's softmax cross-entropy on the class-last logits against w t (t the smoothed one-hot labels or
    the probabilities): -sum_c w_c t_c log p_c; ignored labels' rows are 0; a mean over labels divides by
    sum of w[y] over those not ignored, torch's weighted mean."""
    eps, w, C = cfg["label_smoothing"], cfg.get("weight"), z.shape[1]
    zc = jnp.moveaxis(z, 1, -1)  # (..., C): optax's classes are last
    wc = jnp.ones(C, z.dtype) if w is None else jnp.asarray(np.asarray(w), dtype=z.dtype)
    if target.ndim == z.ndim - 1:  # labels
        valid = target != cfg.get("ignore_index", -100)
        y = jnp.where(valid, target, 0)
        t = jax.nn.one_hot(y, C, dtype=z.dtype)
        t = optax.losses.smooth_labels(t, eps) if eps else t
        per = jnp.where(valid, optax.losses.softmax_cross_entropy(zc, t * wc), 0)
        total = jnp.sum(jnp.where(valid, wc[y], 0))
        return jnp.sum(per) / total if cfg["reduction"] == "mean" else jnp.sum(per)
    t = jnp.moveaxis(target, 1, -1)
    t = optax.losses.smooth_labels(t, eps) if eps else t
    return _reduce(cfg, optax.losses.softmax_cross_entropy(zc, t * wc))


def _ce_terms(cfg: dict[str, Any], z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    C = z.shape[-1]
    w = np.abs(_w(cfg, C))
    Y = float(np.abs(np.asarray(target)).sum(axis=-1).max(initial=0.0)) if _floats(target) else 1.0
    per_row = 2 * Y * s_z + (1 + Y) * amax(z) + math.log(max(C, 2))
    if _floats(target):
        return rows * float(w.max()) * per_row
    eps = cfg["label_smoothing"]
    y, valid = _labels(cfg, target, C)
    return float(((1 - eps) * w[y] + eps * w.mean())[valid].sum()) * per_row


def _ce_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """Label smoothing (40%); integer labels or class probabilities (Dirichlet rows or one-hot).
    ``labels="weighted"`` (the loss family only): integer labels with class weights and ignored labels."""
    config: dict[str, Any] = {"label_smoothing": 0.0 if rng.random() < 0.6 else float(rng.choice([0.05, 0.1, 0.3]))}
    if labels == "weighted":
        more, y = _draw_class_weights(rng, rng.integers(0, C, N), C)
        return {**config, **more}, y
    if labels == "int":
        return config, rng.integers(0, C, N)
    t = rng.dirichlet(np.full(C, 0.5), N) if rng.random() < 0.7 else np.eye(C)[rng.integers(0, C, N)]
    return config, t.astype(dtype)


CROSS_ENTROPY = LossKind(
    "softmax_cross_entropy",
    torch_loss=lambda cfg, z, t: F.cross_entropy(
        z,
        t,
        weight=_torch_weight(cfg, z),
        reduction=cfg["reduction"],
        ignore_index=cfg.get("ignore_index", -100),
        label_smoothing=cfg["label_smoothing"],
    ),
    jax_loss=_ce_jax,
    terms=_ce_terms,
    grad_terms=lambda cfg, s_z, t_max: 2.0 * float(np.abs(_w(cfg, 1)).max()),
    draw=_ce_draw,
    per_row=True,
    divisor=_label_divisor,
    exact=_ce_exact,
)


# ---------------------------------------------------------------- NLL and multi-margin


def _nll_jax(cfg: dict[str, Any], x: Any, target: Any) -> Any:
    C = x.shape[1]
    wc = jnp.ones(C, x.dtype) if cfg.get("weight") is None else jnp.asarray(np.asarray(cfg["weight"]), x.dtype)
    valid = target != cfg["ignore_index"]
    y = jnp.where(valid, target, 0)
    picked = jnp.take_along_axis(x, jnp.expand_dims(y, 1), axis=1).squeeze(1)  # x[n, y_n]
    wy = jnp.where(valid, wc[y], 0)
    total = -jnp.sum(wy * picked)
    return total / jnp.sum(wy) if cfg["reduction"] == "mean" else total


def _nll_terms(cfg: dict[str, Any], z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    y, valid = _labels(cfg, target, z.shape[-1])
    return float(np.abs(_w(cfg, z.shape[-1]))[y][valid].sum()) * s_z


def _nll_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """Class weights and ignored labels (60%), else none."""
    y = rng.integers(0, C, N)
    if rng.random() < 0.6:
        config, y = _draw_class_weights(rng, y, C)
        return {"ignore_index": -100, **config}, y
    return {"weight": None, "ignore_index": -100}, y


def _nll_exact(cfg: dict[str, Any], x: Any, target: Any) -> Any:
    """-sum_n w[y_n] x[n, y_n] over the labels not ignored; a mean divides by their sum of w[y]."""
    w, t = _exact_weights(cfg, x.shape[1]), np.asarray(target)
    kept = [n for n in range(x.shape[0]) if t[n] != cfg["ignore_index"]]
    divisor = sum((w[int(t[n])] for n in kept), ex.mpf(0))
    return _exact_reduce(cfg, [-x[n, int(t[n])] * w[int(t[n])] for n in kept], divisor)


NLL = LossKind(
    "nll",
    torch_loss=lambda cfg, z, t: F.nll_loss(
        z, t, weight=_torch_weight(cfg, z), ignore_index=cfg["ignore_index"], reduction=cfg["reduction"]
    ),
    jax_loss=_nll_jax,
    terms=_nll_terms,
    grad_terms=lambda cfg, s_z, t_max: float(np.abs(_w(cfg, 1)).max()),
    draw=_nll_draw,
    per_row=True,
    divisor=_label_divisor,
    exact=_nll_exact,
)


def _hinge(cfg: dict[str, Any], x: np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """(u = margin - x[n, y] + x[n, i] (N, C), the mask of the counted terms i != y)."""
    y = np.asarray(target)
    rows = np.arange(x.shape[0])
    u = cfg["margin"] - x[rows, y][:, None] + x
    counted = np.ones(x.shape, bool)
    counted[rows, y] = False
    return u, counted


def _mm_jax(cfg: dict[str, Any], x: Any, target: Any) -> Any:
    C = x.shape[1]
    wc = jnp.ones(C, x.dtype) if cfg.get("weight") is None else jnp.asarray(np.asarray(cfg["weight"]), x.dtype)
    u = cfg["margin"] - jnp.take_along_axis(x, target[:, None], axis=1) + x  # (N, C)
    counted = (u > 0) & (jnp.arange(C)[None, :] != target[:, None])  # torch's u > 0: derivative 0 at u = 0
    h = jnp.where(counted, u if cfg["p"] == 1 else u * u, 0)
    return _reduce(cfg, jnp.sum(h, axis=1) * wc[target] / C)


def _mm_terms(cfg: dict[str, Any], z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    u = abs(cfg["margin"]) + 2 * amax(z)
    per_row = 2 * s_z + u if cfg["p"] == 1 else 2 * (4 * s_z + u) * u
    return float(np.abs(_w(cfg, z.shape[-1]))[np.asarray(target)].sum()) * per_row


def _mm_grad_terms(cfg: dict[str, Any], s_z: float, t_max: float) -> float:
    w = float(np.abs(_w(cfg, 1)).max())
    return w if cfg["p"] == 1 else 2 * w * (abs(cfg["margin"]) + 4 * s_z)


def _mm_hazard(cfg: dict[str, Any], z: np.ndarray, target: Any, m: np.ndarray, tol: float) -> bool:
    """A counted hinge argument u within tol of 0, relative to its terms |margin| + m[y] + m[i]."""
    u, counted = _hinge(cfg, np.asarray(z, np.float64), target)
    rows = np.arange(z.shape[0])
    terms = abs(cfg["margin"]) + np.asarray(m, np.float64)[rows, np.asarray(target)][:, None] + np.asarray(m)
    return bool(np.any(counted & (np.abs(u) <= tol * terms)))


def _mm_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """p 1 or 2, a margin of 0.5, 1 or 2, class weights (40%)."""
    config = {
        "p": int(rng.integers(1, 3)),
        "margin": float(rng.choice([0.5, 1.0, 2.0])),
        "weight": rng.uniform(0.2, 2.0, C) if rng.random() < 0.4 else None,
    }
    return config, rng.integers(0, C, N)


def _mm_exact(cfg: dict[str, Any], x: Any, target: Any) -> Any:
    """sum_{i != y} max(0, u_i)^p w[y] / C per row, u_i = margin - x[y] + x[i]; derivative 0 at u = 0."""
    N, C = x.shape
    w, t, margin = _exact_weights(cfg, C), np.asarray(target), ex.mpf(cfg["margin"])
    per = []
    for n in range(N):
        y = int(t[n])
        for i in range(C):
            u = x[n, i] - x[n, y] + margin
            if i != y and u > 0:
                per.append((u if cfg["p"] == 1 else u * u) * (w[y] / C))
    return _exact_reduce(cfg, per, N)


MULTI_MARGIN = LossKind(
    "multi_margin",
    torch_loss=lambda cfg, z, t: F.multi_margin_loss(
        z, t, p=cfg["p"], margin=cfg["margin"], weight=_torch_weight(cfg, z), reduction=cfg["reduction"]
    ),
    jax_loss=_mm_jax,
    terms=_mm_terms,
    grad_terms=_mm_grad_terms,
    draw=_mm_draw,
    per_row=True,
    hazard=_mm_hazard,
    exact=_mm_exact,
)


# ---------------------------------------------------------------- elementwise: MSE, BCE, L1, Huber, smooth L1


def _d(z: np.ndarray, target: Any) -> float:
    return amax(z) + (amax(target) if _floats(target) else 1.0)


def _mse_terms(cfg: dict[str, Any], z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    d = _d(z, target)
    return n * (2 * s_z + d) * d


def _bce_terms(cfg: dict[str, Any], z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    return n * (s_z + (1 + (amax(target) if _floats(target) else 1.0)) * amax(z) + 1)


def _bce_draw(rng: np.random.Generator, labels: str, dtype: str, N: int, C: int) -> tuple[dict[str, Any], Any]:
    """Soft targets in [0, 1) (60%) or hard 0/1 targets."""
    t = rng.random((N, C)) if rng.random() < 0.6 else rng.integers(0, 2, (N, C)).astype(float)
    return {}, t.astype(dtype)


def _normal_target(config: dict[str, Any]) -> Any:
    """A draw of ``config`` and a standard normal target (N, C)."""
    return lambda rng, labels, dtype, N, C: (
        config if not callable(config) else config(rng),
        rng.standard_normal((N, C)).astype(dtype),
    )


def _near_target(z: np.ndarray, target: Any, m: np.ndarray, tol: float) -> bool:
    """z within tol of the target, relative to the terms m + |t| of z - t (L1's kink)."""
    t = np.asarray(target, np.float64)
    return bool(np.any(np.abs(np.asarray(z, np.float64) - t) <= tol * (np.asarray(m, np.float64) + np.abs(t))))


def _pointwise_exact(f: Any) -> Any:
    """An elementwise loss f(z, t) on every entry, summed or averaged over the entries."""

    def exact(cfg: dict[str, Any], z: Any, target: Any) -> Any:
        t = np.asarray(target)
        per = [f(cfg, z[idx], ex.mpf(t[idx])) for idx in np.ndindex(*z.shape)]
        return _exact_reduce(cfg, per, z.size)

    return exact


def _huber_exact(cfg: dict[str, Any], z: Any, t: Any) -> Any:
    r, delta = z - t, ex.mpf(cfg["delta"])
    a = ex.absolute(r)
    return r * r / 2 if a < delta else (a - delta / 2) * delta


def _smooth_l1_exact(cfg: dict[str, Any], z: Any, t: Any) -> Any:
    r, beta = z - t, ex.mpf(cfg["beta"])
    a = ex.absolute(r)
    return r * r / (2 * beta) if a < beta else a - beta / 2


MSE = LossKind(
    "mse",
    torch_loss=lambda cfg, z, t: F.mse_loss(z, t, reduction=cfg["reduction"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, optax.losses.squared_error(z, t)),
    terms=_mse_terms,
    grad_terms=lambda cfg, s_z, t_max: 2 * (s_z + t_max),
    draw=_normal_target({}),
    exact=_pointwise_exact(lambda cfg, z, t: (z - t) * (z - t)),
)

BCE_WITH_LOGITS = LossKind(
    "bce_with_logits",
    torch_loss=lambda cfg, z, t: F.binary_cross_entropy_with_logits(z, t, reduction=cfg["reduction"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, optax.losses.sigmoid_binary_cross_entropy(z, t)),
    terms=_bce_terms,
    grad_terms=lambda cfg, s_z, t_max: 2.0,
    draw=_bce_draw,
    exact=_pointwise_exact(lambda cfg, z, t: ex.log1p(ex.exp(z)) - z * t),  # log(1 + e^z) - z t
)

L1 = LossKind(
    "l1",
    torch_loss=lambda cfg, z, t: F.l1_loss(z, t, reduction=cfg["reduction"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, jnp.abs(z - t)),  # jnp.abs' derivative at 0 is sign(0) = 0
    terms=lambda cfg, z, t, s_z, rows, n: n * (s_z + _d(z, t)),
    grad_terms=lambda cfg, s_z, t_max: 1.0,
    draw=_normal_target({}),
    hazard=lambda cfg, z, t, m, tol: _near_target(z, t, m, tol),
    exact=_pointwise_exact(lambda cfg, z, t: ex.absolute(z - t)),  # derivative sign(0) = 0 at the kink
)

HUBER = LossKind(
    "huber",
    torch_loss=lambda cfg, z, t: F.huber_loss(z, t, reduction=cfg["reduction"], delta=cfg["delta"]),
    jax_loss=lambda cfg, z, t: _reduce(cfg, optax.losses.huber_loss(z, t, delta=cfg["delta"])),
    terms=lambda cfg, z, t, s_z, rows, n: n * cfg["delta"] * (s_z + _d(z, t)),
    grad_terms=lambda cfg, s_z, t_max: s_z + t_max,
    draw=_normal_target(lambda rng: {"delta": float(rng.choice([0.5, 1.0, 2.0]))}),
    exact=_pointwise_exact(_huber_exact),
)


def _smooth_l1_jax(cfg: dict[str, Any], z: Any, t: Any) -> Any:
    beta = cfg["beta"]
    per = jnp.abs(z - t) if beta == 0 else optax.losses.huber_loss(z, t, delta=beta) / beta
    return _reduce(cfg, per)


SMOOTH_L1 = LossKind(
    "smooth_l1",
    torch_loss=lambda cfg, z, t: F.smooth_l1_loss(z, t, reduction=cfg["reduction"], beta=cfg["beta"]),
    jax_loss=_smooth_l1_jax,
    terms=lambda cfg, z, t, s_z, rows, n: n * (s_z + _d(z, t)),
    grad_terms=lambda cfg, s_z, t_max: (s_z + t_max) / cfg["beta"] if cfg["beta"] else 1.0,
    draw=_normal_target(lambda rng: {"beta": float(rng.choice([0.0, 0.5, 1.0]))}),
    hazard=lambda cfg, z, t, m, tol: cfg["beta"] == 0 and _near_target(z, t, m, tol),
    exact=_pointwise_exact(_smooth_l1_exact),
)

KINDS = [CROSS_ENTROPY, NLL, MULTI_MARGIN, MSE, BCE_WITH_LOGITS, L1, HUBER, SMOOTH_L1]
