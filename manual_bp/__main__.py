"""``python -m manual_bp``: the seed network, trained by plain full-batch gradient descent.

Exactly the seed: Sequential(Linear(2, 3), ReLU(), Linear(3, 2)) with a fused
softmax cross-entropy, and ``SGD`` without momentum on the whole data set at
every step. The default task is two Gaussian blobs; see ``DATASETS`` for why.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from manual_bp import data
from manual_bp.layers import Linear, ReLU
from manual_bp.losses import SoftmaxCrossEntropy
from manual_bp.model import Sequential
from manual_bp.optim import SGD
from manual_bp.train import evaluate, fit


class Task(NamedTuple):
    make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
    note: str


DATASETS: dict[str, Task] = {
    "blobs": Task(
        lambda gen: data.blobs(200, classes=2, std=0.5, rng=gen),
        "two Gaussian blobs centred at (2, 0) and (-2, 0): linearly separable, so this checks the "
        "training loop rather than the hidden layer; the seed net reaches 100% for each of seeds 0-199",
    ),
    "xor": Task(
        lambda gen: data.xor_blobs(200, rng=gen),
        "XOR of four blobs: needs the hidden layer; with only 3 ReLU units, gradient descent from a "
        "random start reaches >= 95% for about 60% of seeds (e.g. --seed 1) and stalls at 75% otherwise",
    ),
    "moons": Task(
        lambda gen: data.two_moons(200, rng=gen),
        "two moons: 3 ReLU units give at most a 3-piece boundary, which cannot follow the moons; "
        "expect about 85-95%, median 90% (python -m manual_bp.demo trains a wider network on it)",
    ),
    "circles": Task(
        lambda gen: data.circles(200, rng=gen),
        "concentric circles: all 3 units must close a triangle around the inner circle; "
        "reaches >= 95% for about 40% of seeds with --epochs 2000",
    ),
}


def seed_network(gen: np.random.Generator) -> Sequential:
    """Sequential(Linear(2, 3), ReLU(), Linear(3, 2)), initialised from ``gen``."""
    return Sequential(Linear(2, 3, rng=gen), ReLU(), Linear(3, 2, rng=gen))


def run(dataset: str = "blobs", seed: int = 0, lr: float = 0.5, epochs: int = 300, progress: bool = True) -> dict:
    """Train the seed network; returns accuracy, loss, the loss curve and the wall time."""
    gen = np.random.default_rng(seed)
    X, y = DATASETS[dataset].make(gen)  # (200, 2), (200,)
    model = seed_network(gen)
    loss_fn = SoftmaxCrossEntropy()
    start = time.perf_counter()
    hist = fit(model, loss_fn, SGD(model, lr=lr), X, y, epochs, verbose=False, progress=progress)
    final = evaluate(model, loss_fn, X, y)
    return {
        "accuracy": final.accuracy,
        "loss": final.loss,
        "history": hist,
        "seconds": time.perf_counter() - start,
        "model": model,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m manual_bp", description="Train the seed network with plain gradient descent."
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="blobs", help="2-class 2-D task")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and the initialisation")
    parser.add_argument("--epochs", type=int, default=300, help="full-batch steps")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate of plain gradient descent")
    parser.add_argument("--quiet", action="store_true", help="print only the final line")
    args = parser.parse_args(argv)
    if args.epochs < 1 or not args.lr > 0:
        parser.error("--epochs must be >= 1 and --lr > 0")

    if not args.quiet:
        print("seed network: Sequential(Linear(2, 3), ReLU(), Linear(3, 2)) + SoftmaxCrossEntropy")
        print(f"optimiser:    plain full-batch gradient descent, SGD(lr={args.lr}), {args.epochs} epochs")
        print(f"task:         {args.dataset} (200 points, seed {args.seed}): {DATASETS[args.dataset].note}")
    out = run(args.dataset, args.seed, args.lr, args.epochs, progress=not args.quiet)
    hist = out["history"]
    if not args.quiet:
        print("\n epoch    loss   accuracy   (before that epoch's update)")
        marks = sorted({1, args.epochs, *(round(args.epochs * k / 5) for k in range(1, 5))} - {0})
        for e in marks:
            print(f"{e:6d}  {hist.loss[e - 1]:.4f}   {hist.accuracy[e - 1]:.3f}")
        print()
    print(
        f"final training accuracy: {out['accuracy']:.3f}  loss {out['loss']:.4f}  "
        f"({args.dataset}, seed {args.seed}, lr {args.lr}, {args.epochs} epochs, {out['seconds']:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
