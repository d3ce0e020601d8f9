"""LayerNorm (last axis) and BatchNorm1d (over the batch; running statistics).

Tolerance: xhat = (x - mean) rstd is formed from terms of size A = (max(|x|, S(x)) + |mean|) rstd, per
row (LayerNorm) or feature (BatchNorm); S(out) = |gamma| A + |beta|; the backward is first order in
the three terms of dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)). See docs/tolerance.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import jnp, nn
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
        m = nn.LayerNorm(cfg["normalized_shape"], eps=cfg["eps"], elementwise_affine=cfg["elementwise_affine"],
                         dtype=dtype)
    else:
        m = nn.BatchNorm1d(cfg["num_features"], eps=cfg["eps"], momentum=cfg["momentum"], affine=cfg["affine"],
                           dtype=dtype)
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
    net.buffers[layer.name] = {"running_mean": (1 - m) * rm + m * mu,
                               "running_var": (1 - m) * rv + m * jnp.var(x, axis=0, ddof=1)}
    return _affine((x - mu) / jnp.sqrt(var + c["eps"]), p)


def _lengths(key: str) -> Any:
    def lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
        return [layer.config[key]], image

    return lengths


def _describe(layer: Any) -> str:
    return f"{type(layer).__name__}(affine={'gamma' in layer.params})"


KINDS = [
    Kind("layer_norm", torch_module=_torch, torch_grads=_torch_grads, jax_apply=_layer_norm_jax, scale_fwd=_fwd,
         scale_bwd=_bwd, terms=_terms, lengths=_lengths("normalized_shape"), describe=_describe),
    Kind("batch_norm", torch_module=_torch, torch_grads=_torch_grads, jax_apply=_batch_norm_jax, scale_fwd=_fwd,
         scale_bwd=_bwd, terms=_terms, lengths=_lengths("num_features"), describe=_describe, buffers=BUFFERS),
]
