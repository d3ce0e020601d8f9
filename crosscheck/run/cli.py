"""``python -m crosscheck`` / ``crosscheck``: run the verification sweep and write the report."""

from __future__ import annotations

import argparse
import os
import sys
import time

from crosscheck.reference import FRAMEWORKS
from crosscheck.run.api import JAX_CACHE_ENV, ProgressBar, Task, WorkerDied, enable_jax_cache
from crosscheck.run.report import Report
from crosscheck.run.sweep import run_planned
from crosscheck.run.trajectory import trajectory_ids

SEED_BLOCK = 1_000_000  # --seed S runs case ids S * 10^6, S * 10^6 + 1, ...


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n, e.g. 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _scheduler(text: str) -> str:
    if text.startswith("local:") and not (text[6:].isdigit() and int(text[6:]) >= 1):
        raise argparse.ArgumentTypeError(f"--scheduler local:N needs a positive number of workers, got {text!r}")
    return text


def _frameworks(text: str) -> tuple[str, ...]:
    fws = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fws if f not in FRAMEWORKS]
    if bad or not fws:
        raise argparse.ArgumentTypeError(f"--frameworks takes a comma list of {FRAMEWORKS}, got {text!r}")
    return fws


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crosscheck",
        description="Verify manual_bp against PyTorch and JAX: the seed network plus seeded random cases, "
        "every activation and gradient compared; writes report.md and report.json.",
    )
    p.add_argument("--cases", type=int, default=500, help="number of random cases (default 500)")
    p.add_argument("--seed", type=int, default=0, help=f"sweep seed: case ids seed*{SEED_BLOCK} + k (default 0)")
    p.add_argument("--case", type=int, action="append", help="run only this case id (repeatable): replays a failure")
    p.add_argument(
        "--dtype",
        choices=("both", "float64", "float32"),
        default="both",
        help="both: even case ids float64, odd float32 (default); otherwise force one dtype",
    )
    p.add_argument("--frameworks", type=_frameworks, default=FRAMEWORKS, help="comma list (default torch,jax)")
    p.add_argument("--shard", type=_shard, default=(0, 1), help="run shard i of n (e.g. 2/8) of the sweep")
    p.add_argument("--out", default="reports", help="directory for report.md and report.json (default reports)")
    p.add_argument("--no-seed-network", action="store_true", help="leave out the seed's 2-3-2 network")
    p.add_argument(
        "--no-trajectories",
        action="store_true",
        help="leave out the training trajectories (20 optimiser steps vs torch.optim and optax)",
    )
    p.add_argument("--trajectory", action="append", help="run only this trajectory case id (repeatable)")
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=_jobs("auto"),
        help="worker processes: a number or auto (one per CPU core, the default)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        type=_scheduler,
        help="run the tasks on a dask.distributed cluster: a scheduler's address (tcp://host:8786) or "
        "local:N (a local cluster of N single-threaded worker processes); needs the cluster extra",
    )
    p.add_argument(
        "--results",
        metavar="FILE",
        help="JSON-lines file that every finished case is appended to (default OUT/results.jsonl)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the cases the results file already holds (same code and frameworks), run the rest, "
        "and write the full report",
    )
    p.add_argument(
        "--jax-cache",
        metavar="DIR",
        default=os.environ.get(JAX_CACHE_ENV),
        help=f"keep JAX's compiled computations in DIR, so that the same ids compile nothing the next "
        f"time (default ${JAX_CACHE_ENV}; none: no cache)",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="also measure every implementation against the 50-digit exact values (cases small enough "
        "and of kinds with an exact forward; needs the exact extra): a section of report.md, exact.json",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# The arguments that decide which tasks the whole (unsharded) sweep plans: ``merge`` rebuilds the plan from them.
SWEEP_ARGS = ("cases", "seed", "case", "dtype", "no_seed_network", "no_trajectories", "trajectory")


def _jobs(text: str) -> int:
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--jobs takes a positive number or auto, got {text!r}")
    return int(text)


def plan(args: argparse.Namespace) -> list[Task]:
    """The cases this invocation runs, in order (after sharding), as ``crosscheck.run.api`` tasks."""
    dtype = None if args.dtype == "both" else args.dtype
    ids = args.case if args.case else [args.seed * SEED_BLOCK + k for k in range(args.cases)]
    i, n = args.shard
    todo: list[Task] = []
    if not args.no_seed_network and not args.case and i == 0:
        todo += [("seed", d) for d in (("float64", "float32") if dtype is None else (dtype,))]
    todo += [("case", cid, dtype) for k, cid in enumerate(ids) if k % n == i]
    return todo


def trajectories(args: argparse.Namespace) -> list[str]:
    """The trajectory case ids this invocation runs (none when replaying single cases)."""
    if args.trajectory:
        return list(args.trajectory)
    if args.no_trajectories or args.case:
        return []
    return trajectory_ids(None if args.dtype == "both" else args.dtype, args.shard)


def planned(args: argparse.Namespace) -> list[Task]:
    """Every task of this invocation, in order: the cases (``plan``), then the trajectories."""
    return ([] if args.trajectory else plan(args)) + [("trajectory", t) for t in trajectories(args)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["merge"]:
        from crosscheck.run.merge import main as merge_main

        return merge_main(argv[1:])
    if argv[:1] == ["check"]:  # your own layer pair: docs/check-your-own.md
        from crosscheck.check.cli import main as check_main

        return check_main(argv[1:])
    args = parser().parse_args(argv)
    if args.cases < 0:
        print("crosscheck: --cases must be >= 0", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        enable_jax_cache(args.jax_cache)  # before any worker starts: they inherit it
        traj = trajectories(args)
        todo = planned(args)
        results_path = args.results or os.path.join(args.out, "results.jsonl")
        bar = ProgressBar(len(todo), enabled=not args.quiet)
        results = run_planned(
            todo,
            args.frameworks,
            results_path,
            jobs=args.jobs,
            scheduler=args.scheduler,
            resume=args.resume,
            progress=bar,
            log=(lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr)),
        )
    except (ImportError, WorkerDied) as err:
        print(err, file=sys.stderr)
        return 2
    settings = {
        "cases": args.cases,
        "seed": args.seed,
        "dtype": args.dtype,
        "frameworks": list(args.frameworks),
        "shard": f"{args.shard[0]}/{args.shard[1]}",
        "case_ids": [r.case_id for r in results],
        "trajectories": traj,
        "jobs": args.jobs,
        "scheduler": args.scheduler,
        "sweep": {k: getattr(args, k) for k in SWEEP_ARGS},
        "command": "python -m crosscheck " + " ".join(argv),
    }
    report = Report(results, settings=settings, seconds=time.perf_counter() - start)
    md, js = report.write(args.out)
    if not args.quiet:
        print(report.summary_table(by_pair=False))
    print(f"\n{'PASSED' if report.ok else 'FAILED'}: {report.headline()}")
    print(f"report: {os.fspath(md)}, {os.fspath(js)} ({report.seconds:.1f} s)")
    exact_ok = True
    if args.exact:
        from crosscheck.run.exact_sweep import write_exact

        exact_ok = write_exact(todo, args.frameworks, args.jobs, md, args.out)
    return 0 if report.ok and exact_ok else 1


if __name__ == "__main__":
    sys.exit(main())
