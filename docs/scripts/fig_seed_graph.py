"""The seed network's computational graph for one sample: forward values on the nodes, gradients on the edges.

``python docs/scripts/fig_seed_graph.py [OUT_DIR]`` (the docs build runs it through docs/scripts/hooks.py).
The numbers come from manual_bp's own forward and backward on a seeded 2-3-2 network; each node shows its
value and the gradient of the loss with respect to it, each weight edge shows the weight's gradient.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import manual_bp as mbp

OUTPUTS = ("seed_graph.png",)


def one_sample(seed: int = 19):
    """Forward and backward of the seed network on one sample; returns every named value and gradient."""
    rng = np.random.default_rng(seed)
    model = mbp.Sequential(mbp.Linear(2, 3, rng=rng), mbp.ReLU(), mbp.Linear(3, 2, rng=rng))
    x = np.array([[0.8, -0.4]])  # (1, 2)
    y = np.array([1])
    loss_fn = mbp.SoftmaxCrossEntropy()
    z1 = model[0].forward(x)  # (1, 3)
    a1 = model[1].forward(z1)
    z2 = model[2].forward(a1)  # (1, 2)
    L = loss_fn.forward(z2, y)
    dz2 = loss_fn.backward()  # (1, 2)
    da1 = model[2].backward(dz2)
    dz1 = model[1].backward(da1)
    dx = model[0].backward(dz1)  # (1, 2)
    return {
        "x": x[0],
        "z1": z1[0],
        "a1": a1[0],
        "z2": z2[0],
        "L": float(L),
        "dx": dx[0],
        "dz1": dz1[0],
        "da1": da1[0],
        "dz2": dz2[0],
        "dW1": model[0].grads["W"],
        "dW2": model[2].grads["W"],
        "y": int(y[0]),
    }


def main(out_dir: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = one_sample()
    cols = [("x", "dx", 2), ("z1", "dz1", 3), ("a1", "da1", 3), ("z2", "dz2", 2)]
    xs = {name: 1.0 + 2.6 * i for i, (name, _, _) in enumerate(cols)}
    ys = {n: np.linspace(-(n - 1) / 2, (n - 1) / 2, n)[::-1] * 1.6 for n in (1, 2, 3)}
    fig = Figure(figsize=(12, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.set_xlim(0, 12.6)
    ax.set_ylim(-3.1, 2.9)

    def node(cx, cy, title, val, grad, color):
        ax.add_patch(_box(cx, cy, color))
        ax.text(cx, cy + 0.18, f"{title} = {val + 0.0:+.3f}", ha="center", va="center", fontsize=8.5)
        ax.text(cx, cy - 0.2, f"d = {grad + 0.0:+.3f}", ha="center", va="center", fontsize=8.5, color="#b30000")

    def edge(name_a, i, name_b, j, label, n_a, n_b, frac=0.3):
        x0, y0 = xs[name_a] + 0.55, ys[n_a][i]
        x1, y1 = xs[name_b] - 0.55, ys[n_b][j]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "-|>", "color": "#777", "lw": 0.8})
        if label:
            lx, ly = x0 + frac * (x1 - x0), y0 + frac * (y1 - y0)
            ax.text(
                lx,
                ly,
                label,
                fontsize=7,
                color="#b30000",
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            )

    for i in range(2):
        for j in range(3):
            frac = (0.2 + 0.3 * j) if i == 0 else (0.8 - 0.3 * j)  # spread the labels of crossing edges
            edge("x", i, "z1", j, f"dW1={v['dW1'][i, j]:+.3f}", 2, 3, frac=frac)
    for j in range(3):
        edge("z1", j, "a1", j, f"relu' = {int(v['z1'][j] > 0)}", 3, 3, frac=0.5)
    for i in range(3):
        for j in range(2):
            frac = (0.22 + 0.2 * i) if j == 0 else (0.78 - 0.2 * i)
            edge("a1", i, "z2", j, f"dW2={v['dW2'][i, j]:+.3f}", 3, 2, frac=frac)
    for name, gname, n in cols:
        color = {"x": "#deebf7", "z1": "#fee6ce", "a1": "#e5f5e0", "z2": "#efedf5"}[name]
        for k in range(n):
            node(xs[name], ys[n][k], f"{name}[{k}]", v[name][k], v[gname][k], color)
    lx = xs["z2"] + 2.3
    for j in range(2):
        ax.annotate(
            "",
            xy=(lx - 0.6, 0),
            xytext=(xs["z2"] + 0.55, ys[2][j]),
            arrowprops={"arrowstyle": "-|>", "color": "#777", "lw": 0.8},
        )
    ax.add_patch(_box(lx, 0, "#fff7bc"))
    ax.text(lx, 0.18, f"L = {v['L']:.3f}", ha="center", va="center", fontsize=8.5)
    ax.text(lx, -0.2, f"y = {v['y']}, dL = 1", ha="center", va="center", fontsize=8.5, color="#b30000")
    for name, label in (("x", "input"), ("z1", "z1 = x W1 + b1"), ("a1", "a1 = relu(z1)"), ("z2", "z2 = a1 W2 + b2")):
        ax.text(xs[name], 2.65, label, ha="center", fontsize=9, weight="bold")
    ax.text(lx, 2.65, "softmax + CE", ha="center", fontsize=9, weight="bold")
    ax.text(
        0.2,
        -2.95,
        "black: forward value; red d: dL/d(value), flowing right to left; "
        "edge labels: the gradient of that weight (dW = input value x d of the output node)",
        fontsize=8,
        color="#444",
    )
    fig.tight_layout()
    fig.savefig(Path(out_dir) / OUTPUTS[0])


def _box(cx: float, cy: float, color: str):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((cx - 0.55, cy - 0.42), 1.1, 0.84, boxstyle="round,pad=0.02", fc=color, ec="#555", lw=0.8)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
