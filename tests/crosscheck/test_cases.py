"""crosscheck's cases, CLI, report and verify(): reproducible, covering, and honest about failures."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import manual_bp as mbp
from crosscheck import verify
from crosscheck.cases import ACTIVATIONS, LOSSES, blueprints, build, case, family, seed_case
from crosscheck.cases.hazards import hazards
from crosscheck.cases.losses import LOSS_FAMILY
from crosscheck.run import api, cli
from crosscheck.run.api import run_case, run_tasks
from crosscheck.run.compare import compare_case

IDS = range(500)


def _same(a, b):
    assert a.description == b.description
    for name in ("x", "y", "dout"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.dloss == b.dloss
    for k, v in a.model.params.items():
        np.testing.assert_array_equal(v, b.model.params[k])


@pytest.mark.parametrize("case_id", [0, 1, 17, 123, 499])
def test_case_is_reproducible(case_id):
    _same(case(case_id), case(case_id))


def test_cases_differ():
    assert len({case(i).description for i in range(50)}) > 45


def test_default_sweep_covers_the_space():
    cs = [case(i) for i in IDS]
    kinds = {layer.kind for c in cs for layer in c.model}
    assert set(ACTIVATIONS) | {"linear", "softmax", "log_softmax"} <= kinds
    assert {c.loss_fn.kind for c in cs} == set(LOSSES) | set(LOSS_FAMILY)  # the losses family: the others
    assert {c.dtype for c in cs} == {"float32", "float64"}
    depths = {sum(layer.kind == "linear" for layer in c.model) for c in cs}
    assert depths == {1, 2, 3, 4, 5, 6}
    widths = {layer.out_features for c in cs for layer in c.model if layer.kind == "linear"}
    assert 1 in widths and max(widths) == 64
    assert {1, 64} <= {c.x.shape[0] for c in cs}
    ce = [c for c in cs if c.loss_fn.kind == "softmax_cross_entropy"]
    assert {c.y.dtype.kind for c in ce} == {"i", "f"}  # integer labels and probabilities
    assert any(c.loss_fn.label_smoothing > 0 for c in ce)
    tags = {t for c in cs for t in c.tags}
    assert {"kink", "ties", "large", "tiny"} <= tags
    # the layers of issue 5 each appear in a sizeable fraction of the sweep, in both modes
    new = ("batch_norm", "layer_norm", "dropout", "embedding", "flatten", "residual")
    counts = {k: sum(any(m.kind == k for m in c.model.modules()) for c in cs) for k in new}
    assert all(n >= 50 for n in counts.values()), counts
    # eval mode in a sizeable fraction of the cases drawn from MLP blueprints (the mlp and losses families)
    blueprinted = [c for i, c in zip(IDS, cs) if family(i) in ("mlp", "losses")]
    assert 0.1 <= sum(not c.model.training for c in blueprinted) / len(blueprinted) <= 0.5
    assert any(c.x.dtype.kind in "iu" and c.x.ndim == 2 for c in cs)  # (N, T) indices -> Embedding -> Flatten


def test_kink_cases_really_put_exact_zeros_before_the_kink():
    found = 0
    for c in (case(i) for i in range(100)):
        if "kink" not in c.tags:
            continue
        h = c.x
        for layer in c.model:
            if layer.kind in ("relu", "leaky_relu", "elu"):
                found += int(np.any(h == 0))
            h = layer.forward(h)
    assert found >= 10


def test_large_cases_have_large_logits():
    c = next(case(i) for i in IDS if "large" in case(i).tags)
    last = [layer for layer in c.model if layer.kind == "linear"][-1]
    assert np.abs(last.params["W"]).max() == pytest.approx(1e3)


# case ids beyond the default sweep on which correct backends once disagreed past the bound: each names the
# cause, now accounted for (or the hazard, now redrawn); they must keep agreeing
FOUND_BY_RANDOM_SEARCH = {  # (maker, id): cause
    ("case", 5000741): "GELU after a BatchNorm of a nearly constant column: dx moves with x's rounding "
    "(scales._curved)",
    ("cnn_case", 2000005487): "a float32 conv output rounding to exactly a Softplus threshold (kinks: exact "
    "hits are hazards)",
    ("case", 9001444): "a one-feature LayerNorm made the rows equal, a BatchNorm of them was 0 here and 1e-14 in "
    "torch, then a ReLU (kinks: a value at the rounding level of its terms carries their size)",
    ("case", 9001583): "GELU outputs deep in the float32 tail (1e-11; torch's (1 + erf) / 2 cancels there) reached "
    "an ELU at +7e-11 here and below 0 in torch (kinks: GELU's terms are of size |x| for x < 0)",
    ("case", 12001217): "two equal samples before four training BatchNorms: every one normalised rounding, and "
    "torch and JAX were 2.6e-14 apart on a weight gradient that is exactly 0 (cases: no ties "
    "in a batch of two before a training BatchNorm)",
}


@pytest.mark.parity
@pytest.mark.parametrize("maker, case_id", list(FOUND_BY_RANDOM_SEARCH))
def test_cases_found_by_random_search_agree(maker, case_id, frameworks):
    from crosscheck.cases.cnn import cnn_case

    c = {"case": case, "cnn_case": cnn_case}[maker](case_id)
    result = run_case(c, frameworks)
    assert result.ok, f"{maker}({case_id}), {FOUND_BY_RANDOM_SEARCH[maker, case_id]}: {result.summary()}"


@pytest.mark.parity
@pytest.mark.xfail(
    strict=True,
    reason="known limit of the tolerance scales: G(dlogits) = 2 dloss r leaves out the "
    "logits' own rounding, which moves p = softmax(z) by up to 2 p eps S(z)",
)
def test_logits_of_amplified_rounding_exceed_the_loss_gradient_scale(frameworks):
    """Case 7001327's first draw (float32): a LayerNorm over 17 multiples of one rounding-level BatchNorm output
    makes the logits amplified rounding, and the backends then disagree on dlogits by up to 1.3e-3 (bound
    2.0e-4). Counting 2 Y S(z) in G(dlogits) passes it but, with S(z) 1e4 times |z| through a Transformer
    block, weakens every backward check of such cases by as much (the planted attention bugs fell from over
    100 to 12 times their bound), so the limit is kept and documented. The generator now redraws this input
    (crosscheck.cases.hazards carries the BatchNorm output's terms to a Softplus threshold), so the draw is pinned
    here. Strict: if this passes, the scale was changed and the README's tolerance section must say so."""
    c = case(7001327)
    x = np.array([2, 1, 1])  # the first draw's indices and dropout mask
    dropout = next(layer for layer in c.model.modules() if layer.kind == "dropout")
    dropout.mask = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
    result = compare_case(c.model, c.loss_fn, x, c.y, dloss=c.dloss, dout=c.dout, frameworks=frameworks)
    assert result.ok, result.summary()


@pytest.mark.parity
# `frameworks` only skips or fails; it holds no state, so a function-scoped fixture is safe here.
# the example budget is the profile's (tests/conftest.py): 60 in CI, 2000 with HYPOTHESIS_PROFILE=thorough
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(bp=blueprints())
def test_hypothesis_blueprints_match(bp, frameworks):
    c = build(bp)
    result = run_case(c, frameworks)
    assert result.ok, result.summary()


@pytest.mark.parity
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case_id=st.integers(10**6, 2**31 - 1), family=st.sampled_from(["cnn", "transformer"]))
def test_hypothesis_cnn_and_transformer_cases_match(case_id, family, frameworks):
    """Far beyond the sweep's ids: any CNN or Transformer case id agrees with torch and JAX."""
    from crosscheck.cases.cnn import cnn_case
    from crosscheck.cases.transformer import attention_case

    make = cnn_case if family == "cnn" else attention_case
    c = make(case_id)  # not necessarily what `--case <id>` draws (crosscheck.cases.family decides that)
    c.replay = f"crosscheck.run.compare.compare_case on {make.__module__}.{make.__name__}({case_id})"
    result = run_case(c, frameworks)
    assert result.ok, f"{family} case {case_id}: {result.summary()}"


