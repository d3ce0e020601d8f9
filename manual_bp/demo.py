"""``python -m manual_bp.demo``: the seed network next to a wider one on two moons.

Trains Sequential(Linear(2, 3), ReLU(), Linear(3, 2)) with plain full-batch
gradient descent and Sequential(Linear(2, 32), ReLU(), Linear(32, 32), ReLU(),
Linear(32, 2)) with Adam on minibatches, prints both loss curves and accuracies,
and saves their decision boundaries to ``--out``/decision_boundary.png when
matplotlib is installed (``pip install manual-bp[examples]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from manual_bp import data
from manual_bp.layers import Linear, ReLU
from manual_bp.losses import SoftmaxCrossEntropy
from manual_bp.model import Sequential
from manual_bp.optim import SGD, Adam
from manual_bp.train import History, evaluate, fit, predict

PLOT_HINT = "matplotlib is not installed: `pip install manual-bp[examples]` (or matplotlib) to save the plot"


def train_both(seed: int = 0, n: int = 400, noise: float = 0.15, quiet: bool = False) -> dict[str, Any]:
    """Train the seed and the wide network on the same two-moons data; returns models, histories, data."""
    gen = np.random.default_rng(seed)
    X, y = data.two_moons(n, noise=noise, rng=gen)  # (n, 2), (n,)
    loss_fn = SoftmaxCrossEntropy()
    runs: dict[str, Any] = {"X": X, "y": y}

    seed_net = Sequential(Linear(2, 3, rng=gen), ReLU(), Linear(3, 2, rng=gen))
    wide = Sequential(Linear(2, 32, rng=gen), ReLU(), Linear(32, 32, rng=gen), ReLU(), Linear(32, 2, rng=gen))
    setups = [
        ("seed 2-3-2, full-batch SGD(lr=0.5), 2000 epochs", seed_net, SGD(seed_net, lr=0.5), 2000, None),
        ("wide 2-32-32-2, Adam(lr=0.01), batch 32, 100 epochs", wide, Adam(wide, lr=0.01), 100, 32),
    ]
    for title, model, opt, epochs, bs in setups:
        hist = fit(model, loss_fn, opt, X, y, epochs, bs, rng=gen, verbose=False, progress=not quiet)
        final = evaluate(model, loss_fn, X, y)
        runs[title] = (model, hist, final)
        if not quiet:
            _print_curve(title, hist)
        print(f"{title}: training accuracy {final.accuracy:.3f}, loss {final.loss:.4f}")
    return runs


def _print_curve(title: str, hist: History) -> None:
    E = hist.epochs
    marks = sorted({1, E, *(round(E * k / 5) for k in range(1, 5))} - {0})
    print(f"\n{title}\n  epoch    loss   accuracy")
    for e in marks:
        print(f"  {e:5d}  {hist.loss[e - 1]:.4f}   {hist.accuracy[e - 1]:.3f}")


def plot_boundaries(runs: dict[str, Any], path: Path) -> Path:
    """Save one panel per model: predicted class on a grid, the z1 - z0 = 0 boundary and the data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    X, y = runs["X"], runs["y"]
    titles = [k for k in runs if k not in ("X", "y")]
    lo, hi = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1)  # (300*300, 2)

    fig = Figure(figsize=(6 * len(titles), 5), dpi=100)
    FigureCanvasAgg(fig)
    for i, title in enumerate(titles):
        model, _, final = runs[title]
        z = predict(model, grid)  # (300*300, 2)
        margin = (z[:, 1] - z[:, 0]).reshape(g0.shape)
        ax = fig.add_subplot(1, len(titles), i + 1)
        ax.contourf(g0, g1, margin > 0, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
        ax.contour(g0, g1, margin, levels=[0.0], colors="k", linewidths=1)
        ax.scatter(X[:, 0], X[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=10, edgecolors="none")
        ax.set_title(f"{title}\ntraining accuracy {final.accuracy:.3f}", fontsize=9)
        ax.set_aspect("equal")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m manual_bp.demo", description="Seed vs wide net.")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for decision_boundary.png")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, initialisation and shuffling")
    parser.add_argument("--no-plot", action="store_true", help="train and print only")
    parser.add_argument("--quiet", action="store_true", help="print only the final lines")
    args = parser.parse_args(argv)

    runs = train_both(args.seed, quiet=args.quiet)
    if args.no_plot:
        return 0
    if not _have_matplotlib():
        print(PLOT_HINT)
        return 0
    path = plot_boundaries(runs, args.out / "decision_boundary.png")
    print(f"decision boundaries saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
