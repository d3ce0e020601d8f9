"""A student's dropout backward: the mask applied to the cached input x instead of dout."""

import numpy as np


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    rng = np.random.default_rng(dropout_param.get("seed"))
    mask = (rng.random(x.shape) < p) / p
    return x * mask, (x, mask)


def dropout_backward(dout, cache):
    x, mask = cache
    return x * mask  # should be dout * mask