# ---------------------------------------------------------------- CLI and report


def test_near_kink_flags_exact_hits_unless_exact_in_every_backend():
    lin = mbp.Linear(2, 1, rng=0)
    lin.params["W"][:], lin.params["b"][:] = [[1.0], [-1.0]], 0.0  # z = x0 - x1
    x = np.array([[3.0, 3.0]])
    assert hazards([lin, mbp.ReLU()], x, "float64")  # 0 by cancelling nonzero terms: order-dependent
    assert not hazards([lin, mbp.ReLU()], np.array([[3.0, 4.0]]), "float64")  # z = -1: clear of the kink
    lin.params["W"][:] = 0.0
    assert not hazards([lin, mbp.ReLU()], x, "float64")  # a planted zero: every term is 0
    lin.params["W"][:] = 1.0
    softplus = mbp.Softplus(beta=0.5, threshold=3.0)
    assert hazards([lin, softplus], np.array([[2.5, 3.5]]), "float64")  # beta z = threshold exactly, by rounding
    one = mbp.LayerNorm(1, elementwise_affine=False)
    assert not hazards([lin, one, mbp.ReLU()], x, "float64")  # over one feature x - mean is exactly 0


def _linear(W: list[list[float]], b: float = 0.0, dtype: str = "float64") -> mbp.Linear:
    lin = mbp.Linear(len(W), len(W[0]), rng=0, dtype=dtype)
    lin.params["W"][:], lin.params["b"][:] = W, b
    return lin


