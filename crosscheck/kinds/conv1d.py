"""Conv1d, MaxPool1d and AvgPool1d on (N, C, L): the 2-D entries' rules on (N, C, 1, L)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from crosscheck.kinds._frameworks import jax, jnp, nn
from crosscheck.kinds.conv import (
    avg_pool_jax,
    conv_fwd,
    conv_gains,
    conv_grads,
    conv_plant,
    conv_terms,
    image_lengths,
    max_pool_jax,
    max_terms,
    near_tie,
    pool_bwd,
    same_scale,
)
from crosscheck.kinds.entry import Image, Kind
from crosscheck.kinds.layouts import copy_into
from crosscheck.spec import LayerSpec

# ---------------------------------------------------------------- Conv1d and 1-D pooling: the 2-D rules on (N, C, 1, L)


def as_2d(layer: LayerSpec) -> LayerSpec:
    """A 1-D layer's spec as the 2-D one over (N, C, 1, L): each geometry argument v -> (1, v) ((0, p) for the
    padding), a Conv1d weight (C_out, C_g, k) -> (C_out, C_g, 1, k)."""
    c = dict(layer.config)
    for key, first in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
        if key in c:
            c[key] = (first, c[key])
    params = {k: (v[:, :, None, :] if k == "W" else v) for k, v in layer.params.items()}
    return dataclasses.replace(layer, config=c, params=params)


def _image_2d(image: Image) -> Image:
    return None if image is None else (image[0], image[1], 1, image[2])


def _image_1d(image: Image) -> Image:
    return None if image is None else (image[0], image[1], image[3])


def _conv1d_fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
    return conv_fwd(w, as_2d(layer), h, s_in, out)


def _conv1d_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    N, _, L_out = np.shape(w.ref[f"{layer.name}.out"])
    rows = N * L_out  # the terms summed into each dW and db entry
    w.store(layer, "dW", w.weight_grad(layer, h_in, s_x, g, rows))
    if "b" in layer.params:
        w.store(layer, "db", rows * g)
    return g * conv_gains(as_2d(layer).params["W"], layer.config["groups"])[1]


def _lengths_1d(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    more, nxt = image_lengths(dataclasses.replace(as_2d(layer), kind=layer.kind.replace("1d", "2d")), _image_2d(image))
    return more, _image_1d(nxt)


def _conv1d_torch(layer: LayerSpec, dtype: Any) -> Any:
    c = layer.config
    conv = nn.Conv1d(
        c["in_channels"],
        c["out_channels"],
        c["kernel_size"],
        c["stride"],
        c["padding"],
        c["dilation"],
        c["groups"],
        c["bias"],
        dtype=dtype,
    )
    copy_into(conv.weight, layer.params["W"])  # (C_out, C_in / groups, k): torch's layout
    if c["bias"]:
        copy_into(conv.bias, layer.params["b"])
    return conv


def _conv1d_jax(layer: LayerSpec, p: dict[str, Any], x: Any, net: Any) -> Any:
    """``lax.conv_general_dilated`` on NCH with an OIH kernel (the spec's W as is), the zero padding a separate
    ``jnp.pad`` as for Conv2d."""
    c = layer.config
    xp = jnp.pad(x, ((0, 0), (0, 0), (c["padding"], c["padding"])))
    out = jax.lax.conv_general_dilated(
        xp,
        p["W"],
        window_strides=(c["stride"],),
        padding=((0, 0),),
        rhs_dilation=(c["dilation"],),
        dimension_numbers=("NCH", "OIH", "NCH"),
        feature_group_count=c["groups"],
        precision=jax.lax.Precision.HIGHEST,
    )
    return out + p["b"].reshape(-1, 1) if c["bias"] else out


def _max_pool1d_torch(layer: LayerSpec, dtype: Any) -> Any:
    c = layer.config
    return nn.MaxPool1d(c["kernel_size"], c["stride"], c["padding"], c["dilation"])


def _avg_pool1d_torch(layer: LayerSpec, dtype: Any) -> Any:
    c = layer.config
    return nn.AvgPool1d(c["kernel_size"], c["stride"], c["padding"], count_include_pad=c["count_include_pad"])


def _pool1d_jax(apply_2d: Any) -> Any:
    """The 2-D JAX pooling on (N, C, 1, L)."""
    return lambda layer, p, x, net: apply_2d(as_2d(layer), p, x[:, :, None, :], net)[:, :, 0, :]


def _pool1d_bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
    return pool_bwd(w, as_2d(layer), g, h_in[:, :, None, :], s_x)


def _max_terms_1d(layer: Any, x: np.ndarray, y: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
    return max_terms(layer, x, y, m[:, :, None, :], eps)[:, :, 0, :]


def _near_tie_1d(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    return near_tie(layer, h[:, :, None, :], m[:, :, None, :], tol)


def _describe_1d(layer: Any) -> str:
    """``Conv1d(2->4 k3 s2 p1 d2 g2)``, ``MaxPool1d(k3 s1 p1)``."""
    c = layer.config()
    geo = f"k{c['kernel_size']} s{c['stride']} p{c['padding']}" + (
        f" d{c['dilation']}" if c.get("dilation", 1) != 1 else ""
    )
    if layer.kind == "conv1d":
        bias = "" if layer.bias else " no-bias"
        return f"Conv1d({layer.in_channels}->{layer.out_channels} {geo} g{layer.groups}{bias})"
    if layer.kind == "avg_pool1d" and not layer.count_include_pad:
        geo += " exclude-pad"
    return f"{type(layer).__name__}({geo})"


KINDS = [
    Kind(
        "conv1d",
        torch_module=_conv1d_torch,
        torch_grads=conv_grads,
        jax_apply=_conv1d_jax,
        scale_fwd=_conv1d_fwd,
        scale_bwd=_conv1d_bwd,
        terms=conv_terms,
        lengths=_lengths_1d,
        describe=_describe_1d,
        plant=conv_plant,
    ),
    Kind(
        "max_pool1d",
        torch_module=_max_pool1d_torch,
        jax_apply=_pool1d_jax(max_pool_jax),
        scale_fwd=same_scale,
        scale_bwd=_pool1d_bwd,
        terms=_max_terms_1d,
        hazard=_near_tie_1d,
        lengths=_lengths_1d,
        describe=_describe_1d,
    ),
    Kind(
        "avg_pool1d",
        torch_module=_avg_pool1d_torch,
        jax_apply=_pool1d_jax(avg_pool_jax),
        scale_fwd=same_scale,
        scale_bwd=_pool1d_bwd,
        terms=_max_terms_1d,
        lengths=_lengths_1d,
        describe=_describe_1d,
    ),
]
