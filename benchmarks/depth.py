"""``python -m benchmarks.depth``: gradient time vs depth and width, backprop vs finite differences.

Backprop (manual_bp forward + loss + backward) costs one forward and one
backward whatever the number of parameters P: linear in depth. Central finite
differences (``manual_bp.gradcheck.numerical_gradient`` over every parameter)
cost 2P forwards: P grows linearly with depth and quadratically with width, and
each forward itself grows with depth, so FD grows ~depth^2 and ~width^2 (width^4
once the matrix products, not Python overhead, dominate a forward).

Two sweeps on an MLP  width -> width -> ... -> 4  with Tanh hidden layers,
batch 16, float64, softmax cross-entropy:
depth (Linear layers) 1..64 at width 8, and width 2..128 at depth 2. FD runs are
skipped, and their time estimated as 2P x (one forward + loss), when the estimate
exceeds ``--max-fd-seconds``. Writes benchmarks/results/depth.md/.json and, with
matplotlib installed, depth.png. Log-log slopes are least-squares fits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def build(depth: int, width: int, batch: int, classes: int, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    import manual_bp as mbp

    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    for i in range(depth):
        out = classes if i == depth - 1 else width
        layers.append(mbp.Linear(width, out, rng=rng))
        if i < depth - 1:
            layers.append(mbp.Tanh())
    model = mbp.Sequential(*layers)
    x = rng.standard_normal((batch, width))  # (N, width) float64
    y = rng.integers(0, classes, size=batch)  # (N,)
    return model, mbp.SoftmaxCrossEntropy(), x, y


def run_point(depth: int, width: int, a: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.timing import measure
    from manual_bp.gradcheck import numerical_gradient

    model, loss_fn, x, y = build(depth, width, a.batch, a.classes)
    P = sum(p.size for p in model.params.values())

    def backprop() -> None:
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())

    def J() -> float:
        return float(loss_fn.forward(model.forward(x), y))

    bp = measure(backprop, repeats=a.repeats, budget_s=a.budget, min_samples=3)
    fwd = measure(J, repeats=a.repeats, budget_s=a.budget, min_samples=3)
    estimate = 2 * P * fwd.median
    row: dict[str, Any] = {
        "depth": depth,
        "width": width,
        "params": P,
        "backprop_s": bp.median,
        "backprop_iqr_s": bp.iqr,
        "forward_s": fwd.median,
        "fd_estimate_s": estimate,
    }
    if estimate <= a.max_fd_seconds:
        t0 = time.perf_counter()
        for theta in model.params.values():
            numerical_gradient(J, theta)
        row["fd_s"], row["fd_measured"] = time.perf_counter() - t0, True
    else:
        row["fd_s"], row["fd_measured"] = estimate, False
    row["fd_over_backprop"] = row["fd_s"] / bp.median
    return row


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def fmt(s: float) -> str:
    from benchmarks.report import fmt_time

    return fmt_time(s)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| depth | width | params P | backprop | backprop / layer | FD (2P forwards) | FD / backprop |\n"
        "|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = [
        f"| {r['depth']} | {r['width']} | {r['params']:,} | {fmt(r['backprop_s'])} "
        f"| {fmt(r['backprop_s'] / r['depth'])} | {fmt(r['fd_s'])}{'' if r['fd_measured'] else ' (est.)'} "
        f"| {r['fd_over_backprop']:,.0f}x |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def plot(depth_rows: list[dict[str, Any]], width_rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, rows, key in ((axes[0], depth_rows, "depth"), (axes[1], width_rows, "width")):
        xs = [r[key] for r in rows]
        ax.loglog(xs, [r["backprop_s"] for r in rows], "o-", label="backprop (fwd + bwd)")
        ax.loglog(xs, [r["fd_s"] for r in rows], "s-", label="finite differences (2P forwards)")
        ax.set_xlabel(key)
        ax.set_ylabel("seconds per full gradient")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title(f"width {depth_rows[0]['width']}")
    axes[1].set_title(f"depth {width_rows[0]['depth']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.depth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--depths", default="1,2,4,8,16,32,64")
    ap.add_argument("--widths", default="2,4,8,16,32,64,128")
    ap.add_argument("--width", type=int, default=8, help="width of the depth sweep")
    ap.add_argument("--depth", type=int, default=2, help="depth of the width sweep")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--max-fd-seconds", type=float, default=20.0)
    ap.add_argument("--out", default=None, help="also write OUT.md/.json/.png")
    a = ap.parse_args(argv)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(a.threads)  # before NumPy is imported (below, in build)
    if "numpy" in sys.modules:
        print("note: NumPy was imported before the thread count was set", file=sys.stderr)

    depth_rows = [run_point(d, a.width, a) for d in map(int, a.depths.split(","))]
    width_rows = [run_point(a.depth, w, a) for w in map(int, a.widths.split(","))]
    slopes = {
        "backprop_vs_depth": slope([r["depth"] for r in depth_rows], [r["backprop_s"] for r in depth_rows]),
        "fd_vs_depth": slope([r["depth"] for r in depth_rows], [r["fd_s"] for r in depth_rows]),
        "backprop_vs_width": slope([r["width"] for r in width_rows], [r["backprop_s"] for r in width_rows]),
        "fd_vs_width": slope([r["width"] for r in width_rows], [r["fd_s"] for r in width_rows]),
        "fd_vs_params_depth_sweep": slope([r["params"] for r in depth_rows], [r["fd_s"] for r in depth_rows]),
    }
    md = "\n".join(
        [
            "# Gradient time: backprop vs finite differences\n",
            f"`python -m benchmarks.depth {' '.join(argv if argv is not None else sys.argv[1:])}`; "
            f"batch {a.batch}, {a.classes} classes, float64, Tanh hidden layers, {a.threads} thread(s)\n",
            f"## Depth sweep (width {a.width})\n",
            table(depth_rows),
            f"## Width sweep (depth {a.depth})\n",
            table(width_rows),
            "## Log-log slopes (time ∝ size^slope)\n",
            "\n".join(f"- {k.replace('_', ' ')}: {v:.2f}" for k, v in slopes.items()) + "\n",
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    prefixes = [RESULTS / "depth"] + ([Path(a.out)] if a.out else [])
    for prefix in prefixes:
        prefix.with_suffix(".md").write_text(md)
        prefix.with_suffix(".json").write_text(
            json.dumps(
                {"depth_sweep": depth_rows, "width_sweep": width_rows, "slopes": slopes, "args": vars(a)}, indent=1
            )
        )
        if plot(depth_rows, width_rows, prefix.with_suffix(".png")):
            md_png = f"wrote {prefix.with_suffix('.png')}"
            print(md_png, file=sys.stderr)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
