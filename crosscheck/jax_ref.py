"""The JAX reference: a ``NetSpec`` as a pure function of jax.numpy / jax.nn / optax, differentiated by ``jax.vjp``.

Only JAX's and optax's own ops and autodiff are used here, never manual_bp's
formulas (a test parses this file's imports). Float64 is real float64:
``jax_enable_x64`` is switched on and matmuls run at the highest precision.
Each layer's output gets a zero "probe" added; the cotangent of that probe is
the gradient with respect to the layer's output.

Weights keep manual_bp's (in, out) layout, which is also JAX's (``x @ W``); a Conv2d
weight is (C_out, C_in / groups, kH, kW), the "OIHW" of ``_conv2d``'s dimension numbers.
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

from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk  # noqa: E402

Array = Any
_HIGHEST = jax.lax.Precision.HIGHEST

# XLA options for the reference computations. A crosscheck case is compiled once and run once, so
# compile time is nearly all of JAX's cost. On CPU, switching off XLA's backend optimisation passes
# and its fusion emitters, and generating code in one piece rather than in parallel splits, cuts it
# about 6x (measured on the sweep's cases: 600 -> 100 ms CPU per case). None of this changes what is
# computed: float64 results differ from a default compile only by rounding, in tensors where terms
# cancel (within eps times the term magnitudes that crosscheck.scales bounds).
COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False,
                                    "xla_cpu_parallel_codegen_split_count": 1}


def compiled(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``fn`` jitted, lowered for ``args`` and compiled with ``COMPILER_OPTIONS`` (once per case).

    Many jax.numpy and jax.nn functions are themselves ``jit``-wrapped; traced inside ``fn`` each would
    become a nested call that is traced, linearised and lowered on its own. Tracing with ``disable_jit``
    inlines their primitives into the one computation instead: the same ops, about 20% less tracing and
    lowering time (the sweep's cases: 82 -> 67 ms CPU per case)."""
    with jax.disable_jit():
        traced = jax.jit(fn).trace(*args)
    return traced.lower().compile(compiler_options=COMPILER_OPTIONS)


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

KINDS = frozenset(_ACTIVATIONS) | {"linear", "layer_norm", "batch_norm", "embedding", "flatten", "dropout", "residual",
                                   "multi_head_attention", "conv2d", "max_pool2d", "avg_pool2d"}


def _affine(xhat: Array, params: dict[str, Array]) -> Array:
    return xhat * params["gamma"] + params["beta"] if "gamma" in params else xhat


