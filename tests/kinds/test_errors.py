"""Bad inputs raise ValueError / TypeError naming the layer and both what was expected and what came."""

from __future__ import annotations

import re

import numpy as np
import pytest

import manual_bp as mbp


def net() -> mbp.Sequential:
    return mbp.Sequential(mbp.Linear(2, 3, rng=0), mbp.ReLU(), mbp.Linear(3, 2, rng=1))


def esc(s: str) -> str:
    return re.escape(s)


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("x", "exc", "pattern"),
    [
        (np.zeros((4, 3)), ValueError, esc("Linear '0': expected input (N, ..., 2), got shape (4, 3)")),
        (np.zeros((4, 1)), ValueError, esc("Linear '0': expected input (N, ..., 2), got shape (4, 1)")),
        (np.zeros(2), ValueError, esc("Linear '0': input must have at least 2 dimension(s), got shape (2,)")),
        (
            np.zeros((0, 2)),
            ValueError,
            esc("Linear '0': input is empty (shape (0, 2)); pass at least one sample"),
        ),
        (
            np.zeros((4, 2), np.int64),
            TypeError,
            esc("Linear '0': input must have dtype float32 or float64, got int64"),
        ),
        (
            np.zeros((4, 2), np.float16),
            TypeError,
            esc("Linear '0': input must have dtype float32 or float64, got float16"),
        ),
        (
            np.zeros((4, 2), np.float32),
            TypeError,
            esc("Linear '0': input dtype float32 does not match the parameters' dtype float64"),
        ),
        (
            [[1.0, 2.0]],
            TypeError,
            esc("Linear '0': input must be a numpy.ndarray of float32 or float64, got list"),
        ),
    ],
    ids=["features", "features1", "rank1", "empty", "int64", "float16", "float32-into-float64", "list"],
)
def test_bad_input(x: object, exc: type, pattern: str) -> None:
    model = net()
    with pytest.raises(exc, match=pattern):
        model.forward(x)


def test_error_names_the_layer_deep_in_the_model() -> None:
    model = mbp.Sequential(mbp.Linear(2, 3, rng=0), mbp.Tanh(), mbp.Sequential(mbp.Linear(4, 2, rng=1)))
    with pytest.raises(ValueError, match=esc("Linear '2.0': expected input (N, ..., 4), got shape (5, 3)")):
        model.forward(np.zeros((5, 2)))


def test_float64_input_into_float32_model() -> None:
    model = mbp.Sequential(mbp.Linear(2, 3, rng=0, dtype=np.float32))
    with pytest.raises(
        TypeError, match=esc("Linear '0': input dtype float64 does not match the parameters' dtype float32")
    ):
        model.forward(np.zeros((1, 2)))


@pytest.mark.parametrize("layer", [mbp.ReLU(), mbp.Softmax(), mbp.GELU()], ids=repr)
def test_elementwise_layers_reject_bad_inputs(layer: mbp.Module) -> None:
    name = type(layer).__name__
    with pytest.raises(TypeError, match=esc(f"{name}: input must have dtype float32 or float64, got int64")):
        layer.forward(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=esc(f"{name}: input is empty (shape (2, 0))")):
        layer.forward(np.zeros((2, 0)))


# ---------------------------------------------------------------- labels and targets

Z = np.zeros((4, 3))


