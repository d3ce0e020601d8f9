"""The seed network trained on two moons: its decision boundary and its loss curve.

``python docs/scripts/fig_training.py [OUT_DIR]``; the docs build runs it (docs/scripts/hooks.py).
Full-batch gradient descent, SGD(lr=0.5), as ``python -m manual_bp`` trains it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import manual_bp as mbp

OUTPUTS = ("seed_training.png",)


def train(seed: int = 0, n: int = 400, epochs: int = 2000):
    rng = np.random.default_rng(seed)
    X, y = mbp.data.two_moons(n, noise=0.15, rng=rng)  # (n, 2), (n,)
    model = mbp.Sequential(mbp.Linear(2, 3, rng=rng), mbp.ReLU(), mbp.Linear(3, 2, rng=rng))
    loss_fn = mbp.SoftmaxCrossEntropy()
    hist = mbp.train.fit(model, loss_fn, mbp.SGD(model, lr=0.5), X, y, epochs, verbose=False, progress=False)
    return model, X, y, hist


def main(out_dir: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    model, X, y, hist = train()
    lo, hi = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 250), np.linspace(lo[1], hi[1], 250))
    z = mbp.train.predict(model, np.stack([g0.ravel(), g1.ravel()], axis=1))  # (250*250, 2) logits
    margin = (z[:, 1] - z[:, 0]).reshape(g0.shape)

    fig = Figure(figsize=(11, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    ax.contourf(g0, g1, margin > 0, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
    ax.contour(g0, g1, margin, levels=[0.0], colors="k", linewidths=1)
    ax.scatter(X[:, 0], X[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=9, edgecolors="none")
    ax.set_title(f"decision boundary (training accuracy {hist.accuracy[-1]:.3f})", fontsize=10)
    ax.set_aspect("equal")
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(np.arange(1, hist.epochs + 1), hist.loss, color="#3182bd")
    ax.set_xscale("log")
    ax.set_xlabel("epoch (one full-batch step each)")
    ax.set_ylabel("mean cross-entropy")
    ax.set_title("loss curve, SGD(lr=0.5)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(Path(out_dir) / OUTPUTS[0])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
