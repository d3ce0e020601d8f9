"""2-D convolution and pooling over NCHW images: pure pairs, then thin layers over them.

Layout: images are ``(N, C, H, W)`` as in torch; a convolution weight ``W`` is
``(C_out, C_in / groups, kH, kW)``, **torch's own** ``nn.Conv2d.weight`` layout
(no transpose anywhere: the references copy it as is). Every geometry argument
(kernel_size, stride, padding, dilation) is an int or an (h, w) pair. Along
each axis, with kernel k, stride s, padding p and dilation d::

    out_size = floor((size + 2 p - d (k - 1) - 1) / s) + 1

Window (y, x) of the padded input xp reads ``xp[..., y s + i d, x s + j d]``
for the kernel offsets i < kH, j < kW. The forward gathers those windows once
(``sliding_window_view``: a view, then one copy for the convolution's im2col
matrix); every backward scatters them back with one strided ``+=`` per kernel
offset (kH kW of them), which is the transpose of the gather: inputs shared by
overlapping windows (stride < kernel) accumulate.

Max-pool ties: the whole gradient of a window goes to its **first** maximal
element in row-major window order (a scan over the offsets that replaces the
running maximum only on a strictly greater value), and an element that is the
maximum of several overlapping windows receives the sum of their gradients. A
NaN is the maximum of its window (the last NaN, as in torch's kernel).
This is what torch's CPU kernel does and what JAX's ``reduce_window`` max
differentiates to (``select_and_scatter_add`` with ``>=``: an earlier element
is kept on equality); ``jnp.max`` over an axis instead splits the gradient
equally between tied elements. Padding of a max-pool is -inf, as torch's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual_bp._checks import check_dtype_arg, check_float_array, check_ndim, check_nonempty, check_same_dtype
from manual_bp.init import as_generator, get_initializer
from manual_bp.layers import Module

Cache = Any
Pair = tuple[int, int]
IntOrPair = int | Sequence[int]


class Geometry(NamedTuple):
    """Kernel (kH, kW), stride, padding and dilation of a sliding window, each an (h, w) pair."""

    k: Pair
    s: Pair
    p: Pair
    d: Pair

    def out_shape(self, H: int, W: int) -> Pair:
        """(H_out, W_out) for an (H, W) input; < 1 where the dilated kernel exceeds the padded input."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self
        return (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def span(self) -> Pair:
        """The dilated kernel's extent d (k - 1) + 1 along each axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.k, self.d))  # type: ignore[return-value]


def as_pair(value: Any, name: str, where: str, minimum: int = 1) -> Pair:
    """An int or a pair of ints, each >= minimum, as an (h, w) tuple; ValueError naming the layer otherwise."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in items)
    if not ok:
        raise ValueError(f"{where}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(items[0]), int(items[1])


def windows(x: np.ndarray, g: Geometry, pad_value: float = 0.0) -> np.ndarray:
    """A view (N, C, H_out, W_out, kH, kW) of every window of x (N, C, H, W) padded with ``pad_value``:
    ``windows(x, g)[n, c, y, x_, i, j] = xp[n, c, y sh + i dh, x_ sw + j dw]``. Without padding it is a
    read-only view of x itself; with padding, of a padded copy. ValueError if the dilated kernel does
    not fit the padded input."""
    (ph, pw), (H, W) = g.p, x.shape[2:]
    Ho, Wo = g.out_shape(H, W)
    if Ho < 1 or Wo < 1:
        raise ValueError(f"the kernel {g.k} with dilation {g.d} spans {g.span()}, larger than the padded input "
                         f"{(H + 2 * ph, W + 2 * pw)}")
    xp = x if (ph, pw) == (0, 0) else np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    v = sliding_window_view(xp, g.span(), axis=(2, 3))  # (N, C, Hp - spanH + 1, Wp - spanW + 1, spanH, spanW)
    (sh, sw), (dh, dw) = g.s, g.d
    return v[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :Ho, :Wo]  # (N, C, Ho, Wo, kH, kW)


def _taps(g: Geometry, Ho: int, Wo: int) -> Iterator[tuple[int, int, slice, slice]]:
    """For each kernel offset (i, j): the rows and columns of the padded input it reads in all windows,
    i dh + sh y for y < H_out and j dw + sw x for x < W_out (distinct pixels: one tap never overlaps itself)."""
    (kh, kw), (sh, sw), _, (dh, dw) = g
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw)


def _crop(dxp: np.ndarray, g: Geometry) -> np.ndarray:
    """(N, C, H + 2 ph, W + 2 pw) -> (N, C, H, W): the gradient of the padding is dropped."""
    (ph, pw), (Hp, Wp) = g.p, dxp.shape[2:]
    return dxp if (ph, pw) == (0, 0) else dxp[:, :, ph: Hp - ph, pw: Wp - pw].copy()


def _scatter_windows(dwin: np.ndarray, g: Geometry, H: int, W: int) -> np.ndarray:
    """The transpose of ``windows``, batch last: dwin (C, kH, kW, H_out, W_out, N) -> dx (N, C, H, W),

        dxp[c, y sh + i dh, x sw + j dw, n] += dwin[c, i, j, y, x, n]   (overlapping windows accumulate),

    then the padding is cropped. With the batch axis innermost, each offset's ``+=`` runs over runs of
    W_out N contiguous numbers rather than W_out (a loop over kH kW offsets, not over pixels)."""
    C, _, _, Ho, Wo, N = dwin.shape
    (ph, pw) = g.p
    dxp = np.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=dwin.dtype)  # (C, Hp, Wp, N)
    for i, j, rows, cols in _taps(g, Ho, Wo):
        dxp[:, rows, cols] += dwin[:, i, j]
    return np.ascontiguousarray(dxp[:, ph: ph + H, pw: pw + W].transpose(3, 0, 1, 2))  # (N, C, H, W)


