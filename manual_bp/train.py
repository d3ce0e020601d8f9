"""The training loop: minibatches, seeded shuffling, history, progress, and a guard on the loss.

One step is ``out = model(xb); L = loss_fn(out, yb); model.backward(loss_fn.backward());
optimizer.step(model.grads)``. An epoch's loss is the loss_fn's value on each
batch (computed before that batch's update), combined as the loss over the
whole set would be: weighted by batch size for ``reduction="mean"``, summed
for ``"sum"``. Accuracy is reported where it has a meaning: argmax accuracy for
``SoftmaxCrossEntropy`` with integer labels, threshold-0 accuracy on the logits
for ``BCEWithLogits``; otherwise it is None.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import numpy as np

from manual_bp._checks import check_float_array, check_nonempty
from manual_bp.data import minibatches
from manual_bp.init import as_generator
from manual_bp.losses import BCEWithLogits, Loss, SoftmaxCrossEntropy


class NonFiniteLossError(FloatingPointError, ValueError):
    """Training produced a NaN or infinite loss (or parameter)."""


@dataclass
class History:
    """Per-epoch curves returned by ``fit``; ``accuracy`` and ``val_*`` are None where not defined."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] | None = None
    val_loss: list[float] | None = None
    val_accuracy: list[float] | None = None
    steps: int = 0  # optimiser steps taken
    seconds: float = 0.0  # wall time of the whole fit

    @property
    def epochs(self) -> int:
        return len(self.loss)


class Evaluation(NamedTuple):
    loss: float
    accuracy: float | None


