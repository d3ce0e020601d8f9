"""Conv1d, ConvTranspose2d, MaxPool1d, AvgPool1d and AdaptiveAvgPool2d against PyTorch and JAX
(crosscheck/kinds/conv.py): random layers (batch and width of 1, groups, strides, dilation, padding, output
padding) in float64 and float32 with random upstream gradients, the 1-D case family and the CNN cases that draw
them, and a planted bug caught at the right first tensor. Every case is rebuilt from its test id."""

from __future__ import annotations

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.cases import case, family
from crosscheck.cases.conv1d import conv1d_case
from crosscheck.cases.hazards import hazards
from crosscheck.run.api import run_case
from manual_bp import conv
from tests.helpers import case_rng
from tests.helpers.parity import network_case
from tests.helpers.toolbox import CONVS, POOLS, conv_transpose2d_forward_wrong_stride

LAYERS = {**CONVS, **POOLS}
NEW_KINDS = {"conv1d", "conv_transpose2d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool2d"}


@pytest.mark.parity
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_parity(name: str, dtype: str, seed: int, frameworks) -> None:
    layer, x = LAYERS[name](case_rng("conv-kinds/" + name, seed), seed)
    result = network_case(layer, x, dtype, seed, f"{name}-{dtype}-{seed}")
    assert result.ok, result.summary()


def _drawing(kinds: set[str], n: int) -> list[int]:
    """The first n default-sweep case ids that draw one of ``kinds``."""
    return [i for i in range(300) if kinds & {m.kind for m in case(i).model.modules()}][:n]


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_id", _drawing(NEW_KINDS, 16))
def test_sweep_cases_with_the_new_kinds(case_id: int, dtype: str, frameworks) -> None:
    c = case(case_id, dtype)
    result = run_case(c, frameworks)
    assert result.ok, result.summary()


def test_conv1d_cases_are_well_formed_and_reproducible() -> None:
    ids = [i for i in range(300) if family(i) == "conv1d"]
    assert len(ids) >= 10
    seen: set[str] = set()
    for i in ids:
        c = conv1d_case(i)
        N, C, L = c.x.shape
        assert 1 <= N <= 8 and 1 <= C <= 4 and 1 <= L <= 16, c.description
        assert c.dtype == ("float64" if i % 2 == 0 else "float32") and c.x.dtype == c.dtype
        assert c.dout.shape == c.model.forward(c.x).shape and c.replay == f"python -m crosscheck --case {i}"
        assert not hazards(list(c.model), c.x, c.dtype), c.description
        assert conv1d_case(i).description == c.description
        seen |= {layer.kind for layer in c.model} | set(c.tags)
    assert {"conv1d", "max_pool1d", "avg_pool1d", "kink"} <= seen, seen


def test_cnn_cases_keep_their_draws_without_the_new_kinds() -> None:
    """The image norms, transposed convolutions and adaptive pools come from a stream of their own: a CNN case
    that draws none of them holds only the kinds drawn before they existed."""
    old = {
        "conv2d",
        "max_pool2d",
        "avg_pool2d",
        "flatten",
        "linear",
        "sequential",
        "relu",
        "leaky_relu",
        "elu",
        "sigmoid",
        "tanh",
        "silu",
        "softplus",
        "gelu",
        "identity",
    }
    kinds = [{m.kind for m in case(i).model.modules()} for i in range(300) if family(i) == "cnn"]
    assert any(k <= old for k in kinds) and any(not k <= old for k in kinds)


# ---------------------------------------------------------------- planted bug


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transposed_convolution_scattering_with_the_wrong_stride_is_caught_at_its_output(
    seed: int, monkeypatch, frameworks
) -> None:
    r = np.random.default_rng(seed)
    layer = mbp.ConvTranspose2d(2, 3, (3, 2), stride=(2, 2), padding=(1, 0), rng=r)
    x = r.standard_normal((2, 2, 3, 3))
    assert network_case(layer, x, "float64", seed, "convT-clean").ok
    monkeypatch.setattr(conv, "conv_transpose2d_forward", conv_transpose2d_forward_wrong_stride)
    result = network_case(layer, x, "float64", seed, "convT-planted")
    assert not result.ok, "the planted bug went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp" and (comp.mode, bad.name) == ("loss", "0.out")
    assert bad.error > 100 * bad.bound, f"{bad.name}: error {bad.error:.2e} barely above the bound"
