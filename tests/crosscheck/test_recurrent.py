"""RNN, LSTM, GRU and their cells against PyTorch and JAX: parity (outputs, final states, every gradient) in
both dtypes with random upstream gradients, and planted bugs caught at the first tensor that should diverge.

Every case is rebuilt from its test id (a name and a seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.run.compare import compare_case
from manual_bp import recurrent
from tests.helpers import case_rng

pytestmark = pytest.mark.parity


def _model(
    name: str, seed: int, kind: str, dtype: str, N: int, T: int, D: int, H: int, **kw: Any
) -> tuple[mbp.Sequential, np.ndarray, np.ndarray, np.ndarray]:
    """kind(D, H, **kw) -> Flatten -> Linear(., 3); x, labels and a random upstream gradient; an initial
    state (h0, and c0 for the LSTM; a cell's h, c) drawn at random."""
    r = case_rng(name, seed)
    cls = {
        "rnn": mbp.RNN,
        "lstm": mbp.LSTM,
        "gru": mbp.GRU,
        "rnn_cell": mbp.RNNCell,
        "lstm_cell": mbp.LSTMCell,
        "gru_cell": mbp.GRUCell,
    }[kind]
    layer = cls(D, H, rng=r, dtype=dtype, **kw)
    cell = kind.endswith("_cell")
    if cell:
        x, state, width, rows = r.standard_normal((N, D)), (N, H), H, N
        layer.h = r.standard_normal(state).astype(dtype)
        if kind == "lstm_cell":
            layer.c = r.standard_normal(state).astype(dtype)
    else:
        x = r.standard_normal((N, T, D) if layer.batch_first else (T, N, D))
        state = (layer.num_layers * layer.directions, N, H)
        width = (T if layer.batch_first else N) * layer.directions * H
        rows = N if layer.batch_first else T
        layer.h0 = r.standard_normal(state).astype(dtype)
        if kind == "lstm":
            layer.c0 = r.standard_normal(state).astype(dtype)
    model = mbp.Sequential(layer, mbp.Flatten(), mbp.Linear(width, 3, rng=r, dtype=dtype))
    return model, (2 * x).astype(dtype), r.integers(0, 3, rows), r.standard_normal((rows, 3)).astype(dtype)


PARITY = [
    # kind, N, T, D, H, keyword arguments
    ("rnn", 3, 5, 2, 4, {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("rnn", 1, 1, 1, 1, {}),
    ("lstm", 2, 6, 3, 4, {"num_layers": 2, "dropout": 0.5}),
    ("lstm", 1, 4, 1, 1, {"bidirectional": True, "batch_first": False}),
    ("gru", 4, 3, 2, 5, {"num_layers": 2, "bidirectional": True, "bias": False}),
    ("gru", 1, 1, 3, 1, {}),
    ("rnn_cell", 3, 1, 4, 2, {"nonlinearity": "relu"}),
    ("lstm_cell", 1, 1, 1, 1, {}),
    ("gru_cell", 5, 1, 2, 3, {"bias": False}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", PARITY, ids=lambda c: f"{c[0]}-{c[1]}x{c[2]}x{c[3]}-{c[4]}-{sorted(c[5].items())}")
def test_parity_with_torch_and_jax(case: tuple, dtype: str, frameworks: tuple[str, ...]) -> None:
    kind, N, T, D, H, kw = case
    name = f"recurrent/{kind}-{N}-{T}-{D}-{H}-{sorted(kw.items())}"
    for seed in range(2):
        model, x, y, dout = _model(name, seed, kind, dtype, N, T, D, H, **kw)
        result = compare_case(
            model,
            mbp.SoftmaxCrossEntropy(),
            x,
            y,
            dloss=1.3,
            dout=dout,
            frameworks=frameworks,
            case_id=f"{name} seed {seed} {dtype}",
        )
        assert result.ok, result.summary()
        names = {c.name for comp in result.comparisons for c in comp.checks}
        outputs = {"lstm": {"0.h_n", "0.c_n"}, "lstm_cell": {"0.c_next"}}.get(
            kind, set() if "cell" in kind else {"0.h_n"}
        )
        assert outputs <= names, (outputs, names)


# ---------------------------------------------------------------- planted bugs


def _lstm_forget_gate_skipped(good: Any) -> Any:
    """The cell-state gradient reaches the previous step without the forget gate: dc_prev = dc, not dc f."""

    def bad(dh_new: np.ndarray, dc_new: Any, cache: recurrent.StepCache) -> tuple:
        da, db, dh, dc = good(dh_new, dc_new, cache)
        if cache.mode == "lstm":
            dc = dc / cache.acts[1]  # dc f / f
        return da, db, dh, dc

    return bad


def _hidden_gradient_not_carried(good: Any) -> Any:
    """The gradient of the previous hidden state is dropped: each step sees only its own output's gradient."""

    def bad(dh_new: np.ndarray, dc_new: Any, cache: recurrent.StepCache) -> tuple:
        da, db, dh, dc = good(dh_new, dc_new, cache)
        return da, db, np.zeros_like(dh), dc

    return bad


def _gru_reset_gate_missing(good: Any) -> Any:
    """The GRU's candidate without the reset-gate product: n = tanh(a_n + b_n), not tanh(a_n + r b_n)."""

    def bad(mode: str, a: np.ndarray, h: np.ndarray, c: Any, W_hh: np.ndarray, b_hh: Any) -> tuple:
        if mode != "gru":
            return good(mode, a, h, c, W_hh, b_hh)
        H = h.shape[1]
        b = h @ W_hh.T + (0 if b_hh is None else b_hh)
        r, z = (1 / (1 + np.exp(-(a[:, : 2 * H] + b[:, : 2 * H])))).reshape(-1, 2, H).transpose(1, 0, 2)
        n = np.tanh(a[:, 2 * H :] + b[:, 2 * H :])
        return (1 - z) * n + z * h, None, recurrent.StepCache(mode, h, None, W_hh, (r, z, n, b[:, 2 * H :]))

    return bad


PLANTS = {
    # name: (kind, keyword arguments, the pair patched, its wrong version, the first tensor that must diverge)
    "lstm_forget_gate_skipped": ("lstm", {}, "step_backward", _lstm_forget_gate_skipped, ("loss", "0.dweight_ih_l0")),
    "hidden_gradient_not_carried": (
        "gru",
        {"num_layers": 2},
        "step_backward",
        _hidden_gradient_not_carried,
        ("loss", "0.dweight_ih_l0"),
    ),
    "gru_reset_gate_missing": ("gru", {}, "step_forward", _gru_reset_gate_missing, ("loss", "0.out")),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_bug_is_caught_at_the_first_tensor_it_changes(
    plant: str, seed: int, monkeypatch: Any, frameworks: tuple[str, ...]
) -> None:
    kind, kw, pair, wrong, expected = PLANTS[plant]
    model, x, y, dout = _model(f"recurrent/plant/{plant}", seed, kind, "float64", 3, 5, 2, 4, **kw)
    clean = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert clean.ok, clean.summary()
    monkeypatch.setattr(recurrent, pair, wrong(getattr(recurrent, pair)))
    result = compare_case(
        model,
        mbp.SoftmaxCrossEntropy(),
        x,
        y,
        dloss=1.3,
        dout=dout,
        frameworks=frameworks,
        case_id=f"{plant} seed {seed}",
    )
    assert not result.ok, f"{plant} seed {seed}: the planted bug went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp", (plant, seed, comp.backend)
    assert (comp.mode, bad.name) == expected, (plant, seed, comp.mode, bad.name)
    assert bad.error > 100 * bad.bound, f"{plant} seed {seed}: {bad.name} error {bad.error:.2e} barely above the bound"
