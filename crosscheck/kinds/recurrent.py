"""RNN, LSTM, GRU (sequence layers, torch's names and layout) and their single-step cells.

The references: torch's own ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` and cells holding the spec's arrays, and
JAX's ``lax.scan`` over torch's gate equations written in ``jnp`` (the reverse direction by flipping time).
Besides its output, a layer's final states (``h_n``, ``c_n``; a cell's ``c_next``) are compared
(``Kind.outputs``); the initial states and the dropout masks between layers come from the spec's ``fixed``.

Tolerance: a running error analysis, elementwise, in float64. Every forward value v carries E(v) >= |v|,
the size of the terms behind it; every backward value its size bound M and E. The rules (docs/tolerance.md):

    y = x W^T + b      E(y) = (|x| + E(x)) |W|^T + |b|
    u + v              E = E(u) + E(v)
    u v                E = E(u) |v| + |u| E(v)              (backward: M(u) in place of |u|)
    f(z), f smooth     E = |f'(z)| E(z) + |f(z)|;  relu: E(z)
    f'(z) as computed  sigmoid: E(s(1-s)) = E(s)|1-s| + |s|(|1-s| + E(s)); tanh: E(1-t^2) = 1 + t^2 + 2|t| E(t)
    dW = sum da^T x    E(dW) = sum (M(da) + E(da))^T (|x| + E(x))

carried step by step through time, layer by layer and back (BPTT): S(out), S(h_n), S(c_n) and G(dx), G(dW),
G(db) are their maxima. First order in eps; sound for any correct implementation that rounds each
operation once (one rounding of each term is inside E, since E >= |value|). A relu RNN's pre-activations
near 0 are a hazard for the case generator.

Its length (over 400 lines): six kinds share one per-step error analysis and one scan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import jax, jnp, nn, torch
from crosscheck.kinds.entry import Image, Kind
from crosscheck.kinds.layouts import copy_into
from crosscheck.spec import LayerSpec

GATES = {"rnn": 1, "rnn_cell": 1, "lstm": 4, "lstm_cell": 4, "gru": 3, "gru_cell": 3}
CELLS = ("rnn_cell", "lstm_cell", "gru_cell")
_TORCH = {
    "rnn": "RNN",
    "lstm": "LSTM",
    "gru": "GRU",
    "rnn_cell": "RNNCell",
    "lstm_cell": "LSTMCell",
    "gru_cell": "GRUCell",
}


def _names(k: int, reverse: bool, bias: bool) -> tuple[str, ...]:
    sfx = f"_l{k}" + ("_reverse" if reverse else "")
    return (f"weight_ih{sfx}", f"weight_hh{sfx}") + ((f"bias_ih{sfx}", f"bias_hh{sfx}") if bias else ())


def _mode(kind: str, config: dict[str, Any]) -> str:
    """ "rnn_tanh", "rnn_relu", "lstm" or "gru"."""
    base = kind.removesuffix("_cell")
    return f"rnn_{config['nonlinearity']}" if base == "rnn" else base


class _Plain:
    """A layer as plain data, from a spec (``LayerSpec``) or a manual_bp layer (its public attributes)."""

    def __init__(self, layer: Any) -> None:
        if isinstance(layer, LayerSpec):
            self.kind, self.config, self.params, self.fixed = layer.kind, layer.config, layer.params, layer.fixed
        else:
            self.kind, self.config, self.params = layer.kind, layer.config(), layer.params
            self.fixed = _fixed(layer)
        self.mode = _mode(self.kind, self.config)
        self.cell = self.kind in CELLS
        self.bias = bool(self.config["bias"])
        self.H = int(self.config["hidden_size"])
        self.layers = 1 if self.cell else int(self.config["num_layers"])
        self.dirs = 2 if not self.cell and self.config["bidirectional"] else 1

    def weights(self, k: int, d: int) -> list[np.ndarray | None]:
        """W_ih, W_hh, b_ih, b_hh (float64; biases None without bias)."""
        if self.cell:
            names: tuple[str, ...] = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        else:
            names = _names(k, d == 1, self.bias)
        got = [np.asarray(self.params[n], np.float64) for n in names]
        return [*got, None, None] if not self.bias else got

    def time_major(self, x: np.ndarray) -> np.ndarray:
        """x as (T, N, D) (a cell's (N, D) as (1, N, D))."""
        if self.cell:
            return x[None]
        return x.transpose(1, 0, 2) if self.config["batch_first"] else x

    def states(self, N: int) -> tuple[np.ndarray, np.ndarray | None]:
        """h0, c0 (layers dirs, N, H) from ``fixed`` (zeros where absent); c0 None unless LSTM."""
        shape = (self.layers * self.dirs, N, self.H)
        h_key, c_key = ("h", "c") if self.cell else ("h0", "c0")
        h0 = np.asarray(self.fixed[h_key], np.float64).reshape(shape) if h_key in self.fixed else np.zeros(shape)
        c0 = None
        if self.mode == "lstm":
            c0 = np.asarray(self.fixed[c_key], np.float64).reshape(shape) if c_key in self.fixed else np.zeros(shape)
        return h0, c0

    def mask(self, k: int) -> np.ndarray | None:
        """The keep mask after layer k times 1 / (1 - p), or None."""
        m = self.fixed.get(f"mask_l{k}")
        return None if m is None else m / (1.0 - float(self.config["dropout"]))


# ---------------------------------------------------------------- running error analysis


def _sig(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def _act(kind: str, z: np.ndarray, Ez: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(z) and E(f(z)) = |f'(z)| E(z) + |f(z)| (relu: E(z))."""
    if kind == "relu":
        return np.maximum(z, 0), Ez
    y = np.tanh(z) if kind == "tanh" else _sig(z)
    slope = 1 - y * y if kind == "tanh" else y * (1 - y)
    return y, slope * Ez + np.abs(y)


def _slope(kind: str, y: np.ndarray, Ey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f'(z) as computed from y = f(z), and its E (module docstring); relu: the 0/1 mask, exact."""
    if kind == "relu":
        return (y > 0).astype(np.float64), np.zeros_like(y)
    if kind == "tanh":
        return 1 - y * y, 1 + y * y + 2 * np.abs(y) * Ey
    a = np.abs(1 - y)
    return y * (1 - y), Ey * a + np.abs(y) * (a + Ey)


def _lin(x: np.ndarray, Ex: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """y = x W^T + b and E(y) = (|x| + E(x)) |W|^T + |b|."""
    y, Ey = x @ W.T, (np.abs(x) + Ex) @ np.abs(W).T
    return (y, Ey) if b is None else (y + b, Ey + np.abs(b))


def _step(
    mode: str,
    a: np.ndarray,
    Ea: np.ndarray,
    h: np.ndarray,
    Eh: np.ndarray,
    c: Any,
    Ec: Any,
    W_hh: np.ndarray,
    b_hh: np.ndarray | None,
) -> tuple[Any, ...]:
    """One step with E: (h', E(h'), c', E(c'), what the backward needs (dict))."""
    H = h.shape[1]
    b, Eb = _lin(h, Eh, W_hh, b_hh)
    keep: dict[str, Any] = {"h": h, "Eh": Eh}
    if mode == "gru":
        r, Er = _act("sigmoid", a[:, :H] + b[:, :H], Ea[:, :H] + Eb[:, :H])
        z, Ez = _act("sigmoid", a[:, H : 2 * H] + b[:, H : 2 * H], Ea[:, H : 2 * H] + Eb[:, H : 2 * H])
        bn, Ebn = b[:, 2 * H :], Eb[:, 2 * H :]
        n, En = _act("tanh", a[:, 2 * H :] + r * bn, Ea[:, 2 * H :] + Er * np.abs(bn) + np.abs(r) * Ebn)
        Eomz = np.abs(1 - z) + Ez
        h_new = (1 - z) * n + z * h
        Eh_new = Eomz * np.abs(n) + np.abs(1 - z) * En + Ez * np.abs(h) + np.abs(z) * Eh
        keep.update(r=r, Er=Er, z=z, Ez=Ez, n=n, En=En, bn=bn, Ebn=Ebn)
        return h_new, Eh_new, None, None, keep
    s, Es = a + b, Ea + Eb
    if mode == "lstm":
        i, Ei = _act("sigmoid", s[:, :H], Es[:, :H])
        f, Ef = _act("sigmoid", s[:, H : 2 * H], Es[:, H : 2 * H])
        g, Eg = _act("tanh", s[:, 2 * H : 3 * H], Es[:, 2 * H : 3 * H])
        o, Eo = _act("sigmoid", s[:, 3 * H :], Es[:, 3 * H :])
        c_new = f * c + i * g
        Ec_new = Ef * np.abs(c) + np.abs(f) * Ec + Ei * np.abs(g) + np.abs(i) * Eg
        tc, Etc = _act("tanh", c_new, Ec_new)
        keep.update(i=i, Ei=Ei, f=f, Ef=Ef, g=g, Eg=Eg, o=o, Eo=Eo, c=c, Ec=Ec, tc=tc, Etc=Etc)
        return o * tc, Eo * np.abs(tc) + np.abs(o) * Etc, c_new, Ec_new, keep
    kind = mode[4:]
    y, Ey = _act(kind, s, Es)
    keep.update(y=y, Ey=Ey, kind=kind, s=s, Es=Es)
    return y, Ey, None, None, keep


def _mul(M: np.ndarray, E: np.ndarray, v: np.ndarray, Ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A backward value (size M, terms E) times a forward value v (terms Ev)."""
    return M * np.abs(v), E * np.abs(v) + M * Ev


def _step_back(
    mode: str, M: np.ndarray, E: np.ndarray, Mc: Any, Ec: Any, k: dict[str, Any], W_hh: np.ndarray
) -> tuple[Any, ...]:
    """(M, E) of da, db, dh, dc for one step back (``manual_bp``-free restatement of the BPTT step)."""
    absW = np.abs(W_hh)
    if mode == "lstm":
        Mo, Eo = _mul(*_mul(M, E, k["tc"], k["Etc"]), *_slope("sigmoid", k["o"], k["Eo"]))
        t_slope = _slope("tanh", k["tc"], k["Etc"])
        Mk, Ek = _mul(*_mul(M, E, k["o"], k["Eo"]), *t_slope)  # dh o (1 - tanh(c')^2)
        Mdc, Edc = (Mk, Ek) if Mc is None else (Mk + Mc, Ek + Ec)
        Mi, Ei = _mul(*_mul(Mdc, Edc, k["g"], k["Eg"]), *_slope("sigmoid", k["i"], k["Ei"]))
        Mf, Ef = _mul(*_mul(Mdc, Edc, k["c"], k["Ec"]), *_slope("sigmoid", k["f"], k["Ef"]))
        Mg, Eg = _mul(*_mul(Mdc, Edc, k["i"], k["Ei"]), *_slope("tanh", k["g"], k["Eg"]))
        Mda, Eda = np.concatenate((Mi, Mf, Mg, Mo), 1), np.concatenate((Ei, Ef, Eg, Eo), 1)
        Mcp, Ecp = _mul(Mdc, Edc, k["f"], k["Ef"])
        return Mda, Eda, Mda, Eda, Mda @ absW, (Mda + Eda) @ absW, Mcp, Ecp
    if mode == "gru":
        one_z = (1 - k["z"], np.abs(1 - k["z"]) + k["Ez"])
        Msn, Esn = _mul(*_mul(M, E, *one_z), *_slope("tanh", k["n"], k["En"]))
        h_n = (k["h"] - k["n"], k["Eh"] + k["En"])
        Mr, Er = _mul(*_mul(Msn, Esn, k["bn"], k["Ebn"]), *_slope("sigmoid", k["r"], k["Er"]))
        Mz, Ez = _mul(*_mul(M, E, *h_n), *_slope("sigmoid", k["z"], k["Ez"]))
        Mbn, Ebn = _mul(Msn, Esn, k["r"], k["Er"])
        Mda, Eda = np.concatenate((Mr, Mz, Msn), 1), np.concatenate((Er, Ez, Esn), 1)
        Mdb, Edb = np.concatenate((Mr, Mz, Mbn), 1), np.concatenate((Er, Ez, Ebn), 1)
        Mhz, Ehz = _mul(M, E, k["z"], k["Ez"])
        return Mda, Eda, Mdb, Edb, Mdb @ absW + Mhz, (Mdb + Edb) @ absW + Ehz, None, None
    Mda, Eda = _mul(M, E, *_slope(k["kind"], k["y"], k["Ey"]))
    return Mda, Eda, Mda, Eda, Mda @ absW, (Mda + Eda) @ absW, None, None


def analyse(
    layer: Any, x: np.ndarray, Ex: np.ndarray, dout_size: float | None = None, dout_terms: float = 0.0
) -> dict[str, Any]:
    """The running error analysis of one layer on x (its own layout) with input terms Ex (broadcastable).

    Forward: "out" (value, E) in the layer's layout, "h_n", "c_n" (E), "pre" (every relu pre-activation
    with E, for the hazard). With ``dout_size`` (max |dout|) and ``dout_terms`` (G(dout)): E of "dx" and
    of every parameter gradient "d<name>" (their maxima are the G's)."""
    p = _Plain(layer)
    xt = p.time_major(np.asarray(x, np.float64))
    Ext = p.time_major(np.broadcast_to(np.asarray(Ex, np.float64), np.shape(x)))
    T, N, _ = xt.shape
    h0, c0 = p.states(N)
    res: dict[str, Any] = {"pre": []}
    En_h = np.zeros((p.layers * p.dirs,))
    En_c = np.zeros((p.layers * p.dirs,))
    tapes: list[list[Any]] = []
    inp, Einp = xt, Ext
    for k in range(p.layers):
        outs, Eouts, layer_tapes = [], [], []
        for d in range(p.dirs):
            W_ih, W_hh, b_ih, b_hh = p.weights(k, d)
            a, Ea = _lin(inp, Einp, W_ih, b_ih)  # (T, N, G H)
            h, Eh = h0[k * p.dirs + d], np.abs(h0[k * p.dirs + d])
            c = None if c0 is None else c0[k * p.dirs + d]
            Ec = None if c is None else np.abs(c)
            out, Eout = np.empty((T, N, p.H)), np.empty((T, N, p.H))
            steps = []
            for t in range(T - 1, -1, -1) if d == 1 else range(T):
                h, Eh, c, Ec, keep = _step(p.mode, a[t], Ea[t], h, Eh, c, Ec, W_hh, b_hh)
                out[t], Eout[t] = h, Eh
                steps.append((t, keep))
                if "s" in keep:
                    res["pre"].append((keep["s"], keep["Es"]))
            En_h[k * p.dirs + d] = Eh.max(initial=0.0)
            if Ec is not None:
                En_c[k * p.dirs + d] = Ec.max(initial=0.0)
            outs.append(out)
            Eouts.append(Eout)
            layer_tapes.append((inp, Einp, steps))
        inp, Einp = np.concatenate(outs, 2), np.concatenate(Eouts, 2)
        mask = p.mask(k) if k < p.layers - 1 else None
        if mask is not None:
            inp, Einp = inp * mask, Einp * mask
        tapes.append(layer_tapes)
    back = (lambda a: a[0]) if p.cell else (lambda a: a.transpose(1, 0, 2) if p.config["batch_first"] else a)
    res["out"] = (back(inp), back(Einp))
    res["h_n"], res["c_n"] = float(En_h.max()), float(En_c.max())
    if dout_size is None:
        return res
    M, E = np.full(inp.shape, dout_size), np.full(inp.shape, dout_terms)
    for k in range(p.layers - 1, -1, -1):
        mask = p.mask(k) if k < p.layers - 1 else None
        if mask is not None:
            M, E = M * mask, E * mask
        Mx, Ex_ = 0.0, 0.0
        for d in range(p.dirs):
            W_ih, W_hh, b_ih, _ = p.weights(k, d)
            x_in, Ex_in, steps = tapes[k][d]
            sl = slice(d * p.H, (d + 1) * p.H)
            Mh, Eh = np.zeros((N, p.H)), np.zeros((N, p.H))
            Mc, Ec = (np.zeros((N, p.H)), np.zeros((N, p.H))) if p.mode == "lstm" else (None, None)
            GH = W_ih.shape[0]
            Mda, Eda = np.zeros((T, N, GH)), np.zeros((T, N, GH))
            dW_hh, db_hh = np.zeros(W_hh.shape), np.zeros(GH)
            for t, keep in reversed(steps):
                Mh, Eh = Mh + M[t, :, sl], Eh + E[t, :, sl]
                Mda[t], Eda[t], Mdb, Edb, Mh, Eh, Mc, Ec = _step_back(p.mode, Mh, Eh, Mc, Ec, keep, W_hh)
                dW_hh += (Mdb + Edb).T @ (np.abs(keep["h"]) + keep["Eh"])
                db_hh += (Mdb + Edb).sum(0)
            dW_ih = (Mda + Eda).reshape(-1, GH).T @ (np.abs(x_in) + Ex_in).reshape(-1, x_in.shape[2])
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if p.cell else _names(k, d == 1, p.bias)
            res[f"d{names[0]}"], res[f"d{names[1]}"] = dW_ih, dW_hh
            if p.bias:  # db_ih = sum da, db_hh = sum db: E(sum) = sum (M + E)
                res[f"d{names[2]}"], res[f"d{names[3]}"] = (Mda + Eda).reshape(-1, GH).sum(0), db_hh
            Mx = Mx + Mda @ np.abs(W_ih)
            Ex_ = Ex_ + (Mda + Eda) @ np.abs(W_ih)
        M, E = Mx, Ex_
    res["dx"] = back(E)
    return res


# ---------------------------------------------------------------- tolerance rules


def _fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    """S(out), S(h_n), S(c_n) (a cell's S(c_next)) from the running error analysis with E(x) = S(x)."""
    res = analyse(layer, h, np.full(np.shape(h), s_in))
    for o, s in (("h_n", res["h_n"]), ("c_n", res["c_n"]), ("c_next", res["c_n"])):
        if o in _outputs(layer.kind):
            w.store(layer, o, s)
    return float(res["out"][1].max(initial=0.0))


def _bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """G of every parameter gradient (stored) and of dx (returned), by the analysis (its forward run again on
    the layer's input) with M(dout) = max |dout| and E(dout) = G(dout)."""
    res = analyse(layer, h_in, np.full(np.shape(h_in), s_x), w.dout(layer, g), g)
    for name in layer.params:
        w.store(layer, f"d{name}", float(np.max(res[f"d{name}"], initial=0.0)))
    return float(res["dx"].max(initial=0.0))


def _terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """E(out) with E(x) = m."""
    return analyse(layer, x, m)["out"][1]


def _hazard(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    """A relu pre-activation within tol E of 0 (E: its terms, from m); tanh, sigmoid: smooth."""
    if _mode(layer.kind, layer.config()) != "rnn_relu":
        return False
    return any(bool(np.any(np.abs(s) < tol * Es)) for s, Es in analyse(layer, h, m)["pre"])


def _lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    """The products' lengths: input_size, hidden_size, and G H (dirs H for the layers above the first)."""
    c = layer.config
    H = c["hidden_size"]
    dirs = 2 if layer.kind not in CELLS and c["bidirectional"] else 1
    return [c["input_size"], H, GATES[layer.kind] * H, dirs * H], image


# ---------------------------------------------------------------- references: torch


def _torch(layer: LayerSpec, dtype: Any) -> Any:
    """torch's own module with the spec's arrays (same names, same layout). With dropout masks between
    layers (torch cannot take a mask), one single-layer module per layer, in an ``nn.ModuleList``."""
    c, kind = layer.config, layer.kind
    cls = getattr(nn, _TORCH[kind])
    extra = {"nonlinearity": c["nonlinearity"]} if kind.startswith("rnn") else {}
    if kind in CELLS:
        m = cls(c["input_size"], c["hidden_size"], bias=c["bias"], dtype=dtype, **extra)
        for name, p in m.named_parameters():
            copy_into(p, layer.params[name])
        return m
    kw = {"bias": c["bias"], "batch_first": c["batch_first"], "bidirectional": c["bidirectional"], "dtype": dtype}
    if not any(k.startswith("mask_l") for k in layer.fixed):
        m = cls(c["input_size"], c["hidden_size"], c["num_layers"], **kw, **extra)
        for name, p in m.named_parameters():
            copy_into(p, layer.params[name])
        return m
    dirs = 2 if c["bidirectional"] else 1
    stack = nn.ModuleList()
    for k in range(c["num_layers"]):
        m = cls(c["input_size"] if k == 0 else dirs * c["hidden_size"], c["hidden_size"], 1, **kw, **extra)
        for name, p in m.named_parameters():
            copy_into(p, layer.params[name.replace("_l0", f"_l{k}")])
        stack.append(m)
    return stack


def _torch_state(layer: LayerSpec, key: str, rows: slice | None = None) -> Any:
    if key not in layer.fixed:
        return None
    s = torch.from_numpy(np.array(layer.fixed[key], copy=True))
    return s if rows is None else s[rows]


def _torch_apply(layer: LayerSpec, m: Any, h: Any, apply: Any) -> Any:
    """torch's forward with the spec's initial states; the final states are left on the module as ``h_n``,
    ``c_n`` (a cell's new cell state as ``c_next``), where the driver reads them (``Kind.outputs``)."""
    lstm = layer.kind.startswith("lstm")

    def state(h_key: str, c_key: str, rows: slice | None = None, like: Any = None) -> Any:
        hs, cs = _torch_state(layer, h_key, rows), _torch_state(layer, c_key, rows)
        if not lstm:
            return hs
        if hs is None and cs is None:
            return None
        zeros = torch.zeros_like(hs if hs is not None else cs)
        return (zeros if hs is None else hs, zeros if cs is None else cs)

    if layer.kind in CELLS:
        out = m(h, state("h", "c"))
        if lstm:
            out, m.c_next = out
        return out
    if not isinstance(m, nn.ModuleList):
        out, hn = m(h, state("h0", "c0"))
    else:  # one module per layer, manual_bp's dropout masks between them through torch's own expression
        dirs = 2 if layer.config["bidirectional"] else 1
        finals, out = [], h
        for k, mk in enumerate(m):
            out, hn_k = mk(out, state("h0", "c0", slice(k * dirs, (k + 1) * dirs)))
            finals.append(hn_k)
            if f"mask_l{k}" in layer.fixed:
                keep = torch.from_numpy(layer.fixed[f"mask_l{k}"]).to(out.dtype)
                keep = keep.transpose(0, 1) if layer.config["batch_first"] else keep
                out = out * keep.div_(1 - layer.config["dropout"])
        hn = (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals])) if lstm else torch.cat(finals)
    m.h_n, m.c_n = (hn[0], hn[1]) if lstm else (hn, None)
    return out


def _torch_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    if isinstance(m, nn.ModuleList):
        return {
            f"d{name.replace('_l0', f'_l{k}')}": p.grad.numpy().copy()
            for k, mk in enumerate(m)
            for name, p in mk.named_parameters()
        }
    return {f"d{name}": p.grad.numpy().copy() for name, p in m.named_parameters()}


# ---------------------------------------------------------------- references: JAX


def _jax_step(mode: str, W_hh: Any, b_hh: Any) -> Any:
    """torch's step equations in jnp: (h, c), a_t -> (h', c'), h'."""
    hi = jax.lax.Precision.HIGHEST

    def step(carry: Any, a: Any) -> Any:
        h, c = carry
        b = jnp.matmul(h, W_hh.T, precision=hi)
        b = b if b_hh is None else b + b_hh
        if mode == "lstm":
            i, f, g, o = jnp.split(a + b, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
        elif mode == "gru":
            a_r, a_z, a_n = jnp.split(a, 3, axis=-1)
            b_r, b_z, b_n = jnp.split(b, 3, axis=-1)
            r, z = jax.nn.sigmoid(a_r + b_r), jax.nn.sigmoid(a_z + b_z)
            n = jnp.tanh(a_n + r * b_n)
            h = (1 - z) * n + z * h
        else:
            h = jax.nn.relu(a + b) if mode == "rnn_relu" else jnp.tanh(a + b)
        return (h, c), h

    return step


def _jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """``lax.scan`` over time per layer and direction (the reverse direction scans the flipped sequence and
    flips its outputs back); the final states go to ``net.outs["<layer>.h_n"]`` (``Kind.outputs``)."""
    pl = _Plain(layer)
    hi = jax.lax.Precision.HIGHEST
    xt = x[None] if pl.cell else (jnp.swapaxes(x, 0, 1) if layer.config["batch_first"] else x)  # (T, N, D)
    N = xt.shape[1]
    shape = (pl.layers * pl.dirs, N, pl.H)
    h0 = (
        jnp.asarray(layer.fixed[("h" if pl.cell else "h0")]).reshape(shape)
        if ("h" if pl.cell else "h0") in layer.fixed
        else jnp.zeros(shape, x.dtype)
    )
    c_key = "c" if pl.cell else "c0"
    c0 = jnp.asarray(layer.fixed[c_key]).reshape(shape) if c_key in layer.fixed else jnp.zeros(shape, x.dtype)
    finals_h, finals_c = [], []
    inp = xt
    for k in range(pl.layers):
        outs = []
        for d in range(pl.dirs):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if pl.cell else _names(k, d == 1, True)
            W_ih, W_hh = p[names[0]], p[names[1]]
            b_ih, b_hh = (p[names[2]], p[names[3]]) if pl.bias else (None, None)
            a = jnp.matmul(inp, W_ih.T, precision=hi)
            a = a if b_ih is None else a + b_ih
            j = k * pl.dirs + d
            (h, c), out = jax.lax.scan(_jax_step(pl.mode, W_hh, b_hh), (h0[j], c0[j]), a[::-1] if d else a)
            outs.append(out[::-1] if d else out)
            finals_h.append(h)
            finals_c.append(c)
        inp = outs[0] if pl.dirs == 1 else jnp.concatenate(outs, axis=-1)
        if f"mask_l{k}" in layer.fixed and k < pl.layers - 1:
            keep = jnp.asarray(layer.fixed[f"mask_l{k}"])  # time-major, as inp
            inp = jnp.where(keep, inp / (1 - layer.config["dropout"]), jnp.zeros((), inp.dtype))
    if pl.cell:
        if pl.mode == "lstm":
            net.outs[f"{layer.name}.c_next"] = finals_c[0]
        return inp[0]
    net.outs[f"{layer.name}.h_n"] = jnp.stack(finals_h)
    if pl.mode == "lstm":
        net.outs[f"{layer.name}.c_n"] = jnp.stack(finals_c)
    return jnp.swapaxes(inp, 0, 1) if layer.config["batch_first"] else inp


# ---------------------------------------------------------------- spec reading, cases


def _fixed(layer: Any) -> dict[str, np.ndarray]:
    """The initial states a manual_bp layer was given (``h0``, ``c0``; a cell's ``h``, ``c``) and, in
    training, the dropout keep masks it drew between layers (``mask_l{k}``, time-major (T, N, dirs H))."""
    got = {
        k: np.array(getattr(layer, k), copy=True) for k in ("h0", "c0", "h", "c") if getattr(layer, k, None) is not None
    }
    if getattr(layer, "training", False):
        for k, m in enumerate(getattr(layer, "mask", None) or []):
            if m is not None:
                got[f"mask_l{k}"] = np.array(m, copy=True)
    return got


def _outputs(kind: str) -> tuple[str, ...]:
    return {"rnn": ("h_n",), "gru": ("h_n",), "lstm": ("h_n", "c_n"), "lstm_cell": ("c_next",)}.get(kind, ())


def _describe(layer: Any) -> str:
    c = layer.config()
    name = _TORCH[layer.kind]
    extra = " relu" if c.get("nonlinearity") == "relu" else ""
    if layer.kind in CELLS:
        return f"{name}({c['input_size']}->{c['hidden_size']}{extra})"
    p = f" p={c['dropout']:g}" if c["dropout"] else ""
    return (
        f"{name}({c['input_size']}->{c['hidden_size']} x{c['num_layers']}{' bi' if c['bidirectional'] else ''}"
        f"{extra}{'' if c['bias'] else ' no bias'}{'' if c['batch_first'] else ' time-first'}{p})"
    )


def _entry(kind: str) -> Kind:
    rnn = kind.startswith("rnn")
    return Kind(
        kind,
        torch_module=_torch,
        torch_apply=_torch_apply,
        torch_grads=_torch_grads,
        jax_apply=_jax,
        scale_fwd=_fwd,
        scale_bwd=_bwd,
        terms=_terms,
        hazard=_hazard,
        lengths=_lengths,
        fixed=_fixed,
        describe=_describe,
        outputs=_outputs(kind),
        draw=(lambda rng: {"nonlinearity": str(rng.choice(["tanh", "relu"]))}) if rnn else None,
    )


KINDS = [_entry(kind) for kind in ("rnn", "lstm", "gru", "rnn_cell", "lstm_cell", "gru_cell")]
