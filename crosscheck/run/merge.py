"""``python -m crosscheck merge DIR... --out DIR``: shard reports into one report.

Shards merge only when they are parts of one sweep run by the same code: the same git commit and
package versions (``CODE_FIELDS`` of the environment), the same sweep and frameworks (the settings'
``sweep``, from which the whole sweep's plan is rebuilt), no case id in two shards and no planned
id missing. Anything else is refused with the difference named. The merged report lists the
cases in the order of the whole sweep's plan, so it is the report of one run over every shard's
ids, case by case.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from crosscheck.run.report import Report

# Environment entries that decide the numbers: two shards must agree on each.
CODE_FIELDS = (
    "git_commit",
    "manual_bp",
    "python",
    "numpy",
    "blas",
    "torch",
    "jax",
    "jaxlib",
    "optax",
    "jax_backend",
    "jax_enable_x64",
    "jax_default_matmul_precision",
)


class MergeError(ValueError):
    """Shard reports that are not parts of one sweep of the same code."""


def whole_plan(sweep: dict[str, Any], frameworks: list[str]) -> list[str]:
    """The case ids of the whole (unsharded) sweep that ``sweep`` (the settings' entry) describes, in order."""
    from crosscheck.run import cli
    from crosscheck.run.cluster import task_case_id

    args = argparse.Namespace(**sweep, shard=(0, 1), frameworks=tuple(frameworks))
    return [task_case_id(t) for t in cli.planned(args)]


def _show(ids: list[str], n: int = 8) -> str:
    return ", ".join(ids[:n]) + (f", ... ({len(ids)} in all)" if len(ids) > n else "")


def merge(reports: list[Report], names: list[str] | None = None) -> Report:
    """One report from the shards' reports; ``MergeError`` naming the first difference that forbids it."""
    if not reports:
        raise MergeError("crosscheck merge: no reports given")
    names = names or [f"report {i}" for i in range(len(reports))]
    first, first_name = reports[0], names[0]
    for rep, name in zip(reports, names):
        if "sweep" not in rep.settings:
            raise MergeError(
                f"crosscheck merge: {name} does not record its sweep's settings (a report written "
                "by `crosscheck.verify` or an older crosscheck); rerun that shard"
            )
    for rep, name in zip(reports[1:], names[1:]):
        for field in CODE_FIELDS:
            a, b = first.env.get(field), rep.env.get(field)
            if a != b:
                raise MergeError(
                    f"crosscheck merge: different code: {field} is {a!r} in {first_name} but {b!r} in {name}"
                )
        for field in ("sweep", "frameworks"):
            a, b = first.settings.get(field), rep.settings.get(field)
            if a != b:
                raise MergeError(
                    f"crosscheck merge: different settings: {field} is {a!r} in {first_name} but {b!r} in {name}"
                )
    seen: dict[str, str] = {}
    overlaps: list[str] = []
    for rep, name in zip(reports, names):
        for r in rep.results:
            if r.case_id in seen:
                overlaps.append(f"{r.case_id} ({seen[r.case_id]} and {name})")
            seen.setdefault(r.case_id, name)
    if overlaps:
        raise MergeError(f"crosscheck merge: overlapping case ids: {_show(overlaps)}")
    plan = whole_plan(first.settings["sweep"], first.settings["frameworks"])
    missing = [cid for cid in plan if cid not in seen]
    if missing:
        raise MergeError(
            f"crosscheck merge: gaps: the sweep plans {len(plan)} case ids and no shard has {_show(missing)}"
        )
    extra = [cid for cid in seen if cid not in set(plan)]
    if extra:
        raise MergeError(f"crosscheck merge: case ids outside the sweep's plan: {_show(extra)}")
    by_id = {r.case_id: r for rep in reports for r in rep.results}
    results = [by_id[cid] for cid in plan]
    settings = dict(first.settings)
    settings.update(
        {
            "shard": "0/1",
            "case_ids": plan,
            "merged_from": [rep.settings.get("shard") for rep in reports],
            "trajectories": [cid for rep in reports for cid in rep.settings.get("trajectories", [])],
            "command": "python -m crosscheck merge " + " ".join(names),
        }
    )
    settings["trajectories"] = [cid for cid in plan if cid in set(settings["trajectories"])]
    return Report(results, settings=settings, env=dict(first.env), seconds=sum(rep.seconds for rep in reports))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="crosscheck merge", description="Merge shard reports (directories holding report.json) into one report."
    )
    p.add_argument("dirs", nargs="+", help="the shards' report directories (or report.json files)")
    p.add_argument("--out", required=True, help="directory for the merged report.md and report.json")
    args = p.parse_args(argv)
    try:
        reports = [Report.read(d) for d in args.dirs]
        merged = merge(reports, list(args.dirs))
    except (OSError, ValueError, KeyError) as err:
        print(err, file=sys.stderr)
        return 2
    md, js = merged.write(args.out)
    print(f"{'PASSED' if merged.ok else 'FAILED'}: {merged.headline()}")
    print(f"report: {md}, {js}")
    return 0 if merged.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
