"""Where a crosscheck sweep spends its time, per case and per part; and what JAX's compilation cache saves.

    PYTHONPATH=. python -m benchmarks.sweep_profile --cases 100            # the table, one process, one thread
    PYTHONPATH=. python -m benchmarks.sweep_profile --cases 100 --jax-cache /tmp/jaxcache --passes 2

The default sweep's case tasks (the seed network in both dtypes, then case ids 0, 1, ...) run in
this process exactly as ``crosscheck.run.api.run_task`` runs them, with timers wrapped around the
parts: case generation (``crosscheck.cases``), manual_bp (both of its runs), torch, JAX's trace,
lowering and compile (``crosscheck.reference.jax_ref.compiled``), JAX's run (the rest of the JAX
reference), and the comparison with its term sizes (the rest of ``compare_case``). Trajectories
are timed whole (``--trajectories``). ``--passes 2`` runs the same ids again in the same process;
with ``--jax-cache DIR`` (``crosscheck --jax-cache``) the second pass, like a second sweep, reads
the compiled computations from the cache. Prints one table per pass with cases/s per core.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

PARTS = ("case generation", "manual_bp", "torch", "JAX trace+compile", "JAX run", "comparison+scales",
         "trajectories")


class Timers:
    """Seconds per part, summed over the cases of one pass."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.seconds[part] += time.perf_counter() - start

        return timed


def profile(ids: list[int], trajectories: list[str], frameworks: tuple[str, ...]) -> tuple[dict[str, float], float]:
    """Run the seed network, ``ids`` and ``trajectories`` once; (seconds per part, wall seconds)."""
    from crosscheck import cases
    from crosscheck.reference import jax_ref, reference, torch_ref
    from crosscheck.run import compare, trajectory
    from crosscheck.run.api import run_case

    timers = Timers()
    saved = [(compare, "run_manual_both"), (torch_ref, "run"), (jax_ref, "run"), (jax_ref, "compiled")]
    originals = [getattr(mod, name) for mod, name in saved]
    compare.run_manual_both = timers.wrap("manual_bp", compare.run_manual_both)
    torch_ref.run = timers.wrap("torch", torch_ref.run)
    jax_ref.run = timers.wrap("JAX all", jax_ref.run)
    jax_ref.compiled = timers.wrap("JAX trace+compile", jax_ref.compiled)
    for fw in frameworks:
        reference(fw)
    start = time.perf_counter()
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
    wall = time.perf_counter() - start
    s = timers.seconds
    parts = {
        "case generation": s["case generation"], "manual_bp": s["manual_bp"], "torch": s["torch"],
        "JAX trace+compile": s["JAX trace+compile"], "JAX run": s["JAX all"] - s["JAX trace+compile"],
        "comparison+scales": s["compare_case"] - s["manual_bp"] - s["torch"] - s["JAX all"],
        "trajectories": s["trajectories"],
    }
    return parts, wall


def table(parts: dict[str, float], wall: float, n_cases: int, n_traj: int, cpu: float) -> str:
    total = sum(parts.values())
    lines = ["| part | seconds | share | ms per case |", "|---|---:|---:|---:|"]
    for name in PARTS:
        per = parts[name] / max(n_traj if name == "trajectories" else n_cases, 1) * 1e3
        lines.append(f"| {name} | {parts[name]:.2f} | {parts[name] / total:.0%} | {per:.1f} |")
    lines.append(f"| all | {total:.2f} | 100% | {total / max(n_cases + n_traj, 1) * 1e3:.1f} |")
    lines.append("")
    lines.append(f"{n_cases} cases and {n_traj} trajectories in {wall:.1f} s wall, {cpu:.1f} s CPU: "
                 f"{(n_cases + n_traj) / cpu:.2f} tasks/s per core")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100, help="random case ids 0..N-1 (default 100)")
    p.add_argument("--trajectories", action="store_true", help="also time the default trajectories")
    p.add_argument("--frameworks", default="torch,jax")
    p.add_argument("--jax-cache", metavar="DIR", help="JAX's persistent compilation cache (crosscheck --jax-cache)")
    p.add_argument("--passes", type=int, default=1, help="run the same ids this many times (default 1)")
    args = p.parse_args(argv)

    from crosscheck.run.api import enable_jax_cache, one_thread_per_process

    one_thread_per_process()  # as every sweep process runs
    if args.jax_cache:
        enable_jax_cache(args.jax_cache)
    from crosscheck.run.trajectory import trajectory_ids

    ids = list(range(args.cases))
    traj = trajectory_ids(None, (0, 1)) if args.trajectories else []
    for k in range(1, args.passes + 1):
        cpu0 = time.process_time()
        parts, wall = profile(ids, traj, tuple(args.frameworks.split(",")))
        cpu = time.process_time() - cpu0
        cache = f", JAX cache {args.jax_cache}" if args.jax_cache else ""
        print(f"\n## Pass {k} of {args.passes}{cache}\n")
        print(table(parts, wall, len(ids) + 2, len(traj), cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
