"""Results streamed to results.jsonl, rebuilt into the same report, and --resume after a killed run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from crosscheck.run import cli
from crosscheck.run.cluster import crashed_result
from crosscheck.run.compare import CaseResult, Comparison
from crosscheck.run.records import code_key, dumps, read_records, result_from_dict, result_to_dict
from crosscheck.run.report import Report
from crosscheck.tolerance import TensorCheck

ROOT = Path(__file__).resolve().parents[2]
IDS = ["--case", "2", "--case", "5", "--case", "8"]  # small cases


def _cases(out: Path) -> list[dict]:
    return json.loads((out / "report.json").read_text())["cases"]


def _records(out: Path) -> list[str]:
    """The tasks recorded under the key of the file's last record (a commit made meanwhile changes the key)."""
    recs = list(read_records(out / "results.jsonl"))
    return [json.dumps(rec["task"]) for rec in recs if rec["key"] == recs[-1]["key"]]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    assert cli.main([*IDS, "--quiet", "--jobs", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.parity
def test_every_result_round_trips_through_its_dict(frameworks):
    from crosscheck.run.api import run_task

    results = [run_task(t, frameworks) for t in [("case", 5, None), ("trajectory", "traj-sgd-nesterov-float32")]]
    bad = TensorCheck("0.dW", (3, 2), "float64", 1e-3, 2e-3, 3e-3, 1e-10, detects=math.inf)
    odd = TensorCheck("0.dx", (3,), "float64", math.nan, math.nan, math.nan, 1e-10, "shape (2,) != reference (3,)")
    planted = CaseResult(
        "9",
        "planted",
        "float64",
        results[0].spec,
        1e-10,
        [Comparison("loss", "manual_bp", "torch", [bad, odd])],
        "replay",
    )
    results += [planted, crashed_result(("case", 4, None), "died twice")]
    again = [result_from_dict(json.loads(dumps(result_to_dict(r)))) for r in results]
    assert [type(r) for r in again] == [type(r) for r in results]
    for a, b in zip(results, again):
        assert dumps(result_to_dict(a)) == dumps(result_to_dict(b)), a.case_id
        assert a.ok == b.ok and a.summary() == b.summary(), a.case_id
    first, rebuilt = Report(results, env={}), Report(again, env={})
    assert dumps(first.to_json()) == dumps(rebuilt.to_json())
    assert first.to_markdown() == rebuilt.to_markdown()
    assert again[2].first_divergence[1].name == "0.dW" and math.isnan(again[2].comparisons[0].checks[1].rel_norm)


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resume_after_a_line_cut_short(serial, tmp_path, frameworks, seed):
    """A run killed while writing a record leaves part of a line: resume drops it and reruns that case."""
    lines = (serial / "results.jsonl").read_bytes().splitlines(keepends=True)
    k = np.random.default_rng(seed).integers(0, len(lines))
    cut = np.random.default_rng(seed).integers(1, len(lines[k]) - 1)
    (tmp_path / "results.jsonl").write_bytes(b"".join(lines[:k]) + lines[k][:cut])
    assert cli.main([*IDS, "--quiet", "--jobs", "1", "--resume", "--out", str(tmp_path)]) == 0
    assert _cases(tmp_path) == _cases(serial), f"seed {seed}: cut line {k} at byte {cut}"
    assert sorted(_records(tmp_path)) == sorted(_records(serial)), f"seed {seed}"  # each case once


@pytest.mark.parity
def test_resume_skips_done_cases_and_reruns_other_settings(serial, tmp_path, frameworks, capsys):
    done, other = (json.loads(line) for line in (serial / "results.jsonl").read_text().splitlines()[:2])
    done["key"] = code_key(frameworks)  # this checkout's key now
    other["key"] = {**done["key"], "frameworks": ["torch"]}  # a record of another setting: not reused
    (tmp_path / "results.jsonl").write_text(json.dumps(done) + "\n" + json.dumps(other) + "\n")
    assert cli.main([*IDS, "--jobs", "1", "--resume", "--out", str(tmp_path)]) == 0
    assert "1 of 3 tasks already done" in capsys.readouterr().err
    assert _cases(tmp_path) == _cases(serial)
    assert sorted(_records(tmp_path)) == sorted(_records(serial))


@pytest.mark.parity
def test_a_fresh_run_starts_a_new_results_file(serial, tmp_path, frameworks):
    (tmp_path / "results.jsonl").write_text((serial / "results.jsonl").read_text())
    assert cli.main(["--case", "2", "--quiet", "--jobs", "1", "--out", str(tmp_path)]) == 0
    assert _records(tmp_path) == ['["case", 2, null]']


@pytest.mark.parity
def test_resume_after_the_process_is_killed_at_random_points(serial, tmp_path, frameworks):
    """Kill the sweep's process (SIGKILL) twice at random moments, then resume: the same report, no case twice."""
    rng = np.random.default_rng(7)
    cmd = [sys.executable, "-m", "crosscheck", *IDS, "--quiet", "--jobs", "1", "--resume", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = []
    for _ in range(2):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.monotonic()
        while not (tmp_path / "results.jsonl").exists() and time.monotonic() - start < 60:
            time.sleep(0.05)  # the file is opened once the frameworks are imported
        delay = float(rng.uniform(0.0, 2.0))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append((round(delay, 2), len(_records(tmp_path))))
    assert cli.main([*IDS, "--quiet", "--jobs", "1", "--resume", "--out", str(tmp_path)]) == 0
    assert _cases(tmp_path) == _cases(serial), f"kills (delay after the file opened, records then): {kills}"
    assert sorted(_records(tmp_path)) == sorted(_records(serial)), kills


@pytest.mark.parity
def test_the_jax_compilation_cache_changes_no_number(serial, tmp_path, frameworks):
    """--jax-cache: the first run fills the cache, the second compiles nothing new; both give the same bits."""
    cache = tmp_path / "jax-cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    entries = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        cmd = [
            sys.executable,
            "-m",
            "crosscheck",
            "--case",
            "5",
            "--quiet",
            "--jobs",
            "1",
            "--jax-cache",
            str(cache),
            "--out",
            str(out),
        ]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        assert _cases(out) == [c for c in _cases(serial) if c["case_id"] == "5"], f"run {k} with the cache"
        entries.append(sorted(p.name for p in cache.iterdir()))
    assert entries[0] and entries[1] == entries[0]
