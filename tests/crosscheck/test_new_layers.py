"""LayerNorm, Flatten, BatchNorm1d, Embedding, Residual and Dropout against crosscheck: parity with PyTorch and
JAX (train and eval; running statistics over several steps) and planted bugs caught at the right tensor.

Every case is rebuilt from its test id (layer name and seed).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.run.compare import compare_case, compare_running_buffers
from tests.helpers import case_rng
from tests.helpers.new_layers import HOME, PLANTS, _affine, _plant_net

# ---------------------------------------------------------------- behaviour the frameworks share


def test_batch_norm_one_sample_in_training_is_a_clear_error(frameworks) -> None:
    import torch

    with pytest.raises(
        ValueError,
        match=re.escape("BatchNorm1d: training needs more than one sample per feature, got input shape (1, 3)"),
    ):
        mbp.BatchNorm1d(3).forward(np.ones((1, 3)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.BatchNorm1d(3, dtype=torch.float64)(torch.ones(1, 3, dtype=torch.float64))
    mbp.BatchNorm1d(3).eval().forward(np.ones((1, 3)))  # eval mode uses the running statistics: fine


# ---------------------------------------------------------------- parity with PyTorch and JAX


def _parity_models(r: np.random.Generator, dtype: str) -> dict[str, tuple[mbp.Sequential, np.ndarray, int]]:
    """name -> (model, x, C): each new layer inside a small network, in both modes where it has two."""

    def lin(i: int, o: int) -> mbp.Linear:
        return mbp.Linear(i, o, rng=r, dtype=dtype)

    x = r.standard_normal((7, 4)).astype(dtype)
    models = {
        "layer_norm": (mbp.Sequential(lin(4, 5), _affine(mbp.LayerNorm(5, dtype=dtype), r), mbp.GELU(), lin(5, 3)), x),
        "layer_norm_3d": (
            mbp.Sequential(mbp.LayerNorm(4, elementwise_affine=False, dtype=dtype), mbp.Flatten(), lin(8, 3)),
            r.standard_normal((7, 2, 4)).astype(dtype),
        ),
        "batch_norm_train": (
            mbp.Sequential(lin(4, 5), _affine(mbp.BatchNorm1d(5, dtype=dtype), r), mbp.ReLU(), lin(5, 3)),
            x,
        ),
        "batch_norm_eval": (
            mbp.Sequential(
                lin(4, 5), _affine(mbp.BatchNorm1d(5, momentum=0.3, dtype=dtype), r), mbp.Tanh(), lin(5, 3)
            ).eval(),
            x,
        ),
        "batch_norm_no_affine": (mbp.Sequential(mbp.BatchNorm1d(4, affine=False, dtype=dtype), lin(4, 3)), x),
        "embedding": (
            mbp.Sequential(mbp.Embedding(3, 4, rng=r, dtype=dtype), mbp.Flatten(), lin(8, 3)),
            r.integers(0, 3, (7, 2)),
        ),
        "flatten": (
            mbp.Sequential(lin(4, 3), mbp.SiLU(), mbp.Flatten(), lin(6, 3)),
            r.standard_normal((7, 2, 4)).astype(dtype),
        ),
        "residual": (
            mbp.Sequential(
                lin(4, 5),
                mbp.Residual(
                    lin(5, 5),
                    _affine(mbp.LayerNorm(5, dtype=dtype), r),
                    mbp.ReLU(),
                    mbp.Residual(lin(5, 5), mbp.Tanh()),
                ),
                lin(5, 3),
            ),
            x,
        ),
        "dropout_train": (mbp.Sequential(lin(4, 6), mbp.ReLU(), mbp.Dropout(0.5, rng=3), lin(6, 3)), x),
        "dropout_eval": (mbp.Sequential(lin(4, 6), mbp.Dropout(0.5, rng=3), lin(6, 3)).eval(), x),
        "dropout_near_1": (mbp.Sequential(lin(4, 6), mbp.Dropout(0.999, rng=3), lin(6, 3)), x),
    }
    return models


PARITY = [
    "layer_norm",
    "layer_norm_3d",
    "batch_norm_train",
    "batch_norm_eval",
    "batch_norm_no_affine",
    "embedding",
    "flatten",
    "residual",
    "dropout_train",
    "dropout_eval",
    "dropout_near_1",
]


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", PARITY)
def test_parity(name: str, dtype: str, frameworks) -> None:
    r = case_rng("parity/" + name, 0)
    model, x = _parity_models(r, dtype)[name]
    y = r.integers(0, 3, 7)
    dout = r.standard_normal((7, 3)).astype(dtype)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    result = compare_case(
        model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks, case_id=name
    )
    assert result.ok, result.summary()
    if dtype == "float64":
        assert all(c.error <= 1e-10 for comp in result.comparisons for c in comp.checks)
    names = {c.name for c in result.comparisons[0].checks}
    if name.startswith("batch_norm"):
        assert {"1.running_mean", "1.running_var"} <= names or {"0.running_mean", "0.running_var"} <= names
    if name == "embedding":
        assert "0.dW" in names and "0.dx" not in names
    if name == "residual":
        assert {"1.0.dx", "1.3.0.dW", "1.3.dx", "1.dx"} <= names
    after = model.state_dict()
    assert all(np.array_equal(state[k], after[k]) for k in state)  # the model is left as it was


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("affine", [True, False])
def test_running_buffers_after_several_steps(affine: bool, dtype: str, frameworks) -> None:
    r = case_rng("buffers", int(affine))
    model = mbp.Sequential(
        _affine(mbp.BatchNorm1d(4, momentum=0.3, affine=affine, dtype=dtype), r),
        mbp.Linear(4, 4, rng=r, dtype=dtype),
        mbp.Residual(mbp.BatchNorm1d(4, dtype=dtype)),
    )
    xs = [(r.standard_normal((int(r.integers(2, 9)), 4)) * 3 + 1).astype(dtype) for _ in range(5)]
    checks = compare_running_buffers(model, xs, frameworks)
    assert len(checks) == 5 * 4 * len(frameworks)
    bad = [c for c in checks if not c.ok]
    assert not bad, bad[0]
    if dtype == "float64":
        assert max(c.error for c in checks) <= 1e-10


# ---------------------------------------------------------------- planted bugs


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_bug_is_caught_at_the_right_tensor(name: str, seed: int, monkeypatch, frameworks) -> None:
    model, x, y, dout = _plant_net(case_rng("plant/" + name, seed))
    clean = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert clean.ok, clean.summary()
    attr, bad, expected = PLANTS[name]
    monkeypatch.setattr(HOME[attr], attr, bad)
    result = compare_case(model, mbp.SoftmaxCrossEntropy(), x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert not result.ok, "the planted bug went unnoticed"
    comp, first = result.first_divergence
    assert comp.backend == "manual_bp"
    assert (comp.mode, first.name) == expected, result.summary()
    assert first.error > 100 * first.bound, f"{first.name}: error {first.error:.2e} barely above the bound"