def test_near_kink_carries_the_terms_of_a_value_at_rounding_level():
    """A value that is only the rounding of its terms (here exactly 0 or 1e-32) says nothing by its size:
    the next Linear's terms are sized by the terms behind it, so a kink after it is a hazard."""
    rows = np.tile([[0.3, -1.7, 2.9]], (4, 1))  # equal rows: a BatchNorm of them is 0 here, 1e-14 elsewhere
    bn = mbp.BatchNorm1d(3, affine=False)
    assert np.all(bn.forward(rows) == 0)
    assert hazards([bn, _linear([[1.0], [2.0], [-1.0]]), mbp.ReLU()], rows, "float64")
    assert not hazards([bn, _linear([[0.0], [0.0], [0.0]]), mbp.ReLU()], rows, "float64")  # planted: exact
    tail = np.array([[-12.0], [-11.0]], np.float32)  # GELU ~ -1e-32; x (1 + erf) / 2 cancels to eps |x|
    f32 = "float32"
    assert hazards([mbp.GELU(), _linear([[1.0]], dtype=f32), mbp.ReLU()], tail, f32)
    through_tanh = [mbp.GELU(), _linear([[2.0]], dtype=f32), mbp.Tanh(), _linear([[-1.0]], dtype=f32), mbp.ELU()]
    assert hazards(through_tanh, tail, f32)
    assert not hazards([mbp.GELU(), _linear([[1.0]], dtype=f32), mbp.ReLU()], -tail, f32)  # GELU(12) = 12


def test_near_kink_keeps_exact_zeros_exact():
    """A clamped ReLU output and a dropped unit are exact zeros, not rounding: they add no terms, so a
    tiny but exact sum after them (here 1e-12 = 1e-12 + 0) is clear of the next kink."""
    x = np.array([[1e-12, -5.0]])
    assert not hazards([mbp.ReLU(), _linear([[1.0], [1.0]]), mbp.ReLU()], x, "float64")
    drop = mbp.Dropout(0.5)
    drop.mask, drop.frozen = np.array([[True, False]]), True
    assert not hazards([drop, _linear([[1.0], [1.0]]), mbp.ReLU()], np.abs(x), "float64")


def _dies_on_task_3(task, frameworks=()):
    """A sweep task whose worker process ends without an exception, as an abort in native code does."""
    if task[1] == 3:
        os._exit(134)
    return task


def test_a_worker_killed_by_native_code_is_named_not_a_traceback(monkeypatch):
    monkeypatch.setattr(api, "run_task", _dies_on_task_3)  # pickled by name: the spawned workers import it
    tasks = [("probe", i) for i in range(8)]
    assert run_tasks(tasks[:3], frameworks=(), jobs=2) == tasks[:3]
    with pytest.raises(api.WorkerDied, match=r"worker process died while running one of the tasks .*\('probe', 3\)"):
        run_tasks(tasks, frameworks=(), jobs=2)


