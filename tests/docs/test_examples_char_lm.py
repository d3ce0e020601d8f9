"""examples/char_lm.py: a manual_bp character-level LSTM on the Zen of Python learns, and trains step for step
as the same model in torch does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("char_lm_example", ROOT / "examples" / "char_lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_loss_falls_and_a_sample_comes_out() -> None:
    result = _example().run_char_lm(seed=1, steps=60, torch_steps=0)
    losses = result["losses"]
    assert len(losses) == 60 and result["agreement"] is None
    assert np.mean(losses[-10:]) < losses[0] - 0.5, losses
    assert result["sample"].startswith("Beautiful ") and len(result["sample"]) == 210
    assert set(result["sample"]) <= set(result["chars"])
    assert result["model"][1].h0 is None  # sampling leaves no initial state behind


@pytest.mark.parity
def test_training_agrees_with_torch_step_for_step() -> None:
    pytest.importorskip("torch")
    result = _example().run_char_lm(seed=2, steps=6, torch_steps=6)
    a = result["agreement"]
    assert a["steps"] == 6 and a["loss_rel"] < 1e-13 and a["param_rel"] < 1e-11, a
