"""The benchmark report's arithmetic: rounds merged by their medians, and the targets' floor rule."""

from __future__ import annotations

import pytest

from benchmarks import report


def _cell(fw: str, cfg: str, times: dict[str, float], peak: float = 1.0, dt: str = "float32") -> dict:
    return {
        "framework": fw,
        "config": cfg,
        "dtype": dt,
        "memory": {"peak": peak, "setup": 0.0, "traced_step": 0.0},
        "times": {v: {"median": m, "q1": m, "q3": m} for v, m in times.items()},
    }


def test_rounds_merge_to_the_median_of_their_medians():
    runs = [_cell("torch", "small", {"grad": g, "adam": 2 * g}, peak=p) for g, p in ((3.0, 5), (1.0, 9), (2.0, 7))]
    merged = report.merge_rounds(runs)
    assert merged["times"]["grad"] == {"median": 2.0, "q1": 1.0, "q3": 3.0}
    assert merged["times"]["adam"]["median"] == 4.0
    assert merged["memory"]["peak"] == 9  # the highest peak of the rounds
    assert len(merged["rounds"]) == 3
    assert report.merge_rounds(runs[:1]) is runs[0]
    failed = {"framework": "torch", "config": "small", "dtype": "float32", "error": "exit 1"}
    assert report.merge_rounds([runs[0], failed]) is failed  # a failed round fails the cell


def _targets(
    mbp: float, torch: float, floor_no_dx0: float, paired: float | None = None, plain: float | None = None
) -> dict[str, dict]:
    """The targets of one small cell; ``plain``: the plain NumPy step's time, paired with the floor."""
    own = {} if paired is None else {"grad/own_gemm_no_dx0": {"median": paired, "q1": paired, "q3": paired}}
    if plain is not None:
        own["plain"] = {"median": plain, "q1": plain, "q3": plain}
        own["plain/own_gemm_no_dx0"] = {"median": plain / floor_no_dx0, "q1": 0.0, "q3": 0.0}
    cells = [
        {**_cell("manual_bp", "small", {"grad": mbp, "fwd": mbp / 2, "bwd": mbp / 2}), "paired": own},
        _cell("torch", "small", {"grad": torch}),
        _cell("gemm", "small", {"grad": floor_no_dx0 * 1.2, "grad_no_dx0": floor_no_dx0}),
    ]
    rows = [r for r in report.rows(cells, ["small"], ["float32"]) if r["variant"] == "grad"]
    return {
        t["target"].split(" (")[0].split(":")[0]
        if not t["target"].startswith("reference")
        else "ref " + t["target"].split(" ")[-1]: t
        for t in report.targets(rows, cells)
    }


@pytest.mark.parametrize(
    "mbp, torch, floor, strict_met, rule_met, floor_met",
    [
        (0.9, 1.0, 0.8, True, True, None),  # floor below torch: the plain rule applies and holds
        (1.02, 1.0, 0.8, False, False, None),  # ... and fails
        (1.04, 1.0, 1.0, False, None, True),  # NumPy's products alone take torch's whole step: 1.05x floor
        (1.06, 1.0, 1.0, False, None, False),
    ],
)
def test_the_floor_exception_applies_only_where_numpys_products_lose_to_torch(
    mbp, torch, floor, strict_met, rule_met, floor_met
):
    t = _targets(mbp, torch, floor)
    assert t["manual_bp <= 1.0x torch everywhere"]["met"] is strict_met
    assert t["manual_bp <= 1.0x torch where NumPy's GEMMs"]["met"] is rule_met
    assert t["elsewhere"]["met"] is floor_met


@pytest.mark.parametrize("paired, met", [(1.04, True), (1.07, False)])
def test_the_floor_target_takes_the_paired_ratio_where_the_cell_has_one(paired, met):
    """Separate processes say 1.06x (not met); the in-process paired ratio decides."""
    t = _targets(1.06, 1.0, 1.0, paired=paired)
    assert t["elsewhere"]["worst"] == paired
    assert t["elsewhere"]["met"] is met


@pytest.mark.parametrize(
    "torch, floor, plain, step_met, floor_met",
    [
        (1.0, 0.8, 0.95, True, None),  # floor below torch: can plain NumPy beat torch? yes
        (1.0, 0.8, 1.01, False, None),  # ... no
        (1.0, 1.0, 1.04, None, True),  # products alone take torch's step: plain within 1.05x of them
        (1.0, 1.0, 1.06, None, False),
    ],
)
def test_the_plain_numpy_reference_rows_follow_the_targets_rules(torch, floor, plain, step_met, floor_met):
    """The reference rows ask of the plain NumPy step what the targets ask of manual_bp, cell by cell."""
    t = _targets(1.2, torch, floor, paired=1.2 / floor, plain=plain)
    assert t["ref step"]["met"] is step_met
    assert t["ref elsewhere"]["met"] is floor_met
    if step_met is not None:
        assert t["ref step"]["worst"] == pytest.approx(plain / torch)
    else:
        assert t["ref elsewhere"]["worst"] == pytest.approx(plain / floor)
    assert t["manual_bp <= 1.0x torch everywhere"]["met"] is False  # the targets themselves are unchanged


