"""A student's affine pair: dw computed as dout^T x, the transpose of x^T dout."""


def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = dout.T @ x.reshape(x.shape[0], -1)  # (M, D): the transpose is missing
    return dx, dw, dout.sum(axis=0)