def test_shards_partition_the_sweep():
    args = cli.parser().parse_args(["--cases", "10", "--no-seed-network"])
    whole = [t[1] for t in cli.plan(args)]
    parts = []
    for i in range(3):
        args = cli.parser().parse_args(["--cases", "10", "--no-seed-network", "--shard", f"{i}/3"])
        parts.append([t[1] for t in cli.plan(args)])
    joined = [cid for part in parts for cid in part]
    assert sorted(joined) == whole and len(set(joined)) == 10


def test_seed_selects_a_disjoint_block():
    a = cli.plan(cli.parser().parse_args(["--cases", "3", "--seed", "0"]))
    b = cli.plan(cli.parser().parse_args(["--cases", "3", "--seed", "1"]))
    assert a[:2] == [("seed", "float64"), ("seed", "float32")]
    assert [t[1] for t in a[2:]] == [0, 1, 2]
    assert [t[1] for t in b[2:]] == [1000000, 1000001, 1000002]


BAD_ARGS = [
    ["--shard", "3/3"],
    ["--shard", "x"],
    ["--frameworks", "tf"],
    ["--dtype", "f16"],
    ["--jobs", "0"],
    ["--jobs", "two"],
]


@pytest.mark.parametrize("bad", BAD_ARGS)
def test_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as err:
        cli.parser().parse_args(bad)
    assert err.value.code == 2


