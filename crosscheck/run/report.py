"""The verification report: Markdown for people, JSON for machines, both with an environment fingerprint."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck.run.compare import CaseResult
from crosscheck.run.records import dumps, result_from_dict, result_to_dict
from crosscheck.spec import walk
from crosscheck.tolerance import TensorCheck


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Versions and machine facts that a reader needs to reproduce a report."""
    env: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "blas": _blas(),
        "manual_bp": _version("manual-bp"),
        "git_commit": git_commit(),
    }
    for mod in ("torch", "jax", "jaxlib", "optax"):  # installed versions: a sweep's workers may import what this
        env[mod] = _version(mod)  # process did not (optax, on worker processes only)
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        env["jax_backend"] = jax.default_backend()
        env["jax_enable_x64"] = bool(jax.config.jax_enable_x64)
        env["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    return env


def _kind_of(result: CaseResult, check: TensorCheck) -> tuple[str, str]:
    """(layer or loss kind, tensor kind) of a compared tensor, e.g. ("linear", "dW"); ("adam", "exp_avg")."""
    if hasattr(result, "kind_of"):  # a trajectory (crosscheck.run.trajectory.TrajectoryResult) names its own
        return result.kind_of(check.name)
    loss_kind = result.spec.loss.kind if result.spec.loss else "loss"
    if check.name in ("loss", "dlogits"):
        return loss_kind, check.name
    layer, tensor = check.name.rsplit(".", 1)
    kinds = {spec.name: spec.kind for spec in walk(result.spec.layers)}  # containers' children too
    return kinds.get(layer, "?"), tensor


WEAK = 1e-3  # a check that cannot see a 0.1% error in its tensor (or 10x its bound, if larger) is weak


def weak(c: TensorCheck) -> bool:
    """True when the check would pass a relative error ``max(WEAK, 10 * bound)`` in its tensor."""
    return c.detects > max(WEAK, 10 * c.bound)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else "nan" if math.isnan(x) else f"{x:.2e}"


@dataclass
class Report:
    """Results of a sweep (or of ``crosscheck.verify``) with settings and environment."""

    results: list[CaseResult]
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=environment)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]

    def summary(self, by_pair: bool = True) -> list[dict[str, Any]]:
        """Worst error and smallest margin per (dtype, pair, layer kind, tensor kind).

        ``by_pair=False`` folds the three pairs (manual_bp vs torch, manual_bp
        vs jax, torch vs jax) into one row.
        """
        rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for r in self.results:
            for comp in r.comparisons:
                pair = f"{comp.backend} vs {comp.reference}" if by_pair else "all pairs"
                for c in comp.checks:
                    kind, tensor = _kind_of(r, c)
                    row = rows.setdefault(
                        (r.dtype, pair, kind, tensor),
                        {
                            "dtype": r.dtype,
                            "pair": pair,
                            "kind": kind,
                            "tensor": tensor,
                            "n": 0,
                            "worst_error": 0.0,
                            "min_margin": math.inf,
                            "weak": 0,
                            "failed": 0,
                        },
                    )
                    row["n"] += 1
                    row["weak"] += weak(c)
                    err = c.error if not c.note else math.inf
                    row["worst_error"] = max(row["worst_error"], err)
                    row["min_margin"] = min(row["min_margin"], c.margin)
                    row["failed"] += not c.ok
        return [rows[k] for k in sorted(rows)]

    def worst(self, dtype: str) -> tuple[float, float]:
        """(worst relative error, smallest margin) over all manual_bp comparisons of one dtype."""
        checks = [
            c
            for r in self.results
            if r.dtype == dtype
            for comp in r.comparisons
            if comp.backend == "manual_bp"
            for c in comp.checks
        ]
        if not checks:
            return math.nan, math.nan
        return max(c.error for c in checks), min(c.margin for c in checks)

    def headline(self) -> str:
        n = len(self.results)
        tensors = sum(len(comp.checks) for r in self.results for comp in r.comparisons)
        n_weak = sum(weak(c) for r in self.results for comp in r.comparisons for c in comp.checks)
        parts = [f"{n} cases, {tensors} tensor comparisons ({n_weak} weak), {len(self.failures)} mismatching cases"]
        for dtype in ("float64", "float32"):
            err, margin = self.worst(dtype)
            if not math.isnan(err):
                parts.append(f"{dtype}: worst error {_fmt(err)}, smallest margin {_fmt(margin)}")
        return "; ".join(parts)

    # ---------------------------------------------------------------- output
    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "headline": self.headline(),
            "settings": self.settings,
            "environment": self.env,
            "seconds": round(self.seconds, 2),
            "summary": self.summary(),
            "cases": [result_to_dict(r) for r in self.results],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """The report back from its ``report.json`` (as parsed): every case rebuilt (``crosscheck.run.records``)."""
        return cls(
            [result_from_dict(c) for c in data["cases"]],
            settings=dict(data.get("settings") or {}),
            env=dict(data.get("environment") or {}),
            seconds=float(data.get("seconds") or 0.0),
        )

    @classmethod
    def read(cls, path: str | os.PathLike) -> Report:
        """The report in ``path``: a ``report.json`` file or the directory that holds one."""
        p = Path(path)
        return cls.from_json(json.loads((p / "report.json" if p.is_dir() else p).read_text()))

    def summary_table(self, by_pair: bool = True) -> str:
        lines = [
            "| dtype | pair | kind | tensor | n | worst error | bound | smallest margin | weak | failed |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        bounds: dict[str, float] = {}
        for r in self.results:
            bounds[r.dtype] = max(bounds.get(r.dtype, 0.0), r.bound)
        for row in self.summary(by_pair):
            bound = bounds[row["dtype"]]
            shown = f"{bound:.0e}" if row["dtype"] == "float64" else f"<= {bound:.1e}"
            lines.append(
                f"| {row['dtype']} | {row['pair']} | {row['kind']} | {row['tensor']} | {row['n']} | "
                f"{_fmt(row['worst_error'])} | {shown} | {_fmt(row['min_margin'])} | {row['weak']} | "
                f"{row['failed']} |"
            )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        out = [f"# manual_bp verification report: {verdict}", "", self.headline(), ""]
        if self.failures:
            out += ["## Mismatches", ""]
            out += ["```", *(r.summary() for r in self.failures), "```", ""]
        out += [
            "## Summary",
            "",
            "Relative error = max(norm-relative, max-entry relative); margin = bound / error. "
            "Bounds: see docs/tolerance.md (crosscheck/tolerance/). "
            f"weak: checks that would pass a relative error ||a - b|| / ||b|| of {WEAK:g} (or 10 times the "
            "bound, if larger), because S, the magnitude of the terms that formed the tensor, is that much "
            "larger than the tensor (bound * max(||b||, S) / ||b||; tensors that are zero in exact arithmetic "
            "count here).",
            "",
            self.summary_table(),
            "",
            "## Settings",
            "",
            "```json",
            json.dumps(self.settings, indent=2),
            "```",
            "",
            "## Environment",
            "",
            "| | |",
            "|---|---|",
        ]
        out += [f"| {k} | {v} |" for k, v in self.env.items()]
        out += ["", "## Cases", "", "| case | ok | description | worst error | bound |", "|---|---|---|---:|---:|"]
        for r in self.results:
            worst = max((c.error for comp in r.comparisons for c in comp.checks), default=0.0)
            out.append(
                f"| {r.case_id} | {'yes' if r.ok else '**no**'} | {r.description} | {_fmt(worst)} | {r.bound:.1e} |"
            )
        return "\n".join(out) + "\n"

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.json`` into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "report.md", out / "report.json"
        md.write_text(self.to_markdown())
        js.write_text(dumps(self.to_json(), indent=1) + "\n")
        return md, js
