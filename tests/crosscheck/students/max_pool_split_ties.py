"""A student's max-pool backward: a window's gradient split evenly among tied maxima."""

import numpy as np


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s : i * s + ph, j * s : j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s : i * s + ph, j * s : j * s + pw]
            hit = win == win.max(axis=(2, 3), keepdims=True)
            share = hit / hit.sum(axis=(2, 3), keepdims=True)  # split among the ties
            dx[:, :, i * s : i * s + ph, j * s : j * s + pw] += share * dout[:, :, i, j][:, :, None, None]
    return dx