def _layer_norm(x: Array, params: dict[str, Array], eps: float) -> Array:
    """torch's LayerNorm: biased variance over the last axis (``jnp.var``)."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    return _affine((x - mu) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + eps), params)


def _batch_norm(layer: LayerSpec, params: dict[str, Array], x: Array, stats: dict[str, Array]
                ) -> tuple[Array, dict[str, Array]]:
    """torch's BatchNorm1d in jax.numpy: biased batch variance normalises; the running estimate takes
    the unbiased one (``jnp.var(ddof=1)``) with ``running = (1 - momentum) running + momentum batch``."""
    c = layer.config
    rm, rv = stats["running_mean"], stats["running_var"]
    if not layer.training:
        return _affine((x - rm) / jnp.sqrt(rv + c["eps"]), params), stats
    mu, var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
    m = c["momentum"]
    new = {"running_mean": (1 - m) * rm + m * mu, "running_var": (1 - m) * rv + m * jnp.var(x, axis=0, ddof=1)}
    return _affine((x - mu) / jnp.sqrt(var + c["eps"]), params), new


def _dropout(layer: LayerSpec, x: Array) -> Array:
    """Inverted dropout with manual_bp's mask from the spec (as ``flax.linen.Dropout`` writes it:
    ``where(keep, x / (1 - p), 0)``); evaluation mode is the identity."""
    if not layer.training:
        return x
    return jnp.where(layer.fixed["mask"], x / (1 - layer.config["p"]), jnp.zeros((), x.dtype))


def _self_attention(layer: LayerSpec, p: dict[str, Array], x: Array) -> Array:
    """Multi-head self-attention on x (N, T, D), weights (in, out).

    float32: ``jax.nn.dot_product_attention`` (layout (N, T, heads, d); ``mask`` True = the key takes
    part). float64: it cannot serve, since it always computes the softmax in float32 (measured: 1e-7
    off in float64), so the same steps are written with ``jnp.einsum`` at HIGHEST precision and
    ``jax.nn.softmax(where=mask)``. The mask: key ``s`` is visible to query ``t`` unless the spec's
    ``key_padding_mask`` marks it (True = padded) or, with ``causal``, s > t.
    """
    cfg = layer.config
    N, T, D = x.shape
    h = cfg["num_heads"]
    d = D // h

    def proj(name: str) -> Array:
        y = jnp.matmul(x, p[f"W{name}"], precision=_HIGHEST)
        return y + p[f"b{name}"] if cfg["bias"] else y

    q, k, v = (proj(n).reshape(N, T, h, d) for n in "qkv")
    visible = jnp.ones((N, 1, T, T), dtype=bool)
    if "key_padding_mask" in layer.fixed:
        visible = visible & ~jnp.asarray(layer.fixed["key_padding_mask"])[:, None, None, :]
    if cfg["causal"]:
        visible = visible & jnp.tril(jnp.ones((T, T), dtype=bool))
    scale = 1.0 / float(np.sqrt(d))
    if x.dtype == jnp.float32:
        o = jax.nn.dot_product_attention(q, k, v, mask=visible, scale=scale)  # (N, T, h, d)
    else:
        s = jnp.einsum("nthd,nshd->nhts", q, k, precision=_HIGHEST) * scale  # (N, h, T, T)
        o = jnp.einsum("nhts,nshd->nthd", jax.nn.softmax(s, axis=-1, where=visible), v, precision=_HIGHEST)
    out = jnp.matmul(o.reshape(N, T, D), p["Wo"], precision=_HIGHEST)
    return out + p["bo"] if cfg["bias"] else out


def _conv2d(x: Array, p: dict[str, Array], c: dict[str, Any]) -> Array:
    """``lax.conv_general_dilated`` (a cross-correlation, like torch's) on NCHW with an OIHW kernel: the
    spec's W (C_out, C_in / groups, kH, kW) is used as is; groups via ``feature_group_count``.

    The zero padding is a separate ``jnp.pad`` and the convolution itself unpadded: the same sums, but
    with the padding inside the convolution, XLA 0.10's CPU compiler aborts the process on the input
    gradient of some strided geometries (``algebraic_simplifier.cc`` "Window dimensions do not match RHS
    shape"; e.g. x (5, 4, 1, 10), kernel (3, 2), stride (3, 2), padding (1, 1)). See
    ``tests/test_conv.py::test_jax_reference_survives_padded_strided_geometries``."""
    (ph, pw) = c["padding"]
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C, H + 2 ph, W + 2 pw)
    out = jax.lax.conv_general_dilated(
        xp, p["W"], window_strides=tuple(c["stride"]), padding=((0, 0), (0, 0)),
        rhs_dilation=tuple(c["dilation"]), dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=c["groups"], precision=_HIGHEST)
    return out + p["b"].reshape(-1, 1, 1) if c["bias"] else out


def _max_pool2d(x: Array, c: dict[str, Any]) -> Array:
    """``lax.reduce_window`` with ``lax.max`` and -inf padding, differentiated by JAX's own rule
    (``select_and_scatter_add`` with ``>=``: the first maximum of a window in row-major order gets its
    gradient). JAX has no VJP for a dilated max window, so with dilation the rows and columns every
    window reads are first gathered into contiguous, non-overlapping blocks (``x[:, :, rows][..., cols]``,
    whose transpose adds the overlaps back) and pooled with window = stride = kernel."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (tuple(c[k]) for k in ("kernel_size", "stride", "padding", "dilation"))
    ninf = np.array(-np.inf, dtype=x.dtype)  # a concrete constant: JAX recognises the max monoid (and its VJP)
    if (dh, dw) == (1, 1):
        return jax.lax.reduce_window(x, ninf, jax.lax.max, (1, 1, kh, kw), (1, 1, sh, sw),
                                     ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=ninf)
    Ho, Wo = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1, (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = (np.arange(Ho)[:, None] * sh + np.arange(kh) * dh).reshape(-1)  # (Ho kH,): window y reads rows y kH ...
    cols = (np.arange(Wo)[:, None] * sw + np.arange(kw) * dw).reshape(-1)  # (Wo kW,)
    blocks = xp[:, :, rows][:, :, :, cols]  # (N, C, Ho kH, Wo kW)
    return jax.lax.reduce_window(blocks, ninf, jax.lax.max, (1, 1, kh, kw), (1, 1, kh, kw), "VALID")


def _avg_pool2d(x: Array, c: dict[str, Any]) -> Array:
    """torch's AvgPool2d: a zero-padded ``lax.reduce_window`` sum divided by kH kW (``count_include_pad``)
    or by the same window sum over ones, the count of unpadded elements."""
    (kh, kw), (sh, sw), (ph, pw) = (tuple(c[k]) for k in ("kernel_size", "stride", "padding"))
    window, strides, pad = (1, 1, kh, kw), (1, 1, sh, sw), ((0, 0), (0, 0), (ph, ph), (pw, pw))
    zero = np.array(0, dtype=x.dtype)
    total = jax.lax.reduce_window(x, zero, jax.lax.add, window, strides, pad)
    if c["count_include_pad"]:
        return total / (kh * kw)
    return total / jax.lax.reduce_window(jnp.ones_like(x), zero, jax.lax.add, window, strides, pad)


def _apply(layer: LayerSpec, net: _Net, x: Array) -> Array:
    """The layer's output; records it, its input (for probe shapes) and its updated buffers in ``net``."""
    name = layer.name
    if net.probes is not None and name in net.probes:
        x = x + net.probes[name]  # the cotangent of this zero probe is the layer's dx
    net.inputs[name] = x
    p = net.params.get(name, {})
    if layer.kind == "linear":
        out = jnp.matmul(x, p["W"], precision=_HIGHEST)
        out = out + p["b"] if layer.config["bias"] else out
    elif layer.kind in _ACTIVATIONS:
        out = _ACTIVATIONS[layer.kind](x, layer.config)
    elif layer.kind == "layer_norm":
        out = _layer_norm(x, p, layer.config["eps"])
    elif layer.kind == "batch_norm":
        out, net.buffers[name] = _batch_norm(layer, p, x, net.buffers[name])
    elif layer.kind == "embedding":
        out = jnp.take(p["W"], x, axis=0)
    elif layer.kind == "flatten":
        out = jnp.reshape(x, (x.shape[0], -1))
    elif layer.kind == "dropout":
        out = _dropout(layer, x)
    elif layer.kind == "conv2d":
        out = _conv2d(x, p, layer.config)
    elif layer.kind == "max_pool2d":
        out = _max_pool2d(x, layer.config)
    elif layer.kind == "avg_pool2d":
        out = _avg_pool2d(x, layer.config)
    elif layer.kind == "multi_head_attention":
        out = _self_attention(layer, p, x)
    elif layer.kind == "residual":
        b = x
        for child in layer.children:
            b = _apply(child, net, b)  # the first child's own probe sees the branch's share of dx only
        out = x + b
    else:
        raise NotImplementedError(f"crosscheck.jax_ref: no JAX reference for layer kind {layer.kind!r}")
    net.outs[name] = out
    return out


class _Net:
    """The state of one forward: parameters and buffers by layer name, probes, and what was recorded."""

    def __init__(self, params: dict[str, Any], buffers: dict[str, Any], probes: dict[str, Array] | None) -> None:
        self.params, self.buffers, self.probes = params, dict(buffers), probes
        self.inputs: dict[str, Array] = {}
        self.outs: dict[str, Array] = {}


def run_net(spec: NetSpec, params: dict[str, Any], buffers: dict[str, Any], x: Array,
            probes: dict[str, Array] | None = None) -> _Net:
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
    return {layer.name: dict(layer.buffers)
            for layer in walk(spec.layers) if layer.buffers}


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


def _both_runs(spec: NetSpec, params: Any, buffers: Any, x: Array, target: Any, dloss: Array, dout: Array) -> Any:
    """Linearise once; pull back ``dloss`` from the loss and, separately, ``dout`` from the logits."""
    first = run_net(spec, params, buffers, x)
    probes = {layer.name: jnp.zeros_like(first.inputs[layer.name])
              for layer in walk(spec.layers) if not layer.integer_input}
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
        runs["loss"] = {**_named(spec, outs, new_buffers, loss_grads), "loss": np.asarray(L),
                        "dlogits": np.asarray(dlogits)}
    return runs


def running_buffers(spec: NetSpec, xs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The running statistics after each of several forwards (one per batch in ``xs``), each forward
    starting from the buffers the previous one returned: ``[{"<layer>.running_mean": ..., ...}, ...]``."""
    params = {layer.name: {k: jnp.asarray(v) for k, v in layer.params.items()}
              for layer in walk(spec.layers) if layer.params}
    buffers = _spec_buffers(spec)
    steps = []
    for x in xs:
        buffers = run_net(spec, params, buffers, jnp.asarray(x)).buffers
        steps.append({f"{name}.{k}": np.asarray(v) for name, b in buffers.items() for k, v in b.items()})
    return steps
