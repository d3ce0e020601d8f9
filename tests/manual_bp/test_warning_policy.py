"""The test suite's warning policy (pyproject.toml, ``filterwarnings``)."""

from __future__ import annotations

import warnings

import pytest


def _warn_from_manual_bp(message: str) -> None:
    warnings.warn_explicit(message, RuntimeWarning, "manual_bp/activations.py", 1, module="manual_bp.activations")


@pytest.mark.parametrize(
    "message",
    [
        "overflow encountered in exp",
        "invalid value encountered in multiply",
        "divide by zero encountered in log",
        "overflow encountered in matmul",
    ],
)
def test_a_runtime_warning_raised_in_manual_bp_fails_the_test(message):
    with pytest.raises(RuntimeWarning, match=message):
        _warn_from_manual_bp(message)


def test_the_invalid_flag_after_a_matrix_product_is_left_to_the_value_checks():
    """OpenBLAS has set FE_INVALID on finite operands; a real invalid product is a NaN the values show."""
    with warnings.catch_warnings(record=True) as caught:
        _warn_from_manual_bp("invalid value encountered in matmul")
    assert caught == []
