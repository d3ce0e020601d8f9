"""A student's dropout: the kept units are not divided by the keep probability p."""

import numpy as np


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    rng = np.random.default_rng(dropout_param.get("seed"))
    mask = rng.random(x.shape) < p  # no / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache
