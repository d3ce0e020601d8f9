"""manual_bp: backpropagation written by hand in NumPy, verified against PyTorch, JAX and finite differences."""

from manual_bp import data, functional, init
from manual_bp._checks import StateError
from manual_bp.gradcheck import GradcheckResult, gradcheck
from manual_bp.io import load, load_into, save
from manual_bp.layers import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ReLU,
    SiLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from manual_bp.losses import MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy
from manual_bp.model import Sequential, architecture, build

__version__ = "0.1.0"

__all__ = [
    "BCEWithLogits", "ELU", "GELU", "GradcheckResult", "Identity", "LeakyReLU", "Linear",
    "LogSoftmax", "Loss", "MSE", "Module", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax",
    "SoftmaxCrossEntropy", "Softplus", "StateError", "Tanh", "architecture", "build", "data",
    "functional", "gradcheck", "init", "load", "load_into", "save", "__version__",
]
