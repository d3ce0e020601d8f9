"""RMSNorm, BatchNorm2d, GroupNorm and InstanceNorm2d against PyTorch and JAX (crosscheck/kinds/norms.py): random
layers (training and evaluation, affine or not, running statistics or not, batch and width of 1) in float64 and
float32 with random upstream gradients, the random cases that draw them, and planted bugs caught at the right
first tensor. Every case is rebuilt from its test id (layer name, dtype and seed, or the case id)."""

from __future__ import annotations

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.cases import case
from crosscheck.run.api import run_case
from manual_bp import norm, norm2d
from tests.helpers import case_rng
from tests.helpers.parity import network_case
from tests.helpers.toolbox import (
    NORMS,
    batch_norm2d_backward_wrong_axes,
    batch_norm2d_forward_wrong_axes,
    rms_norm_backward_without_gamma,
)

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(NORMS))
def test_norm_parity(name: str, dtype: str, seed: int, frameworks) -> None:
    layer, x = NORMS[name](case_rng("norm/" + name, seed), seed)
    result = network_case(layer, x, dtype, seed, f"{name}-{dtype}-{seed}")
    assert result.ok, result.summary()


NORM_KINDS = {"rms_norm", "batch_norm2d", "group_norm", "instance_norm2d"}


def _drawing(kinds: set[str], n: int) -> list[int]:
    """The first n default-sweep case ids that draw one of ``kinds``."""
    ids = [i for i in range(300) if kinds & {m.kind for m in case(i).model.modules()}]
    return ids[:n]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case_id", _drawing(NORM_KINDS, 10))
def test_sweep_cases_with_the_new_norms(case_id: int, dtype: str, frameworks) -> None:
    c = case(case_id, dtype)
    result = run_case(c, frameworks)
    assert result.ok, result.summary()


# ---------------------------------------------------------------- planted bugs


def _first(result) -> tuple[str, str]:
    assert not result.ok, "the planted bug went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp"
    assert bad.error > 100 * bad.bound, f"{bad.name}: error {bad.error:.2e} barely above the bound"
    return comp.mode, bad.name


def _rms_net(seed: int) -> tuple[mbp.Module, np.ndarray]:
    r = np.random.default_rng(seed)
    layer = mbp.RMSNorm(5)
    layer.params["gamma"][:] = r.uniform(0.5, 2.0, 5) * r.choice([-1.0, 1.0], 5)  # far from all ones
    return layer, r.standard_normal((4, 5))


def _bn_net(seed: int) -> tuple[mbp.Module, np.ndarray]:
    r = np.random.default_rng(seed)
    layer = mbp.BatchNorm2d(2, momentum=0.3)
    return layer, r.standard_normal((3, 2, 3, 4)) + r.standard_normal((1, 1, 1, 4))  # columns differ


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rms_norm_backward_without_the_weight_is_caught_at_its_dx(seed: int, monkeypatch, frameworks) -> None:
    layer, x = _rms_net(seed)
    assert network_case(layer, x, "float64", seed, "rms-clean").ok
    monkeypatch.setattr(norm, "rms_norm_backward", rms_norm_backward_without_gamma)
    assert _first(network_case(layer, x, "float64", seed, "rms-planted")) == ("loss", "0.dx")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_norm2d_statistics_over_the_wrong_axes_are_caught_at_its_output(
    seed: int, monkeypatch, frameworks
) -> None:
    layer, x = _bn_net(seed)
    assert network_case(layer, x, "float64", seed, "bn2d-clean").ok
    monkeypatch.setattr(norm2d, "batch_norm2d_forward", batch_norm2d_forward_wrong_axes)
    monkeypatch.setattr(norm2d, "batch_norm2d_backward", batch_norm2d_backward_wrong_axes)
    assert _first(network_case(layer, x, "float64", seed, "bn2d-planted")) == ("loss", "0.out")
