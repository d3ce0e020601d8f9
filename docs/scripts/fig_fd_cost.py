"""What backpropagation saves: one backward pass against central finite differences, as the model grows.

``python docs/scripts/fig_fd_cost.py [OUT_DIR]``; the docs build runs it (docs/scripts/hooks.py).
For MLPs 2-H-H-2 of growing width H, it times (a) one forward and one backward pass, which give every
parameter's gradient, and (b) the central differences of every parameter: 2 forward passes each. The
times are measured when the figure is drawn, on the machine that draws it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import manual_bp as mbp

OUTPUTS = ("fd_cost.png",)
WIDTHS = (2, 4, 8, 16, 32, 64)


def _best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def backprop(model, loss_fn, X, y) -> None:
    """Every gradient from one forward and one backward pass."""
    loss_fn.forward(model.forward(X), y)
    model.backward(loss_fn.backward())


def finite_differences(model, loss_fn, X, y, h: float = 1e-6) -> None:
    """Every gradient from central differences: two forward passes per parameter entry."""
    for p in model.params.values():
        flat = p.reshape(-1)  # a view: writing it moves the model's parameter
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = loss_fn.forward(model.forward(X), y)
            flat[i] = old - h
            down = loss_fn.forward(model.forward(X), y)
            flat[i] = old
            _ = (up - down) / (2 * h)


def measure(widths=WIDTHS, n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = mbp.data.two_moons(n, rng=rng)
    loss_fn = mbp.SoftmaxCrossEntropy()
    rows = []
    for H in widths:
        model = mbp.Sequential(
            mbp.Linear(2, H, rng=rng), mbp.Tanh(), mbp.Linear(H, H, rng=rng), mbp.Tanh(), mbp.Linear(H, 2, rng=rng)
        )
        n_params = sum(p.size for p in model.params.values())
        args = (model, loss_fn, X, y)
        rows.append(
            (n_params, _best_of(lambda a=args: backprop(*a)), _best_of(lambda a=args: finite_differences(*a), repeat=1))
        )
    return rows


def main(out_dir: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = np.array(measure())
    fig = Figure(figsize=(7, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.loglog(
        rows[:, 0], rows[:, 2] * 1e3, "o-", color="#e6550d", label="finite differences (2 forwards per parameter)"
    )
    ax.loglog(rows[:, 0], rows[:, 1] * 1e3, "o-", color="#3182bd", label="backpropagation (1 forward + 1 backward)")
    ax.set_xlabel("number of parameters P (MLP 2-H-H-2, batch 32)")
    ax.set_ylabel("time for the whole gradient (ms)")
    ax.set_title("every gradient at once: backprop's cost stays ~ one forward, differences' grows with P", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(out_dir) / OUTPUTS[0])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
