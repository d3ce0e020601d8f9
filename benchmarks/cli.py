"""``python -m benchmarks``: every config x dtype x framework, each cell in its own process.

Writes ``benchmarks/results/latest.md`` and ``latest.json`` (and ``--out PREFIX``
.md/.json) and prints the Markdown. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.configs import CONFIGS, DTYPES

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def thread_env(threads: int) -> dict[str, str]:
    """The same thread count for every framework's thread pools (set before the process starts)."""
    n = str(threads)
    env = {
        k: n
        for k in (
            "OMP_NUM_THREADS",
            "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS",
        )
    }
    eigen = "false" if threads == 1 else "true"
    env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def git_state() -> str:
    """Commit and whether manual_bp/ has uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "manual_bp"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return f"{head}{' (manual_bp/ modified)' if dirty else ''}" if head else "n/a"
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def run_cell(fw: str, cfg: str, dt: str, a: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.cell",
        "--framework",
        fw,
        "--config",
        cfg,
        "--dtype",
        dt,
        "--threads",
        str(a.threads),
        "--repeats",
        str(a.repeats),
        "--budget",
        str(a.budget),
        "--min-samples",
        str(a.min_samples),
        "--warmup",
        str(a.warmup),
    ]
    load = float(loadavg().split()[0]) if loadavg() != "n/a" else float("nan")
    try:
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=a.cell_timeout)
    except subprocess.TimeoutExpired:
        return {"framework": fw, "config": cfg, "dtype": dt, "error": f"timed out after {a.cell_timeout} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": fw, "config": cfg, "dtype": dt, "error": f"exit {p.returncode}: {tail}"}
    out = json.loads(lines[-1])
    out["load_1min"] = load
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma list of %(default)s")
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of %(default)s")
    ap.add_argument("--frameworks", default=",".join(report.FRAMEWORK_ORDER), help="comma list of %(default)s")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for every framework (BLAS/OpenMP env vars, torch.set_num_threads, XLA flags, "
        "CPU affinity); default 1: equal and quiet on a shared machine",
    )
    ap.add_argument("--repeats", type=int, default=None, help="samples per measurement (default 25; --quick 5)")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds per measurement before stopping early (default 3; --quick 0.3)",
    )
    ap.add_argument("--min-samples", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="warm-up calls (the first JAX call compiles)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every cell this many times, round after round (frameworks interleaved in time, so a "
        "slow spell of the machine does not fall on one framework); a cell's time is the median "
        "of its rounds' medians",
    )
    ap.add_argument("--quick", action="store_true", help="tiny and small only, few repeats: a < 60 s smoke run")
    ap.add_argument("--out", default=None, help="also write OUT.md and OUT.json")
    ap.add_argument("--results", default=str(RESULTS), help="folder for latest.md / latest.json (default %(default)s)")
    ap.add_argument("--cell-timeout", type=float, default=1800.0)
    a = ap.parse_args(argv)
    if a.quick:
        if a.configs == ",".join(CONFIGS):
            a.configs = "tiny,small"
        a.repeats = a.repeats or 5
        a.budget = a.budget or 0.3
    a.repeats = a.repeats or 25
    a.budget = a.budget or 3.0
    a.configs = [c for c in a.configs.split(",") if c]
    a.dtypes = [d for d in a.dtypes.split(",") if d]
    a.frameworks = [f for f in a.frameworks.split(",") if f]
    for name, given, known in (
        ("config", a.configs, CONFIGS),
        ("dtype", a.dtypes, DTYPES),
        ("framework", a.frameworks, report.FRAMEWORK_ORDER),
    ):
        bad = [g for g in given if g not in known]
        if bad:
            ap.error(f"unknown {name} {bad}; choose from {list(known)}")
    if a.threads < 1:
        ap.error("--threads must be >= 1")
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    env = {**os.environ, **thread_env(a.threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    load_before = loadavg()
    t_start = time.perf_counter()
    todo = [(c, d, f) for c in a.configs for d in a.dtypes for f in a.frameworks]
    rounds: list[list[dict[str, Any]]] = []
    for r in range(1, a.rounds + 1):
        rounds.append([])
        for i, (cfg, dt, fw) in enumerate(todo, 1):
            t0 = time.perf_counter()
            res = run_cell(fw, cfg, dt, a, env)
            rounds[-1].append(res)
            status = res.get("error") or f"grad {report.fmt_time(res['times']['grad']['median'])}"
            print(
                f"[round {r}/{a.rounds}, {i}/{len(todo)}] {cfg:6} {dt} {fw:9} {status} "
                f"({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    cells = [report.merge_rounds(same) for same in zip(*rounds)]
    loads = [c["load_1min"] for rnd in rounds for c in rnd if "load_1min" in c]
    versions: dict[str, str] = {"python": platform.python_version()}
    for c in cells:
        versions.update(c.get("versions", {}))
    meta = {
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": a.threads,
        "thread_env": " ".join(f"{k}={v}" for k, v in thread_env(a.threads).items()),
        "load_before": load_before,
        "load_after": loadavg(),
        "load_min": min(loads, default=float("nan")),
        "load_max": max(loads, default=float("nan")),
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "rounds": a.rounds,
        "repeats": a.repeats,
        "budget": a.budget,
        "min_samples": a.min_samples,
        "warmup": a.warmup,
        "configs": a.configs,
        "dtypes": a.dtypes,
        "frameworks": a.frameworks,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "git": git_state(),
    }
    md = report.markdown(meta, cells, a.configs, a.dtypes)
    table_rows = report.rows(cells, a.configs, a.dtypes)
    data = {"meta": meta, "cells": cells, "rows": table_rows, "targets": report.targets(table_rows, cells)}
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    targets = [results / "latest"] + ([Path(a.out)] if a.out else [])
    for prefix in targets:
        prefix = prefix.with_suffix("") if prefix.suffix in (".md", ".json") else prefix
        prefix.parent.mkdir(parents=True, exist_ok=True)
        prefix.with_suffix(".md").write_text(md)
        prefix.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(md)
    print(f"wrote {', '.join(str(p) + '.md/.json' for p in targets)} in {meta['wall_s']} s", file=sys.stderr)
    return 1 if any("error" in c for c in cells) else 0
