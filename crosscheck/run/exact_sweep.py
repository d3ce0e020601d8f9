"""The exact sweep: manual_bp, PyTorch and JAX each measured against the exact value (docs/exact.md).

For every case small enough (``crosscheck.reference.exact.MAX_NODES`` scalar operations per run) whose
kinds all have an exact forward, every named tensor of both runs is computed in 50-digit arithmetic, and
each implementation's tensor is measured against it:

    err_max  = max_i |a_i - e_i|   / max(max_i |e_i|, S, tiny)
    err_norm = ||a - e||_2         / max(||e||_2,     S, tiny)
    units    = err_max / eps       (eps of the case's dtype: the error in roundings of the tensor's terms)

with S the term size the tolerance code computes (``crosscheck.tolerance.scales``, here from the exact
values rounded to the case's dtype) and the case's bound (``crosscheck.tolerance.bound``). A check of the
exact sweep passes when max(err_max, err_norm) <= bound: the bound is sound for that tensor. Differences
are taken in the high precision, so a float64 error of a fraction of an ulp is measured, not rounded away.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.kinds._exact import mp
from crosscheck.reference import FRAMEWORKS, exact, reference
from crosscheck.spec import walk

IMPLEMENTATIONS = ("manual_bp", *FRAMEWORKS)


@dataclass(frozen=True)
class ExactCheck:
    """One tensor of one implementation against the exact value."""

    case_id: str
    dtype: str
    mode: str
    name: str
    layer_kind: str  # the layer's kind, or the loss's for ``loss`` and ``dlogits``
    tensor: str  # out, dx, dW, db, running_mean, loss, dlogits, ...
    implementation: str
    err_max: float
    err_norm: float
    units: float
    bound: float

    @property
    def ok(self) -> bool:
        return max(self.err_max, self.err_norm) <= self.bound


@dataclass
class ExactSweep:
    """The checks of every case run, and the cases skipped with their reason."""

    checks: list[ExactCheck] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # case id -> why
    cases: list[str] = field(default_factory=list)

    @property
    def excess(self) -> list[ExactCheck]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "skipped": self.skipped, "checks": [asdict(c) for c in self.checks]}


def measure(a: np.ndarray, e: np.ndarray, scale: float, dtype: str) -> tuple[float, float]:
    """(err_max, err_norm) of the float array ``a`` against the mpf array ``e`` (module docstring)."""
    m = mp()
    a = np.asarray(a, dtype=np.float64).ravel()
    ev = np.asarray(e, dtype=object).ravel()
    with m.workdps(exact.DIGITS):  # the differences in the high precision: no rounding to a float first
        diff = [abs(m.mpf(float(x)) - y) for x, y in zip(a, ev)]
        dmax = float(max(diff, default=0))
        dnorm = float(m.sqrt(m.fsum(d * d for d in diff)))
        emax = float(max((abs(y) for y in ev), default=0))
        enorm = float(m.sqrt(m.fsum(y * y for y in ev)))
    tiny = float(np.finfo(dtype).tiny)
    return dmax / max(emax, scale, tiny), dnorm / max(enorm, scale, tiny)


def _rounded(run: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    return {n: np.asarray(np.asarray(v, dtype=object).astype(np.float64), dtype=dtype) for n, v in run.items()}


def _kinds(spec: Any) -> dict[str, tuple[str, str]]:
    """Tensor name -> (layer kind, tensor kind)."""
    out: dict[str, tuple[str, str]] = {}
    for layer in walk(spec.layers):
        prefix = layer.name + "."
        names = ["out", "dx", *layer.buffers, *layer.outputs, *(f"d{p}" for p in layer.params)]
        out.update({prefix + n: (layer.kind, n) for n in names})
    if spec.loss is not None:
        out.update({"loss": (spec.loss.kind, "loss"), "dlogits": (spec.loss.kind, "dlogits")})
    return out


def exact_case(
    c: Any, frameworks: tuple[str, ...] = FRAMEWORKS, max_nodes: int = exact.MAX_NODES
) -> list[ExactCheck] | str:
    """Every tensor of every implementation against the exact value for one case (a ``crosscheck.cases.Case``),
    or the reason it is skipped (a kind without an exact forward, too many scalar operations)."""
    from crosscheck.run.compare import run_manual_both

    spec, manual = run_manual_both(c.model, c.loss_fn, c.x, c.y, dloss=c.dloss, dout=c.dout)
    lacking = exact.missing(spec)
    if lacking:
        return f"no exact forward: {', '.join(lacking)}"
    try:
        truth = exact.run(spec, c.x, c.y, dloss=c.dloss, dout=c.dout, max_nodes=max_nodes)
    except exact.TooLarge:
        return f"over {max_nodes} scalar operations"
    except NotImplementedError as err:
        return str(err)
    runs = {"manual_bp": manual}
    runs.update({fw: reference(fw).run(spec, c.x, c.y, dloss=c.dloss, dout=c.dout) for fw in frameworks})
    bound = tolerance.bound(spec.dtype, tolerance.reduction_length(spec, c.x), len(walk(spec.layers)))
    eps = tolerance.EPS[spec.dtype]
    kinds = _kinds(spec)
    checks = []
    for mode, exact_run in truth.items():
        S = tolerance.scales(
            spec, _rounded(exact_run, spec.dtype), c.x, c.y, dloss=c.dloss, dout=None if mode == "loss" else c.dout
        )
        for name, e in exact_run.items():
            layer_kind, tensor = kinds.get(name, ("?", name.rsplit(".", 1)[-1]))
            for impl, run in runs.items():
                err_max, err_norm = measure(run[mode][name], e, S.get(name, 0.0), spec.dtype)
                checks.append(
                    ExactCheck(
                        str(c.case_id),
                        spec.dtype,
                        mode,
                        name,
                        layer_kind,
                        tensor,
                        impl,
                        err_max,
                        err_norm,
                        err_max / eps,
                        bound,
                    )
                )
    return checks


def _task(task: tuple[Any, ...], frameworks: tuple[str, ...], max_nodes: int) -> tuple[str, list[ExactCheck] | str]:
    from crosscheck import cases

    kind, *args = task
    c = cases.seed_case(args[0]) if kind == "seed" else cases.case(*args)
    return str(c.case_id), exact_case(c, frameworks, max_nodes)


def run_exact(
    tasks: list[tuple[Any, ...]],
    frameworks: tuple[str, ...] = FRAMEWORKS,
    jobs: int = 1,
    max_nodes: int = exact.MAX_NODES,
) -> ExactSweep:
    """The exact sweep over ``crosscheck.run.api`` tasks (``("seed", dtype)``, ``("case", id, dtype)``; others
    are ignored), on ``jobs`` worker processes."""
    from functools import partial

    tasks = [t for t in tasks if t[0] in ("seed", "case")]
    work = partial(_task, frameworks=frameworks, max_nodes=max_nodes)
    if jobs <= 1 or len(tasks) <= 1:
        results = [work(t) for t in tasks]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from crosscheck.run.api import one_thread_per_process

        with ProcessPoolExecutor(
            min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"), initializer=one_thread_per_process
        ) as pool:
            results = list(pool.map(work, tasks))
    sweep = ExactSweep()
    for case_id, got in results:
        if isinstance(got, str):
            sweep.skipped[case_id] = got
        else:
            sweep.cases.append(case_id)
            sweep.checks += got
    return sweep


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def section(sweep: ExactSweep) -> str:
    """The report's "Exact oracle" section in Markdown: per layer kind and tensor kind, each implementation's
    error in units of eps (median, 99th percentile, max), the most accurate implementation, and every check
    whose error exceeds the case's bound."""
    lines = [
        "## Exact oracle",
        "",
        f"{len(sweep.cases)} cases against the 50-digit exact values, {len(sweep.skipped)} skipped; "
        f"{len(sweep.checks)} checks, {len(sweep.excess)} over their bound. Error in units of the dtype's eps: "
        "max |a - exact| / (eps max(max |exact|, S)); see docs/exact.md.",
        "",
    ]
    impls = [i for i in IMPLEMENTATIONS if any(c.implementation == i for c in sweep.checks)]
    head = (
        "| dtype | layer kind | tensor | " + " | ".join(f"{i} median / p99 / max" for i in impls) + " | most accurate |"
    )
    lines += [head, "|" + "---|" * (4 + len(impls))]
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for c in sweep.checks:
        groups.setdefault((c.dtype, c.layer_kind, c.tensor), {}).setdefault(c.implementation, []).append(c.units)
    for (dtype, kind, tensor), by_impl in sorted(groups.items()):
        cells = []
        for i in impls:
            u = by_impl.get(i, [])
            cells.append(f"{_pct(u, 50):.3g} / {_pct(u, 99):.3g} / {max(u, default=math.nan):.3g}")
        best = min(impls, key=lambda i: (_pct(by_impl.get(i, []), 99), max(by_impl.get(i, []), default=math.inf)))
        lines.append(f"| {dtype} | {kind} | {tensor} | " + " | ".join(cells) + f" | {best} |")
    lines.append("")
    if sweep.excess:
        lines += ["Checks over their bound (a bound that is not sound for them):", ""]
        lines += [
            f"- case {c.case_id} {c.mode} run, {c.name} ({c.layer_kind} {c.tensor}), {c.implementation}: "
            f"error {max(c.err_max, c.err_norm):.3e} > bound {c.bound:.1e}"
            for c in sweep.excess
        ]
        lines.append("")
    if sweep.skipped:
        reasons: dict[str, int] = {}
        for why in sweep.skipped.values():
            reasons[why] = reasons.get(why, 0) + 1
        lines += ["Skipped cases:", ""] + [f"- {n} x {why}" for why, n in sorted(reasons.items())] + [""]
    return "\n".join(lines)


def write_exact(tasks: list[tuple[Any, ...]], frameworks: tuple[str, ...], jobs: int, report_md: Any, out: str) -> bool:
    """Run the exact sweep over the tasks, append its section to ``report_md`` and write ``exact.json`` in
    ``out``; print a line and return True when every check is under its bound."""
    import json
    import os

    sweep = run_exact(tasks, frameworks, jobs)
    with open(report_md, "a", encoding="utf-8") as f:
        f.write("\n" + section(sweep))
    path = os.path.join(out, "exact.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sweep.to_dict(), f)
    print(
        f"exact: {len(sweep.cases)} cases, {len(sweep.skipped)} skipped, {len(sweep.checks)} checks, "
        f"{len(sweep.excess)} over their bound ({path})"
    )
    return not sweep.excess
