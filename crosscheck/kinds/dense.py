"""Linear, Embedding, Flatten and Dropout.

Tolerance: a Linear's S(out) = max(max_j (|x| |W| + |b|)_j, S(x) max_j sum_k |W_kj|), G(dx) = G(dout)
max_k sum_j |W_kj|, dW first order over its rows; a gather (Embedding) is exact; Dropout scales by
1 / (1 - p). See docs/tolerance.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import jax, jnp, nn, torch
from crosscheck.kinds.activations import NOISE
from crosscheck.kinds.entry import Image, Kind, amax, col_abs_sum, row_abs_sum
from crosscheck.kinds.layouts import copy_into, grad, weight_from_torch, weight_to_torch
from crosscheck.spec import LayerSpec

# ---------------------------------------------------------------- Linear


def _linear_torch(layer: LayerSpec, dtype: Any) -> Any:
    cfg = layer.config
    lin = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"], dtype=dtype)
    copy_into(lin.weight, weight_to_torch(layer.params["W"]))
    if cfg["bias"]:
        copy_into(lin.bias, layer.params["b"])
    return lin


def _linear_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    got = {"dW": weight_from_torch(m.weight.grad)}
    if layer.config["bias"]:
        got["db"] = grad(m.bias)
    return got


def _linear_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    out = jnp.matmul(x, p["W"], precision=jax.lax.Precision.HIGHEST)
    return out + p["b"] if layer.config["bias"] else out


def _linear_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """x @ W + b, each entry one exact dot product."""
    out = ex.matmul(x, p["W"])
    return out + p["b"] if layer.config["bias"] else out


def _linear_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    W = layer.params["W"].astype(np.float64)
    b = amax(layer.params["b"]) if "b" in layer.params else 0.0
    terms = float((np.abs(h).reshape(-1, W.shape[0]) @ np.abs(W)).max(initial=0.0)) + b
    return max(terms, s_in * col_abs_sum(W))


def _linear_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    rows = int(np.prod(h_in.shape[:-1]))
    w.store(layer, "dW", w.weight_grad(layer, h_in, s_x, g, rows))
    if "b" in layer.params:
        w.store(layer, "db", rows * g)
    return g * row_abs_sum(layer.params["W"])


def _linear_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """|x| @ |W| + |b|, with m in place of |x| where x is only the rounding of its own terms."""
    noise = np.abs(x) < NOISE * eps * m
    return np.where(noise, m, np.abs(x)) @ np.abs(layer.params["W"]) + np.abs(layer.params.get("b", 0.0))


def _linear_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    return [layer.config["in_features"], layer.config["out_features"]], image


def _linear_plant(layer: Any, rng: np.random.Generator) -> None:
    j = int(rng.integers(layer.out_features))
    layer.params["W"][:, j] = 0
    if "b" in layer.params:
        layer.params["b"][j] = 0


LINEAR = Kind(
    "linear",
    torch_module=_linear_torch,
    torch_grads=_linear_grads,
    jax_apply=_linear_jax,
    scale_fwd=_linear_fwd,
    scale_bwd=_linear_bwd,
    terms=_linear_terms,
    lengths=_linear_lengths,
    plant=_linear_plant,
    exact=_linear_exact,
    describe=lambda layer: f"Linear({layer.in_features}->{layer.out_features})",
)


# ---------------------------------------------------------------- Embedding


def _embedding_torch(layer: LayerSpec, dtype: Any) -> Any:
    cfg = layer.config
    emb = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"], dtype=dtype)  # weight (V, D): same layout
    copy_into(emb.weight, layer.params["W"])
    return emb


def _embedding_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """dW sums dout over the repeats of an index; there is no dx (0 is returned)."""
    idx = np.asarray(h_in).reshape(-1).astype(np.int64)
    repeats = int(np.bincount(idx).max(initial=1)) if idx.size else 1
    w.store(layer, "dW", repeats * g)
    return 0.0


EMBEDDING = Kind(
    "embedding",
    torch_module=_embedding_torch,
    torch_grads=lambda layer, m: {"dW": grad(m.weight)},
    jax_apply=lambda layer, p, x, net: jnp.take(p["W"], x, axis=0),
    scale_fwd=lambda w, layer, h, s_in, out: amax(layer.params["W"]),  # a gather: exact
    scale_bwd=_embedding_bwd,
    terms=lambda layer, x, y, m, eps: np.full(y.shape, np.abs(y).max(initial=0.0)),
    lengths=lambda layer, image: ([layer.config["embedding_dim"]], image),
    describe=lambda layer: f"Embedding({layer.num_embeddings}, {layer.embedding_dim})",
    integer_input=True,
    exact=lambda layer, p, x, net: p["W"][np.asarray(x)],
)


# ---------------------------------------------------------------- Flatten


FLATTEN = Kind(
    "flatten",
    torch_module=lambda layer, dtype: nn.Flatten(),
    jax_apply=lambda layer, p, x, net: jnp.reshape(x, (x.shape[0], -1)),
    scale_fwd=lambda w, layer, h, s_in, out: s_in,
    scale_bwd=lambda w, layer, g, h_in, s_x: g,
    terms=lambda layer, x, y, m, eps: m.reshape(m.shape[0], -1),
    lengths=lambda layer, image: ([], None),
    exact=lambda layer, p, x, net: x.reshape(x.shape[0], -1),
)


# ---------------------------------------------------------------- Dropout


def _dropout_torch_apply(layer: LayerSpec, m: Any, h: Any, apply: Any) -> Any:
    """Training: torch's own dropout computes ``input * noise``, noise = bernoulli(1 - p) / (1 - p), from
    torch's generator; it cannot take a mask, so manual_bp's mask (``fixed["mask"]``) goes through that
    same expression. Evaluation: ``nn.Dropout`` itself (the identity)."""
    if not layer.training:
        return m(h)
    noise = torch.from_numpy(layer.fixed["mask"]).to(h.dtype).div_(1 - layer.config["p"])
    return h * noise


def _dropout_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """Inverted dropout with manual_bp's mask (as ``flax.linen.Dropout`` writes it: ``where(keep, x / (1 - p),
    0)``); evaluation mode is the identity."""
    if not layer.training:
        return x
    return jnp.where(layer.fixed["mask"], x / (1 - layer.config["p"]), jnp.zeros((), x.dtype))


def _dropout_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """x / (1 - p) where kept, an exact 0 where dropped; the identity in evaluation."""
    if not layer.training:
        return x
    scale = 1 / (1 - ex.mpf(layer.config["p"]))
    out = np.empty(x.shape, dtype=object)
    for idx, keep in np.ndenumerate(layer.fixed["mask"]):
        out[idx] = x[idx] * scale if keep else x[idx] * 0
    return out


def _dropout_fixed(layer: Any) -> dict[str, np.ndarray]:
    """The keep mask a training Dropout drew: the references apply the same one."""
    mask = getattr(layer, "mask", None) if layer.training else None
    return {"mask": np.array(mask, copy=True)} if mask is not None else {}


DROPOUT = Kind(
    "dropout",
    torch_module=lambda layer, dtype: nn.Dropout(layer.config["p"]).train(layer.training),
    torch_apply=_dropout_torch_apply,
    jax_apply=_dropout_jax,
    scale_fwd=lambda w, layer, h, s_in, out: s_in / (1 - layer.config["p"]),
    scale_bwd=lambda w, layer, g, h_in, s_x: g / (1 - layer.config["p"]),
    # a dropped unit is an exact 0
    terms=lambda layer, x, y, m, eps: np.where(layer.mask, m / (1 - layer.p), 0.0) if layer.training else m,
    fixed=_dropout_fixed,
    exact=_dropout_exact,
)

KINDS = [LINEAR, EMBEDDING, FLATTEN, DROPOUT]
