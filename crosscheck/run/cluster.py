"""A sweep's tasks on a ``dask.distributed`` cluster (``python -m crosscheck --scheduler ADDRESS``).

Each task (``crosscheck.run.api.Task``, plain data) is submitted once; a worker rebuilds the case,
compares it and sends back the result as plain data (``crosscheck.run.records``) with the key of
the code it ran (git commit, package versions), which must be the client's own. Results arrive as
they finish. A worker that dies has its tasks re-run elsewhere by the scheduler; a task that
takes down workers ``ALLOWED_FAILURES + 1`` times (the scheduler raises ``KilledWorker``) comes back
as a failed case that names it (``crashed_result``), so the sweep ends with a report, not a hang.

``ADDRESS`` is a scheduler's (``tcp://host:8786``) or ``local:N``: a ``LocalCluster`` of N worker
processes with one thread each, whose frameworks run on one thread
(``api.one_thread_per_process``). The scheduler's ``allowed-failures`` is set to
``ALLOWED_FAILURES`` for a local cluster; start a remote scheduler with
``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` for the same count there. The client keeps one
task in flight per worker thread (``submit_more``), so that a dying worker counts against the task
it ran, not against others queued on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from crosscheck import tolerance
from crosscheck.run.api import Task, enable_jax_cache, one_thread_per_process, run_task
from crosscheck.run.compare import CaseResult, Comparison
from crosscheck.run.records import code_key, result_from_dict, result_to_dict
from crosscheck.spec import LayerSpec, NetSpec
from crosscheck.tolerance import TensorCheck

ALLOWED_FAILURES = 1  # a task may take down one worker and is re-run; the second time it is reported


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            "crosscheck: --scheduler needs dask.distributed: pip install 'manual-bp[cluster]' "
            "(or pip install 'dask[distributed]')"
        ) from err
    return distributed


@cache
def _worker_key(frameworks: tuple[str, ...]) -> str:
    import json

    return json.dumps(code_key(frameworks), sort_keys=True)


def run_remote(task: Task, frameworks: tuple[str, ...], fn: Callable[..., CaseResult] = run_task) -> dict[str, Any]:
    """On a worker: ``fn(task, frameworks)`` as plain data, with the key of the code that ran it."""
    one_thread_per_process()
    enable_jax_cache()  # a worker's own $CROSSCHECK_JAX_CACHE (a local cluster's workers inherit the client's)
    return {"key": _worker_key(frameworks), "result": result_to_dict(fn(task, frameworks))}


def task_case_id(task: Task) -> str:
    """The case id a task's result carries (``seed-float64``, ``7``, ``traj-adam-default-float64``)."""
    kind, *args = task
    if kind == "seed":
        return f"seed-{args[0]}"
    return str(args[0])


def task_dtype(task: Task) -> str:
    """The dtype a task's case runs in, as far as the task itself says."""
    kind, *args = task
    if kind == "seed":
        return str(args[0])
    if kind == "trajectory":
        return "float32" if str(args[0]).endswith("float32") else "float64"
    if len(args) > 1 and args[1]:
        return str(args[1])
    return "float64" if int(args[0]) % 2 == 0 else "float32"


def replay(task: Task) -> str:
    """The command that runs one task alone."""
    kind, *args = task
    if kind == "trajectory":
        return f"python -m crosscheck --trajectory {args[0]} --jobs 1"
    if kind == "seed":
        return f"python -m crosscheck --cases 0 --dtype {args[0]} --no-trajectories --jobs 1"
    dtype = f" --dtype {args[1]}" if len(args) > 1 and args[1] else ""
    return f"python -m crosscheck --case {args[0]}{dtype} --jobs 1"


def crashed_result(task: Task, why: str) -> CaseResult:
    """A failed case for a task whose worker processes died (no numbers: one check, with the reason)."""
    nan, dtype = math.nan, task_dtype(task)
    bound = tolerance.bound(dtype, 1, 0)  # the tier's smallest: no case was built to size it
    check = TensorCheck("worker.died", (), "", nan, nan, nan, bound, why)
    spec = NetSpec((LayerSpec("worker", "crashed", {}),), None, dtype)
    return CaseResult(
        task_case_id(task),
        f"task {list(task)}: its worker process died",
        dtype,
        spec,
        bound,
        [Comparison("run", "manual_bp", "worker", [check])],
        replay=replay(task),
    )


@contextmanager
def client_for(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a new ``LocalCluster`` for ``local:N``."""
    distributed = _import_distributed()
    import dask

    if not address.startswith("local:"):
        with distributed.Client(address) as client:
            yield client
        return
    n = int(address.split(":", 1)[1])
    with dask.config.set(
        {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES, "distributed.worker.daemon": False}
    ):
        with (
            distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client


def run_on_cluster(
    tasks: list[Task],
    frameworks: tuple[str, ...],
    address: str,
    on_result: Callable[[int, CaseResult], None] | None = None,
    fn: Callable[..., CaseResult] = run_task,
) -> list[CaseResult]:
    """Run the tasks on the cluster at ``address``; ``on_result(i, result)`` as each finishes (``i``: the
    task's index in ``tasks``); returns the results in the order of ``tasks``.

    ``fn(task, frameworks)`` computes one result on a worker (``api.run_task``; tests pass their own).
    An exception raised by a task is raised here, as in a serial run."""
    distributed = _import_distributed()
    import json

    mine = code_key(frameworks)
    if address.startswith("local:"):  # the workers run this checkout's files: a commit made meanwhile is no difference
        mine.pop("git_commit")
    results: list[CaseResult | None] = [None] * len(tasks)
    with client_for(address) as client:
        index: dict[str, int] = {}
        queue = iter(enumerate(tasks))
        running = distributed.as_completed()

        def submit_more() -> None:
            """Keep one task in flight per worker thread, so a dying worker counts against its own task only."""
            slots = sum(client.nthreads().values())  # asked now: a dead worker's thread is not counted
            while running.count() < max(slots, 1):
                i, task = next(queue, (None, None))
                if task is None:
                    return
                future = client.submit(run_remote, task, frameworks, fn, key=f"crosscheck-{i}-{list(task)}", pure=False)
                index[future.key] = i
                running.add(future)

        submit_more()
        for future in running:
            i = index[future.key]
            if future.status == "error":
                err = future.exception()
                if not isinstance(err, distributed.KilledWorker):
                    raise err
                result = crashed_result(
                    tasks[i],
                    f"task {list(tasks[i])} took down every worker process that ran it (a crash in native code): {err}",
                )
            else:
                got = future.result()
                theirs = {k: v for k, v in json.loads(got["key"]).items() if k in mine}
                if theirs != mine:
                    raise RuntimeError(
                        f"crosscheck: a worker runs other code than this client: worker {theirs}, "
                        f"client {mine}; install the same commit and packages on every worker"
                    )
                result = result_from_dict(got["result"])
            future.release()
            results[i] = result
            if on_result is not None:
                on_result(i, result)
            submit_more()
    return [r for r in results if r is not None]
