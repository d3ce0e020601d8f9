"""ConvTranspose2d: the adjoint of a Conv2d, weight (C_in, C_out / groups, kH, kW) as torch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import jax, jnp, nn
from crosscheck.kinds.conv import conv_gains, conv_grads, conv_terms
from crosscheck.kinds.entry import Image, Kind, amax
from crosscheck.kinds.layouts import copy_into
from crosscheck.spec import LayerSpec

# ---------------------------------------------------------------- ConvTranspose2d: the adjoint of a Conv2d


def _conv_t_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    """S(out) = S(x) max_o sum_{c in o's group, i, j} |W_coij| + max|b|: the adjoint Conv2d's dx gain."""
    b = layer.params.get("b")
    return s_in * conv_gains(layer.params["W"], layer.config["groups"])[1] + (amax(b) if b is not None else 0.0)


def _conv_t_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    """dx is the adjoint Conv2d's forward: G(dx) = G(dout) max_c sum_{o, i, j} |W_coij|; dW sums over the
    N H W input positions, db over the N H_out W_out output ones."""
    N, _, H, W = h_in.shape
    w.store(layer, "dW", w.weight_grad(layer, h_in, s_x, g, N * H * W))
    if "b" in layer.params:
        w.store(layer, "db", int(np.prod(np.shape(w.ref[f"{layer.name}.out"]))) // layer.config["out_channels"] * g)
    return g * conv_gains(layer.params["W"], layer.config["groups"])[0]


def _conv_t_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    """Each output sums up to C_in / groups kH kW terms, each dx entry O_g kH kW, dW N H W, db N H_out W_out."""
    if image is None:
        return [], None
    c = layer.config
    N, _, H, W = image
    (kh, kw), G = c["kernel_size"], c["groups"]
    Ho, Wo = (
        (n - 1) * c["stride"][a]
        - 2 * c["padding"][a]
        + c["dilation"][a] * (c["kernel_size"][a] - 1)
        + c["output_padding"][a]
        + 1
        for a, n in enumerate((H, W))
    )
    lengths = [c["in_channels"] // G * kh * kw, c["out_channels"] // G * kh * kw, N * H * W, N * Ho * Wo]
    return lengths, (N, c["out_channels"], Ho, Wo)


def _conv_t_torch(layer: LayerSpec, dtype: Any) -> Any:
    c = layer.config
    conv = nn.ConvTranspose2d(
        c["in_channels"],
        c["out_channels"],
        tuple(c["kernel_size"]),
        tuple(c["stride"]),
        tuple(c["padding"]),
        tuple(c["output_padding"]),
        c["groups"],
        c["bias"],
        tuple(c["dilation"]),
        dtype=dtype,
    )
    copy_into(conv.weight, layer.params["W"])  # (C_in, C_out / groups, kH, kW): torch's layout
    if c["bias"]:
        copy_into(conv.bias, layer.params["b"])
    return conv


def _conv_t_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """A transposed convolution as a plain one (``lax.conv_general_dilated``): the input spread out by the
    stride (zeros between pixels), padded by d (k - 1) - p on each side (+ output_padding at the end; a
    negative pad crops, ``lax.pad``), convolved with the kernel flipped in space and its two channel axes
    swapped within each group: W (C_in, O_g, kH, kW) -> (C_out, C_in / groups, kH, kW)."""
    c = layer.config
    G, (kh, kw), (sh, sw) = c["groups"], tuple(c["kernel_size"]), tuple(c["stride"])
    (ph, pw), (oh, ow), (dh, dw) = tuple(c["padding"]), tuple(c["output_padding"]), tuple(c["dilation"])
    N, C, H, W = x.shape
    spread = jnp.zeros((N, C, (H - 1) * sh + 1, (W - 1) * sw + 1), x.dtype).at[:, :, ::sh, ::sw].set(x)
    rh, rw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    xp = jax.lax.pad(spread, np.array(0, dtype=x.dtype), ((0, 0, 0), (0, 0, 0), (rh, rh + oh, 0), (rw, rw + ow, 0)))
    Og = p["W"].shape[1]
    kernel = p["W"].reshape(G, C // G, Og, kh, kw).swapaxes(1, 2).reshape(G * Og, C // G, kh, kw)[:, :, ::-1, ::-1]
    out = jax.lax.conv_general_dilated(
        xp,
        kernel,
        window_strides=(1, 1),
        padding=((0, 0), (0, 0)),
        rhs_dilation=(dh, dw),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=G,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out + p["b"].reshape(-1, 1, 1) if c["bias"] else out


def _describe_t(layer: Any) -> str:
    """``ConvTranspose2d(2->4 k(3,3) s(2,1) p(1,0) op(1,0) g1)``."""
    g = layer.geometry
    geo = (
        f"k{g.k} s{g.s} p{g.p}"
        + (f" op{layer.output_padding}" if layer.output_padding != (0, 0) else "")
        + (f" d{g.d}" if g.d != (1, 1) else "")
    ).replace(", ", ",")
    bias = "" if layer.bias else " no-bias"
    return f"ConvTranspose2d({layer.in_channels}->{layer.out_channels} {geo} g{layer.groups}{bias})"


KINDS = [
    Kind(
        "conv_transpose2d",
        torch_module=_conv_t_torch,
        torch_grads=conv_grads,
        jax_apply=_conv_t_jax,
        scale_fwd=_conv_t_fwd,
        scale_bwd=_conv_t_bwd,
        terms=conv_terms,
        lengths=_conv_t_lengths,
        describe=_describe_t,
    ),
]
