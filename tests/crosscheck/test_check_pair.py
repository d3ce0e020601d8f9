"""crosscheck.check_pair on course-style pairs: the correct ones pass every adapter, each student mistake
fails with the right first tensor and, where the numbers show it, the right likely cause."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

STUDENTS = Path(__file__).parent / "students"

PAIRS = {  # adapter -> (forward, backward) names in the course style
    "affine": ("affine_forward", "affine_backward"),
    "relu": ("relu_forward", "relu_backward"),
    "sigmoid": ("sigmoid_forward", "sigmoid_backward"),
    "tanh": ("tanh_forward", "tanh_backward"),
    "batchnorm": ("batchnorm_forward", "batchnorm_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "conv": ("conv_forward_naive", "conv_backward_naive"),
    "max_pool": ("max_pool_forward_naive", "max_pool_backward_naive"),
    "softmax_loss": ("softmax_loss", None),
}

# file -> (adapter, the first diverging tensor, words the likely cause must hold; None: the numbers show none)
MISTAKES = {
    "affine_transposed_dw": ("affine", "affine.dw", "transposed"),
    "affine_dx_not_reshaped": ("affine", "affine.dx", "wrong shape"),
    "affine_bias_not_summed": ("affine", "affine.db", "not summed over the batch"),
    "softmax_missing_mean": ("softmax_loss", "loss", "missing 1/N"),
    "softmax_overflow": ("softmax_loss", "loss", "overflow"),
    "batchnorm_no_mean_term": ("batchnorm", "batchnorm.dx", None),
    "dropout_not_rescaled": ("dropout", "dropout.out", "not rescaled"),
    "dropout_mask_on_x": ("dropout", "dropout.dx", "applied to x instead of to dout"),
    "conv_flipped_kernel": ("conv", "conv.out", "flipped kernel"),
    "max_pool_split_ties": ("max_pool", "max_pool.dx", "tied maxima"),
    "relu_at_zero": ("relu", "relu.dx", "x == 0"),
    "sigmoid_sign_flip": ("sigmoid", "sigmoid.dx", "flipped sign"),
    "tanh_ignores_dout": ("tanh", "tanh.dx", "ignores the upstream gradient"),
}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"student_{name}", STUDENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pair(module: ModuleType, adapter: str) -> tuple:
    fwd, bwd = PAIRS[adapter]
    return getattr(module, fwd), getattr(module, bwd) if bwd else None


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("adapter", sorted(PAIRS))
def test_correct_pairs_pass(adapter: str, seed: int, frameworks: tuple[str, ...]) -> None:
    import crosscheck

    report = crosscheck.check_pair(
        *pair(load("correct"), adapter), kind=adapter, cases=8, seed=seed, against=frameworks
    )
    assert len(report.results) == 8
    assert report.ok, "\n".join(r.summary() for r in report.failures)


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_student_mistake_is_diagnosed(name: str, frameworks: tuple[str, ...]) -> None:
    import crosscheck

    adapter, tensor, words = MISTAKES[name]
    report = crosscheck.check_pair(*pair(load(name), adapter), kind=adapter, cases=8, seed=3, against=frameworks)
    assert report.failures, f"{name}: every case passed"
    for r in report.failures:
        comp, bad = r.first_divergence
        assert (bad.name, comp.backend) == (tensor, "yours"), r.summary()
        text = r.summary()
        assert "replay: python -m crosscheck check " in text and f"--case {r.case_id.rsplit('/', 1)[1]}" in text
        if words is None:
            assert "likely cause: none the numbers show" in text, text
        else:
            assert words in text.split("likely cause:")[1], text


@pytest.mark.parity
def test_diagnosis_names_the_worst_entry(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    r = crosscheck.check_pair(
        *pair(load("sigmoid_sign_flip"), "sigmoid"), kind="sigmoid", cases=1, against=frameworks
    ).results[0]
    assert "worst entry at (" in r.summary() and "yours" in r.summary() and "expected" in r.summary()


@pytest.mark.parity
def test_a_crash_in_the_users_code_is_a_failing_case(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    def forward(x, w, b):
        return x @ w + b, (x, w)  # x (N, d1, d2) is never reshaped: a crash for those cases

    def backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(0)

    report = crosscheck.check_pair(forward, backward, kind="affine", cases=4, against=frameworks)
    crashed = [r for r in report.failures if "raised" in r.summary()]
    assert crashed and all("likely cause: your code raised" in r.summary() for r in crashed)


@pytest.mark.parity
def test_inputs_mutated_by_the_user_fail(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    def forward(x):
        out = np.maximum(x, 0)
        x *= 1.0  # harmless in value, but a write
        x[...] = out
        return out, out

    def backward(dout, cache):
        return dout * (cache > 0)

    report = crosscheck.check_pair(forward, backward, kind="relu", cases=2, against=frameworks)
    assert not report.ok and "mutated its inputs" in report.failures[0].summary()


def test_unknown_kind_names_the_choices() -> None:
    import crosscheck

    with pytest.raises(ValueError, match=r"no ready adapter for kind 'lstm'.*affine"):
        crosscheck.check_pair(lambda x: x, None, kind="lstm")
