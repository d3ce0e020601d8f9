"""Random affine parameters and running statistics, and the planted BatchNorm1d and Embedding bugs with
the network that exposes them: shared by tests/kinds/test_new_layers.py and tests/crosscheck/test_new_layers.py."""

from __future__ import annotations

import numpy as np

import manual_bp as mbp
from manual_bp import functional as F
from manual_bp import layers, norm


def _affine(layer: mbp.Module, r: np.random.Generator) -> mbp.Module:
    """Random gamma (both signs) and beta, so that dgamma/dbeta are not hidden by gamma = 1, beta = 0."""
    if "gamma" in layer.params:
        D = layer.params["gamma"].shape[0]
        layer.params["gamma"][:] = r.choice([-1.0, 1.0], D) * r.uniform(0.5, 2.0, D)
        layer.params["beta"][:] = r.standard_normal(D)
    if "running_var" in layer.buffers:
        D = layer.buffers["running_var"].shape[0]
        layer.buffers["running_mean"][:] = r.standard_normal(D)
        layer.buffers["running_var"][:] = r.uniform(0.3, 3.0, D)
    return layer


def _bn_unbiased_normalise(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    out, cache, stats = GOOD["batch_norm_forward"](x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if not training:
        return out, cache, stats
    N = x.shape[0]
    xc = x - x.mean(axis=0)
    rstd = 1.0 / np.sqrt((xc * xc).sum(axis=0) / (N - 1) + eps)  # the bug: unbiased variance normalises
    xhat = xc * rstd
    out = xhat * gamma + beta if gamma is not None else xhat
    return out, (True, xhat, xc, rstd, gamma, beta is not None), stats


def _bn_backward_missing_term(dout, cache):
    training, xhat, _xc, rstd, gamma, has_beta = cache
    if not training:
        return GOOD["batch_norm_backward"](dout, cache)
    dbeta, dgamma = dout.sum(axis=0), (dout * xhat).sum(axis=0)
    dxhat = dout * gamma if gamma is not None else dout
    dxc = dxhat * rstd  # the bug: the path through var (dxc += 2 xc dvar / N) is dropped
    dx = dxc - dxc.sum(axis=0) / dout.shape[0]
    return dx, (dgamma if gamma is not None else None), (dbeta if has_beta else None)


def _embedding_overwrites(dout, cache):
    idx, V = cache
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    dW[idx.reshape(-1)] = dout.reshape(-1, dout.shape[-1])  # the bug: repeated indices keep only the last row
    return dW


GOOD = {name: getattr(F, name) for name in ("batch_norm_forward", "batch_norm_backward", "embedding_backward")}


HOME = {"batch_norm_forward": norm, "batch_norm_backward": norm, "embedding_backward": layers}  # the layers call these


PLANTS = {
    "batch_norm_unbiased_variance": ("batch_norm_forward", _bn_unbiased_normalise, ("loss", "1.out")),
    "batch_norm_backward_missing_term": ("batch_norm_backward", _bn_backward_missing_term, ("loss", "1.dx")),
    "embedding_grad_overwritten": ("embedding_backward", _embedding_overwrites, ("loss", "0.dW")),
}


def _plant_net(r: np.random.Generator):
    """indices (12,) -> Embedding(4, 5) -> BatchNorm1d(5) -> Tanh -> Linear(5, 3) -> CE; indices repeat."""
    model = mbp.Sequential(
        mbp.Embedding(4, 5, rng=r), _affine(mbp.BatchNorm1d(5), r), mbp.Tanh(), mbp.Linear(5, 3, rng=r)
    )
    return model, r.integers(0, 4, 12), r.integers(0, 3, 12), r.standard_normal((12, 3))
