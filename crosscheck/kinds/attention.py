"""Multi-head self-attention on x (N, T, D): projections Wq, Wk, Wv, Wo (in, out), optional biases,
causal and key-padding masks.

Tolerance: first order through the projections, the scores, the softmax (a convex combination of the
values) and the output projection, forward and backward; see docs/tolerance.md for every line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import jax, jnp, nn, torch
from crosscheck.kinds.activations import NOISE
from crosscheck.kinds.entry import Kind, amax, col_abs_sum, row_abs_sum
from crosscheck.kinds.layouts import (
    copy_into,
    grad,
    in_proj_from_torch,
    in_proj_to_torch,
    weight_from_torch,
    weight_to_torch,
)
from crosscheck.spec import LayerSpec

# ---------------------------------------------------------------- tolerance rules


def _fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    """S_q, S_k, S_v, S(scores), S(A) and S(out) from the input h (N, T, D) and its scale; kept for the
    backward in ``w.state``."""
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    N, T, D = h.shape
    heads = layer.config["num_heads"]
    h2 = h.reshape(-1, D)  # (NT, D)
    s, size = {}, {}
    for n in "qkv":
        W, b = p[f"W{n}"], p.get(f"b{n}", np.zeros(D))
        s[n] = max(float((np.abs(h2) @ np.abs(W)).max(initial=0.0)) + amax(b), s_in * col_abs_sum(W))
        size[n] = np.abs(h2 @ W + b).reshape(N, T, heads, D // heads)  # |q|, |k|, |v| per head
    s |= {f"{n}_max": float(size[n].max()) for n in "qkv"}
    s |= {f"{n}_row": float(size[n].sum(axis=-1).max()) for n in "qkv"}  # max_t sum_c |q_tc| within a head
    terms = float(np.einsum("nthc,nshc->nhts", size["q"], size["k"]).max())  # max_ts sum_c |q_tc| |k_sc|
    s["scale"] = 1 / np.sqrt(D // heads)
    s["scores"] = s["scale"] * (terms + s["q"] * s["k_row"] + s["k"] * s["q_row"])
    s["A"] = s["v_max"] * (1 + 2 * s["scores"]) + s["v"]
    s["out"] = s["A"] * col_abs_sum(p["Wo"]) + amax(p.get("bo", 0.0))
    w.state[layer.name] = s
    return s["out"]


def _bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """G of the parameter gradients (stored) and of dx (returned)."""
    s = w.state[layer.name]
    rows, T = int(np.prod(h_in.shape[:-1])), h_in.shape[1]
    d = layer.params["Wq"].shape[0] // layer.config["num_heads"]
    a = w.dout(layer, g)  # max |dout|
    g_A, a_A = g * row_abs_sum(layer.params["Wo"]), a * row_abs_sum(layer.params["Wo"])  # dA (= dO)
    a_P = a_A * s["v_row"]  # max |dP|
    g_S = s["scale"] * (2 * (g_A * s["v_row"] + a_A * d * s["v"]) + 4 * s["scores"] * a_P)  # a row of dS
    a_S = 2 * s["scale"] * a_P  # the size of a row of dS
    G = {
        "o": g,
        "v": T * (g_A + 2 * s["scores"] * a_A),
        "q": g_S * s["k_max"] + a_S * s["k"],
        "k": T * (g_S * s["q_max"] + a_S * s["q"]),
    }
    size = {"o": a, "v": T * a_A, "q": a_S * s["k_max"], "k": T * a_S * s["q_max"]}  # max |dout|, |dV|, |dQ|, |dK|
    for n, g_n in G.items():
        x_S, x_size = (s["A"], s["v_max"]) if n == "o" else (s_x, amax(h_in))  # the product's input
        w.store(layer, f"dW{n}", rows * (x_S * size[n] + x_size * g_n))
        if layer.config["bias"]:
            w.store(layer, f"db{n}", rows * g_n)
    return sum(G[n] * row_abs_sum(layer.params[f"W{n}"]) for n in "qkv")


def _terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """The value path: v's terms by the Linear rule, a softmax row mixes them (a convex combination, at most
    the largest of the sample's), then the output projection's terms."""
    noise = np.abs(x) < NOISE * eps * m
    p = {k: np.abs(np.asarray(v, np.float64)) for k, v in layer.params.items()}
    v = np.where(noise, m, np.abs(x)) @ p["Wv"] + p.get("bv", 0.0)  # (N, T, D)
    mixed = np.broadcast_to(v.max(axis=1, keepdims=True), v.shape)
    return mixed @ p["Wo"] + p.get("bo", 0.0)


# ---------------------------------------------------------------- references


def _torch(layer: LayerSpec, dtype: Any) -> Any:
    """``nn.MultiheadAttention(batch_first=True)`` holding the spec's Wq, Wk, Wv, Wo (and biases). Training
    mode always: manual_bp's attention has no dropout, and torch's eval-mode fast path is a different kernel
    (with NaN, not zeros, for a query without a visible key)."""
    cfg, p = layer.config, layer.params
    m = nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], bias=cfg["bias"], batch_first=True, dtype=dtype)
    copy_into(m.in_proj_weight, in_proj_to_torch(p["Wq"], p["Wk"], p["Wv"]))
    copy_into(m.out_proj.weight, weight_to_torch(p["Wo"]))
    if cfg["bias"]:
        copy_into(m.in_proj_bias, np.concatenate([p["bq"], p["bk"], p["bv"]]))
        copy_into(m.out_proj.bias, p["bo"])
    return m.train()


def _torch_apply(layer: LayerSpec, m: Any, h: Any, apply: Any) -> Any:
    """``m(h, h, h)`` with torch's mask conventions: ``key_padding_mask`` (N, T) True = padded key (the
    spec's), ``attn_mask`` (T, T) True = not allowed, the strict upper triangle for causal attention.
    ``need_weights=False`` takes ``F.scaled_dot_product_attention``."""
    T = h.shape[1]
    kpm = layer.fixed.get("key_padding_mask")
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if layer.config["causal"] else None
    out, _ = m(
        h, h, h, key_padding_mask=None if kpm is None else torch.from_numpy(kpm), attn_mask=causal, need_weights=False
    )
    return out


def _torch_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    got = {**in_proj_from_torch(m.in_proj_weight.grad), "dWo": weight_from_torch(m.out_proj.weight.grad)}
    if layer.config["bias"]:
        dbq, dbk, dbv = grad(m.in_proj_bias).reshape(3, -1)
        got.update(dbq=dbq, dbk=dbk, dbv=dbv, dbo=grad(m.out_proj.bias))
    return got


def _jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """Multi-head self-attention on x (N, T, D), weights (in, out).

    float32: ``jax.nn.dot_product_attention`` (layout (N, T, heads, d); ``mask`` True = the key takes
    part). float64: it cannot serve, since it always computes the softmax in float32 (measured: 1e-7
    off in float64), so the same steps are written with ``jnp.einsum`` at HIGHEST precision and
    ``jax.nn.softmax(where=mask)``. The mask: key ``s`` is visible to query ``t`` unless the spec's
    ``key_padding_mask`` marks it (True = padded) or, with ``causal``, s > t.
    """
    cfg, highest = layer.config, jax.lax.Precision.HIGHEST
    N, T, D = x.shape
    h = cfg["num_heads"]
    d = D // h

    def proj(name: str) -> Any:
        y = jnp.matmul(x, p[f"W{name}"], precision=highest)
        return y + p[f"b{name}"] if cfg["bias"] else y

    q, k, v = (proj(n).reshape(N, T, h, d) for n in "qkv")
    visible = jnp.ones((N, 1, T, T), dtype=bool)
    if "key_padding_mask" in layer.fixed:
        visible = visible & ~jnp.asarray(layer.fixed["key_padding_mask"])[:, None, None, :]
    if cfg["causal"]:
        visible = visible & jnp.tril(jnp.ones((T, T), dtype=bool))
    scale = 1.0 / float(np.sqrt(d))
    if x.dtype == jnp.float32:
        o = jax.nn.dot_product_attention(q, k, v, mask=visible, scale=scale)  # (N, T, h, d)
    else:
        s = jnp.einsum("nthd,nshd->nhts", q, k, precision=highest) * scale  # (N, h, T, T)
        o = jnp.einsum("nhts,nshd->nthd", jax.nn.softmax(s, axis=-1, where=visible), v, precision=highest)
    out = jnp.matmul(o.reshape(N, T, D), p["Wo"], precision=highest)
    return out + p["bo"] if cfg["bias"] else out


def _exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """The same steps on exact scalars: per (sample, head, query) the visible keys' scores q.k / sqrt(d), their
    softmax, and the weighted sum of the values; a query that sees no key is refused (NotImplementedError)."""
    cfg = layer.config
    N, T, D = x.shape
    h = cfg["num_heads"]
    d = D // h
    pad = layer.fixed.get("key_padding_mask")

    def proj(name: str) -> Any:
        y = ex.matmul(x, p[f"W{name}"])
        return y + p[f"b{name}"] if cfg["bias"] else y

    q, k, v = (proj(n).reshape(N, T, h, d) for n in "qkv")
    scale = 1 / ex.mp().sqrt(d)
    o = np.empty((N, T, h, d), dtype=object)
    for n in range(N):
        for j in range(h):
            for t in range(T):
                keys = [s for s in range(T) if not (pad is not None and pad[n, s]) and not (cfg["causal"] and s > t)]
                if not keys:
                    raise NotImplementedError("crosscheck.exact: an attention query that sees no key")
                e = [ex.exp(ex.dot(q[n, t, j], k[n, s, j]) * scale) for s in keys]
                total = ex.total(e)
                w = [a / total for a in e]
                for i in range(d):
                    o[n, t, j, i] = ex.dot(w, [v[n, s, j, i] for s in keys])
    out = ex.matmul(o.reshape(N, T, D), p["Wo"])
    return out + p["bo"] if cfg["bias"] else out


def _fixed(layer: Any) -> dict[str, np.ndarray]:
    """The padding mask (N, T), True = padded key, set on the layer before its forward."""
    kpm = getattr(layer, "key_padding_mask", None)
    return {"key_padding_mask": np.array(kpm, copy=True)} if kpm is not None else {}


def _describe(layer: Any) -> str:
    return f"MHA(h={layer.num_heads}{' causal' if layer.causal else ''}{'' if layer.bias else ' no bias'})"


KINDS = [
    Kind(
        "multi_head_attention",
        torch_module=_torch,
        torch_apply=_torch_apply,
        torch_grads=_torch_grads,
        jax_apply=_jax,
        scale_fwd=_fwd,
        scale_bwd=_bwd,
        terms=_terms,
        fixed=_fixed,
        describe=_describe,
        exact=_exact,
    ),
]
