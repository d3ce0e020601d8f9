"""Value tests that pin manual_bp.norm2d, found by mutation testing (see mutation/README.md).

Finite differences cannot see an eps that falls back to its default or a running statistic that is
updated wrongly (the forward is the oracle, and buffers are no gradient). These tests compare
BatchNorm2d, InstanceNorm2d and GroupNorm with per-channel loops written here (mean, biased variance,
torch's unbiased running variance), with an eps and a momentum away from the defaults, in training and
in evaluation, and pin the defaults of the pure pairs and the names in the errors. The seed is in the
test id.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import norm2d

SEEDS = range(6)


def rng_of(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([800 + salt, seed])


def _affine(layer: mbp.Module, r: np.random.Generator, C: int) -> None:
    if "gamma" in layer.params:
        layer.params["gamma"][...] = r.standard_normal(C)
        layer.params["beta"][...] = r.standard_normal(C)


def _loop_norm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float, layer: mbp.Module) -> np.ndarray:
    """out[n, c] = (x[n, c] - mean[n, c]) / sqrt(var[n, c] + eps) * gamma[c] + beta[c], one (n, c) at a time."""
    out = np.empty_like(x)
    N, C = x.shape[:2]
    for n in range(N):
        for c in range(C):
            g = layer.params["gamma"][c] if "gamma" in layer.params else 1.0
            b = layer.params["beta"][c] if "beta" in layer.params else 0.0
            out[n, c] = (x[n, c] - mean[n, c]) / np.sqrt(var[n, c] + eps) * g + b
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm2d_training_and_evaluation_by_loops(seed: int) -> None:
    r = rng_of(seed, 1)
    N, C, H, W = 2, 3, int(r.integers(1, 4)), int(r.integers(2, 4))
    eps, momentum = float(r.choice([0.5, 2.0])), float(r.choice([0.3, 0.7]))
    layer = mbp.BatchNorm2d(C, eps=eps, momentum=momentum)
    _affine(layer, r, C)
    for step in range(2):
        x = r.standard_normal((N, C, H, W)) * 2 + 1
        rm, rv = layer.buffers["running_mean"].copy(), layer.buffers["running_var"].copy()
        out = layer.forward(x)
        mean = np.array([x[:, c].mean() for c in range(C)])
        var = np.array([((x[:, c] - mean[c]) ** 2).mean() for c in range(C)])
        want = _loop_norm(x, np.tile(mean, (N, 1)), np.tile(var, (N, 1)), eps, layer)
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13, err_msg=f"seed {seed} step {step}")
        m = N * H * W
        np.testing.assert_allclose(layer.buffers["running_mean"], (1 - momentum) * rm + momentum * mean, rtol=1e-13)
        np.testing.assert_allclose(
            layer.buffers["running_var"], (1 - momentum) * rv + momentum * var * m / (m - 1), rtol=1e-13
        )
    layer.eval()
    x = r.standard_normal((1, C, 1, 1))  # one value per channel is fine with the running statistics
    out = layer.forward(x)
    rm, rv = layer.buffers["running_mean"], layer.buffers["running_var"]
    np.testing.assert_allclose(out, _loop_norm(x, rm[None], rv[None], eps, layer), rtol=1e-12, atol=1e-13)
    dout = r.standard_normal(x.shape)
    g = layer.params["gamma"]
    np.testing.assert_allclose(layer.backward(dout), dout * (g / np.sqrt(rv + eps))[None, :, None, None], rtol=1e-12)


def test_batch_norm2d_needs_two_values_per_channel_in_training() -> None:
    """N H W >= 2 is enough (torch's check), whichever axes hold them; N H W = 1 is refused."""
    layer = mbp.BatchNorm2d(2)
    for shape in [(1, 2, 2, 1), (1, 2, 1, 2), (2, 2, 1, 1)]:
        assert layer.forward(np.arange(np.prod(shape), dtype=np.float64).reshape(shape)).shape == shape
    with pytest.raises(ValueError, match=r"^BatchNorm2d: batch statistics need more than one value per channel"):
        layer.forward(np.zeros((1, 2, 1, 1)))


@pytest.mark.parametrize("seed", SEEDS)
def test_instance_norm2d_running_statistics_by_loops(seed: int) -> None:
    r = rng_of(seed, 2)
    N, C, H, W = int(r.integers(1, 4)), 2, 2, int(r.integers(2, 4))
    eps, momentum = float(r.choice([0.5, 2.0])), float(r.choice([0.3, 0.7]))
    layer = mbp.InstanceNorm2d(C, eps=eps, momentum=momentum, affine=bool(seed % 2), track_running_stats=True)
    _affine(layer, r, C)
    for step in range(2):
        x = r.standard_normal((N, C, H, W)) * 2 - 1
        rm, rv = layer.buffers["running_mean"].copy(), layer.buffers["running_var"].copy()
        out = layer.forward(x)
        mean = np.array([[x[n, c].mean() for c in range(C)] for n in range(N)])
        var = np.array([[((x[n, c] - mean[n, c]) ** 2).mean() for c in range(C)] for n in range(N)])
        np.testing.assert_allclose(
            out, _loop_norm(x, mean, var, eps, layer), rtol=1e-12, atol=1e-13, err_msg=f"seed {seed} step {step}"
        )
        L = H * W
        np.testing.assert_allclose(
            layer.buffers["running_mean"], (1 - momentum) * rm + momentum * mean.mean(axis=0), rtol=1e-13
        )
        np.testing.assert_allclose(
            layer.buffers["running_var"], (1 - momentum) * rv + momentum * (var * L / (L - 1)).mean(axis=0), rtol=1e-13
        )
    layer.eval()
    x = r.standard_normal((N, C, 1, 1))  # evaluation with running statistics: one element is fine
    rm, rv = layer.buffers["running_mean"], layer.buffers["running_var"]
    out = layer.forward(x)
    np.testing.assert_allclose(out, _loop_norm(x, np.tile(rm, (N, 1)), np.tile(rv, (N, 1)), eps, layer), rtol=1e-12)
    np.testing.assert_array_equal(layer.buffers["running_mean"], rm)
    dout = r.standard_normal(x.shape)
    g = layer.params["gamma"] if "gamma" in layer.params else np.ones(C)
    np.testing.assert_allclose(layer.backward(dout), dout * (g / np.sqrt(rv + eps))[None, :, None, None], rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_instance_and_group_norm_eps(seed: int) -> None:
    """An eps away from the default reaches the normalisation (no running statistics)."""
    r = rng_of(seed, 3)
    x = r.standard_normal((2, 4, 2, 3))
    eps = float(r.choice([0.25, 3.0]))
    mean = x.mean(axis=(2, 3))
    var = x.var(axis=(2, 3))
    inst = mbp.InstanceNorm2d(4, eps=eps)
    np.testing.assert_allclose(inst.forward(x), _loop_norm(x, mean, var, eps, inst), rtol=1e-12, atol=1e-13)
    group = mbp.GroupNorm(2, 4, eps=eps)
    _affine(group, r, 4)
    gm = np.repeat(x.reshape(2, 2, -1).mean(axis=2), 2, axis=1)
    gv = np.repeat(x.reshape(2, 2, -1).var(axis=2), 2, axis=1)
    np.testing.assert_allclose(group.forward(x), _loop_norm(x, gm, gv, eps, group), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_pure_pairs_defaults_are_torchs(seed: int) -> None:
    """Without hyperparameters: training, momentum 0.1, eps 1e-5 (BatchNorm2d); the input's statistics
    (InstanceNorm2d); one running statistic alone is no running statistics."""
    r = rng_of(seed, 4)
    x = r.standard_normal((2, 3, 2, 2))
    gamma, beta, rm, rv = r.standard_normal(3), r.standard_normal(3), r.standard_normal(3), r.random(3) + 0.5
    out, _, stats = norm2d.batch_norm2d_forward(x, gamma, beta, rm, rv)
    out_e, _, stats_e = norm2d.batch_norm2d_forward(x, gamma, beta, rm, rv, True, 0.1, 1e-5)
    np.testing.assert_array_equal(out, out_e)
    np.testing.assert_array_equal(stats[0], stats_e[0])
    np.testing.assert_array_equal(stats[1], stats_e[1])
    out, _, stats = norm2d.instance_norm2d_forward(x, gamma, beta, rm, rv)
    out_e, _, stats_e = norm2d.instance_norm2d_forward(x, gamma, beta, rm, rv, True, 0.1, 1e-5)
    np.testing.assert_array_equal(out, out_e)
    np.testing.assert_array_equal(stats[0], stats_e[0])
    np.testing.assert_array_equal(stats[1], stats_e[1])
    for only in [(rm, None), (None, rv)]:
        out1, _, none = norm2d.instance_norm2d_forward(x, gamma, beta, *only)
        assert none is None
        np.testing.assert_array_equal(out1, out)


ERRORS = [
    (lambda: mbp.BatchNorm2d(0), "BatchNorm2d: num_features must be a positive int"),
    (lambda: mbp.BatchNorm2d(2, momentum=float("nan")), "BatchNorm2d: momentum must be a finite number"),
    (lambda: mbp.BatchNorm2d(2, momentum=1.5), "BatchNorm2d: momentum must be in [0, 1]"),
    (lambda: mbp.BatchNorm2d(2, eps=0.0), "BatchNorm2d: eps must be a finite number > 0"),
    (lambda: mbp.InstanceNorm2d(0), "InstanceNorm2d: num_features must be a positive int"),
    (lambda: mbp.InstanceNorm2d(2, momentum="a"), "InstanceNorm2d: momentum must be a finite number"),
    (lambda: mbp.GroupNorm(0, 2), "GroupNorm: num_groups must be a positive int"),
    (lambda: mbp.GroupNorm(1, 0), "GroupNorm: num_channels must be a positive int"),
    (lambda: mbp.GroupNorm(1, 2, dtype=np.int32), "GroupNorm: dtype must be float32 or float64"),
]


@pytest.mark.parametrize(("call", "message"), ERRORS, ids=[m.split(" must")[0] for _, m in ERRORS])
def test_errors_name_the_layer_and_the_argument(call: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match="^" + re.escape(message)):
        call()  # type: ignore[operator]


def test_image_norms_set_up() -> None:
    """Momentum 0 and 1 are allowed (torch's range [0, 1]); InstanceNorm2d's default momentum is 0.1; a
    float32 layer keeps float32 running statistics; H W = 2 is enough for instance statistics; without
    affine there are no parameter gradients."""
    for momentum in (0.0, 1.0):
        assert mbp.BatchNorm2d(2, momentum=momentum).momentum == momentum
        assert mbp.InstanceNorm2d(2, momentum=momentum, track_running_stats=True).momentum == momentum
    assert mbp.InstanceNorm2d(2).config()["momentum"] == 0.1
    assert mbp.InstanceNorm2d(2, track_running_stats=True).momentum == 0.1
    for layer in (
        mbp.BatchNorm2d(2, dtype=np.float32),
        mbp.InstanceNorm2d(2, track_running_stats=True, dtype="float32"),
    ):
        assert {b.dtype for b in layer.buffers.values()} == {np.dtype(np.float32)}
    inst = mbp.InstanceNorm2d(2)
    for shape in [(1, 2, 1, 2), (1, 2, 2, 1)]:
        assert inst.forward(np.array([1.0, 2.0, 3.0, 5.0]).reshape(shape)).shape == shape
    with pytest.raises(ValueError, match=r"^InstanceNorm2d: instance statistics need more than one spatial element"):
        inst.forward(np.ones((3, 2, 1, 1)))
    with pytest.raises(ValueError, match=re.escape("InstanceNorm2d: input must be 4-D (N, 2, H, W), got shape")):
        inst.forward(np.ones((2, 2, 3)))
    r = rng_of(0, 5)
    group = mbp.GroupNorm(2, 4, affine=False)
    x = r.standard_normal((2, 4, 3))
    group.forward(x)
    group.backward(r.standard_normal(x.shape))
    assert group.grads == {}
    _, cache = norm2d.group_norm_forward(x, 2, None, None)
    assert norm2d.group_norm_backward(r.standard_normal(x.shape), cache)[1:] == (None, None)
    np.testing.assert_array_equal(
        norm2d.group_norm_forward(x, 2, None, None)[0], norm2d.group_norm_forward(x, 2, None, None, 1e-5)[0]
    )


def test_float32_image_norm_parameters() -> None:
    for layer in (mbp.BatchNorm2d(2, dtype=np.float32), mbp.GroupNorm(1, 2, dtype=np.float32)):
        assert {p.dtype for p in layer.params.values()} == {np.dtype(np.float32)}
