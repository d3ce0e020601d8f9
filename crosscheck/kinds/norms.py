"""LayerNorm (last axis) and BatchNorm1d (over the batch; running statistics).

Tolerance: xhat = (x - mean) rstd is formed from terms of size A = (max(|x|, S(x)) + |mean|) rstd, per
row (LayerNorm) or feature (BatchNorm); S(out) = |gamma| A + |beta|; the backward is first order in
the three terms of dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)). See docs/tolerance.md.

Its length (just over 400 lines): six norms share the statistics and term rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import jax, jnp, nn
from crosscheck.kinds.entry import Image, Kind, amax
from crosscheck.kinds.layouts import copy_into, grad
from crosscheck.spec import LayerSpec

BUFFERS = ("running_mean", "running_var")


def _axis(kind: str) -> int:
    return -1 if kind == "layer_norm" else 0


def _statistics(layer: LayerSpec, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, var) the forward normalises with: per row or per feature, or BatchNorm's running ones in eval."""
    if layer.kind == "batch_norm" and not layer.training:
        return layer.buffers["running_mean"].astype(np.float64), layer.buffers["running_var"].astype(np.float64)
    keep = layer.kind == "layer_norm"
    return h.mean(axis=_axis(layer.kind), keepdims=keep), h.var(axis=_axis(layer.kind), keepdims=keep)


def _norm_terms(h: np.ndarray, layer: LayerSpec, s_x: float) -> tuple[np.ndarray, np.ndarray]:
    """(rstd, A), A = (max(|x|, S(x)) + |mean|) rstd: x arrives with rounding eps S(x), and the subtraction
    and rstd amplify it to eps A."""
    mu, var = _statistics(layer, h)
    rstd = 1 / np.sqrt(var + layer.config["eps"])
    big = np.abs(h).max(axis=_axis(layer.kind), keepdims=layer.kind == "layer_norm")
    return rstd, (np.maximum(big, s_x) + np.abs(mu)) * rstd


def _gain(layer: LayerSpec, name: str) -> float:
    p = layer.params.get(name)
    return amax(p) if p is not None else (1.0 if name == "gamma" else 0.0)


def _fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    _, A = _norm_terms(h, layer, s_in)
    if layer.kind == "batch_norm":  # running = (1 - m) running + m batch: terms |running|, |x|, x^2
        n = h.shape[0]
        for b, batch in (("running_mean", s_in), ("running_var", s_in * s_in * 4 * n / max(n - 1, 1))):
            w.store(layer, b, amax(layer.buffers[b]) + batch)
    return _gain(layer, "gamma") * float(A.max(initial=0.0)) + _gain(layer, "beta")


