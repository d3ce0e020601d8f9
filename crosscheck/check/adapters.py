"""Ready adapters for the common course layouts of a layer pair (CS231n style).

An adapter maps a user's call convention onto a manual_bp-shaped layer spec (kind, config, params in
manual_bp's names and layouts), so that the references (the kind's torch builder and JAX apply) run
the same data. It draws the cases: random shapes with batch 1 and width 1 among them, the kinks and
ties of its kind. Conventions: affine's w is (D, M) as manual_bp's Linear W; conv's w (F, C, HH, WW)
is torch's layout; dropout's ``dropout_param["p"]`` is the KEEP probability (manual_bp/torch
p_drop = 1 - p_keep); batchnorm's running statistics are not compared (the course updates them with
``momentum`` as the weight of the old value and the biased variance, torch the other way round).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from crosscheck.spec import LayerSpec, LossSpec, NetSpec


@dataclass
class Drawn:
    """One drawn case in the user's convention: x, the parameters in call order, the trailing arguments
    (``conv_param``, ``bn_param`` dicts), the labels of a loss, and a short text."""

    x: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)
    extra: tuple[Any, ...] = ()
    target: np.ndarray | None = None
    description: str = ""
    kinks: np.ndarray | None = None  # where x sits on a kink or a tie (for the diagnosis)

    def copy(self) -> Drawn:
        """The same case with copies of x and the parameters (the trailing dicts are copied by ``Adapter.call``)."""
        return replace(
            self,
            x=self.x.copy(),
            params={k: v.copy() for k, v in self.params.items()},
            target=None if self.target is None else self.target.copy(),
        )


@dataclass(frozen=True)
class Adapter:
    """A user's call convention for one layer kind.

    name: the layer's name in the report (``affine.dw``); kind: the manual_bp kind of the references;
    grads: what ``backward`` returns, in order (``("dx", "dw", "db")``); param_names: user name ->
    manual_bp name (``{"w": "W"}``); draw(rng, k) -> Drawn (case k: 0 is a batch of 1, 1 a width of 1);
    layer(drawn, got) -> (manual_bp layer, x for the references), ``got`` the user's tensors (a dropout
    reads its mask off them); loss: the manual_bp loss class name of a loss adapter (``softmax_loss``:
    ``loss, dx = f(x, y)``, no backward). For the diagnosis: factors(drawn) -> {value: name} of the constant
    factors a slip may introduce (the batch size N); variants: (likely cause, the case with the slip applied)
    pairs, whose reference tensors are compared with the user's (a flipped kernel).
    """

    name: str
    kind: str
    grads: tuple[str, ...]
    draw: Callable[[np.random.Generator, int], Drawn]
    layer: Callable[[Drawn, dict[str, np.ndarray]], tuple[Any, np.ndarray]]
    param_names: dict[str, str] = field(default_factory=dict)
    loss: str | None = None
    factors: Callable[[Drawn], dict[float, str]] = lambda d: {}
    variants: tuple[tuple[str, Callable[[Drawn], Drawn]], ...] = ()
    frameworks: tuple[str, ...] = ("torch", "jax")  # the references that can run it (a custom kind: its own)

    def names(self) -> list[str]:
        """The compared tensors in forward-then-backward order (``affine.out``, ``affine.dw``, ..., ``affine.dx``)."""
        if self.loss:
            return ["loss", "dlogits"]
        params = [g for g in self.grads if g != "dx"]
        return [f"{self.name}.out", *(f"{self.name}.{g}" for g in params), f"{self.name}.dx"]

    def call(
        self, forward: Callable[..., Any], backward: Callable[..., Any] | None, d: Drawn, dout: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Run the user's pair on the case (``d.copy()`` it first: the user may write into it): their tensors
        under the report's names."""
        x = d.x
        params = list(d.params.values())
        extra = tuple(dict(e) if isinstance(e, dict) else e for e in d.extra)
        if self.loss:
            loss, dx = forward(x, d.target)
            return {"loss": np.asarray(loss), "dlogits": np.asarray(dx)}
        out, cache = forward(x, *params, *extra)
        grads = backward(dout.copy(), cache)
        grads = grads if isinstance(grads, tuple | list) else (grads,)
        if len(grads) != len(self.grads):
            raise TypeError(
                f"{self.name}: backward returned {len(grads)} arrays, expected {len(self.grads)} "
                f"({', '.join(self.grads)})"
            )
        got = {f"{self.name}.out": np.asarray(out)}
        got.update({f"{self.name}.{g}": np.asarray(v) for g, v in zip(self.grads, grads)})
        return got

    def spec(self, d: Drawn, got: dict[str, np.ndarray]) -> tuple[NetSpec, np.ndarray]:
        """The plain-data spec the references run, and their input (x reshaped where the layer wants it)."""
        import manual_bp as mb
        from crosscheck.reference.read import read_spec

        if self.loss:
            return NetSpec(
                (), LossSpec(getattr(mb, self.loss)().kind, dict(getattr(mb, self.loss)().config())), "float64"
            ), d.x
        layer, x = self.layer(d, got)
        if isinstance(layer, LayerSpec):  # a custom kind's spec, as it is
            return NetSpec((layer,), None, "float64"), x
        net = read_spec(layer)
        return replace(net, layers=(replace(net.layers[0], name=self.name),), dtype="float64"), x


