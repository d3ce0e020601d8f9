"""The JAX reference: a ``NetSpec`` as a pure function of jax.numpy / jax.nn / optax, differentiated by ``jax.vjp``.

Only JAX's and optax's own ops and autodiff are used here, never manual_bp's
formulas (a test parses this file's imports). Float64 is real float64:
``jax_enable_x64`` is switched on and matmuls run at the highest precision.
Each layer is applied by its kind's entry (``crosscheck.kinds``); each layer's input
gets a zero "probe" added, and the cotangent of that probe is the layer's dx.
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

from crosscheck.kinds import lookup, loss_kind  # noqa: E402
from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk  # noqa: E402

Array = Any

# XLA options for the reference computations. A crosscheck case is compiled once and run once, so
# compile time is nearly all of JAX's cost. On CPU, switching off XLA's backend optimisation passes
# and its fusion emitters, and generating code in one piece rather than in parallel splits, cuts it
# about 6x (measured on the sweep's cases: 600 -> 100 ms CPU per case). None of this changes what is
# computed: float64 results differ from a default compile only by rounding, in tensors where terms
# cancel (within eps times the term magnitudes that crosscheck.tolerance.scales bounds).
COMPILER_OPTIONS: dict[str, Any] = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}


def compiled(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``fn`` jitted, lowered for ``args`` and compiled with ``COMPILER_OPTIONS`` (once per case).

    Many jax.numpy and jax.nn functions are themselves ``jit``-wrapped; traced inside ``fn`` each would
    become a nested call that is traced, linearised and lowered on its own. Tracing with ``disable_jit``
    inlines their primitives into the one computation instead: the same ops, about 20% less tracing and
    lowering time (the sweep's cases: 82 -> 67 ms CPU per case)."""
    with jax.disable_jit():
        traced = jax.jit(fn).trace(*args)
    return traced.lower().compile(compiler_options=COMPILER_OPTIONS)


def _apply(layer: LayerSpec, net: _Net, x: Array) -> Array:
    """The layer's output by its kind's entry; records it, its input (for probe shapes) and its updated
    buffers in ``net``."""
    name = layer.name
    if net.probes is not None and name in net.probes:
        x = x + net.probes[name]  # the cotangent of this zero probe is the layer's dx
    net.inputs[name] = x
    out = lookup(layer.kind).jax_apply(layer, net.params.get(name, {}), x, net)
    net.outs[name] = out
    return out


class _Net:
    """The state of one forward: parameters and buffers by layer name, probes, and what was recorded."""

    def __init__(self, params: dict[str, Any], buffers: dict[str, Any], probes: dict[str, Array] | None) -> None:
        self.params, self.buffers, self.probes = params, dict(buffers), probes
        self.inputs: dict[str, Array] = {}
        self.outs: dict[str, Array] = {}

    def apply(self, layer: LayerSpec, x: Array) -> Array:
        """Run one layer (a container's child) in this forward."""
        return _apply(layer, self, x)


def run_net(
    spec: NetSpec, params: dict[str, Any], buffers: dict[str, Any], x: Array, probes: dict[str, Array] | None = None
) -> _Net:
    """The whole network: every layer's output in ``.outs`` and the updated buffers in ``.buffers``."""
    net = _Net(params, buffers, probes)
    h = x
    for layer in spec.layers:
        h = _apply(layer, net, h)
    net.outs["logits"] = h + probes["logits"] if probes is not None else h
    return net


def forward(spec: NetSpec, params: list[dict[str, Array]], x: Array, probes: list[Any]) -> list[Array]:
    """Every top-level layer's output (buffers as in the spec), parameters listed per top-level layer."""
    named = {layer.name: p for layer, p in zip(spec.layers, params)}
    net = run_net(spec, named, _spec_buffers(spec), x)
    return [net.outs[layer.name] for layer in spec.layers]


def _spec_buffers(spec: NetSpec) -> dict[str, dict[str, Array]]:
    return {layer.name: dict(layer.buffers) for layer in walk(spec.layers) if layer.buffers}


def loss(spec: LossSpec, z: Array, target: Array) -> Array:
    """The loss from optax's losses, reduced as torch reduces."""
    return loss_kind(spec.kind).jax_loss(spec.config, z, target)


