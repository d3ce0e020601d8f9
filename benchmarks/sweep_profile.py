"""Where a crosscheck sweep spends its time, per case and per part; and what JAX's compilation cache saves.

    PYTHONPATH=. python -m benchmarks.sweep_profile --cases 100            # the table, one process, one thread
    PYTHONPATH=. python -m benchmarks.sweep_profile --cases 100 --compare-cache /tmp/jaxcache   # before/after

The default sweep's case tasks (the seed network in both dtypes, then case ids 0, 1, ...) run in
this process exactly as ``crosscheck.run.api.run_task`` runs them, with timers wrapped around the
parts: case generation (``crosscheck.cases``), manual_bp (both of its runs), torch, JAX's trace,
lowering and compile (``crosscheck.reference.jax_ref.compiled``), JAX's run (the rest of the JAX
reference), and the comparison with its term sizes (the rest of ``compare_case``). Trajectories
are timed whole (``--trajectories``). ``--jax-cache DIR`` uses JAX's persistent compilation cache
(``crosscheck --jax-cache``); ``--compare-cache DIR`` runs the same ids in three fresh processes,
as three sweeps would run: without the cache, filling it, and reading it. Prints one table per
pass with tasks/s per core (tasks over this process's CPU seconds, all threads).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

PARTS = (
    "case generation",
    "manual_bp",
    "torch",
    "JAX trace+lower",
    "XLA compile",
    "JAX run",
    "comparison+scales",
    "trajectories",
)


class Timers:
    """Wall and CPU seconds per part (CPU: this process, all its threads), summed over one pass."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                self.seconds[part] += time.perf_counter() - start
                self.cpu[part] += time.process_time() - cpu

        return timed


Parts = dict[str, tuple[float, float]]


def profile(ids: list[int], trajectories: list[str], frameworks: tuple[str, ...]) -> tuple[Parts, float, float]:
    """Run the seed network, ``ids`` and ``trajectories`` once; ((wall, CPU) s per part, wall s, CPU s)."""
    import jax.stages

    from crosscheck import cases
    from crosscheck.reference import jax_ref, reference, torch_ref
    from crosscheck.run import compare, trajectory
    from crosscheck.run.api import run_case

    timers = Timers()
    saved = [
        (compare, "run_manual_both"),
        (torch_ref, "run"),
        (jax_ref, "run"),
        (jax_ref, "compiled"),
        (jax.stages.Lowered, "compile"),
    ]
    originals = [getattr(mod, name) for mod, name in saved]
    compare.run_manual_both = timers.wrap("manual_bp", compare.run_manual_both)
    torch_ref.run = timers.wrap("torch", torch_ref.run)
    jax_ref.run = timers.wrap("JAX all", jax_ref.run)
    jax_ref.compiled = timers.wrap("JAX trace+compile", jax_ref.compiled)
    jax.stages.Lowered.compile = timers.wrap("XLA compile", jax.stages.Lowered.compile)
    for fw in frameworks:
        reference(fw)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        todo: list[Callable[[], Any]] = [lambda d=d: cases.seed_case(d) for d in ("float64", "float32")]
        todo += [lambda i=i: cases.case(i) for i in ids]
        for make in todo:
            c = timers.wrap("case generation", make)()
            timers.wrap("compare_case", run_case)(c, frameworks)
        for t in trajectories:
            timers.wrap("trajectories", trajectory.run_trajectory)(t, frameworks)
    finally:
        for (mod, name), fn in zip(saved, originals):
            setattr(mod, name, fn)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    def split(s: dict[str, float]) -> dict[str, float]:
        return {
            "case generation": s["case generation"],
            "manual_bp": s["manual_bp"],
            "torch": s["torch"],
            "JAX trace+lower": s["JAX trace+compile"] - s["XLA compile"],
            "XLA compile": s["XLA compile"],
            "JAX run": s["JAX all"] - s["JAX trace+compile"],
            "comparison+scales": s["compare_case"] - s["manual_bp"] - s["torch"] - s["JAX all"],
            "trajectories": s["trajectories"],
        }

    walls, cpus = split(timers.seconds), split(timers.cpu)
    return {k: (walls[k], cpus[k]) for k in PARTS}, wall, cpu


