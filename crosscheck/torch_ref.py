"""The PyTorch reference: a ``NetSpec`` rebuilt from ``torch.nn`` modules, differentiated by autograd.

Only torch's own modules, functionals and ``backward()`` are used here, never
manual_bp's formulas (a test parses this file's imports). Every intermediate
output keeps its gradient with ``retain_grad()``. The layout convention lives
in ``_weight_to_torch`` / ``_weight_from_torch`` and nowhere else (attention's
stacked ``in_proj_weight`` is assembled from them in ``_in_proj_to_torch`` /
``_in_proj_from_torch``; a Conv2d weight is torch's own layout, which
``_conv_weight_to_torch`` asserts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _weight_to_torch(W: np.ndarray) -> torch.Tensor:
    """manual_bp's W (in, out) -> torch's ``nn.Linear.weight`` (out, in)."""
    w = torch.from_numpy(np.ascontiguousarray(W.T))
    assert tuple(w.shape) == (W.shape[1], W.shape[0])
    return w


def _weight_from_torch(w: torch.Tensor) -> np.ndarray:
    """torch's (out, in) gradient -> manual_bp's layout (in, out)."""
    return w.detach().numpy().T.copy()


def _conv_weight_to_torch(W: np.ndarray, cfg: dict[str, Any]) -> torch.Tensor:
    """manual_bp's Conv2d W is already torch's ``nn.Conv2d.weight`` layout (C_out, C_in / groups, kH, kW):
    no transpose; its gradient comes back in the same layout."""
    expected = (cfg["out_channels"], cfg["in_channels"] // cfg["groups"], *cfg["kernel_size"])
    assert W.shape == tuple(expected), (W.shape, expected)
    return torch.from_numpy(W.copy())


def _conv2d(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    cfg = layer.config
    conv = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], tuple(cfg["kernel_size"]), tuple(cfg["stride"]),
                     tuple(cfg["padding"]), tuple(cfg["dilation"]), cfg["groups"], cfg["bias"], dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(_conv_weight_to_torch(layer.params["W"], cfg))
        if cfg["bias"]:
            conv.bias.copy_(torch.from_numpy(layer.params["b"]))
    return conv


def _pool(layer: LayerSpec) -> nn.Module:
    """nn.MaxPool2d (padding -inf; the gradient to the first maximum of a window in row-major order, on the
    CPU) or nn.AvgPool2d (zero padding; ``count_include_pad`` as configured)."""
    cfg = layer.config
    k, s, p = tuple(cfg["kernel_size"]), tuple(cfg["stride"]), tuple(cfg["padding"])
    if layer.kind == "max_pool2d":
        return nn.MaxPool2d(k, s, p, tuple(cfg["dilation"]))
    return nn.AvgPool2d(k, s, p, count_include_pad=cfg["count_include_pad"])


def _in_proj_to_torch(Wq: np.ndarray, Wk: np.ndarray, Wv: np.ndarray) -> torch.Tensor:
    """manual_bp's Wq, Wk, Wv, (in, out) each -> ``nn.MultiheadAttention.in_proj_weight`` = [Wq^T; Wk^T; Wv^T]."""
    w = torch.cat([_weight_to_torch(W) for W in (Wq, Wk, Wv)])
    assert tuple(w.shape) == (3 * Wq.shape[1], Wq.shape[0])
    return w


def _in_proj_from_torch(g: torch.Tensor) -> dict[str, np.ndarray]:
    """The gradient of ``in_proj_weight`` (3D, D) -> manual_bp's dWq, dWk, dWv, (D, D) each."""
    D = g.shape[1]
    assert tuple(g.shape) == (3 * D, D)
    return {f"dW{n}": _weight_from_torch(g[i * D:(i + 1) * D]) for i, n in enumerate("qkv")}


