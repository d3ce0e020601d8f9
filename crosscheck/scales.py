"""The magnitude each compared tensor is measured against.

A relative error ||a - b|| / ||b|| is the right measure until cancellation
makes a tensor much smaller than the terms that formed it: a sum over classes
of a cross-entropy gradient (exactly zero in exact arithmetic), a saturated
tanh whose derivative 1 - t^2 is read off an output t = 1 - 2e-9, a tied pair
of logits. Two correct implementations then differ by eps times the size of
those terms, not eps times the result, and no bound on ||a - b|| / ||b|| holds.

So each tensor T gets a scale S(T), an upper estimate of the magnitude (max
abs entry) of the terms that formed it, propagated through the network from the
reference run's own tensors (classic forward error analysis: fl(x W) differs
from x W by at most ~K eps (|x| |W|)):

forward, from S(x) = max|x|:
    Linear          S(out) = max( max_j (|x| |W| + |b|)_j ,  S(x) * max_j sum_k |W_kj| )
    elementwise f   S(out) = c * S(x),  c = 2  (a Lipschitz bound for every activation here)
    LogSoftmax      S(out) = max|out| + 2 S(x)
    loss            S(L)   = r * n * 2 S(z) * max(1, S(z) + max|t|)   (r = 1/n for the mean)

    LayerNorm,      S(out) = |gamma| A + |beta|,  A = max (max(|x|, S(x)) + |mean|) * rstd  (xhat = (x - mean) rstd is
    BatchNorm1d              formed from terms of size A: its rounding is eps A); per row (LayerNorm) or
                             feature (BatchNorm; eval: the running mean and variance)
    running stats   S = |running| + S(x) (mean), |running| + 4 S(x)^2 N / (N - 1) (variance)
    Embedding       S(out) = max|W|  (a gather is exact)
    Dropout         S(out) = S(x) / (1 - p);  Flatten: S(out) = S(x)
    Residual        S(out) = S(x) + S(f(x))

backward, from G(dlogits) = dloss * r * A (A = 2 for cross-entropies, 2 (S(z) + max|t|)
for MSE; in a VJP run G = max|dout|):
    Linear          G(dx) = G(dout) * max_k sum_j |W_kj|,  G(dW) = rows * S(x) * G(dout),  G(db) = rows * G(dout)
    elementwise f   G(dx) = c * G(dout)   (c = 2; LogSoftmax: 1 + C, as dx = dout - p sum(dout))
    LayerNorm,      G(dx) = G(dout) |gamma| max rstd (2 + A^2): the three terms of
    BatchNorm1d       dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)); eval: G |gamma| max rstd;
                    G(dgamma) = rows * A * G(dout), G(dbeta) = rows * G(dout)
    Embedding       G(dW) = (largest number of repeats of one index) * G(dout); no dx
    Dropout         G(dx) = G(dout) / (1 - p);  Flatten: G(dx) = G(dout)
    Residual        G(dx) = G(dout) + G(dx of the branch)

Every scale is also at least the tensor's own max |entry|, so for a
well-conditioned tensor the measure is the plain relative error. A wrong
formula is still off by a sizeable fraction of S(T): a dropped 1/N, a missing
transpose or a wrong derivative changes the terms themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.spec import LayerSpec, NetSpec

LIPSCHITZ = 2.0  # >= max |f'| for every elementwise layer (GELU 1.13, ELU alpha <= 2, softmax rows)


def _amax(a: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0))


def _col_abs_sum(W: np.ndarray) -> float:
    """max_j sum_k |W_kj|: the inf-norm gain of x -> x W."""
    return float(np.abs(W.astype(np.float64)).sum(axis=0).max(initial=0.0))


def _row_abs_sum(W: np.ndarray) -> float:
    """max_k sum_j |W_kj|: the inf-norm gain of dout -> dout W^T."""
    return float(np.abs(W.astype(np.float64)).sum(axis=1).max(initial=0.0))


def _norm_terms(h: np.ndarray, layer: LayerSpec, s_x: float) -> tuple[np.ndarray, np.ndarray]:
    """(rstd, A) of a LayerNorm (per row) or BatchNorm1d (per feature): A = (max(|x|, S(x)) + |mean|) rstd,
    the size of the terms behind xhat = (x - mean) rstd: x arrives with rounding eps S(x), and
    the subtraction and rstd amplify it to eps A."""
    eps = layer.config["eps"]
    if layer.kind == "layer_norm":
        mu, var = h.mean(axis=-1, keepdims=True), h.var(axis=-1, keepdims=True)
        rstd = 1 / np.sqrt(var + eps)
        return rstd, (np.maximum(np.abs(h).max(axis=-1, keepdims=True), s_x) + np.abs(mu)) * rstd
    if layer.training:
        mu, var = h.mean(axis=0), h.var(axis=0)
    else:
        mu, var = layer.buffers["running_mean"].astype(np.float64), layer.buffers["running_var"].astype(np.float64)
    rstd = 1 / np.sqrt(var + eps)
    return rstd, (np.maximum(np.abs(h).max(axis=0), s_x) + np.abs(mu)) * rstd


def _gain(layer: LayerSpec, name: str) -> float:
    p = layer.params.get(name)
    return _amax(p) if p is not None else (1.0 if name == "gamma" else 0.0)


class _Scales:
    """Walks the spec tree forward (S of every output) then backward (G of every gradient)."""

    def __init__(self, ref: dict[str, np.ndarray]) -> None:
        self.ref, self.S = ref, {}
        self.inputs: dict[str, tuple[np.ndarray, float]] = {}

    def fwd(self, layer: LayerSpec, h: np.ndarray, s_in: float) -> tuple[np.ndarray, float]:
        self.inputs[layer.name] = (h, s_in)
        out = self.ref[f"{layer.name}.out"]
        if layer.kind == "linear":
            W = layer.params["W"].astype(np.float64)
            b = _amax(layer.params["b"]) if "b" in layer.params else 0.0
            terms = float((np.abs(h).reshape(-1, W.shape[0]) @ np.abs(W)).max(initial=0.0)) + b
            s_out = max(terms, s_in * _col_abs_sum(W))
        elif layer.kind == "log_softmax":
            s_out = _amax(out) + LIPSCHITZ * s_in
        elif layer.kind in ("layer_norm", "batch_norm"):
            _, A = _norm_terms(h, layer, s_in)
            s_out = _gain(layer, "gamma") * float(A.max(initial=0.0)) + _gain(layer, "beta")
            if layer.kind == "batch_norm":  # running = (1 - m) running + m batch: terms |running|, |x|, x^2
                n = h.shape[0]
                for b, batch in (("running_mean", s_in), ("running_var", s_in * s_in * 4 * n / max(n - 1, 1))):
                    ref_b = _amax(self.ref[f"{layer.name}.{b}"])
                    self.S[f"{layer.name}.{b}"] = max(_amax(layer.buffers[b]) + batch, ref_b)
        elif layer.kind == "embedding":
            s_out = _amax(layer.params["W"])  # a gather: exact
        elif layer.kind == "dropout":
            s_out = s_in / (1 - layer.config["p"])
        elif layer.kind == "flatten":
            s_out = s_in
        elif layer.kind == "residual":
            b, s_b = h, s_in
            for child in layer.children:
                b, s_b = self.fwd(child, b, s_b)
            s_out = s_in + s_b
        else:
            s_out = LIPSCHITZ * s_in
        s = self.S[f"{layer.name}.out"] = max(s_out, _amax(out))
        return np.asarray(out, dtype=np.float64), s

    def bwd(self, layer: LayerSpec, g: float) -> float:
        h_in, s_x = self.inputs[layer.name]
        n_rows = int(np.prod(h_in.shape[:-1]))
        name, S, ref = layer.name, self.S, self.ref
        if layer.kind == "linear":
            W = layer.params["W"]
            S[f"{name}.dW"] = max(n_rows * s_x * g, _amax(ref[f"{name}.dW"]))
            if "b" in layer.params:
                S[f"{name}.db"] = max(n_rows * g, _amax(ref[f"{name}.db"]))
            g_in = g * _row_abs_sum(W)
        elif layer.kind == "log_softmax":
            g_in = g * (1 + h_in.shape[-1])
        elif layer.kind in ("layer_norm", "batch_norm"):
            # dx = rstd * (dxhat - mean dxhat - xhat * mean(dxhat xhat)), dxhat = dout * gamma; eval: dout gamma rstd
            rstd, A = _norm_terms(h_in, layer, s_x)
            if "gamma" in layer.params:
                S[f"{name}.dgamma"] = max(n_rows * g * float(A.max(initial=0.0)), _amax(ref[f"{name}.dgamma"]))
                S[f"{name}.dbeta"] = max(n_rows * g, _amax(ref[f"{name}.dbeta"]))
            terms = rstd * (2 + A * A) if (layer.kind == "layer_norm" or layer.training) else rstd
            g_in = g * _gain(layer, "gamma") * float(terms.max(initial=0.0))
        elif layer.kind == "embedding":
            idx = np.asarray(h_in).reshape(-1).astype(np.int64)
            repeats = int(np.bincount(idx).max(initial=1)) if idx.size else 1
            S[f"{name}.dW"] = max(repeats * g, _amax(ref[f"{name}.dW"]))
            return 0.0  # no input gradient
        elif layer.kind == "dropout":
            g_in = g / (1 - layer.config["p"])
        elif layer.kind == "flatten":
            g_in = g
        elif layer.kind == "residual":
            g_b = g
            for child in reversed(layer.children):
                g_b = self.bwd(child, g_b)
            g_in = g + g_b
        else:
            g_in = LIPSCHITZ * g
        S[f"{name}.dx"] = max(g_in, _amax(ref[f"{name}.dx"]))
        return S[f"{name}.dx"]


def scales(
    spec: NetSpec, ref: dict[str, np.ndarray], x: Any, target: Any, *, dloss: float, dout: np.ndarray | None
) -> dict[str, float]:
    """S(T) for every tensor name of one run, from the reference run ``ref``."""
    w = _Scales(ref)
    h = np.asarray(x) if np.asarray(x).dtype.kind in "iu" else np.asarray(x, dtype=np.float64)
    s_in = 0.0 if h.dtype.kind in "iu" else _amax(x)
    for layer in spec.layers:
        h, s_in = w.fwd(layer, h, s_in)
    S = w.S
    rows = int(np.prod(h.shape[:-1]))  # the logits' rows: what a mean cross-entropy divides by

    s_z, t_max = s_in, (_amax(target) if target is not None and np.asarray(target).dtype.kind == "f" else 1.0)
    if dout is None:
        loss = spec.loss
        n = int(np.size(h))
        r = 1.0 / (rows if loss.kind == "softmax_cross_entropy" else n) if loss.config["reduction"] == "mean" else 1.0
        S["loss"] = max(_amax(ref["loss"]), r * n * 2 * s_z * max(1.0, s_z + t_max))
        A = 2 * (s_z + t_max) if loss.kind == "mse" else 2.0
        g = S["dlogits"] = max(abs(dloss) * r * A, _amax(ref["dlogits"]))
    else:
        g = _amax(dout)
    for layer in reversed(spec.layers):
        g = w.bwd(layer, g)
    return S
