"""Sweeps on a dask.distributed LocalCluster: the same report as a serial run, and no task lost or
counted twice when a worker process dies."""

from __future__ import annotations

import json
from functools import partial

import pytest

from crosscheck.run import cli
from crosscheck.run.cluster import ALLOWED_FAILURES, crashed_result, run_on_cluster
from crosscheck.run.records import dumps, result_from_dict, result_to_dict
from tests.helpers.cluster import crash

pytest.importorskip("distributed", reason="the cluster tests need the cluster extra (dask[distributed])")

IDS = ["--case", "5", "--case", "8"]  # small: a float32 MLP, and a LayerNorm case whose torch sums depend on threads


@pytest.mark.parity
def test_two_worker_cluster_report_equals_the_serial_one(tmp_path, frameworks):
    assert cli.main([*IDS, "--quiet", "--jobs", "1", "--out", str(tmp_path / "serial")]) == 0
    assert cli.main([*IDS, "--quiet", "--scheduler", "local:2", "--out", str(tmp_path / "cluster")]) == 0
    serial, cluster = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("serial", "cluster"))
    assert [c["case_id"] for c in cluster["cases"]] == ["5", "8"]
    for a, b in zip(serial["cases"], cluster["cases"]):
        assert a == b, f"case {a['case_id']} differs on the cluster"
    assert cluster["settings"]["scheduler"] == "local:2"
    lines = (tmp_path / "cluster" / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["result"]["case_id"] for line in lines) == ["5", "8"]


def test_a_killed_worker_loses_nothing_and_counts_nothing_twice(tmp_path):
    """Case 1's first run takes down its worker: it is re-run elsewhere. Case 3 takes down a worker every
    time: after ALLOWED_FAILURES + 1 deaths it comes back as a failed case naming it, not a hung sweep."""
    tasks = [("case", cid, None) for cid in range(6)]
    arrived: list[int] = []
    fn = partial(crash, marker_dir=str(tmp_path), once=(1,), always=(3,))
    results = run_on_cluster(tasks, (), "local:2", on_result=lambda i, r: arrived.append(i), fn=fn)
    assert sorted(arrived) == list(range(6)), arrived  # each task reported once
    assert [r.case_id for r in results] == [str(cid) for cid in range(6)]
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    # Runs on workers: case 1 at least twice (its first run died); case 3 at most ALLOWED_FAILURES + 1 times (dask
    # also counts a death against a task that was only waiting on that worker). A finished task may run again when
    # its worker dies before the result is fetched; the report holds it once all the same (asserted above).
    starts = {cid: len(list(tmp_path.glob(f"start-{cid}-*"))) for cid in range(6)}
    assert starts[1] >= 2 and 1 <= starts[3] <= ALLOWED_FAILURES + 1, starts
    assert all(starts[cid] >= 1 for cid in (0, 2, 4, 5)), starts
    summary = results[3].summary()
    assert "case 3: MISMATCH" in summary and "worker" in summary and "--case 3" in summary, summary


def test_a_crashed_case_goes_into_the_report_and_its_records():
    r = crashed_result(("case", 7, None), "took down every worker process that ran it")
    assert not r.ok and r.case_id == "7" and r.dtype == "float32"
    again = result_from_dict(json.loads(dumps(result_to_dict(r))))
    assert dumps(result_to_dict(again)) == dumps(result_to_dict(r)) and not again.ok
    from crosscheck.run.report import Report

    report = Report([r])
    assert not report.ok and "crashed" in {row["kind"] for row in report.summary()}
    assert "took down every worker process that ran it" in report.to_markdown()


def test_bad_scheduler_arguments_exit_2():
    for bad in ("local:0", "local:x"):
        with pytest.raises(SystemExit) as err:
            cli.parser().parse_args(["--scheduler", bad])
        assert err.value.code == 2


def test_the_large_sweep_commands_on_the_docs_page_parse():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "verification.md").read_text()
    section = page.split("## Large sweeps", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.split("#", 1)[0].split()[3:] for line in section.splitlines() if line.startswith("python -m crosscheck ")
    ]
    assert len(commands) >= 6
    for argv in commands:
        if argv[0] == "merge":
            assert "--out" in argv
        else:
            cli.parser().parse_args(argv)
