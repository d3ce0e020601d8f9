"""A student's relu backward: the gradient passes where x >= 0, so at x == 0 it is dout, not 0."""

import numpy as np


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    return dout * (cache >= 0)
