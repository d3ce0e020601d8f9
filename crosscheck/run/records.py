"""Results as plain data: a ``CaseResult`` (or ``TrajectoryResult``) to and from the dict of ``report.json``.

The dict is the report's own per-case entry: case id, description, dtype, bound, replay, every
comparison with every check, plus what the report's summary needs to name each tensor's kind
(``layer_kinds``: layer name -> kind, ``loss_kind``; a trajectory's ``optimizer`` and ``skipped``).
Non-finite numbers are written as ``null`` (strict JSON) and read back from what the check means:
``detects`` null is +inf (a zero reference), an error null is NaN for a check with a note (no
values compared) and +inf otherwise. ``result_from_dict(result_to_dict(r))`` gives the same
report entry as ``r``; the spec it carries holds names and kinds only, no arrays.

A JSON-lines results file (``results.jsonl``) holds one record per finished task:
``{"key": ..., "task": [...], "result": {...}}``, where ``key`` fingerprints what decides the
numbers (the code, the package versions, the frameworks); ``read_records`` skips a truncated or
unreadable line (a run killed while writing it) and records of other keys.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck.run.compare import CaseResult, Comparison
from crosscheck.spec import LayerSpec, LossSpec, NetSpec, walk
from crosscheck.tolerance import TensorCheck

_ERRORS = ("max_abs", "rel_norm", "rel_max")


def finite(x: Any) -> Any:
    """Strict JSON: infinite or NaN numbers become null (an exact match has margin inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def json_default(x: Any) -> Any:
    """NumPy scalars as Python numbers; anything else as its string."""
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


def check_to_dict(c: TensorCheck) -> dict[str, Any]:
    return {
        "name": c.name,
        "shape": list(c.shape),
        "dtype": c.dtype,
        "max_abs": c.max_abs,
        "rel_norm": c.rel_norm,
        "rel_max": c.rel_max,
        "bound": c.bound,
        "margin": c.margin,
        "detects": c.detects,
        "ok": c.ok,
        "note": c.note,
    }


def check_from_dict(d: dict[str, Any]) -> TensorCheck:
    note = d.get("note") or ""
    errs = [float(d[k]) if d[k] is not None else (math.nan if note else math.inf) for k in _ERRORS]
    detects = math.inf if d["detects"] is None else float(d["detects"])
    return TensorCheck(d["name"], tuple(d["shape"]), d["dtype"], *errs, _float(d["bound"]), note, detects)


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def result_to_dict(r: CaseResult) -> dict[str, Any]:
    """The report's entry for one case (non-finite numbers as they are; ``finite`` makes it strict JSON)."""
    first = r.first_divergence
    d: dict[str, Any] = {
        "case_id": r.case_id,
        "description": r.description,
        "dtype": r.dtype,
        "ok": r.ok,
        "bound": r.bound,
        "replay": r.replay,
        "first_divergence": None
        if first is None
        else {"tensor": first[1].name, "mode": first[0].mode, "pair": f"{first[0].backend} vs {first[0].reference}"},
        "comparisons": [
            {
                "mode": c.mode,
                "backend": c.backend,
                "reference": c.reference,
                "checks": [check_to_dict(x) for x in c.checks],
            }
            for c in r.comparisons
        ],
        "layer_kinds": {layer.name: layer.kind for layer in walk(r.spec.layers)},
        "loss_kind": r.spec.loss.kind if r.spec.loss else None,
    }
    if hasattr(r, "optimizer"):  # a TrajectoryResult
        d["optimizer"], d["skipped"] = r.optimizer, dict(r.skipped)
    return d


def result_from_dict(d: dict[str, Any]) -> CaseResult:
    """A ``CaseResult`` (a ``TrajectoryResult`` when ``d`` names an optimizer) from ``result_to_dict``'s dict."""
    layers = tuple(LayerSpec(name, kind, {}) for name, kind in (d.get("layer_kinds") or {}).items())  # older: none
    loss = LossSpec(d["loss_kind"], {}) if d.get("loss_kind") else None
    spec = NetSpec(layers, loss, d["dtype"])
    comparisons = [
        Comparison(c["mode"], c["backend"], c["reference"], [check_from_dict(x) for x in c["checks"]])
        for c in d["comparisons"]
    ]
    args = (d["case_id"], d["description"], d["dtype"], spec, _float(d["bound"]), comparisons, d.get("replay", ""))
    if "optimizer" in d:
        from crosscheck.run.trajectory import TrajectoryResult  # imports manual_bp: only when one is read

        return TrajectoryResult(*args, optimizer=d["optimizer"], skipped=dict(d.get("skipped") or {}))
    return CaseResult(*args)


def dumps(d: dict[str, Any], **kw: Any) -> str:
    """Strict JSON text of a dict of plain data."""
    return json.dumps(finite(d), default=json_default, allow_nan=False, **kw)


# ---------------------------------------------------------------- the results file

_VERSIONED = ("manual-bp", "numpy", "torch", "jax", "jaxlib", "optax")


def code_key(frameworks: tuple[str, ...]) -> dict[str, Any]:
    """What decides a task's numbers besides the task itself: the git commit, the package versions,
    the frameworks compared. Records of another key are not reused by ``--resume``."""
    from crosscheck.run.report import git_commit

    versions = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {"git_commit": git_commit(), "versions": versions, "frameworks": list(frameworks)}


def task_key(task: tuple[Any, ...]) -> str:
    """A task as one string (its JSON), e.g. ``["case", 7, null]``."""
    return json.dumps(list(task))


def record(task: tuple[Any, ...], key: dict[str, Any], result: CaseResult) -> str:
    """One line of the results file."""
    return dumps({"key": key, "task": list(task), "result": result_to_dict(result)}) + "\n"


def read_records(path: str | os.PathLike, key: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """The records of a results file, in file order; with ``key``, only those of that key.

    A line that is not a whole JSON record (the last line of a run killed mid-write) is skipped."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or not {"key", "task", "result"} <= rec.keys():
                continue
            if key is None or rec["key"] == key:
                yield rec
