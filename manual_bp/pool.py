"""Max and average pooling over NCHW images and (N, C, L) sequences, and adaptive average pooling: pure pairs,
then thin layers over them. 1-D pooling is the 2-D pair on (N, C, 1, L).

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

from manual_bp._checks import check_float_array, check_ndim, check_nonempty
from manual_bp.windows import Cache, Geometry, IntOrPair, Windowed, as_pair, crop, scatter_windows, taps, windows


def _pool_geometry(
    kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair, dilation: IntOrPair, where: str
) -> Geometry:
    k = as_pair(kernel_size, "kernel_size", where)
    s = k if stride is None else as_pair(stride, "stride", where)
    return Geometry(k, s, as_pair(padding, "padding", where, 0), as_pair(dilation, "dilation", where))


# --8<-- [start:max_pool2d_pair]
def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
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
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
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

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0, dilation: IntOrPair = 1
    ) -> None:
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

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        count_include_pad: bool = True,
    ) -> None:
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


# ---------------------------------------------------------------- 1-D pooling: the 2-D pairs on (N, C, 1, L)


def max_pool1d_forward(
    x: np.ndarray, kernel_size: int, stride: int | None = None, padding: int = 0, dilation: int = 1
) -> tuple[np.ndarray, Cache]:
    """out[n, c, t] = max_i xp[n, c, t s + i d], xp padded with -inf (torch's ``F.max_pool1d``; stride defaults to
    kernel_size): ``max_pool2d_forward`` on (N, C, 1, L). x: (N, C, L)  ->  out: (N, C, L_out). Cache: its cache."""
    out, cache = max_pool2d_forward(
        x[:, :, None, :], (1, kernel_size), (1, stride or kernel_size), (0, padding), (1, dilation)
    )
    return out[:, :, 0, :], cache


def max_pool1d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """``max_pool2d_backward`` on (N, C, 1, L_out): each window's gradient to its first maximum.
    dout: (N, C, L_out)  ->  dx: (N, C, L)."""
    return max_pool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]


def avg_pool1d_forward(
    x: np.ndarray, kernel_size: int, stride: int | None = None, padding: int = 0, count_include_pad: bool = True
) -> tuple[np.ndarray, Cache]:
    """out[n, c, t] = sum_i xp[n, c, t s + i] / count[t], xp zero-padded (torch's ``F.avg_pool1d``; count = k, or
    the window's unpadded elements without ``count_include_pad``): ``avg_pool2d_forward`` on (N, C, 1, L).
    x: (N, C, L)  ->  out: (N, C, L_out). Cache: its cache."""
    out, cache = avg_pool2d_forward(
        x[:, :, None, :], (1, kernel_size), (1, stride or kernel_size), (0, padding), count_include_pad
    )
    return out[:, :, 0, :], cache


def avg_pool1d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """``avg_pool2d_backward`` on (N, C, 1, L_out). dout: (N, C, L_out)  ->  dx: (N, C, L)."""
    return avg_pool2d_backward(dout[:, :, None, :], cache)[:, :, 0, :]


def _as_int(value: Any, name: str, where: str, minimum: int) -> int:
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if (
        len(items) != 1
        or isinstance(items[0], bool)
        or not isinstance(items[0], (int, np.integer))
        or items[0] < minimum
    ):
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(items[0])


class _Pool1d(Windowed):
    """Shared set-up of MaxPool1d and AvgPool1d: a (1, k) geometry over (N, C, 1, L), checked on (N, C, L)."""

    def _set_geometry(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
        w = type(self).__name__
        k = _as_int(kernel_size, "kernel_size", w, 1)
        s = k if stride is None else _as_int(stride, "stride", w, 1)
        p, d = _as_int(padding, "padding", w, 0), _as_int(dilation, "dilation", w, 1)
        if p > k // 2:
            raise ValueError(
                f"{w}: padding {p} must be at most half the kernel {k} (kernel_size // 2, as torch requires)"
            )
        self.geometry = Geometry((1, k), (1, s), (0, p), (1, d))

    def _check_sequence(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_ndim(x, 3, self.where, layout="(N, C, L)")
        check_nonempty(x, self.where)
        k, s, p, d = (v[1] for v in self.geometry)
        L = x.shape[2]
        if d * (k - 1) + 1 > L + 2 * p:
            raise ValueError(
                f"{self.where}: the kernel {k} with dilation {d} spans {d * (k - 1) + 1}, longer than "
                f"the padded input {L + 2 * p} (input shape {x.shape}, padding {p}); use a smaller "
                f"kernel or more padding"
            )
        starts = np.arange((L + 2 * p - d * (k - 1) - 1) // s + 1) * s - p  # unpadded position of each window's start
        # a window whose every element lies in the padding (possible with dilation) has nowhere to send its gradient
        empty = np.array([not any(0 <= t + i * d < L for i in range(k)) for t in starts])
        if empty.any():
            raise ValueError(
                f"{self.where}: window {int(np.argmax(empty))} lies entirely in the padding for input "
                f"shape {x.shape} (kernel {k}, stride {s}, padding {p}, dilation {d}); reduce padding or "
                f"dilation"
            )
        return x

    def config(self) -> dict[str, Any]:
        k, s, p, d = (v[1] for v in self.geometry)
        return {"kernel_size": k, "stride": s, "padding": p, "dilation": d}


class MaxPool1d(_Pool1d):
    """Max over each (dilated) window of (N, C, L), as torch's ``nn.MaxPool1d`` (padding -inf, at most
    kernel_size // 2; stride defaults to kernel_size); the tie rule of MaxPool2d. x: (N, C, L) -> (N, C, L_out)."""

    kind = "max_pool1d"

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self._set_geometry(kernel_size, stride, padding, dilation)

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_sequence(x)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        k, s, p, d = (v[1] for v in self.geometry)
        return max_pool1d_forward(x, k, s, p, d)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return max_pool1d_backward(dout, cache)


class AvgPool1d(_Pool1d):
    """Mean over each window of (N, C, L), as torch's ``nn.AvgPool1d(kernel_size, stride, padding, ceil_mode,
    count_include_pad)`` (zero padding, at most kernel_size // 2; stride defaults to kernel_size; only
    ``ceil_mode=False``). x: (N, C, L) -> (N, C, L_out)."""

    kind = "avg_pool1d"

    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        if ceil_mode:
            raise ValueError("AvgPool1d: ceil_mode=True is not supported; windows end inside the padded input")
        self._set_geometry(kernel_size, stride, padding, 1)
        self.count_include_pad = bool(count_include_pad)

    def config(self) -> dict[str, Any]:
        k, s, p, _ = (v[1] for v in self.geometry)
        return {"kernel_size": k, "stride": s, "padding": p, "count_include_pad": self.count_include_pad}

    def _check_input(self, x: Any) -> np.ndarray:
        return self._check_sequence(x)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        k, s, p, _ = (v[1] for v in self.geometry)
        return avg_pool1d_forward(x, k, s, p, self.count_include_pad)

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return avg_pool1d_backward(dout, cache)


# ---------------------------------------------------------------- adaptive average pooling


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows along one axis: window i covers [floor(i size / out), ceil((i + 1) size / out))."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: tuple[int, int]) -> tuple[np.ndarray, Cache]:
    """out[n, c, i, j] = mean of x[n, c, h, w] over torch's adaptive window (i, j), as ``F.adaptive_avg_pool2d``::

        rows[n, c, i, w] = sum_{h in window i} x[n, c, h, w],   out[n, c, i, j] = sum_{w in window j} rows / count

    count[i, j] = |window i| |window j| (``adaptive_windows``; windows overlap when H_out does not divide H).
    Output size (1, 1) is the global average. x: (N, C, H, W)  ->  out: (N, C, H_out, W_out).
    Cache: (the windows along H and W, count (H_out, W_out), x.shape).
    """
    H, W = x.shape[2:]
    wh, ww = adaptive_windows(H, output_size[0]), adaptive_windows(W, output_size[1])
    count = np.multiply.outer([b - a for a, b in wh], [b - a for a, b in ww]).astype(x.dtype)  # (H_out, W_out)
    rows = np.stack([x[:, :, a:b, :].sum(axis=2) for a, b in wh], axis=2)  # (N, C, H_out, W)
    out = np.stack([rows[:, :, :, a:b].sum(axis=3) for a, b in ww], axis=3) / count  # (N, C, H_out, W_out)
    return out, (wh, ww, count, x.shape)


def adaptive_avg_pool2d_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx[n, c, h, w] = sum over the windows (i, j) that contain (h, w) of dout[n, c, i, j] / count[i, j]: the
    forward's two sums undone in turn, last first. dout: (N, C, H_out, W_out)  ->  dx: (N, C, H, W)."""
    wh, ww, count, (N, C, H, W) = cache
    share = dout / count  # (N, C, H_out, W_out)
    drows = np.zeros((N, C, len(wh), W), dtype=dout.dtype)  # (N, C, H_out, W): undoes the sum over w
    for j, (a, b) in enumerate(ww):
        drows[:, :, :, a:b] += share[:, :, :, j : j + 1]
    dx = np.zeros((N, C, H, W), dtype=dout.dtype)  # undoes the sum over h
    for i, (a, b) in enumerate(wh):
        dx[:, :, a:b, :] += drows[:, :, i : i + 1, :]
    return dx


class AdaptiveAvgPool2d(Windowed):
    """Average over torch's adaptive windows, as torch's ``nn.AdaptiveAvgPool2d(output_size)``: an int or an
    (H_out, W_out) pair, None keeping that axis's input size; ``AdaptiveAvgPool2d(1)`` is the global average.
    x: (N, C, H, W) -> (N, C, H_out, W_out)."""

    kind = "adaptive_avg_pool2d"

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        items = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        ok = len(items) == 2 and all(
            v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1) for v in items
        )
        if not ok:
            raise ValueError(
                f"AdaptiveAvgPool2d: output_size must be an int >= 1, None or a pair of them, got {output_size!r}"
            )
        self.output_size = tuple(None if v is None else int(v) for v in items)

    def config(self) -> dict[str, Any]:
        return {"output_size": self.output_size}

    def out_shape(self, H: int, W: int) -> tuple[int, int]:
        return tuple(n if o is None else o for o, n in zip(self.output_size, (H, W)))  # type: ignore[return-value]

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_ndim(x, 4, self.where, layout="(N, C, H, W)")
        check_nonempty(x, self.where)
        return x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        return adaptive_avg_pool2d_forward(x, self.out_shape(*x.shape[2:]))

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        return adaptive_avg_pool2d_backward(dout, cache)
