"""``python -m benchmarks.conv``: one CNN training step, manual_bp against torch eager, in one run.

The step is forward + loss + backward (every parameter gradient; the input
needs none) of

    x (64, 3, 32, 32) -> Conv2d(3, 32, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Flatten
      -> Linear(32 * 16 * 16, 10) -> softmax cross-entropy (integer labels, mean)

in float32 and float64, with the same seeded data and weights in both
frameworks. Each (framework, dtype) cell runs in its own process with the same
thread count for every thread pool (``--threads``, default 1; set before the
process starts, and the process pinned to that many CPUs). Timing is
``benchmarks.timing.measure``: warm-up calls, then the median of up to
``--repeats`` samples. The manual_bp cell also reports the step's matrix
products alone (the GEMM floor: the conv's im2col product and its dW product,
the Linear's two products, in NumPy into preallocated outputs) and a per-layer
profile (median forward and backward of each layer). Writes
benchmarks/results/conv.md and conv.json (``--out PREFIX`` elsewhere) and
prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
N, C_IN, C_OUT, HW, K, CLASSES = 64, 3, 32, 32, 3, 10
FEATURES = C_OUT * (HW // 2) * (HW // 2)


def make_data(dtype: str, seed: int = 0) -> dict[str, Any]:
    """x, y and torch-default-initialised weights, drawn in float64 and rounded to ``dtype``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    b1, b2 = 1 / np.sqrt(C_IN * K * K), 1 / np.sqrt(FEATURES)
    return {
        "x": rng.standard_normal((N, C_IN, HW, HW)).astype(dtype),
        "y": rng.integers(0, CLASSES, N),
        "W1": rng.uniform(-b1, b1, (C_OUT, C_IN, K, K)).astype(dtype),  # (C_out, C_in, kH, kW) in both
        "b1": rng.uniform(-b1, b1, C_OUT).astype(dtype),
        "W2": rng.uniform(-b2, b2, (FEATURES, CLASSES)).astype(dtype),  # manual_bp's (in, out)
        "b2": rng.uniform(-b2, b2, CLASSES).astype(dtype),
    }


# ---------------------------------------------------------------- the two steps


def build_manual_bp(d: dict[str, Any]) -> tuple[Any, Any]:
    import numpy as np

    import manual_bp as mbp

    dtype = d["x"].dtype
    conv, lin = (
        mbp.Conv2d(C_IN, C_OUT, K, padding=1, rng=0, dtype=dtype),
        mbp.Linear(FEATURES, CLASSES, rng=0, dtype=dtype),
    )
    for layer, W, b in ((conv, d["W1"], d["b1"]), (lin, d["W2"], d["b2"])):
        np.copyto(layer.params["W"], W)
        np.copyto(layer.params["b"], b)
    model = mbp.Sequential(conv, mbp.ReLU(), mbp.MaxPool2d(2), mbp.Flatten(), lin)
    loss_fn = mbp.SoftmaxCrossEntropy()
    x, y = d["x"], d["y"]

    def step() -> None:
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward(), input_grad=False)  # the input needs no gradient, as in torch

    return step, model


def build_torch(d: dict[str, Any], threads: int) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[d["x"].dtype.name]
    conv = nn.Conv2d(C_IN, C_OUT, K, padding=1, dtype=dtype)
    lin = nn.Linear(FEATURES, CLASSES, dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(d["W1"]))
        conv.bias.copy_(torch.from_numpy(d["b1"]))
        lin.weight.copy_(torch.from_numpy(d["W2"].T.copy()))
        lin.bias.copy_(torch.from_numpy(d["b2"]))
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin)
    x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    return step


def gemm_floor(d: dict[str, Any]) -> Any:
    """The step's matrix products alone, into preallocated outputs: conv forward W (C_out, 27) @ cols
    (N, 27, HW^2), conv dW dout @ cols^T (summed over N), Linear x @ W and x^T @ dout."""
    import numpy as np

    r = np.random.default_rng(1)
    dtype = d["x"].dtype
    L, Kc = HW * HW, C_IN * K * K
    cols = r.standard_normal((N, Kc, L)).astype(dtype)
    W1 = d["W1"].reshape(C_OUT, Kc)
    out1 = np.empty((N, C_OUT, L), dtype)
    dW1 = np.empty((N, C_OUT, Kc), dtype)
    h, W2 = r.standard_normal((N, FEATURES)).astype(dtype), d["W2"]
    z, dz, dW2 = np.empty((N, CLASSES), dtype), r.standard_normal((N, CLASSES)).astype(dtype), np.empty_like(W2)

    def step() -> None:
        np.matmul(W1, cols, out=out1)
        np.matmul(out1, cols.transpose(0, 2, 1), out=dW1)
        np.matmul(h, W2, out=z)
        np.matmul(h.T, dz, out=dW2)

    return step