def _bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)), dxhat = dout gamma; eval: dout gamma rstd."""
    rows = int(np.prod(h_in.shape[:-1]))
    rstd, A = _norm_terms(h_in, layer, s_x)
    if "gamma" in layer.params:
        w.store(layer, "dgamma", rows * g * float(A.max(initial=0.0)))
        w.store(layer, "dbeta", rows * g)
    terms = g * rstd
    if layer.kind == "layer_norm" or layer.training:  # first order in the three terms
        axis = _axis(layer.kind)
        xc = np.abs(h_in - h_in.mean(axis=axis, keepdims=True))
        X = xc.max(axis=axis, keepdims=layer.kind == "layer_norm") * rstd  # max |xhat|
        a = w.dout(layer, g)  # max |dout|
        terms = rstd * (g * (2 + X) + a * A * (3 + 2 * X))
    return _gain(layer, "gamma") * float(terms.max(initial=0.0))


def _terms(layer: Any, h: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """|gamma| (max(m, |x|) + |mean|) rstd + |beta|. A column constant up to rounding comes out as amplified
    rounding noise: this flags it. Over a single feature a LayerNorm gives x - mean = 0 exactly, so its
    output is exactly beta: no rounding, m = 0."""
    axis = _axis(layer.kind)
    if layer.kind == "layer_norm" and h.shape[-1] == 1:
        return np.zeros(h.shape)
    if layer.kind == "batch_norm" and not layer.training:
        mu, var = layer.buffers["running_mean"], layer.buffers["running_var"]
    else:
        mu, var = h.mean(axis=axis, keepdims=True), h.var(axis=axis, keepdims=True)
    big = np.maximum(np.abs(h), m).max(axis=axis, keepdims=True)
    A = (big + np.abs(mu)) / np.sqrt(var + layer.eps)
    gamma, beta = layer.params.get("gamma", 1.0), layer.params.get("beta", 0.0)
    return np.broadcast_to(A * np.abs(gamma) + np.abs(beta), h.shape).astype(np.float64)


def _torch(layer: LayerSpec, dtype: Any) -> Any:
    """nn.LayerNorm / nn.BatchNorm1d with gamma -> weight, beta -> bias and the running statistics."""
    cfg = layer.config
    if layer.kind == "layer_norm":
        m = nn.LayerNorm(
            cfg["normalized_shape"], eps=cfg["eps"], elementwise_affine=cfg["elementwise_affine"], dtype=dtype
        )
    else:
        m = nn.BatchNorm1d(
            cfg["num_features"], eps=cfg["eps"], momentum=cfg["momentum"], affine=cfg["affine"], dtype=dtype
        )
        for b in BUFFERS:
            copy_into(getattr(m, b), layer.buffers[b])
    if "gamma" in layer.params:
        copy_into(m.weight, layer.params["gamma"])
        copy_into(m.bias, layer.params["beta"])
    return m.train(layer.training)


def _torch_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    return {"dgamma": grad(m.weight), "dbeta": grad(m.bias)} if "gamma" in layer.params else {}


def _affine(xhat: Any, params: dict[str, Any]) -> Any:
    return xhat * params["gamma"] + params["beta"] if "gamma" in params else xhat


def _layer_norm_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's LayerNorm: biased variance over the last axis (``jnp.var``)."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    return _affine((x - mu) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + layer.config["eps"]), p)


def _batch_norm_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's BatchNorm1d: the biased batch variance normalises; the running estimate takes the unbiased one
    (``jnp.var(ddof=1)``) with ``running = (1 - momentum) running + momentum batch``."""
    c, stats = layer.config, net.buffers[layer.name]
    rm, rv = stats["running_mean"], stats["running_var"]
    if not layer.training:
        return _affine((x - rm) / jnp.sqrt(rv + c["eps"]), p)
    mu, var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
    m = c["momentum"]
    net.buffers[layer.name] = {
        "running_mean": (1 - m) * rm + m * mu,
        "running_var": (1 - m) * rv + m * jnp.var(x, axis=0, ddof=1),
    }
    return _affine((x - mu) / jnp.sqrt(var + c["eps"]), p)


def _normalise_exact(x: Any, mu: Any, var: Any, eps: float, p: dict[str, Any]) -> Any:
    """(x - mu) / sqrt(var + eps), then gamma and beta when affine (mu, var broadcast against x)."""
    xhat = (x - mu) / ex.elementwise(var + ex.mpf(eps), ex.sqrt)
    return xhat * p["gamma"] + p["beta"] if "gamma" in p else xhat


def _layer_norm_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """Mean and biased variance over the last axis, exactly."""
    n = x.shape[-1]
    mu = ex.sum_axis(x, -1, keepdims=True) / n
    d = x - mu
    return _normalise_exact(x, mu, ex.sum_axis(d * d, -1, keepdims=True) / n, layer.config["eps"], p)


