"""MLP cases: 1-6 Linear layers, widths and batch 1-64, any activation, norms, dropout, residual blocks,
embedding and flatten front-ends, any loss; hard inputs planted on purpose (``kink``, ``ties``,
``large``, ``tiny``) and inputs near a kink redrawn (``crosscheck.cases.hazards``). docs/cases.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import manual_bp as mbp
from crosscheck.cases.common import ACTIVATIONS, INITS, LOSSES, Case, activation, loss_and_target, size
from crosscheck.cases.hazards import hazards, plant_kinks

SALT = 0x6D62  # "mb": keeps case streams apart from other uses of small seeds


@dataclass(frozen=True)
class Blueprint:
    """The structure of a case; ``build`` fills in the numbers from ``seed``.

    dims: (d_in, hidden..., C), one Linear per step; activations: the layer
    after each Linear (None: none); labels: "int" or "prob" (cross-entropy);
    hard: planted hard inputs, a subset of ("kink", "ties", "large", "tiny").

    front: how the input reaches the first Linear: "dense" (x (N, d_in)),
    "flatten" (x (N, T, e) -> Flatten, d_in = T e), "embedding" (indices (N,)
    -> Embedding(V, d_in)), "embedding_seq" (indices (N, T) -> Embedding(V, e)
    -> Flatten, d_in = T e). Per hidden layer i (after Linear i): norms[i]
    ("batch_norm", "layer_norm", "rms_norm" or None) between the Linear and its activation,
    dropouts[i] (p or None) after the activation, residual[i]: then a block
    Residual(Linear(h, h), the same norm, the same activation). train: the
    model's mode (BatchNorm1d uses batch or running statistics, Dropout masks
    or not).
    """

    N: int
    dims: tuple[int, ...]
    activations: tuple[str | None, ...]
    loss: str
    labels: str
    dtype: str
    hard: tuple[str, ...]
    seed: int
    front: str = "dense"
    T: int = 1
    V: int = 0
    norms: tuple[str | None, ...] = ()
    dropouts: tuple[float | None, ...] = ()
    residual: tuple[bool, ...] = ()
    train: bool = True


def blueprint(case_id: int, dtype: str | None = None) -> Blueprint:
    """Draw the structure of case ``case_id`` (even ids float64, odd float32 unless ``dtype``)."""
    rng = np.random.default_rng([SALT, case_id])
    dtype = dtype or ("float64" if case_id % 2 == 0 else "float32")
    N, d_in = size(rng), size(rng)
    loss = LOSSES[rng.integers(len(LOSSES))]
    if loss == "softmax_cross_entropy":
        C = max(size(rng), 2)  # at least two classes
    else:
        C = 1 if rng.random() < 0.3 else size(rng)  # one output unit is natural for MSE and BCE
    depth = int(rng.integers(1, 7))
    dims = (d_in, *(size(rng) for _ in range(depth - 1)), C)
    acts: list[str | None] = [str(rng.choice(ACTIVATIONS)) for _ in range(depth - 1)]
    acts.append(str(rng.choice((*ACTIVATIONS, "softmax", "log_softmax"))) if rng.random() < 0.3 else None)
    hard = [tag for tag, p in (("kink", 0.4), ("large", 0.15), ("ties", 0.15), ("tiny", 0.1)) if rng.random() < p]
    labels = "int" if rng.random() < 0.6 else "prob"
    bp = Blueprint(N, dims, tuple(acts), loss, labels, dtype, tuple(hard), case_id)
    if rng.random() < 0.55:  # normalisation, dropout, residual blocks, embedding / flatten front-ends
        bp = _extras(rng, bp)
    if "layer_norm" in bp.norms:  # half the LayerNorms become RMSNorms, from a stream of their own
        side = np.random.default_rng([SALT, 4, case_id])
        norms = tuple("rms_norm" if n == "layer_norm" and side.random() < 0.5 else n for n in bp.norms)
        bp = Blueprint(**{**bp.__dict__, "norms": norms})
    return bp


FRONTS = ("dense", "flatten", "embedding", "embedding_seq")
NORMS = ("batch_norm", "layer_norm")
DROPOUT_P = (0.0, 0.1, 0.5, 0.9, 0.999)


def _extras(rng: np.random.Generator, bp: Blueprint) -> Blueprint:
    """Draw the new layers of a blueprint: MLPs with norms, dropout and residual blocks, or an
    embedding / flatten front-end."""
    front = FRONTS[rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])]
    T, V, dims = 1, 0, bp.dims
    if front in ("flatten", "embedding_seq"):
        T = int(rng.integers(1, 5))
        e = max(1, min(bp.dims[0], 16))
        dims = (T * e, *bp.dims[1:])
    if front.startswith("embedding"):
        V = max(size(rng, 16), 2)  # one row only would make every sample alike
    hidden = len(dims) - 2
    norms = tuple(str(rng.choice(NORMS)) if rng.random() < 0.5 else None for _ in range(hidden))
    drops = tuple(float(rng.choice(DROPOUT_P)) if rng.random() < 0.35 else None for _ in range(hidden))
    res = tuple(bool(rng.random() < 0.3) for _ in range(hidden))
    train = bool(rng.random() < 0.75)
    if bp.N == 1 and "batch_norm" in norms:
        train = False  # one sample has no batch variance (torch raises too): BatchNorm1d runs in eval mode
    return Blueprint(
        **{
            **bp.__dict__,
            "dims": dims,
            "front": front,
            "T": T,
            "V": V,
            "norms": norms,
            "dropouts": drops,
            "residual": res,
            "train": train,
        }
    )


def _norm(rng: np.random.Generator, kind: str, D: int, dtype: str) -> mbp.Module:
    """A LayerNorm, RMSNorm or BatchNorm1d with random affine parameters (and running statistics), eps and
    momentum. An RMSNorm draws what a LayerNorm draws (its eps 1e-5 becomes None, the dtype's epsilon), so
    turning one into the other changes nothing else in the case."""
    affine = bool(rng.random() < 0.8)
    eps = float(rng.choice([1e-5, 1e-3, 0.1]))
    if kind == "layer_norm":
        layer: mbp.Module = mbp.LayerNorm(D, eps=eps, elementwise_affine=affine, dtype=dtype)
    elif kind == "rms_norm":
        layer = mbp.RMSNorm(D, eps=None if eps == 1e-5 else eps, elementwise_affine=affine, dtype=dtype)
    else:
        layer = mbp.BatchNorm1d(
            D, eps=eps, momentum=float(rng.choice([0.1, 0.0, 0.5, 1.0])), affine=affine, dtype=dtype
        )
        layer.buffers["running_mean"][:] = rng.standard_normal(D)
        layer.buffers["running_var"][:] = rng.uniform(0.2, 3.0, D)
    if affine:
        layer.params["gamma"][:] = rng.choice([-1.0, 1.0], D) * rng.uniform(0.5, 1.5, D)
        beta = 0.5 * rng.standard_normal(D)  # drawn for an RMSNorm too, which has none
        if "beta" in layer.params:
            layer.params["beta"][:] = beta
    return layer


def _layers(rng: np.random.Generator, bp: Blueprint, y: np.ndarray) -> tuple[list[mbp.Module], list[str]]:
    """Draw the layers of ``bp`` and plant its hard inputs in the weights (ties also in ``y``)."""
    layers: list[mbp.Module] = []
    if bp.front == "embedding":
        layers.append(mbp.Embedding(bp.V, bp.dims[0], rng=rng, dtype=bp.dtype))
    elif bp.front == "embedding_seq":
        layers += [mbp.Embedding(bp.V, bp.dims[0] // bp.T, rng=rng, dtype=bp.dtype), mbp.Flatten()]
    elif bp.front == "flatten":
        layers.append(mbp.Flatten())
    n = len(bp.dims) - 1
    for i, (d_in, d_out, act) in enumerate(zip(bp.dims, bp.dims[1:], bp.activations)):
        init = str(INITS[rng.integers(len(INITS))])
        layers.append(mbp.Linear(d_in, d_out, bool(rng.random() > 0.2), rng=rng, dtype=bp.dtype, init=init))
        norm = bp.norms[i] if i < n - 1 and bp.norms else None
        if norm is not None:
            layers.append(_norm(rng, norm, d_out, bp.dtype))
        if act is not None:
            layers.append(activation(rng, (act,)))
        if i < n - 1 and bp.dropouts and bp.dropouts[i] is not None:
            layers.append(mbp.Dropout(bp.dropouts[i], rng=int(rng.integers(2**31))))
        if i < n - 1 and bp.residual and bp.residual[i]:
            branch = [mbp.Linear(d_out, d_out, bool(rng.random() > 0.2), rng=rng, dtype=bp.dtype, init=init)]
            branch += [_norm(rng, norm, d_out, bp.dtype)] if norm is not None else []
            branch += [activation(rng, (act,))] if act is not None else []
            layers.append(mbp.Residual(*branch))
    for layer in layers:
        layer.train(bp.train)
    tags = ["kink"] if "kink" in bp.hard and plant_kinks(rng, layers) else []
    last = [layer for layer in layers if layer.kind == "linear"][-1]
    if "large" in bp.hard and bp.dtype == "float64":
        tags.append("large")
        for p in last.params.values():
            p *= 1e3 / max(float(np.abs(last.params["W"]).max()), 1e-3)
    # a duplicated sample in a batch of two, normalised by a training BatchNorm: every sample alike, so the
    # BatchNorm normalises rounding noise (as plant_kinks avoids when it zeroes a BatchNorm's only unit)
    alike = bp.N == 2 and bp.train and any(layer.kind == "batch_norm" for layer in layers)
    if "ties" in bp.hard and bp.N >= 2 and bp.dims[-1] >= 2 and not alike:
        tags.append("ties")
        last.params["W"][:, 1] = last.params["W"][:, 0]
        if "b" in last.params:
            last.params["b"][1] = last.params["b"][0]
        if y.ndim == 1:
            y[1] = y[0]
    return layers, tags


def build(bp: Blueprint, case_id: str | None = None) -> Case:
    """The model, data and upstream gradients of a blueprint, drawn from ``bp.seed``.

    Inputs are redrawn while a pre-activation lies near a kink; if the weights
    themselves put one there (tiny inputs make every sample alike), the weights
    are redrawn too.
    """
    rng = np.random.default_rng([SALT, 1, bp.seed])
    N, C, dtype = bp.N, bp.dims[-1], bp.dtype
    loss_fn, y = loss_and_target(rng, bp.loss, bp.labels, dtype, N, C)
    scale = 1e-8 if "tiny" in bp.hard else float(rng.choice([0.5, 1.0, 3.0]))
    for _ in range(50):
        layers, tags = _layers(rng, bp, y)
        if bp.front.startswith("embedding"):
            for p in layers[0].params.values():
                p *= scale  # "tiny" reaches the network through the table
        buffers = [(v, v.copy()) for layer in layers for v in layer.buffers.values()]
        for _ in range(20):
            x = _input(rng, bp, scale)
            if "ties" in tags:
                x[1] = x[0]
            if not hazards(layers, x, dtype, loss_fn, y):
                break
        else:
            continue
        break
    else:
        raise RuntimeError(f"crosscheck case {case_id or bp}: could not draw inputs away from the kinks")
    tags += ["tiny"] if "tiny" in bp.hard else []
    for v, old in buffers:  # the kink checks ran BatchNorm forwards: back to the drawn running statistics
        np.copyto(v, old)
    model = mbp.Sequential(*layers).train(bp.train)
    for m in model.modules():
        if m.kind == "dropout":
            m.frozen = bp.train  # the masks the kink check saw are the ones compared
    dout = rng.standard_normal((N, C)).astype(dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    return Case(
        case_id or f"blueprint-{bp.seed}",
        dtype,
        model,
        loss_fn,
        x,
        y,
        dloss,
        dout,
        tuple(tags),
        replay=f"crosscheck.cases.build({bp!r})",
    )


def _input(rng: np.random.Generator, bp: Blueprint, scale: float) -> np.ndarray:
    """x for the blueprint's front-end: features (N, d_in) or (N, T, e), or indices (N,) or (N, T)."""
    if bp.front == "embedding":
        return rng.integers(0, bp.V, bp.N)
    if bp.front == "embedding_seq":
        return rng.integers(0, bp.V, (bp.N, bp.T))
    shape = (bp.N, bp.T, bp.dims[0] // bp.T) if bp.front == "flatten" else (bp.N, bp.dims[0])
    return (scale * rng.standard_normal(shape)).astype(bp.dtype)


def mlp_case(case_id: int, dtype: str | None = None) -> Case:
    """The MLP case with this id; ``dtype`` overrides the drawn one (even ids float64, odd float32)."""
    c = build(blueprint(case_id, dtype), str(case_id))
    c.replay = f"python -m crosscheck --case {case_id}" + (f" --dtype {dtype}" if dtype else "")
    return c


def blueprints(dtypes: tuple[str, ...] = ("float64", "float32")) -> Any:
    """A Hypothesis strategy for blueprints; failures shrink toward shallow, narrow, small-batch cases."""
    from hypothesis import strategies as st

    @st.composite
    def draw(draw: Any) -> Blueprint:
        depth = draw(st.integers(1, 6))
        loss = draw(st.sampled_from(LOSSES))
        c_min = 2 if loss == "softmax_cross_entropy" else 1
        dims = (*draw(st.lists(st.integers(1, 64), min_size=depth, max_size=depth)), draw(st.integers(c_min, 64)))
        hidden = draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=depth - 1, max_size=depth - 1))
        head = draw(st.one_of(st.none(), st.sampled_from((*ACTIVATIONS, "softmax", "log_softmax"))))
        return Blueprint(
            N=draw(st.integers(1, 64)),
            dims=dims,
            activations=(*hidden, head),
            loss=loss,
            labels=draw(st.sampled_from(("int", "prob"))),
            dtype=draw(st.sampled_from(dtypes)),
            hard=tuple(draw(st.lists(st.sampled_from(("kink", "ties", "large", "tiny")), unique=True, max_size=4))),
            seed=draw(st.integers(0, 2**32 - 1)),
        )

    return draw()


def seed_case(dtype: str = "float64", n: int = 64, seed: int = 0) -> Case:
    """The seed's network, 2 -> Linear(2, 3) -> ReLU -> Linear(3, 2) -> softmax cross-entropy, on two moons."""
    rng = np.random.default_rng(seed)
    model = mbp.Sequential(mbp.Linear(2, 3, rng=rng, dtype=dtype), mbp.ReLU(), mbp.Linear(3, 2, rng=rng, dtype=dtype))
    X, y = mbp.data.two_moons(n, rng=rng)
    x = X.astype(dtype)
    while hazards(list(model), x, dtype):
        x = (X + 1e-3 * rng.standard_normal(X.shape)).astype(dtype)
    dout = rng.standard_normal((n, 2)).astype(dtype)
    return Case(
        f"seed-{dtype}",
        dtype,
        model,
        mbp.SoftmaxCrossEntropy(),
        x,
        y,
        1.0,
        dout,
        ("seed",),
        replay=f"python -m crosscheck --cases 0 --dtype {dtype}",
    )
