"""LayerNorm and BatchNorm1d (manual_bp/norm.py): the running statistics follow torch's momentum and
unbiased variance; evaluation never updates them. RMSNorm (norm.py), BatchNorm2d, GroupNorm and InstanceNorm2d
(norm2d.py): finite differences, torch's formulas and running statistics, bad input.

Finite differences, dtypes and bad input of LayerNorm and BatchNorm1d are in tests/kinds/test_new_layers.py; the
parity tests of the new norms are in tests/crosscheck/test_norms.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp.gradcheck import gradcheck
from tests.helpers import case_rng
from tests.helpers.toolbox import NORMS


def test_batch_norm_running_statistics_follow_torch_momentum() -> None:
    r = np.random.default_rng(0)
    bn, x = mbp.BatchNorm1d(3, momentum=0.1), r.standard_normal((5, 3))
    bn.forward(x)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-15)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-15)
    out = bn.forward(x)  # normalised with the biased variance
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-13)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    bn.eval().forward(x)
    assert all(np.array_equal(before[k], bn.buffers[k]) for k in before)  # eval never updates


# ---------------------------------------------------------------- RMSNorm and the image norms (manual_bp/norm2d.py)

SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(NORMS))
def test_image_and_rms_norms_gradcheck(name: str, seed: int) -> None:
    """Finite differences in float64 (max relative error <= 1e-6) with a random upstream gradient, in training
    and evaluation, with and without affine parameters and running statistics, batch of 1 and width of 1."""
    r = case_rng("norm/" + name, seed)
    layer, x = NORMS[name](r, seed)
    x_before = x.copy()
    dout = r.standard_normal(layer.forward(x).shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok and result.max_error <= 1e-6, f"{name} seed={seed} {layer!r} x.shape={x.shape}\n{result}"
    assert set(result.errors) == {"input", *layer.params}
    np.testing.assert_array_equal(x, x_before)


def test_rms_norm_as_torch() -> None:
    """out = x * rsqrt(mean(x^2) + eps) * gamma; eps=None is the dtype's machine epsilon (float32's for float32)."""
    r = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        layer = mbp.RMSNorm(3, dtype=dtype)
        layer.params["gamma"][:] = [2.0, -1.0, 0.5]
        x = (1e-4 * r.standard_normal((4, 3))).astype(dtype)  # small: eps shows
        eps = np.finfo(dtype).eps
        expected = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * layer.params["gamma"]
        np.testing.assert_allclose(layer.forward(x), expected, rtol=10 * eps)
        assert layer.forward(x).dtype == dtype
    assert "beta" not in mbp.RMSNorm(3).params and mbp.RMSNorm(3, elementwise_affine=False).params == {}
    layer = mbp.RMSNorm(2, eps=0.5, elementwise_affine=False)
    np.testing.assert_allclose(layer.forward(np.array([[1.0, 1.0]])), [[1 / np.sqrt(1.5)] * 2], rtol=1e-15)


def test_batch_norm2d_is_batch_norm1d_over_pixels_with_torch_running_statistics() -> None:
    r = np.random.default_rng(2)
    x = r.standard_normal((3, 2, 4, 5))
    bn = mbp.BatchNorm2d(2, momentum=0.25)
    out = bn.forward(x)
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(out, (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5), rtol=1e-13)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.25 * mu, rtol=1e-14)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.75 + 0.25 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-14)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    out = bn.eval().forward(x)  # evaluation: the running statistics, unchanged
    rm, rv = before["running_mean"][:, None, None], before["running_var"][:, None, None]
    np.testing.assert_allclose(out, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-13)
    assert all(np.array_equal(before[k], bn.buffers[k]) for k in before)
    free = mbp.BatchNorm2d(2, track_running_stats=False).eval()  # no running statistics: the batch's, always
    assert free.buffers == {}
    np.testing.assert_allclose(free.forward(x), bn.train().forward(x), rtol=1e-15)


def test_instance_norm2d_running_statistics_average_the_instances() -> None:
    r = np.random.default_rng(3)
    x = r.standard_normal((4, 3, 2, 5))
    inn = mbp.InstanceNorm2d(3, momentum=0.5, track_running_stats=True)
    out = inn.forward(x)
    mu, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-13)
    np.testing.assert_allclose(inn.buffers["running_mean"], 0.5 * mu.mean(axis=(0, 2, 3)), rtol=1e-14)
    unbiased = x.var(axis=(2, 3), ddof=1).mean(axis=0)
    np.testing.assert_allclose(inn.buffers["running_var"], 0.5 + 0.5 * unbiased, rtol=1e-14)
    assert mbp.InstanceNorm2d(3).buffers == {} and mbp.InstanceNorm2d(3).params == {}  # torch's defaults
    plain = mbp.InstanceNorm2d(3).eval()  # no running statistics: the instance's own in evaluation too
    np.testing.assert_allclose(plain.forward(x), out, rtol=1e-15)


def test_group_norm_groups_consecutive_channels() -> None:
    r = np.random.default_rng(4)
    x = r.standard_normal((2, 6, 3))  # (N, C, L): any trailing axes
    gn = mbp.GroupNorm(3, 6)
    gn.params["gamma"][:], gn.params["beta"][:] = np.arange(6.0), -np.arange(6.0)
    xg = x.reshape(2, 3, 6)  # channels (0, 1), (2, 3), (4, 5) together
    xhat = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(gn.forward(x), xhat * np.arange(6.0)[:, None] - np.arange(6.0)[:, None], rtol=1e-13)
    one = mbp.GroupNorm(1, 6)  # one group: LayerNorm over (C, L)
    ln = mbp.LayerNorm(18)
    np.testing.assert_allclose(one.forward(x).reshape(2, 18), ln.forward(x.reshape(2, 18)), rtol=1e-13)


NORM_BAD = [
    (
        lambda: mbp.BatchNorm2d(2).forward(np.ones((1, 2, 1, 1))),
        ValueError,
        "BatchNorm2d: batch statistics need more than one value per channel, got input shape (1, 2, 1, 1)",
    ),
    (
        lambda: mbp.BatchNorm2d(2).forward(np.ones((3, 2, 4))),
        ValueError,
        "BatchNorm2d: input must be 4-D (N, 2, H, W), got shape (3, 2, 4) (3-D)",
    ),
    (
        lambda: mbp.InstanceNorm2d(2).forward(np.ones((3, 2, 1, 1))),
        ValueError,
        "InstanceNorm2d: instance statistics need more than one spatial element, got input shape (3, 2, 1, 1)",
    ),
    (
        lambda: mbp.GroupNorm(2, 4).forward(np.ones((1, 2))),
        ValueError,
        "GroupNorm: expected input (N, 4, *), got shape (1, 2): axis 1 must hold the 4 channels",
    ),
    (
        lambda: mbp.GroupNorm(4, 4).forward(np.ones((1, 4))),
        ValueError,
        "GroupNorm: expected more than one value per group over the batch, got input shape (1, 4) with 4 groups",
    ),
    (lambda: mbp.GroupNorm(3, 4), ValueError, "GroupNorm: num_channels=4 must be divisible by num_groups=3"),
    (lambda: mbp.RMSNorm(3).forward(np.ones((2, 4))), ValueError, "RMSNorm: expected input (..., 3), got shape (2, 4)"),
    (lambda: mbp.RMSNorm(3, eps=0.0), ValueError, "RMSNorm: eps must be a finite number > 0, got 0.0"),
    (
        lambda: mbp.InstanceNorm2d(2, affine=True).forward(np.ones((2, 2, 3, 3), np.float32)),
        TypeError,
        "InstanceNorm2d: input dtype float32 does not match the parameters' dtype float64",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), NORM_BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(NORM_BAD)]
)
def test_image_and_rms_norm_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()
