"""Turn the cells' JSON into the tables (Markdown) and the issue-7 target checks."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.configs import CONFIGS, VARIANTS

FRAMEWORK_ORDER = ("manual_bp", "torch", "jax_jit", "jax_nojit", "gemm", "torch_gemm")
TITLES = {
    "manual_bp": "manual_bp",
    "torch": "torch eager",
    "jax_jit": "JAX jit",
    "jax_nojit": "JAX no-jit",
    "gemm": "GEMM floor",
    "torch_gemm": "torch GEMMs",
}
VARIANT_TITLES = {"grad": "fwd+loss+bwd", "sgd": "+ SGD", "adam": "+ Adam"}
MiB = 1024.0 * 1024.0


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    if abs(b) < MiB:
        return f"{b / 1024:.0f} KiB"
    return f"{b / MiB:.1f} MiB"


def fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def merge_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from its runs in several rounds: per step, the median of the rounds' medians, with the
    lowest and highest of them as q1 and q3 (the same for the paired ratios); memory: the highest peak.
    A failed round fails the cell."""
    failed = [r for r in runs if "times" not in r]
    if len(runs) == 1 or failed:
        return failed[0] if failed else runs[0]
    merged = {**runs[0], "rounds": [r["times"] for r in runs]}
    for key in ("times", "paired"):
        merged[key] = {}
        for v in runs[0].get(key, {}):
            medians = sorted(r[key][v]["median"] for r in runs)
            merged[key][v] = {"median": statistics.median(medians), "q1": medians[0], "q3": medians[-1]}
    merged["memory"] = max((r["memory"] for r in runs), key=lambda m: m["peak"])
    merged["load_1min"] = max(r.get("load_1min", float("nan")) for r in runs)
    return merged


def index(cells: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(c["framework"], c["config"], c["dtype"]): c for c in cells if "times" in c}


def t(ix: dict, fw: str, cfg: str, dt: str, variant: str, stat: str = "median") -> float | None:
    c = ix.get((fw, cfg, dt))
    if c is None or variant not in c["times"]:
        return None
    return c["times"][variant][stat]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def fmt_signed_time(s: float | None) -> str:
    """A difference of times: negative when the step beat its own products' separate run (noise)."""
    return "—" if s is None else ("−" if s < 0 else "") + fmt_time(abs(s))


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def rows(cells: list[dict[str, Any]], configs: list[str], dtypes: list[str]) -> list[dict[str, Any]]:
    """One row per (config, dtype, variant): medians, quartiles and the ratios."""
    ix = index(cells)
    out = []
    for cfg in configs:
        for dt in dtypes:
            for v in VARIANTS:
                row: dict[str, Any] = {"config": cfg, "dtype": dt, "variant": v}
                for fw in FRAMEWORK_ORDER:
                    if fw in ("gemm", "torch_gemm") and v != "grad":
                        continue
                    row[fw] = {s: t(ix, fw, cfg, dt, v, s) for s in ("median", "q1", "q3")}
                m = t(ix, "manual_bp", cfg, dt, v)
                row["mbp_over_torch"] = ratio(m, t(ix, "torch", cfg, dt, v))
                row["mbp_over_jax_jit"] = ratio(m, t(ix, "jax_jit", cfg, dt, v))
                row["mbp_over_jax_nojit"] = ratio(m, t(ix, "jax_nojit", cfg, dt, v))
                if v == "grad":
                    row["mbp_over_gemm"] = ratio(m, t(ix, "gemm", cfg, dt, "grad"))
                    row["mbp_over_gemm_no_dx0"] = ratio(m, t(ix, "gemm", cfg, dt, "grad_no_dx0"))
                    paired = ix.get(("manual_bp", cfg, dt), {}).get("paired", {})
                    row["mbp_over_own_gemm_paired"] = paired.get("grad/own_gemm_no_dx0", {}).get("median")
                    # the plain NumPy step (no checks; runners.plain_numpy_step), timed in the same process
                    row["plain_over_own_gemm_paired"] = paired.get("plain/own_gemm_no_dx0", {}).get("median")
                    row["plain"] = paired.get("plain", {}).get("median")
                    row["plain_over_torch"] = ratio(row["plain"], t(ix, "torch", cfg, dt, v))
                    row["gemm_no_dx0"] = t(ix, "gemm", cfg, dt, "grad_no_dx0")
                    row["torch_gemm_no_dx0"] = t(ix, "torch_gemm", cfg, dt, "grad_no_dx0")
                    row["numpy_over_torch_gemm"] = ratio(row["gemm_no_dx0"], row["torch_gemm_no_dx0"])
                    # time each step spends beyond its own library's products (bias, ReLU, loss, dispatch)
                    row["mbp_beyond_gemm"] = _minus(m, row["gemm_no_dx0"])
                    row["torch_beyond_gemm"] = _minus(t(ix, "torch", cfg, dt, v), row["torch_gemm_no_dx0"])
                    row["mbp_fwd"] = t(ix, "manual_bp", cfg, dt, "fwd")
                    row["mbp_bwd"] = t(ix, "manual_bp", cfg, dt, "bwd")
                    row["bwd_over_fwd"] = ratio(row["mbp_bwd"], row["mbp_fwd"])
                out.append(row)
    return out