def _batch_norm_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """The batch's mean and biased variance normalise (training); the running estimates move by momentum
    towards the mean and the unbiased variance; evaluation normalises by the running estimates."""
    c, stats = layer.config, net.buffers[layer.name]
    if not layer.training:
        return _normalise_exact(x, stats["running_mean"], stats["running_var"], c["eps"], p)
    n = x.shape[0]
    mu = ex.sum_axis(x, 0) / n
    d = x - mu
    ss = ex.sum_axis(d * d, 0)
    m = ex.mpf(c["momentum"])
    net.buffers[layer.name] = {
        "running_mean": (1 - m) * stats["running_mean"] + m * mu,
        "running_var": (1 - m) * stats["running_var"] + m * (ss / (n - 1)),
    }
    return _normalise_exact(x, mu, ss / n, c["eps"], p)


def _lengths(key: str) -> Any:
    def lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
        return [layer.config[key]], image

    return lengths


def _describe(layer: Any) -> str:
    return f"{type(layer).__name__}(affine={'gamma' in layer.params})"


KINDS = [
    Kind(
        "layer_norm",
        torch_module=_torch,
        torch_grads=_torch_grads,
        jax_apply=_layer_norm_jax,
        scale_fwd=_fwd,
        scale_bwd=_bwd,
        terms=_terms,
        lengths=_lengths("normalized_shape"),
        describe=_describe,
        exact=_layer_norm_exact,
    ),
    Kind(
        "batch_norm",
        torch_module=_torch,
        torch_grads=_torch_grads,
        jax_apply=_batch_norm_jax,
        scale_fwd=_fwd,
        scale_bwd=_bwd,
        terms=_terms,
        lengths=_lengths("num_features"),
        describe=_describe,
        buffers=BUFFERS,
        exact=_batch_norm_exact,
    ),
]


# ---------------------------------------------------------------- RMSNorm and the image norms
# Each normalises rows of a view of its input (``_rows``): RMSNorm the last axis (no mean: mu = 0, the mean
# square in place of the variance), GroupNorm each sample's group (N G, C / G L), InstanceNorm2d each
# (sample, channel) (N C, H W), BatchNorm2d each channel (C, N H W); evaluation with running statistics
# (BatchNorm2d, InstanceNorm2d with track_running_stats) normalises the channel rows by them. The LayerNorm
# rules above apply to the rows, with max |gamma| and max |beta| over the channels (docs/tolerance.md).

IMAGE_NORMS = ("batch_norm2d", "group_norm", "instance_norm2d")


def _running_mode(layer: Any) -> bool:
    """True when the layer normalises with its running statistics (evaluation with them)."""
    return layer.kind in IMAGE_NORMS and not layer.training and "running_mean" in layer.buffers


def _rows(layer: Any, h: np.ndarray) -> np.ndarray:
    """h as (rows, M), one normalised group per row: the channel rows (C, N H W) for BatchNorm2d and for
    evaluation with running statistics."""
    if layer.kind == "rms_norm":
        return h.reshape(-1, h.shape[-1])
    if layer.kind == "batch_norm2d" or _running_mode(layer):
        return h.swapaxes(0, 1).reshape(h.shape[1], -1)
    groups = _config(layer)["num_groups"] if layer.kind == "group_norm" else h.shape[1]
    return h.reshape(h.shape[0] * groups, -1)


