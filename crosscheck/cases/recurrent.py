"""Recurrent cases: ``recurrent_case(i)`` draws an RNN, LSTM or GRU over x (N, T, D) (1-2 layers, either
direction, batch first or time first, dropout between layers, with or without biases) or a single-step
cell over x (N, D), an initial state given or zero, then Flatten, a Linear and a loss. A relu RNN whose
pre-activations come near 0 has its input redrawn (``crosscheck.cases.hazards``). docs/cases.md."""

from __future__ import annotations

import numpy as np

import manual_bp as mbp
from crosscheck.cases.common import LOSSES, Case, describe, loss_and_target
from crosscheck.cases.hazards import hazards
from crosscheck.kinds import lookup

_SALT = 0x726E  # "rn": keeps these streams apart from the other families'
STACKS = {"rnn": mbp.RNN, "lstm": mbp.LSTM, "gru": mbp.GRU}
CELLS = {"rnn_cell": mbp.RNNCell, "lstm_cell": mbp.LSTMCell, "gru_cell": mbp.GRUCell}
TRIES = 20  # inputs drawn before a case with a near-kink is given up (then the last draw stands, tagged)


class RecurrentCase(Case):
    """A ``Case`` described by its input shape and every layer (``Case`` lists MLP widths)."""

    @property
    def description(self) -> str:
        arch = " -> ".join(describe(layer) for layer in self.model)
        return f"{self.dtype} x={self.x.shape} {arch} {self.loss_fn!r} {self._labels}{self._tags}"


def _layer(rng: np.random.Generator, kind: str, D: int, H: int, dtype: str) -> mbp.Module:
    draw = lookup(kind).draw
    kw = {**(draw(rng) if draw is not None else {}), "bias": bool(rng.random() < 0.85)}
    if kind in CELLS:
        return CELLS[kind](D, H, rng=rng, dtype=dtype, **kw)
    layers = int(rng.integers(1, 3))
    p = float(rng.choice([0.0, 0.3, 0.6])) if layers > 1 else 0.0
    return STACKS[kind](
        D,
        H,
        layers,
        batch_first=bool(rng.random() < 0.75),
        dropout=p,
        bidirectional=bool(rng.random() < 0.5),
        rng=rng,
        dtype=dtype,
        **kw,
    )


def _inputs(rng: np.random.Generator, layer: mbp.Module, N: int, T: int, D: int, dtype: str) -> np.ndarray:
    """x, and (half the time) the initial state set on the layer; float32-exact values either way."""
    scale = float(rng.choice([0.5, 1.0, 3.0]))
    cell = layer.kind in CELLS
    shape = (N, D) if cell else ((N, T, D) if layer.batch_first else (T, N, D))
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    H = layer.hidden_size
    state = (N, H) if cell else (layer.num_layers * layer.directions, N, H)
    given = rng.random() < 0.5
    names = ("h", "c") if cell else ("h0", "c0")
    for name in names if layer.kind.startswith("lstm") else names[:1]:
        setattr(layer, name, rng.standard_normal(state).astype(dtype) if given else None)
    return x


def recurrent_case(case_id: int, dtype: str | None = None) -> Case:
    """The recurrent case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    rng = np.random.default_rng([_SALT, case_id])
    replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    kind = str(rng.choice([*STACKS, *STACKS, *CELLS]))  # sequences twice as often as single steps
    N, T, D, H = int(rng.integers(1, 9)), int(rng.integers(1, 13)), int(rng.integers(1, 9)), int(rng.integers(1, 17))
    layer = _layer(rng, kind, D, H, dtype)
    cell = kind in CELLS
    rows = N if cell or layer.batch_first else T  # what Flatten keeps as the batch
    width = H if cell else (T if layer.batch_first else N) * layer.directions * H
    loss = LOSSES[rng.integers(len(LOSSES))]
    C = int(rng.integers(2, 7)) if loss == "softmax_cross_entropy" else int(rng.integers(1, 7))
    model = mbp.Sequential(layer, mbp.Flatten(), mbp.Linear(width, C, bool(rng.random() < 0.8), rng=rng, dtype=dtype))
    tags: list[str] = []
    for _ in range(TRIES):
        x = _inputs(rng, layer, N, T, D, dtype)
        if not cell:  # draw the dropout masks first: the kink check sees the ones compared
            layer.frozen = False
            layer.forward(x)
            layer.frozen = True
        if not hazards(list(model), x, dtype):
            break
    else:
        tags.append("near-kink")
    if getattr(layer, "h0", None) is not None or getattr(layer, "h", None) is not None:
        tags.append("h0")
    labels = "int" if rng.random() < 0.6 else "prob"
    loss_fn, y = loss_and_target(rng, loss, labels, dtype, rows, C)
    dout = rng.standard_normal((rows, C)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return RecurrentCase(str(case_id), dtype, model, loss_fn, x, y, dloss, dout, tuple(tags), replay=replay)
