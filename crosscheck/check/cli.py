"""``python -m crosscheck check FILE:FORWARD[,BACKWARD] --kind KIND``: check_pair from the command line."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_pair(target: str) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """``path/to/layers.py:forward,backward`` (or ``:loss_fn`` alone) -> the two functions of that file."""
    path, sep, names = target.rpartition(":")
    if not sep or not path or not names:
        raise ValueError(f"crosscheck check: expected FILE.py:FORWARD[,BACKWARD], got {target!r}")
    spec = importlib.util.spec_from_file_location(f"_checked_{Path(path).stem}", path)
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise ValueError(f"crosscheck check: no Python file at {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fns = []
    for name in names.split(","):
        if not hasattr(module, name):
            raise ValueError(f"crosscheck check: {path} has no function {name!r}")
        fns.append(getattr(module, name))
    if len(fns) > 2:
        raise ValueError(f"crosscheck check: at most two functions (forward, backward), got {names!r}")
    return fns[0], fns[1] if len(fns) == 2 else None


def parser() -> argparse.ArgumentParser:
    from crosscheck.check.adapters import ADAPTERS

    p = argparse.ArgumentParser(
        prog="crosscheck check",
        description="Check your own layer pair against PyTorch "
        "and JAX (or the golden answers): out, dx and every parameter gradient, case by case.",
    )
    p.add_argument("target", help="FILE.py:FORWARD,BACKWARD (a loss: FILE.py:LOSS_FN)")
    p.add_argument("--kind", required=True, help=f"the adapter: {', '.join(sorted(ADAPTERS))}")
    p.add_argument("--cases", type=int, default=20, help="random cases (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cases (default 0)")
    p.add_argument("--case", type=int, action="append", help="run only this case index (repeatable): a replay")
    p.add_argument("--against", default="torch,jax", help="torch,jax (default), one of them, or golden")
    p.add_argument("--out", help="also write report.md and report.json into this directory")
    return p


def main(argv: list[str]) -> int:
    from crosscheck.check.pair import check_pair

    args = parser().parse_args(argv)
    try:
        forward, backward = load_pair(args.target)
        against = tuple(a.strip() for a in args.against.split(",") if a.strip())
        report = check_pair(
            forward,
            backward,
            kind=args.kind,
            cases=args.cases,
            seed=args.seed,
            against=against[0] if against == ("golden",) else against,
            only=args.case,
        )
    except (ValueError, ImportError) as err:
        print(err, file=sys.stderr)
        return 2
    for r in report.results:
        print(r.summary())
    if args.out:
        md, js = report.write(args.out)
        print(f"report: {os.fspath(md)}, {os.fspath(js)}")
    n_bad = len(report.failures)
    yours = [
        c
        for r in report.results
        for comp in r.comparisons
        if comp.backend == "yours"
        for c in comp.checks
        if not c.note
    ]
    worst = (
        f"; worst error {max(c.error for c in yours):.2e}, smallest margin {min(c.margin for c in yours):.2e}"
        if yours
        else ""
    )
    print(f"\n{'PASSED' if report.ok else 'FAILED'}: {len(report.results)} cases, {n_bad} mismatching{worst}")
    return 0 if report.ok else 1