def table(parts: Parts, wall: float, n_cases: int, n_traj: int, cpu: float) -> str:
    total = sum(c for _, c in parts.values())
    lines = ["| part | wall s | CPU s | CPU share | CPU ms per task |", "|---|---:|---:|---:|---:|"]
    for name in PARTS:
        w, c = parts[name]
        per = c / max(n_traj if name == "trajectories" else n_cases, 1) * 1e3
        lines.append(f"| {name} | {w:.2f} | {c:.2f} | {c / total:.0%} | {per:.1f} |")
    lines.append(
        f"| all | {sum(w for w, _ in parts.values()):.2f} | {total:.2f} | 100% | "
        f"{total / max(n_cases + n_traj, 1) * 1e3:.1f} |"
    )
    lines.append("")
    lines.append(
        f"{n_cases} cases and {n_traj} trajectories in {wall:.1f} s wall, {cpu:.1f} s CPU: "
        f"{(n_cases + n_traj) / cpu:.2f} tasks/s per core"
    )
    return "\n".join(lines)


def compare_cache(args: argparse.Namespace, argv: list[str]) -> int:
    """Before and after in one run: the same ids in fresh processes without and with the JAX cache."""
    import re
    import shutil
    import subprocess

    shutil.rmtree(args.compare_cache, ignore_errors=True)
    rest = [a for i, a in enumerate(argv) if a != "--compare-cache" and (i == 0 or argv[i - 1] != "--compare-cache")]
    rates = {}
    for label, extra in [
        ("no cache", []),
        ("cache being filled", ["--jax-cache", args.compare_cache]),
        ("cache filled", ["--jax-cache", args.compare_cache]),
    ]:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.sweep_profile", *rest, *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(f"\n# {label}{out}")
        rates[label] = float(re.findall(r"([0-9.]+) tasks/s per core", out)[-1])
    print(
        "\ntasks/s per core: "
        + ", ".join(f"{k} {v:.2f}" for k, v in rates.items())
        + f"; filled cache / no cache: {rates['cache filled'] / rates['no cache']:.2f}x"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100, help="random case ids 0..N-1 (default 100)")
    p.add_argument("--trajectories", action="store_true", help="also time the default trajectories")
    p.add_argument("--frameworks", default="torch,jax")
    p.add_argument("--jax-cache", metavar="DIR", help="JAX's persistent compilation cache (crosscheck --jax-cache)")
    p.add_argument("--passes", type=int, default=1, help="run the same ids this many times (default 1)")
    p.add_argument(
        "--compare-cache",
        metavar="DIR",
        help="three fresh processes, as three sweeps: no cache, then DIR's cache filled, then read",
    )
    args = p.parse_args(argv)
    if args.compare_cache:
        return compare_cache(args, argv if argv is not None else sys.argv[1:])

    from crosscheck.run.api import enable_jax_cache, one_thread_per_process

    one_thread_per_process()  # as every sweep process runs
    if args.jax_cache:
        enable_jax_cache(args.jax_cache)
    from crosscheck.run.trajectory import trajectory_ids

    ids = list(range(args.cases))
    traj = trajectory_ids(None, (0, 1)) if args.trajectories else []
    for k in range(1, args.passes + 1):
        parts, wall, cpu = profile(ids, traj, tuple(args.frameworks.split(",")))
        cache = f", JAX cache {args.jax_cache}" if args.jax_cache else ""
        print(f"\n## Pass {k} of {args.passes}{cache}\n")
        print(table(parts, wall, len(ids) + 2, len(traj), cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
