"""Convolutions: Conv2d over NCHW images, Conv1d over (N, C, L) sequences, ConvTranspose2d; pairs, then layers.

Layout: images are ``(N, C, H, W)`` as in torch; a convolution weight ``W`` is
``(C_out, C_in / groups, kH, kW)``, **torch's own** ``nn.Conv2d.weight`` layout
(no transpose anywhere: the references copy it as is). The window geometry
(output size, the gather and its transpose) is in ``manual_bp.windows``; the
forward copies the gathered windows once into the im2col matrix. Conv1d is Conv2d on (N, C, 1, L).
ConvTranspose2d is the transpose (adjoint) of a Conv2d: its forward is that Conv2d's input gradient
(the scatter), its input gradient that Conv2d's forward (the gather); its weight
``(C_in, C_out / groups, kH, kW)`` is torch's ``nn.ConvTranspose2d.weight``, the adjoint Conv2d's own.
Pooling is in ``manual_bp.pool`` and is re-exported here.

Its length (just over 400 lines) is one family kept whole: each convolution's pair beside its class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manual_bp._checks import check_dtype_arg, check_float_array, check_ndim, check_nonempty, check_same_dtype
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
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "Geometry",
    "MaxPool2d",
    "as_pair",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv1d_backward",
    "conv1d_forward",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "windows",
]


# --8<-- [start:conv2d_pair]
def conv2d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
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
    g = Geometry(
        (kh, kw),
        as_pair(stride, "stride", "conv2d"),
        as_pair(padding, "padding", "conv2d", 0),
        as_pair(dilation, "dilation", "conv2d"),
    )
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
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
        init: str = "torch",
    ) -> None:
        super().__init__()
        w = "Conv2d"
        for n, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{w}: {n} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{w}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.geometry = Geometry(
            as_pair(kernel_size, "kernel_size", w),
            as_pair(stride, "stride", w),
            as_pair(padding, "padding", w, 0),
            as_pair(dilation, "dilation", w),
        )
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
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": g.k,
            "stride": g.s,
            "padding": g.p,
            "dilation": g.d,
            "groups": self.groups,
            "bias": self.bias,
            "dtype": self.dtype.name,
            "init": self.init,
        }

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


# ---------------------------------------------------------------- Conv1d


# --8<-- [start:conv1d_pair]
def conv1d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> tuple[np.ndarray, Cache]:
    """1-D cross-correlation, as torch's ``F.conv1d``: ``conv2d_forward`` on (N, C, 1, L) with a (1, k) kernel::

        out[n, o, t] = b[o] + sum_{c, i} W[o, c, i] xp[n, G(o) + c, t s + i d]

    x: (N, C_in, L), W: (C_out, C_in / groups, k), b: (C_out,) or None  ->  out: (N, C_out, L_out),
    L_out = floor((L + 2 p - d (k - 1) - 1) / s) + 1. Cache: the Conv2d cache.
    """
    out, cache = conv2d_forward(x[:, :, None, :], W[:, :, None, :], b, (1, stride), (0, padding), (1, dilation), groups)
    return out[:, :, 0, :], cache  # (N, C_out, L_out)


def conv1d_backward(
    dout: np.ndarray, cache: Cache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """``conv2d_backward`` on dout as (N, C_out, 1, L_out). dout: (N, C_out, L_out)  ->  dx: (N, C_in, L) or None,
    dW: (C_out, C_in / groups, k), db: (C_out,) or None."""
    dx, dW, db = conv2d_backward(dout[:, :, None, :], cache, need_dx)
    return (dx[:, :, 0, :] if dx is not None else None), dW[:, :, 0, :], db


# --8<-- [end:conv1d_pair]


def _channels(where: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple[int, int, int]:
    for n, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{where}: {n} must be a positive int, got {v!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{where}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
        )
    return int(in_channels), int(out_channels), int(groups)


def _as_int(value: Any, name: str, where: str, minimum: int) -> int:
    """An int >= minimum (or a 1-tuple of one, as torch accepts); ValueError naming the layer otherwise."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if (
        len(items) != 1
        or isinstance(items[0], bool)
        or not isinstance(items[0], (int, np.integer))
        or items[0] < minimum
    ):
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(items[0])


