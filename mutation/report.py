"""Summarise a mutmut run and check it against mutation/equivalents.md.

Run from the repository root after ``mutmut run`` (``tox -e mutation`` does both)::

    python mutation/report.py            # table + verdict; exit 1 on any unexplained survivor
    python mutation/report.py --markdown # the same as a Markdown block for mutation/RESULTS.md

Every mutant that is not killed (survived, no tests, timeout, suspicious, ...)
must be listed, by its mutmut name in backticks, in mutation/equivalents.md
with the reason it is equivalent; a listed mutant that is now killed, or that
no longer exists, is reported too (the list must not go stale). The mutants
left out of scope by ``do_not_mutate_patterns`` (the calls that build an
exception's message on a ``raise`` line) are counted by generating the mutants
of each file with and without those patterns.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "mutation" / "equivalents.md"
MUTANT_NAME = re.compile(r"`([\w.]+__mutmut_\d+)`")

# mutmut 3.8.1's exit-code meanings (mutmut/stats.py); anything else is "suspicious"
STATUS_BY_EXIT_CODE = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}


def load_results(mutants: Path) -> dict[str, str]:
    """mutant name -> status, from every ``*.meta`` file mutmut wrote."""
    results: dict[str, str] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            results[name] = STATUS_BY_EXIT_CODE.get(code, "suspicious")
    return results


def listed_equivalents() -> set[str]:
    return set(MUTANT_NAME.findall(EQUIVALENTS.read_text())) if EQUIVALENTS.exists() else set()


def count_excluded() -> dict[str, int]:
    """Mutants per mutated file that the do_not_mutate_patterns keep out of scope."""
    import os

    from mutmut.configuration import config
    from mutmut.mutation.file_mutation import create_mutations

    os.chdir(ROOT)
    cfg = config()
    patterns = list(cfg.do_not_mutate_patterns)
    excluded: dict[str, int] = {}
    for path in sorted(p for src in cfg.source_paths for p in Path(src).rglob("*.py") if cfg.should_mutate(p)):
        code = path.read_text()
        cfg.do_not_mutate_patterns = patterns
        in_scope = len(create_mutations(str(path), code)[1])
        cfg.do_not_mutate_patterns = []
        everything = len(create_mutations(str(path), code)[1])
        cfg.do_not_mutate_patterns = patterns
        excluded[str(path)] = everything - in_scope
    return excluded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants", help="mutmut's output folder")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown block for RESULTS.md")
    args = parser.parse_args(argv)

    results = load_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}; run `mutmut run --max-children 1` first", file=sys.stderr)
        return 2
    counts = Counter(results.values())
    equivalents = listed_equivalents()
    not_killed = {n for n, s in results.items() if s != "killed"}
    unexplained = sorted(not_killed - equivalents)
    stale = sorted(n for n in equivalents if results.get(n, "killed") == "killed")
    equivalent = len(not_killed & equivalents)
    total = len(results)
    effective = total - equivalent
    rate = counts["killed"] / effective if effective else 1.0
    excluded = count_excluded()
    files = sorted({n.split(".x")[0] for n in results})

    rows = [
        ("mutated modules", ", ".join(files)),
        ("mutants in scope", str(total)),
        ("killed", str(counts["killed"])),
        ("survived", str(counts["survived"])),
        ("no tests", str(counts["no tests"])),
        ("timeouts", str(counts["timeout"])),
        (
            "other (suspicious, segfault, skipped, ...)",
            str(total - sum(counts[k] for k in ("killed", "survived", "no tests", "timeout"))),
        ),
        ("equivalent (listed in mutation/equivalents.md)", str(equivalent)),
        ("kill rate of non-equivalent mutants", f"{counts['killed']}/{effective} = {100 * rate:.1f}%"),
        (
            "out of scope: exception-message mutants (`raise` lines)",
            f"{sum(excluded.values())} (" + ", ".join(f"{k}: {v}" for k, v in excluded.items()) + ")",
        ),
    ]
    header = ("file", "mutants", "killed", "survived", "other", "equivalent", "kill rate", "excluded (`raise`)")
    per_file = [header]
    for module in files:
        names = [n for n in results if n.split(".x")[0] == module]
        killed = sum(results[n] == "killed" for n in names)
        survived = sum(results[n] == "survived" for n in names)
        eq = sum(results[n] != "killed" and n in equivalents for n in names)
        path = module.replace(".", "/") + ".py"
        per_file.append(
            (
                path,
                str(len(names)),
                str(killed),
                str(survived),
                str(len(names) - killed - survived),
                str(eq),
                f"{killed}/{len(names) - eq} = {100 * killed / max(len(names) - eq, 1):.1f}%",
                str(excluded.get(path, 0)),
            )
        )
    if args.markdown:
        print("| | |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
        print()
        for i, row in enumerate(per_file):
            print("| " + " | ".join(row) + " |")
            if i == 0:
                print("|" + "---|" * len(row))
    else:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        widths = [max(len(row[i]) for row in per_file) for i in range(len(header))]
        print()
        for row in per_file:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for name in unexplained:
        print(f"UNEXPLAINED {results[name]}: {name}   (mutmut show {name})")
    for name in stale:
        print(f"STALE equivalents.md entry (killed or gone): {name}")
    ok = not unexplained and not stale
    print("OK: every mutant is killed or listed as equivalent" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