# ---------------------------------------------------------------- drawing helpers


def _shape(rng: np.random.Generator, k: int, *, min_batch: int = 1) -> tuple[int, int]:
    """(N, D): case 0 a batch of 1 (or ``min_batch``), case 1 a width of 1, else 2..6 each."""
    N = max(min_batch, 1) if k == 0 else int(rng.integers(max(2, min_batch), 7))
    D = 1 if k == 1 else int(rng.integers(2, 7))
    return N, D


def _params_in(layer: Any, values: dict[str, np.ndarray], names: dict[str, str]) -> Any:
    for user, mine in names.items():
        np.copyto(layer.params[mine], values[user])
    return layer


# ---------------------------------------------------------------- affine


def _affine_draw(rng: np.random.Generator, k: int) -> Drawn:
    N, D = _shape(rng, k)
    M = 1 if k == 1 else int(rng.integers(1, 6))
    inner = (D,) if k % 2 else (D, int(rng.integers(1, 4)))  # x (N, d1, ..., dk) reshaped to (N, D)
    x = rng.normal(size=(N, *inner))
    Dflat = int(np.prod(inner))
    return Drawn(
        x, {"w": rng.normal(size=(Dflat, M)), "b": rng.normal(size=M)}, description=f"affine x{x.shape} w({Dflat}, {M})"
    )


def _affine_layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    import manual_bp as mb

    D, M = d.params["w"].shape
    return _params_in(mb.Linear(D, M), d.params, {"w": "W", "b": "b"}), d.x.reshape(d.x.shape[0], D)


AFFINE = Adapter(
    "affine",
    "linear",
    ("dx", "dw", "db"),
    _affine_draw,
    _affine_layer,
    {"dw": "dW", "db": "db"},
    factors=lambda d: {float(d.x.shape[0]): "N (the batch size)"},
)


# ---------------------------------------------------------------- elementwise


def _elementwise_draw(kink: float | None) -> Callable[[np.random.Generator, int], Drawn]:
    def draw(rng: np.random.Generator, k: int) -> Drawn:
        N, D = _shape(rng, k)
        x = rng.normal(size=(N, D)) * 2
        kinks = None
        if kink is not None:  # a fifth of the entries exactly on the kink
            kinks = rng.random(x.shape) < (0.5 if k == 2 else 0.2)
            x[kinks] = kink
        return Drawn(
            x, description=f"x{x.shape}" + (" with entries at the kink" if kink is not None else ""), kinks=kinks
        )

    return draw


