"""Recurrent training steps: manual_bp against torch eager, ``python -m benchmarks.recurrent``.

The step: x (N, T, D) -> LSTM, GRU or tanh RNN (``num_layers`` layers, batch first) -> Flatten ->
Linear(T H, C) -> softmax cross-entropy -> every parameter gradient. manual_bp: the layer in a ``Sequential``,
``backward(input_grad=False)``; torch: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (the same names and layouts: the
weights are copied as they are), ``nn.Flatten``, ``nn.Linear`` (weight transposed), ``F.cross_entropy``,
``loss.backward()`` after ``zero_grad(set_to_none=True)``; the same data. Each (framework, dtype) runs in its
own process with the same thread count for NumPy's BLAS, torch's intra-op pool and OpenMP
(``benchmarks.cli.thread_env``; torch's inter-op pool: 1), pinned to that many CPUs; ``benchmarks.timing.measure``
gives the medians after a warm-up. The ratio is manual_bp / torch from the same run (> 1: manual_bp is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("LSTM", "GRU", "RNN")


def _manual_bp(a: argparse.Namespace, kind: str, dtype: str) -> tuple[Any, Callable[[], Any]]:
    import manual_bp as mbp

    rng = np.random.default_rng(0)
    N, T, D, H, C = a.N, a.T, a.D, a.H, a.classes
    layer = getattr(mbp, kind)(D, H, a.layers, rng=rng, dtype=dtype)
    model = mbp.Sequential(layer, mbp.Flatten(), mbp.Linear(T * H, C, rng=rng, dtype=dtype))
    x = rng.standard_normal((N, T, D)).astype(dtype)
    y = rng.integers(0, C, N)
    loss_fn = mbp.SoftmaxCrossEntropy()

    def step() -> Any:
        loss_fn.forward(model.forward(x), y)
        return model.backward(loss_fn.backward(), input_grad=False)

    return (model, x, y), step


def _torch(a: argparse.Namespace, kind: str, dtype: str, threads: int, mine: tuple[Any, ...]) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only possible once per process
        pass
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model, x, y = mine
    layer, _, head = model.layers
    rnn = getattr(nn, kind)(a.D, a.H, a.layers, batch_first=True, dtype=tdt)
    lin = nn.Linear(head.in_features, head.out_features, dtype=tdt)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(layer.params[name]))  # torch's names and layouts
        lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(head.params["W"].T)))  # torch's Linear is (out, in)
        lin.bias.copy_(torch.from_numpy(head.params["b"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    flatten = nn.Flatten()

    def step() -> Any:
        rnn.zero_grad(set_to_none=True)
        lin.zero_grad(set_to_none=True)
        loss = F.cross_entropy(lin(flatten(rnn(xt)[0])), yt)
        loss.backward()
        return loss

    return step


def cell(a: argparse.Namespace) -> dict[str, float]:
    """One framework and dtype in this process: median seconds per step of each variant."""
    from benchmarks.timing import measure

    cpus = sorted(os.sched_getaffinity(0))
    if 0 < a.threads < len(cpus):
        os.sched_setaffinity(0, cpus[: a.threads])
    times = {}
    for kind in VARIANTS:
        mine, step = _manual_bp(a, kind, a.dtype)
        if a.cell == "torch":
            step = _torch(a, kind, a.dtype, a.threads, mine)
        times[kind] = measure(step, repeats=a.repeats, budget_s=a.budget, warmup=a.warmup).median
    return times


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.recurrent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--N", type=int, default=32, help="batch (default %(default)s)")
    ap.add_argument("--T", type=int, default=32, help="sequence length (default %(default)s)")
    ap.add_argument("--D", type=int, default=64, help="input width (default %(default)s)")
    ap.add_argument("--H", type=int, default=128, help="hidden width (default %(default)s)")
    ap.add_argument("--layers", type=int, default=1, help="stacked layers (default %(default)s)")
    ap.add_argument("--classes", type=int, default=10, help="outputs of the linear head (default %(default)s)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--threads", type=int, default=1, help="threads for both frameworks (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds per measurement before stopping early")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cell", choices=("manual_bp", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--dtype", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.cell:
        print(json.dumps(cell(a)))
        return 0
    from benchmarks.cli import thread_env

    env = {**os.environ, **thread_env(a.threads), "PYTHONPATH": ROOT}
    shared = [
        "--N",
        str(a.N),
        "--T",
        str(a.T),
        "--D",
        str(a.D),
        "--H",
        str(a.H),
        "--layers",
        str(a.layers),
        "--classes",
        str(a.classes),
        "--threads",
        str(a.threads),
        "--repeats",
        str(a.repeats),
        "--budget",
        str(a.budget),
        "--warmup",
        str(a.warmup),
    ]
    print(
        f"# Recurrent training step: N={a.N} T={a.T} D={a.D} H={a.H} layers={a.layers} C={a.classes}; "
        f"{a.threads} thread(s); load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| dtype | layer | manual_bp (ms) | torch eager (ms) | manual_bp / torch |")
    print("|---|---|---:|---:|---:|")
    for dtype in a.dtypes.split(","):
        got = {}
        for fw in ("manual_bp", "torch"):
            cmd = [sys.executable, "-m", "benchmarks.recurrent", "--cell", fw, "--dtype", dtype, *shared]
            p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            got[fw] = json.loads(p.stdout.strip().splitlines()[-1])
        for v in VARIANTS:
            mb, tt = got["manual_bp"][v], got["torch"][v]
            print(f"| {dtype} | {v} | {mb * 1e3:.2f} | {tt * 1e3:.2f} | {mb / tt:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