# ---------------------------------------------------------------- Conv2d


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
    return _scatter_windows(dwin, g, *x_shape[2:]), dW, db


# ---------------------------------------------------------------- pooling


def _pool_geometry(kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair, dilation: IntOrPair,
                   where: str) -> Geometry:
    k = as_pair(kernel_size, "kernel_size", where)
    s = k if stride is None else as_pair(stride, "stride", where)
    return Geometry(k, s, as_pair(padding, "padding", where, 0), as_pair(dilation, "dilation", where))


def max_pool2d_forward(
    x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[np.ndarray, Cache]:
    """out[n, c, y, x] = max_{i, j} xp[n, c, y sh + i dh, x sw + j dw], xp padded with -inf (torch's
    ``F.max_pool2d``; stride defaults to kernel_size).

    x: (N, C, H, W)  ->  out: (N, C, H_out, W_out). Cache: (arg, x.shape, geometry), arg (N, C, H_out, W_out)
    the row-major index i kW + j of the first maximal element of each window (the tie rule of the module
    docstring).
    """
    g = _pool_geometry(kernel_size, stride, padding, dilation, "max_pool2d")
    win = windows(x, g, -np.inf)  # (N, C, Ho, Wo, kH, kW), a view
    taps = [win[..., q // g.k[1], q % g.k[1]] for q in range(g.k[0] * g.k[1])]  # row-major, (N, C, Ho, Wo) views
    out = taps[0].copy()  # (N, C, Ho, Wo)
    for v in taps[1:]:
        np.maximum(out, v, out=out)  # NaN propagates
    arg = np.zeros(out.shape, dtype=np.min_scalar_type(len(taps) - 1))  # row-major index i kW + j of the maximum
    found = taps[0] == out  # (N, C, Ho, Wo) bool: the window's maximum is already placed
    for q, v in enumerate(taps[1:], start=1):
        hit = v == out
        hit &= ~found  # only the first maximum of each window
        arg += hit.view(np.uint8) * arg.dtype.type(q)
        found |= hit
    if not found.all():  # windows holding a NaN: torch's kernel selects the last NaN
        for q, v in enumerate(taps):
            np.copyto(arg, q, where=~found & np.isnan(v))
    return out, (arg, x.shape, g)


def max_pool2d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx[n, c, h, w] = sum of dout[n, c, y, x] over the windows (y, x) whose selected maximum is (h, w).

    dout: (N, C, H_out, W_out)  ->  dx: (N, C, H, W). One element per window receives its
    gradient; an element selected by several overlapping windows receives their sum.
    """
    arg, (N, C, H, W), g = cache
    dxp = np.zeros((N, C, H + 2 * g.p[0], W + 2 * g.p[1]), dtype=dout.dtype)  # (N, C, Hp, Wp)
    disjoint = all(s >= span for s, span in zip(g.s, g.span()))  # no pixel is read by two offsets
    finite = bool(np.isfinite(dout).all())  # else dout * 0 would put NaN on elements that are not the maximum
    for i, j, rows, cols in _taps(g, *dout.shape[2:]):
        tap = dxp[:, :, rows, cols]  # (N, C, Ho, Wo), a view: the pixels offset (i, j) reads
        selected = arg == i * g.k[1] + j
        if not finite:
            tap += np.where(selected, dout, 0)
        elif disjoint:
            np.multiply(dout, selected, out=tap)  # tap = dout where this offset is the maximum, else 0
        else:
            tap += dout * selected  # overlapping windows: accumulate
    return _crop(dxp, g)


def avg_pool2d_forward(
    x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
    count_include_pad: bool = True,
) -> tuple[np.ndarray, Cache]:
    """out[n, c, y, x] = sum_{i, j} xp[n, c, y sh + i dh, x sw + j dw] / count[y, x], xp zero-padded,
    as torch's ``F.avg_pool2d`` (stride defaults to kernel_size; no dilation, as torch).

    count = kH kW (``count_include_pad=True``, torch's default) or the number of the
    window's elements inside the unpadded input (``False``).
    x: (N, C, H, W)  ->  out: (N, C, H_out, W_out). Cache: (count, x.shape, geometry);
    count is a Python int or an (H_out, W_out) array of x's dtype.
    """
    g = _pool_geometry(kernel_size, stride, padding, 1, "avg_pool2d")
    win = windows(x, g)  # (N, C, Ho, Wo, kH, kW), a view
    count: int | np.ndarray = g.k[0] * g.k[1]
    if not count_include_pad and g.p != (0, 0):
        inside = windows(np.ones((1, 1, *x.shape[2:]), x.dtype), g)  # (1, 1, Ho, Wo, kH, kW)
        count = inside.sum(axis=(-2, -1))[0, 0]  # (Ho, Wo), exact small integers in x's dtype
    out = win.sum(axis=(-2, -1)) / count  # (N, C, Ho, Wo)
    return out, (count, x.shape, g)


def avg_pool2d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx[n, c, h, w] = sum over the windows (y, x) that contain (h, w) of dout[n, c, y, x] / count[y, x].

    dout: (N, C, H_out, W_out)  ->  dx: (N, C, H, W).
    """
    count, x_shape, g = cache
    share = (dout / count).transpose(1, 2, 3, 0)  # (C, Ho, Wo, N): each window element's part, batch last
    C, Ho, Wo, N = share.shape
    dwin = np.broadcast_to(share[:, None, None], (C, *g.k, Ho, Wo, N))  # (C, kH, kW, Ho, Wo, N), a view
    return _scatter_windows(dwin, g, *x_shape[2:])


# ---------------------------------------------------------------- layers


class _Windowed(Module):
    """Input checks shared by the layers here: a 4-D float (N, C, H, W) input whose padded size
    holds the dilated kernel."""

    geometry: Geometry

    def _check_image(self, x: Any, channels: int | None) -> np.ndarray:
        check_float_array(x, self.where)
        C = "C" if channels is None else str(channels)
        check_ndim(x, 4, self.where, layout=f"(N, {C}, H, W)")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{self.where}: expected input (N, {channels}, H, W), got shape {x.shape}: "
                             f"axis 1 must hold the {channels} input channels")
        check_nonempty(x, self.where)
        g = self.geometry
        H, W = x.shape[2:]
        padded = (H + 2 * g.p[0], W + 2 * g.p[1])
        if g.span()[0] > padded[0] or g.span()[1] > padded[1]:
            raise ValueError(
                f"{self.where}: the kernel {g.k} with dilation {g.d} spans {g.span()}, larger than the padded "
                f"input {padded} (input shape {x.shape}, padding {g.p}); use a smaller kernel or more padding")
        return x

    def _check_pool_padding(self) -> None:
        """torch's rule for pooling: padding <= kernel_size // 2 along each axis."""
        (kh, kw), (ph, pw) = self.geometry.k, self.geometry.p
        if ph > kh // 2 or pw > kw // 2:
            raise ValueError(f"{self.where}: padding {self.geometry.p} must be at most half the kernel "
                             f"{self.geometry.k} (kernel_size // 2 on each axis, as torch requires)")

    def _check_no_empty_window(self, x: np.ndarray) -> None:
        """Reject a window that lies entirely in the padding (possible with dilation): its maximum would be
        -inf with nowhere to send the gradient (torch's CPU kernel then writes out of bounds)."""
        g = self.geometry
        for axis, size in ((0, x.shape[2]), (1, x.shape[3])):
            k, s, p, d = g.k[axis], g.s[axis], g.p[axis], g.d[axis]
            n_out = (size + 2 * p - d * (k - 1) - 1) // s + 1
            pos = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] * d - p  # (n_out, k) unpadded positions
            empty = ~((pos >= 0) & (pos < size)).any(axis=1)
            if empty.any():
                raise ValueError(
                    f"{self.where}: window {int(np.argmax(empty))} along {'HW'[axis]} lies entirely in the "
                    f"padding for input shape {x.shape} (kernel {g.k}, stride {g.s}, padding {g.p}, dilation "
                    f"{g.d}); reduce padding or dilation")


class Conv2d(_Windowed):
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


class MaxPool2d(_Windowed):
    """Max over each (dilated) window, as torch's ``nn.MaxPool2d`` (padding -inf, at most kernel_size // 2;
    stride defaults to kernel_size). The gradient goes to the first maximum of each window in row-major
    order and accumulates where overlapping windows share it. x: (N, C, H, W) -> (N, C, H_out, W_out)."""

    kind = "max_pool2d"

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
                 dilation: IntOrPair = 1) -> None:
        super().__init__()
        self.geometry = _pool_geometry(kernel_size, stride, padding, dilation, "MaxPool2d")
        self._check_pool_padding()

    def config(self) -> dict[str, Any]:
        g = self.geometry
        return {"kernel_size": g.k, "stride": g.s, "padding": g.p, "dilation": g.d}

    def _check_input(self, x: Any) -> np.ndarray:
        self._check_image(x, None)
        self._check_no_empty_window(x)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return max_pool2d_forward(x, *self.geometry[:2], *self.geometry[2:])

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return max_pool2d_backward(dout, cache)


class AvgPool2d(_Windowed):
    """Mean over each window, as torch's ``nn.AvgPool2d`` (zero padding, at most kernel_size // 2; stride
    defaults to kernel_size; ``count_include_pad=True`` divides by kH kW, False by the number of unpadded
    elements). x: (N, C, H, W) -> (N, C, H_out, W_out)."""

    kind = "avg_pool2d"

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.geometry = _pool_geometry(kernel_size, stride, padding, 1, "AvgPool2d")
        self.count_include_pad = bool(count_include_pad)
        self._check_pool_padding()

    def config(self) -> dict[str, Any]:
        g = self.geometry
        return {"kernel_size": g.k, "stride": g.s, "padding": g.p, "count_include_pad": self.count_include_pad}

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_image(x, None)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return avg_pool2d_forward(x, self.geometry.k, self.geometry.s, self.geometry.p, self.count_include_pad)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return avg_pool2d_backward(dout, cache)
