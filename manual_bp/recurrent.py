"""Recurrent layers: the Elman RNN, the LSTM and the GRU, as single-step cells and as sequence layers.

Weights use torch's layout and names, so nothing is transposed or renamed against torch:
``weight_ih`` (G H, D), ``weight_hh`` (G H, H), ``bias_ih``, ``bias_hh`` (G H,), G the number of gates
stacked in torch's order (RNN: 1; LSTM: i, f, g, o; GRU: r, z, n). A sequence layer names them
``weight_ih_l{k}`` (layer k) with the suffix ``_reverse`` for the backward direction. Every weight
and bias starts U(-1/sqrt(H), 1/sqrt(H)), as torch's. One step, with ``a = x W_ih^T + b_ih`` and
``b = h W_hh^T + b_hh`` (N, G H)::

    RNN:   h' = tanh(a + b)  (or relu)
    LSTM:  i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the blocks of a + b;  c' = f c + i g;  h' = o tanh(c')
    GRU:   r, z = sigmoid of the first two blocks of a + b;  n = tanh(a_n + r b_n);  h' = (1 - z) n + z h

The backward through time (BPTT) is laid out step by step in ``recurrent_layer_backward``.

Its length (over 400 lines) is one family kept whole: each cell's pair beside its class, and the
sequence layers built from the cells' pairs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from manual_bp._checks import (
    check_dtype_arg,
    check_features,
    check_float_array,
    check_ndim,
    check_nonempty,
    check_number,
    check_same_dtype,
    check_shape,
)
from manual_bp.activations import _sigmoid
from manual_bp.init import as_generator, torch_uniform
from manual_bp.module import Module

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}  # G: gate blocks stacked in the weights


# ---------------------------------------------------------------- one step: the pairs


class StepCache(NamedTuple):
    """What a step's backward reads: the mode, the previous state, W_hh, and the step's activations
    (RNN: (h',) or the relu mask; LSTM: (i, f, g, o, tanh c'); GRU: (r, z, n, b_n))."""

    mode: str
    h: np.ndarray  # (N, H) the state the step started from
    c: np.ndarray | None  # (N, H) LSTM's cell state, else None
    W_hh: np.ndarray  # (G H, H)
    acts: tuple[np.ndarray, ...]


# --8<-- [start:recurrent_step_pair]
def step_forward(
    mode: str, a: np.ndarray, h: np.ndarray, c: np.ndarray | None, W_hh: np.ndarray, b_hh: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, StepCache]:
    """One step from the input projection ``a = x W_ih^T + b_ih`` (N, G H) and the state h (N, H)
    (and c (N, H) for the LSTM)  ->  h' (N, H), c' (N, H) or None, cache. Equations: the module docstring.
    """
    H = h.shape[1]
    b = h @ W_hh.T  # (N, G H)
    if b_hh is not None:
        b += b_hh
    if mode == "lstm":
        s = a + b  # (N, 4H), blocks i, f, g, o
        gates = _sigmoid(s)  # (N, 4H): one call for i, f, o (its g block is unused)
        i, f, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
        g = np.tanh(s[:, 2 * H : 3 * H])
        c_new = f * c + i * g  # (N, H)
        tc = np.tanh(c_new)
        return o * tc, c_new, StepCache(mode, h, c, W_hh, (i, f, g, o, tc))
    if mode == "gru":
        rz = _sigmoid(a[:, : 2 * H] + b[:, : 2 * H])  # (N, 2H)
        r, z = rz[:, :H], rz[:, H:]
        b_n = b[:, 2 * H :]  # (N, H): W_hn h + b_hn, which the reset gate multiplies
        n = np.tanh(a[:, 2 * H :] + r * b_n)
        return (1 - z) * n + z * h, None, StepCache(mode, h, None, W_hh, (r, z, n, b_n))
    s = a + b  # (N, H)
    if mode == "rnn_relu":
        return np.maximum(s, 0), None, StepCache(mode, h, None, W_hh, (s > 0,))
    h_new = np.tanh(s)
    return h_new, None, StepCache(mode, h, None, W_hh, (h_new,))


def step_backward(
    dh_new: np.ndarray, dc_new: np.ndarray | None, cache: StepCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Backward of ``step_forward``: dh' (N, H) (and dc' (N, H), LSTM)  ->  (da, db, dh, dc).

    da (N, G H): the gradient of the input projection a (so dW_ih = da^T x, db_ih = sum da, dx = da W_ih);
    db (N, G H): of b = h W_hh^T + b_hh (dW_hh = db^T h, db_hh = sum db); it equals da except in the GRU's
    n block, which the reset gate scales. dh (N, H) and dc (N, H) or None: of the previous state.
    Each line undoes the forward line named on its right::

        LSTM  do = dh' tanh(c')                           h' = o tanh(c')
              dc = dc' + dh' o (1 - tanh(c')^2)            h' = o tanh(c')
              di = dc g, df = dc c, dg = dc i, dc_prev = dc f    c' = f c + i g
              da = db = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]   the gates' nonlinearities
        GRU   dn = dh' (1 - z), dz = dh' (h - n), dh = dh' z     h' = (1 - z) n + z h
              dsn = dn (1 - n^2)                           n = tanh(a_n + r b_n)
              dr = dsn b_n, db_n = dsn r                   r b_n
              da = [dr r(1-r), dz z(1-z), dsn], db = [dr r(1-r), dz z(1-z), db_n]
        RNN   da = db = dh' (1 - h'^2)  (relu: dh' [s > 0])
        all   dh += db W_hh                                b = h W_hh^T + b_hh
    """
    mode, h, c, W_hh, acts = cache
    if mode == "lstm":
        i, f, g, o, tc = acts
        dc = dh_new * o * (1 - tc * tc)
        if dc_new is not None:
            dc += dc_new
        da = np.concatenate(
            (dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), dh_new * tc * o * (1 - o)), axis=1
        )  # (N, 4H)
        return da, da, da @ W_hh, dc * f
    if mode == "gru":
        r, z, n, b_n = acts
        dsn = dh_new * (1 - z) * (1 - n * n)  # (N, H)
        drz = np.concatenate((dsn * b_n * r * (1 - r), dh_new * (h - n) * z * (1 - z)), axis=1)  # (N, 2H)
        da = np.concatenate((drz, dsn), axis=1)  # (N, 3H)
        db = np.concatenate((drz, dsn * r), axis=1)  # (N, 3H)
        return da, db, db @ W_hh + dh_new * z, None
    (act,) = acts
    da = dh_new * act if mode == "rnn_relu" else dh_new * (1 - act * act)  # (N, H)
    return da, da, da @ W_hh, None