def _elementwise(cls: str) -> Callable[[Drawn, dict[str, np.ndarray]], tuple[Any, np.ndarray]]:
    def layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
        import manual_bp as mb

        return getattr(mb, cls)(), d.x

    return layer


RELU = Adapter("relu", "relu", ("dx",), _elementwise_draw(0.0), _elementwise("ReLU"))
SIGMOID = Adapter("sigmoid", "sigmoid", ("dx",), _elementwise_draw(None), _elementwise("Sigmoid"))
TANH = Adapter("tanh", "tanh", ("dx",), _elementwise_draw(None), _elementwise("Tanh"))


# ---------------------------------------------------------------- batchnorm


def _bn_draw(rng: np.random.Generator, k: int) -> Drawn:
    N, D = _shape(rng, k, min_batch=2)  # training needs two samples per feature
    x = rng.normal(size=(N, D)) * 3 + rng.normal(size=D)
    bn_param = {"mode": "train", "eps": 1e-5, "momentum": 0.9, "running_mean": np.zeros(D), "running_var": np.ones(D)}
    return Drawn(
        x,
        {"gamma": rng.normal(size=D), "beta": rng.normal(size=D)},
        (bn_param,),
        description=f"batchnorm train x{x.shape}",
    )


def _bn_layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    import manual_bp as mb

    D = d.x.shape[1]
    return _params_in(mb.BatchNorm1d(D, eps=d.extra[0]["eps"]), d.params, {"gamma": "gamma", "beta": "beta"}), d.x


BATCHNORM = Adapter(
    "batchnorm",
    "batch_norm",
    ("dx", "dgamma", "dbeta"),
    _bn_draw,
    _bn_layer,
    {"dgamma": "dgamma", "dbeta": "dbeta"},
    factors=lambda d: {float(d.x.shape[0]): "N (the batch size)"},
)


# ---------------------------------------------------------------- dropout


def _dropout_draw(rng: np.random.Generator, k: int) -> Drawn:
    N, D = _shape(rng, k)
    x = rng.normal(size=(N, D))
    x[x == 0] = 1.0  # a kept unit is nonzero: the mask is read off the output
    keep = float(rng.choice([0.3, 0.5, 0.8]))
    return Drawn(
        x,
        extra=({"p": keep, "mode": "train", "seed": int(rng.integers(1 << 16))},),
        description=f"dropout train keep p={keep} x{x.shape}",
    )


def _dropout_layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    """The user's mask is read off their output (x has no zeros): kept where out != 0."""
    import manual_bp as mb

    layer = mb.Dropout(1.0 - d.extra[0]["p"])
    out = got.get("dropout.out")
    layer.mask = (np.asarray(out) != 0) if out is not None and np.shape(out) == d.x.shape else np.ones(d.x.shape, bool)
    return layer, d.x


DROPOUT = Adapter(
    "dropout",
    "dropout",
    ("dx",),
    _dropout_draw,
    _dropout_layer,
    factors=lambda d: {d.extra[0]["p"]: "p (the keep probability)"},
)


# ---------------------------------------------------------------- conv


def _conv_draw(rng: np.random.Generator, k: int) -> Drawn:
    N = 1 if k == 0 else int(rng.integers(1, 3))
    C = 1 if k == 1 else int(rng.integers(1, 4))
    F = 1 if k == 1 else int(rng.integers(1, 4))
    HH, WW = int(rng.integers(1, 4)), int(rng.integers(2, 4))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    H, W = HH + int(rng.integers(0, 4)), WW + int(rng.integers(0, 4))
    x = rng.normal(size=(N, C, H, W))
    return Drawn(
        x,
        {"w": rng.normal(size=(F, C, HH, WW)), "b": rng.normal(size=F)},
        ({"stride": stride, "pad": pad},),
        description=f"conv x{x.shape} w({F}, {C}, {HH}, {WW}) stride {stride} pad {pad}",
    )


