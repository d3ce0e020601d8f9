"""A student's tanh backward: the local derivative only, the upstream gradient never multiplied in."""

import numpy as np


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    return 1 - cache**2
