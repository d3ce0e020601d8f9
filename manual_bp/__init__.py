"""manual_bp: backpropagation written by hand in NumPy, verified against PyTorch, JAX and finite differences."""

from manual_bp import attention, conv, data, functional, init, optim, pool, train
from manual_bp._checks import StateError
from manual_bp.attention import MultiHeadSelfAttention, set_key_padding_mask, transformer_block
from manual_bp.conv import Conv2d
from manual_bp.gradcheck import GradcheckResult, gradcheck
from manual_bp.io import load, load_into, save
from manual_bp.layers import (
    ELU,
    GELU,
    BatchNorm1d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from manual_bp.losses import MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy
from manual_bp.model import Residual, Sequential, architecture, build
from manual_bp.optim import SGD, Adam, AdamW, Optimizer, RMSprop
from manual_bp.pool import AvgPool2d, MaxPool2d
from manual_bp.train import Evaluation, History, NonFiniteLossError, accuracy, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "GELU",
    "MSE",
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2d",
    "BCEWithLogits",
    "BatchNorm1d",
    "Conv2d",
    "Dropout",
    "Embedding",
    "Evaluation",
    "Flatten",
    "GradcheckResult",
    "History",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MaxPool2d",
    "Module",
    "MultiHeadSelfAttention",
    "NonFiniteLossError",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "Residual",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Softplus",
    "StateError",
    "Tanh",
    "__version__",
    "accuracy",
    "architecture",
    "attention",
    "build",
    "conv",
    "data",
    "evaluate",
    "fit",
    "functional",
    "gradcheck",
    "init",
    "load",
    "load_into",
    "optim",
    "pool",
    "predict",
    "save",
    "set_key_padding_mask",
    "train",
    "transformer_block",
]