def time_table(table_rows: list[dict[str, Any]]) -> str:
    head = (
        "| config | dtype | step | manual_bp | torch eager | JAX jit | JAX no-jit | GEMM floor "
        "| mbp/torch | mbp/JAX-jit | mbp/GEMM | bwd/fwd (mbp) |\n"
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for r in table_rows:

        def cell(fw: str, r: dict[str, Any] = r) -> str:
            d = r.get(fw)
            if not d or d["median"] is None:
                return "—"
            return f"{fmt_time(d['median'])} <sub>±{fmt_time((d['q3'] - d['q1']) / 2)}</sub>"

        gemm = cell("gemm") if r["variant"] == "grad" else ""
        lines.append(
            f"| {r['config']} | {r['dtype']} | {VARIANT_TITLES[r['variant']]} | {cell('manual_bp')} "
            f"| {cell('torch')} | {cell('jax_jit')} | {cell('jax_nojit')} | {gemm} "
            f"| {fmt_ratio(r['mbp_over_torch'])} | {fmt_ratio(r['mbp_over_jax_jit'])} "
            f"| {fmt_ratio(r.get('mbp_over_gemm')) if r['variant'] == 'grad' else ''} "
            f"| {fmt_ratio(r.get('bwd_over_fwd')) if r['variant'] == 'grad' else ''} |"
        )
    return head + "\n".join(lines) + "\n"


def detail_table(table_rows: list[dict[str, Any]]) -> str:
    """manual_bp's forward and backward, and the floor without the first layer's input gradient."""
    head = (
        "| config | dtype | mbp fwd+loss | mbp bwd | bwd/fwd | GEMM floor | GEMM floor w/o dX₀ "
        "| mbp/GEMM | mbp/GEMM w/o dX₀ | mbp/own GEMMs w/o dX₀, paired | plain NumPy/own GEMMs, paired "
        "| plain NumPy/torch | torch's GEMMs w/o dX₀ | NumPy/torch GEMMs | mbp beyond its GEMMs "
        "| torch beyond its GEMMs |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    lines = []
    for r in table_rows:
        if r["variant"] != "grad":
            continue
        lines.append(
            f"| {r['config']} | {r['dtype']} | {fmt_time(r['mbp_fwd'])} | {fmt_time(r['mbp_bwd'])} "
            f"| {fmt_ratio(r['bwd_over_fwd'])} | {fmt_time(r['gemm']['median'])} | {fmt_time(r['gemm_no_dx0'])} "
            f"| {fmt_ratio(r['mbp_over_gemm'])} | {fmt_ratio(r['mbp_over_gemm_no_dx0'])} "
            f"| {fmt_ratio(r['mbp_over_own_gemm_paired'])} | {fmt_ratio(r['plain_over_own_gemm_paired'])} "
            f"| {fmt_ratio(r['plain_over_torch'])} | {fmt_time(r['torch_gemm_no_dx0'])} "
            f"| {fmt_ratio(r['numpy_over_torch_gemm'])} "
            f"| {fmt_signed_time(r['mbp_beyond_gemm'])} | {fmt_signed_time(r['torch_beyond_gemm'])} |"
        )
    return head + "\n".join(lines) + "\n"


def memory_table(cells: list[dict[str, Any]], configs: list[str], dtypes: list[str]) -> str:
    ix = index(cells)
    fws = [fw for fw in FRAMEWORK_ORDER if any(k[0] == fw for k in ix)]
    head = (
        "| config | dtype | "
        + " | ".join(f"{TITLES[f]} peak (setup)" for f in fws)
        + " | mbp step, tracemalloc | mbp/torch peak |\n|---|---|"
        + "--:|" * (len(fws) + 2)
        + "\n"
    )
    lines = []
    for cfg in configs:
        for dt in dtypes:
            vals = []
            for fw in fws:
                c = ix.get((fw, cfg, dt))
                if c is None:
                    vals.append("—")
                else:
                    m = c["memory"]
                    vals.append(f"{fmt_bytes(m['peak'])} ({fmt_bytes(m['setup'])})")
            mb, tc = ix.get(("manual_bp", cfg, dt)), ix.get(("torch", cfg, dt))
            traced = fmt_bytes(mb["memory"]["traced_step"]) if mb else "—"
            big = mb and tc and min(mb["memory"]["peak"], tc["memory"]["peak"]) >= MiB  # else: page noise
            r = ratio(mb["memory"]["peak"], tc["memory"]["peak"]) if big else None
            lines.append(f"| {cfg} | {dt} | " + " | ".join(vals) + f" | {traced} | {fmt_ratio(r)} |")
    return head + "\n".join(lines) + "\n"


def _numpy_floor_above_torch(r: dict[str, Any]) -> bool:
    """True on a fwd+loss+bwd row where NumPy's own matrix products (the GEMM floor without dX₀, the
    products torch computes too) take longer than torch's whole step: no NumPy code can beat torch there."""
    floor, torch = r.get("gemm_no_dx0"), (r.get("torch") or {}).get("median")
    return r["variant"] == "grad" and floor is not None and torch is not None and floor >= torch


def targets(table_rows: list[dict[str, Any]], cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue-7 targets, each with the worst measured value and whether it is met."""
    ix = index(cells)

    def worst(key: str, pred: Any) -> tuple[float | None, str]:
        vals = [
            (r[key], f"{r['config']}/{r['dtype']}/{r['variant']}")
            for r in table_rows
            if pred(r) and r.get(key) is not None
        ]
        return max(vals) if vals else (None, "")

    floor_above = {(r["config"], r["dtype"]) for r in table_rows if _numpy_floor_above_torch(r)}
    # against the floor, the ratio of samples taken in turn in manual_bp's own process where the cells have it
    paired = any(r.get("mbp_over_own_gemm_paired") is not None for r in table_rows)
    floor_key = "mbp_over_own_gemm_paired" if paired else "mbp_over_gemm_no_dx0"
    checks = [
        ("manual_bp <= 1.0x torch everywhere", "mbp_over_torch", lambda r: True, 1.0),
        (
            "manual_bp <= 1.0x torch where NumPy's GEMMs (floor w/o dX₀) are faster than torch's whole step",
            "mbp_over_torch",
            lambda r: (r["config"], r["dtype"]) not in floor_above,
            1.0,
        ),
        (
            "elsewhere (NumPy's GEMMs alone slower than torch's step): manual_bp <= 1.05x that floor",
            floor_key,
            lambda r: (r["config"], r["dtype"]) in floor_above,
            1.05,
        ),
        ("manual_bp <= 0.5x torch on tiny", "mbp_over_torch", lambda r: r["config"] == "tiny", 0.5),
        (
            "manual_bp <= 1.10x GEMM floor on medium/large (fwd+loss+bwd)",
            "mbp_over_gemm",
            lambda r: r["config"] in ("medium", "large") and r["variant"] == "grad",
            1.10,
        ),
        (
            "manual_bp <= 1.10x JAX jit on medium/large",
            "mbp_over_jax_jit",
            lambda r: r["config"] in ("medium", "large"),
            1.10,
        ),
        # not targets: can NumPy code meet the first two at all? the plain NumPy step (no checks, in place)
        (
            "reference: plain NumPy step <= 1.0x torch where NumPy's GEMMs are faster than torch's step",
            "plain_over_torch",
            lambda r: (r["config"], r["dtype"]) not in floor_above,
            1.0,
        ),
        (
            "reference: plain NumPy step <= 1.05x its own GEMMs w/o dX₀ (paired) elsewhere",
            "plain_over_own_gemm_paired",
            lambda r: (r["config"], r["dtype"]) in floor_above,
            1.05,
        ),
    ]
    out = []
    for name, key, pred, bound in checks:
        v, where = worst(key, pred)
        out.append(
            {"target": name, "bound": bound, "worst": v, "where": where, "met": None if v is None else v <= bound}
        )
    peaks = []
    for dt in ("float32", "float64"):
        mb, tc = ix.get(("manual_bp", "large", dt)), ix.get(("torch", "large", dt))
        if mb and tc:
            peaks.append((mb["memory"]["peak"] / tc["memory"]["peak"], f"large/{dt}"))
    v, where = max(peaks) if peaks else (None, "")
    out.append(
        {
            "target": "manual_bp peak memory on large <= torch",
            "bound": 1.0,
            "worst": v,
            "where": where,
            "met": None if v is None else v <= 1.0,
        }
    )
    return out


def targets_table(checks: list[dict[str, Any]]) -> str:
    head = "| target | worst measured | where | met? |\n|---|--:|---|---|\n"
    lines = []
    for c in checks:
        met = "not measured" if c["met"] is None else ("**yes**" if c["met"] else "**no**")
        lines.append(f"| {c['target']} | {fmt_ratio(c['worst'])} | {c['where']} | {met} |")
    return head + "\n".join(lines) + "\n"


def markdown(meta: dict[str, Any], cells: list[dict[str, Any]], configs: list[str], dtypes: list[str]) -> str:
    table_rows = rows(cells, configs, dtypes)
    cfg_lines = "\n".join(f"- {CONFIGS[c].label}, {CONFIGS[c].n_params:,} parameters" for c in configs)
    failed = [c for c in cells if "error" in c]
    parts = [
        "# manual_bp benchmarks\n",
        f"`{meta['command']}` — {meta['date']}\n",
        f"- CPU: {meta['cpu']} ({meta['cores']} cores visible); threads per framework: **{meta['threads']}** "
        f"({meta['thread_env']})",
        f"- load average (1 min) at the start of each cell: min {meta['load_min']:.2f}, "
        f"max {meta['load_max']:.2f}; before the run {meta['load_before']}, after {meta['load_after']}",
        f"- versions: {meta['versions']}; git {meta.get('git', 'n/a')}",
        f"- timing: median of up to {meta['repeats']} samples (per-call time; a sample is the mean of enough "
        f"back-to-back calls to last ≥ 2 ms), ≥ {meta['min_samples']} samples, ≤ {meta['budget']} s per "
        f"measurement after {meta['warmup']} warm-up calls; "
        + (
            "± is half the IQR\n"
            if meta.get("rounds", 1) == 1
            else f"every cell ran in each of **{meta['rounds']} rounds** (all cells, one after another, then again), "
            f"and its time is the median of its rounds' medians; ± is half the range of those\n"
        ),
        cfg_lines + "\n",
        "## Step time\n",
        time_table(table_rows),
        "## manual_bp forward vs backward, and the GEMM floor\n",
        detail_table(table_rows),
        "## Peak memory: resident high-water mark above the resident size after import and a tiny warm-up "
        "step, in the cell's own process (setup: resident once model, data and optimisers are built)\n",
        memory_table(cells, configs, dtypes),
        "## Issue 7 targets\n",
        targets_table(targets(table_rows, cells)),
    ]
    if failed:
        parts.append(
            "## Failed cells\n\n"
            + "\n".join(f"- {c['framework']} {c['config']} {c['dtype']}: {c['error']}" for c in failed)
            + "\n"
        )
    return "\n".join(parts)