def _both_runs(spec: NetSpec, params: Any, buffers: Any, x: Array, target: Any, dloss: Array, dout: Array) -> Any:
    """Linearise once; pull back ``dloss`` from the loss and, separately, ``dout`` from the logits."""
    first = run_net(spec, params, buffers, x)
    probes = {
        layer.name: jnp.zeros_like(first.inputs[layer.name]) for layer in walk(spec.layers) if not layer.integer_input
    }
    probes["logits"] = jnp.zeros_like(first.outs["logits"])

    def f(params: Any, probes: Any) -> tuple[tuple[Array, Array], tuple[dict[str, Array], Any]]:
        net = run_net(spec, params, buffers, x, probes)
        z = net.outs["logits"]
        L = loss(spec.loss, z, target) if spec.loss is not None else jnp.zeros((), z.dtype)
        return (L, z), (net.outs, net.buffers)

    (L, z), pull, (outs, new_buffers) = jax.vjp(f, params, probes, has_aux=True)
    vjp_grads = pull((jnp.zeros_like(L), dout))  # the pullback is linear: one cotangent at a time
    loss_grads = None if spec.loss is None else pull((dloss.astype(L.dtype), jnp.zeros_like(z)))
    return outs, new_buffers, L, loss_grads, vjp_grads


def _named(spec: NetSpec, outs: Any, new_buffers: Any, grads: Any) -> dict[str, np.ndarray]:
    dparams, dprobes = grads
    got: dict[str, np.ndarray] = {}
    for layer in walk(spec.layers):
        got[f"{layer.name}.out"] = np.asarray(outs[layer.name])
        got.update({f"{layer.name}.{o}": np.asarray(outs[f"{layer.name}.{o}"]) for o in layer.outputs})
        got.update({f"{layer.name}.{k}": np.asarray(v) for k, v in new_buffers.get(layer.name, {}).items()})
        if not layer.integer_input:
            got[f"{layer.name}.dx"] = np.asarray(dprobes[layer.name])
        got.update({f"{layer.name}.d{k}": np.asarray(v) for k, v in dparams.get(layer.name, {}).items()})
    return got


def run(
    spec: NetSpec, x: np.ndarray, target: np.ndarray | None, *, dloss: float, dout: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Every named tensor of ``spec.tensor_names`` for both runs, by ``jax.vjp``.

    ``"loss"``: the cotangent ``dloss`` pulled back from the loss; ``"vjp"``:
    the cotangent ``dout`` pulled back from the logits. Every layer's dx is the
    cotangent of a zero probe added to its input. The whole case is compiled
    as one XLA computation (``compiled``): compiling op by op for every new
    shape would cost far more.
    """
    # NumPy arguments: the compiled call transfers them (jnp.asarray would compile a conversion per shape)
    params = {layer.name: dict(layer.params) for layer in walk(spec.layers) if layer.params}
    args = (params, _spec_buffers(spec), x, target, np.asarray(dloss, np.float64), dout)
    fn = compiled(lambda p, b, x, t, dl, do: _both_runs(spec, p, b, x, t, dl, do), *args)
    outs, new_buffers, L, loss_grads, vjp_grads = fn(*args)
    runs = {"vjp": _named(spec, outs, new_buffers, vjp_grads)}
    if spec.loss is not None:
        dlogits = loss_grads[1]["logits"]  # the cotangent of the logits' probe
        runs["loss"] = {
            **_named(spec, outs, new_buffers, loss_grads),
            "loss": np.asarray(L),
            "dlogits": np.asarray(dlogits),
        }
    return runs


def running_buffers(spec: NetSpec, xs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The running statistics after each of several forwards (one per batch in ``xs``), each forward
    starting from the buffers the previous one returned: ``[{"<layer>.running_mean": ..., ...}, ...]``."""
    params = {
        layer.name: {k: jnp.asarray(v) for k, v in layer.params.items()} for layer in walk(spec.layers) if layer.params
    }
    buffers = _spec_buffers(spec)
    steps = []
    for x in xs:
        buffers = run_net(spec, params, buffers, jnp.asarray(x)).buffers
        steps.append({f"{name}.{k}": np.asarray(v) for name, b in buffers.items() for k, v in b.items()})
    return steps
