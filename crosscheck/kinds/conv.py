"""Conv2d, MaxPool2d, AvgPool2d and AdaptiveAvgPool2d on NCHW images, and the window rules that the 1-D kinds
(``conv1d``) and the transposed convolution (``conv_transpose``) build on.

Tolerance: a convolution is the Linear rule over its window (S(out) = S(x) max_o sum |W_o| + max|b|,
G(dx) = G(dout) max_c sum over c's group |W|); a max-pool selects (exact) and an average divides.
Case generator: a max-pool window whose two largest entries lie within tol * m is a near-tie. See
docs/tolerance.md and docs/cases.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds import _exact as ex
from crosscheck.kinds._frameworks import jax, jnp, nn
from crosscheck.kinds.activations import NOISE
from crosscheck.kinds.entry import Image, Kind, amax
from crosscheck.kinds.layouts import conv_weight_to_torch, copy_into, grad
from crosscheck.spec import LayerSpec, window_count

# ---------------------------------------------------------------- tolerance rules


def conv_gains(W: np.ndarray, groups: int) -> tuple[float, float]:
    """(max_o sum_{c,i,j} |W_ocij|, max_c sum_{o in c's group, i, j} |W_ocij|) of a Conv2d weight
    (C_out, C_g, kH, kW): the inf-norm gains of the forward and of dx."""
    A = np.abs(W.astype(np.float64))
    fwd = float(A.reshape(A.shape[0], -1).sum(axis=1).max(initial=0.0))
    per_group = A.reshape(groups, A.shape[0] // groups, *A.shape[1:])  # (groups, O_g, C_g, kH, kW)
    return fwd, float(per_group.sum(axis=(1, 3, 4)).max(initial=0.0))


def pool_counts(layer: LayerSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    """(m, smallest divisor) of a pooling layer on input ``shape`` (N, C, H, W): m the most windows one input
    element belongs to; the divisor of an average (a max-pool has none: 1): kH kW with ``count_include_pad``,
    else the fewest unpadded elements of a window. Per axis from the geometry; both factor over the axes."""
    c = layer.config
    m, fewest = 1, 1
    for axis, size in enumerate(shape[2:]):
        k, s, p = c["kernel_size"][axis], c["stride"][axis], c["padding"][axis]
        d = c.get("dilation", (1, 1))[axis]
        n_out = window_count(size, k, s, p, d)
        pos = (np.arange(n_out)[:, None] * s + np.arange(k) * d - p).reshape(-1)  # unpadded position of every read
        inside = pos[(pos >= 0) & (pos < size)]
        m *= int(np.bincount(inside, minlength=size).max(initial=1))
        real = ((pos >= 0) & (pos < size)).reshape(n_out, k).sum(axis=1)
        if "count_include_pad" in c:
            fewest *= k if c["count_include_pad"] else int(real.min())
    return m, fewest


def conv_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    b = layer.params.get("b")
    return s_in * conv_gains(layer.params["W"], layer.config["groups"])[0] + (amax(b) if b is not None else 0.0)


def _conv_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    N, _, Ho, Wo = np.shape(w.ref[f"{layer.name}.out"])
    rows = N * Ho * Wo  # the terms summed into each dW and db entry
    w.store(layer, "dW", w.weight_grad(layer, h_in, s_x, g, rows))
    if "b" in layer.params:
        w.store(layer, "db", rows * g)
    return g * conv_gains(layer.params["W"], layer.config["groups"])[1]


def pool_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    m, divisor = pool_counts(layer, h_in.shape)
    return g * m / divisor


def image_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    """A convolution's window C_in / groups kH kW and its N H_out W_out positions; the next image shape."""
    if image is None:
        return [], None
    c = layer.config
    N, C, H, W = image
    k, s, p, d = c["kernel_size"], c["stride"], c["padding"], c.get("dilation", (1, 1))
    Ho, Wo = (window_count(size, k[i], s[i], p[i], d[i]) for i, size in enumerate((H, W)))
    if layer.kind != "conv2d":
        return [], (N, C, Ho, Wo)
    return [c["in_channels"] // c["groups"] * k[0] * k[1], N * Ho * Wo], (N, c["out_channels"], Ho, Wo)


# ---------------------------------------------------------------- case-generator rules


def conv_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """|x| (*) |W| + |b| by the layer's own kind on magnitudes, m in place of |x| where x is only rounding."""
    noise = np.abs(x) < NOISE * eps * m
    magnitudes = type(layer)(**{**layer.config(), "dtype": np.float64, "rng": 0})
    for k, v in layer.params.items():
        magnitudes.params[k][...] = np.abs(v)
    return magnitudes.forward(np.where(noise, m, np.abs(x)).astype(np.float64))


def max_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """A pooled value is one of its window's entries (or their average): terms at most the window's largest m."""
    g = layer.geometry
    return layer.registry["max_pool2d"](g.k, g.s, g.p, g.d).forward(np.asarray(m, np.float64))


def _windows(h: np.ndarray, layer: Any, fill: float) -> np.ndarray:
    """Every window of h (N, C, H, W) as (N, C, H_out, W_out, kH kW), padding read as ``fill``."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.geometry
    hp = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    v = np.lib.stride_tricks.sliding_window_view(hp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    v = v[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, H_out, W_out, kH, kW)
    return v.reshape(*v.shape[:4], -1)


def near_tie(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    """Some window's two largest entries a >= b satisfy a - b <= tol * (largest m in the window), other than
    an exact tie at 0: two backends may round them to opposite orders and send the gradient elsewhere."""
    win = _windows(h, layer, -np.inf)
    if win.shape[-1] < 2:
        return False
    top = np.sort(win, axis=-1)[..., -2:]  # (..., 2): b, a
    b, a = top[..., 0], top[..., 1]
    m_win = _windows(m, layer, 0.0).max(axis=-1)
    return bool(np.any((a - b <= tol * m_win) & ~((a == 0) & (b == 0))))


def conv_plant(layer: Any, rng: np.random.Generator) -> None:
    o = int(rng.integers(layer.out_channels))
    layer.params["W"][o] = 0
    if "b" in layer.params:
        layer.params["b"][o] = 0


def _describe(layer: Any) -> str:
    """``Conv2d(2->4 k(3,3) s(1,2) p(1,1) d(2,1) g2)``, ``MaxPool2d(k(2,2) s(1,1) p(1,1) d(2,2))``."""
    g = layer.geometry
    geo = (f"k{g.k} s{g.s} p{g.p}" + (f" d{g.d}" if g.d != (1, 1) else "")).replace(", ", ",")
    if layer.kind == "conv2d":
        bias = "" if layer.bias else " no-bias"
        return f"Conv2d({layer.in_channels}->{layer.out_channels} {geo} g{layer.groups}{bias})"
    if layer.kind == "avg_pool2d" and not layer.count_include_pad:
        geo += " exclude-pad"
    return f"{type(layer).__name__}({geo})"


# ---------------------------------------------------------------- references


def _conv_torch(layer: LayerSpec, dtype: Any) -> Any:
    cfg = layer.config
    conv = nn.Conv2d(
        cfg["in_channels"],
        cfg["out_channels"],
        tuple(cfg["kernel_size"]),
        tuple(cfg["stride"]),
        tuple(cfg["padding"]),
        tuple(cfg["dilation"]),
        cfg["groups"],
        cfg["bias"],
        dtype=dtype,
    )
    copy_into(conv.weight, conv_weight_to_torch(layer.params["W"], cfg))
    if cfg["bias"]:
        copy_into(conv.bias, layer.params["b"])
    return conv


def conv_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    got = {"dW": grad(m.weight)}  # weight layout shared with manual_bp (see layouts.conv_weight_to_torch)
    if layer.config["bias"]:
        got["db"] = grad(m.bias)
    return got


def _conv_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """``lax.conv_general_dilated`` (a cross-correlation, like torch's) on NCHW with an OIHW kernel: the
    spec's W is used as is; groups via ``feature_group_count``.

    The zero padding is a separate ``jnp.pad`` and the convolution itself unpadded: the same sums, but
    with the padding inside the convolution, XLA 0.10's CPU compiler aborts the process on the input
    gradient of some strided geometries (``algebraic_simplifier.cc`` "Window dimensions do not match RHS
    shape"; e.g. x (5, 4, 1, 10), kernel (3, 2), stride (3, 2), padding (1, 1))."""
    c = layer.config
    (ph, pw) = c["padding"]
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C, H + 2 ph, W + 2 pw)
    out = jax.lax.conv_general_dilated(
        xp,
        p["W"],
        window_strides=tuple(c["stride"]),
        padding=((0, 0), (0, 0)),
        rhs_dilation=tuple(c["dilation"]),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=c["groups"],
        precision=jax.lax.Precision.HIGHEST,
    )
    return out + p["b"].reshape(-1, 1, 1) if c["bias"] else out


def _max_pool_torch(layer: LayerSpec, dtype: Any) -> Any:
    """nn.MaxPool2d: padding -inf; the gradient to the first maximum of a window in row-major order (CPU)."""
    c = layer.config
    return nn.MaxPool2d(tuple(c["kernel_size"]), tuple(c["stride"]), tuple(c["padding"]), tuple(c["dilation"]))


def max_pool_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """``lax.reduce_window`` with ``lax.max`` and -inf padding, differentiated by JAX's own rule
    (``select_and_scatter_add`` with ``>=``: the first maximum of a window in row-major order gets its
    gradient). JAX has no VJP for a dilated max window, so with dilation the rows and columns every
    window reads are first gathered into contiguous, non-overlapping blocks (``x[:, :, rows][..., cols]``,
    whose transpose adds the overlaps back) and pooled with window = stride = kernel."""
    c = layer.config
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (tuple(c[k]) for k in ("kernel_size", "stride", "padding", "dilation"))
    ninf = np.array(-np.inf, dtype=x.dtype)  # a concrete constant: JAX recognises the max monoid (and its VJP)
    if (dh, dw) == (1, 1):
        return jax.lax.reduce_window(
            x, ninf, jax.lax.max, (1, 1, kh, kw), (1, 1, sh, sw), ((0, 0), (0, 0), (ph, ph), (pw, pw))
        )
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=ninf)
    Ho, Wo = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1, (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = (np.arange(Ho)[:, None] * sh + np.arange(kh) * dh).reshape(-1)  # (Ho kH,): window y reads rows y kH ...
    cols = (np.arange(Wo)[:, None] * sw + np.arange(kw) * dw).reshape(-1)  # (Wo kW,)
    blocks = xp[:, :, rows][:, :, :, cols]  # (N, C, Ho kH, Wo kW)
    return jax.lax.reduce_window(blocks, ninf, jax.lax.max, (1, 1, kh, kw), (1, 1, kh, kw), "VALID")


def _avg_pool_torch(layer: LayerSpec, dtype: Any) -> Any:
    """nn.AvgPool2d: zero padding; ``count_include_pad`` as configured."""
    c = layer.config
    return nn.AvgPool2d(
        tuple(c["kernel_size"]), tuple(c["stride"]), tuple(c["padding"]), count_include_pad=c["count_include_pad"]
    )


def avg_pool_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's AvgPool2d: a zero-padded ``lax.reduce_window`` sum divided by kH kW (``count_include_pad``)
    or by the same window sum over ones, the count of unpadded elements."""
    c = layer.config
    (kh, kw), (sh, sw), (ph, pw) = (tuple(c[k]) for k in ("kernel_size", "stride", "padding"))
    window, strides, pad = (1, 1, kh, kw), (1, 1, sh, sw), ((0, 0), (0, 0), (ph, ph), (pw, pw))
    zero = np.array(0, dtype=x.dtype)
    total = jax.lax.reduce_window(x, zero, jax.lax.add, window, strides, pad)
    if c["count_include_pad"]:
        return total / (kh * kw)
    return total / jax.lax.reduce_window(jnp.ones_like(x), zero, jax.lax.add, window, strides, pad)


# ---------------------------------------------------------------- exact forwards (high-precision Var scalars)


def _exact_windows(layer: LayerSpec, x: Any) -> Any:
    """For each (n, c, i, j) of a window layer's output: the input entries its window reads, in row-major order
    (padding left out: a zero for a convolution or sum, -inf for a max)."""
    c = layer.config
    (kh, kw), (sh, sw), (ph, pw) = (tuple(c[k]) for k in ("kernel_size", "stride", "padding"))
    dh, dw = tuple(c.get("dilation", (1, 1)))
    H, W = x.shape[2:]
    Ho, Wo = window_count(H, kh, sh, ph, dh), window_count(W, kw, sw, pw, dw)
    for i in range(Ho):
        for j in range(Wo):
            taps = [(a, b, i * sh - ph + a * dh, j * sw - pw + b * dw) for a in range(kh) for b in range(kw)]
            yield i, j, Ho, Wo, [t for t in taps if 0 <= t[2] < H and 0 <= t[3] < W]


def _conv_exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """out[n, o, i, j] = b[o] + sum over the window and the group's input channels of x W: one exact dot each."""
    G, W = layer.config["groups"], p["W"]  # W (C_out, C_in / G, kH, kW)
    N, C = x.shape[:2]
    cin, cout = C // G, W.shape[0] // G
    out: Any = None
    for i, j, Ho, Wo, taps in _exact_windows(layer, x):
        if out is None:
            out = np.empty((N, W.shape[0], Ho, Wo), dtype=object)
        for n in range(N):
            for o in range(W.shape[0]):
                g = o // cout
                xs = [x[n, g * cin + ci, r, q] for ci in range(cin) for (a, b, r, q) in taps]
                ws = [W[o, ci, a, b] for ci in range(cin) for (a, b, r, q) in taps]
                v = ex.dot(xs, ws)
                out[n, o, i, j] = v + p["b"][o] if layer.config["bias"] else v
    return out


def _pool_exact(pick: Any) -> Any:
    def exact(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
        out: Any = None
        for i, j, Ho, Wo, taps in _exact_windows(layer, x):
            if out is None:
                out = np.empty((*x.shape[:2], Ho, Wo), dtype=object)
            for n in range(x.shape[0]):
                for ch in range(x.shape[1]):
                    out[n, ch, i, j] = pick(layer, [x[n, ch, r, q] for (a, b, r, q) in taps])
        return out

    return exact


def _first_max(layer: LayerSpec, window: list[Any]) -> Any:
    """The first maximum in row-major order takes the gradient (torch's CPU rule)."""
    best = window[0]
    for v in window[1:]:
        if v > best:
            best = v
    return ex.Var(best.v, ((best, 1),))


def _mean(layer: LayerSpec, window: list[Any]) -> Any:
    c = layer.config
    k = c["kernel_size"][0] * c["kernel_size"][1]
    return ex.total(window) / (k if c["count_include_pad"] else len(window))


def same_scale(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    return s_in


KINDS = [
    Kind(
        "conv2d",
        torch_module=_conv_torch,
        torch_grads=conv_grads,
        jax_apply=_conv_jax,
        scale_fwd=conv_fwd,
        scale_bwd=_conv_bwd,
        terms=conv_terms,
        lengths=image_lengths,
        describe=_describe,
        plant=conv_plant,
        exact=_conv_exact,
    ),
    Kind(
        "max_pool2d",
        torch_module=_max_pool_torch,
        jax_apply=max_pool_jax,
        scale_fwd=same_scale,
        scale_bwd=pool_bwd,
        terms=max_terms,
        hazard=near_tie,
        lengths=image_lengths,
        describe=_describe,
        exact=_pool_exact(_first_max),
    ),
    Kind(
        "avg_pool2d",
        torch_module=_avg_pool_torch,
        jax_apply=avg_pool_jax,
        scale_fwd=same_scale,
        scale_bwd=pool_bwd,
        terms=max_terms,
        lengths=image_lengths,
        describe=_describe,
        exact=_pool_exact(_mean),
    ),
]


# ---------------------------------------------------------------- AdaptiveAvgPool2d


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows along one axis: [floor(i size / out), ceil((i + 1) size / out)) for i < out."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive_out(layer: Any, H: int, W: int) -> tuple[int, int]:
    o = layer.config["output_size"] if isinstance(layer, LayerSpec) else layer.output_size
    return (H if o[0] is None else o[0]), (W if o[1] is None else o[1])


def _adaptive_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """dx sums dout / count over the windows holding an element: G(dx) = G(dout) m / (fewest elements of a
    window), m the most windows one element belongs to (overlaps when H_out does not divide H)."""
    m, fewest = 1, 1
    for size, out in zip(h_in.shape[2:], _adaptive_out(layer, *h_in.shape[2:])):
        win = adaptive_windows(size, out)
        cover = np.zeros(size, int)
        for a, b in win:
            cover[a:b] += 1
        m, fewest = m * int(cover.max()), fewest * min(b - a for a, b in win)
    return g * m / fewest


def _adaptive_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    if image is None:
        return [], None
    N, C, H, W = image
    Ho, Wo = _adaptive_out(layer, H, W)
    longest = max(b - a for a, b in adaptive_windows(H, Ho)) * max(b - a for a, b in adaptive_windows(W, Wo))
    return [longest], (N, C, Ho, Wo)


def _adaptive_each(x: Any, Ho: int, Wo: int, reduce: Any, stack: Any) -> Any:
    H, W = x.shape[2:]
    rows = [
        stack([reduce(x[:, :, a:b, c:d]) for c, d in adaptive_windows(W, Wo)], -1) for a, b in adaptive_windows(H, Ho)
    ]
    return stack(rows, -2)  # (N, C, H_out, W_out)


def _adaptive_terms(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    """An average of its window: terms at most the window's largest m."""
    return _adaptive_each(np.asarray(m, np.float64), *y.shape[2:], lambda v: v.max(axis=(2, 3)), np.stack)


def _adaptive_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """torch's adaptive windows, each averaged by ``jnp.mean``."""
    Ho, Wo = _adaptive_out(layer, *x.shape[2:])
    return _adaptive_each(x, Ho, Wo, lambda v: jnp.mean(v, axis=(2, 3)), jnp.stack)


KINDS += [
    Kind(
        "adaptive_avg_pool2d",
        torch_module=lambda layer, dtype: nn.AdaptiveAvgPool2d(layer.config["output_size"]),
        jax_apply=_adaptive_jax,
        scale_fwd=same_scale,
        scale_bwd=_adaptive_bwd,
        terms=_adaptive_terms,
        lengths=_adaptive_lengths,
        describe=lambda layer: f"AdaptiveAvgPool2d({layer.output_size})",
    ),
]
