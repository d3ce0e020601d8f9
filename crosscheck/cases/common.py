"""What every case family shares: the ``Case``, sizes, activations and losses drawn by their kinds' entries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import manual_bp as mbp
from crosscheck.kinds import lookup, loss_kind

ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu", "softplus", "gelu", "identity")
LOSSES = ("softmax_cross_entropy", "mse", "bce_with_logits")
INITS = ("torch", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal")


@dataclass
class Case:
    """A model, its loss, the data and the upstream gradients of one comparison."""

    case_id: str
    dtype: str
    model: mbp.Sequential
    loss_fn: mbp.Loss
    x: np.ndarray
    y: np.ndarray
    dloss: float
    dout: np.ndarray
    tags: tuple[str, ...] = ()
    replay: str = ""  # one line that rebuilds and reruns this case

    @property
    def description(self) -> str:
        """e.g. ``float64 N=5 3->4 ReLU()->2 SoftmaxCrossEntropy(...) labels [kink]``."""
        arch = [str(self.x.shape[-1]) if self.x.dtype.kind == "f" else f"idx{self.x.shape}"]
        for layer in self.model:
            if layer.kind == "linear":
                arch.append(str(layer.out_features) + ("" if layer.bias else "(no bias)"))
            else:
                arch[-1] += f" {describe(layer)}"
        mode = "" if self.model.training else " eval"
        return f"{self.dtype}{mode} N={self.x.shape[0]} {'->'.join(arch)} {self.loss_fn!r} {self._labels}{self._tags}"

    @property
    def _labels(self) -> str:
        return "labels" if self.y.dtype.kind in "iu" else "targets"

    @property
    def _tags(self) -> str:
        return f" [{','.join(self.tags)}]" if self.tags else ""


def describe(layer: mbp.Module) -> str:
    """A layer in one short line, by its kind's entry: ``Linear(4->4)``, ``Residual(...)``, ``ReLU()``."""
    return lookup(layer.kind).describe(layer)


def size(rng: np.random.Generator, hi: int = 64) -> int:
    """1 with probability 0.15, else log-uniform in [2, hi]."""
    if rng.random() < 0.15:
        return 1
    return int(np.clip(np.round(np.exp(rng.uniform(np.log(2), np.log(hi)))), 2, hi))


def activation(rng: np.random.Generator, kinds: tuple[str, ...] = ACTIVATIONS) -> mbp.Module:
    """One of ``kinds``, with hyperparameters drawn by its entry (``Kind.draw``)."""
    kind = kinds[rng.integers(len(kinds))]
    draw = lookup(kind).draw
    return mbp.Module.registry[kind](**(draw(rng) if draw is not None else {}))


def loss_and_target(
    rng: np.random.Generator, kind: str, labels: str, dtype: str, N: int, C: int
) -> tuple[mbp.Loss, np.ndarray]:
    """A loss of ``kind`` (mean 70%, else sum) and its target (N, C) or labels (N,), drawn by its entry."""
    reduction = "mean" if rng.random() < 0.7 else "sum"
    config, target = loss_kind(kind).draw(rng, labels, dtype, N, C)
    return mbp.Loss.registry[kind](reduction=reduction, **config), target
