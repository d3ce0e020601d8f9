"""The JAX reference: a ``NetSpec`` as a pure function of jax.numpy / jax.nn / optax, differentiated by ``jax.vjp``.

Only JAX's and optax's own ops and autodiff are used here, never manual_bp's
formulas (a test parses this file's imports). Float64 is real float64:
``jax_enable_x64`` is switched on and matmuls run at the highest precision.
Each layer's output gets a zero "probe" added; the cotangent of that probe is
the gradient with respect to the layer's output.

Weights keep manual_bp's (in, out) layout, which is also JAX's (``x @ W``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from crosscheck.spec import LayerSpec, LossSpec, NetSpec  # noqa: E402

Array = Any
_HIGHEST = jax.lax.Precision.HIGHEST


def _leaky_relu(x: Array, negative_slope: float) -> Array:
    """x if x > 0 else slope * x. Convention: the derivative at 0 is the slope, as torch's;
    ``jax.nn.leaky_relu`` tests x >= 0 and would give 1 there."""
    return jnp.where(x > 0, x, negative_slope * x)


def _softplus(x: Array, beta: float, threshold: float) -> Array:
    """torch's Softplus: jax.nn.softplus(beta x) / beta, and x itself where beta x > threshold."""
    return jnp.where(beta * x > threshold, x, jax.nn.softplus(beta * x) / beta)


_ACTIVATIONS: dict[str, Callable[[Array, dict[str, Any]], Array]] = {
    "identity": lambda x, c: x,
    "relu": lambda x, c: jax.nn.relu(x),
    "leaky_relu": lambda x, c: _leaky_relu(x, c["negative_slope"]),
    "elu": lambda x, c: jax.nn.elu(x, c["alpha"]),
    "sigmoid": lambda x, c: jax.nn.sigmoid(x),
    "tanh": lambda x, c: jnp.tanh(x),
    "silu": lambda x, c: jax.nn.silu(x),
    "softplus": lambda x, c: _softplus(x, c["beta"], c["threshold"]),
    "gelu": lambda x, c: jax.nn.gelu(x, approximate=c["approximate"] == "tanh"),
    "softmax": lambda x, c: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x, c: jax.nn.log_softmax(x, axis=-1),
}

KINDS = frozenset(_ACTIVATIONS) | {"linear"}


def _apply(layer: LayerSpec, params: dict[str, Array], x: Array) -> Array:
    if layer.kind == "linear":
        out = jnp.matmul(x, params["W"], precision=_HIGHEST)
        return out + params["b"] if layer.config["bias"] else out
    if layer.kind in _ACTIVATIONS:
        return _ACTIVATIONS[layer.kind](x, layer.config)
    raise NotImplementedError(f"crosscheck.jax_ref: no JAX reference for layer kind {layer.kind!r}")


def forward(spec: NetSpec, params: list[dict[str, Array]], x: Array, probes: list[Array]) -> list[Array]:
    """Every layer's output (each plus its zero probe), in order."""
    outs = []
    for layer, p, probe in zip(spec.layers, params, probes):
        x = _apply(layer, p, x) + probe
        outs.append(x)
    return outs


def loss(spec: LossSpec, z: Array, target: Array) -> Array:
    """The loss from optax's losses, reduced as torch reduces."""
    cfg = spec.config
    if spec.kind == "softmax_cross_entropy":
        eps = cfg["label_smoothing"]
        if target.ndim == 1:
            if eps == 0:
                per = optax.losses.softmax_cross_entropy_with_integer_labels(z, target)
            else:
                onehot = jax.nn.one_hot(target, z.shape[-1], dtype=z.dtype)
                per = optax.losses.softmax_cross_entropy(z, optax.losses.smooth_labels(onehot, eps))
        else:
            t = optax.losses.smooth_labels(target, eps) if eps else target
            per = optax.losses.softmax_cross_entropy(z, t)
    elif spec.kind == "mse":
        per = optax.losses.squared_error(z, target)
    elif spec.kind == "bce_with_logits":
        per = optax.losses.sigmoid_binary_cross_entropy(z, target)
    else:
        raise NotImplementedError(f"crosscheck.jax_ref: no JAX reference for loss kind {spec.kind!r}")
    return jnp.mean(per) if cfg["reduction"] == "mean" else jnp.sum(per)


def _both_runs(spec: NetSpec, params: Any, x: Array, target: Any, dloss: Array, dout: Array) -> Any:
    """Linearise once; pull back ``dloss`` from the loss and, separately, ``dout`` from the logits."""
    zeros = [jnp.zeros_like(o) for o in forward(spec, params, x, [0.0] * len(spec.layers))]

    def f(params: Any, x: Array, probes: Any) -> tuple[tuple[Array, Array], list[Array]]:
        outs = forward(spec, params, x, probes)
        L = loss(spec.loss, outs[-1], target) if spec.loss is not None else jnp.zeros((), outs[-1].dtype)
        return (L, outs[-1]), outs

    (L, z), pull, outs = jax.vjp(f, params, x, zeros, has_aux=True)
    vjp_grads = pull((jnp.zeros_like(L), dout))  # the pullback is linear: one cotangent at a time
    if spec.loss is None:
        return outs, None, None, vjp_grads
    return outs, L, pull((dloss.astype(L.dtype), jnp.zeros_like(z))), vjp_grads


def _named(spec: NetSpec, outs: list[Array], grads: Any) -> dict[str, np.ndarray]:
    dparams, dx, dprobes = grads
    got = {f"{layer.name}.out": np.asarray(o) for layer, o in zip(spec.layers, outs)}
    for layer, dp, din in zip(spec.layers, dparams, [dx, *dprobes[:-1]]):
        got[f"{layer.name}.dx"] = np.asarray(din)
        got.update({f"{layer.name}.d{k}": np.asarray(v) for k, v in dp.items()})
    return got


def run(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, *, dloss: float, dout: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Every named tensor of ``spec.tensor_names`` for both runs, by ``jax.vjp``.

    ``"loss"``: the cotangent ``dloss`` pulled back from the loss; ``"vjp"``:
    the cotangent ``dout`` pulled back from the logits. The whole case is
    compiled as one XLA computation (``jax.jit``): compiling op by op for
    every new shape would cost far more.
    """
    params = [{k: jnp.asarray(v) for k, v in layer.params.items()} for layer in spec.layers]
    t = None if target is None else jnp.asarray(target)
    fn = jax.jit(lambda p, x, t, dl, do: _both_runs(spec, p, x, t, dl, do))
    outs, L, loss_grads, vjp_grads = fn(params, jnp.asarray(x), t, jnp.asarray(dloss), jnp.asarray(dout))
    runs = {"vjp": _named(spec, outs, vjp_grads)}
    if L is not None:
        dlogits = loss_grads[2][-1]  # the cotangent of the last probe
        runs["loss"] = {**_named(spec, outs, loss_grads), "loss": np.asarray(L), "dlogits": np.asarray(dlogits)}
    return runs