# --8<-- [end:recurrent_step_pair]


def _check_mode(mode: str) -> int:
    if mode not in GATES:
        raise ValueError(f"recurrent: mode must be one of {sorted(GATES)}, got {mode!r}")
    return GATES[mode]


# ---------------------------------------------------------------- one step as a cell: the pairs


class CellCache(NamedTuple):
    """x (N, D), W_ih (G H, D), whether there are biases, and the step's cache."""

    x: np.ndarray
    W_ih: np.ndarray
    has_bias: bool
    step: StepCache


def cell_forward(
    mode: str,
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray | None,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, CellCache]:
    """One step of a cell (torch's ``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``).

    x: (N, D), h: (N, H), c: (N, H) for the LSTM (else None), W_ih: (G H, D), W_hh: (G H, H),
    b_ih, b_hh: (G H,) or None  ->  h' (N, H), c' (N, H) or None, cache.
    """
    _check_mode(mode)
    a = x @ W_ih.T  # (N, G H)
    if b_ih is not None:
        a += b_ih
    h_new, c_new, step = step_forward(mode, a, h, c, W_hh, b_hh)
    return h_new, c_new, CellCache(x, W_ih, b_ih is not None, step)


def cell_backward(dh_new: np.ndarray, dc_new: np.ndarray | None, cache: CellCache) -> tuple[Any, ...]:
    """Backward of ``cell_forward``: dh' (N, H), dc' (N, H) or None  ->
    (dx (N, D), dh (N, H), dc (N, H) or None, dW_ih, dW_hh, db_ih, db_hh); the biases' None without bias.

        da, db, dh, dc = step_backward(dh', dc')       the step (see ``step_backward``)
        dW_ih = da^T x,  db_ih = sum_N da,  dx = da W_ih      a = x W_ih^T + b_ih
        dW_hh = db^T h,  db_hh = sum_N db                     b = h W_hh^T + b_hh
    """
    x, W_ih, has_bias, step = cache
    da, db, dh, dc = step_backward(dh_new, dc_new, step)
    dW_ih, dW_hh = da.T @ x, db.T @ step.h
    db_ih, db_hh = (da.sum(axis=0), db.sum(axis=0)) if has_bias else (None, None)
    return da @ W_ih, dh, dc, dW_ih, dW_hh, db_ih, db_hh


