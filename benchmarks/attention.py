"""A Transformer block's training step: manual_bp against torch eager, ``python -m benchmarks.attention``.

The step: x (N, T, D) -> pre-LN block (LayerNorm, multi-head self-attention, LayerNorm, Linear(D, d_ff),
GELU, Linear(d_ff, D), two residuals) -> Flatten -> Linear(T D, C) -> softmax cross-entropy -> every
parameter gradient. manual_bp: ``transformer_block`` in a ``Sequential``, ``backward(input_grad=False)``;
torch: ``nn.LayerNorm``, ``nn.MultiheadAttention(batch_first=True)`` (``need_weights=False``), ``nn.Linear``,
``nn.GELU``, ``F.cross_entropy``, ``loss.backward()`` after ``zero_grad(set_to_none=True)``; the same weights
(copied from manual_bp's, transposed where torch's layout is (out, in)) and data.

Rows: ``block (GELU erf)`` and ``block (GELU tanh)``, the step with each GELU form (manual_bp's erf is
``math.erf`` applied entry by entry, the tanh form is vectorised); ``attention`` alone, forward and backward
of the attention layer with a random upstream gradient. Each (framework, dtype) runs in its own process with
the same thread count for NumPy's BLAS, torch's intra-op pool and OpenMP (``benchmarks.cli.thread_env``;
torch's inter-op pool: 1), pinned to that many CPUs; ``benchmarks.timing.measure`` gives the medians after a
warm-up. The ratio is manual_bp / torch from the same run (> 1: manual_bp is slower).
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
VARIANTS = ("block (GELU erf)", "block (GELU tanh)", "attention")


def _manual_bp(a: argparse.Namespace, approximate: str, dtype: str) -> tuple[Any, dict[str, Callable[[], Any]]]:
    import manual_bp as mbp

    rng = np.random.default_rng(0)
    N, T, D, C = a.N, a.T, a.D, a.classes
    model = mbp.Sequential(
        mbp.transformer_block(D, a.heads, a.d_ff, causal=a.causal, approximate=approximate, rng=rng, dtype=dtype),
        mbp.Flatten(),
        mbp.Linear(T * D, C, rng=rng, dtype=dtype),
    )
    x = rng.standard_normal((N, T, D)).astype(dtype)
    y = rng.integers(0, C, N)
    loss_fn = mbp.SoftmaxCrossEntropy()
    attn = model[0][0][1]
    dout = rng.standard_normal((N, T, D)).astype(dtype)

    def step() -> Any:
        loss_fn.forward(model.forward(x), y)
        return model.backward(loss_fn.backward(), input_grad=False)

    def attention() -> Any:
        attn.forward(x)
        return attn.backward(dout)

    return (model, x, y, dout), {"block": step, "attention": attention}


def _torch(
    a: argparse.Namespace, approximate: str, dtype: str, threads: int, mine: tuple[Any, ...]
) -> dict[str, Callable[[], Any]]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only possible once per process
        pass
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model, x, y, dout = mine
    res1, res2 = model[0].layers  # the block: Residual(LayerNorm, MHA), Residual(LayerNorm, Linear, GELU, Linear)
    ln1, mha = res1.layers
    ln2, fc1, _, fc2 = res2.layers
    head = model[2]
    T, D = a.T, a.D

    def t(v: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(v))

    def linear(lin: Any) -> nn.Linear:
        m = nn.Linear(lin.in_features, lin.out_features, dtype=tdt)
        with torch.no_grad():
            m.weight.copy_(t(lin.params["W"].T))  # torch's layout is (out, in)
            m.bias.copy_(t(lin.params["b"]))
        return m

    def layer_norm(ln: Any) -> nn.LayerNorm:
        m = nn.LayerNorm(D, eps=ln.eps, dtype=tdt)
        with torch.no_grad():
            m.weight.copy_(t(ln.params["gamma"]))
            m.bias.copy_(t(ln.params["beta"]))
        return m

    attn = nn.MultiheadAttention(D, a.heads, batch_first=True, dtype=tdt)
    p = mha.params
    with torch.no_grad():
        attn.in_proj_weight.copy_(t(np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T])))
        attn.in_proj_bias.copy_(t(np.concatenate([p["bq"], p["bk"], p["bv"]])))
        attn.out_proj.weight.copy_(t(p["Wo"].T))
        attn.out_proj.bias.copy_(t(p["bo"]))
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if a.causal else None

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.attn, self.ln2 = layer_norm(ln1), attn, layer_norm(ln2)
            self.fc1, self.act, self.fc2 = linear(fc1), nn.GELU(approximate=approximate), linear(fc2)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            z = self.ln1(h)
            h = h + self.attn(z, z, z, attn_mask=mask, need_weights=False)[0]
            return h + self.fc2(self.act(self.fc1(self.ln2(h))))

    net = nn.Sequential(Block(), nn.Flatten(), linear(head))
    xt, yt, dt = t(x), t(y), t(dout)
    xa = t(x).requires_grad_(True)

    def step() -> Any:
        net.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        return loss

    def attention() -> Any:
        attn.zero_grad(set_to_none=True)
        xa.grad = None
        out = attn(xa, xa, xa, attn_mask=mask, need_weights=False)[0]
        out.backward(dt)
        return out

    return {"block": step, "attention": attention}


def cell(a: argparse.Namespace) -> dict[str, float]:
    """One framework and dtype in this process: median seconds per call of each variant."""
    from benchmarks.timing import measure

    cpus = sorted(os.sched_getaffinity(0))
    if 0 < a.threads < len(cpus):
        os.sched_setaffinity(0, cpus[: a.threads])
    times = {}
    for approximate in ("none", "tanh"):
        mine, steps = _manual_bp(a, approximate, a.dtype)
        if a.cell == "torch":
            steps = _torch(a, approximate, a.dtype, a.threads, mine)
        kw = {"repeats": a.repeats, "budget_s": a.budget, "warmup": a.warmup}
        times[VARIANTS[0] if approximate == "none" else VARIANTS[1]] = measure(steps["block"], **kw).median
        if approximate == "none":
            times["attention"] = measure(steps["attention"], **kw).median
    return times


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.attention", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--N", type=int, default=32, help="batch (default %(default)s)")
    ap.add_argument("--T", type=int, default=64, help="sequence length (default %(default)s)")
    ap.add_argument("--D", type=int, default=128, help="model width (default %(default)s)")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (default %(default)s)")
    ap.add_argument("--d-ff", dest="d_ff", type=int, default=512, help="feed-forward width (default %(default)s)")
    ap.add_argument("--classes", type=int, default=10, help="outputs of the linear head (default %(default)s)")
    ap.add_argument("--causal", action="store_true", help="causal self-attention")
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
        "--heads",
        str(a.heads),
        "--d-ff",
        str(a.d_ff),
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
    ] + (["--causal"] if a.causal else [])
    print(
        f"# Transformer block step: N={a.N} T={a.T} D={a.D} heads={a.heads} d_ff={a.d_ff} C={a.classes} "
        f"causal={a.causal}; {a.threads} thread(s); load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| dtype | step | manual_bp (ms) | torch eager (ms) | manual_bp / torch |")
    print("|---|---|---:|---:|---:|")
    for dtype in a.dtypes.split(","):
        got = {}
        for fw in ("manual_bp", "torch"):
            cmd = [sys.executable, "-m", "benchmarks.attention", "--cell", fw, "--dtype", dtype, *shared]
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
