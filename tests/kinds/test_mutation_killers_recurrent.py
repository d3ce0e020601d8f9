"""Value tests that pin manual_bp.recurrent's layer set-up, found by mutation testing (see
mutation/README.md): what finite differences cannot see, such as which parameters a cell has."""

from __future__ import annotations

import re

import numpy as np
import pytest

import manual_bp as mbp


@pytest.mark.parametrize("cls", [mbp.RNNCell, mbp.LSTMCell, mbp.GRUCell])
def test_cells_have_biases_by_default_and_none_without(cls: type) -> None:
    """bias=True is torch's default: bias_ih and bias_hh; bias=False: the two weights only."""
    assert set(cls(2, 3, rng=0).params) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    assert set(cls(2, 3, bias=False, rng=0).params) == {"weight_ih", "weight_hh"}
    assert cls(2, 3, bias=False, rng=0).config()["bias"] is False


def test_rnn_cell_nonlinearity() -> None:
    """tanh by default, relu on request: h' = f(x W_ih^T + b_ih + h W_hh^T + b_hh) from h = 0."""
    x = np.array([[1.0, -2.0]])
    for nonlinearity, f in (("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0.0))):
        cell = mbp.RNNCell(2, 3, rng=1) if nonlinearity == "tanh" else mbp.RNNCell(2, 3, nonlinearity="relu", rng=1)
        p = cell.params
        want = f(x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"])
        np.testing.assert_allclose(cell.forward(x), want, rtol=1e-14)


@pytest.mark.parametrize("cls", [mbp.RNNCell, mbp.LSTMCell, mbp.GRUCell])
def test_cells_keep_float32_and_name_themselves(cls: type) -> None:
    cell = cls(2, 3, rng=0, dtype=np.float32)
    assert cell.forward(np.ones((2, 2), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__}: input must be 2-D (N, 2), got shape (2,)")):
        cls(2, 3, rng=0).forward(np.ones(2))


def test_lstm_cell_dc_next() -> None:
    """A dc_next of the right shape and dtype flows into dc; a wrong one is refused by name."""
    rng = np.random.default_rng(3)
    cell = mbp.LSTMCell(2, 3, rng=0)
    x, dh = rng.standard_normal((1, 2)), rng.standard_normal((1, 3))
    cell.forward(x)
    cell.backward(dh)
    dc0 = cell.dc.copy()
    cell.forward(x)
    cell.dc_next = rng.standard_normal((1, 3))
    cell.backward(dh)
    assert not np.allclose(cell.dc, dc0)
    cell.forward(x)
    cell.dc_next = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^LSTMCell: dc_next \(the gradient of c_next\) must have shape \(1, 3\)"):
        cell.backward(dh)


def test_rnn_defaults_and_state_checks() -> None:
    """RNN's defaults (one layer, tanh, bias, no dropout, one direction); a cell's state of the wrong shape
    is refused by name, a right one is used; float32 input to a float64 cell is refused by name."""
    cfg = mbp.RNN(2, 3).config()
    assert (cfg["num_layers"], cfg["nonlinearity"], cfg["bias"], cfg["dropout"], cfg["bidirectional"]) == (
        1,
        "tanh",
        True,
        0.0,
        False,
    )
    assert mbp.RNN(2, 3, bias=False, batch_first=False).config()["batch_first"] is False
    assert set(mbp.RNN(2, 3, bias=False).params) == {"weight_ih_l0", "weight_hh_l0"}
    cell = mbp.RNNCell(2, 3, rng=0)
    cell.h = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^RNNCell: state h \(N, hidden_size\) must have shape \(1, 3\)"):
        cell.forward(np.ones((1, 2)))
    cell.h = np.ones((1, 3))
    p = cell.params
    want = np.tanh(
        np.ones((1, 2)) @ p["weight_ih"].T + p["bias_ih"] + np.ones((1, 3)) @ p["weight_hh"].T + p["bias_hh"]
    )
    np.testing.assert_allclose(cell.forward(np.ones((1, 2))), want, rtol=1e-14)
    lstm = mbp.LSTMCell(2, 3, rng=0)
    lstm.c = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^LSTMCell: state c \(N, hidden_size\) must have shape \(1, 3\)"):
        lstm.forward(np.ones((1, 2)))
    with pytest.raises(TypeError, match=r"^RNNCell: input dtype float32 does not match"):
        mbp.RNNCell(2, 3, rng=0).forward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize("cls", [mbp.RNNCell, mbp.LSTMCell, mbp.GRUCell])
def test_cells_without_bias_have_no_bias_gradients(cls: type) -> None:
    cell = cls(2, 3, bias=False, rng=0)
    cell.forward(np.ones((2, 2)))
    cell.backward(np.ones((2, 3)))
    assert set(cell.grads) == {"weight_ih", "weight_hh"}
