"""Sliding windows over NCHW images: the geometry, the gather and its transpose, shared by conv and pooling.

Every geometry argument (kernel_size, stride, padding, dilation) is an int or
an (h, w) pair. Along each axis, with kernel k, stride s, padding p and
dilation d::

    out_size = floor((size + 2 p - d (k - 1) - 1) / s) + 1

Window (y, x) of the padded input xp reads ``xp[..., y s + i d, x s + j d]``
for the kernel offsets i < kH, j < kW. A forward gathers those windows once
(``windows``: a ``sliding_window_view``, no copy); every backward scatters them
back with one strided ``+=`` per kernel offset (``scatter_windows``: kH kW of
them), which is the transpose of the gather: inputs shared by overlapping
windows (stride < kernel) accumulate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from manual_bp._checks import check_float_array, check_ndim, check_nonempty
from manual_bp.module import Module

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
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in items
    )
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
        raise ValueError(
            f"the kernel {g.k} with dilation {g.d} spans {g.span()}, larger than the padded input "
            f"{(H + 2 * ph, W + 2 * pw)}"
        )
    xp = x if (ph, pw) == (0, 0) else np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    v = sliding_window_view(xp, g.span(), axis=(2, 3))  # (N, C, Hp - spanH + 1, Wp - spanW + 1, spanH, spanW)
    (sh, sw), (dh, dw) = g.s, g.d
    return v[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :Ho, :Wo]  # (N, C, Ho, Wo, kH, kW)


def taps(g: Geometry, Ho: int, Wo: int) -> Iterator[tuple[int, int, slice, slice]]:
    """For each kernel offset (i, j): the rows and columns of the padded input it reads in all windows,
    i dh + sh y for y < H_out and j dw + sw x for x < W_out (distinct pixels: one tap never overlaps itself)."""
    (kh, kw), (sh, sw), _, (dh, dw) = g
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i * dh, i * dh + sh * (Ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (Wo - 1) + 1, sw)


def crop(dxp: np.ndarray, g: Geometry) -> np.ndarray:
    """(N, C, H + 2 ph, W + 2 pw) -> (N, C, H, W): the gradient of the padding is dropped."""
    (ph, pw), (Hp, Wp) = g.p, dxp.shape[2:]
    return dxp if (ph, pw) == (0, 0) else dxp[:, :, ph : Hp - ph, pw : Wp - pw].copy()


def scatter_windows(dwin: np.ndarray, g: Geometry, H: int, W: int) -> np.ndarray:
    """The transpose of ``windows``, batch last: dwin (C, kH, kW, H_out, W_out, N) -> dx (N, C, H, W),

        dxp[c, y sh + i dh, x sw + j dw, n] += dwin[c, i, j, y, x, n]   (overlapping windows accumulate),

    then the padding is cropped. With the batch axis innermost, each offset's ``+=`` runs over runs of
    W_out N contiguous numbers rather than W_out (a loop over kH kW offsets, not over pixels)."""
    C, _, _, Ho, Wo, N = dwin.shape
    (ph, pw) = g.p
    dxp = np.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=dwin.dtype)  # (C, Hp, Wp, N)
    for i, j, rows, cols in taps(g, Ho, Wo):
        dxp[:, rows, cols] += dwin[:, i, j]
    return np.ascontiguousarray(dxp[:, ph : ph + H, pw : pw + W].transpose(3, 0, 1, 2))  # (N, C, H, W)


class Windowed(Module):
    """Input checks shared by the layers here: a 4-D float (N, C, H, W) input whose padded size
    holds the dilated kernel."""

    geometry: Geometry

    def _check_image(self, x: Any, channels: int | None) -> np.ndarray:
        check_float_array(x, self.where)
        C = "C" if channels is None else str(channels)
        check_ndim(x, 4, self.where, layout=f"(N, {C}, H, W)")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(
                f"{self.where}: expected input (N, {channels}, H, W), got shape {x.shape}: "
                f"axis 1 must hold the {channels} input channels"
            )
        check_nonempty(x, self.where)
        g = self.geometry
        H, W = x.shape[2:]
        padded = (H + 2 * g.p[0], W + 2 * g.p[1])
        if g.span()[0] > padded[0] or g.span()[1] > padded[1]:
            raise ValueError(
                f"{self.where}: the kernel {g.k} with dilation {g.d} spans {g.span()}, larger than the padded "
                f"input {padded} (input shape {x.shape}, padding {g.p}); use a smaller kernel or more padding"
            )
        return x

    def _check_pool_padding(self) -> None:
        """torch's rule for pooling: padding <= kernel_size // 2 along each axis."""
        (kh, kw), (ph, pw) = self.geometry.k, self.geometry.p
        if ph > kh // 2 or pw > kw // 2:
            raise ValueError(
                f"{self.where}: padding {self.geometry.p} must be at most half the kernel "
                f"{self.geometry.k} (kernel_size // 2 on each axis, as torch requires)"
            )

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
                    f"{g.d}); reduce padding or dilation"
                )