def test_the_plain_numpy_step_computes_manual_bps_loss_and_gradients():
    """The reference is only worth its time if it computes the same step: its loss and every (dW, db)
    equal manual_bp's (float64, random biases, several depths and seeds)."""
    import numpy as np

    import manual_bp as mbp
    from benchmarks import runners
    from benchmarks.configs import Config, make_data

    for seed, sizes in enumerate([(5, 7, 3), (4, 9, 6, 2), (3, 4), (6, 8, 8, 8, 5)]):
        x, y, layers = make_data(Config("t", 17, sizes), "float64", seed=seed)
        rng = np.random.default_rng(seed)
        layers = [(W, rng.standard_normal(b.shape)) for W, b in layers]
        loss, grads = runners.plain_numpy_step(x, y, layers)()
        model = runners._manual_bp_model(x, layers)
        loss_fn = mbp.SoftmaxCrossEntropy()
        expected = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        linears = [m for m in model if isinstance(m, mbp.Linear)][::-1]
        assert len(grads) == len(linears), sizes
        np.testing.assert_allclose(loss, expected, rtol=1e-13, err_msg=f"seed {seed}, sizes {sizes}")
        for (dW, db), lin in zip(grads, linears):
            np.testing.assert_allclose(dW, lin.grads["W"], rtol=1e-13, atol=1e-15, err_msg=f"seed {seed}")
            np.testing.assert_allclose(db, lin.grads["b"], rtol=1e-13, atol=1e-15, err_msg=f"seed {seed}")


def test_paired_rounds_merge_like_times():
    runs = [
        {**_cell("manual_bp", "small", {"grad": g}), "paired": {"grad/own_gemm_no_dx0": {"median": r}}}
        for g, r in ((3.0, 1.02), (1.0, 1.08), (2.0, 1.04))
    ]
    assert report.merge_rounds(runs)["paired"]["grad/own_gemm_no_dx0"] == {"median": 1.04, "q1": 1.02, "q3": 1.08}


def test_measure_paired_divides_each_pair_of_samples(monkeypatch):
    """A fake clock: fa takes 3 ticks, fb 1 tick, except fb's 2nd sample (2 ticks): ratios 3, 1.5, 3, 3."""
    from benchmarks import timing

    clock = {"now": 0.0, "b_calls": 0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    def fa():
        clock["now"] += 3.0

    def fb():
        clock["b_calls"] += 1
        clock["now"] += 2.0 if clock["b_calls"] == 3 else 1.0  # call 1 is fb's warm-up

    res = timing.measure_paired(fa, fb, repeats=4, budget_s=1e9, min_samples=4, warmup=1)
    assert res["ratio"].samples == res["a"].samples == res["b"].samples == 4
    assert res["ratio"].median == 3.0 and res["ratio"].q1 == 2.625
    assert res["a"].median == 3.0 and res["b"].median == 1.0


def _run_benchmarks(tmp_path, frameworks: str, rounds: int) -> dict:
    import json

    from benchmarks import cli

    argv = [
        "--configs",
        "tiny",
        "--dtypes",
        "float64",
        "--frameworks",
        frameworks,
        "--repeats",
        "3",
        "--budget",
        "0.05",
        "--rounds",
        str(rounds),
        "--results",
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    assert "| tiny | float64 | fwd+loss+bwd |" in (tmp_path / "latest.md").read_text()
    return json.loads((tmp_path / "latest.json").read_text())


def test_the_benchmark_command_runs_every_cell_in_rounds(tmp_path):
    """A smoke run of `python -m benchmarks` (no timing is asserted: only that every step was measured)."""
    data = _run_benchmarks(tmp_path, "manual_bp,gemm", rounds=2)
    cells = {c["framework"]: c for c in data["cells"]}
    assert set(cells["manual_bp"]["times"]) == {"grad", "sgd", "adam", "fwd", "bwd"}
    assert set(cells["gemm"]["times"]) == {"grad", "grad_no_dx0"}
    paired = cells["manual_bp"]["paired"]
    assert set(paired) == {"grad/own_gemm_no_dx0", "plain/own_gemm_no_dx0", "grad", "plain", "own_gemm_no_dx0"}
    assert all(v["median"] > 0 for v in paired.values())
    row = next(r for r in data["rows"] if r["variant"] == "grad")
    assert row["plain_over_own_gemm_paired"] == paired["plain/own_gemm_no_dx0"]["median"]
    for cell in cells.values():
        assert len(cell["rounds"]) == 2
        assert all(t["q1"] <= t["median"] <= t["q3"] and t["median"] > 0 for t in cell["times"].values())
    assert data["meta"]["rounds"] == 2


@pytest.mark.parity
def test_the_benchmark_command_runs_torch_and_jax_cells(tmp_path, frameworks):
    data = _run_benchmarks(tmp_path, "manual_bp,torch,jax_jit,jax_nojit,gemm,torch_gemm", rounds=1)
    assert not [c for c in data["cells"] if "error" in c]
    grad = next(r for r in data["rows"] if r["variant"] == "grad")
    for key in ("mbp_over_torch", "mbp_over_jax_jit", "mbp_over_gemm", "numpy_over_torch_gemm"):
        assert grad[key] is not None and grad[key] > 0, key


def test_each_steps_time_beyond_its_own_products():
    """manual_bp's step minus NumPy's products, torch's step minus torch's products, and the BLAS ratio."""
    cells = [
        _cell("manual_bp", "small", {"grad": 1.0, "fwd": 0.5, "bwd": 0.5}),
        _cell("torch", "small", {"grad": 0.9}),
        _cell("gemm", "small", {"grad": 1.1, "grad_no_dx0": 0.8}),
        _cell("torch_gemm", "small", {"grad": 0.8, "grad_no_dx0": 0.5}),
    ]
    row = report.rows(cells, ["small"], ["float32"])[0]
    assert row["mbp_beyond_gemm"] == pytest.approx(0.2)
    assert row["torch_beyond_gemm"] == pytest.approx(0.4)
    assert row["numpy_over_torch_gemm"] == pytest.approx(1.6)
    assert report.fmt_signed_time(-0.015) == "−15.00 ms"
    assert "| 200.00 ms | 400.00 ms |" in report.detail_table([row])
