"""Multi-head self-attention and the pre-LN Transformer block (manual_bp/attention.py): finite differences,
hand-checked values, masks (exact zeros), errors, dtypes, and planted bugs that finite differences must catch.

Every random case is rebuilt from its test id (a name and a seed). The parity tests are in
tests/crosscheck/test_attention.py.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import attention
from manual_bp.gradcheck import gradcheck
from tests.helpers import case_rng
from tests.helpers.attention import PLANTS, _mha_case, _padding, _plant, _planted_model, _randomise

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
    blocks = [
        mbp.transformer_block(
            D,
            heads,
            int(r.integers(1, 6)),
            causal=i == 1 and seed % 2 == 1,
            bias=seed % 4 != 3,
            approximate=("none", "tanh")[seed % 2],
            rng=r,
        )
        for i in range(2)
    ]
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
    hidden = np.broadcast_to(
        kpm[:, None, None, :] | (np.triu(np.ones((T, T)), 1) > 0 if causal else False), cache.P.shape
    )
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
    x2[:, t + 1 :] = r.standard_normal(x2[:, t + 1 :].shape)
    np.testing.assert_array_equal(layer.forward(x2)[:, : t + 1], out[:, : t + 1])
    dout = np.zeros_like(out)
    dout[:, : t + 1] = r.standard_normal(dout[:, : t + 1].shape)
    layer.forward(x)
    assert not np.any(layer.backward(dout)[:, t + 1 :])  # the future gets no gradient from the past


def test_query_without_a_visible_key_is_an_error() -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    layer.name = "3"
    layer.key_padding_mask = np.array([[False, True, False], [True, True, True]])
    with pytest.raises(
        ValueError, match=re.escape("MultiHeadSelfAttention '3': query 0 of sample 1 has no visible key")
    ):
        layer.forward(np.ones((2, 3, 4)))
    causal = mbp.MultiHeadSelfAttention(4, 2, causal=True, rng=0)
    causal.key_padding_mask = np.array([[False, False, False], [True, False, False]])
    with pytest.raises(
        ValueError,
        match=r"query 0 of sample 1 has no visible key: the key_padding_mask with "
        r"causal=True .* \(with causal=True: key 0\)",
    ):
        causal.forward(np.ones((2, 3, 4)))
    model = mbp.Sequential(mbp.transformer_block(4, 2, 8, rng=0), mbp.transformer_block(4, 1, 8, causal=True, rng=1))
    mbp.set_key_padding_mask(model, np.array([[True, False, False]]))
    with pytest.raises(ValueError, match=re.escape("MultiHeadSelfAttention '1.0.1': query 0 of sample 0")):
        model.forward(np.ones((1, 3, 4)))
    with pytest.raises(ValueError, match="query 0 of sample 0 has no visible key"):  # the pure pair as well
        attention.mha_forward(np.ones((1, 2, 2)), *[np.eye(2), None] * 4, 1, False, np.ones((1, 2), bool))


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


@pytest.mark.parametrize(
    ("x", "mask", "expected"),
    [
        (
            np.ones((2, 4)),
            None,
            _err(ValueError, "MultiHeadSelfAttention: input must be 3-D (N, T, 4), got shape (2, 4)"),
        ),
        (
            np.ones((2, 3, 5)),
            None,
            _err(
                ValueError,
                "MultiHeadSelfAttention: expected input (N, T, 4), got shape "
                "(2, 3, 5): the last axis must hold embed_dim=4",
            ),
        ),
        (
            np.ones((2, 3, 4), np.int64),
            None,
            _err(TypeError, "MultiHeadSelfAttention: input must have dtype float32 or float64, got int64"),
        ),
        (
            np.ones((2, 3, 4), np.float32),
            None,
            _err(TypeError, "MultiHeadSelfAttention: input dtype float32 does not match the parameters' dtype float64"),
        ),
        (np.ones((0, 3, 4)), None, _err(ValueError, "MultiHeadSelfAttention: input is empty (shape (0, 3, 4))")),
        (
            np.ones((2, 3, 4)),
            np.zeros((2, 4), bool),
            _err(
                ValueError,
                "MultiHeadSelfAttention: key_padding_mask must "
                "have shape (N, T) = (2, 3) for input (2, 3, 4), "
                "got (2, 4)",
            ),
        ),
        (
            np.ones((2, 3, 4)),
            np.zeros((2, 3)),
            _err(
                TypeError,
                "MultiHeadSelfAttention: key_padding_mask must be a bool "
                "numpy.ndarray (True = padded key), got float64",
            ),
        ),
        (
            np.ones((2, 3, 4)),
            [[0, 0, 0]] * 2,
            _err(TypeError, "key_padding_mask must be a bool numpy.ndarray (True = padded key), got list"),
        ),
    ],
)
def test_bad_input(x: np.ndarray, mask: object, expected: tuple[type, str]) -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    layer.key_padding_mask = mask
    with pytest.raises(expected[0], match=expected[1]):
        layer.forward(x)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((6, 4), "embed_dim=6 is not divisible by num_heads=4"),
        ((4, 0), "num_heads must be a positive int, got 0"),
        ((0, 1), "embed_dim must be a positive int, got 0"),
        ((4.0, 2), "embed_dim must be a positive int, got 4.0"),
    ],
)
def test_bad_hyperparameters(args: tuple, pattern: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"MultiHeadSelfAttention: {pattern}")):
        mbp.MultiHeadSelfAttention(*args)


def test_backward_errors() -> None:
    layer = mbp.MultiHeadSelfAttention(4, 2, rng=0)
    with pytest.raises(mbp.StateError, match=re.escape("MultiHeadSelfAttention: backward() called before forward()")):
        layer.backward(np.ones((1, 2, 4)))
    layer.forward(np.ones((1, 2, 4)))
    with pytest.raises(
        ValueError, match=re.escape("dout (same as the forward output) must have shape (1, 2, 4), got (1, 4)")
    ):
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


# ---------------------------------------------------------------- planted bugs


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_bug_fails_finite_differences(name: str, seed: int, monkeypatch) -> None:
    """The framework-free oracle catches the same bugs (the forward bug: its backward no longer matches it)."""
    model, x, y, _ = _planted_model(seed)
    assert gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y).ok
    _plant(monkeypatch, name)
    result = gradcheck(model, mbp.SoftmaxCrossEntropy(), x, y)
    assert result.max_error > 1e-3, f"{name} seed={seed}\n{result}"