# ---------------------------------------------------------------- one layer, one direction: the pair


class LayerCache(NamedTuple):
    """x (T, N, D), W_ih, whether there are biases, the direction, and every step's cache in processing order."""

    x: np.ndarray
    W_ih: np.ndarray
    has_bias: bool
    reverse: bool
    steps: list[StepCache]


# --8<-- [start:recurrent_layer_pair]
def recurrent_layer_forward(
    mode: str,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray | None,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, LayerCache]:
    """One layer in one direction over a time-major sequence::

        a = x W_ih^T + b_ih                      (T, N, G H): one product for every step
        for t = 0 .. T-1 (reverse: T-1 .. 0):
            h, c = step(a[t], h, c)              (N, H) each, starting from h0, c0
            out[t] = h

    x: (T, N, D), h0, c0: (N, H) (c0 None unless LSTM)  ->  out (T, N, H), h_n (N, H), c_n (N, H) or None,
    cache. ``reverse``: the backward direction of a bidirectional layer (out[t] has seen x[t:]).
    """
    _check_mode(mode)
    T, N, _ = x.shape
    a = x @ W_ih.T  # (T, N, G H)
    if b_ih is not None:
        a += b_ih
    out = np.empty((T, N, h0.shape[1]), dtype=x.dtype)
    h, c, steps = h0, c0, []
    for t in range(T - 1, -1, -1) if reverse else range(T):
        h, c, step = step_forward(mode, a[t], h, c, W_hh, b_hh)
        out[t] = h
        steps.append(step)
    return out, h, c, LayerCache(x, W_ih, b_ih is not None, reverse, steps)


def recurrent_layer_backward(
    dout: np.ndarray, dh_n: np.ndarray, dc_n: np.ndarray | None, cache: LayerCache
) -> tuple[Any, ...]:
    """Backpropagation through time for ``recurrent_layer_forward``, last step first::

        dh, dc = dh_n, dc_n                      the gradient reaching the final state
        for t = T-1 .. 0 (reverse: 0 .. T-1), undoing "h, c = step(a[t], h, c); out[t] = h":
            dh = dh + dout[t]                    h feeds both out[t] and the next step
            da[t], db[t], dh, dc = step_backward(dh, dc)   dh, dc now reach the previous step
        dW_hh = sum_t db[t]^T h_prev[t],  db_hh = sum_{t,N} db[t]      b = h W_hh^T + b_hh, every step
        dW_ih = sum_t da[t]^T x[t],  db_ih = sum_{t,N} da[t],  dx = da W_ih     a = x W_ih^T + b_ih
        dh0, dc0 = dh, dc

    dout: (T, N, H), dh_n, dc_n: (N, H) (dc_n None unless LSTM)  ->
    (dx (T, N, D), dh0 (N, H), dc0 (N, H) or None, dW_ih, dW_hh, db_ih, db_hh); the biases' None without bias.
    """
    x, W_ih, has_bias, reverse, steps = cache
    T, N, D = x.shape
    GH, H = W_ih.shape[0], dout.shape[2]
    shared = not steps or steps[0].mode != "gru"  # db = da but for the GRU (``step_backward``)
    da = np.empty((T, N, GH), dtype=dout.dtype)
    db = da if shared else np.empty((T, N, GH), dtype=dout.dtype)
    h_prev = np.empty((T, N, H), dtype=dout.dtype)  # the state each step started from
    dh, dc = dh_n, dc_n
    order = range(T) if reverse else range(T - 1, -1, -1)  # the forward's steps, last one first
    for t, step in zip(order, reversed(steps)):
        dh = dh + dout[t]
        da_t, db_t, dh, dc = step_backward(dh, dc, step)
        da[t] = da_t
        if not shared:
            db[t] = db_t
        h_prev[t] = step.h
    da2, db2 = da.reshape(-1, GH), db.reshape(-1, GH)  # (T N, G H)
    dW_hh = db2.T @ h_prev.reshape(-1, H)  # (G H, H)
    dW_ih = da2.T @ x.reshape(-1, D)  # (G H, D)
    db_ih, db_hh = (da2.sum(axis=0), db2.sum(axis=0)) if has_bias else (None, None)
    return da @ W_ih, dh, dc, dW_ih, dW_hh, db_ih, db_hh