def profile(model: Any, x: Any, repeats: int) -> list[dict[str, Any]]:
    """Median forward and backward time of each manual_bp layer on the step's own activations."""
    import numpy as np

    from benchmarks.timing import measure

    rows, h = [], x
    for i, layer in enumerate(model):
        out = layer.forward(h)
        dout = np.ones_like(out)
        fwd = measure(lambda layer=layer, h=h: layer.forward(h), repeats=repeats, budget_s=1.0)
        layer.forward(h)
        bwd = measure(
            lambda layer=layer, dout=dout, i=i: layer.backward(dout, input_grad=i > 0), repeats=repeats, budget_s=1.0
        )
        rows.append(
            {"layer": f"{i} {type(layer).__name__}", "forward_ms": fwd.median * 1e3, "backward_ms": bwd.median * 1e3}
        )
        h = out
    return rows


def cell(framework: str, dtype: str, threads: int, repeats: int, budget: float) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    if 0 < threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    from benchmarks.timing import measure

    d = make_data(dtype)
    result: dict[str, Any] = {"framework": framework, "dtype": dtype, "threads": threads}
    if framework == "manual_bp":
        step, model = build_manual_bp(d)
        result["step"] = measure(step, repeats=repeats, budget_s=budget, warmup=3).to_dict()
        result["gemm_floor"] = measure(gemm_floor(d), repeats=repeats, budget_s=budget, warmup=3).to_dict()
        result["profile"] = profile(model, d["x"], max(5, repeats // 3))
    else:
        result["step"] = measure(build_torch(d, threads), repeats=repeats, budget_s=budget, warmup=3).to_dict()
        import torch

        result["torch"] = torch.__version__
    return result


# ---------------------------------------------------------------- the run


def run_cell(framework: str, dtype: str, a: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.cli import thread_env

    cmd = [
        sys.executable,
        "-m",
        "benchmarks.conv",
        "--cell",
        framework,
        "--dtypes",
        dtype,
        "--threads",
        str(a.threads),
        "--repeats",
        str(a.repeats),
        "--budget",
        str(a.budget),
    ]
    env = {**os.environ, **thread_env(a.threads)}
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.conv: the {framework} {dtype} cell failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "# CNN training step: manual_bp vs torch eager",
        "",
        f"x ({N}, {C_IN}, {HW}, {HW}) -> Conv2d({C_IN}, {C_OUT}, {K}, padding=1) -> ReLU -> MaxPool2d(2) -> Flatten "
        f"-> Linear({FEATURES}, {CLASSES}) -> cross-entropy; forward + loss + backward (no input gradient).",
        "",
        f"{meta['threads']} thread(s); CPU: {meta['cpu']}; load average before the run: {meta['loadavg']}; "
        f"torch {meta.get('torch', '?')}. Medians (± half the interquartile range), milliseconds.",
        "",
        "| dtype | manual_bp | torch eager | manual_bp / torch | GEMM floor | manual_bp / floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m, t, g = r["manual_bp"]["step"], r["torch"]["step"], r["manual_bp"]["gemm_floor"]
        out.append(
            f"| {r['dtype']} | {m['median'] * 1e3:.2f} ± {(m['q3'] - m['q1']) * 5e2:.2f} | "
            f"{t['median'] * 1e3:.2f} ± {(t['q3'] - t['q1']) * 5e2:.2f} | {m['median'] / t['median']:.2f} | "
            f"{g['median'] * 1e3:.2f} | {m['median'] / g['median']:.2f} |"
        )
    out += ["", "manual_bp per layer (median ms):", "", "| dtype | layer | forward | backward |", "|---|---|---:|---:|"]
    for r in rows:
        out += [
            f"| {r['dtype']} | {p['layer']} | {p['forward_ms']:.2f} | {p['backward_ms']:.2f} |"
            for p in r["manual_bp"]["profile"]
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.conv", description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--budget", type=float, default=5.0, help="seconds per measurement before stopping early")
    ap.add_argument("--out", default=str(RESULTS / "conv"), help="PREFIX: writes PREFIX.md and PREFIX.json")
    ap.add_argument("--cell", choices=("manual_bp", "torch"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    dtypes = a.dtypes.split(",")
    if a.cell:
        print(json.dumps(cell(a.cell, dtypes[0], a.threads, a.repeats, a.budget)), flush=True)
        return 0
    from benchmarks.cli import cpu_model, loadavg

    meta: dict[str, Any] = {
        "threads": a.threads,
        "cpu": cpu_model(),
        "loadavg": loadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rows = []
    for dtype in dtypes:
        row: dict[str, Any] = {"dtype": dtype}
        for fw in ("torch", "manual_bp"):
            row[fw] = run_cell(fw, dtype, a)
            print(f"{dtype} {fw}: {row[fw]['step']['median'] * 1e3:.2f} ms", file=sys.stderr, flush=True)
        meta["torch"] = row["torch"].get("torch")
        rows.append(row)
    text = markdown(rows, meta)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".md").write_text(text)
    Path(a.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