@pytest.mark.parametrize(
    ("y", "exc", "pattern"),
    [
        (
            np.array([0, 1, 3, 2]),
            ValueError,
            esc("SoftmaxCrossEntropy: labels must lie in [0, 3), got min 0, max 3"),
        ),
        (
            np.array([0, -1, 2, 2]),
            ValueError,
            esc("SoftmaxCrossEntropy: labels must lie in [0, 3), got min -1, max 2"),
        ),
        (
            np.array([0.0, 1.0, 2.0, 1.0]),
            TypeError,
            esc("SoftmaxCrossEntropy: integer labels must have an integer dtype, got float64"),
        ),
        (
            np.array([True, False, True, True]),
            TypeError,
            esc("integer labels must have an integer dtype, got bool"),
        ),
        (np.array([0, 1, 2]), ValueError, esc("SoftmaxCrossEntropy: 3 labels for a batch of 4 logits")),
        (
            np.zeros((4, 1), np.int64),
            ValueError,
            esc("SoftmaxCrossEntropy: integer labels must be 1-D (N,)=(4,), got shape (4, 1)"),
        ),
        (
            np.zeros((4, 2)),
            ValueError,
            esc("SoftmaxCrossEntropy: target (same as the predictions) must have shape (4, 3), got (4, 2)"),
        ),
        (
            np.zeros((3, 3)),
            ValueError,
            esc("SoftmaxCrossEntropy: target (same as the predictions) must have shape (4, 3), got (3, 3)"),
        ),
        (
            np.zeros((4, 3, 1)),
            ValueError,
            esc("SoftmaxCrossEntropy: target must be (N,)=(4,) labels or (N, C)=(4, 3) probabilities")
            + esc(", got shape (4, 3, 1)"),
        ),
        (
            np.zeros((4, 3), np.float32),
            TypeError,
            esc("SoftmaxCrossEntropy: target dtype float32 does not match the predictions' dtype float64"),
        ),
        ([0, 1, 2, 0], TypeError, esc("SoftmaxCrossEntropy: target must be a numpy.ndarray") + ".*got list"),
    ],
    ids=[
        "too-large",
        "negative",
        "float-labels",
        "bool-labels",
        "wrong-length",
        "int-2d",
        "probs-wrong-C",
        "probs-wrong-N",
        "3d",
        "probs-dtype",
        "list",
    ],
)
def test_bad_labels(y: object, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        mbp.SoftmaxCrossEntropy().forward(Z, y)


@pytest.mark.parametrize(
    ("z", "exc", "pattern"),
    [
        (np.zeros((0, 3)), ValueError, esc("SoftmaxCrossEntropy: predictions is empty (shape (0, 3))")),
        (np.zeros(3), ValueError, esc("SoftmaxCrossEntropy: predictions must be 2-D, got shape (3,) (1-D)")),
        (
            np.zeros((4, 3), np.float16),
            TypeError,
            esc("SoftmaxCrossEntropy: predictions must have dtype float32 or float64, got float16"),
        ),
        (
            np.zeros((4, 3), np.int64),
            TypeError,
            esc("SoftmaxCrossEntropy: predictions must have dtype float32 or float64, got int64"),
        ),
    ],
    ids=["empty", "1-D", "float16", "int64"],
)
def test_bad_logits(z: np.ndarray, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        mbp.SoftmaxCrossEntropy().forward(z, np.zeros(len(z), np.int64))


@pytest.mark.parametrize("loss", [mbp.MSE(), mbp.BCEWithLogits()], ids=repr)
def test_elementwise_loss_targets(loss: mbp.Loss) -> None:
    name = type(loss).__name__
    with pytest.raises(
        ValueError, match=esc(f"{name}: target (same as the predictions) must have shape (4, 3), got (4, 2)")
    ):
        loss.forward(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(
        TypeError, match=esc(f"{name}: target dtype float32 does not match the predictions' dtype float64")
    ):
        loss.forward(np.zeros((4, 3)), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=esc(f"{name}: predictions is empty (shape (0, 3))")):
        loss.forward(np.zeros((0, 3)), np.zeros((0, 3)))


def test_bce_targets_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=esc("BCEWithLogits: targets must lie in [0, 1]")):
        mbp.BCEWithLogits().forward(np.zeros((2, 2)), np.array([[0.0, 1.0], [1.5, 0.5]]))


# ---------------------------------------------------------------- order of calls and upstream gradients


def test_backward_before_forward() -> None:
    assert issubclass(mbp.StateError, ValueError)
    with pytest.raises(mbp.StateError, match=esc("Linear: backward() called before forward()")):
        mbp.Linear(2, 3, rng=0).backward(np.zeros((1, 3)))
    with pytest.raises(mbp.StateError, match=esc("Sequential: backward() called before forward()")):
        net().backward(np.zeros((1, 2)))
    with pytest.raises(mbp.StateError, match=esc("ReLU: backward() called before forward()")):
        mbp.ReLU().backward(np.zeros((1, 2)))
    with pytest.raises(mbp.StateError, match=esc("SoftmaxCrossEntropy: backward() called before forward()")):
        mbp.SoftmaxCrossEntropy().backward()
    model = net()
    with pytest.raises(ValueError):  # StateError is a ValueError: callers catching ValueError see it
        model.backward(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("dout", "exc", "pattern"),
    [
        (
            np.zeros((4, 3)),
            ValueError,
            esc("Linear '2': dout (same as the forward output) must have shape (4, 2), got (4, 3)"),
        ),
        (
            np.zeros((2, 2)),
            ValueError,
            esc("Linear '2': dout (same as the forward output) must have shape (4, 2), got (2, 2)"),
        ),
        (
            np.zeros((4, 2), np.float32),
            TypeError,
            esc("Linear '2': dout dtype float32 does not match the forward output dtype float64"),
        ),
        (
            np.zeros((4, 2), np.int64),
            TypeError,
            esc("Linear '2': dout must have dtype float32 or float64, got int64"),
        ),
        (
            [[0.0, 0.0]] * 4,
            TypeError,
            esc("Linear '2': dout must be a numpy.ndarray of float32 or float64, got list"),
        ),
    ],
    ids=["shape-features", "shape-batch", "float32", "int64", "list"],
)
def test_bad_dout(dout: object, exc: type, pattern: str) -> None:
    model = net()
    model.forward(np.zeros((4, 2)))
    with pytest.raises(exc, match=pattern):
        model.backward(dout)


@pytest.mark.parametrize("dloss", [np.ones(2), float("nan"), float("inf"), "1"], ids=repr)
def test_bad_dloss(dloss: object) -> None:
    loss = mbp.MSE()
    loss.forward(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="MSE: dloss must be a finite scalar"):
        loss.backward(dloss)


# ---------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize(
    ("make", "exc", "pattern"),
    [
        (lambda: mbp.Linear(0, 3), ValueError, esc("Linear: in_features must be a positive int, got 0")),
        (lambda: mbp.Linear(2, -1), ValueError, esc("Linear: out_features must be a positive int, got -1")),
        (lambda: mbp.Linear(2.0, 3), ValueError, esc("Linear: in_features must be a positive int, got 2.0")),
        (
            lambda: mbp.Linear(True, 3),
            ValueError,
            esc("Linear: in_features must be a positive int, got True"),
        ),
        (
            lambda: mbp.Linear(2, 3, dtype=np.float16),
            TypeError,
            esc("Linear: dtype must be float32 or float64, got float16"),
        ),
        (lambda: mbp.Linear(2, 3, init="he"), ValueError, esc("Linear: unknown init 'he'; choose one of")),
        (
            lambda: mbp.Linear(2, 3, rng="x"),
            TypeError,
            esc("Linear: rng must be a numpy.random.Generator or an int seed"),
        ),
        (
            lambda: mbp.LeakyReLU("a"),
            ValueError,
            esc("LeakyReLU: negative_slope must be a finite number, got 'a'"),
        ),
        (
            lambda: mbp.LeakyReLU(float("nan")),
            ValueError,
            esc("LeakyReLU: negative_slope must be a finite number, got nan"),
        ),
        (lambda: mbp.ELU(None), ValueError, esc("ELU: alpha must be a finite number, got None")),
        (lambda: mbp.GELU("foo"), ValueError, esc("GELU: approximate must be 'none' or 'tanh', got 'foo'")),
        (lambda: mbp.Softplus(beta=0), ValueError, esc("Softplus: beta must be a finite number > 0, got 0")),
        (
            lambda: mbp.Softplus(beta=-1.0),
            ValueError,
            esc("Softplus: beta must be a finite number > 0, got -1.0"),
        ),
        (
            lambda: mbp.Softplus(threshold="x"),
            ValueError,
            esc("Softplus: threshold must be a finite number, got 'x'"),
        ),
        (
            lambda: mbp.SoftmaxCrossEntropy(label_smoothing=1.5),
            ValueError,
            esc("SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got 1.5"),
        ),
        (
            lambda: mbp.SoftmaxCrossEntropy(label_smoothing=-0.1),
            ValueError,
            esc("SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got -0.1"),
        ),
        (
            lambda: mbp.SoftmaxCrossEntropy(reduction="avg"),
            ValueError,
            esc("SoftmaxCrossEntropy: reduction must be one of ('mean', 'sum'), got 'avg'"),
        ),
        (
            lambda: mbp.MSE(reduction="avg"),
            ValueError,
            esc("MSE: reduction must be one of ('mean', 'sum'), got 'avg'"),
        ),
        (
            lambda: mbp.BCEWithLogits(reduction="none"),
            ValueError,
            esc("BCEWithLogits: reduction must be one of ('mean', 'sum'), got 'none'"),
        ),
        (
            lambda: mbp.Sequential(mbp.ReLU(), 3),
            TypeError,
            esc("Sequential: item 1 is a int, not a manual_bp layer"),
        ),
    ],
    ids=[
        "Linear(0,3)",
        "Linear(2,-1)",
        "Linear(2.0,3)",
        "Linear(True,3)",
        "Linear-float16",
        "Linear-init",
        "Linear-rng",
        "LeakyReLU('a')",
        "LeakyReLU(nan)",
        "ELU(None)",
        "GELU('foo')",
        "Softplus(beta=0)",
        "Softplus(beta=-1)",
        "Softplus(threshold='x')",
        "CE(ls=1.5)",
        "CE(ls=-0.1)",
        "CE(avg)",
        "MSE(avg)",
        "BCE(none)",
        "Sequential(3)",
    ],
)
def test_bad_hyperparameters(make: object, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        make()  # type: ignore[operator]


def test_same_layer_twice_in_a_model() -> None:
    relu = mbp.ReLU()
    with pytest.raises(ValueError, match="Sequential: the same layer instance appears twice"):
        mbp.Sequential(mbp.Linear(2, 2, rng=0), relu, relu)


def test_empty_model() -> None:
    with pytest.raises(ValueError, match="Sequential: the model has no layers"):
        mbp.Sequential().forward(np.zeros((1, 2)))


def test_failed_forward_leaves_no_usable_half_state() -> None:
    """A forward that fails in a later layer must not let backward silently mix old and new caches."""
    model = mbp.Sequential(mbp.Tanh(), mbp.Linear(3, 2, rng=0))
    model.forward(np.zeros((4, 3)))
    with pytest.raises(TypeError, match=esc("Linear '1': input dtype float32 does not match")):
        model.forward(np.zeros((4, 3), np.float32))  # Tanh accepted it, Linear did not
    with pytest.raises(mbp.StateError, match=esc("Linear '1': backward() called before forward()")):
        model.backward(np.zeros((4, 2)))  # the layer whose forward failed kept no cache