def _conv_layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    import manual_bp as mb

    F, C, HH, WW = d.params["w"].shape
    p = d.extra[0]
    return _params_in(mb.Conv2d(C, F, (HH, WW), p["stride"], p["pad"]), d.params, {"w": "W", "b": "b"}), d.x


def _flip_kernel(d: Drawn) -> Drawn:
    return replace(d, params={**d.params, "w": d.params["w"][:, :, ::-1, ::-1].copy()})


CONV = Adapter(
    "conv",
    "conv2d",
    ("dx", "dw", "db"),
    _conv_draw,
    _conv_layer,
    {"dw": "dW", "db": "db"},
    variants=(
        (
            "a flipped kernel: the forward matches a convolution with w[:, :, ::-1, ::-1]; torch's "
            "Conv2d is a cross-correlation (no flip)",
            _flip_kernel,
        ),
    ),
)


# ---------------------------------------------------------------- max pool


def _pool_draw(rng: np.random.Generator, k: int) -> Drawn:
    N = 1 if k == 0 else int(rng.integers(1, 3))
    C = 1 if k == 1 else int(rng.integers(1, 3))
    ph, pw = int(rng.integers(1, 3)), int(rng.integers(2, 4))
    stride = int(rng.integers(1, 3))
    H, W = ph + int(rng.integers(0, 4)), pw + int(rng.integers(0, 4))
    ties = k % 2 == 0  # small integers: exact ties inside windows
    x = rng.integers(-2, 3, size=(N, C, H, W)).astype(np.float64) if ties else rng.normal(size=(N, C, H, W))
    return Drawn(
        x,
        extra=({"pool_height": ph, "pool_width": pw, "stride": stride},),
        description=f"max pool x{x.shape} {ph}x{pw} stride {stride}" + (" with ties" if ties else ""),
    )


def _pool_layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[Any, np.ndarray]:
    import manual_bp as mb

    p = d.extra[0]
    return mb.MaxPool2d((p["pool_height"], p["pool_width"]), p["stride"]), d.x


MAX_POOL = Adapter("max_pool", "max_pool2d", ("dx",), _pool_draw, _pool_layer)


# ---------------------------------------------------------------- softmax loss


def _softmax_draw(rng: np.random.Generator, k: int) -> Drawn:
    N, C = _shape(rng, k)
    C = max(C, 2) if k != 1 else 1
    big = k % 3 == 2  # large logits: exp overflows without the max subtraction
    x = rng.normal(size=(N, C)) * (1000.0 if big else 3.0)
    return Drawn(
        x, target=rng.integers(0, C, size=N), description=f"softmax loss x{x.shape}" + (" large logits" if big else "")
    )


SOFTMAX_LOSS = Adapter(
    "softmax_loss",
    "softmax_cross_entropy",
    ("dx",),
    _softmax_draw,
    lambda d, g: (None, d.x),
    loss="SoftmaxCrossEntropy",
    factors=lambda d: {float(d.x.shape[0]): "N (the batch size)"},
)


ADAPTERS: dict[str, Adapter] = {
    a.name: a for a in (AFFINE, RELU, SIGMOID, TANH, BATCHNORM, DROPOUT, CONV, MAX_POOL, SOFTMAX_LOSS)
}
BUILT_IN = frozenset(ADAPTERS)  # the ready adapters (``register_kind`` adds more to ADAPTERS)
# manual_bp's kind names lead to the same adapters
ALIASES = {
    "linear": "affine",
    "batch_norm": "batchnorm",
    "conv2d": "conv",
    "max_pool2d": "max_pool",
    "softmax_cross_entropy": "softmax_loss",
}


def adapter_for(kind: str) -> Adapter:
    """The ready adapter for ``kind`` (an adapter name or a manual_bp kind)."""
    name = ALIASES.get(kind, kind)
    if name not in ADAPTERS:
        raise ValueError(
            f"crosscheck.check_pair: no ready adapter for kind {kind!r}; choose from "
            f"{sorted(ADAPTERS)} or pass adapter=..."
        )
    return ADAPTERS[name]
