"""Value tests that pin exact formulas of manual_bp's convolution, pooling and attention, found by
mutation testing of ``manual_bp/conv.py``, ``pool.py``, ``windows.py`` and ``attention.py`` (see
mutation/README.md).

Finite differences cannot see a mutant that changes the forward and the cache consistently (the
forward is the oracle), nor a default argument, an initialiser's draw or a message. These tests
compare with references written independently here: plain loops over windows, keys and heads with
``math``, explicit draws from a seeded generator, and exact messages. The seed is in the test id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import attention, conv, pool

SEEDS = range(8)


def rng_of(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([100 + salt, seed])


# ---------------------------------------------------------------- average pooling by loops


def _avg_pool_loops(
    x: np.ndarray, dout_of: Callable[[tuple], np.ndarray], k: tuple, s: tuple, p: tuple, include: bool
) -> tuple[np.ndarray, np.ndarray]:
    """out and dx of an average pool, one window at a time: windows start every s while the last tap
    stays inside the padded input; the divisor is kH kW or the number of unpadded cells."""
    N, C, H, W = x.shape
    starts = [
        [y for y in range(size + 2 * pad) if y * st + kk - 1 <= size + 2 * pad - 1]
        for size, pad, st, kk in ((H, p[0], s[0], k[0]), (W, p[1], s[1], k[1]))
    ]
    out = np.zeros((N, C, len(starts[0]), len(starts[1])))
    dout = dout_of(out.shape)
    dx = np.zeros_like(x)
    for y in starts[0]:
        for xo in starts[1]:
            cells = [(y * s[0] + i - p[0], xo * s[1] + j - p[1]) for i in range(k[0]) for j in range(k[1])]
            cells = [(r, c) for r, c in cells if 0 <= r < H and 0 <= c < W]
            count = k[0] * k[1] if include else len(cells)
            for r, c in cells:
                out[:, :, y, xo] += x[:, :, r, c] / count
                dx[:, :, r, c] += dout[:, :, y, xo] / count
    return out, dx


PADS = [(1, 0), (0, 1), (1, 1), (0, 0)]


@pytest.mark.parametrize("seed", SEEDS)
def test_avg_pool_divisor_by_loops(seed: int) -> None:
    """Non-square kernels, padding on one axis or both: the pure pair's default and the layer's default
    divide by kH kW (count_include_pad=True, torch's default); False divides by the unpadded cells."""
    r = rng_of(seed, 1)
    p = PADS[seed % 4]
    kh, kw = int(r.integers(max(1, 2 * p[0]), 4)), int(r.integers(max(1, 2 * p[1]), 4))
    if kh == kw:
        kh, kw = (kh, kw + 1) if kw < 3 else (kh - 1, kw)
    k = (kh, kw)
    stride = None if seed % 3 == 0 else (int(r.integers(1, 4)), int(r.integers(1, 4)))
    s = k if stride is None else stride
    x = r.standard_normal(
        (2, 2, max(1, kh - 2 * p[0]) + int(r.integers(0, 4)), max(1, kw - 2 * p[1]) + int(r.integers(0, 4)))
    )
    douts = {}

    def dout_of(shape: tuple) -> np.ndarray:
        return douts.setdefault(shape, r.standard_normal(shape))

    for include in (True, False):
        ref_out, ref_dx = _avg_pool_loops(x, dout_of, k, s, p, include)
        dout = dout_of(ref_out.shape)
        runs = [pool.avg_pool2d_forward(x, k, stride, p, include)]
        layer = mbp.AvgPool2d(k, stride, p) if include else mbp.AvgPool2d(k, stride, p, count_include_pad=False)
        if include:
            runs.append(pool.avg_pool2d_forward(x, k, stride, p))  # the pure pair's default
        for out, cache in runs:
            np.testing.assert_allclose(out, ref_out, rtol=1e-13, atol=1e-15, err_msg=f"seed={seed} {include}")
            np.testing.assert_allclose(pool.avg_pool2d_backward(dout, cache), ref_dx, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.forward(x), ref_out, rtol=1e-13, atol=1e-15, err_msg=f"seed={seed}")
        np.testing.assert_allclose(layer.backward(dout), ref_dx, rtol=1e-13, atol=1e-15)
        assert layer.config()["count_include_pad"] is include


# ---------------------------------------------------------------- max pooling: empty windows, long kernels


def _first_empty_window(size: int, k: int, s: int, p: int, d: int) -> int | None:
    """Index of the first window (start y s, taps y s + i d in the padded input) with no unpadded tap."""
    y = 0
    while y * s + d * (k - 1) <= size + 2 * p - 1:
        if not any(p <= y * s + i * d < p + size for i in range(k)):
            return y
        y += 1
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_max_pool_rejects_exactly_the_windows_inside_the_padding(seed: int) -> None:
    """MaxPool2d raises iff a window lies entirely in the padding (checked window by window here),
    naming the first such window and its axis (H before W)."""
    r = rng_of(seed, 2)
    outcomes = set()
    for _ in range(60):
        k = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        p = (int(r.integers(0, k[0] // 2 + 1)), int(r.integers(0, k[1] // 2 + 1)))
        d, s = (int(r.integers(1, 5)), int(r.integers(1, 5))), (int(r.integers(1, 4)), int(r.integers(1, 4)))
        H, W = int(r.integers(1, 8)), int(r.integers(1, 8))
        if d[0] * (k[0] - 1) + 1 > H + 2 * p[0] or d[1] * (k[1] - 1) + 1 > W + 2 * p[1]:
            continue  # the kernel does not fit: another check, another message
        empty = [
            (axis, _first_empty_window(size, k[a], s[a], p[a], d[a]))
            for a, (axis, size) in enumerate((("H", H), ("W", W)))
        ]
        empty = [(axis, y) for axis, y in empty if y is not None]
        layer = mbp.MaxPool2d(k, s, p, d)
        x = np.zeros((1, 1, H, W))
        if empty:
            axis, y = empty[0]
            with pytest.raises(
                ValueError,
                match=re.escape(
                    f"MaxPool2d: window {y} along {axis} lies entirely in the padding for input shape (1, 1, {H}, {W})"
                ),
            ):
                layer.forward(x)
        else:
            layer.forward(x)
        outcomes.add(bool(empty))
    assert outcomes == {True, False}, f"seed={seed}: both outcomes must occur"


@pytest.mark.parametrize("seed", range(3))
def test_max_pool_kernel_of_257_elements(seed: int) -> None:
    """A window of 257 elements: the index of its maximum (up to 256) needs more than 8 bits."""
    r = rng_of(seed, 3)
    x = r.permutation(257).astype(float).reshape(1, 1, 1, 257)
    where = 256 if seed == 0 else int(r.integers(0, 257))
    x[0, 0, 0, where] = 1000.0
    out, cache = pool.max_pool2d_forward(x, (1, 257))
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == 1000.0
    dout = r.standard_normal((1, 1, 1, 1))
    expected = np.zeros_like(x)
    expected[0, 0, 0, where] = dout[0, 0, 0, 0]
    np.testing.assert_array_equal(pool.max_pool2d_backward(dout, cache), expected)


# ---------------------------------------------------------------- no bias, no bias gradient


@pytest.mark.parametrize("seed", range(4))
def test_layers_without_bias_return_no_bias_gradient(seed: int) -> None:
    r = rng_of(seed, 4)
    x = r.standard_normal((2, 2, 4, 5))
    _, cache = conv.conv2d_forward(x, r.standard_normal((3, 2, 2, 2)), None)
    dx, dW, db = conv.conv2d_backward(r.standard_normal((2, 3, 3, 4)), cache)
    assert db is None and dx.shape == x.shape and dW.shape == (3, 2, 2, 2)
    layer = mbp.Conv2d(2, 3, 2, bias=False, rng=seed)
    layer.backward(r.standard_normal(layer.forward(x).shape))
    assert set(layer.grads) == set(layer.params) == {"W"}
    xs = r.standard_normal((2, 3, 4))
    W = [r.standard_normal((4, 4)) for _ in range(4)]
    out, cache = attention.mha_forward(xs, W[0], None, W[1], None, W[2], None, W[3], None, 2)
    grads = attention.mha_backward(r.standard_normal(out.shape), cache)
    assert [g is None for g in grads] == [False, False, True, False, True, False, True, False, True]
    mha = mbp.MultiHeadSelfAttention(4, 2, bias=False, rng=seed)
    mha.backward(r.standard_normal(mha.forward(xs).shape))
    assert set(mha.grads) == set(mha.params) == {"Wq", "Wk", "Wv", "Wo"}


# ---------------------------------------------------------------- initial values: explicit draws


INITS = {  # name -> W drawn from a generator, with fan_in, fan_out as torch counts them for a conv weight
    "torch": lambda g, shape, fi, fo: g.uniform(-1 / math.sqrt(fi), 1 / math.sqrt(fi), shape),
    "xavier_uniform": lambda g, shape, fi, fo: g.uniform(-math.sqrt(6 / (fi + fo)), math.sqrt(6 / (fi + fo)), shape),
    "xavier_normal": lambda g, shape, fi, fo: g.normal(0.0, math.sqrt(2 / (fi + fo)), shape),
    "kaiming_uniform": lambda g, shape, fi, fo: g.uniform(-math.sqrt(6 / fi), math.sqrt(6 / fi), shape),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("init", list(INITS))
@pytest.mark.parametrize("seed", range(3))
def test_conv_initial_values_are_explicit_draws(seed: int, init: str, dtype: str) -> None:
    """Conv2d(4, 6, (2, 3), groups=2): fan_in = 4 / 2 * 2 * 3 = 12, fan_out = 6 * 2 * 3 = 36; W is drawn
    first, then b from U(+-1/sqrt(fan_in)), both rounded to the layer's dtype."""
    layer = mbp.Conv2d(4, 6, (2, 3), groups=2, rng=seed, init=init, dtype=dtype)
    g = np.random.default_rng(seed)
    W = INITS[init](g, (6, 2, 2, 3), 12, 36).astype(dtype)
    b = g.uniform(-1 / math.sqrt(12), 1 / math.sqrt(12), 6).astype(dtype)
    assert layer.params["W"].dtype == layer.params["b"].dtype == np.dtype(dtype)
    np.testing.assert_allclose(layer.params["W"], W, rtol=1e-6 if dtype == "float32" else 1e-14)
    np.testing.assert_allclose(layer.params["b"], b, rtol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_attention_initial_values_are_explicit_draws(seed: int) -> None:
    """One Xavier-uniform draw of the stacked (D, 3D) projection, split into Wq | Wk | Wv, then Wo
    from U(+-1/sqrt D); zero biases, non-causal by default."""
    D, heads = (2, 4, 6, 8)[seed], (1, 2, 3, 2)[seed]
    layer = mbp.MultiHeadSelfAttention(D, heads, rng=seed)
    g = np.random.default_rng(seed)
    bound = math.sqrt(6 / (D + 3 * D))
    W_qkv = g.uniform(-bound, bound, (D, 3 * D))
    Wo = g.uniform(-1 / math.sqrt(D), 1 / math.sqrt(D), (D, D))
    for i, name in enumerate(("Wq", "Wk", "Wv")):
        np.testing.assert_allclose(layer.params[name], W_qkv[:, i * D : (i + 1) * D], rtol=1e-14)
    np.testing.assert_allclose(layer.params["Wo"], Wo, rtol=1e-14)
    assert all(not layer.params[b].any() for b in ("bq", "bk", "bv", "bo"))
    assert layer.causal is False and layer.config()["causal"] is False


@pytest.mark.parametrize("seed", range(4))
def test_transformer_block_draws_like_its_layers(seed: int) -> None:
    """transformer_block(rng=seed) equals the attention, then the two Linears, built in that order from
    one generator seeded with seed (and from a Generator passed as rng)."""
    D, heads, d_ff = 4, 2, 3 + seed
    g = np.random.default_rng(seed)
    mha = mbp.MultiHeadSelfAttention(D, heads, rng=g)
    l1, l2 = mbp.Linear(D, d_ff, rng=g), mbp.Linear(d_ff, D, rng=g)
    expected = {
        **{f"0.1.{k}": v for k, v in mha.params.items()},
        **{f"1.1.{k}": v for k, v in l1.params.items()},
        **{f"1.3.{k}": v for k, v in l2.params.items()},
        "0.0.gamma": np.ones(D),
        "0.0.beta": np.zeros(D),
        "1.0.gamma": np.ones(D),
        "1.0.beta": np.zeros(D),
    }
    for rng in (seed, np.random.default_rng(seed)):
        block = mbp.transformer_block(D, heads, d_ff, rng=rng)
        assert set(block.params) == set(expected)
        for k, v in expected.items():
            np.testing.assert_array_equal(block.params[k], v, err_msg=f"seed={seed} {k}")


# ---------------------------------------------------------------- attention and the Transformer block by loops


def _mha_loops(x: np.ndarray, p: dict, heads: int, causal: bool, kpm: np.ndarray | None) -> np.ndarray:
    """Self-attention one (sample, head, query) at a time, softmax over the visible keys in math."""
    N, T, D = x.shape
    d = D // heads

    def proj(name: str) -> np.ndarray:
        return x @ p["W" + name] + (p["b" + name] if "b" + name in p else 0.0)

    q, k, v = proj("q"), proj("k"), proj("v")
    A = np.zeros((N, T, D))
    for n in range(N):
        for j in range(heads):
            c = slice(j * d, (j + 1) * d)
            for t in range(T):
                keys = [s for s in range(T) if not (causal and s > t) and not (kpm is not None and kpm[n, s])]
                scores = [math.fsum(q[n, t, c] * k[n, s, c]) / math.sqrt(d) for s in keys]
                top = max(scores)
                w = [math.exp(a - top) for a in scores]
                total = math.fsum(w)
                A[n, t, c] = sum(wi / total * v[n, s, c] for wi, s in zip(w, keys))
    return A @ p["Wo"] + (p["bo"] if "bo" in p else 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_attention_defaults_and_large_scores_by_loops(seed: int) -> None:
    """The pure pair and the layer without ``causal`` attend to every key; scores of several hundred
    (exp of twice them overflows) still give the softmax of the loops: the row maximum is subtracted."""
    r = rng_of(seed, 5)
    D, heads = 4, 1 + seed % 2
    layer = mbp.MultiHeadSelfAttention(D, heads, rng=seed)
    p = layer.params
    for name in p:
        p[name][...] = r.standard_normal(p[name].shape)
    p["Wq"] *= 8.0
    p["Wk"] *= 8.0
    x = r.standard_normal((2, 5, D))
    q, k = x @ p["Wq"] + p["bq"], x @ p["Wk"] + p["bk"]
    assert np.abs(np.einsum("ntd,nsd->nts", q, k)).max() / math.sqrt(D // heads) > 360, "scores must be large"
    expected = _mha_loops(x, p, heads, False, None)
    out, _ = attention.mha_forward(x, *(p[k] for k in attention.PARAMS), heads)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10, err_msg=f"seed={seed}")
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-10, err_msg=f"seed={seed}")


def _layer_norm_ref(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps) * gamma + beta


def _gelu_ref(z: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "none":
        return np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(z)
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


@pytest.mark.parametrize("seed", SEEDS)
def test_transformer_block_by_loops(seed: int) -> None:
    """x + MHA(LN1(x)), then + W2 GELU(W1 LN2(.) + b1) + b2, with the block's eps (default 1e-5),
    bias, causal flag, GELU variant and padding mask, against the loops and formulas above."""
    r = rng_of(seed, 6)
    D, heads, d_ff, N, T = 4, 1 + seed % 2, 3, 2, 4
    eps = (None, 0.1, 0.5)[seed % 3]
    bias, causal, approximate = seed % 4 != 3, seed % 2 == 1, ("none", "tanh")[(seed // 2) % 2]
    kwargs = {} if eps is None else {"eps": eps}
    block = mbp.transformer_block(D, heads, d_ff, causal=causal, bias=bias, approximate=approximate, rng=seed, **kwargs)
    biases = {k for k in block.params if k.rsplit(".", 1)[-1] in ("b", "bq", "bk", "bv", "bo")}
    assert biases == ({"0.1.bq", "0.1.bk", "0.1.bv", "0.1.bo", "1.1.b", "1.3.b"} if bias else set())
    for v in block.params.values():
        v[...] = r.standard_normal(v.shape) * 0.7
    kpm = None
    if seed % 3 != 2:
        kpm = np.zeros((N, T), bool)
        kpm[1, 2 if causal else 0] = True
        mbp.set_key_padding_mask(block, kpm)
    x = r.standard_normal((N, T, D)) * 0.8
    P = block.params
    eps_ = 1e-5 if eps is None else eps
    mha = {k.split(".")[-1]: v for k, v in P.items() if k.startswith("0.1.")}
    h = x + _mha_loops(_layer_norm_ref(x, P["0.0.gamma"], P["0.0.beta"], eps_), mha, heads, causal, kpm)
    z = _layer_norm_ref(h, P["1.0.gamma"], P["1.0.beta"], eps_) @ P["1.1.W"] + (P["1.1.b"] if bias else 0.0)
    expected = h + _gelu_ref(z, approximate) @ P["1.3.W"] + (P["1.3.b"] if bias else 0.0)
    np.testing.assert_allclose(block.forward(x), expected, rtol=1e-12, atol=1e-12, err_msg=f"seed={seed}")
    assert [m.eps for m in block.modules() if isinstance(m, mbp.LayerNorm)] == [eps_, eps_]


# ---------------------------------------------------------------- messages: each names the call and the argument

X4 = np.ones((1, 1, 4, 4))
MESSAGES = [
    (
        lambda: conv.conv2d_forward(X4, np.ones((1, 1, 2, 2)), None, stride=0),
        ValueError,
        "conv2d: stride must be an int >= 1 or a pair of them, got 0",
    ),
    (
        lambda: conv.conv2d_forward(X4, np.ones((1, 1, 2, 2)), None, padding=-1),
        ValueError,
        "conv2d: padding must be an int >= 0 or a pair of them, got -1",
    ),
    (
        lambda: conv.conv2d_forward(X4, np.ones((1, 1, 2, 2)), None, dilation=0),
        ValueError,
        "conv2d: dilation must be an int >= 1 or a pair of them, got 0",
    ),
    (
        lambda: conv.conv2d_forward(np.ones((1, 1, 2, 5)), np.ones((1, 1, 3, 3)), None),
        ValueError,
        "the kernel (3, 3) with dilation (1, 1) spans (3, 3), larger than the padded input (2, 5)",
    ),
    (
        lambda: conv.conv2d_forward(np.ones((1, 1, 5, 2)), np.ones((1, 1, 3, 3)), None),
        ValueError,
        "the kernel (3, 3) with dilation (1, 1) spans (3, 3), larger than the padded input (5, 2)",
    ),
    (lambda: pool.max_pool2d_forward(X4, 0), ValueError, "max_pool2d: kernel_size must be an int >= 1"),
    (lambda: pool.max_pool2d_forward(X4, 2, 0), ValueError, "max_pool2d: stride must be an int >= 1"),
    (lambda: pool.max_pool2d_forward(X4, 2, 1, -1), ValueError, "max_pool2d: padding must be an int >= 0"),
    (lambda: pool.max_pool2d_forward(X4, 2, 1, 0, 0), ValueError, "max_pool2d: dilation must be an int >= 1"),
    (lambda: pool.avg_pool2d_forward(X4, 0), ValueError, "avg_pool2d: kernel_size must be an int >= 1"),
    (
        lambda: pool.avg_pool2d_forward(X4, 2, (1, 0)),
        ValueError,
        "avg_pool2d: stride must be an int >= 1 or a pair of them, got (1, 0)",
    ),
    (lambda: pool.avg_pool2d_forward(X4, 2, 1, -1), ValueError, "avg_pool2d: padding must be an int >= 0"),
    (lambda: mbp.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size must be an int >= 1"),
    (lambda: mbp.MaxPool2d(2, 0), ValueError, "MaxPool2d: stride must be an int >= 1"),
    (lambda: mbp.MaxPool2d(2, 1, -1), ValueError, "MaxPool2d: padding must be an int >= 0"),
    (lambda: mbp.MaxPool2d(2, 1, 0, 0), ValueError, "MaxPool2d: dilation must be an int >= 1"),
    (
        lambda: mbp.MaxPool2d(2, padding=1, dilation=3).forward(np.ones((1, 1, 1, 5))),
        ValueError,
        "MaxPool2d: the kernel (2, 2) with dilation (3, 3) spans (4, 4), larger than the padded input (3, 7) "
        "(input shape (1, 1, 1, 5), padding (1, 1)); use a smaller kernel or more padding",
    ),
    (lambda: mbp.AvgPool2d((0, 2)), ValueError, "AvgPool2d: kernel_size must be an int >= 1"),
    (lambda: mbp.AvgPool2d(2, 0), ValueError, "AvgPool2d: stride must be an int >= 1"),
    (lambda: mbp.AvgPool2d(2, 1, -1), ValueError, "AvgPool2d: padding must be an int >= 0"),
    (lambda: mbp.Conv2d(1, 0, 3), ValueError, "Conv2d: out_channels must be a positive int, got 0"),
    (lambda: mbp.Conv2d(1, 1, 3, groups=0), ValueError, "Conv2d: groups must be a positive int, got 0"),
    (lambda: mbp.Conv2d(True, 1, 3), ValueError, "Conv2d: in_channels must be a positive int, got True"),
    (lambda: mbp.Conv2d(1, 1, 3, dilation=0), ValueError, "Conv2d: dilation must be an int >= 1"),
    (lambda: mbp.Conv2d(1, 1, 3, dtype="int32"), TypeError, "Conv2d: dtype must be float32 or float64"),
    (lambda: mbp.Conv2d(1, 1, 3, rng=1.5), TypeError, "Conv2d: rng must be a numpy.random.Generator"),
    (lambda: mbp.Conv2d(1, 1, 3, init="nope"), ValueError, "Conv2d: unknown init 'nope'"),
    (
        lambda: mbp.MultiHeadSelfAttention(4, 2, dtype="int32"),
        TypeError,
        "MultiHeadSelfAttention: dtype must be float32 or float64",
    ),
    (
        lambda: mbp.MultiHeadSelfAttention(4, 2, rng=1.5),
        TypeError,
        "MultiHeadSelfAttention: rng must be a numpy.random.Generator",
    ),
    (lambda: mbp.transformer_block(4, 2, 8, rng=1.5), TypeError, "transformer_block: rng must be a numpy.random"),
    (
        lambda: attention.mha_forward(
            np.ones((2, 2, 2)), *[np.eye(2), None] * 4, 1, False, np.array([[False, False], [True, True]])
        ),
        ValueError,
        "mha_forward: query 0 of sample 1 has no visible key: the key_padding_mask hides every key it could "
        "attend to, and its softmax would be 0/0",
    ),
    (
        lambda: attention.mha_forward(np.ones((1, 2, 2)), *[np.eye(2), None] * 4, 1, True, np.array([[True, False]])),
        ValueError,
        "mha_forward: query 0 of sample 0 has no visible key: the key_padding_mask with causal=True (query t sees "
        "keys <= t) hides every key",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    MESSAGES,
    ids=[f"{i}-{m.split(':')[0].split(' ')[0]}" for i, (_, _, m) in enumerate(MESSAGES)],
)
def test_messages_name_the_call_and_the_argument(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match="^" + re.escape(message)):
        call()


# ---------------------------------------------------------------- the 1-D layers by loops


def _conv1d_loops(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, s: int, p: int, d: int) -> np.ndarray:
    N, _, L = x.shape
    O, _, k = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
    Lo = (L + 2 * p - d * (k - 1) - 1) // s + 1
    out = np.zeros((N, O, Lo))
    for t in range(Lo):
        for i in range(k):
            out[:, :, t] += xp[:, :, t * s + i * d] @ W[:, :, i].T
    return out if b is None else out + b[:, None]


@pytest.mark.parametrize("seed", SEEDS)
def test_conv1d_pure_pair_defaults_and_the_parameter_backward(seed: int) -> None:
    """conv1d_forward's defaults are stride 1, padding 0, dilation 1, groups 1 (torch's); the layer's
    backward without dx (the first layer of a training step) returns None and the same dW, db."""
    r = rng_of(seed, 30)
    x = r.standard_normal((2, 2, 7))
    W, b = r.standard_normal((3, 2, 3)), r.standard_normal(3)
    out, cache = conv.conv1d_forward(x, W, b)
    np.testing.assert_allclose(out, _conv1d_loops(x, W, b, 1, 0, 1), rtol=1e-12, atol=1e-12)
    dout = r.standard_normal(out.shape)
    dx, dW, db = conv.conv1d_backward(dout, cache)
    assert dx is not None and dx.shape == x.shape
    dx0, dW0, db0 = conv.conv1d_backward(dout, cache, need_dx=False)
    assert dx0 is None
    np.testing.assert_array_equal(dW0, dW)
    np.testing.assert_array_equal(db0, db)
    s, p, d = int(r.integers(1, 3)), int(r.integers(0, 2)), int(r.integers(1, 3))
    layer = mbp.Conv1d(2, 3, 3, stride=s, padding=p, dilation=d, rng=seed)
    model = mbp.Sequential(layer)
    out = model.forward(x)
    np.testing.assert_allclose(
        out, _conv1d_loops(x, layer.params["W"], layer.params["b"], s, p, d), rtol=1e-12, atol=1e-12
    )
    dout = r.standard_normal(out.shape)
    full = model.backward(dout)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert full is not None and full.shape == x.shape
    assert model.backward(dout, input_grad=False) is None
    for k in grads:
        np.testing.assert_array_equal(layer.grads[k], grads[k], err_msg=f"seed {seed} {k}")
    t_layer = mbp.ConvTranspose2d(2, 3, 2, rng=seed)
    t_model = mbp.Sequential(t_layer)
    t_out = t_model.forward(r.standard_normal((1, 2, 3, 3)))
    assert t_model.backward(r.standard_normal(t_out.shape), input_grad=False) is None


def _avg_pool1d_loops(x: np.ndarray, k: int, s: int, p: int, include: bool) -> np.ndarray:
    L = x.shape[2]
    Lo = (L + 2 * p - k) // s + 1
    out = np.zeros((*x.shape[:2], Lo))
    for t in range(Lo):
        cells = [j for j in range(t * s - p, t * s - p + k) if 0 <= j < L]
        out[:, :, t] = x[:, :, cells].sum(axis=2) / (k if include else len(cells))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_avg_pool1d_by_loops(seed: int) -> None:
    """AvgPool1d and its pure pair: stride (default kernel_size), padding (default 0) and the divisor
    (count_include_pad, default True) against a loop over the windows."""
    r = rng_of(seed, 31)
    k = int(r.integers(2, 5))
    s = int(r.integers(1, k + 2))
    while s == k:
        s = int(r.integers(1, k + 2))
    p = int(r.integers(1, k // 2 + 1))
    x = r.standard_normal((2, 2, int(r.integers(k, k + 6))))
    for include in (True, False):
        want = _avg_pool1d_loops(x, k, s, p, include)
        layer = mbp.AvgPool1d(k, s, p) if include else mbp.AvgPool1d(k, s, p, count_include_pad=False)
        np.testing.assert_allclose(layer.forward(x), want, rtol=1e-13, err_msg=f"seed {seed} include {include}")
        np.testing.assert_allclose(pool.avg_pool1d_forward(x, k, s, p, include)[0], want, rtol=1e-13)
    default = _avg_pool1d_loops(x, k, k, 0, True)
    np.testing.assert_allclose(mbp.AvgPool1d(k).forward(x), default, rtol=1e-13)
    np.testing.assert_allclose(pool.avg_pool1d_forward(x, k)[0], default, rtol=1e-13)
    np.testing.assert_allclose(pool.max_pool1d_forward(x, k)[0], mbp.MaxPool1d(k, k).forward(x), rtol=0)


SEQUENCE_MESSAGES = [
    (
        lambda: mbp.MaxPool1d(4, padding=1).forward(np.ones((1, 1, 1))),
        "MaxPool1d: the kernel 4 with dilation 1 spans 4, longer than the padded input 3 (input shape (1, 1, 1), "
        "padding 1)",
    ),
    (lambda: mbp.MaxPool1d(2).forward(np.ones((2, 4))), "MaxPool1d: input must be 3-D (N, C, L), got shape (2, 4)"),
    (lambda: mbp.Conv1d(2, 1, 2).forward(np.ones((2, 4))), "Conv1d: input must be 3-D (N, 2, L), got shape (2, 4)"),
    (lambda: mbp.Conv1d(1, 1, 3, stride=0), "Conv1d: stride must be an int >= 1, got 0"),
    (lambda: mbp.Conv1d(1, 1, 3, padding=-1), "Conv1d: padding must be an int >= 0, got -1"),
    (lambda: mbp.MaxPool1d(2.0), "MaxPool1d: kernel_size must be an int >= 1, got 2.0"),
    (lambda: mbp.MaxPool1d(True), "MaxPool1d: kernel_size must be an int >= 1, got True"),
    (lambda: mbp.AvgPool1d((2, 3)), "AvgPool1d: kernel_size must be an int >= 1, got (2, 3)"),
    (lambda: mbp.MaxPool1d(0), "MaxPool1d: kernel_size must be an int >= 1, got 0"),
    (lambda: mbp.MaxPool1d(2, stride=0), "MaxPool1d: stride must be an int >= 1, got 0"),
    (lambda: mbp.MaxPool1d(2, padding=-1), "MaxPool1d: padding must be an int >= 0, got -1"),
    (lambda: mbp.MaxPool1d(2, dilation=0), "MaxPool1d: dilation must be an int >= 1, got 0"),
    (lambda: mbp.AvgPool1d(2, padding=2), "AvgPool1d: padding 2 must be at most half the kernel 2"),
]


@pytest.mark.parametrize(("call", "message"), SEQUENCE_MESSAGES, ids=[str(i) for i in range(len(SEQUENCE_MESSAGES))])
def test_sequence_layers_name_the_layer_and_the_argument(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call()


def test_sequence_layers_take_one_tuples() -> None:
    """torch accepts kernel_size=(3,) for the 1-D layers; so does manual_bp, as the int."""
    assert mbp.Conv1d(1, 1, (3,)).geometry.k == (1, 3)
    assert mbp.AvgPool1d([2]).geometry.k == (1, 2)
    assert mbp.MaxPool1d(3, (1,)).geometry.s == (1, 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_adaptive_avg_pool2d_by_loops_and_in_float32(seed: int) -> None:
    """torch's adaptive windows [floor(i H / H_out), ceil((i + 1) H / H_out)) on both axes, against loops; a
    float32 input keeps float32 output and gradient."""
    r = rng_of(seed, 32)
    H, W = int(r.integers(2, 8)), int(r.integers(2, 8))
    Ho, Wo = int(r.integers(2, H + 1)), int(r.integers(1, W + 1))
    x = r.standard_normal((2, 2, H, W))
    dout = r.standard_normal((2, 2, Ho, Wo))
    want, dx_want = np.zeros((2, 2, Ho, Wo)), np.zeros_like(x)
    for i in range(Ho):
        for j in range(Wo):
            h0, h1 = (i * H) // Ho, -((-(i + 1) * H) // Ho)
            w0, w1 = (j * W) // Wo, -((-(j + 1) * W) // Wo)
            n = (h1 - h0) * (w1 - w0)
            want[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / n
            dx_want[:, :, h0:h1, w0:w1] += dout[:, :, i, j][:, :, None, None] / n
    layer = mbp.AdaptiveAvgPool2d((Ho, Wo))
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-13, err_msg=f"seed {seed} {(H, W)} -> {(Ho, Wo)}")
    np.testing.assert_allclose(layer.backward(dout), dx_want, rtol=1e-13, err_msg=f"seed {seed}")
    out32, cache32 = pool.adaptive_avg_pool2d_forward(x.astype(np.float32), (Ho, Wo))
    assert out32.dtype == np.float32
    assert pool.adaptive_avg_pool2d_backward(dout.astype(np.float32), cache32).dtype == np.float32


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_conv_transpose2d_float32_and_no_bias(seed: int) -> None:
    """A float32 ConvTranspose2d keeps float32 gradients; without bias there is no bias gradient."""
    r = rng_of(seed, 33)
    layer = mbp.ConvTranspose2d(2, 3, 2, stride=2, output_padding=1, bias=False, rng=seed, dtype=np.float32)
    x = r.standard_normal((1, 2, 3, 3)).astype(np.float32)
    out = layer.forward(x)
    dx = layer.backward(r.standard_normal(out.shape).astype(np.float32))
    assert set(layer.grads) == {"W"} and layer.grads["W"].dtype == np.float32 and dx.dtype == np.float32
    W = r.standard_normal((2, 3, 2, 2))
    out64, cache = conv.conv_transpose2d_forward(x.astype(np.float64), W, None, 2)
    assert conv.conv_transpose2d_backward(r.standard_normal(out64.shape), cache)[2] is None


def _conv_transpose2d_loops(x: np.ndarray, W: np.ndarray, s: int, p: int, d: int, op: int) -> np.ndarray:
    """Every input pixel scatters x[n, c, y, x] W[c, o, i, j] to (y s + i d - p, x s + j d - p) (groups 1)."""
    N, _, H, Wi = x.shape
    _, O, k, _ = W.shape
    Ho, Wo = ((size - 1) * s - 2 * p + d * (k - 1) + op + 1 for size in (H, Wi))
    full = np.zeros((N, O, Ho + 2 * p + s, Wo + 2 * p + s))
    for y in range(H):
        for xx in range(Wi):
            for i in range(k):
                for j in range(k):
                    full[:, :, y * s + i * d, xx * s + j * d] += x[:, :, y, xx] @ W[:, :, i, j]
    return full[:, :, p : p + Ho, p : p + Wo]


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_conv_transpose2d_dilation_and_defaults_by_loops(seed: int) -> None:
    r = rng_of(seed, 34)
    x = r.standard_normal((1, 2, 3, 2))
    d = 2 + seed % 2
    layer = mbp.ConvTranspose2d(2, 3, 2, stride=2, padding=1, dilation=d, bias=False, rng=seed)
    np.testing.assert_allclose(
        layer.forward(x),
        _conv_transpose2d_loops(x, layer.params["W"], 2, 1, d, 0),
        rtol=1e-12,
        atol=1e-12,
        err_msg=f"seed {seed}",
    )
    W = r.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(
        conv.conv_transpose2d_forward(x, W, None)[0], _conv_transpose2d_loops(x, W, 1, 0, 1, 0), rtol=1e-12, atol=1e-12
    )


def test_max_pool1d_windows_near_the_padding() -> None:
    """Every window of these geometries reaches the input, so none is refused: the window count is
    (L + 2 p - span) // s + 1, and the taps are i d apart."""
    for k, s, p, d, L in [(2, 1, 1, 1, 1), (4, 1, 2, 2, 3), (3, 2, 1, 2, 4)]:
        x = np.arange(float(L)).reshape(1, 1, L)
        out = mbp.MaxPool1d(k, s, p, d).forward(x)
        assert out.shape == (1, 1, (L + 2 * p - d * (k - 1) - 1) // s + 1)


def test_conv2d_channel_errors_and_float32_pools() -> None:
    for call, message in [
        (lambda: mbp.Conv2d(0, 1, 3), "Conv2d: in_channels must be a positive int, got 0"),
        (lambda: mbp.Conv2d(1, 0, 3), "Conv2d: out_channels must be a positive int, got 0"),
        (lambda: mbp.Conv2d(2, 2, 3, groups=0), "Conv2d: groups must be a positive int, got 0"),
        (lambda: mbp.Conv2d(2.0, 1, 3), "Conv2d: in_channels must be a positive int, got 2.0"),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            call()
    x = np.arange(9.0, dtype=np.float32).reshape(1, 1, 3, 3)
    out = mbp.AvgPool2d(2, 1, 1, count_include_pad=False).forward(x)
    assert out.dtype == np.float32 and out[0, 0, 0, 0] == 0.0 and out[0, 0, 1, 1] == 2.0
