"""Random layers and inputs for the image and RMS norms (BatchNorm2d, GroupNorm, InstanceNorm2d, RMSNorm), Conv1d,
ConvTranspose2d and the 1-D and adaptive pools, and the planted bugs of those kinds: shared by
tests/manual_bp/test_norm.py, test_conv.py, test_pool.py and tests/crosscheck/test_norms.py, test_conv.py.

Each maker takes (rng, seed) and returns (layer, x) in float64; ``seed % 4 == 0`` gives a batch of 1 where the
layer allows it and ``seed % 4 == 1`` a width (channels or features) of 1, so every suite meets both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import manual_bp as mbp
from manual_bp import conv, norm, norm2d
from manual_bp.windows import Geometry, scatter_windows

Maker = Callable[[np.random.Generator, int], tuple[mbp.Module, np.ndarray]]


def _affine(layer: mbp.Module, r: np.random.Generator) -> mbp.Module:
    """Random gamma (either sign) and beta where the layer has them."""
    if "gamma" in layer.params:
        C = layer.params["gamma"].size
        layer.params["gamma"][:] = r.choice([-1.0, 1.0], C) * r.uniform(0.5, 1.5, C)
    if "beta" in layer.params:
        layer.params["beta"][:] = 0.5 * r.standard_normal(layer.params["beta"].size)
    return layer


def _running(layer: mbp.Module, r: np.random.Generator) -> mbp.Module:
    if "running_mean" in layer.buffers:
        C = layer.buffers["running_mean"].size
        layer.buffers["running_mean"][:] = r.standard_normal(C)
        layer.buffers["running_var"][:] = r.uniform(0.3, 3.0, C)
    return layer


def _sizes(r: np.random.Generator, seed: int) -> tuple[int, int, int, int]:
    N = 1 if seed % 4 == 0 else int(r.integers(2, 4))
    C = 1 if seed % 4 == 1 else int(r.integers(2, 4))
    return N, C, int(r.integers(2, 5)), int(r.integers(1, 5))


def _image(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return r.standard_normal(shape) * float(r.choice([0.5, 1.0, 3.0])) + float(r.choice([0.0, 2.0]))


def batch_norm2d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Training with running statistics, evaluation with them, or no running statistics (batch ones always)."""
    N, C, H, W = _sizes(r, seed)
    mode = seed % 3  # 0 train, 1 eval, 2 no running statistics
    layer = mbp.BatchNorm2d(
        C, eps=float(r.choice([1e-5, 0.1])), momentum=0.3, affine=seed % 5 != 4, track_running_stats=mode != 2
    )
    layer = _running(_affine(layer, r), r).train(mode != 1)
    return layer, _image(r, (N, C, H, W))


