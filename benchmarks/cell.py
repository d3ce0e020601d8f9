"""One (framework, config, dtype) measurement in a fresh process: ``python -m benchmarks.cell ...``.

The parent (``benchmarks.cli``) sets the thread environment variables before
this process starts; here the process is pinned to that many CPUs (when fewer
than all), the framework is imported and warmed up, the resident size is
recorded, the step is built from the shared data, every variant is timed, and
one JSON line is printed. Memory (bytes):

- ``setup``: resident after building the model, data and optimisers, above the
  resident size after importing the framework and running its whole step once
  on the tiny config (so lazily loaded library code is not counted);
- ``peak``: the resident high-water mark while timing every variant (Adam last,
  so its state is included), above that same post-import size: parameters,
  data, gradients, optimiser state and the step's temporaries;
- ``traced_step`` (NumPy runners only): ``tracemalloc``'s peak over one call of
  each variant, i.e. what one step allocates on top of the model and data.

manual_bp's cell then also times its step, and the same step in plain NumPy
(``runners.plain_numpy_step``), each in turn with its own products (``paired``:
each step over the products w/o dX0, the steps' and the products' times), after
the memory is read, so that the products' preallocated outputs are not counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tracemalloc


def _pin(threads: int) -> list[int]:
    cpus = sorted(os.sched_getaffinity(0))
    if 0 < threads < len(cpus):
        cpus = cpus[:threads]
        os.sched_setaffinity(0, cpus)
    return cpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cell")
    ap.add_argument("--framework", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--dtype", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--budget", type=float, default=3.0)
    ap.add_argument("--min-samples", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)

    cpus = _pin(a.threads)
    from benchmarks.configs import CONFIGS, make_data
    from benchmarks.runners import FRAMEWORKS
    from benchmarks.timing import measure, measure_paired, peak_bytes, reset_peak, rss_bytes

    fw = FRAMEWORKS[a.framework]
    cfg = CONFIGS[a.config]
    fw["warm"](a.threads)
    # run the framework's whole step once on the tiny config, so that library code it
    # loads lazily (kernels, dispatch tables) is resident before the baseline is read
    tx, ty, tl = make_data(CONFIGS["tiny"], a.dtype)
    for fn in fw["build"](CONFIGS["tiny"], tx, ty, tl).values():
        fn()
    del tx, ty, tl, fn
    gc.collect()
    rss0 = rss_bytes()
    resettable = reset_peak()

    x, y, layers = make_data(cfg, a.dtype)
    fns = fw["build"](cfg, x, y, layers)
    del x, y, layers
    gc.collect()
    rss1 = rss_bytes()

    reset_peak()
    times = {}
    for name, fn in fns.items():
        times[name] = measure(
            fn, repeats=a.repeats, budget_s=a.budget, min_samples=a.min_samples, warmup=a.warmup
        ).to_dict()
    peak = peak_bytes()
    memory = {"setup": rss1 - rss0, "peak": peak - rss0, "hwm_reset": resettable}
    if fw["numpy"]:
        tracemalloc.start()
        for fn in fns.values():
            fn()
        memory["traced_step"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    paired = {}
    if "paired" in fw:
        del fns, fn
        gc.collect()
        steps = fw["paired"](cfg, *make_data(cfg, a.dtype))
        for name in ("grad", "plain"):
            res = measure_paired(
                steps[name],
                steps["products"],
                repeats=a.repeats,
                budget_s=2 * a.budget,
                min_samples=a.min_samples,
                warmup=a.warmup,
            )
            paired[f"{name}/own_gemm_no_dx0"] = res["ratio"].to_dict()
            paired[name] = res["a"].to_dict()
            if name == "grad":  # the products' time, as paired with manual_bp's step
                paired["own_gemm_no_dx0"] = res["b"].to_dict()

    threads_info: dict[str, object] = {"requested": a.threads, "cpus": cpus}
    try:
        from threadpoolctl import threadpool_info

        threads_info["pools"] = [
            {"api": p.get("internal_api"), "num_threads": p.get("num_threads")} for p in threadpool_info()
        ]
    except ImportError:
        pass
    if a.framework.startswith("torch"):
        import torch

        threads_info["torch"] = torch.get_num_threads()
        versions = {"torch": torch.__version__}
    elif a.framework.startswith("jax"):
        import jax
        import optax

        versions = {"jax": jax.__version__, "optax": optax.__version__}
    else:
        import numpy

        versions = {"numpy": numpy.__version__}
    if a.framework == "manual_bp":
        import inspect

        import manual_bp

        versions["manual_bp"] = manual_bp.__version__
        threads_info["mbp_input_grad"] = "input_grad" not in inspect.signature(manual_bp.Sequential.backward).parameters
    out = {
        "framework": a.framework,
        "config": a.config,
        "dtype": a.dtype,
        "times": times,
        "memory": memory,
        "paired": paired,
        "threads": threads_info,
        "versions": versions,
        "python": platform.python_version(),
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
