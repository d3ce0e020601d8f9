"""Value tests that pin manual_bp.recurrent's layer set-up, found by mutation testing (see
mutation/README.md): what finite differences cannot see, such as which parameters a cell has."""

from __future__ import annotations

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
