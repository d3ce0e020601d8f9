"""manual_bp.recurrent: finite differences on every parameter, the initial states and the input, with
random upstream gradients on the output and on the final states; torch's semantics; bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.gradcheck import EPS64, ROUNDINGS, numerical_gradient, relative_error
from manual_bp.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

TOL = 1e-6
H_STEP = 1e-6


def _stack(kind: str, D: int, H: int, layers: int, bi: bool, rng: np.random.Generator, **kw: Any) -> Any:
    if kind.startswith("rnn"):
        return RNN(D, H, layers, nonlinearity=kind[4:] or "tanh", bidirectional=bi, rng=rng, **kw)
    return {"lstm": LSTM, "gru": GRU}[kind](D, H, layers, bidirectional=bi, rng=rng, **kw)


def _fd_check(layer: Any, x: np.ndarray, states: dict[str, str], seed: int) -> dict[str, float]:
    """J = sum(dout out) + sum over the final states s of sum(ds s), with random dout and ds; the analytic
    gradients (backward) of every parameter, x and each initial state against central differences.

    ``states``: initial-state attribute -> final-state attribute (``{"h0": "h_n"}``; a cell: ``{"h": ...}``).
    Returns the relative error per tensor (``manual_bp.gradcheck.relative_error`` with its resolution)."""
    rng = np.random.default_rng([seed, 99])
    out = layer.forward(x)
    if hasattr(layer, "frozen"):
        layer.frozen = True  # the dropout masks of this first forward, throughout
    dout = rng.standard_normal(out.shape)
    final = {s: getattr(layer, s) for s in states.values()}
    upstream = {s: rng.standard_normal(v.shape) for s, v in final.items() if v is not None}
    for s, g in upstream.items():
        setattr(layer, "d" + s, g)

    def J() -> float:
        o = layer.forward(x)
        return float(np.sum(dout * o)) + sum(float(np.sum(g * getattr(layer, s))) for s, g in upstream.items())

    J0 = J()
    K = (
        abs(J0)
        + float(np.sum(np.abs(dout * out)))
        + sum(float(np.sum(np.abs(g * final[s]))) for s, g in upstream.items())
    )
    delta = ROUNDINGS * EPS64 * K / H_STEP
    dx = layer.backward(dout)
    analytic = {"input": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    for s0 in states:
        analytic[s0] = getattr(layer, "d" + s0)  # dh0, dc0
    tensors = {"input": x, **layer.params, **{s0: getattr(layer, s0) for s0 in states}}
    errors = {}
    for name, theta in tensors.items():
        a = analytic[name]
        assert a is not None and a.shape == theta.shape and a.dtype == theta.dtype, name
        errors[name] = relative_error(a, numerical_gradient(J, theta, H_STEP), delta / TOL)
    return errors


STACKS = [
    # kind, N, T, D, H, layers, bidirectional, dropout
    ("rnn_tanh", 3, 4, 2, 3, 1, False, 0.0),
    ("rnn_relu", 2, 5, 3, 4, 2, True, 0.0),
    ("lstm", 3, 4, 2, 3, 1, False, 0.0),
    ("lstm", 2, 3, 3, 2, 2, True, 0.3),
    ("gru", 3, 4, 2, 3, 1, False, 0.0),
    ("gru", 2, 3, 2, 3, 2, True, 0.4),
    ("lstm", 1, 1, 1, 1, 1, False, 0.0),  # batch 1, T 1, width 1
    ("gru", 1, 6, 1, 1, 2, True, 0.0),
    ("rnn_tanh", 1, 1, 4, 1, 2, False, 0.5),
    ("lstm", 4, 7, 3, 5, 2, False, 0.0),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", STACKS, ids=lambda c: "-".join(map(str, c)))
def test_stack_gradients_match_finite_differences(case: tuple, seed: int) -> None:
    kind, N, T, D, H, layers, bi, p = case
    rng = np.random.default_rng([seed, 1])
    layer = _stack(kind, D, H, layers, bi, rng, dropout=p, batch_first=bool(seed % 2))
    shape = (N, T, D) if layer.batch_first else (T, N, D)
    x = rng.standard_normal(shape)
    dirs = 2 if bi else 1
    layer.h0 = rng.standard_normal((layers * dirs, N, H))
    states = {"h0": "h_n"}
    if kind == "lstm":
        layer.c0 = rng.standard_normal((layers * dirs, N, H))
        states["c0"] = "c_n"
    if kind == "rnn_relu":  # away from the kink: weights and inputs make no pre-activation ~0 likely
        x *= 2.0
    errors = _fd_check(layer, x, states, seed)
    assert max(errors.values()) <= TOL, f"{case} seed {seed}: {errors}"


CELLS = [(RNNCell, {}), (RNNCell, {"nonlinearity": "relu"}), (LSTMCell, {}), (GRUCell, {}), (GRUCell, {"bias": False})]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("N,D,H", [(3, 2, 4), (1, 1, 1)])
@pytest.mark.parametrize("cls,kw", CELLS, ids=lambda c: getattr(c, "__name__", str(c)))
def test_cell_gradients_match_finite_differences(cls: Any, kw: dict, N: int, D: int, H: int, seed: int) -> None:
    rng = np.random.default_rng([seed, 2])
    layer = cls(D, H, rng=rng, **kw)
    x = 2.0 * rng.standard_normal((N, D))
    layer.h = rng.standard_normal((N, H))
    states = {"h": "h"}
    if cls is LSTMCell:
        layer.c = rng.standard_normal((N, H))
        states = {"h": "h", "c": "c_next"}
        # the cell's final states: c_next (its gradient dc_next); h' is the output itself
    errors = _fd_check_cell(layer, x, states, seed)
    assert max(errors.values()) <= TOL, f"{cls.__name__}{kw} N={N} D={D} H={H} seed {seed}: {errors}"


def _fd_check_cell(layer: Any, x: np.ndarray, states: dict[str, str], seed: int) -> dict[str, float]:
    """As ``_fd_check`` for a cell: the input states ``h`` (and ``c``), the upstream gradients dout on h'
    and ``dc_next`` on c_next (LSTM); the state gradients are ``dh`` and ``dc``."""
    rng = np.random.default_rng([seed, 98])
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dc_next = rng.standard_normal(out.shape) if "c" in states else None
    layer.dc_next = dc_next

    def J() -> float:
        o = layer.forward(x)
        return float(np.sum(dout * o)) + (float(np.sum(dc_next * layer.c_next)) if dc_next is not None else 0.0)

    K = (
        abs(J())
        + float(np.sum(np.abs(dout * out)))
        + (float(np.sum(np.abs(dc_next * layer.c_next))) if dc_next is not None else 0.0)
    )
    delta = ROUNDINGS * EPS64 * K / H_STEP
    dx = layer.backward(dout)
    analytic = {"input": dx, **{k: v.copy() for k, v in layer.grads.items()}, "h": layer.dh, "c": layer.dc}
    tensors = {"input": x, **layer.params, **{s: getattr(layer, s) for s in states}}
    return {n: relative_error(analytic[n], numerical_gradient(J, t, H_STEP), delta / TOL) for n, t in tensors.items()}


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_inside_a_network_gradcheck_passes(p: float) -> None:
    """A GRU inside a Sequential with a head and a loss: ``manual_bp.gradcheck`` on every parameter and x; it
    holds the dropout masks between the layers fixed, as a Dropout's, and restores the layer's flag."""
    rng = np.random.default_rng(5)
    gru = GRU(3, 4, 2, bidirectional=True, dropout=p, rng=rng)
    model = mbp.Sequential(gru, mbp.Flatten(), mbp.Linear(5 * 8, 3, rng=rng))
    x = rng.standard_normal((2, 5, 3))
    check = mbp.gradcheck(model, mbp.SoftmaxCrossEntropy(), x, rng.integers(0, 3, 2))
    assert check.max_error <= TOL, check
    assert gru.frozen is False


def test_torch_semantics_on_shapes_and_state() -> None:
    """h_n is (num_layers dirs, N, H); the last step of the forward direction and the first of the reverse
    direction are h_n's rows; batch_first=False takes (T, N, D); h0 persists until changed."""
    rng = np.random.default_rng(3)
    m = LSTM(2, 3, 2, bidirectional=True, rng=rng)
    x = rng.standard_normal((4, 5, 2))
    out = m.forward(x)
    assert out.shape == (4, 5, 6) and m.h_n.shape == (4, 4, 3) and m.c_n.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[:, -1, :3], m.h_n[2])
    np.testing.assert_array_equal(out[:, 0, 3:], m.h_n[3])
    tm = LSTM(2, 3, 2, bidirectional=True, batch_first=False, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(tm.forward(x.transpose(1, 0, 2)), out.transpose(1, 0, 2))
    m.h0 = rng.standard_normal((4, 4, 3))
    assert not np.array_equal(m.forward(x), out)


def test_inputs_are_not_mutated_and_errors_name_the_layer() -> None:
    rng = np.random.default_rng(4)
    m = mbp.Sequential(GRU(2, 3, rng=rng))
    x = rng.standard_normal((2, 3, 2))
    keep = x.copy()
    m.backward(m.forward(x))
    np.testing.assert_array_equal(x, keep)
    with pytest.raises(ValueError, match=r"GRU '0'.*\(N, T, 2\).*\(2, 3, 5\)"):
        m.forward(rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match=r"GRU '0'.*3-D"):
        m.forward(rng.standard_normal((2, 2)))
    m[0].h0 = np.zeros((1, 5, 3))
    with pytest.raises(ValueError, match=r"GRU '0'.*h0.*\(1, 2, 3\).*\(1, 5, 3\)"):
        m.forward(x)
    m[0].h0 = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(TypeError, match=r"GRU '0'.*float32"):
        m.forward(x)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        LSTM(2, 3, dropout=1.0)


def test_dropout_masks_are_drawn_reused_and_absent_in_eval() -> None:
    m = LSTM(2, 3, 3, dropout=0.5, rng=7)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    a = m.forward(x)
    assert len(m.mask) == 2 and all(k.shape == (4, 2, 3) for k in m.mask)
    m.frozen = True
    np.testing.assert_array_equal(m.forward(x), a)
    m.frozen = False
    assert not np.array_equal(m.forward(x), a)
    m.eval()
    m.forward(x)
    assert m.mask == [None, None]


def test_build_from_architecture_and_init_bounds() -> None:
    m = RNN(3, 16, 2, nonlinearity="relu", bias=False, bidirectional=True, rng=1)
    rebuilt = mbp.build(mbp.architecture(m))
    assert rebuilt.config() == m.config()
    assert sorted(m.params) == sorted(
        f"weight_{a}_l{k}{s}" for a in ("ih", "hh") for k in (0, 1) for s in ("", "_reverse")
    )
    assert max(float(np.abs(v).max()) for v in m.params.values()) <= 1 / 4
    assert m.params["weight_ih_l1"].shape == (16, 32)
