"""Adaptive timing and process memory, shared by every framework's cell.

``measure(fn)`` warms ``fn`` up, then takes up to ``repeats`` samples, each the
mean of ``inner`` back-to-back calls (``inner`` is chosen so a sample lasts at
least ``min_sample_s``: microsecond steps are not lost in timer resolution), and
stops early once ``budget_s`` is spent (but never below ``min_samples``): the
large config's one-second steps get a few samples, tiny gets hundreds of calls.
``fn`` must block until its result exists (JAX: ``block_until_ready``).

Memory is read from ``/proc/self/status``: VmRSS (resident now) and VmHWM (the
resident high-water mark, what ``getrusage().ru_maxrss`` reports). The mark is
reset by writing "5" to ``/proc/self/clear_refs`` (Linux >= 4.0), so a peak is
the peak of what ran after the reset, not of the imports; without that file the
mark is not reset and ``ru_maxrss`` is used as is (documented in the README).
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Timing:
    median: float  # seconds per call
    q1: float
    q3: float
    samples: int
    inner: int  # calls per sample

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _plan(fn: Callable[[], object], warmup: int, min_sample_s: float) -> tuple[int, float]:
    """Warm ``fn`` up; return (calls per sample, the last warm call's seconds)."""
    t_call = 0.0
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn()
        t_call = time.perf_counter() - t0  # the last warm call estimates one call
    return max(1, math.ceil(min_sample_s / max(t_call, 1e-9))), t_call


def _sample(fn: Callable[[], object], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _summary(times: list[float], inner: int) -> Timing:
    if len(times) >= 2:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    else:
        q1 = q3 = times[0]
    return Timing(statistics.median(times), q1, q3, len(times), inner)


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = 25,
    budget_s: float = 3.0,
    min_samples: int = 3,
    warmup: int = 2,
    min_sample_s: float = 2e-3,
) -> Timing:
    """Median and quartiles of the per-call time of ``fn`` (see the module docstring)."""
    inner, t_call = _plan(fn, warmup, min_sample_s)
    n = max(min_samples, min(repeats, int(budget_s / max(inner * t_call, 1e-9))))
    return _summary([_sample(fn, inner) for _ in range(n)], inner)


def measure_paired(
    fa: Callable[[], object],
    fb: Callable[[], object],
    *,
    repeats: int = 25,
    budget_s: float = 3.0,
    min_samples: int = 3,
    warmup: int = 2,
    min_sample_s: float = 2e-3,
) -> dict[str, Timing]:
    """``fa``'s time over ``fb``'s, from samples taken in turn (a, b, a, b, ...) in one process.

    Each pair's ratio sees the same memory placement and the same slow or quiet
    spell of the machine, which separate processes do not. Returns the Timing of
    the ratios (``"ratio"``) and of each function (``"a"``, ``"b"``).
    """
    inner_a, t_a = _plan(fa, warmup, min_sample_s)
    inner_b, t_b = _plan(fb, warmup, min_sample_s)
    n = max(min_samples, min(repeats, int(budget_s / max(inner_a * t_a + inner_b * t_b, 1e-9))))
    pairs = [(_sample(fa, inner_a), _sample(fb, inner_b)) for _ in range(n)]
    return {
        "ratio": _summary([a / b for a, b in pairs], 1),
        "a": _summary([a for a, _ in pairs], inner_a),
        "b": _summary([b for _, b in pairs], inner_b),
    }


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Resident set size now."""
    kb = _status_kb("VmRSS")
    if kb is None:  # not Linux: the high-water mark is the best available
        return peak_bytes()
    return kb * 1024


def peak_bytes() -> int:
    """Resident high-water mark (since the last ``reset_peak``), i.e. ru_maxrss."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    return kb * 1024


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
