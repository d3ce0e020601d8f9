"""A sweep that streams its results to a JSON-lines file and can resume from it.

``run_planned`` runs the planned tasks (``crosscheck.run.api.Task``) on local worker processes
(``api.run_tasks``) or on a dask cluster (``crosscheck.run.cluster``), appends one record per
finished task to the results file as it arrives (``crosscheck.run.records``), and returns the
results in the plan's order, each rebuilt from its record, so the report of a resumed, a
clustered and a serial run of the same tasks is the same case by case. Every process runs the
frameworks on one thread, the serial run's too: torch's reductions split over its threads, so
its last bits depend on their number. With ``resume`` the tasks
whose record (of the same code key) is already in the file are not run again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crosscheck.reference import reference
from crosscheck.run.api import Task, one_thread_per_process, run_tasks
from crosscheck.run.compare import CaseResult
from crosscheck.run.records import code_key, read_records, record, result_from_dict, task_key


def open_results(path: Path, resume: bool) -> Any:
    """The results file opened for appending: emptied unless ``resume``; a last line cut short by a
    killed run is removed, so the next record starts on a line of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume and path.exists():
        data = path.read_bytes()
        keep = data[: data.rfind(b"\n") + 1]  # up to the last whole line
        if len(keep) != len(data):
            with path.open("r+b") as f:
                f.truncate(len(keep))
        return path.open("a", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def run_planned(
    todo: list[Task],
    frameworks: tuple[str, ...],
    results_path: str | os.PathLike,
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    progress: Callable[[int, CaseResult], None] | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> list[CaseResult]:
    """Run ``todo`` (skipping what the results file already holds when ``resume``); ``progress(i, result)``
    once per task (``i`` counts them: the resumed ones first, then each as it finishes); returns one
    result per task, in the order of ``todo``."""
    for fw in frameworks:
        reference(fw)  # a missing framework fails before any work
    one_thread_per_process()  # torch's sums depend on its thread count: one thread here as on every worker
    path = Path(results_path)
    key = code_key(frameworks)
    done: dict[str, dict[str, Any]] = {}
    if resume:
        done = {task_key(rec["task"]): rec["result"] for rec in read_records(path, key)}
        done = {k: v for k, v in done.items() if k in {task_key(t) for t in todo}}
        log(f"crosscheck: resuming from {path}: {len(done)} of {len(todo)} tasks already done")
    pending = [t for t in todo if task_key(t) not in done]
    finished = 0
    if progress is not None:
        for t in todo:
            if task_key(t) in done:
                progress(finished, result_from_dict(done[task_key(t)]))
                finished += 1
    with open_results(path, resume) as out:

        def arrived(i: int, result: CaseResult) -> None:
            nonlocal finished
            line = record(pending[i], key, result)
            out.write(line)
            out.flush()
            done[task_key(pending[i])] = _last_result(line)
            if progress is not None:
                progress(finished, result)
            finished += 1

        if scheduler and pending:  # nothing left: no cluster to start
            from crosscheck.run.cluster import run_on_cluster

            run_on_cluster(pending, frameworks, scheduler, on_result=arrived)
        else:
            run_tasks(pending, frameworks, jobs=jobs, progress=arrived)
    return [result_from_dict(done[task_key(t)]) for t in todo]


def _last_result(line: str) -> dict[str, Any]:
    import json

    return json.loads(line)["result"]
