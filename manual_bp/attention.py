"""Multi-head self-attention (the pure pair and its layer) and a pre-LN Transformer block.

Shapes: ``N`` batch, ``T`` sequence length (queries and keys: self-attention),
``D`` model width, ``h`` heads, ``d = D / h`` the width of one head.

Forward, for x (N, T, D)::

    q = x Wq + bq,  k = x Wk + bk,  v = x Wv + bv      (N, T, D) each, split into heads Q, K, V (N, h, T, d)
    S = Q K^T / sqrt(d)                                (N, h, T, T)   scores of query t against key s
    P = softmax over the visible keys s of S           (N, h, T, T)   P = 0 exactly where key s is hidden
    A = P V, heads merged back                         (N, T, D)
    out = A Wo + bo                                    (N, T, D)

Weights are (in, out) as in ``Linear``: ``x @ W``. torch's ``nn.MultiheadAttention``
stores the transposes, stacked: ``in_proj_weight`` = [Wq^T; Wk^T; Wv^T] (3D, D)
and ``out_proj.weight`` = Wo^T (D, D) (``crosscheck/torch_ref.py`` maps them).

Masks (torch's conventions): ``causal`` hides keys s > t from query t;
``key_padding_mask`` (N, T) bool hides the keys marked True (padding) from every
query of that sample. A query that can see no key at all has no softmax
(0 / 0): that is a ValueError here, naming the sample and the query, where the
frameworks disagree silently (see the README's conventions table).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from manual_bp._checks import check_dtype_arg, check_float_array, check_ndim, check_nonempty, check_same_dtype
from manual_bp.init import as_generator, constant, torch_uniform, xavier_uniform
from manual_bp.layers import GELU, LayerNorm, Linear, Module
from manual_bp.model import Residual, Sequential

# ---------------------------------------------------------------- masks


def hidden_keys(N: int, T: int, causal: bool, key_padding_mask: np.ndarray | None) -> np.ndarray | None:
    """True where query t may not see key s: (1, 1, T, T) causal, (N, 1, 1, T) padding,
    (N, 1, T, T) both; None when every key is visible. Broadcasts against the scores (N, h, T, T)."""
    hidden = np.triu(np.ones((T, T), dtype=bool), k=1)[None, None] if causal else None  # (1, 1, T, T)
    if key_padding_mask is not None:
        pad = key_padding_mask[:, None, None, :]  # (N, 1, 1, T)
        hidden = pad if hidden is None else hidden | pad  # (N, 1, T, T)
    return hidden


def check_visible(hidden: np.ndarray | None, causal: bool, where: str) -> None:
    """Raise ValueError naming the first (sample, query) that sees no key at all."""
    if hidden is None:
        return
    blind = hidden.all(axis=-1)  # (N|1, 1, T|1): every key of that query hidden
    if blind.any():
        n, _, t = (int(i) for i in np.argwhere(blind)[0])
        rule = "key_padding_mask with causal=True (query t sees keys <= t)" if causal else "key_padding_mask"
        raise ValueError(
            f"{where}: query {t} of sample {n} has no visible key: the {rule} hides every key it could attend to, "
            f"and its softmax would be 0/0; leave at least one such key unpadded (with causal=True: key 0)"
        )


# ---------------------------------------------------------------- the pure pair


class MHACache(NamedTuple):
    """What ``mha_backward`` reads: the input, the projected heads, the attention weights, the
    merged heads, the stacked projection weight, Wo, the score scale and whether there are biases."""

    x: np.ndarray  # (N, T, D)
    Q: np.ndarray  # (N, h, T, d), a view of the projection x W_qkv
    K: np.ndarray  # (N, h, T, d)
    V: np.ndarray  # (N, h, T, d)
    P: np.ndarray  # (N, h, T, T), exactly 0 at hidden keys
    A: np.ndarray  # (N, T, D), P V with the heads merged
    W_qkv: np.ndarray  # (D, 3D) = [Wq | Wk | Wv]
    Wo: np.ndarray  # (D, D)
    scale: float  # 1 / sqrt(d)
    has_bias: bool


# --8<-- [start:masked_softmax_pair]
def masked_softmax(S: np.ndarray, hidden: np.ndarray | None) -> np.ndarray:
    """P = exp(S - m) / sum_visible exp(S - m) over the last axis, m the row's max over visible keys;
    P = 0 exactly at hidden keys (their scores are set to -inf, and exp(-inf) = 0 in IEEE arithmetic).

    S: (N, h, T, T), a fresh array owned by the caller: it is overwritten and returned as P.
    Every row must have a visible key (``check_visible``).
    """
    if hidden is not None:
        np.copyto(S, -np.inf, where=hidden)  # (N, h, T, T): hidden keys drop out of the max and the sum
    S -= S.max(axis=-1, keepdims=True)  # (N, h, T, T), entries <= 0
    np.exp(S, out=S)
    S /= S.sum(axis=-1, keepdims=True)  # (N, h, T, T), rows sum to 1
    return S


def masked_softmax_backward(dP: np.ndarray, P: np.ndarray) -> np.ndarray:
    """dS = P * (dP - sum_s dP_s P_s): the softmax Jacobian diag(P) - P P^T applied to each row of dP.

    Where P = 0 (hidden keys) dS = 0 exactly, whatever dP is. dP: (N, h, T, T), a fresh array owned
    by the caller (overwritten and returned as dS); P: (N, h, T, T).
    """
    r = np.einsum("...s,...s->...", dP, P)[..., None]  # (N, h, T, 1): sum_s dP_s P_s
    dP -= r
    dP *= P  # (N, h, T, T)
    return dP


# --8<-- [end:masked_softmax_pair]


# --8<-- [start:mha_pair]
def mha_forward(
    x: np.ndarray,
    Wq: np.ndarray,
    bq: np.ndarray | None,
    Wk: np.ndarray,
    bk: np.ndarray | None,
    Wv: np.ndarray,
    bv: np.ndarray | None,
    Wo: np.ndarray,
    bo: np.ndarray | None,
    num_heads: int,
    causal: bool = False,
    key_padding_mask: np.ndarray | None = None,
    *,
    where: str = "mha_forward",
) -> tuple[np.ndarray, MHACache]:
    """Multi-head self-attention (the module docstring has the formulas).

    x: (N, T, D); Wq, Wk, Wv, Wo: (D, D); bq, bk, bv, bo: (D,) all, or all None;
    key_padding_mask: (N, T) bool (True = padded key) or None  ->  out: (N, T, D).
    ``where`` names the caller in the error raised for a query without a visible key.
    """
    N, T, D = x.shape
    h = num_heads
    d = D // h
    scale = 1.0 / math.sqrt(d)
    hidden = hidden_keys(N, T, causal, key_padding_mask)  # (N|1, 1, T|1, T) or None
    check_visible(hidden, causal, where)
    W_qkv = np.concatenate((Wq, Wk, Wv), axis=1)  # (D, 3D): one product for the three projections
    qkv = x @ W_qkv  # (N, T, 3D)
    if bq is not None:
        qkv += np.concatenate((bq, bk, bv))  # (3D,) broadcast over N, T
    Q, K, V = qkv.reshape(N, T, 3, h, d).transpose(2, 0, 3, 1, 4)  # (N, h, T, d) each: views, no copy
    S = Q @ K.swapaxes(-1, -2)  # (N, h, T, T)
    S *= scale
    P = masked_softmax(S, hidden)  # (N, h, T, T)
    A = np.empty((N, T, D), dtype=x.dtype)  # heads merged: A[n, t, j*d:(j+1)*d] = (P V)[n, j, t]
    np.matmul(P, V, out=A.reshape(N, T, h, d).transpose(0, 2, 1, 3))  # (N, h, T, d) written into (N, T, D)
    out = A @ Wo  # (N, T, D)
    if bo is not None:
        out += bo
    return out, MHACache(x, Q, K, V, P, A, W_qkv, Wo, scale, bq is not None)


def mha_backward(dout: np.ndarray, cache: MHACache) -> tuple[np.ndarray, ...]:
    """Backward of ``mha_forward``, one step per forward line, last line first::

        dWo = A^T dout,  dbo = sum_{n,t} dout,  dA = dout Wo^T        (D, D), (D,), (N, T, D)
        dO  = dA split into heads                                     (N, h, T, d)
        dV  = P^T dO,  dP = dO V^T                                    (N, h, T, d), (N, h, T, T)
        dS  = P * (dP - sum_s dP P) / sqrt(d)                         (N, h, T, T)  softmax, then the scale
        dQ  = dS K,  dK = dS^T Q                                      (N, h, T, d)
        dq, dk, dv = dQ, dK, dV with the heads merged                 (N, T, D)
        dWq = x^T dq, dbq = sum_{n,t} dq (and k, v alike)             (D, D), (D,)
        dx  = dq Wq^T + dk Wk^T + dv Wv^T                             (N, T, D)

    A hidden key has P = 0, so dS = 0 there: it receives no gradient through the scores, and
    dV = P^T dO gives it none through the values.
    dout: (N, T, D)  ->  (dx, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo); the biases' None without bias.
    """
    x, Q, K, V, P, A, W_qkv, Wo, scale, has_bias = cache
    N, h, T, d = Q.shape
    D = h * d
    dout2 = dout.reshape(-1, D)  # (NT, D)
    dWo = A.reshape(-1, D).T @ dout2  # (D, D)
    dbo = dout2.sum(axis=0) if has_bias else None  # (D,)
    dA = dout @ Wo.T  # (N, T, D)
    dO = dA.reshape(N, T, h, d).transpose(0, 2, 1, 3)  # (N, h, T, d), a view
    dqkv = np.empty((N, T, 3, h, d), dtype=dout.dtype)  # dq, dk, dv side by side, as qkv in the forward
    dQ, dK, dV = dqkv.transpose(2, 0, 3, 1, 4)  # (N, h, T, d) each: views into dqkv
    np.matmul(P.swapaxes(-1, -2), dO, out=dV)  # (N, h, T, d)
    dP = dO @ V.swapaxes(-1, -2)  # (N, h, T, T)
    dS = masked_softmax_backward(dP, P)  # (N, h, T, T)
    dS *= scale  # S = (Q K^T) * scale
    np.matmul(dS, K, out=dQ)  # (N, h, T, d)
    np.matmul(dS.swapaxes(-1, -2), Q, out=dK)  # (N, h, T, d)
    dqkv2 = dqkv.reshape(-1, 3 * D)  # (NT, 3D)
    dW_qkv = x.reshape(-1, D).T @ dqkv2  # (D, 3D)
    dWq, dWk, dWv = dW_qkv.reshape(D, 3, D).transpose(1, 0, 2).copy()  # (D, D) each, contiguous
    dbq = dbk = dbv = None
    if has_bias:
        dbq, dbk, dbv = dqkv2.sum(axis=0).reshape(3, D)  # (D,) each
    dx = dqkv.reshape(N, T, 3 * D) @ W_qkv.T  # (N, T, D)
    return dx, dWq, dbq, dWk, dbk, dWv, dbv, dWo, dbo


# --8<-- [end:mha_pair]


# ---------------------------------------------------------------- the layer

PARAMS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


class MultiHeadSelfAttention(Module):
    """Multi-head self-attention over x (N, T, embed_dim) -> (N, T, embed_dim), as torch's
    ``nn.MultiheadAttention(embed_dim, num_heads, bias, batch_first=True)`` called as ``m(x, x, x)``.

    Parameters ``Wq, Wk, Wv, Wo`` (embed_dim, embed_dim), layout (in, out), and with ``bias``
    ``bq, bk, bv, bo`` (embed_dim,). Initialised as torch does: Xavier uniform over the stacked
    (embed_dim, 3 embed_dim) input projection, torch's Linear uniform for Wo, zero biases.

    ``causal=True``: query t sees keys s <= t. ``key_padding_mask``: an attribute, None or a bool
    array (N, T) with True at padded keys, set before ``forward`` (a ``Sequential`` passes only x);
    it stays in force until changed (``set_key_padding_mask`` sets it on every attention layer of a
    model). It is checked at every forward against x; a query left with no visible key raises.
    """

    kind = "multi_head_attention"
    contiguous = True  # see Module.contiguous

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        bias: bool = True,
        causal: bool = False,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        for n, v in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"MultiHeadSelfAttention: {n} must be a positive int, got {v!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiHeadSelfAttention: embed_dim={embed_dim} is not divisible by num_heads={num_heads}; "
                f"each head needs embed_dim / num_heads features"
            )
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.bias, self.causal = bool(bias), bool(causal)
        self.dtype = check_dtype_arg(dtype, "MultiHeadSelfAttention")
        self.key_padding_mask: np.ndarray | None = None
        gen = as_generator(rng, "MultiHeadSelfAttention")
        D = self.embed_dim
        W_qkv = xavier_uniform(gen, (D, 3 * D), D, 3 * D, self.dtype)  # torch: xavier_uniform_(in_proj_weight)
        for i, name in enumerate(("q", "k", "v")):
            self.params[f"W{name}"] = W_qkv[:, i * D : (i + 1) * D].copy()
            if self.bias:
                self.params[f"b{name}"] = constant((D,), 0.0, self.dtype)
        self.params["Wo"] = torch_uniform(gen, (D, D), D, D, self.dtype)
        if self.bias:
            self.params["bo"] = constant((D,), 0.0, self.dtype)

    def config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "bias": self.bias,
            "causal": self.causal,
            "dtype": self.dtype.name,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        D = self.embed_dim
        check_float_array(x, self.where)
        check_ndim(x, 3, self.where, layout=f"(N, T, {D})")
        if x.shape[-1] != D:
            raise ValueError(
                f"{self.where}: expected input (N, T, {D}), got shape {x.shape}: the last axis must hold embed_dim={D}"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        mask = self.key_padding_mask
        if mask is not None:
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
                got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
                raise TypeError(
                    f"{self.where}: key_padding_mask must be a bool numpy.ndarray (True = padded key), "
                    f"got {got}; e.g. mask = lengths[:, None] <= np.arange(T)"
                )
            if mask.shape != x.shape[:2]:
                raise ValueError(
                    f"{self.where}: key_padding_mask must have shape (N, T) = {x.shape[:2]} "
                    f"for input {x.shape}, got {mask.shape}"
                )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        p = self.params
        return mha_forward(
            x, *(p.get(k) for k in PARAMS), self.num_heads, self.causal, self.key_padding_mask, where=self.where
        )

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        dx, *grads = mha_backward(dout, cache)
        self.grads.update({k: g for k, g in zip(PARAMS, grads) if g is not None})
        return dx


def set_key_padding_mask(model: Module, key_padding_mask: np.ndarray | None) -> int:
    """Set ``key_padding_mask`` (N, T) bool, True = padded key, or None, on every
    ``MultiHeadSelfAttention`` inside ``model``; returns how many layers were set."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
    for m in layers:
        m.key_padding_mask = key_padding_mask
    return len(layers)


