"""Conv2d (manual_bp/conv.py), with MaxPool2d and AvgPool2d where a test covers every windowed layer:
finite differences, hand-computed values, input handling, initialisation, save/load, bad input; then
Conv1d and ConvTranspose2d (the transpose of a Conv2d: its adjoint, by hand, torch's initialisation).

Every random case is rebuilt from its test id (layer name and seed). The parity tests are in
tests/crosscheck/test_conv.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import manual_bp as mbp
from manual_bp import conv
from manual_bp.gradcheck import gradcheck
from tests.helpers import case_rng
from tests.helpers.cnn import MAKERS
from tests.helpers.toolbox import CONVS

SEEDS = range(24)


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(MAKERS))
def test_gradcheck(name: str, seed: int) -> None:
    r = case_rng("conv/" + name, seed)
    layer, x = MAKERS[name](r, seed)
    x_before = x.copy()
    out = layer.forward(x)
    dout = r.standard_normal(out.shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok, f"{name} seed={seed} {layer!r} x.shape={x.shape}\n{result}"
    assert set(result.errors) == {"input", *layer.params}
    np.testing.assert_array_equal(x, x_before)


# ---------------------------------------------------------------- hand-computed values


def test_conv_is_cross_correlation() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    W = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, _ = conv.conv2d_forward(x, W, None)
    # out[0, 0] = 0*1 + 1*2 + 4*3 + 5*4 = 34 (a flipped kernel, true convolution, would give 16)
    expected = np.array([[34.0, 44.0, 54.0], [74.0, 84.0, 94.0], [114.0, 124.0, 134.0]])
    np.testing.assert_array_equal(out[0, 0], expected)
    out, _ = conv.conv2d_forward(x, np.array([[[[1.0, 0.0], [0.0, -1.0]]]]), np.array([0.5]))
    np.testing.assert_array_equal(out, np.full((1, 1, 3, 3), -5.0 + 0.5))


def test_conv_stride_padding_and_gradients_by_hand() -> None:
    x, W = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))
    out, cache = conv.conv2d_forward(x, W, np.zeros(1), stride=2, padding=1)
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 4.0))  # each corner window holds 4 real ones
    dx, dW, db = conv.conv2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # windows covering each pixel
    np.testing.assert_array_equal(dW[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # real pixels under each tap
    np.testing.assert_array_equal(db, [4.0])


def test_conv_groups_dilation_non_square() -> None:
    x = np.array([2.0, 3.0]).reshape(1, 2, 1, 1)
    out, _ = conv.conv2d_forward(x, np.array([5.0, 7.0]).reshape(2, 1, 1, 1), None, groups=2)
    np.testing.assert_array_equal(out.ravel(), [10.0, 21.0])  # each group sees only its own channel
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    out, cache = conv.conv2d_forward(x, np.array([[[[1.0, 10.0]]]]), None, dilation=(1, 2))
    np.testing.assert_array_equal(out.ravel(), [0 + 20, 1 + 30, 2 + 40])  # x[j] + 10 x[j + 2]
    dx, dW, _ = conv.conv2d_backward(np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3), cache)
    np.testing.assert_array_equal(dx.ravel(), [1, 2, 3 + 10, 20, 30])
    np.testing.assert_array_equal(dW.ravel(), [0 * 1 + 1 * 2 + 2 * 3, 2 * 1 + 3 * 2 + 4 * 3])


# ---------------------------------------------------------------- input handling


@pytest.mark.parametrize("name", list(MAKERS))
def test_read_only_non_contiguous_inputs_and_dout(name: str) -> None:
    r = case_rng("layout/" + name, 0)
    layer, x = MAKERS[name](r, 4)
    out = layer.forward(x)
    dout = r.standard_normal(out.shape)
    dx = layer.backward(dout)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    xf = np.asfortranarray(x)  # same values, another memory layout
    xs = np.zeros((*x.shape[:3], 2 * x.shape[3]))[..., ::2]  # strided
    xs[...] = x
    for xv in (xf, xs, x.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)):
        xv.setflags(write=False)
        before = xv.copy()
        np.testing.assert_allclose(layer.forward(xv), out, rtol=1e-14, atol=1e-14)
        dv = np.asfortranarray(dout)
        dv.setflags(write=False)
        np.testing.assert_allclose(layer.backward(dv), dx, rtol=1e-14, atol=1e-14)
        for k, v in layer.grads.items():
            np.testing.assert_allclose(v, grads[k], rtol=1e-14, atol=1e-14)
        np.testing.assert_array_equal(xv, before)
        np.testing.assert_array_equal(dv, np.asfortranarray(dout))


@pytest.mark.parametrize("name", list(MAKERS))
def test_float32_stays_float32(name: str) -> None:
    r = case_rng("f32/" + name, 1)
    layer, x = MAKERS[name](r, 5)
    arch = mbp.architecture(layer)
    if "dtype" in arch["config"]:
        arch["config"]["dtype"] = "float32"
    layer32 = mbp.build(arch)
    out = layer32.forward(x.astype(np.float32))
    assert out.dtype == np.float32
    dx = layer32.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in layer32.grads.values())


def test_conv_without_input_grad_gives_the_same_parameter_gradients() -> None:
    r = np.random.default_rng(3)
    layer = mbp.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, rng=r)
    x = r.standard_normal((2, 2, 5, 6))
    dout = r.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    full = {k: v.copy() for k, v in layer.grads.items()}
    assert dx.shape == x.shape and layer.backward(dout, input_grad=False) is None
    for k, v in full.items():
        np.testing.assert_array_equal(layer.grads[k], v)


def test_conv_init_like_torch() -> None:
    layer = mbp.Conv2d(6, 8, (3, 2), groups=2, rng=0)
    bound = 1 / np.sqrt(3 * 3 * 2)  # fan_in = in_channels / groups * kH * kW
    assert layer.params["W"].shape == (8, 3, 3, 2) and layer.params["b"].shape == (8,)
    for p in layer.params.values():
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    np.testing.assert_array_equal(mbp.Conv2d(6, 8, (3, 2), groups=2, rng=0).params["W"], layer.params["W"])


def test_save_load_and_build_round_trip(tmp_path) -> None:
    r = np.random.default_rng(2)
    model = mbp.Sequential(
        mbp.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), rng=r),
        mbp.ReLU(),
        mbp.MaxPool2d(2, 1, 1, dilation=2),
        mbp.Conv2d(4, 4, 1, groups=4, bias=False, rng=r),
        mbp.AvgPool2d((2, 1), padding=(1, 0), count_include_pad=False),
        mbp.Flatten(),
    )
    x = r.standard_normal((2, 3, 7, 8))
    features = model.forward(x).shape[1]
    model.layers.append(mbp.Linear(features, 3, rng=r))
    model = mbp.Sequential(*model.layers)
    back = mbp.load(mbp.save(tmp_path / "cnn.npz", model))
    assert mbp.architecture(back) == mbp.architecture(model)
    assert sorted(back.state_dict()) == ["0.W", "0.b", "3.W", "6.W", "6.b"]
    np.testing.assert_array_equal(back.forward(x), model.forward(x))
    rebuilt = mbp.build(mbp.architecture(model))
    assert [layer.config() for layer in rebuilt] == [layer.config() for layer in model]
    for layer in model:
        assert type(layer)(**layer.config()).config() == layer.config()


# ---------------------------------------------------------------- bad input


BAD = [
    (
        lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((3, 5, 5))),
        ValueError,
        "Conv2d: input must be 4-D (N, 3, H, W), got shape (3, 5, 5) (3-D)",
    ),
    (
        lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 2, 5, 5))),
        ValueError,
        "Conv2d: expected input (N, 3, H, W), got shape (2, 2, 5, 5): axis 1 must hold the 3 input channels",
    ),
    (
        lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 3, 5, 5), np.float32)),
        TypeError,
        "Conv2d: input dtype float32 does not match the parameters' dtype float64",
    ),
    (
        lambda: mbp.Conv2d(3, 4, 3).forward(np.ones((2, 3, 5, 5), np.int64)),
        TypeError,
        "Conv2d: input must have dtype float32 or float64, got int64",
    ),
    (
        lambda: mbp.Conv2d(1, 1, (3, 5), padding=(0, 1), dilation=(1, 2)).forward(np.ones((1, 1, 3, 4))),
        ValueError,
        "Conv2d: the kernel (3, 5) with dilation (1, 2) spans (3, 9), larger than the padded input (3, 6) "
        "(input shape (1, 1, 3, 4), padding (0, 1))",
    ),
    (
        lambda: mbp.Conv2d(4, 6, 3, groups=4),
        ValueError,
        "Conv2d: groups=4 must divide in_channels=4 and out_channels=6",
    ),
    (lambda: mbp.Conv2d(3, 4, 3, stride=0), ValueError, "Conv2d: stride must be an int >= 1 or a pair of them, got 0"),
    (lambda: mbp.Conv2d(3, 4, (1, 2, 3)), ValueError, "Conv2d: kernel_size must be an int >= 1 or a pair of them"),
    (lambda: mbp.Conv2d(3, 4, 3, padding=-1), ValueError, "Conv2d: padding must be an int >= 0 or a pair of them"),
    (lambda: mbp.Conv2d(0, 4, 3), ValueError, "Conv2d: in_channels must be a positive int, got 0"),
    (
        lambda: mbp.MaxPool2d(2, padding=2),
        ValueError,
        "MaxPool2d: padding (2, 2) must be at most half the kernel (2, 2)",
    ),
    (
        lambda: mbp.AvgPool2d((3, 1), padding=(1, 1)),
        ValueError,
        "AvgPool2d: padding (1, 1) must be at most half the kernel (3, 1)",
    ),
    (
        lambda: mbp.MaxPool2d(3).forward(np.ones((1, 2, 2, 5))),
        ValueError,
        "MaxPool2d: the kernel (3, 3) with dilation (1, 1) spans (3, 3), larger than the padded input (2, 5)",
    ),
    (
        lambda: mbp.MaxPool2d(2, 1, 1, dilation=3).forward(np.ones((1, 1, 2, 2))),
        ValueError,
        "MaxPool2d: window 0 along H lies entirely in the padding for input shape (1, 1, 2, 2)",
    ),
    (
        lambda: mbp.AvgPool2d(2).forward(np.ones((4, 4))),
        ValueError,
        "AvgPool2d: input must be 4-D (N, C, H, W), got shape (4, 4) (2-D)",
    ),
    (lambda: mbp.AvgPool2d(2).forward(np.ones((0, 1, 4, 4))), ValueError, "AvgPool2d: input is empty"),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(BAD)]
)
def test_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()


def test_error_names_the_layer_in_a_model() -> None:
    model = mbp.Sequential(mbp.Conv2d(1, 2, 3, rng=0), mbp.MaxPool2d(2), mbp.Conv2d(3, 1, 1, rng=0))
    with pytest.raises(ValueError, match=re.escape("Conv2d '2': expected input (N, 3, H, W), got shape (1, 2, 2, 2)")):
        model.forward(np.ones((1, 1, 6, 6)))
    with pytest.raises(ValueError, match=re.escape("Conv2d '0': dout (same as the forward output) must have shape")):
        model.layers[0].backward(np.ones((1, 2, 3, 3)))


# ---------------------------------------------------------------- Conv1d and ConvTranspose2d


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("name", list(CONVS))
def test_conv1d_and_transposed_gradcheck(name: str, seed: int) -> None:
    """Finite differences in float64 (max relative error <= 1e-6), random upstream gradient, batch and width 1."""
    r = case_rng("conv/" + name, seed)
    layer, x = CONVS[name](r, seed)
    x_before = x.copy()
    dout = r.standard_normal(layer.forward(x).shape) * float(r.choice([0.1, 1.0, 10.0]))
    result = gradcheck(layer, None, x, dout=dout)
    assert result.ok and result.max_error <= 1e-6, f"{name} seed={seed} {layer!r} x.shape={x.shape}\n{result}"
    assert set(result.errors) == {"input", *layer.params}
    np.testing.assert_array_equal(x, x_before)


def test_conv1d_is_conv2d_on_one_row() -> None:
    r = np.random.default_rng(5)
    c1 = mbp.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, rng=r)
    c2 = mbp.Conv2d(4, 6, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2), groups=2, rng=0)
    c2.params["W"][...], c2.params["b"][...] = c1.params["W"][:, :, None, :], c1.params["b"]
    x, dout = r.standard_normal((2, 4, 9)), r.standard_normal((2, 6, 4))
    np.testing.assert_array_equal(c1.forward(x), c2.forward(x[:, :, None, :])[:, :, 0, :])
    np.testing.assert_array_equal(c1.backward(dout), c2.backward(dout[:, :, None, :])[:, :, 0, :])
    np.testing.assert_array_equal(c1.grads["W"], c2.grads["W"][:, :, 0, :])
    assert c1.params["W"].shape == (6, 2, 3) and c1.config()["kernel_size"] == 3


def test_conv_transpose_is_the_adjoint_of_conv2d() -> None:
    """<conv2d(y; W), x> = <y, conv_transpose2d(x; W)> for the same weight, stride, padding, dilation, groups:
    torch's ConvTranspose2d weight (C_in, C_out / groups, kH, kW) is the adjoint Conv2d's own."""
    r = np.random.default_rng(6)
    W = r.standard_normal((4, 3, 2, 3))  # ConvTranspose2d(4 -> 6, groups=2); Conv2d(6 -> 4, groups=2)
    x = r.standard_normal((2, 4, 3, 4))
    out, _ = conv.conv_transpose2d_forward(x, W, None, (2, 1), (1, 0), (1, 0), 2, (1, 2))
    y = r.standard_normal(out.shape)
    conv_y, _ = conv.conv2d_forward(y, W, None, (2, 1), (1, 0), (1, 2), 2)
    np.testing.assert_allclose(np.vdot(conv_y[:, :, :3, :4], x), np.vdot(y, out), rtol=1e-12)


def test_conv_transpose_scatters_at_the_stride_by_hand() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    W = np.array([[1.0, 10.0], [100.0, 1000.0]]).reshape(1, 1, 2, 2)
    out, cache = conv.conv_transpose2d_forward(x, W, np.array([0.5]), stride=2)
    expected = np.kron(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 10.0], [100.0, 1000.0]])) + 0.5
    np.testing.assert_array_equal(out[0, 0], expected)  # stride = kernel: disjoint tiles
    out, _ = conv.conv_transpose2d_forward(x, W, None, stride=1, padding=0, output_padding=0)
    np.testing.assert_array_equal(out[0, 0], [[1, 12, 20], [103, 1234, 2040], [300, 3400, 4000]])  # overlaps add
    out, _ = conv.conv_transpose2d_forward(x, W, None, stride=2, padding=1, output_padding=1)
    assert out.shape == (1, 1, 3, 3)  # (2 - 1) 2 - 2 + (2 - 1) + 1 + 1
    np.testing.assert_array_equal(
        out[0, 0], expected[1:, 1:] - 0.5
    )  # no bias; the padding crops the first row and column
    dx, dW, db = conv.conv_transpose2d_backward(np.ones((1, 1, 4, 4)), cache)
    np.testing.assert_array_equal(dx[0, 0], np.full((2, 2), 1111.0))  # each pixel reaches every kernel tap
    np.testing.assert_array_equal(dW[0, 0], np.full((2, 2), 10.0))  # each tap sees every pixel once
    np.testing.assert_array_equal(db, [16.0])


def test_conv_transpose_init_and_output_size_like_torch() -> None:
    layer = mbp.ConvTranspose2d(6, 4, (3, 2), stride=2, output_padding=1, groups=2, rng=0)
    bound = 1 / np.sqrt(2 * 3 * 2)  # torch's fan_in of this weight: out_channels / groups * kH * kW
    assert layer.params["W"].shape == (6, 2, 3, 2) and layer.params["b"].shape == (4,)
    for p in layer.params.values():
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.7 * bound
    assert layer.out_shape(5, 7) == ((5 - 1) * 2 + 2 + 1 + 1, (7 - 1) * 2 + 1 + 1 + 1)
    x = np.random.default_rng(7).standard_normal((2, 6, 5, 7))
    dout = np.ones_like(layer.forward(x))
    layer.backward(dout)
    full = {k: v.copy() for k, v in layer.grads.items()}
    assert layer.backward(dout, input_grad=False) is None
    for k, v in full.items():
        np.testing.assert_array_equal(layer.grads[k], v)


def test_new_convolutions_save_load_and_rebuild(tmp_path) -> None:
    r = np.random.default_rng(8)
    model = mbp.Sequential(mbp.Conv1d(3, 4, 3, padding=1, groups=1, rng=r), mbp.Tanh(), mbp.Flatten())
    image = mbp.Sequential(mbp.ConvTranspose2d(2, 4, 3, 2, 1, 1, 2, False, 1, rng=r), mbp.ReLU())
    for m, x in ((model, r.standard_normal((2, 3, 5))), (image, r.standard_normal((2, 2, 3, 3)))):
        back = mbp.load(mbp.save(tmp_path / "m.npz", m))
        assert mbp.architecture(back) == mbp.architecture(m)
        np.testing.assert_array_equal(back.forward(x), m.forward(x))
        for layer in m:
            assert type(layer)(**layer.config()).config() == layer.config()


CONV_BAD = [
    (
        lambda: mbp.Conv1d(3, 4, 3).forward(np.ones((2, 3, 5, 5))),
        ValueError,
        "Conv1d: input must be 3-D (N, 3, L), got shape (2, 3, 5, 5) (4-D)",
    ),
    (
        lambda: mbp.Conv1d(3, 4, 3).forward(np.ones((2, 2, 5))),
        ValueError,
        "Conv1d: expected input (N, 3, L), got shape (2, 2, 5): axis 1 must hold the 3 input channels",
    ),
    (
        lambda: mbp.Conv1d(1, 1, 3, dilation=2).forward(np.ones((1, 1, 4))),
        ValueError,
        "Conv1d: the kernel 3 with dilation 2 spans 5, longer than the padded input 4 (input shape (1, 1, 4), "
        "padding 0)",
    ),
    (lambda: mbp.Conv1d(3, 4, (2, 2)), ValueError, "Conv1d: kernel_size must be an int >= 1, got (2, 2)"),
    (
        lambda: mbp.Conv1d(4, 6, 3, groups=4),
        ValueError,
        "Conv1d: groups=4 must divide in_channels=4 and out_channels=6",
    ),
    (
        lambda: mbp.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2),
        ValueError,
        "ConvTranspose2d: output_padding (2, 2) must be smaller than either the stride (2, 2) or the dilation (1, 1)",
    ),
    (
        lambda: mbp.ConvTranspose2d(2, 2, 1, padding=1).forward(np.ones((1, 2, 2, 2))),
        ValueError,
        "ConvTranspose2d: the output would be (0, 0) for input shape (1, 2, 2, 2)",
    ),
    (
        lambda: mbp.ConvTranspose2d(2, 2, 3).forward(np.ones((1, 3, 2, 2))),
        ValueError,
        "ConvTranspose2d: expected input (N, 2, H, W), got shape (1, 3, 2, 2): axis 1 must hold the 2 input channels",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), CONV_BAD, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(CONV_BAD)]
)
def test_new_convolutions_bad_input(call: Callable[[], object], exc: type, message: str) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        call()