def _attention(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    """``nn.MultiheadAttention(batch_first=True)`` holding the spec's Wq, Wk, Wv, Wo (and biases).
    Training mode always: manual_bp's attention has no dropout, and torch's eval-mode fast path is a
    different kernel (with NaN, not zeros, for a query without a visible key)."""
    cfg = layer.config
    m = nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], bias=cfg["bias"], batch_first=True, dtype=dtype)
    p = layer.params
    with torch.no_grad():
        m.in_proj_weight.copy_(_in_proj_to_torch(p["Wq"], p["Wk"], p["Wv"]))
        m.out_proj.weight.copy_(_weight_to_torch(p["Wo"]))
        if cfg["bias"]:
            m.in_proj_bias.copy_(torch.from_numpy(np.concatenate([p["bq"], p["bk"], p["bv"]])))
            m.out_proj.bias.copy_(torch.from_numpy(p["bo"]))
    return m.train()


def _self_attention(layer: LayerSpec, m: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``m(h, h, h)`` with torch's mask conventions: ``key_padding_mask`` (N, T) True = padded key (the
    spec's), ``attn_mask`` (T, T) True = not allowed, the strict upper triangle for causal attention.
    ``need_weights=False`` takes ``F.scaled_dot_product_attention``."""
    T = h.shape[1]
    kpm = layer.fixed.get("key_padding_mask")
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if layer.config["causal"] else None
    out, _ = m(h, h, h, key_padding_mask=None if kpm is None else torch.from_numpy(kpm), attn_mask=causal,
               need_weights=False)
    return out


def _linear(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    cfg = layer.config
    lin = nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"], dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(_weight_to_torch(layer.params["W"]))
        if cfg["bias"]:
            lin.bias.copy_(torch.from_numpy(layer.params["b"]))
    return lin


_ACTIVATIONS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "identity": lambda c: nn.Identity(),
    "relu": lambda c: nn.ReLU(),
    "leaky_relu": lambda c: nn.LeakyReLU(c["negative_slope"]),
    "elu": lambda c: nn.ELU(c["alpha"]),
    "sigmoid": lambda c: nn.Sigmoid(),
    "tanh": lambda c: nn.Tanh(),
    "silu": lambda c: nn.SiLU(),
    "softplus": lambda c: nn.Softplus(beta=c["beta"], threshold=c["threshold"]),
    "gelu": lambda c: nn.GELU(approximate=c["approximate"]),
    "softmax": lambda c: nn.Softmax(dim=-1),
    "log_softmax": lambda c: nn.LogSoftmax(dim=-1),
}

def _copy(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(value))


def _norm(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    """nn.LayerNorm / nn.BatchNorm1d with gamma -> weight, beta -> bias and the running statistics."""
    cfg = layer.config
    if layer.kind == "layer_norm":
        m: nn.Module = nn.LayerNorm(cfg["normalized_shape"], eps=cfg["eps"],
                                    elementwise_affine=cfg["elementwise_affine"], dtype=dtype)
    else:
        m = nn.BatchNorm1d(cfg["num_features"], eps=cfg["eps"], momentum=cfg["momentum"], affine=cfg["affine"],
                           dtype=dtype)
        _copy(m.running_mean, layer.buffers["running_mean"])
        _copy(m.running_var, layer.buffers["running_var"])
    if "gamma" in layer.params:
        _copy(m.weight, layer.params["gamma"])
        _copy(m.bias, layer.params["beta"])
    return m.train(layer.training)


def _module(layer: LayerSpec, dtype: torch.dtype) -> nn.Module:
    cfg = layer.config
    if layer.kind == "linear":
        return _linear(layer, dtype)
    if layer.kind in _ACTIVATIONS:
        return _ACTIVATIONS[layer.kind](cfg)
    if layer.kind in ("layer_norm", "batch_norm"):
        return _norm(layer, dtype)
    if layer.kind == "embedding":
        emb = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"], dtype=dtype)  # weight (V, D): same layout
        _copy(emb.weight, layer.params["W"])
        return emb
    if layer.kind == "flatten":
        return nn.Flatten()
    if layer.kind == "conv2d":
        return _conv2d(layer, dtype)
    if layer.kind in ("max_pool2d", "avg_pool2d"):
        return _pool(layer)
    if layer.kind == "dropout":
        return nn.Dropout(cfg["p"]).train(layer.training)
    if layer.kind == "residual":
        return nn.ModuleList([_module(child, dtype) for child in layer.children])
    if layer.kind == "multi_head_attention":
        return _attention(layer, dtype)
    raise NotImplementedError(f"crosscheck.torch_ref: no torch reference for layer kind {layer.kind!r}")


KINDS = frozenset(_ACTIVATIONS) | {"linear", "layer_norm", "batch_norm", "embedding", "flatten", "dropout", "residual",
                                   "multi_head_attention", "conv2d", "max_pool2d", "avg_pool2d"}


def build(spec: NetSpec) -> list[nn.Module]:
    """One torch module per top-level layer, parameters and buffers copied from the spec
    (a Residual becomes an ``nn.ModuleList`` of its branch)."""
    dtype = _DTYPES[spec.dtype]
    return [_module(layer, dtype) for layer in spec.layers]


def _dropout(layer: LayerSpec, m: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Training: torch's own dropout computes ``input * noise``, noise = bernoulli(1 - p) / (1 - p),
    from torch's generator; it cannot take a mask, so the mask manual_bp drew (``fixed["mask"]``)
    goes through that same expression. Evaluation: ``nn.Dropout`` itself (the identity)."""
    if not layer.training:
        return m(h)
    noise = torch.from_numpy(layer.fixed["mask"]).to(h.dtype).div_(1 - layer.config["p"])
    return h * noise


def _apply(layer: LayerSpec, m: nn.Module, h: torch.Tensor, seen: dict[str, tuple[torch.Tensor, torch.Tensor]]
           ) -> torch.Tensor:
    """The layer's output; ``seen[name] = (input, output)`` with the output's gradient retained."""
    if layer.kind == "residual":
        branch = h.clone()  # the branch's own input: its gradient is the branch's share only
        if branch.requires_grad:
            branch.retain_grad()
        b = branch
        for child, cm in zip(layer.children, m):
            b = _apply(child, cm, b, seen)
        out = h + b
    elif layer.kind == "dropout":
        out = _dropout(layer, m, h)
    elif layer.kind == "multi_head_attention":
        out = _self_attention(layer, m, h)
    else:
        out = m(h)
    if out.requires_grad and not out.is_leaf:
        out.retain_grad()
    seen[layer.name] = (h, out)
    return out


def loss(spec: LossSpec, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss with torch's own functionals."""
    cfg = spec.config
    if spec.kind == "softmax_cross_entropy":
        return F.cross_entropy(z, target, reduction=cfg["reduction"], label_smoothing=cfg["label_smoothing"])
    if spec.kind == "mse":
        return F.mse_loss(z, target, reduction=cfg["reduction"])
    if spec.kind == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(z, target, reduction=cfg["reduction"])
    raise NotImplementedError(f"crosscheck.torch_ref: no torch reference for loss kind {spec.kind!r}")


def _param_grads(layer: LayerSpec, m: nn.Module) -> dict[str, np.ndarray]:
    """torch's parameter gradients under manual_bp's names and layouts."""
    if layer.kind == "linear":
        got = {"dW": _weight_from_torch(m.weight.grad)}
        if layer.config["bias"]:
            got["db"] = m.bias.grad.numpy().copy()
        return got
    if layer.kind in ("layer_norm", "batch_norm") and "gamma" in layer.params:
        return {"dgamma": m.weight.grad.numpy().copy(), "dbeta": m.bias.grad.numpy().copy()}
    if layer.kind == "embedding":
        return {"dW": m.weight.grad.numpy().copy()}
    if layer.kind == "conv2d":  # weight layout shared with manual_bp (see _conv_weight_to_torch)
        got = {"dW": m.weight.grad.numpy().copy()}
        if layer.config["bias"]:
            got["db"] = m.bias.grad.numpy().copy()
        return got
    if layer.kind == "multi_head_attention":
        got = {**_in_proj_from_torch(m.in_proj_weight.grad), "dWo": _weight_from_torch(m.out_proj.weight.grad)}
        if layer.config["bias"]:
            dbq, dbk, dbv = m.in_proj_bias.grad.numpy().copy().reshape(3, -1)
            got.update(dbq=dbq, dbk=dbk, dbv=dbv, dbo=m.out_proj.bias.grad.numpy().copy())
        return got
    return {}


def _by_name(layers: Any, modules: Any) -> dict[str, nn.Module]:
    """Spec name -> torch module, through Residual branches."""
    named: dict[str, nn.Module] = {}
    for layer, m in zip(layers, modules):
        named[layer.name] = m
        if layer.children:
            named.update(_by_name(layer.children, m))
    return named


def _run_once(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, dloss: float, dout: np.ndarray | None
) -> dict[str, np.ndarray]:
    modules = build(spec)
    integer = x.dtype.kind in "iu"
    xt = torch.from_numpy(x.astype(np.int64)) if integer else torch.from_numpy(x.copy()).requires_grad_(True)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    h = xt
    for layer, m in zip(spec.layers, modules):
        h = _apply(layer, m, h, seen)
    mods = _by_name(spec.layers, modules)
    got = {f"{name}.out": o.detach().numpy().copy() for name, (_, o) in seen.items()}
    for layer in walk(spec.layers):
        if layer.kind == "batch_norm":
            bn = mods[layer.name]
            got[f"{layer.name}.running_mean"] = bn.running_mean.detach().numpy().copy()
            got[f"{layer.name}.running_var"] = bn.running_var.detach().numpy().copy()
    if dout is None:
        L = loss(spec.loss, h, torch.from_numpy(target.copy()))
        got["loss"] = L.detach().numpy().copy()
        L.backward(torch.tensor(dloss, dtype=L.dtype))
        got["dlogits"] = h.grad.numpy().copy()
    else:
        h.backward(torch.from_numpy(dout.copy()))
    for layer in walk(spec.layers):
        inp, _ = seen[layer.name]
        if not layer.integer_input:
            got[f"{layer.name}.dx"] = inp.grad.numpy().copy() if inp.grad is not None else np.zeros(inp.shape, x.dtype)
        got.update({f"{layer.name}.{k}": v for k, v in _param_grads(layer, mods[layer.name]).items()})
    return got


def run(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, *, dloss: float, dout: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Every named tensor of ``spec.tensor_names`` for both runs, by autograd.

    ``"loss"``: ``loss.backward(dloss)`` for ``loss = spec.loss(logits,
    target)``; ``"vjp"``: the vector-Jacobian product ``logits.backward(dout)``.
    """
    runs = {"vjp": _run_once(spec, x, target, dloss, dout)}
    if spec.loss is not None:
        runs["loss"] = _run_once(spec, x, target, dloss, None)
    return runs


def running_buffers(spec: NetSpec, xs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The running statistics after each of several forwards (one per batch in ``xs``) of the same
    torch modules, buffers starting from the spec's: ``[{"<layer>.running_mean": ..., ...}, ...]``."""
    modules = build(spec)
    named = _by_name(spec.layers, modules)
    norms = [layer for layer in walk(spec.layers) if layer.kind == "batch_norm"]
    steps = []
    with torch.no_grad():
        for x in xs:
            h = torch.from_numpy(x.astype(np.int64) if x.dtype.kind in "iu" else x.copy())
            for layer, m in zip(spec.layers, modules):
                h = _apply(layer, m, h, {})
            steps.append({f"{n.name}.{b}": getattr(named[n.name], b).numpy().copy()
                          for n in norms for b in ("running_mean", "running_var")})
    return steps
