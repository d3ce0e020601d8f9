"""The Python API: verify one model, or run a sweep of seeded cases."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from crosscheck.reference import FRAMEWORKS, reference
from crosscheck.run.compare import CaseResult, compare_case, preserved_state
from crosscheck.run.report import Report


def verify(
    model: Any,
    loss_fn: Any,
    X: np.ndarray,
    y: Any,
    *,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    seed: int = 0,
    out: str | None = None,
) -> Report:
    """Compare a manual_bp model (and loss) with PyTorch and JAX on (X, y).

    Both backward runs are checked: the loss pulled back with a random scalar
    ``dloss``, and a random upstream gradient on the logits, both drawn from
    ``seed``. The model's parameters are not changed. Returns the ``Report``;
    ``out`` also writes ``report.md`` and ``report.json`` there.
    """
    start = time.perf_counter()
    with preserved_state(model):  # running statistics and Dropout masks stay as they were
        logits = model.forward(X)  # manual_bp's own checks run first: bad input fails here, clearly
        loss_fn.forward(logits, y)
    rng = np.random.default_rng(seed)
    dout = rng.standard_normal(logits.shape).astype(logits.dtype)
    dloss = float(rng.uniform(0.5, 2.0))
    result = compare_case(
        model,
        loss_fn,
        X,
        y,
        dloss=dloss,
        dout=dout,
        frameworks=frameworks,
        case_id="user",
        description=f"{type(model).__name__} on X {X.shape} {X.dtype}",
        replay="crosscheck.verify(model, loss_fn, X, y)",
    )
    report = Report(
        [result], settings={"frameworks": list(frameworks), "seed": seed}, seconds=time.perf_counter() - start
    )
    if out is not None:
        report.write(out)
    return report


def run_case(c: Any, frameworks: tuple[str, ...] = FRAMEWORKS) -> CaseResult:
    """Compare one case of ``crosscheck.cases`` (a ``Case``) with the frameworks."""
    return compare_case(
        c.model,
        c.loss_fn,
        c.x,
        c.y,
        dloss=c.dloss,
        dout=c.dout,
        frameworks=frameworks,
        case_id=c.case_id,
        description=c.description,
        replay=c.replay,
    )


def run_sweep(
    cases: Iterable[Any],
    frameworks: tuple[str, ...] = FRAMEWORKS,
    progress: Callable[[int, CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Compare every case (see ``crosscheck.cases``); ``progress(i, result)`` after each."""
    for fw in frameworks:
        reference(fw)  # a missing framework fails before any work
    return _collect((run_case(c, frameworks) for c in cases), progress)


def _collect(
    results: Iterable[CaseResult],
    progress: Callable[[int, CaseResult], None] | None,
    done: list[CaseResult] | None = None,
) -> list[CaseResult]:
    """The results as a list (``done``, filled as they arrive), calling ``progress(i, result)`` after each."""
    done = [] if done is None else done
    for r in results:
        done.append(r)
        if progress is not None:
            progress(len(done) - 1, r)
    return done


def one_thread_per_process() -> None:
    """Run the frameworks' ops on one thread in this process (call it before torch is imported).

    For worker processes that already take one core each: torch's OpenMP threads would otherwise wait
    for work by spinning on the other workers' cores (measured: a 2-worker sweep 13% slower)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


JAX_CACHE_ENV = "CROSSCHECK_JAX_CACHE"  # a directory: JAX's persistent compilation cache for every sweep process


def enable_jax_cache(directory: str | os.PathLike | None = None) -> str | None:
    """Keep JAX's compiled computations in ``directory`` (default: ``$CROSSCHECK_JAX_CACHE``; none: off), so
    that a sweep of the same ids compiles nothing again. Worker processes inherit it through the environment.

    Only compilation is cached (keyed by the computation, the compiler options and the versions); tracing
    and lowering still run, and the numbers are the same bits as a fresh compile's."""
    directory = os.fspath(directory) if directory is not None else os.environ.get(JAX_CACHE_ENV)
    if not directory:
        return None
    os.environ[JAX_CACHE_ENV] = directory
    settings = {
        "jax_compilation_cache_dir": directory,
        "jax_persistent_cache_min_compile_time_secs": 0.0,
    }  # a case compiles in well under JAX's 1 s
    for name, value in settings.items():
        os.environ[name.upper()] = str(value)  # read by JAX when a worker imports it
    if "jax" in sys.modules:
        for name, value in settings.items():
            sys.modules["jax"].config.update(name, value)
    return directory


# A task names one unit of a sweep as plain data, so that a worker process can rebuild it:
# ("seed", dtype), ("case", case_id, dtype or None) or ("trajectory", trajectory_id).
Task = tuple[Any, ...]


def run_task(task: Task, frameworks: tuple[str, ...] = FRAMEWORKS) -> CaseResult:
    """Build and compare the case a task names."""
    from crosscheck import cases
    from crosscheck.run import trajectory

    kind, *args = task
    if kind == "trajectory":
        return trajectory.run_trajectory(args[0], frameworks)
    return run_case(cases.seed_case(args[0]) if kind == "seed" else cases.case(*args), frameworks)


def run_tasks(
    tasks: list[Task],
    frameworks: tuple[str, ...] = FRAMEWORKS,
    jobs: int = 1,
    progress: Callable[[int, CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run the tasks in order, over ``jobs`` worker processes (fresh interpreters, so no process
    inherits another's framework threads); ``progress(i, result)`` after each, in order."""
    for fw in frameworks:
        reference(fw)  # a missing framework fails before any work
    if jobs <= 1 or len(tasks) <= 1:
        return _collect((run_task(t, frameworks) for t in tasks), progress)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from functools import partial

    done: list[CaseResult] = []
    with ProcessPoolExecutor(
        min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"), initializer=one_thread_per_process
    ) as pool:
        try:
            return _collect(pool.map(partial(run_task, frameworks=frameworks), tasks, chunksize=2), progress, done)
        except BrokenProcessPool as err:  # a worker killed by native code (an abort, a segfault), not an exception
            running = tasks[len(done) : len(done) + 2 * jobs]  # chunks of 2 in flight on each worker
            raise WorkerDied(
                f"crosscheck: a worker process died while running one of the tasks {running} (after {len(done)} "
                f"of {len(tasks)} finished): a crash in a framework's native code, which no exception reports; "
                f"run those tasks one by one with --jobs 1 (e.g. --case ID) to see which and its message"
            ) from err


class WorkerDied(RuntimeError):
    """A sweep's worker process ended without an exception (killed by a crash in native code)."""


class ProgressBar:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every 10% otherwise)."""

    def __init__(self, total: int, enabled: bool = True, stream: Any = None) -> None:
        self.total, self.enabled, self.stream = total, enabled, stream or sys.stderr
        self.failed, self.start = 0, time.perf_counter()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._next_print = 0

    def __call__(self, i: int, result: CaseResult) -> None:
        self.failed += not result.ok
        if not result.ok and self.enabled:
            self.stream.write(("\n" if self.tty else "") + result.summary() + "\n")
        done = i + 1
        if not self.enabled:
            return
        if self.tty or done >= self._next_print or done == self.total:
            width = 30
            filled = int(width * done / max(self.total, 1))
            line = (
                f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} cases, "
                f"{self.failed} mismatching, {time.perf_counter() - self.start:.0f} s"
            )
            self.stream.write(("\r" + line) if self.tty else line + "\n")
            if self.tty and done == self.total:
                self.stream.write("\n")
            self.stream.flush()
            self._next_print = done + max(self.total // 10, 1)
