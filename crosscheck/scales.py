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

backward, from G(dlogits) = dloss * r * A (A = 2 for cross-entropies, 2 (S(z) + max|t|)
for MSE; in a VJP run G = max|dout|):
    Linear          G(dx) = G(dout) * max_k sum_j |W_kj|,  G(dW) = rows * S(x) * G(dout),  G(db) = rows * G(dout)
    elementwise f   G(dx) = c * G(dout)   (c = 2; LogSoftmax: 1 + C, as dx = dout - p sum(dout))

Every scale is also at least the tensor's own max |entry|, so for a
well-conditioned tensor the measure is the plain relative error. A wrong
formula is still off by a sizeable fraction of S(T): a dropped 1/N, a missing
transpose or a wrong derivative changes the terms themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.spec import NetSpec

LIPSCHITZ = 2.0  # >= max |f'| for every elementwise layer (GELU 1.13, ELU alpha <= 2, softmax rows)


def _amax(a: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0))


def _col_abs_sum(W: np.ndarray) -> float:
    """max_j sum_k |W_kj|: the inf-norm gain of x -> x W."""
    return float(np.abs(W.astype(np.float64)).sum(axis=0).max(initial=0.0))


def _row_abs_sum(W: np.ndarray) -> float:
    """max_k sum_j |W_kj|: the inf-norm gain of dout -> dout W^T."""
    return float(np.abs(W.astype(np.float64)).sum(axis=1).max(initial=0.0))


def scales(
    spec: NetSpec, ref: dict[str, np.ndarray], x: np.ndarray, target: Any, *, dloss: float, dout: np.ndarray | None
) -> dict[str, float]:
    """S(T) for every tensor name of one run, from the reference run ``ref``."""
    S: dict[str, float] = {}
    h, s_in = np.asarray(x, dtype=np.float64), _amax(x)
    rows = int(np.prod(np.shape(x)[:-1]))
    inputs: list[tuple[np.ndarray, float]] = []
    for layer in spec.layers:
        inputs.append((h, s_in))
        out = ref[f"{layer.name}.out"]
        if layer.kind == "linear":
            W = layer.params["W"].astype(np.float64)
            b = _amax(layer.params["b"]) if "b" in layer.params else 0.0
            terms = float((np.abs(h).reshape(-1, W.shape[0]) @ np.abs(W)).max(initial=0.0)) + b
            s_out = max(terms, s_in * _col_abs_sum(W))
        elif layer.kind == "log_softmax":
            s_out = _amax(out) + LIPSCHITZ * s_in
        else:
            s_out = LIPSCHITZ * s_in
        s_in = S[f"{layer.name}.out"] = max(s_out, _amax(out))
        h = np.asarray(out, dtype=np.float64)

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

    for layer, (h_in, s_x) in zip(reversed(spec.layers), reversed(inputs)):
        n_rows = int(np.prod(h_in.shape[:-1]))
        if layer.kind == "linear":
            W = layer.params["W"]
            S[f"{layer.name}.dW"] = max(n_rows * s_x * g, _amax(ref[f"{layer.name}.dW"]))
            if "b" in layer.params:
                S[f"{layer.name}.db"] = max(n_rows * g, _amax(ref[f"{layer.name}.db"]))
            g_in = g * _row_abs_sum(W)
        elif layer.kind == "log_softmax":
            g_in = g * (1 + h_in.shape[-1])
        else:
            g_in = LIPSCHITZ * g
        g = S[f"{layer.name}.dx"] = max(g_in, _amax(ref[f"{layer.name}.dx"]))
    return S
