"""examples/digits_cnn.py: a manual_bp CNN on scikit-learn's bundled digits reaches 97 % test accuracy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _example():
    pytest.importorskip("sklearn", reason="examples/digits_cnn.py needs scikit-learn (manual-bp[examples])")
    spec = importlib.util.spec_from_file_location("digits_cnn_example", ROOT / "examples" / "digits_cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_digits_cnn_reaches_97_percent() -> None:
    result = _example().run_digits_cnn(seed=0)
    assert result["test_accuracy"] >= 0.97, result
    assert result["n_test"] == 450 and result["epochs"] == 20
    kinds = [layer.kind for layer in result["model"]]
    assert kinds.count("conv2d") == 2 and kinds.count("max_pool2d") == 2


@pytest.mark.slow
def test_digits_cnn_main_exits_nonzero_below_target(capsys) -> None:
    module = _example()
    assert module.main(["--epochs", "1", "--seed", "1"]) == 1  # one epoch is not enough: the status says so
    assert "below the target of 97%" in capsys.readouterr().out
