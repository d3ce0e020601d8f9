"""Random attention layers, padding masks and planted attention bugs: shared by
tests/manual_bp/test_attention.py and tests/crosscheck/test_attention.py."""

from __future__ import annotations

import numpy as np

import manual_bp as mbp
from manual_bp import attention
from manual_bp import functional as F
from tests.helpers import case_rng


def _padding(r: np.random.Generator, N: int, T: int, causal: bool) -> np.ndarray:
    """(N, T) bool, True = padded key, leaving every query a visible key (with causal: key 0)."""
    mask = r.random((N, T)) < 0.4
    if causal:
        mask[:, 0] = False  # query 0 sees key 0 only
    mask[mask.all(axis=1), -1] = False
    return mask


def _randomise(r: np.random.Generator, model: mbp.Module, gain: float = 1.0) -> mbp.Module:
    """Random biases and LayerNorm affines (zeros and ones would hide db, dgamma, dbeta); weights * gain."""
    for m in model.modules():
        for k, p in m.params.items():
            if k.startswith("b") or k in ("gamma", "beta"):
                p[:] = (1.0 if k == "gamma" else 0.0) + 0.5 * r.standard_normal(p.shape)
            elif m.kind == "multi_head_attention":
                p *= gain
    return model


def _mha_config(seed: int) -> dict:
    """Cycles through heads 1..4, bias on/off, causal, padding, N = 1 and T = 1."""
    heads = 1 + seed % 4
    return {
        "heads": heads,
        "d": 1 + (seed // 4) % 3,
        "bias": seed % 3 != 2,
        "causal": seed % 2 == 1,
        "padding": seed % 5 in (1, 2, 4),
        "N": 1 if seed % 6 == 0 else 2 + seed % 2,
        "T": 1 if seed % 7 == 3 else 2 + seed % 4,
    }


def _mha_case(seed: int, dtype: str = "float64") -> tuple[mbp.MultiHeadSelfAttention, np.ndarray, dict]:
    c = _mha_config(seed)
    r = case_rng("attention/mha", seed)
    D = c["heads"] * c["d"]
    layer = mbp.MultiHeadSelfAttention(D, c["heads"], c["bias"], c["causal"], rng=r, dtype=dtype)
    _randomise(r, layer, gain=float(r.choice([1.0, 2.0, 4.0])))
    if c["padding"]:
        layer.key_padding_mask = _padding(r, c["N"], c["T"], c["causal"])
    return layer, r.standard_normal((c["N"], c["T"], D)).astype(dtype), c


def _plant(monkeypatch, name: str) -> None:
    if name == "mask_after_softmax":  # softmax over every key, then the hidden ones zeroed: rows no longer sum to 1

        def bad(S, hidden):
            P = F.softmax_forward(S)[0]
            return P if hidden is None else np.where(hidden, 0.0, P)

        monkeypatch.setattr(attention, "masked_softmax", bad)
    elif name == "softmax_backward_without_sum":  # dS = P * dP
        monkeypatch.setattr(attention, "masked_softmax_backward", lambda dP, P: P * dP)
    elif name == "backward_without_scale":  # dS not multiplied by 1/sqrt(d)
        good = attention.mha_backward
        monkeypatch.setattr(attention, "mha_backward", lambda dout, cache: good(dout, cache._replace(scale=1.0)))


PLANTS = {  # name -> the first diverging tensor (mode, name) for the model of _planted_model
    "mask_after_softmax": ("loss", "0.0.1.out"),
    "softmax_backward_without_sum": ("loss", "0.0.1.dWq"),
    "backward_without_scale": ("loss", "0.0.1.dWq"),
}


def _planted_model(seed: int):
    """One causal block (d = 3 per head, so 1/sqrt(d) != 1) with key padding, a head and cross-entropy."""
    r = case_rng("attention/planted", seed)
    model = _randomise(
        r, mbp.Sequential(mbp.transformer_block(6, 2, 8, causal=True, rng=r), mbp.Flatten(), mbp.Linear(24, 3, rng=r))
    )
    mbp.set_key_padding_mask(model, _padding(r, 3, 4, causal=True) | np.array([False, False, True, False]))
    return model, r.standard_normal((3, 4, 6)), r.integers(0, 3, 3), r.standard_normal((3, 3))
