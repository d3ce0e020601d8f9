"""Sweep tasks that take down their worker process, for the cluster and resume tests.

Workers import this module by name, so it holds plain functions only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def crash(
    task: tuple[Any, ...],
    frameworks: tuple[str, ...],
    *,
    marker_dir: str,
    once: tuple[int, ...] = (),
    always: tuple[int, ...] = (),
) -> Any:
    """``crosscheck.run.api.run_task``, except that the worker process ends without an exception (as a crash
    in native code does) on the case ids in ``always`` every time, and on those in ``once`` the first time
    (a marker file in ``marker_dir`` remembers it); each start of a task leaves a file there too."""
    from crosscheck.run.api import run_task

    cid = task[1]
    starts = Path(marker_dir) / f"start-{cid}-{os.getpid()}-{len(list(Path(marker_dir).glob(f'start-{cid}-*')))}"
    starts.touch()
    marker = Path(marker_dir) / f"crashed-{cid}"
    if cid in always or (cid in once and not marker.exists()):
        marker.touch()
        os._exit(134)
    return run_task(task, frameworks)
