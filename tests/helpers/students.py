"""The course-style student files of tests/crosscheck/students/: the adapters' pair names, the mistakes
with what each must be diagnosed as, and loading them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

STUDENTS = Path(__file__).resolve().parents[1] / "crosscheck" / "students"

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
    """The student file ``name`` as a module."""
    spec = importlib.util.spec_from_file_location(f"student_{name}", STUDENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pair(module: ModuleType, adapter: str) -> tuple[Any, Any]:
    """The module's (forward, backward) for ``adapter`` (backward None for a fused loss)."""
    fwd, bwd = PAIRS[adapter]
    return getattr(module, fwd), getattr(module, bwd) if bwd else None
