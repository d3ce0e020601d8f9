"""Multi-head self-attention and the pre-LN Transformer block against crosscheck: what the frameworks do with a
blind query, the spec of a saved block, parity with PyTorch and JAX, and planted bugs caught at the right tensor.

Every random case is rebuilt from its test id (a name and a seed).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.reference.read import read_spec
from crosscheck.run.api import run_case
from crosscheck.run.compare import compare_case
from tests.helpers import case_rng
from tests.helpers.attention import PLANTS, _mha_case, _plant, _planted_model, _randomise

N_PARITY = int(os.environ.get("CROSSCHECK_ATTENTION_CASES", "60"))


# ---------------------------------------------------------------- what the frameworks do


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


# ---------------------------------------------------------------- model plumbing


def test_block_structure_save_load_and_spec(tmp_path) -> None:
    r = case_rng("attention/io", 0)
    model = mbp.Sequential(mbp.transformer_block(6, 2, 10, causal=True, rng=r), mbp.Flatten(), mbp.Linear(18, 2, rng=r))
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
    assert (
        attn.name == "0.0.1"
        and attn.config["causal"]
        and sorted(attn.params) == sorted(["Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"])
    )
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
    result = _compare(
        model,
        mbp.SoftmaxCrossEntropy(),
        x,
        r.integers(0, 3, N),
        r.standard_normal((N, 3)).astype(dtype),
        frameworks,
        f"mha seed={seed} {dtype} {c}",
    )
    assert result.ok, result.summary()


@pytest.mark.parity
@pytest.mark.parametrize("case_id", range(N_PARITY))
def test_parity_random_transformer_cases(case_id: int, frameworks) -> None:
    from crosscheck.cases.transformer import attention_case

    c = attention_case(case_id)
    result = run_case(c, frameworks)
    assert result.ok, result.summary()
    assert len(result.comparisons) == 6
    assert "multi_head_attention" in result.spec.kinds


# ---------------------------------------------------------------- planted bugs


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