# --8<-- [end:recurrent_layer_pair]


# ---------------------------------------------------------------- the stack: the pair


def param_names(layer: int, reverse: bool, bias: bool) -> tuple[str, ...]:
    """torch's names of one layer's and direction's parameters, in torch's order."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return (f"weight_ih{sfx}", f"weight_hh{sfx}") + ((f"bias_ih{sfx}", f"bias_hh{sfx}") if bias else ())


class RecurrentCache(NamedTuple):
    """Each layer's and direction's ``LayerCache`` ([layer][direction]), the dropout masks between layers
    with their scale 1 / (1 - p), and the parameters' names and whether there are biases."""

    layers: list[list[LayerCache]]
    masks: list[np.ndarray | None]
    scale: float
    bias: bool


def recurrent_forward(
    mode: str,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray | None,
    params: dict[str, np.ndarray],
    num_layers: int = 1,
    bidirectional: bool = False,
    masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, RecurrentCache]:
    """A stack of recurrent layers over a time-major sequence, as torch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``::

        for layer k: out_k = [forward direction | reverse direction] of out_{k-1}    (T, N, dirs H)
                     between layers, with dropout: out_k = out_k keep_k / (1 - p)

    x: (T, N, D); h0, c0: (num_layers dirs, N, H), row k dirs + d for layer k, direction d (c0 None unless
    LSTM); params: torch's names (``param_names``); masks: num_layers - 1 boolean keep masks (T, N, dirs H)
    or None each (no dropout)  ->  out (T, N, dirs H), h_n, c_n (num_layers dirs, N, H) (c_n None unless
    LSTM), cache.
    """
    dirs = 2 if bidirectional else 1
    bias = "bias_ih_l0" in params
    masks = masks if masks is not None else [None] * (num_layers - 1)
    scale = 1.0 / (1.0 - p)
    h_n, c_n = np.empty_like(h0), (None if c0 is None else np.empty_like(c0))
    caches: list[list[LayerCache]] = []
    inp = x
    for k in range(num_layers):
        outs, layer_caches = [], []
        for d in range(dirs):
            j = k * dirs + d
            W_ih, W_hh, *b = (params[n] for n in param_names(k, d == 1, bias))
            out, h_n[j], c, cache = recurrent_layer_forward(
                mode, inp, h0[j], None if c0 is None else c0[j], W_ih, W_hh, *(b or (None, None)), reverse=d == 1
            )
            if c_n is not None:
                c_n[j] = c
            outs.append(out)
            layer_caches.append(cache)
        inp = outs[0] if dirs == 1 else np.concatenate(outs, axis=2)  # (T, N, dirs H)
        if k < num_layers - 1 and masks[k] is not None:
            inp = inp * (masks[k] * scale).astype(inp.dtype, copy=False)
        caches.append(layer_caches)
    return inp, h_n, c_n, RecurrentCache(caches, masks, scale, bias)