def group_norm(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    N, C, H, W = _sizes(r, seed)
    C *= 2
    G = int(r.choice([g for g in range(1, C + 1) if C % g == 0]))
    layer = _affine(mbp.GroupNorm(G, C, eps=float(r.choice([1e-5, 0.1])), affine=seed % 5 != 4), r)
    return layer, _image(r, (N, C, H, W))


def instance_norm2d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Affine or not, with or without running statistics, training or evaluation."""
    N, C, H, W = _sizes(r, seed)
    track = seed % 2 == 0
    layer = mbp.InstanceNorm2d(
        C, eps=float(r.choice([1e-5, 0.1])), momentum=0.2, affine=seed % 3 != 0, track_running_stats=track
    )
    layer = _running(_affine(layer, r), r).train(not (track and seed % 4 == 2))
    return layer, _image(r, (N, C, H + 1, W))  # H W >= 2: one value per instance has no variance


def rms_norm(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    N = 1 if seed % 4 == 0 else int(r.integers(2, 6))
    D = 1 if seed % 4 == 1 else int(r.integers(2, 7))
    layer = mbp.RMSNorm(D, eps=None if seed % 2 else float(r.choice([1e-5, 0.1])), elementwise_affine=seed % 5 != 4)
    shape = (N, D) if seed % 3 else (N, int(r.integers(1, 4)), D)
    return _affine(layer, r), _image(r, shape)


def conv1d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Cycles through batch 1, width 1, grouped (depthwise too), strided, dilated and padded kernels."""
    groups = int(r.choice([1, 2, 3])) if seed % 3 == 2 else 1
    C_in = groups * (1 if seed % 4 == 1 else int(r.integers(1, 3)))
    C_out = groups * int(r.integers(1, 3))
    k, s, p, d = int(r.integers(1, 4)), int(r.integers(1, 4)), int(r.integers(0, 3)), int(r.integers(1, 3))
    L = max(1, d * (k - 1) + 1 - 2 * p) + int(r.integers(0, 5))
    layer = mbp.Conv1d(C_in, C_out, k, s, p, d, groups, bias=seed % 4 != 3, rng=r)
    return layer, _image(r, (1 if seed % 4 == 0 else int(r.integers(2, 4)), C_in, L))


def conv_transpose2d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Random geometry, output padding below the stride or the dilation, groups, batch 1 and width 1."""
    groups = int(r.choice([1, 2])) if seed % 3 == 2 else 1
    C_in = groups * (1 if seed % 4 == 1 else int(r.integers(1, 3)))
    C_out = groups * int(r.integers(1, 3))
    while True:
        k = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        d = (int(r.integers(1, 3)), int(r.integers(1, 3)))
        p = (int(r.integers(0, 3)), int(r.integers(0, 3)))
        op = (int(r.integers(0, max(s[0], d[0]))), int(r.integers(0, max(s[1], d[1]))))
        layer = mbp.ConvTranspose2d(C_in, C_out, k, s, p, op, groups, seed % 4 != 3, d, rng=r)
        H, W = int(r.integers(1, 5)), int(r.integers(1, 5))
        if min(layer.out_shape(H, W)) >= 1:
            return layer, _image(r, (1 if seed % 4 == 0 else int(r.integers(2, 4)), C_in, H, W))


def _distinct(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Entries at least 0.03 apart: no max-pool window is near a tie for a finite-difference step."""
    n = int(np.prod(shape))
    grid = r.permutation(n) * 0.05 + r.uniform(0, 0.02, n)
    return (grid - grid.mean()).reshape(shape)


def max_pool1d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    while True:
        k = int(r.integers(1, 4))
        s = None if seed % 3 == 0 else int(r.integers(1, 4))
        p, d = int(r.integers(0, k // 2 + 1)), int(r.integers(1, 3)) if seed % 2 else 1
        layer = mbp.MaxPool1d(k, s, p, d)
        x = _distinct(
            r, (1 if seed % 4 == 0 else int(r.integers(2, 4)), 1 if seed % 4 == 1 else 2, int(r.integers(1, 9)))
        )
        try:
            layer.forward(x)
        except ValueError:  # the kernel does not fit, or a window lies in the padding: draw again
            continue
        return layer, x


def avg_pool1d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    k = int(r.integers(1, 4))
    layer = mbp.AvgPool1d(
        k,
        None if seed % 3 == 0 else int(r.integers(1, 4)),
        int(r.integers(0, k // 2 + 1)),
        count_include_pad=seed % 2 == 0,
    )
    L = k + int(r.integers(0, 6))
    return layer, _image(r, (1 if seed % 4 == 0 else int(r.integers(2, 4)), 1 if seed % 4 == 1 else 2, L))


def adaptive_avg_pool2d(r: np.random.Generator, seed: int) -> tuple[mbp.Module, np.ndarray]:
    """Global pooling, and output sizes that divide the input, do not (overlapping windows), exceed it, or keep it."""
    H, W = int(r.integers(1, 8)), int(r.integers(1, 8))
    size: Any = 1 if seed % 3 == 0 else (int(r.integers(1, 9)), None if seed % 5 == 1 else int(r.integers(1, 9)))
    x = _image(r, (1 if seed % 4 == 0 else int(r.integers(2, 4)), 1 if seed % 4 == 1 else 2, H, W))
    return mbp.AdaptiveAvgPool2d(size), x


NORMS: dict[str, Maker] = {
    "BatchNorm2d": batch_norm2d,
    "GroupNorm": group_norm,
    "InstanceNorm2d": instance_norm2d,
    "RMSNorm": rms_norm,
}
CONVS: dict[str, Maker] = {"Conv1d": conv1d, "ConvTranspose2d": conv_transpose2d}
POOLS: dict[str, Maker] = {"MaxPool1d": max_pool1d, "AvgPool1d": avg_pool1d, "AdaptiveAvgPool2d": adaptive_avg_pool2d}


# ---------------------------------------------------------------- planted bugs (patch the module the layer calls)

_RMS_BACKWARD, _CONV_T_FORWARD = norm.rms_norm_backward, conv.conv_transpose2d_forward  # the right ones, kept


def rms_norm_backward_without_gamma(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """RMSNorm's backward with the weight left out of dx (dxhat = dout instead of dout * gamma); dgamma right."""
    xhat, rstd, _ = cache
    _, dgamma = _RMS_BACKWARD(dout, cache)
    dx, _ = _RMS_BACKWARD(dout, (xhat, rstd, None))
    return dx, dgamma


def batch_norm2d_forward_wrong_axes(
    x: np.ndarray,
    gamma: Any,
    beta: Any,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, Any, Any]:
    """BatchNorm2d's statistics over (N, H) for each (channel, column) instead of over (N, H, W) per channel."""
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 1, 3).reshape(N * H, C * W)  # (N H, C W): one statistic per (c, w)
    g = None if gamma is None else np.repeat(gamma, W)
    b = None if beta is None else np.repeat(beta, W)
    out, cache, (rm, rv) = norm.batch_norm_forward(
        rows, g, b, np.repeat(running_mean, W), np.repeat(running_var, W), training, momentum, eps
    )
    stats = (rm.reshape(C, W).mean(axis=1), rv.reshape(C, W).mean(axis=1))
    return out.reshape(N, H, C, W).transpose(0, 2, 1, 3).copy(), (cache, x.shape), stats


def batch_norm2d_backward_wrong_axes(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, Any, Any]:
    """The backward that goes with ``batch_norm2d_forward_wrong_axes`` (consistent with its wrong forward)."""
    rows_cache, (N, C, H, W) = cache
    dx, dgamma, dbeta = norm.batch_norm_backward(dout.transpose(0, 2, 1, 3).reshape(N * H, C * W), rows_cache)
    dgamma = None if dgamma is None else dgamma.reshape(C, W).sum(axis=1)
    dbeta = None if dbeta is None else dbeta.reshape(C, W).sum(axis=1)
    return dx.reshape(N, H, C, W).transpose(0, 2, 1, 3).copy(), dgamma, dbeta


def conv_transpose2d_forward_wrong_stride(
    x: np.ndarray,
    W: np.ndarray,
    b: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> tuple:
    """The transposed convolution's scatter with stride 1 along H (the output keeps its shape: the rows the
    stride would have spread out pile up at the top)."""
    out, cache = _CONV_T_FORWARD(x, W, b, stride, padding, output_padding, groups, dilation)
    _, _, _, g, _ = cache
    N, C, H, Wi = x.shape
    Og, kh, kw = W.shape[1:]
    x_t = x.transpose(1, 2, 3, 0).reshape(groups, C // groups, -1)  # (groups, C_g, H W N)
    cols = W.reshape(groups, C // groups, -1).transpose(0, 2, 1) @ x_t  # (groups, O_g kH kW, H W N)
    wrong = Geometry(g.k, (1, g.s[1]), g.p, g.d)
    bad = scatter_windows(cols.reshape(groups * Og, kh, kw, H, Wi, N), wrong, *out.shape[2:])
    if b is not None:
        bad += b.reshape(-1, 1, 1)
    return bad, cache


__all__ = [
    "CONVS",
    "NORMS",
    "POOLS",
    "batch_norm2d_backward_wrong_axes",
    "batch_norm2d_forward_wrong_axes",
    "conv_transpose2d_forward_wrong_stride",
    "norm2d",
    "rms_norm_backward_without_gamma",
]