class Conv1d(Windowed):
    """1-D cross-correlation over (N, C_in, L) sequences, as torch's ``nn.Conv1d`` (zero padding).

    W: (out_channels, in_channels / groups, kernel_size), torch's layout; b: (out_channels,). Initialised
    as torch does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels / groups * kernel_size.
    x: (N, in_channels, L) -> out: (N, out_channels, L_out).
    """

    kind = "conv1d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
        init: str = "torch",
    ) -> None:
        super().__init__()
        w = "Conv1d"
        self.in_channels, self.out_channels, self.groups = _channels(w, in_channels, out_channels, groups)
        k, s = _as_int(kernel_size, "kernel_size", w, 1), _as_int(stride, "stride", w, 1)
        p, d = _as_int(padding, "padding", w, 0), _as_int(dilation, "dilation", w, 1)
        self.geometry = Geometry((1, k), (1, s), (0, p), (1, d))  # the Conv2d over (N, C, 1, L)
        self.bias, self.init = bool(bias), init
        self.dtype = check_dtype_arg(dtype, w)
        gen = as_generator(rng, w)
        fan_in, fan_out = self.in_channels // self.groups * k, self.out_channels * k
        shape = (self.out_channels, self.in_channels // self.groups, k)
        self.params["W"] = get_initializer(init, w)(gen, shape, fan_in, fan_out, self.dtype)
        if self.bias:
            self.params["b"] = get_initializer("torch", w)(gen, (self.out_channels,), fan_in, fan_out, self.dtype)

    def config(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": g.k[1],
            "stride": g.s[1],
            "padding": g.p[1],
            "dilation": g.d[1],
            "groups": self.groups,
            "bias": self.bias,
            "dtype": self.dtype.name,
            "init": self.init,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        check_sequence(self, x, self.in_channels)
        check_same_dtype(x, self.dtype, self.where)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        g = self.geometry
        return conv1d_forward(x, self.params["W"], self.params.get("b"), g.s[1], g.p[1], g.d[1], self.groups)

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        dx, dW, db = conv1d_backward(dout, cache, need_dx)
        self.grads["W"] = dW
        if db is not None:
            self.grads["b"] = db
        return dx

    def _param_backward(self, dout: np.ndarray, cache: Any) -> None:
        return self._backward(dout, cache, need_dx=False)


def check_sequence(layer: Windowed, x: Any, channels: int | None) -> np.ndarray:
    """A 3-D float (N, C, L) input (C = ``channels`` unless None) whose padded length holds the dilated kernel of
    ``layer.geometry`` (a (1, k) geometry over (N, C, 1, L)); ValueError or TypeError naming the layer."""
    where = layer.where
    check_float_array(x, where)
    C = "C" if channels is None else str(channels)
    check_ndim(x, 3, where, layout=f"(N, {C}, L)")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{where}: expected input (N, {channels}, L), got shape {x.shape}: axis 1 must hold the "
            f"{channels} input channels"
        )
    check_nonempty(x, where)
    g = layer.geometry
    if g.span()[1] > x.shape[2] + 2 * g.p[1]:
        raise ValueError(
            f"{where}: the kernel {g.k[1]} with dilation {g.d[1]} spans {g.span()[1]}, longer than the padded input "
            f"{x.shape[2] + 2 * g.p[1]} (input shape {x.shape}, padding {g.p[1]}); use a smaller kernel or more "
            f"padding"
        )
    return x


# ---------------------------------------------------------------- ConvTranspose2d


# --8<-- [start:conv_transpose2d_pair]
def conv_transpose2d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> tuple[np.ndarray, Cache]:
    """Transposed convolution, as torch's ``F.conv_transpose2d``: every input pixel scatters its kernel-weighted
    copy into the output, at the stride::

        out[n, G(c) + o, y sh + i dh - ph, x sw + j dw - pw] += x[n, c, y, x] W[c, o, i, j],   + b

    G(c) = (c // C_g) O_g the first output channel of c's group, C_g = C_in / groups, O_g = C_out / groups;
    rows and columns outside the output are dropped. H_out = (H - 1) sh - 2 ph + dh (kH - 1) + oph + 1
    (the output padding adds rows at the bottom and right only).

    x: (N, C_in, H, W_in), W: (C_in, O_g, kH, kW) (torch's layout), b: (C_out,) or None
    ->  out: (N, C_out, H_out, W_out).
    As one GEMM per group: cols = W_g^T @ x_g, (groups, O_g kH kW, H W_in N) with W_g = W viewed as
    (groups, C_g, O_g kH kW), then the col2im scatter of ``manual_bp.windows`` places each term.
    Cache: (x, W, has_bias, geometry, groups).
    """
    N, _, H, Wi = x.shape
    Cg, Og, kh, kw = W.shape[0] // groups, W.shape[1], W.shape[2], W.shape[3]
    g = Geometry(
        (kh, kw),
        as_pair(stride, "stride", "conv_transpose2d"),
        as_pair(padding, "padding", "conv_transpose2d", 0),
        as_pair(dilation, "dilation", "conv_transpose2d"),
    )
    op = as_pair(output_padding, "output_padding", "conv_transpose2d", 0)
    Ho, Wo = (_transposed_size(n, g.k[a], g.s[a], g.p[a], g.d[a], op[a]) for a, n in enumerate((H, Wi)))
    Wg = W.reshape(groups, Cg, Og * kh * kw)  # (groups, C_g, O_g kH kW)
    x_t = x.transpose(1, 2, 3, 0).reshape(groups, Cg, H * Wi * N)  # (groups, C_g, H W N), batch last
    cols = Wg.transpose(0, 2, 1) @ x_t  # (groups, O_g kH kW, H W N): one GEMM per group
    out = scatter_windows(cols.reshape(groups * Og, kh, kw, H, Wi, N), g, Ho, Wo)  # (N, C_out, H_out, W_out)
    if b is not None:
        out += b.reshape(-1, 1, 1)
    return out, (x, W, b is not None, g, groups)


def conv_transpose2d_backward(
    dout: np.ndarray, cache: Cache, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """The gradients of ``conv_transpose2d_forward``, through the Conv2d it is the transpose of::

        dx[n, c, y, x] = sum_{o, i, j} W[c, o, i, j] doutp[n, G(c) + o, y sh + i dh, x sw + j dw]
                       = conv2d_forward(dout, W) (the gather), cropped to (H, W_in)
        dW[c, o, i, j] = sum_{n, y, x} x[n, c, y, x] doutp[n, G(c) + o, y sh + i dh, x sw + j dw]
                       = conv2d_backward's dW of that Conv2d, with x (zero-extended to its output) as its dout
        db[o]          = sum_{n, y, x} dout[n, o, y, x]

    dout: (N, C_out, H_out, W_out)  ->  dx: (N, C_in, H, W_in) or None, dW: (C_in, O_g, kH, kW), db: (C_out,) or None.
    """
    x, W, has_bias, g, groups = cache
    H, Wi = x.shape[2:]
    gathered, conv_cache = conv2d_forward(dout, W, None, g.s, g.p, g.d, groups)  # (N, C_in, H', W'), H' >= H
    x_ext = np.zeros(gathered.shape, dtype=x.dtype)  # (N, C_in, H', W'): output padding >= stride adds rows
    x_ext[:, :, :H, :Wi] = x
    _, dW, _ = conv2d_backward(x_ext, conv_cache, need_dx=False)  # (C_in, O_g, kH, kW)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None  # (C_out,)
    dx = np.ascontiguousarray(gathered[:, :, :H, :Wi]) if need_dx else None  # (N, C_in, H, W_in)
    return dx, dW, db


# --8<-- [end:conv_transpose2d_pair]


def _transposed_size(n: int, k: int, s: int, p: int, d: int, op: int) -> int:
    """The output length of a transposed convolution along one axis: (n - 1) s - 2 p + d (k - 1) + op + 1."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


class ConvTranspose2d(Windowed):
    """Transposed 2-D convolution over (N, C_in, H, W) images, as torch's ``nn.ConvTranspose2d`` (zero padding).

    W: (in_channels, out_channels / groups, kH, kW), torch's layout; b: (out_channels,). Initialised as
    torch does: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both, with torch's fan_in of this weight,
    out_channels / groups * kH * kW (fan_out = in_channels * kH * kW). ``output_padding`` (< stride or
    < dilation on each axis, as torch requires) adds rows and columns at the bottom and right.
    x: (N, in_channels, H, W) -> out: (N, out_channels, H_out, W_out), H_out = (H - 1) sh - 2 ph + dh (kH - 1)
    + oph + 1.
    """

    kind = "conv_transpose2d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrPair = 1,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float64,
        init: str = "torch",
    ) -> None:
        super().__init__()
        w = "ConvTranspose2d"
        self.in_channels, self.out_channels, self.groups = _channels(w, in_channels, out_channels, groups)
        self.geometry = Geometry(
            as_pair(kernel_size, "kernel_size", w),
            as_pair(stride, "stride", w),
            as_pair(padding, "padding", w, 0),
            as_pair(dilation, "dilation", w),
        )
        self.output_padding = as_pair(output_padding, "output_padding", w, 0)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.geometry.s, self.geometry.d)):
            raise ValueError(
                f"{w}: output_padding {self.output_padding} must be smaller than either the stride "
                f"{self.geometry.s} or the dilation {self.geometry.d} on each axis"
            )
        self.bias, self.init = bool(bias), init
        self.dtype = check_dtype_arg(dtype, w)
        gen = as_generator(rng, w)
        kh, kw = self.geometry.k
        fan_in, fan_out = self.out_channels // self.groups * kh * kw, self.in_channels * kh * kw
        shape = (self.in_channels, self.out_channels // self.groups, kh, kw)
        self.params["W"] = get_initializer(init, w)(gen, shape, fan_in, fan_out, self.dtype)
        if self.bias:
            self.params["b"] = get_initializer("torch", w)(gen, (self.out_channels,), fan_in, fan_out, self.dtype)

    def out_shape(self, H: int, W: int) -> tuple[int, int]:
        """(H_out, W_out) for an (H, W) input (< 1 where the padding crops everything)."""
        g, op = self.geometry, self.output_padding
        return tuple(
            _transposed_size(n, g.k[a], g.s[a], g.p[a], g.d[a], op[a])  # type: ignore[return-value]
            for a, n in enumerate((H, W))
        )

    def config(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": g.k,
            "stride": g.s,
            "padding": g.p,
            "output_padding": self.output_padding,
            "groups": self.groups,
            "bias": self.bias,
            "dilation": g.d,
            "dtype": self.dtype.name,
            "init": self.init,
        }

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        C = self.in_channels
        check_ndim(x, 4, self.where, layout=f"(N, {C}, H, W)")
        if x.shape[1] != C:
            raise ValueError(
                f"{self.where}: expected input (N, {C}, H, W), got shape {x.shape}: axis 1 must hold "
                f"the {C} input channels"
            )
        check_nonempty(x, self.where)
        check_same_dtype(x, self.dtype, self.where)
        Ho, Wo = self.out_shape(*x.shape[2:])
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"{self.where}: the output would be {(Ho, Wo)} for input shape {x.shape} (padding "
                f"{self.geometry.p} crops it all); use less padding"
            )
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        g = self.geometry
        return conv_transpose2d_forward(
            x, self.params["W"], self.params.get("b"), g.s, g.p, self.output_padding, self.groups, g.d
        )

    def _backward(self, dout: np.ndarray, cache: Any, need_dx: bool = True) -> np.ndarray | None:
        dx, dW, db = conv_transpose2d_backward(dout, cache, need_dx)
        self.grads["W"] = dW
        if db is not None:
            self.grads["b"] = db
        return dx

    def _param_backward(self, dout: np.ndarray, cache: Any) -> None:
        return self._backward(dout, cache, need_dx=False)
