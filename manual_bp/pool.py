"""2-D max and average pooling over NCHW images: pure pairs, then thin layers over them.

The window geometry (output size, the gather and its transpose) is in
``manual_bp.windows``.

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

from typing import Any

import numpy as np

from manual_bp.windows import Cache, Geometry, IntOrPair, Windowed, as_pair, crop, scatter_windows, taps, windows


def _pool_geometry(kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair, dilation: IntOrPair,
                   where: str) -> Geometry:
    k = as_pair(kernel_size, "kernel_size", where)
    s = k if stride is None else as_pair(stride, "stride", where)
    return Geometry(k, s, as_pair(padding, "padding", where, 0), as_pair(dilation, "dilation", where))


# --8<-- [start:max_pool2d_pair]
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
    for i, j, rows, cols in taps(g, *dout.shape[2:]):
        tap = dxp[:, :, rows, cols]  # (N, C, Ho, Wo), a view: the pixels offset (i, j) reads
        selected = arg == i * g.k[1] + j
        if not finite:
            tap += np.where(selected, dout, 0)
        elif disjoint:
            np.multiply(dout, selected, out=tap)  # tap = dout where this offset is the maximum, else 0
        else:
            tap += dout * selected  # overlapping windows: accumulate
    return crop(dxp, g)
# --8<-- [end:max_pool2d_pair]


# --8<-- [start:avg_pool2d_pair]
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
    return scatter_windows(dwin, g, *x_shape[2:])
# --8<-- [end:avg_pool2d_pair]


class MaxPool2d(Windowed):
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


class AvgPool2d(Windowed):
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