# ---------------------------------------------------------------- metrics


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax matches the integer label: logits (N, C), y (N,)."""
    if logits.ndim != 2 or y.ndim != 1 or len(y) != len(logits):
        raise ValueError(f"accuracy: expected logits (N, C) and labels (N,), got {logits.shape}, {y.shape}")
    return float(np.mean(logits.argmax(axis=1) == y))


def binary_accuracy(logits: np.ndarray, t: np.ndarray) -> float:
    """Fraction of elements where (logit > 0) agrees with (target > 0.5); same shapes."""
    if logits.shape != t.shape:
        raise ValueError(f"binary_accuracy: logits {logits.shape} and targets {t.shape} differ in shape")
    return float(np.mean((logits > 0) == (t > 0.5)))


def task_accuracy(loss_fn: Loss, out: np.ndarray, y: np.ndarray) -> float | None:
    """The accuracy that fits ``loss_fn`` (see the module docstring), or None."""
    if isinstance(loss_fn, SoftmaxCrossEntropy) and y.ndim == 1:
        return accuracy(out, y)
    if isinstance(loss_fn, BCEWithLogits):
        return binary_accuracy(out, y)
    return None


# ---------------------------------------------------------------- evaluation


def predict(model: Any, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Model outputs (e.g. logits) for X, computed in evaluation mode; the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        bs = batch_size or len(X)
        outs = [model.forward(X[i : i + bs]) for i in range(0, len(X), bs)]
    finally:
        model.train(was_training)
    return outs[0] if len(outs) == 1 else np.concatenate(outs)


def evaluate(model: Any, loss_fn: Loss, X: np.ndarray, y: np.ndarray, batch_size: int | None = None) -> Evaluation:
    """Loss and accuracy (None where undefined) of ``model`` on (X, y), in evaluation mode."""
    was_training = model.training
    model.eval()
    tally = _Tally(loss_fn, len(X))
    try:
        for xb, yb in minibatches(X, y, batch_size or len(X)):
            out = model.forward(xb)
            tally.add(float(loss_fn.forward(out, yb)), task_accuracy(loss_fn, out, yb), len(xb))
    finally:
        model.train(was_training)
    return tally.result()


class _Tally:
    """Combines per-batch losses and accuracies into whole-set values."""

    def __init__(self, loss_fn: Loss, n: int) -> None:
        self.total = getattr(loss_fn, "reduction", "mean") == "sum"
        self.n, self.loss, self.correct, self.has_acc = n, 0.0, 0.0, True

    def add(self, loss: float, acc: float | None, nb: int) -> None:
        self.loss += loss if self.total else loss * nb
        self.has_acc = self.has_acc and acc is not None
        self.correct += (acc or 0.0) * nb

    def result(self) -> Evaluation:
        loss = self.loss if self.total else self.loss / self.n
        return Evaluation(loss, self.correct / self.n if self.has_acc else None)


# ---------------------------------------------------------------- progress


class _Progress:
    """One self-overwriting status line on stderr, shown only once a run has lasted ``delay`` seconds."""

    delay = 1.0  # short runs print nothing
    interval = 0.2  # seconds between redraws on a terminal
    log_interval = 10.0  # seconds between lines when stderr is not a terminal (a log file)

    def __init__(self, enabled: bool, epochs: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled, self.epochs = enabled, epochs
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start, self.last = time.perf_counter(), -math.inf
        self.shown = False

    def update(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        gap = self.interval if self.tty else self.log_interval
        if now - self.start < self.delay or now - self.last < gap:
            return
        self.last, self.shown = now, True
        elapsed = now - self.start
        line = f"epoch {epoch}/{self.epochs}  step {step}/{steps}  loss {loss:.4g}  [{elapsed:.1f} s]"
        self.stream.write(f"\r{line:<72}" if self.tty else line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\r" + " " * 72 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------- fit


def _check_data(X: Any, y: Any, what: str) -> None:
    check_float_array(X, "fit", what)
    check_nonempty(X, "fit", what)
    if not isinstance(y, np.ndarray) or len(y) != len(X):
        n = len(y) if isinstance(y, np.ndarray) else type(y).__name__
        raise ValueError(f"fit: {what} has {len(X)} rows but its targets have {n}; they must match")
    for name, a in ((what, X), (f"targets of {what}", y)):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0][0])
            raise ValueError(f"fit: {name} contains NaN or inf (first at row {row}); clean the data first")


def fit(
    model: Any,
    loss_fn: Loss,
    optimizer: Any,
    X: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int | None = None,
    rng: np.random.Generator | int | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: bool = True,
    progress: bool = True,
) -> History:
    """Train ``model`` in place for ``epochs`` passes over (X, y) and return the ``History``.

    X: (N, ...) float; y: (N,) integer labels or float targets of the loss.
    batch_size: None for full-batch gradient descent. rng: Generator or int
    seed that shuffles the samples every epoch (None: fixed order; a Generator
    is advanced). validation: (X_val, y_val) evaluated after every epoch.
    verbose: print about ten epoch summaries to stdout. progress: a status line
    on stderr for runs longer than a second.

    NumPy's floating-point warnings are silenced inside the loop; a NaN or
    infinite loss raises ``NonFiniteLossError`` naming the epoch and step.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    _check_data(X, y, "X")
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise ValueError("fit: validation must be a pair (X_val, y_val)")
        _check_data(*validation, "X_val")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
    ):
        raise ValueError(f"fit: batch_size must be a positive int or None (full batch), got {batch_size!r}")
    gen = None if rng is None else as_generator(rng, "fit")
    bs = batch_size or len(X)
    steps = math.ceil(len(X) / bs)

    start = time.perf_counter()
    hist = History()
    bar = _Progress(progress, int(epochs))
    every = max(1, int(epochs) // 10)
    model.train()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(1, int(epochs) + 1):
            tally = _Tally(loss_fn, len(X))
            for step, (xb, yb) in enumerate(minibatches(X, y, bs, gen), 1):
                out = model.forward(xb)
                loss = float(loss_fn.forward(out, yb))
                if not math.isfinite(loss):
                    bar.clear()
                    raise NonFiniteLossError(
                        f"fit: the loss is {loss} at epoch {epoch}, step {step} of {steps} "
                        f"(optimiser step {hist.steps + 1}); lower the learning rate "
                        f"(now {getattr(optimizer, 'lr', '?')}) or check the data and initialisation"
                    )
                model.backward(loss_fn.backward(), input_grad=False)  # dL/dX is not needed to train
                optimizer.step(model.grads)
                hist.steps += 1
                tally.add(loss, task_accuracy(loss_fn, out, yb), len(xb))
                bar.update(epoch, step, steps, loss)
            for name, p in model.params.items():
                if not np.isfinite(p).all():
                    bar.clear()
                    raise NonFiniteLossError(
                        f"fit: parameter {name!r} became NaN or inf at epoch {epoch} (after step {steps}); "
                        f"lower the learning rate"
                    )
            _record(hist, tally.result(), "")
            if validation is not None:
                _record(hist, evaluate(model, loss_fn, *validation, batch_size=batch_size), "val_")
            if verbose and (epoch == 1 or epoch % every == 0 or epoch == epochs):
                bar.clear()
                print(_summary(hist, epoch, int(epochs)), flush=True)
    bar.clear()
    hist.seconds = time.perf_counter() - start
    return hist


def _record(hist: History, ev: Evaluation, prefix: str) -> None:
    losses = getattr(hist, f"{prefix}loss")
    if losses is None:
        losses = []
        setattr(hist, f"{prefix}loss", losses)
    losses.append(ev.loss)
    if ev.accuracy is not None:
        if getattr(hist, f"{prefix}accuracy") is None:
            setattr(hist, f"{prefix}accuracy", [])
        getattr(hist, f"{prefix}accuracy").append(ev.accuracy)


def _summary(hist: History, epoch: int, epochs: int) -> str:
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}", f"loss {hist.loss[-1]:.4f}"]
    if hist.accuracy:
        parts.append(f"acc {hist.accuracy[-1]:.3f}")
    if hist.val_loss:
        parts.append(f"val_loss {hist.val_loss[-1]:.4f}")
    if hist.val_accuracy:
        parts.append(f"val_acc {hist.val_accuracy[-1]:.3f}")
    return "  ".join(parts)