# ---------------------------------------------------------------- Transformer block


def transformer_block(
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    causal: bool = False,
    bias: bool = True,
    eps: float = 1e-5,
    approximate: str = "none",
    rng: np.random.Generator | int | None = None,
    dtype: Any = np.float64,
) -> Sequential:
    """A pre-LN Transformer block on x (N, T, d_model), built from manual_bp's own layers::

        x = x + MHA(LayerNorm(x))                          Residual(LayerNorm, MultiHeadSelfAttention)
        x = x + W2 GELU(W1 LayerNorm(x) + b1) + b2         Residual(LayerNorm, Linear, GELU, Linear)

    W1: (d_model, d_ff), W2: (d_ff, d_model). It is a plain ``Sequential``: its parameters are
    named "0.1.Wq", "1.1.W", ... (within the block), and ``architecture`` / ``build``,
    ``state_dict``, ``save`` / ``load`` and ``crosscheck.read_spec`` treat it like any other model.
    A key padding mask reaches the attention through ``set_key_padding_mask(model, mask)``.
    """
    gen = as_generator(rng, "transformer_block")
    return Sequential(
        Residual(
            LayerNorm(d_model, eps, dtype=dtype),
            MultiHeadSelfAttention(d_model, num_heads, bias, causal, rng=gen, dtype=dtype),
        ),
        Residual(
            LayerNorm(d_model, eps, dtype=dtype),
            Linear(d_model, d_ff, bias, rng=gen, dtype=dtype),
            GELU(approximate),
            Linear(d_ff, d_model, bias, rng=gen, dtype=dtype),
        ),
    )
