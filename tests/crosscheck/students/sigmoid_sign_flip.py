"""A student's sigmoid backward with its sign flipped."""

import numpy as np


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    return out, out


def sigmoid_backward(dout, cache):
    return -dout * cache * (1 - cache)