def _unrows(layer: Any, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-row (rows, 1) array broadcast back to the input's shape."""
    if layer.kind != "rms_norm" and (layer.kind == "batch_norm2d" or _running_mode(layer)):
        C, N = shape[1], shape[0]
        full = np.broadcast_to(a, (C, int(np.prod(shape)) // C)).reshape(C, N, *shape[2:])
        return full.swapaxes(0, 1)
    return np.broadcast_to(a, (a.shape[0], int(np.prod(shape)) // a.shape[0])).reshape(shape)


def _row_stats(layer: Any, h: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, mu, rstd) per row, (rows, 1) each: mu = 0 and the mean square for RMSNorm; the running statistics
    in running mode."""
    rows = _rows(layer, h)
    if _running_mode(layer):
        mu = np.asarray(layer.buffers["running_mean"], np.float64)[:, None]
        var = np.asarray(layer.buffers["running_var"], np.float64)[:, None]
    elif layer.kind == "rms_norm":
        mu, var = np.zeros((rows.shape[0], 1)), (rows * rows).mean(axis=1, keepdims=True)
    else:
        mu, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
    return rows, mu, 1 / np.sqrt(var + eps)


def _config(layer: Any) -> dict[str, Any]:
    """The hyperparameters of a spec (``config``) or of a manual_bp layer (``config()``)."""
    return layer.config if isinstance(layer, LayerSpec) else layer.config()


def _eps(layer: Any, h: np.ndarray) -> float:
    eps = _config(layer)["eps"]
    return float(np.finfo(np.float64).eps if eps is None else eps)  # RMSNorm's None (the dtype's eps): >= eps64


def _row_terms(layer: Any, h: np.ndarray, s_x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rstd, A, X) per row. Mean-subtracting norms: A = (max(|x|, S(x)) + |mu|) rstd, as LayerNorm. RMSNorm:
    A = rstd (max|x| + S(x) (1 + X)), X = max |xhat|: x's rounding eps S(x) moves xhat_i by at most
    eps S(x) rstd (1 + |xhat_i|) (its own term and the path through the mean square)."""
    rows, mu, rstd = _row_stats(layer, h, _eps(layer, h))
    s = np.maximum(_rows(layer, np.broadcast_to(s_x, h.shape)).max(axis=1, keepdims=True), 0.0)
    big = np.abs(rows).max(axis=1, keepdims=True)
    X = np.abs(rows - mu).max(axis=1, keepdims=True) * rstd
    if layer.kind == "rms_norm":
        return rstd, rstd * (big + s * (1 + X)), X
    return rstd, (np.maximum(big, s) + np.abs(mu)) * rstd, X


def _rows_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    _, A, _ = _row_terms(layer, h, s_in)
    if "running_mean" in layer.buffers and layer.training:  # running = (1 - m) running + m batch
        n = h.size // h.shape[1] if layer.kind == "batch_norm2d" else h.size // (h.shape[0] * h.shape[1])
        for b, batch in (("running_mean", s_in), ("running_var", s_in * s_in * 4 * n / max(n - 1, 1))):
            w.store(layer, b, amax(layer.buffers[b]) + batch)
    return _gain(layer, "gamma") * float(A.max(initial=0.0)) + _gain(layer, "beta")


def _rows_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """The LayerNorm rule on the rows: dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)) (RMSNorm: without
    the mean dxhat term); running mode: dout gamma rstd. dgamma, dbeta: sums over h.size / C entries."""
    rstd, A, X = _row_terms(layer, h_in, s_x)
    summed = h_in.size // h_in.shape[-1] if layer.kind == "rms_norm" else h_in.size // h_in.shape[1]
    if "gamma" in layer.params:
        w.store(layer, "dgamma", summed * g * float(A.max(initial=0.0)))
    if "beta" in layer.params:
        w.store(layer, "dbeta", summed * g)
    terms = g * rstd
    if not _running_mode(layer):
        a = w.dout(layer, g)  # max |dout|
        terms = rstd * (g * (2 + X) + a * A * (3 + 2 * X))
    return _gain(layer, "gamma") * float(terms.max(initial=0.0))


def _rows_case_terms(layer: Any, h: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """|gamma| A + |beta| per row (max |gamma|, max |beta| over the channels), m in place of S(x); a row of one
    value normalises to exactly 0 (x - mean), its output exactly beta: m = 0."""
    rows = _rows(layer, h)
    if rows.shape[1] == 1 and layer.kind != "rms_norm" and not _running_mode(layer):
        return np.zeros(h.shape)
    _, A, _ = _row_terms(layer, h, m)
    gamma, beta = layer.params.get("gamma"), layer.params.get("beta")
    A = A * (amax(gamma) if gamma is not None else 1.0) + (amax(beta) if beta is not None else 0.0)
    return np.array(_unrows(layer, A, h.shape), dtype=np.float64)


def _image_norm_torch(layer: LayerSpec, dtype: Any) -> Any:
    """nn.RMSNorm / BatchNorm2d / GroupNorm / InstanceNorm2d with gamma -> weight, beta -> bias, running statistics."""
    c = layer.config
    if layer.kind == "rms_norm":
        m = nn.RMSNorm(c["normalized_shape"], eps=c["eps"], elementwise_affine=c["elementwise_affine"], dtype=dtype)
    elif layer.kind == "group_norm":
        m = nn.GroupNorm(c["num_groups"], c["num_channels"], eps=c["eps"], affine=c["affine"], dtype=dtype)
    else:
        cls = nn.BatchNorm2d if layer.kind == "batch_norm2d" else nn.InstanceNorm2d
        m = cls(
            c["num_features"],
            eps=c["eps"],
            momentum=c["momentum"],
            affine=c["affine"],
            track_running_stats=c["track_running_stats"],
            dtype=dtype,
        )
        for b in layer.buffers:
            copy_into(getattr(m, b), layer.buffers[b])
    if "gamma" in layer.params:
        copy_into(m.weight, layer.params["gamma"])
    if "beta" in layer.params:
        copy_into(m.bias, layer.params["beta"])
    return m.train(layer.training)


def _image_norm_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    got = {"dgamma": grad(m.weight)} if "gamma" in layer.params else {}
    return {**got, "dbeta": grad(m.bias)} if "beta" in layer.params else got


def _channel(p: Any, name: str, ndim: int) -> Any:
    return p[name].reshape(-1, *(1,) * (ndim - 2)) if name in p else None


def _channel_affine(xhat: Any, p: dict[str, Any]) -> Any:
    """xhat * gamma[c] + beta[c] over (N, C, *)."""
    if "gamma" not in p:
        return xhat
    return xhat * _channel(p, "gamma", xhat.ndim) + _channel(p, "beta", xhat.ndim)


def _rms_norm_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch.rms_norm: x * rsqrt(mean(x^2) + eps) * gamma; eps None is the dtype's machine epsilon."""
    eps = layer.config["eps"]
    eps = float(jnp.finfo(x.dtype).eps) if eps is None else eps
    xhat = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)
    return xhat * p["gamma"] if "gamma" in p else xhat


def _group_norm_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's GroupNorm: mean and biased variance of each (sample, group) over (C / G, *), per-channel affine."""
    xg = x.reshape(x.shape[0], layer.config["num_groups"], -1)
    mu, var = jnp.mean(xg, axis=-1, keepdims=True), jnp.var(xg, axis=-1, keepdims=True)
    return _channel_affine(((xg - mu) / jnp.sqrt(var + layer.config["eps"])).reshape(x.shape), p)


def _batch_norm2d_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's BatchNorm2d: per channel over (N, H, W), biased variance normalises; the running variance takes the
    unbiased one (``ddof=1``); without running statistics the batch's own normalise in both modes."""
    c, axes = layer.config, (0, 2, 3)
    stats = net.buffers.get(layer.name)
    if stats is not None and not layer.training:
        rm, rv = (stats[k].reshape(1, -1, 1, 1) for k in BUFFERS)
        return _channel_affine((x - rm) / jnp.sqrt(rv + c["eps"]), p)
    mu, var = jnp.mean(x, axis=axes, keepdims=True), jnp.var(x, axis=axes, keepdims=True)
    if stats is not None:
        m = c["momentum"]
        net.buffers[layer.name] = {
            "running_mean": (1 - m) * stats["running_mean"] + m * jnp.mean(x, axis=axes),
            "running_var": (1 - m) * stats["running_var"] + m * jnp.var(x, axis=axes, ddof=1),
        }
    return _channel_affine((x - mu) / jnp.sqrt(var + c["eps"]), p)


def _instance_norm2d_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's InstanceNorm2d: per (sample, channel) over (H, W); running statistics (when tracked) move by the
    batch mean of the per-instance mean and unbiased variance and normalise in evaluation."""
    c, axes = layer.config, (2, 3)
    stats = net.buffers.get(layer.name)
    if stats is not None and not layer.training:
        rm, rv = (stats[k].reshape(1, -1, 1, 1) for k in BUFFERS)
        return _channel_affine((x - rm) / jnp.sqrt(rv + c["eps"]), p)
    mu, var = jnp.mean(x, axis=axes, keepdims=True), jnp.var(x, axis=axes, keepdims=True)
    if stats is not None:
        m = c["momentum"]
        net.buffers[layer.name] = {
            "running_mean": (1 - m) * stats["running_mean"] + m * jnp.mean(x, axis=axes).mean(axis=0),
            "running_var": (1 - m) * stats["running_var"] + m * jnp.var(x, axis=axes, ddof=1).mean(axis=0),
        }
    return _channel_affine((x - mu) / jnp.sqrt(var + c["eps"]), p)


def _image_norm_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    """The normalised group's length and the sums into dgamma, dbeta and a batch statistic: h.size / C."""
    if layer.kind == "rms_norm" or image is None:
        return [layer.config.get("normalized_shape", 1)], image
    N, C, *spatial = image
    L = int(np.prod(spatial))
    group = {"batch_norm2d": N * L, "group_norm": C // layer.config.get("num_groups", C) * L, "instance_norm2d": L}[
        layer.kind
    ]
    return [group, N * L], image


def _image_norm_describe(layer: Any) -> str:
    extra = f"G={layer.num_groups}, " if layer.kind == "group_norm" else ""
    running = ", running" if "running_mean" in layer.buffers else ""
    return f"{type(layer).__name__}({extra}affine={'gamma' in layer.params}{running})"


def _rms_norm_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """x / sqrt(mean(x^2) + eps) * gamma over the last axis; eps None is the dtype's machine epsilon."""
    eps = layer.config["eps"]
    eps = float(np.finfo(layer.config["dtype"]).eps) if eps is None else eps
    ms = ex.sum_axis(x * x, -1, keepdims=True) / x.shape[-1]
    xhat = x / ex.elementwise(ms + ex.mpf(eps), ex.sqrt)
    return xhat * p["gamma"] if "gamma" in p else xhat


def _group_norm_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """Mean and biased variance of each (sample, group) over (C / G, *), then the per-channel affine."""
    xg = x.reshape(x.shape[0], layer.config["num_groups"], -1)
    n = xg.shape[-1]
    mu = ex.sum_axis(xg, -1, keepdims=True) / n
    d = xg - mu
    xhat = _normalise_exact(xg, mu, ex.sum_axis(d * d, -1, keepdims=True) / n, layer.config["eps"], {})
    xhat = xhat.reshape(x.shape)
    if "gamma" not in p:
        return xhat
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return xhat * p["gamma"].reshape(shape) + p["beta"].reshape(shape)


def _image_norm(kind: str, jax_apply: Any, exact: Any = None) -> Kind:
    return Kind(
        kind,
        torch_module=_image_norm_torch,
        torch_grads=_image_norm_grads,
        jax_apply=jax_apply,
        scale_fwd=_rows_fwd,
        scale_bwd=_rows_bwd,
        terms=_rows_case_terms,
        lengths=_image_norm_lengths,
        describe=_image_norm_describe,
        buffers=BUFFERS if kind == "batch_norm2d" else (),
        exact=exact,
    )


KINDS += [
    _image_norm("rms_norm", _rms_norm_jax, _rms_norm_exact),
    _image_norm("batch_norm2d", _batch_norm2d_jax),
    _image_norm("group_norm", _group_norm_jax, _group_norm_exact),
    _image_norm("instance_norm2d", _instance_norm2d_jax),
]
