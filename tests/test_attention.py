"""Multi-head self-attention and the pre-LN Transformer block: finite differences, hand-checked values,
masks (exact zeros), errors, save/load, parity with PyTorch and JAX, and planted bugs that must be caught.

Every random case is rebuilt from its test id (a name and a seed) as in ``test_gradcheck_layers``.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.compare import compare_case
from crosscheck.spec import read_spec
from manual_bp import attention
from manual_bp import functional as F
from manual_bp.gradcheck import gradcheck
from tests.test_gradcheck_layers import case_rng

N_PARITY = int(os.environ.get("CROSSCHECK_ATTENTION_CASES", "60"))


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
    return {"heads": heads, "d": 1 + (seed // 4) % 3, "bias": seed % 3 != 2, "causal": seed % 2 == 1,
            "padding": seed % 5 in (1, 2, 4), "N": 1 if seed % 6 == 0 else 2 + seed % 2,
            "T": 1 if seed % 7 == 3 else 2 + seed % 4}


def _mha_case(seed: int, dtype: str = "float64") -> tuple[mbp.MultiHeadSelfAttention, np.ndarray, dict]:
    c = _mha_config(seed)
    r = case_rng("attention/mha", seed)
    D = c["heads"] * c["d"]
    layer = mbp.MultiHeadSelfAttention(D, c["heads"], c["bias"], c["causal"], rng=r, dtype=dtype)
    _randomise(r, layer, gain=float(r.choice([1.0, 2.0, 4.0])))
    if c["padding"]:
        layer.key_padding_mask = _padding(r, c["N"], c["T"], c["causal"])
    return layer, r.standard_normal((c["N"], c["T"], D)).astype(dtype), c


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("seed", range(36))
def test_gradcheck_mha(seed: int) -> None:
    layer, x, c = _mha_case(seed)
    x_before = x.copy()
    out = layer.forward(x)
    dout = case_rng("attention/mha-dout", seed).standard_normal(out.shape)
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok, f"seed={seed} {c}\n{result}"
    assert set(result.errors) == {"input", *layer.params}
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("seed", range(10))
def test_gradcheck_transformer_block(seed: int) -> None:
    """Two blocks (the second one causal on odd seeds), a padding mask on some, a head and a loss on top."""
    r = case_rng("attention/block", seed)
    heads = 1 + seed % 3
    D, T, N = heads * int(r.integers(1, 3)), int(r.integers(1, 5)), int(r.integers(1, 4))
    blocks = [mbp.transformer_block(D, heads, int(r.integers(1, 6)), causal=i == 1 and seed % 2 == 1,
                                    bias=seed % 4 != 3, approximate=("none", "tanh")[seed % 2], rng=r)
              for i in range(2)]
    model = _randomise(r, mbp.Sequential(*blocks, mbp.Flatten(), mbp.Linear(T * D, 3, rng=r)))
    if seed % 3:
        assert mbp.set_key_padding_mask(model, _padding(r, N, T, causal=seed % 2 == 1)) == 2
    x = r.standard_normal((N, T, D))
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, r.integers(0, 3, N))
    assert result.ok, f"seed={seed} x.shape={x.shape}\n{result}"


# ---------------------------------------------------------------- values by hand


def _identity_mha(D: int, heads: int, causal: bool = False) -> mbp.MultiHeadSelfAttention:
    layer = mbp.MultiHeadSelfAttention(D, heads, causal=causal, rng=0)
    for k, p in layer.params.items():
        p[...] = np.eye(D) if k.startswith("W") else 0.0
    return layer


def test_values_by_hand_one_head() -> None:
    """x = I (T = D = 2), all weights I: scores = I / sqrt(2), out = P = softmax rows of [a, 0], a = 1/sqrt 2."""
    x = np.eye(2)[None]  # (1, 2, 2)
    s = 1 / (1 + math.exp(-1 / math.sqrt(2)))  # softmax([a, 0])[0] = sigmoid(a)
    np.testing.assert_allclose(_identity_mha(2, 1).forward(x)[0], [[s, 1 - s], [1 - s, s]], rtol=1e-14)
    # causal: query 0 sees only key 0, so out[0] = x[0]; query 1 is unchanged
    np.testing.assert_allclose(_identity_mha(2, 1, causal=True).forward(x)[0], [[1, 0], [1 - s, s]], rtol=1e-14)
    # key 1 padded: both queries see only key 0
    layer = _identity_mha(2, 1)
    layer.key_padding_mask = np.array([[False, True]])
    np.testing.assert_array_equal(layer.forward(x)[0], [[1, 0], [1, 0]])


def test_values_by_hand_two_heads() -> None:
    """D = 2, two heads of width 1 (scale 1): head j attends with feature j alone."""
    x = np.eye(2)[None]
    s = 1 / (1 + math.exp(-1))  # softmax([1, 0])[0]
    # head 0: scores [[1, 0], [0, 0]] -> out[:, 0] = [s, 1/2]; head 1: [[0, 0], [0, 1]] -> out[:, 1] = [1/2, s]
    np.testing.assert_allclose(_identity_mha(2, 2).forward(x)[0], [[s, 0.5], [0.5, s]], rtol=1e-14)


def test_one_key_is_two_linear_maps() -> None:
    """T = 1: P = 1, so out = (x Wv + bv) Wo + bo, and Wq, Wk, bq, bk get exactly zero gradient."""
    r = case_rng("attention/T1", 0)
    layer = _randomise(r, mbp.MultiHeadSelfAttention(6, 3, rng=r))
    p = layer.params
    x = r.standard_normal((4, 1, 6))
    np.testing.assert_allclose(layer.forward(x), (x @ p["Wv"] + p["bv"]) @ p["Wo"] + p["bo"], rtol=1e-13, atol=1e-14)
    dout = r.standard_normal((4, 1, 6))
    np.testing.assert_allclose(layer.backward(dout), dout @ p["Wo"].T @ p["Wv"].T, rtol=1e-13, atol=1e-14)
    for k in ("Wq", "Wk", "bq", "bk"):
        assert not np.any(layer.grads[k]), k


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("seed", range(8))
def test_masked_weights_are_exactly_zero(seed: int) -> None:
    r = case_rng("attention/mask-zero", seed)
    N, T, heads, causal = 3, 5, 2, seed % 2 == 1
    x = r.standard_normal((N, T, 4))
    kpm = _padding(r, N, T, causal)
    p = _randomise(r, mbp.MultiHeadSelfAttention(4, heads, rng=r)).params
    _, cache = attention.mha_forward(x, *(p[k] for k in attention.PARAMS), heads, causal, kpm)
    hidden = np.broadcast_to(kpm[:, None, None, :] | (np.triu(np.ones((T, T)), 1) > 0 if causal else False),
                             cache.P.shape)
    assert np.all(cache.P[hidden] == 0) and np.all(cache.P[~hidden] > 0), f"seed={seed}"
    np.testing.assert_allclose(cache.P.sum(axis=-1), 1.0, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("seed", range(8))
def test_no_gradient_through_padded_keys(seed: int) -> None:
    """A padded position whose own output is not used (dout row 0) gets dx exactly 0: nothing reaches it
    through its key or value. Changing x there leaves every other output bit for bit unchanged."""
    r = case_rng("attention/mask-grad", seed)
    N, T, D = 2, 6, 6
    layer = _randomise(r, mbp.MultiHeadSelfAttention(D, 1 + seed % 3, causal=seed % 2 == 1, rng=r))
    kpm = _padding(r, N, T, layer.causal)
    kpm[0, 3] = True
    layer.key_padding_mask = kpm
    x = r.standard_normal((N, T, D))
    out = layer.forward(x)
    dout = r.standard_normal(out.shape)
    dout[kpm] = 0.0
    dx = layer.backward(dout)
    assert np.all(dx[kpm] == 0) and np.all(dx[~kpm] != 0), f"seed={seed}"
    x2 = x.copy()
    x2[kpm] += r.standard_normal(x2[kpm].shape)
    out2 = layer.forward(x2)
    np.testing.assert_array_equal(out2[~kpm], out[~kpm])


@pytest.mark.parametrize("seed", range(4))
def test_causal_outputs_ignore_the_future(seed: int) -> None:
    r = case_rng("attention/causal", seed)
    layer = _randomise(r, mbp.MultiHeadSelfAttention(4, 2, causal=True, rng=r))
    x = r.standard_normal((2, 6, 4))
    out = layer.forward(x)
    t = int(r.integers(0, 5))
    x2 = x.copy()
    x2[:, t + 1:] = r.standard_normal(x2[:, t + 1:].shape)
    np.testing.assert_array_equal(layer.forward(x2)[:, :t + 1], out[:, :t + 1])
    dout = np.zeros_like(out)
    dout[:, :t + 1] = r.standard_normal(dout[:, :t + 1].shape)
    layer.forward(x)
    assert not np.any(layer.backward(dout)[:, t + 1:])  # the future gets no gradient from the past


def test_query_without_a_visible_key_is_an_error() -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    layer.name = "3"
    layer.key_padding_mask = np.array([[False, True, False], [True, True, True]])
    with pytest.raises(ValueError, match=re.escape("MultiHeadSelfAttention '3': query 0 of sample 1 has no "
                                                   "visible key")):
        layer.forward(np.ones((2, 3, 4)))
    causal = mbp.MultiHeadSelfAttention(4, 2, causal=True, rng=0)
    causal.key_padding_mask = np.array([[False, False, False], [True, False, False]])
    with pytest.raises(ValueError, match=r"query 0 of sample 1 has no visible key: the key_padding_mask with "
                                         r"causal=True .* \(with causal=True: key 0\)"):
        causal.forward(np.ones((2, 3, 4)))
    model = mbp.Sequential(mbp.transformer_block(4, 2, 8, rng=0), mbp.transformer_block(4, 1, 8, causal=True, rng=1))
    mbp.set_key_padding_mask(model, np.array([[True, False, False]]))
    with pytest.raises(ValueError, match=re.escape("MultiHeadSelfAttention '1.0.1': query 0 of sample 0")):
        model.forward(np.ones((1, 3, 4)))
    with pytest.raises(ValueError, match="query 0 of sample 0 has no visible key"):  # the pure pair as well
        attention.mha_forward(np.ones((1, 2, 2)), *[np.eye(2), None] * 4, 1, False, np.ones((1, 2), bool))


@pytest.mark.parity
def test_what_the_frameworks_do_with_a_query_without_a_visible_key(frameworks) -> None:
    """The README's record, measured: torch's SDPA path gives the row zero attention (the output is the
    out-projection's bias) and zero gradient, its need_weights path NaN; jax.nn.dot_product_attention
    averages every value, masked ones included (masks are a finite -0.7 * max float); jax.nn.softmax(where=)
    gives zeros. manual_bp raises instead (test_query_without_a_visible_key_is_an_error)."""
    import jax
    import torch

    r = case_rng("attention/blind", 0)
    x, v = r.standard_normal((1, 3, 1, 2)), r.standard_normal((1, 3, 1, 2))
    visible = np.array([[[[False, False, False], [True, False, False], [True, True, True]]]])  # query 0: none
    q = torch.from_numpy(x.transpose(0, 2, 1, 3)).requires_grad_(True)
    vt = torch.from_numpy(v.transpose(0, 2, 1, 3))
    out = torch.nn.functional.scaled_dot_product_attention(q, q, vt, attn_mask=torch.from_numpy(visible))
    out[0, 0, 0].sum().backward()
    assert np.all(out.detach().numpy()[0, 0, 0] == 0) and not np.any(q.grad.numpy())
    mha = torch.nn.MultiheadAttention(2, 1, batch_first=True, dtype=torch.float64)
    h = torch.from_numpy(x[:, :, 0])
    _, w = mha(h, h, h, attn_mask=torch.from_numpy(~visible[0, 0]), need_weights=True)
    assert np.all(np.isnan(w.detach().numpy()[0, 0]))
    o = np.asarray(jax.nn.dot_product_attention(x, x, v, mask=visible))
    np.testing.assert_allclose(o[0, 0, 0], v[0, :, 0].mean(axis=0), rtol=1e-6)  # float32 softmax inside
    s = np.einsum("nthd,nshd->nhts", x, x)
    assert not np.any(np.asarray(jax.nn.softmax(s, axis=-1, where=visible))[0, 0, 0])


# ---------------------------------------------------------------- inputs, errors, dtype


def test_inputs_never_mutated_and_read_only_inputs_work() -> None:
    r = case_rng("attention/readonly", 0)
    layer, x, c = _mha_case(1)
    assert c["padding"] and c["causal"] and c["bias"]
    args = [x, *(layer.params[k] for k in attention.PARAMS)]
    kpm = layer.key_padding_mask
    frozen = [a.copy() for a in (*args, kpm)]
    for a in (*args, kpm):
        a.setflags(write=False)
    out, cache = attention.mha_forward(*args, layer.num_heads, layer.causal, kpm)
    dout = r.standard_normal(out.shape)
    dout.setflags(write=False)
    dout_before = dout.copy()
    grads = attention.mha_backward(dout, cache)
    for a, before in zip((*args, kpm, dout), (*frozen, dout_before)):
        np.testing.assert_array_equal(a, before)
    assert all(g.flags.writeable for g in grads)
    layer.forward(x)  # the layer accepts read-only x and mask too
    layer.backward(dout)


def _err(exc: type, pattern: str) -> tuple[type, str]:
    return exc, re.escape(pattern)


@pytest.mark.parametrize(("x", "mask", "expected"), [
    (np.ones((2, 4)), None, _err(ValueError, "MultiHeadSelfAttention: input must be 3-D (N, T, 4), got shape (2, 4)")),
    (np.ones((2, 3, 5)), None, _err(ValueError, "MultiHeadSelfAttention: expected input (N, T, 4), got shape "
                                                "(2, 3, 5): the last axis must hold embed_dim=4")),
    (np.ones((2, 3, 4), np.int64), None, _err(TypeError, "MultiHeadSelfAttention: input must have dtype float32 or "
                                                         "float64, got int64")),
    (np.ones((2, 3, 4), np.float32), None, _err(TypeError, "MultiHeadSelfAttention: input dtype float32 does not "
                                                           "match the parameters' dtype float64")),
    (np.ones((0, 3, 4)), None, _err(ValueError, "MultiHeadSelfAttention: input is empty (shape (0, 3, 4))")),
    (np.ones((2, 3, 4)), np.zeros((2, 4), bool), _err(ValueError, "MultiHeadSelfAttention: key_padding_mask must "
                                                                  "have shape (N, T) = (2, 3) for input (2, 3, 4), "
                                                                  "got (2, 4)")),
    (np.ones((2, 3, 4)), np.zeros((2, 3)), _err(TypeError, "MultiHeadSelfAttention: key_padding_mask must be a bool "
                                                           "numpy.ndarray (True = padded key), got float64")),
    (np.ones((2, 3, 4)), [[0, 0, 0]] * 2, _err(TypeError, "key_padding_mask must be a bool numpy.ndarray (True = "
                                                          "padded key), got list")),
])
def test_bad_input(x: np.ndarray, mask: object, expected: tuple[type, str]) -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    layer.key_padding_mask = mask
    with pytest.raises(expected[0], match=expected[1]):
        layer.forward(x)


@pytest.mark.parametrize(("args", "pattern"), [
    ((6, 4), "embed_dim=6 is not divisible by num_heads=4"),
    ((4, 0), "num_heads must be a positive int, got 0"),
    ((0, 1), "embed_dim must be a positive int, got 0"),
    ((4.0, 2), "embed_dim must be a positive int, got 4.0"),
])
def test_bad_hyperparameters(args: tuple, pattern: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"MultiHeadSelfAttention: {pattern}")):
        mbp.MultiHeadSelfAttention(*args)


def test_backward_errors() -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    with pytest.raises(mbp.StateError, match=re.escape("MultiHeadSelfAttention: backward() called before forward()")):
        layer.backward(np.ones((1, 2, 4)))
    layer.forward(np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match=re.escape("dout (same as the forward output) must have shape (1, 2, 4), "
                                                   "got (1, 4)")):
        layer.backward(np.ones((1, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_preserved(dtype: str) -> None:
    r = case_rng("attention/dtype", 0)
    model = mbp.transformer_block(6, 3, 5, causal=True, rng=r, dtype=dtype)
    mbp.set_key_padding_mask(model, np.array([[False, True, False, True]]))
    out = model.forward(r.standard_normal((1, 4, 6)).astype(dtype))
    dx = model.backward(r.standard_normal(out.shape).astype(dtype))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in model.grads.values())
    assert all(p.dtype == np.dtype(dtype) for p in model.params.values())


def test_init_is_torchs() -> None:
    """Xavier uniform over the stacked (D, 3D) input projection, U(+-1/sqrt D) for Wo, zero biases; seeded."""
    D = 64
    layer = mbp.MultiHeadSelfAttention(D, 4, rng=7)
    qkv = np.concatenate([layer.params[k] for k in ("Wq", "Wk", "Wv")], axis=1)
    assert np.abs(qkv).max() <= math.sqrt(6 / (4 * D)) and np.abs(qkv).max() > 0.95 * math.sqrt(6 / (4 * D))
    assert np.abs(layer.params["Wo"]).max() <= 1 / math.sqrt(D)
    assert all(not np.any(layer.params[b]) for b in ("bq", "bk", "bv", "bo"))
    again = mbp.MultiHeadSelfAttention(D, 4, rng=7)
    assert all(np.array_equal(v, again.params[k]) for k, v in layer.params.items())
    assert list(mbp.MultiHeadSelfAttention(4, 2, bias=False).params) == ["Wq", "Wk", "Wv", "Wo"]


# ---------------------------------------------------------------- model plumbing


def test_block_structure_save_load_and_spec(tmp_path) -> None:
    r = case_rng("attention/io", 0)
    model = mbp.Sequential(mbp.transformer_block(6, 2, 10, causal=True, rng=r), mbp.Flatten(),
                           mbp.Linear(18, 2, rng=r))
    _randomise(r, model)
    names = set(model.params)
    assert {"0.0.0.gamma", "0.0.1.Wq", "0.0.1.bo", "0.1.1.W", "0.1.3.b", "2.W"} <= names
    assert mbp.build(mbp.architecture(model)).config() == model.config()
    kpm = np.array([[False, True, False]])
    mbp.set_key_padding_mask(model, kpm)
    x = r.standard_normal((1, 3, 6))
    out = model.forward(x)
    loaded = mbp.load(mbp.save(tmp_path / "block.npz", model))
    assert loaded.config() == model.config()
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not np.array_equal(loaded.forward(x), out)  # the padding mask is data, not state: it is not saved
    mbp.set_key_padding_mask(loaded, kpm)
    np.testing.assert_array_equal(loaded.forward(x), out)
    spec = read_spec(model)
    attn = next(layer for layer in spec.layers[0].children if layer.kind == "multi_head_attention")
    assert attn.name == "0.0.1" and attn.config["causal"] and sorted(attn.params) == sorted(
        ["Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"])
    np.testing.assert_array_equal(attn.fixed["key_padding_mask"], kpm)


# ---------------------------------------------------------------- parity with PyTorch and JAX


def _compare(model, loss_fn, x, y, dout, frameworks, case_id="attention", dloss=1.3):
    return compare_case(model, loss_fn, x, y, dloss=dloss, dout=dout, frameworks=frameworks, case_id=case_id)


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", range(0, 36, 5))
def test_parity_mha(seed: int, dtype: str, frameworks) -> None:
    layer, x, c = _mha_case(seed, dtype)
    N, T, D = x.shape
    model = mbp.Sequential(layer, mbp.Flatten(), mbp.Linear(T * D, 3, rng=seed, dtype=dtype))
    r = case_rng("attention/parity-mha", seed)
    result = _compare(model, mbp.SoftmaxCrossEntropy(), x, r.integers(0, 3, N), r.standard_normal((N, 3)).astype(dtype),
                      frameworks, f"mha seed={seed} {dtype} {c}")
    assert result.ok, result.summary()


@pytest.mark.parity
@pytest.mark.parametrize("case_id", range(N_PARITY))
def test_parity_random_transformer_cases(case_id: int, frameworks) -> None:
    from crosscheck.cases_attention import attention_case

    c = attention_case(case_id)
    result = compare_case(c.model, c.loss_fn, c.x, c.y, dloss=c.dloss, dout=c.dout, frameworks=frameworks,
                          case_id=c.case_id, description=c.description, replay=c.replay)
    assert result.ok, result.summary()
    assert len(result.comparisons) == 6
    assert "multi_head_attention" in result.spec.kinds


# ---------------------------------------------------------------- planted bugs


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
    model = _randomise(r, mbp.Sequential(mbp.transformer_block(6, 2, 8, causal=True, rng=r), mbp.Flatten(),
                                         mbp.Linear(24, 3, rng=r)))
    mbp.set_key_padding_mask(model, _padding(r, 3, 4, causal=True) | np.array([False, False, True, False]))
    return model, r.standard_normal((3, 4, 6)), r.integers(0, 3, 3), r.standard_normal((3, 3))


@pytest.mark.parity
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_bug_is_caught(name: str, seed: int, monkeypatch, frameworks) -> None:
    model, x, y, dout = _planted_model(seed)
    assert _compare(model, mbp.SoftmaxCrossEntropy(), x, y, dout, frameworks).ok
    _plant(monkeypatch, name)
    result = _compare(model, mbp.SoftmaxCrossEntropy(), x, y, dout, frameworks)
    assert not result.ok, f"{name} seed={seed}: the planted bug went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp" and (comp.mode, bad.name) == PLANTS[name], (name, seed, comp.mode, bad.name)
    assert bad.error > 100 * bad.bound, f"{name} seed={seed}: {bad.name} error {bad.error:.2e} barely above the bound"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_bug_fails_finite_differences(name: str, seed: int, monkeypatch) -> None:
    """The framework-free oracle catches the same bugs (the forward bug: its backward no longer matches it)."""
    model, x, y, _ = _planted_model(seed)
    assert gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y).ok
    _plant(monkeypatch, name)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.max_error > 1e-3, f"{name} seed={seed}\n{result}"
