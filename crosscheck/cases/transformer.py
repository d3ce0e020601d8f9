"""Transformer cases: ``attention_case(i)`` draws x (N, T, D), one pre-LN Transformer block
(``manual_bp.transformer_block``) or a bare multi-head self-attention, then Flatten, a Linear and a
loss; random causal and bias flags, LayerNorm eps, GELU form and d_ff, random LayerNorm gammas and
attention biases, sharper queries (``sharp``) and key padding (``padding``). docs/cases.md."""

from __future__ import annotations

import numpy as np

import manual_bp as mbp
from crosscheck.cases.common import LOSSES, Case, describe, loss_and_target

_SALT = 0x6174  # "at": keeps these streams apart from the other families'


def _short(layer: mbp.Module) -> str:
    """A Transformer block as ``Block(h=2 causal d_ff=7)``; any other layer by its kind's entry."""
    if layer.kind == "sequential":
        mha = next(m for m in layer.modules() if m.kind == "multi_head_attention")
        ff = next(m for m in layer.modules() if m.kind == "linear")
        return f"Block(h={mha.num_heads}{' causal' if mha.causal else ''} d_ff={ff.out_features})"
    return describe(layer)


class AttentionCase(Case):
    """A ``Case`` whose description names the Transformer blocks (``crosscheck.cases.Case`` lists MLP layers)."""

    @property
    def description(self) -> str:
        N, T, D = self.x.shape
        arch = " -> ".join(_short(layer) for layer in self.model)
        return f"{self.dtype} x=({N}, {T}, {D}) {arch} {self.loss_fn!r} {self._labels}{self._tags}"


def _padding(rng: np.random.Generator, N: int, T: int, causal: bool) -> np.ndarray:
    """(N, T) bool, True = padded key; no query is left without a visible key (see the module docstring)."""
    mask = rng.random((N, T)) < rng.uniform(0.1, 0.7)
    if causal:
        mask[:, 0] = False
    else:
        full = mask.all(axis=1)
        mask[full, rng.integers(0, T, int(full.sum()))] = False
    return mask


def _randomise(rng: np.random.Generator, model: mbp.Module, sharp: bool) -> None:
    """Random LayerNorm gamma (both signs) and beta, random attention biases; sharper queries if asked."""
    for m in model.modules():
        if m.kind == "layer_norm" and "gamma" in m.params:
            D = m.normalized_shape
            m.params["gamma"][:] = rng.choice([-1.0, 1.0], D) * rng.uniform(0.5, 1.5, D)
            m.params["beta"][:] = 0.5 * rng.standard_normal(D)
        elif m.kind == "multi_head_attention":
            for k in ("bq", "bk", "bv", "bo"):
                if k in m.params:
                    m.params[k][:] = 0.3 * rng.standard_normal(m.embed_dim)
            if sharp:
                m.params["Wq"] *= rng.uniform(3.0, 6.0)


def attention_case(case_id: int, dtype: str | None = None) -> Case:
    """The Transformer case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    rng = np.random.default_rng([_SALT, case_id])
    replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    N, T, heads = int(rng.integers(1, 7)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
    D = heads * int(rng.integers(1, 7))
    # One block (or a bare attention layer) per case: through two stacked blocks the term-magnitude
    # bound S of the first block's attention gradients grows ~1e11 times their size, so the float64
    # check would say little there. Stacks are covered by finite differences (tests/manual_bp/test_attention.py).
    body = str(rng.choice(["block", "block", "attention"]))
    tags: list[str] = []
    causal, bias = bool(rng.random() < 0.5), bool(rng.random() < 0.8)
    if body == "attention":
        layer: mbp.Module = mbp.MultiHeadSelfAttention(D, heads, bias, causal, rng=rng, dtype=dtype)
    else:
        layer = mbp.transformer_block(
            D,
            heads,
            int(rng.integers(1, 2 * D + 1)),
            causal=causal,
            bias=bias,
            eps=float(rng.choice([1e-5, 1e-3, 0.1])),
            approximate=str(rng.choice(["none", "tanh"])),
            rng=rng,
            dtype=dtype,
        )
    sharp = bool(rng.random() < 0.2)
    _randomise(rng, layer, sharp)
    layers = [layer]
    tags += ["sharp"] if sharp else []
    loss = LOSSES[rng.integers(len(LOSSES))]
    C = int(rng.integers(2, 7)) if loss == "softmax_cross_entropy" else int(rng.integers(1, 7))
    model = mbp.Sequential(*layers, mbp.Flatten(), mbp.Linear(T * D, C, bool(rng.random() < 0.8), rng=rng, dtype=dtype))
    any_causal = any(m.causal for m in model.modules() if m.kind == "multi_head_attention")
    if rng.random() < 0.5:
        mbp.set_key_padding_mask(model, _padding(rng, N, T, any_causal))
        tags.append("padding")
    labels = "int" if rng.random() < 0.6 else "prob"
    loss_fn, y = loss_and_target(rng, loss, labels, dtype, N, C)
    x = (float(rng.choice([0.5, 1.0, 3.0])) * rng.standard_normal((N, T, D))).astype(dtype)
    dout = rng.standard_normal((N, C)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return AttentionCase(str(case_id), dtype, model, loss_fn, x, y, dloss, dout, tuple(tags), replay=replay)
