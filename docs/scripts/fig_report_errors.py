"""A verification report's errors against their bounds, per layer kind, from a real crosscheck run.

``python docs/scripts/fig_report_errors.py [OUT_DIR]``; the docs build runs it (docs/scripts/hooks.py).
It runs ``python -m crosscheck`` on the seed network and the first cases of the default sweep (no
training trajectories) into a temporary folder, reads the ``summary`` of its report.json (one row per
dtype, pair of implementations, layer kind and tensor: the worst error and the smallest margin =
bound / error) and plots, for each kind, how close each row came to its bound (error / bound). A run with a
mismatch is drawn too (its headline, in the title, counts the mismatching cases): the tests, not the
docs, are where a mismatch fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUTPUTS = ("report_errors.png",)
CASES = 12


def run_report(out: Path, cases: int = CASES) -> dict:
    cmd = [sys.executable, "-m", "crosscheck", "--cases", str(cases), "--no-trajectories", "--quiet", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    report = out / "report.json"
    if not report.exists():  # crosscheck itself broke; a mismatch still writes its report, and is drawn
        raise RuntimeError(f"{' '.join(cmd[1:])} wrote no report:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def main(out_dir: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with tempfile.TemporaryDirectory() as tmp:
        report = run_report(Path(tmp))
    rows = report["summary"]
    kinds = sorted({r["kind"] for r in rows})
    fig = Figure(figsize=(11, 0.32 * len(kinds) + 2.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)  # vertical jitter only, so that points of one kind do not hide each other
    for dtype, color, dy in (("float64", "#3182bd", -0.17), ("float32", "#e6550d", 0.17)):
        pts = [
            (1.0 / r["min_margin"], kinds.index(r["kind"]))
            for r in rows
            if r["dtype"] == dtype and r["min_margin"] and np.isfinite(r["min_margin"]) and r["min_margin"] > 0
        ]
        if pts:
            x, k = np.array(pts).T
            ax.scatter(
                np.maximum(x, 1e-12),
                k + dy + rng.uniform(-0.08, 0.08, k.size),
                s=12,
                color=color,
                alpha=0.7,
                label=f"{dtype}: one tensor, one pair of implementations",
            )
    ax.axvline(1.0, color="k", lw=1.2)
    ax.text(1.0, len(kinds) - 0.3, " bound", va="bottom", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(right=10.0)
    ax.set_yticks(range(len(kinds)), kinds, fontsize=8)
    ax.set_ylim(-0.7, len(kinds) - 0.1)
    ax.set_xlabel("worst error / bound (a check fails right of 1; errors below 1e-12 of the bound drawn at 1e-12)")
    ax.set_title(
        f"report.json of `python -m crosscheck --cases {CASES} --no-trajectories`: {report['headline'].split(';')[0]}",
        fontsize=9,
    )
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(Path(out_dir) / OUTPUTS[0])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