@pytest.mark.parity
def test_cli_writes_a_passing_report(tmp_path, capsys, frameworks):
    assert cli.main(["--cases", "4", "--no-trajectories", "--jobs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "PASSED" in out.out and "smallest margin" in out.out
    assert "6/6 cases" in out.err  # progress: the seed network twice plus 4 cases
    data = json.loads((tmp_path / "report.json").read_text())  # strict JSON (no NaN/Infinity)
    assert data["ok"] is True and len(data["cases"]) == 6
    env = data["environment"]
    for key in ("python", "numpy", "blas", "torch", "jax", "optax", "platform", "date_utc"):
        assert env.get(key), key
    assert env["jax_enable_x64"] is True
    assert data["settings"]["case_ids"] == ["seed-float64", "seed-float32", "0", "1", "2", "3"]
    rows = data["summary"]
    assert {r["pair"] for r in rows} == {"manual_bp vs torch", "manual_bp vs jax", "torch vs jax"}
    assert all(r["worst_error"] <= 1e-10 for r in rows if r["dtype"] == "float64")
    assert "PASSED" in (tmp_path / "report.md").read_text()


@pytest.mark.parity
def test_cli_runs_trajectories_into_the_report(tmp_path, frameworks):
    ids = ["traj-adam-default-float64", "traj-sgd-nesterov-float32"]
    argv = ["--quiet", "--jobs", "1", "--out", str(tmp_path)] + [a for t in ids for a in ("--trajectory", t)]
    assert cli.main(argv) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert [c["case_id"] for c in data["cases"]] == ids
    assert {r["kind"] for r in data["summary"]} == {"adam", "sgd"}
    default = cli.trajectories(cli.parser().parse_args([]))
    assert len(default) >= 26 and set(ids) <= set(default)


@pytest.mark.parity
def test_replay_runs_one_case(tmp_path, frameworks):
    assert cli.main(["--case", "7", "--quiet", "--jobs", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert [c["case_id"] for c in data["cases"]] == ["7"]


@pytest.mark.parity
def test_verify_a_user_model(tmp_path, frameworks):
    rng = np.random.default_rng(3)
    model = mbp.Sequential(mbp.Linear(4, 8, rng=rng), mbp.GELU("tanh"), mbp.Linear(8, 3, rng=rng))
    X = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, 10)
    before = {k: v.copy() for k, v in model.params.items()}
    report = verify(model, mbp.SoftmaxCrossEntropy(label_smoothing=0.1), X, y, out=str(tmp_path))
    assert report.ok, report.failures[0].summary() if report.failures else ""
    worst, margin = report.worst("float64")
    assert worst <= 1e-10 and margin >= 1
    assert (tmp_path / "report.md").exists()
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parity
def test_verify_rejects_bad_input_with_manual_bp_error(frameworks):
    model = mbp.Sequential(mbp.Linear(4, 3))
    with pytest.raises(ValueError, match="Linear '0'"):
        verify(model, mbp.SoftmaxCrossEntropy(), np.zeros((5, 3)), np.zeros(5, dtype=int))


def test_seed_case_is_the_seed_network():
    c = seed_case()
    assert [layer.kind for layer in c.model] == ["linear", "relu", "linear"]
    assert c.model[0].params["W"].shape == (2, 3) and c.model[2].params["W"].shape == (3, 2)


def _missing(fw):
    raise ImportError(f"No module named {fw!r}", name=fw)


def test_a_missing_framework_skips_or_fails_as_required(monkeypatch):
    from _pytest.outcomes import Failed, Skipped

    import crosscheck.reference
    from tests.helpers import require_frameworks

    monkeypatch.setattr(crosscheck.reference, "reference", _missing)
    monkeypatch.delenv("CROSSCHECK_REQUIRE", raising=False)
    with pytest.raises(Skipped, match="needs torch"):
        require_frameworks(("torch", "jax"))
    monkeypatch.setenv("CROSSCHECK_REQUIRE", "torch,jax")
    with pytest.raises(Failed, match="CROSSCHECK_REQUIRE names torch"):
        require_frameworks(("torch", "jax"))


@pytest.mark.parity
def test_report_names_the_kind_of_every_tensor_inside_containers(frameworks):
    from crosscheck.run.report import Report

    c = next(case(i) for i in range(100) if any(layer.kind == "residual" for layer in case(i).model))
    result = compare_case(c.model, c.loss_fn, c.x, c.y, dloss=c.dloss, dout=c.dout, frameworks=frameworks)
    kinds = {row["kind"] for row in Report([result]).summary()}
    assert "?" not in kinds and "residual" in kinds


@pytest.mark.parity
def test_worker_processes_give_the_same_results_in_order(frameworks):
    """--jobs n: each task is rebuilt from plain data in a fresh interpreter; the numbers are the same."""
    tasks = [("seed", "float32"), ("case", 5, None), ("trajectory", "traj-adam-default-float64"), ("case", 2, None)]
    one = run_tasks(tasks, frameworks, jobs=1)
    two = run_tasks(tasks, frameworks, jobs=2)
    assert [r.case_id for r in two] == [r.case_id for r in one] == ["seed-float32", "5", tasks[2][1], "2"]
    for a, b in zip(one, two):
        errors = [[(c.name, c.error) for c in comp.checks] for comp in a.comparisons]
        assert errors == [[(c.name, c.error) for c in comp.checks] for comp in b.comparisons], a.case_id


def test_worker_processes_run_the_frameworks_on_one_thread(monkeypatch):
    """Each sweep worker takes one core; threads of its own would spin on the others' cores."""
    from crosscheck.run.api import one_thread_per_process

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # a user's own setting is kept
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    try:
        one_thread_per_process()
        assert torch is None or torch.get_num_threads() == 1
    finally:
        if torch:
            torch.set_num_threads(threads)
    assert (os.environ["OMP_NUM_THREADS"], os.environ["OPENBLAS_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == (
        "1",
        "1",
        "3",
    )


def test_a_check_reports_its_power():
    """detects = bound * max(||b||, S) / ||b||: the smallest relative error the check is sure to flag."""
    from crosscheck.tolerance import check

    rng = np.random.default_rng(11)
    b = rng.standard_normal(50)
    plain = check("t", b, b, 1e-10)
    assert plain.detects == pytest.approx(1e-10)
    loose = check("t", b, b, 1e-10, scale=1e6 * np.linalg.norm(b))
    assert loose.detects == pytest.approx(1e-4)
    # it is sharp: an error just above the threshold fails, just below passes
    direction = rng.standard_normal(50)
    direction *= np.linalg.norm(b) / np.linalg.norm(direction)
    assert not check("t", b + 1.01e-4 * direction, b, 1e-10, scale=1e6 * np.linalg.norm(b)).ok
    assert check("t", b + 0.99e-4 * direction, b, 1e-10, scale=1e6 * np.linalg.norm(b)).rel_norm <= 1e-10
    assert check("t", np.zeros(3), np.zeros(3), 1e-10, scale=1.0).detects == np.inf
