"""2-D convolution over NCHW images: the pure pair, then the layer over it.

Layout: images are ``(N, C, H, W)`` as in torch; a convolution weight ``W`` is
``(C_out, C_in / groups, kH, kW)``, **torch's own** ``nn.Conv2d.weight`` layout
(no transpose anywhere: the references copy it as is). The window geometry
(output size, the gather and its transpose) is in ``manual_bp.windows``; the
forward copies the gathered windows once into the im2col matrix. Pooling is in
``manual_bp.pool`` and is re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual_bp._checks import check_dtype_arg, check_same_dtype
from manual_bp.init import as_generator, get_initializer
from manual_bp.pool import (
    AvgPool2d,
    MaxPool2d,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from manual_bp.windows import Cache, Geometry, IntOrPair, Windowed, as_pair, scatter_windows, windows

__all__ = [
    "AvgPool2d", "Conv2d", "Geometry", "MaxPool2d", "as_pair", "avg_pool2d_backward", "avg_pool2d_forward",
    "conv2d_backward", "conv2d_forward", "max_pool2d_backward", "max_pool2d_forward", "windows",
]


# --8<-- [start:conv2d_pair]
def conv2d_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray | None, stride: IntOrPair = 1, padding: IntOrPair = 0,
    dilation: IntOrPair = 1, groups: int = 1,
) -> tuple[np.ndarray, Cache]:
    """Cross-correlation (the kernel is not flipped), as torch's ``F.conv2d``::

        out[n, o, y, x] = b[o] + sum_{c, i, j} W[o, c, i, j] xp[n, G(o) + c, y sh + i dh, x sw + j dw]

    xp is x zero-padded, G(o) = (o // O_g) C_g the first input channel of o's group,
    C_g = C_in / groups, O_g = C_out / groups.

    x: (N, C_in, H, W_in), W: (C_out, C_g, kH, kW) (torch's layout), b: (C_out,) or None
    ->  out: (N, C_out, H_out, W_out).
    As one batched GEMM: cols (N, groups, C_g kH kW, H_out W_out) holds every window
    (im2col), out = W_g @ cols with W_g = W viewed as (groups, O_g, C_g kH kW).
    Cache: (cols, W, has_bias, x.shape, geometry).
    """
    N = x.shape[0]
    O, Cg, kh, kw = W.shape
    g = Geometry((kh, kw), as_pair(stride, "stride", "conv2d"), as_pair(padding, "padding", "conv2d", 0),
                 as_pair(dilation, "dilation", "conv2d"))
    cols = windows(x, g)  # (N, C, Ho, Wo, kH, kW), a view
    Ho, Wo = cols.shape[2:4]
    cols = cols.transpose(0, 1, 4, 5, 2, 3).reshape(N, groups, Cg * kh * kw, Ho * Wo)  # the im2col copy
    Wg = W.reshape(groups, O // groups, Cg * kh * kw)  # (groups, O_g, K)
    out = (Wg @ cols).reshape(N, O, Ho, Wo)  # (N, groups, O_g, Ho Wo) -> (N, C_out, Ho, Wo)
    if b is not None:
        out += b.reshape(O, 1, 1)
    return out, (cols, W, b is not None, x.shape, g)


def conv2d_backward(
    dout: np.ndarray, cache: Cache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """The three gradients of ``conv2d_forward``, each a sum over what the forward summed::

        dW[o, c, i, j] = sum_{n, y, x} dout[n, o, y, x] xp[n, G(o) + c, y sh + i dh, x sw + j dw]
                       = sum_n dout_g[n] @ cols[n]^T
        db[o]          = sum_{n, y, x} dout[n, o, y, x]
        dx: dcols = W_g^T @ dout_g, then dxp[n, G(o) + c, y sh + i dh, x sw + j dw] += dcols[n, c, i, j, y, x]
            (col2im, the transpose of the window gather: W is not flipped by hand, the scatter
            places each term where the forward read it), and the padding is cropped. dcols is
            formed batch last, (groups, C_g kH kW, H_out W_out N), one GEMM per group.

    dout: (N, C_out, H_out, W_out)  ->  dx: (N, C_in, H, W_in) or None (``need_dx=False``),
    dW: (C_out, C_g, kH, kW), db: (C_out,) or None.
    """
    cols, W, has_bias, x_shape, g = cache
    N, groups, K, L = cols.shape
    O = W.shape[0]
    dout_g = dout.reshape(N, groups, O // groups, L)  # (N, groups, O_g, Ho Wo)
    dW = (dout_g @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(W.shape)  # (groups, O_g, K) -> W's shape
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None  # (C_out,)
    if not need_dx:
        return None, dW, db
    Wg = W.reshape(groups, O // groups, K)
    dout_t = dout.transpose(1, 2, 3, 0).reshape(groups, O // groups, L * N)  # (groups, O_g, Ho Wo N), batch last
    dcols = Wg.transpose(0, 2, 1) @ dout_t  # (groups, K, Ho Wo N): one GEMM per group
    dwin = dcols.reshape(x_shape[1], *g.k, *dout.shape[2:], N)  # (C_in, kH, kW, Ho, Wo, N)
    return scatter_windows(dwin, g, *x_shape[2:]), dW, db
# --8<-- [end:conv2d_pair]


class Conv2d(Windowed):
    """2-D cross-correlation over (N, C_in, H, W) images, as torch's ``nn.Conv2d`` (zero padding).

    W: (out_channels, in_channels / groups, kH, kW), torch's layout; b: (out_channels,).
    Initialised as torch does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both, fan_in =
    in_channels / groups * kH * kW (``init`` names another weight initialiser of
    ``manual_bp.init``, with fan_out = out_channels * kH * kW as torch counts it).
    x: (N, in_channels, H, W) -> out: (N, out_channels, H_out, W_out).
    """

    kind = "conv2d"

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
        padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, bias: bool = True, *,
        rng: np.random.Generator | int | None = None, dtype: Any = np.float64, init: str = "torch",
    ) -> None:
        super().__init__()
        w = "Conv2d"
        for n, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{w}: {n} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{w}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.geometry = Geometry(as_pair(kernel_size, "kernel_size", w), as_pair(stride, "stride", w),
                                 as_pair(padding, "padding", w, 0), as_pair(dilation, "dilation", w))
        self.bias, self.init = bool(bias), init
        self.dtype = check_dtype_arg(dtype, w)
        gen = as_generator(rng, w)
        kh, kw = self.geometry.k
        fan_in, fan_out = self.in_channels // self.groups * kh * kw, self.out_channels * kh * kw
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.params["W"] = get_initializer(init, w)(gen, shape, fan_in, fan_out, self.dtype)
        if self.bias:
            self.params["b"] = get_initializer("torch", w)(gen, (self.out_channels,), fan_in, fan_out, self.dtype)

    def config(self) -> dict[str, Any]:
        g = self.geometry
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": g.k,
                "stride": g.s, "padding": g.p, "dilation": g.d, "groups": self.groups, "bias": self.bias,
                "dtype": self.dtype.name, "init": self.init}

    def _check_input(self, x: Any) -> np.ndarray:
        self._check_image(x, self.in_channels)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        g = self.geometry
        return conv2d_forward(x, self.params["W"], self.params.get("b"), g.s, g.p, g.d, self.groups)

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        dx, dW, db = conv2d_backward(dout, cache, need_dx)
        self.grads["W"] = dW
        if db is not None:
            self.grads["b"] = db
        return dx

    def _param_backward(self, dout: np.ndarray, cache: Any) -> None:
        return self._backward(dout, cache, need_dx=False)  # skips dcols and the col2im scatter
