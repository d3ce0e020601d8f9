"""A student's softmax loss: exp of the raw logits, without subtracting each row's maximum."""

import numpy as np


def softmax_loss(x, y):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(x)  # overflows to inf for logits above ~709
        probs = e / e.sum(axis=1, keepdims=True)
        N = x.shape[0]
        loss = -np.log(probs[np.arange(N), y]).sum() / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    return loss, dx / N
