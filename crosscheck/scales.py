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
    elementwise f   S(out) = c * S(x),  c = sup |f'| (Sigmoid 1/4, GELU 1.13, ELU max(1, alpha), ...; 2 for
                    Softmax)
    LogSoftmax      S(out) = max|out| + 2 S(x)
    loss            S(L)   = r * (first-order terms of the summed loss, see _loss_terms)   (r = 1/n for the mean)

    LayerNorm,      S(out) = |gamma| A + |beta|,  A = max (max(|x|, S(x)) + |mean|) * rstd  (xhat = (x - mean) rstd is
    BatchNorm1d              formed from terms of size A: its rounding is eps A); per row (LayerNorm) or
                             feature (BatchNorm; eval: the running mean and variance)
    running stats   S = |running| + S(x) (mean), |running| + 4 S(x)^2 N / (N - 1) (variance)
    Embedding       S(out) = max|W|  (a gather is exact)
    Dropout         S(out) = S(x) / (1 - p);  Flatten: S(out) = S(x)
    Residual        S(out) = S(x) + S(f(x))
    Conv2d          S(out) = S(x) * max_o sum_{c,i,j} |W_ocij| + max|b|  (each output sums C_g kH kW products
                    x W, each at most S(x) |W_ocij|: the Linear rule over the window)
    MaxPool2d       S(out) = S(x)  (a selection: exact)
    AvgPool2d       S(out) = S(x)  (sum of the window's terms, each <= S(x), divided by their count)
    Multi-head      S_q = max_j (|x| |Wq| + |bq|)_j  or  S(x) max_j sum_k |Wq_kj|  (the Linear rule; k, v alike);
    self-attention  |q|, |k|, |v| below are the sizes of the projections themselves (from the reference's x), per
                    head; first order: the error of a product ab is S(a) |b| + |a| S(b), never S(a) S(b)
                    S(scores) = (max_ts sum_c |q_tc||k_sc| + S_q max_s sum_c |k_sc| + S_k max_t sum_c |q_tc|) / sqrt(d)
                    S(A) = max|v| (1 + 2 S(scores)) + S_v: A = P V is a convex combination of the values
                      (sum_s P_ts = 1), and an error e in a row of scores moves each P_ts by at most 2 e P_ts
                    S(out) = S(A) max_j sum_k |Wo_kj| + |bo|

backward, from G(dlogits) = dloss * r * A (A = 2 for cross-entropies, 2 (S(z) + max|t|)
for MSE; in a VJP run G = max|dout|):
    Linear          G(dx) = G(dout) * max_k sum_j |W_kj|,  G(db) = rows * G(dout),
                    G(dW) = rows * (S(x) a + max|x| (G(dout) + a)), a = max|dout| (first order, as below)
    elementwise f   G(dx) = c * G(dout) + a k S(x)   (c = 2; LogSoftmax: 1 + C, as dx = dout - p sum(dout));
                    a = max|dout|, k = sup |f''| (see _curvature): x's rounding eps S(x) moves f'(x) too
    LayerNorm,      G(dx) = |gamma| max rstd (G(dout) (2 + X) + a A (3 + 2 X)), first order in the three terms of
    BatchNorm1d       dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)), dxhat = dout gamma: X = max|xhat|
                      (mean|xhat| <= 1), a = max|dout| (as for attention); xhat carries eps A, rstd a relative
                      eps A (var's error: 2 eps (A / rstd) sqrt(var)); eval: G |gamma| max rstd;
                    G(dgamma) = rows * A * G(dout), G(dbeta) = rows * G(dout)
    Embedding       G(dW) = (largest number of repeats of one index) * G(dout); no dx
    Dropout         G(dx) = G(dout) / (1 - p);  Flatten: G(dx) = G(dout)
    Residual        G(dx) = G(dout) + G(dx of the branch)
    Conv2d          G(dx) = G(dout) * max_c sum_{o in c's group, i, j} |W_ocij|  (each (o, i, j) reaches an input
                    pixel at most once), G(dW) as Linear's, G(db) = rows * G(dout), rows = N H_out W_out
    MaxPool2d       G(dx) = G(dout) * m,  m = the most windows one input element belongs to (overlaps sum)
    AvgPool2d       G(dx) = G(dout) * m / (the smallest divisor: kH kW, or the fewest unpadded elements)
    Multi-head      first order as in the forward, with a = max|dout| (the size of the upstream gradient, read off
    self-attention  the reference: the next layer's dx) beside its scale G(dout); w = max_k sum_j |Wo_kj|:
                    G(dA) = G(dout) w, |dA| <= a w;  |dP| <= a w max_s sum_c |v_sc| =: p;
                    G(dV) = T (G(dA) + 2 S(scores) a w)  (P^T dO: a column of P sums to at most T);
                    G(dP) = G(dA) max sum_c |v| + a w d S_v;  a row of dS = P (dP - sum P dP) / sqrt(d):
                    G = (2 G(dP) + 4 S(scores) p) / sqrt(d), size 2 p / sqrt(d) =: s;
                    G(dQ) = G(row of dS) max|k| + s S_k,  G(dK) = T (G(row of dS) max|q| + s S_q);
                    G(dWq) = rows (S(x) |dQ| + max|x| G(dQ)), G(dbq) = rows G(dQ) (k, v alike; Wo: A, dout);
                    G(dx) = G(dQ) max_k sum_j |Wq_kj| + G(dK) (Wk) + G(dV) (Wv)

Every scale is also at least the tensor's own max |entry|, so for a
well-conditioned tensor the measure is the plain relative error. A wrong
formula is still off by a sizeable fraction of S(T): a dropped 1/N, a missing
transpose or a wrong derivative changes the terms themselves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from crosscheck.spec import LayerSpec, NetSpec, window_count

LIPSCHITZ = 2.0  # >= max |f'| for every elementwise layer (GELU 1.13, ELU alpha <= 2, softmax rows)


_SUP_DERIVATIVE = {"identity": 1.0, "relu": 1.0, "tanh": 1.0, "softplus": 1.0, "sigmoid": 0.25, "silu": 1.1,
                   "gelu": 1.13}


def _lipschitz(layer: LayerSpec) -> float:
    """sup |f'| of an elementwise layer (LIPSCHITZ for the others): how much an error in x can grow in
    f(x). Sigmoid 1/4; ReLU, Tanh, Softplus, Identity 1; SiLU 1.1; GELU 1.13 (both forms); LeakyReLU
    max(1, |slope|); ELU max(1, alpha)."""
    c = layer.config
    if layer.kind in _SUP_DERIVATIVE:
        return _SUP_DERIVATIVE[layer.kind]
    if layer.kind == "leaky_relu":
        return max(1.0, abs(c["negative_slope"]))
    if layer.kind == "elu":
        return max(1.0, abs(c["alpha"]))
    return LIPSCHITZ


# sup |f''|: x arrives with rounding eps S(x), which moves f'(x) by up to sup |f''| eps S(x)
_SUP_CURVATURE = {"identity": 0.0, "relu": 0.0, "leaky_relu": 0.0, "sigmoid": 0.0963, "tanh": 0.77, "silu": 0.5,
                  "gelu": 0.8}


def _curvature(layer: LayerSpec, C: int) -> float:
    """sup |d(dx)/dx| / max|dout| of an elementwise layer's backward, how much dx moves with an error in x:
    sup |f''| (Sigmoid 0.0963, Tanh 0.77, SiLU 1/2, GELU 0.8 in both forms, Softplus beta / 4, ELU alpha,
    the piecewise linear ones 0); Softmax 6 (dx = p (dout - <dout, p>), each p_j off by at most 2 p_j
    eps S(x)); LogSoftmax 2 C (dx = dout - p sum dout)."""
    c = layer.config
    if layer.kind in _SUP_CURVATURE:
        return _SUP_CURVATURE[layer.kind]
    if layer.kind == "softplus":
        return c["beta"] / 4
    if layer.kind == "elu":
        return abs(c["alpha"])
    if layer.kind == "log_softmax":
        return 2.0 * C
    return 6.0  # softmax


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


def _attention_fwd(layer: LayerSpec, h: np.ndarray, s_in: float) -> dict[str, float]:
    """The forward scales of a multi-head self-attention (the module docstring): S_q, S_k, S_v,
    S(scores), S(A) and S(out), from its input h (N, T, D) and the input's scale."""
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    N, T, D = h.shape
    heads = layer.config["num_heads"]
    h2 = h.reshape(-1, D)  # (NT, D)
    s, size = {}, {}
    for n in "qkv":
        W, b = p[f"W{n}"], p.get(f"b{n}", np.zeros(D))
        s[n] = max(float((np.abs(h2) @ np.abs(W)).max(initial=0.0)) + _amax(b), s_in * _col_abs_sum(W))
        size[n] = np.abs(h2 @ W + b).reshape(N, T, heads, D // heads)  # |q|, |k|, |v| per head
    s |= {f"{n}_max": float(size[n].max()) for n in "qkv"}
    s |= {f"{n}_row": float(size[n].sum(axis=-1).max()) for n in "qkv"}  # max_t sum_c |q_tc| within a head
    terms = float(np.einsum("nthc,nshc->nhts", size["q"], size["k"]).max())  # max_ts sum_c |q_tc| |k_sc|
    s["scale"] = 1 / np.sqrt(D // heads)
    s["scores"] = s["scale"] * (terms + s["q"] * s["k_row"] + s["k"] * s["q_row"])
    s["A"] = s["v_max"] * (1 + 2 * s["scores"]) + s["v"]
    s["out"] = s["A"] * _col_abs_sum(p["Wo"]) + _amax(p.get("bo", 0.0))
    return s


def _conv_gains(W: np.ndarray, groups: int) -> tuple[float, float]:
    """(max_o sum_{c,i,j} |W_ocij|, max_c sum_{o in c's group, i, j} |W_ocij|) of a Conv2d weight
    (C_out, C_g, kH, kW): the inf-norm gains of the forward and of dx."""
    A = np.abs(W.astype(np.float64))
    fwd = float(A.reshape(A.shape[0], -1).sum(axis=1).max(initial=0.0))
    per_group = A.reshape(groups, A.shape[0] // groups, *A.shape[1:])  # (groups, O_g, C_g, kH, kW)
    return fwd, float(per_group.sum(axis=(1, 3, 4)).max(initial=0.0))


def _pool_counts(layer: LayerSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    """(m, smallest divisor) of a pooling layer on input ``shape`` (N, C, H, W): m the most windows one input
    element belongs to; the divisor of an average (a max-pool has none: 1): kH kW with ``count_include_pad``,
    else the fewest unpadded elements of a window. Per axis from the geometry; both factor over the axes."""
    c = layer.config
    m, fewest = 1, 1
    for axis, size in enumerate(shape[2:]):
        k, s, p = c["kernel_size"][axis], c["stride"][axis], c["padding"][axis]
        d = c.get("dilation", (1, 1))[axis]
        n_out = window_count(size, k, s, p, d)
        pos = (np.arange(n_out)[:, None] * s + np.arange(k) * d - p).reshape(-1)  # unpadded position of every read
        inside = pos[(pos >= 0) & (pos < size)]
        m *= int(np.bincount(inside, minlength=size).max(initial=1))
        real = ((pos >= 0) & (pos < size)).reshape(n_out, k).sum(axis=1)
        if layer.kind == "avg_pool2d":
            fewest *= k if c["count_include_pad"] else int(real.min())
    return m, fewest


class _Scales:
    """Walks the spec tree forward (S of every output) then backward (G of every gradient)."""

    def __init__(self, ref: dict[str, np.ndarray]) -> None:
        self.ref, self.S = ref, {}
        self.inputs: dict[str, tuple[np.ndarray, float]] = {}
        self.attention: dict[str, dict[str, float]] = {}
        self.dout_size: dict[str, float] = {}

    def dout_sizes(self, layers: tuple[LayerSpec, ...], last: float) -> None:
        """max |dout| of every layer, the size (not the rounding) of the gradient it receives, read off the
        reference run: the next layer's dx; for the last layer of a branch, the residual's own dout."""
        for i, layer in enumerate(layers):
            nxt = self.ref.get(f"{layers[i + 1].name}.dx") if i + 1 < len(layers) else None
            a = self.dout_size[layer.name] = last if i + 1 == len(layers) else (
                _amax(nxt) if nxt is not None else math.inf)
            if layer.children:
                self.dout_sizes(layer.children, a)

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
        elif layer.kind == "conv2d":
            s_out = s_in * _conv_gains(layer.params["W"], layer.config["groups"])[0] + _gain(layer, "b")
        elif layer.kind in ("max_pool2d", "avg_pool2d"):
            s_out = s_in
        elif layer.kind == "multi_head_attention":
            self.attention[layer.name] = _attention_fwd(layer, h, s_in)
            s_out = self.attention[layer.name]["out"]
        elif layer.kind == "residual":
            b, s_b = h, s_in
            for child in layer.children:
                b, s_b = self.fwd(child, b, s_b)
            s_out = s_in + s_b
        else:
            s_out = _lipschitz(layer) * s_in
        s = self.S[f"{layer.name}.out"] = max(s_out, _amax(out))
        return np.asarray(out, dtype=np.float64), s

    def _weight_grad(self, name: str, h_in: np.ndarray, s_x: float, g: float, rows: int) -> float:
        """S(dW) of dW = x^T dout (Linear; Conv2d over its windows), first order: each of the ``rows``
        products x dout errs by at most S(x) |dout| + |x| G(dout) + |x| |dout| (the product's own
        rounding), with the sizes |x|, |dout| read off the reference, never S(x) G(dout)."""
        a = min(self.dout_size.get(name, g), g)  # max |dout|
        x_max = _amax(h_in)
        return rows * (s_x * a + x_max * g + x_max * a)

    def bwd(self, layer: LayerSpec, g: float) -> float:
        h_in, s_x = self.inputs[layer.name]
        n_rows = int(np.prod(h_in.shape[:-1]))
        name, S, ref = layer.name, self.S, self.ref
        if layer.kind == "linear":
            W = layer.params["W"]
            S[f"{name}.dW"] = max(self._weight_grad(name, h_in, s_x, g, n_rows), _amax(ref[f"{name}.dW"]))
            if "b" in layer.params:
                S[f"{name}.db"] = max(n_rows * g, _amax(ref[f"{name}.db"]))
            g_in = g * _row_abs_sum(W)
        elif layer.kind == "log_softmax":
            g_in = g * (1 + h_in.shape[-1]) + self._curved(layer, g, h_in, s_x)
        elif layer.kind in ("layer_norm", "batch_norm"):
            # dx = rstd * (dxhat - mean dxhat - xhat * mean(dxhat xhat)), dxhat = dout * gamma; eval: dout gamma rstd
            rstd, A = _norm_terms(h_in, layer, s_x)
            if "gamma" in layer.params:
                S[f"{name}.dgamma"] = max(n_rows * g * float(A.max(initial=0.0)), _amax(ref[f"{name}.dgamma"]))
                S[f"{name}.dbeta"] = max(n_rows * g, _amax(ref[f"{name}.dbeta"]))
            terms = g * rstd
            if layer.kind == "layer_norm" or layer.training:  # first order, see the docstring
                axis = -1 if layer.kind == "layer_norm" else 0
                xc = np.abs(h_in - h_in.mean(axis=axis, keepdims=True))
                X = xc.max(axis=axis, keepdims=layer.kind == "layer_norm") * rstd  # max |xhat|
                a = min(self.dout_size.get(name, g), g)  # max |dout|
                terms = rstd * (g * (2 + X) + a * A * (3 + 2 * X))
            g_in = _gain(layer, "gamma") * float(terms.max(initial=0.0))
        elif layer.kind == "embedding":
            idx = np.asarray(h_in).reshape(-1).astype(np.int64)
            repeats = int(np.bincount(idx).max(initial=1)) if idx.size else 1
            S[f"{name}.dW"] = max(repeats * g, _amax(ref[f"{name}.dW"]))
            return 0.0  # no input gradient
        elif layer.kind == "dropout":
            g_in = g / (1 - layer.config["p"])
        elif layer.kind == "flatten":
            g_in = g
        elif layer.kind == "conv2d":
            N, _, Ho, Wo = np.shape(ref[f"{name}.out"])
            rows = N * Ho * Wo  # the terms summed into each dW and db entry
            S[f"{name}.dW"] = max(self._weight_grad(name, h_in, s_x, g, rows), _amax(ref[f"{name}.dW"]))
            if "b" in layer.params:
                S[f"{name}.db"] = max(rows * g, _amax(ref[f"{name}.db"]))
            g_in = g * _conv_gains(layer.params["W"], layer.config["groups"])[1]
        elif layer.kind in ("max_pool2d", "avg_pool2d"):
            m, divisor = _pool_counts(layer, h_in.shape)
            g_in = g * m / divisor
        elif layer.kind == "multi_head_attention":
            g_in = self._attention_bwd(layer, g, n_rows, h_in.shape[1], s_x)
        elif layer.kind == "residual":
            g_b = g
            for child in reversed(layer.children):
                g_b = self.bwd(child, g_b)
            g_in = g + g_b
        else:
            g_in = LIPSCHITZ * g + self._curved(layer, g, h_in, s_x)
        S[f"{name}.dx"] = max(g_in, _amax(ref[f"{name}.dx"]))
        return S[f"{name}.dx"]

    def _curved(self, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
        """The first-order term of an elementwise backward dx = dout f'(x) from x's own rounding:
        max|dout| sup|f''| S(x), next to f' G(dout). It dominates after a normalisation of a nearly
        constant column, where x is amplified rounding (S(x) >> |x|)."""
        a = min(self.dout_size.get(layer.name, g), g)  # max |dout|
        return a * _curvature(layer, h_in.shape[-1]) * s_x

    def _attention_bwd(self, layer: LayerSpec, g: float, rows: int, T: int, s_x: float) -> float:
        """G of a multi-head self-attention's parameter gradients (stored) and of its dx (returned)."""
        s, S, ref, name = self.attention[layer.name], self.S, self.ref, layer.name
        h_in, _ = self.inputs[name]
        d = layer.params["Wq"].shape[0] // layer.config["num_heads"]
        a = min(self.dout_size.get(name, g), g)  # max |dout|
        g_A, a_A = g * _row_abs_sum(layer.params["Wo"]), a * _row_abs_sum(layer.params["Wo"])  # dA (= dO)
        a_P = a_A * s["v_row"]  # max |dP|
        g_S = s["scale"] * (2 * (g_A * s["v_row"] + a_A * d * s["v"]) + 4 * s["scores"] * a_P)  # a row of dS
        a_S = 2 * s["scale"] * a_P  # the size of a row of dS
        G = {"o": g, "v": T * (g_A + 2 * s["scores"] * a_A), "q": g_S * s["k_max"] + a_S * s["k"],
             "k": T * (g_S * s["q_max"] + a_S * s["q"])}
        size = {"o": a, "v": T * a_A, "q": a_S * s["k_max"], "k": T * a_S * s["q_max"]}  # max |dout|, |dV|, |dQ|, |dK|
        for n, g_n in G.items():
            x_S, x_size = (s["A"], s["v_max"]) if n == "o" else (s_x, _amax(h_in))  # the product's input
            S[f"{name}.dW{n}"] = max(rows * (x_S * size[n] + x_size * g_n), _amax(ref[f"{name}.dW{n}"]))
            if layer.config["bias"]:
                S[f"{name}.db{n}"] = max(rows * g_n, _amax(ref[f"{name}.db{n}"]))
        return sum(G[n] * _row_abs_sum(layer.params[f"W{n}"]) for n in "qkv")


def _loss_terms(kind: str, z: np.ndarray, target: Any, s_z: float, rows: int, n: int) -> float:
    """S of the summed loss (before the 1/N of a mean), first order: per term, the error S(z) carries
    through |dl/dz| plus the size of the terms the loss adds (z the reference logits, y the target):

    cross-entropy  per row  2 Y S(z) + (1 + Y) max|z| + log C,  Y = max row sum of |y| (1 for labels)
    BCE            per entry  S(z) + (1 + max|t|) max|z| + 1   (|dl/dz| = |sigmoid(z) - t| <= 1)
    MSE            per entry  (2 S(z) + d) d,  d = max|z| + max|t|   (|dl/dz| = 2 |z - t|)
    """
    z_max = _amax(z)
    floats = target is not None and np.asarray(target).dtype.kind == "f"
    t_max = _amax(target) if floats else 1.0
    if kind == "softmax_cross_entropy":
        Y = float(np.abs(np.asarray(target)).sum(axis=-1).max(initial=0.0)) if floats else 1.0
        return rows * (2 * Y * s_z + (1 + Y) * z_max + math.log(max(z.shape[-1], 2)))
    if kind == "bce_with_logits":
        return n * (s_z + (1 + t_max) * z_max + 1)
    d = z_max + t_max
    return n * (2 * s_z + d) * d


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
        S["loss"] = max(_amax(ref["loss"]), r * _loss_terms(loss.kind, h, target, s_z, rows, n))
        A = 2 * (s_z + t_max) if loss.kind == "mse" else 2.0
        g = S["dlogits"] = max(abs(dloss) * r * A, _amax(ref["dlogits"]))
    else:
        g = _amax(dout)
    w.dout_sizes(spec.layers, _amax(ref["dlogits"]) if dout is None else g)
    for layer in reversed(spec.layers):
        g = w.bwd(layer, g)
    return S