def recurrent_backward(
    dout: np.ndarray, dh_n: np.ndarray, dc_n: np.ndarray | None, cache: RecurrentCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Backward of ``recurrent_forward``, the last layer first::

        for layer k = L-1 .. 0:
            dout_k = dout_k keep_k / (1 - p)                 the dropout after layer k (k < L-1)
            per direction d: dx_d, dh0[j], dc0[j], grads = recurrent_layer_backward(dout_k[..., d H:(d+1) H],
                                                                                    dh_n[j], dc_n[j])
            dout_{k-1} = sum_d dx_d                          both directions read the same input

    dout: (T, N, dirs H); dh_n, dc_n: (num_layers dirs, N, H) (dc_n None unless LSTM)  ->
    dx (T, N, D), dh0, dc0 (like dh_n, dc_n), the parameter gradients by torch's names.
    """
    layers, masks, scale, bias = cache
    dirs = len(layers[0])
    H = dh_n.shape[2]
    dh0, dc0 = np.empty_like(dh_n), (None if dc_n is None else np.empty_like(dc_n))
    grads: dict[str, np.ndarray] = {}
    g = dout
    for k in range(len(layers) - 1, -1, -1):
        if k < len(layers) - 1 and masks[k] is not None:
            g = g * (masks[k] * scale).astype(g.dtype, copy=False)
        dx = None
        for d, layer_cache in enumerate(layers[k]):
            j = k * dirs + d
            dx_d, dh0[j], dc, *pg = recurrent_layer_backward(
                g[:, :, d * H : (d + 1) * H], dh_n[j], None if dc_n is None else dc_n[j], layer_cache
            )
            if dc0 is not None:
                dc0[j] = dc
            grads.update({n: v for n, v in zip(param_names(k, d == 1, bias), pg) if v is not None})
            dx = dx_d if dx is None else dx + dx_d
        g = dx
    return g, dh0, dc0, grads


# ---------------------------------------------------------------- the layers


def _check_state(s: Any, shape: tuple[int, ...], dtype: np.dtype, where: str, what: str) -> np.ndarray:
    check_float_array(s, where, what)
    check_shape(s, shape, where, what)
    check_same_dtype(s, dtype, where, what)
    return s


def _init(
    gen: np.random.Generator,
    names: tuple[str, ...],
    shapes: tuple[tuple[int, ...], ...],
    H: int,
    dtype: np.dtype,
    params: dict[str, np.ndarray],
) -> None:
    """torch's ``reset_parameters``: every weight and bias U(-1/sqrt(H), 1/sqrt(H)), drawn in torch's order."""
    for name, shape in zip(names, shapes):
        params[name] = torch_uniform(gen, shape, H, H, dtype)


class _Cell(Module):
    """One step of a recurrent cell on x (N, input_size) -> h' (N, hidden_size); see ``RNNCell``."""

    mode = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        self.input_size = check_features(cls, "input_size", input_size)
        self.hidden_size = check_features(cls, "hidden_size", hidden_size)
        self.bias = bool(bias)
        self.dtype = check_dtype_arg(dtype, cls)
        G, D, H = GATES[self.mode], self.input_size, self.hidden_size
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        _init(as_generator(rng, cls), names, ((G * H, D), (G * H, H), (G * H,), (G * H,)), H, self.dtype, self.params)
        self.h: np.ndarray | None = None
        self.c: np.ndarray | None = None
        self.c_next: np.ndarray | None = None
        self.dc_next: np.ndarray | None = None
        self.dh: np.ndarray | None = None
        self.dc: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "dtype": self.dtype.name,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        D = self.input_size
        check_float_array(x, self.where)
        check_ndim(x, 2, self.where, layout=f"(N, {D})")
        if x.shape[1] != D:
            raise ValueError(
                f"{self.where}: expected input (N, {D}), got shape {x.shape}: the last axis must hold input_size={D}"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        state = (x.shape[0], self.hidden_size)
        for what in ("h", "c") if self.mode == "lstm" else ("h",):
            if getattr(self, what) is not None:
                _check_state(getattr(self, what), state, self.dtype, self.where, f"state {what} (N, hidden_size)")
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        zeros = np.zeros((x.shape[0], self.hidden_size), self.dtype)
        h = zeros if self.h is None else self.h
        c = (zeros if self.c is None else self.c) if self.mode == "lstm" else None
        p = self.params
        h_new, self.c_next, cache = cell_forward(
            self.mode, x, h, c, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh")
        )
        return h_new, cache

    def _backward(self, dout: np.ndarray, cache: CellCache) -> np.ndarray:
        dc_next = None
        if self.mode == "lstm":
            dc_next = (
                np.zeros_like(dout)
                if self.dc_next is None
                else _check_state(self.dc_next, dout.shape, dout.dtype, self.where, "dc_next (the gradient of c_next)")
            )
        dx, self.dh, self.dc, *grads = cell_backward(dout, dc_next, cache)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        self.grads.update({n: g for n, g in zip(names, grads) if g is not None})
        return dx


class RNNCell(_Cell):
    """An Elman RNN cell, as torch's ``nn.RNNCell(input_size, hidden_size, bias, nonlinearity)``:
    h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (``nonlinearity="relu"``: relu).

    A layer of a ``Sequential``: ``forward(x)`` takes x (N, input_size) and returns h' (N, hidden_size).
    The state it starts from is the attribute ``h`` (N, hidden_size), None for zeros, set before
    ``forward`` and kept until changed. After ``backward(dh')`` the gradient of that state is ``dh``.
    Parameters: ``weight_ih`` (H, D), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,), torch's names
    and layout, each U(-1/sqrt(H), 1/sqrt(H)).
    """

    kind = "rnn_cell"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, bias, rng=rng, dtype=dtype)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTMCell(_Cell):
    """An LSTM cell, as torch's ``nn.LSTMCell(input_size, hidden_size, bias)``; gates i, f, g, o::

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of x W_ih^T + b_ih + h W_hh^T + b_hh   (N, H) each
        c' = f c + i g,   h' = o tanh(c')

    ``forward(x)`` takes x (N, input_size) and returns h' (N, hidden_size); the new cell state is the
    attribute ``c_next``. The state it starts from is the attributes ``h`` and ``c`` (N, hidden_size),
    None for zeros. ``backward(dh')`` takes the gradient of c' from the attribute ``dc_next`` (None:
    zero) and leaves the state's gradients in ``dh`` and ``dc``. Parameters as ``RNNCell``, 4H rows.
    """

    kind = "lstm_cell"
    mode = "lstm"


class GRUCell(_Cell):
    """A GRU cell, as torch's ``nn.GRUCell(input_size, hidden_size, bias)``; gates r, z, n::

        r, z = sigmoid of the first two blocks of x W_ih^T + b_ih + h W_hh^T + b_hh
        n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)),   h' = (1 - z) n + z h

    The reset gate multiplies the hidden projection with its bias (torch's form, not r h before W_hn).
    Interface as ``RNNCell``; parameters with 3H rows.
    """

    kind = "gru_cell"
    mode = "gru"


class _Recurrent(Module):
    """A stack of recurrent layers over a sequence; see ``RNN``."""

    mode = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        self.input_size = check_features(cls, "input_size", input_size)
        self.hidden_size = check_features(cls, "hidden_size", hidden_size)
        self.num_layers = check_features(cls, "num_layers", num_layers)
        self.dropout = check_number(cls, "dropout", dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{cls}: dropout must be in [0, 1), got {dropout!r}")
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dtype = check_dtype_arg(dtype, cls)
        self.rng = as_generator(rng, cls)
        G, H, dirs = GATES[self.mode], self.hidden_size, self.directions
        for k in range(self.num_layers):
            D = self.input_size if k == 0 else dirs * H
            for d in range(dirs):
                names = param_names(k, d == 1, self.bias)
                _init(self.rng, names, ((G * H, D), (G * H, H), (G * H,), (G * H,)), H, self.dtype, self.params)
        self.h0: np.ndarray | None = None
        self.c0: np.ndarray | None = None
        self.h_n: np.ndarray | None = None
        self.c_n: np.ndarray | None = None
        self.dh_n: np.ndarray | None = None
        self.dc_n: np.ndarray | None = None
        self.dh0: np.ndarray | None = None
        self.dc0: np.ndarray | None = None
        self.mask: list[np.ndarray | None] = [None] * (self.num_layers - 1)
        self.frozen = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self.dtype.name,
        }

    def _state_shape(self, N: int) -> tuple[int, int, int]:
        return (self.num_layers * self.directions, N, self.hidden_size)

    def _check_input(self, x: Any) -> np.ndarray:
        D = self.input_size
        layout = f"(N, T, {D})" if self.batch_first else f"(T, N, {D})"
        check_float_array(x, self.where)
        check_ndim(x, 3, self.where, layout=layout)
        if x.shape[2] != D:
            raise ValueError(
                f"{self.where}: expected input {layout}, got shape {x.shape}: the last axis must hold input_size={D}"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        state = self._state_shape(x.shape[0] if self.batch_first else x.shape[1])
        for what in ("h0", "c0") if self.mode == "lstm" else ("h0",):
            if getattr(self, what) is not None:
                _check_state(
                    getattr(self, what),
                    state,
                    self.dtype,
                    self.where,
                    f"initial state {what} (num_layers * directions, N, hidden_size)",
                )
        return x

    def _draw_masks(self, shape: tuple[int, ...]) -> list[np.ndarray | None]:
        if not self.training or self.dropout == 0.0:
            return [None] * (self.num_layers - 1)
        if self.frozen:
            if any(m is None or m.shape != shape for m in self.mask):
                got = [None if m is None else m.shape for m in self.mask]
                raise ValueError(f"{self.where}: frozen dropout masks of shapes {got} do not fit {shape}")
            return self.mask
        return [self.rng.random(shape) >= self.dropout for _ in range(self.num_layers - 1)]  # P(keep) = 1 - p

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        xt = x if not self.batch_first else x.transpose(1, 0, 2)  # (T, N, D), a view
        T, N, _ = xt.shape
        zeros = np.zeros(self._state_shape(N), self.dtype)
        h0 = zeros if self.h0 is None else self.h0
        c0 = (zeros if self.c0 is None else self.c0) if self.mode == "lstm" else None
        self.mask = self._draw_masks((T, N, self.directions * self.hidden_size))
        out, self.h_n, self.c_n, cache = recurrent_forward(
            self.mode, xt, h0, c0, self.params, self.num_layers, self.bidirectional, self.mask, self.dropout
        )
        return (out.transpose(1, 0, 2).copy() if self.batch_first else out), cache  # (N, T, dirs H) or (T, N, ..)

    def _backward(self, dout: np.ndarray, cache: RecurrentCache) -> np.ndarray:
        g = dout.transpose(1, 0, 2) if self.batch_first else dout  # (T, N, dirs H)
        state = self._state_shape(g.shape[1])
        dh_n, dc_n = np.zeros(state, self.dtype), (np.zeros(state, self.dtype) if self.mode == "lstm" else None)
        if self.dh_n is not None:
            dh_n = _check_state(self.dh_n, state, self.dtype, self.where, "dh_n (the gradient of h_n)")
        if self.dc_n is not None and self.mode == "lstm":
            dc_n = _check_state(self.dc_n, state, self.dtype, self.where, "dc_n (the gradient of c_n)")
        dx, self.dh0, self.dc0, grads = recurrent_backward(g, dh_n, dc_n, cache)
        self.grads.update(grads)
        return dx.transpose(1, 0, 2).copy() if self.batch_first else dx


_STACK_DOC = """

    Inside a ``Sequential``, ``forward(x)`` takes x (N, T, input_size) (``batch_first=False``: (T, N,
    input_size)) and returns every step's top-layer state, ``output`` (N, T, dirs hidden_size) (or
    (T, N, ...)), the two directions side by side. State, as attributes (a ``Sequential`` passes only x):

    - ``h0`` (and ``c0``, LSTM), (num_layers dirs, N, hidden_size), row k dirs + d for layer k and
      direction d: the initial state, None for zeros, set before ``forward`` and kept until changed;
    - ``h_n`` (and ``c_n``): the final state, left by ``forward``, torch's shape;
    - ``dh_n`` (and ``dc_n``): a gradient reaching the final state, set before ``backward`` (None: zero;
      kept until changed); inside a network nothing reads h_n, so it stays None;
    - ``dh0`` (and ``dc0``): the gradient of the initial state, left by ``backward``.

    ``dropout``: between layers (not after the last), in training, keep masks drawn from ``rng`` at
    ``forward`` and kept in ``mask`` (a list, one per gap; ``frozen = True`` reuses them). Parameters: torch's
    names and layout (``weight_ih_l0`` (G H, D), ``weight_hh_l0`` (G H, H), ``bias_ih_l0``, ``bias_hh_l0``, the
    suffix ``_reverse`` for the backward direction), each U(-1/sqrt(H), 1/sqrt(H)). Differences from
    torch: ``batch_first=True`` by default; no ``proj_size``; unbatched (2-D) input is refused.
    """


class RNN(_Recurrent):
    """An Elman RNN, as torch's ``nn.RNN``: per layer and step, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T
    + b_hh) (``nonlinearity="relu"``: relu)."""

    kind = "rnn"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = f"rnn_{nonlinearity}"
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, rng=rng, dtype=dtype
        )

    def config(self) -> dict[str, Any]:
        return {**super().config(), "nonlinearity": self.nonlinearity}


class LSTM(_Recurrent):
    """An LSTM, as torch's ``nn.LSTM``: per layer and step, gates i, f, g, o (the blocks of the weights'
    rows) from x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh; c_t = f c_{t-1} + i g, h_t = o tanh(c_t)."""

    kind = "lstm"
    mode = "lstm"


class GRU(_Recurrent):
    """A GRU, as torch's ``nn.GRU``: per layer and step, gates r, z, n;
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)), h_t = (1 - z) n + z h_{t-1}."""

    kind = "gru"
    mode = "gru"


for _cls in (RNN, LSTM, GRU):
    _cls.__doc__ = (_cls.__doc__ or "") + _STACK_DOC
