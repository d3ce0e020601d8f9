"""``crosscheck merge``: shard reports into the whole sweep's report, or a refusal naming the difference."""

from __future__ import annotations

import copy
import json

import pytest

from crosscheck.run import cli
from crosscheck.run.merge import MergeError, merge
from crosscheck.run.report import Report

SWEEP = ["--cases", "3", "--no-seed-network", "--no-trajectories", "--quiet", "--jobs", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The whole sweep and its two shards, each run for real."""
    from tests.helpers import require_frameworks

    require_frameworks()
    root = tmp_path_factory.mktemp("merge")
    for name, extra in [("whole", []), ("s0", ["--shard", "0/2"]), ("s1", ["--shard", "1/2"])]:
        assert cli.main([*SWEEP, *extra, "--out", str(root / name)]) == 0
    return root


def _cases(path) -> list[dict]:
    return json.loads((path / "report.json").read_text())["cases"]


@pytest.mark.parity
def test_shards_merge_into_the_whole_sweeps_report(runs, capsys):
    assert cli.main(["merge", str(runs / "s1"), str(runs / "s0"), "--out", str(runs / "merged")]) == 0
    assert "PASSED" in capsys.readouterr().out
    merged = json.loads((runs / "merged" / "report.json").read_text())
    assert [c["case_id"] for c in merged["cases"]] == ["0", "1", "2"]  # the plan's order, not the shards'
    for a, b in zip(_cases(runs / "whole"), merged["cases"]):
        assert a == b, f"case {a['case_id']} differs after the merge"
    assert merged["settings"]["case_ids"] == ["0", "1", "2"]


def _differ(shard: Report, where: str, field: str, value) -> Report:
    other = copy.deepcopy(shard)
    getattr(other, where)[field] = value
    return other


@pytest.mark.parity
@pytest.mark.parametrize(
    "where, field, value, named",
    [
        ("env", "git_commit", "0" * 40, "different code: git_commit"),
        ("env", "torch", "1.0.0", "different code: torch"),
        ("env", "numpy", "1.0.0", "different code: numpy"),
        ("settings", "frameworks", ["torch"], "different settings: frameworks"),
    ],
)
def test_shards_of_other_code_or_settings_are_refused(runs, where, field, value, named):
    s0, s1 = Report.read(runs / "s0"), Report.read(runs / "s1")
    with pytest.raises(MergeError, match=named):
        merge([s0, _differ(s1, where, field, value)], ["s0", "s1"])


@pytest.mark.parity
def test_another_sweep_is_refused(runs):
    s0, s1 = Report.read(runs / "s0"), Report.read(runs / "s1")
    other = copy.deepcopy(s1)
    other.settings["sweep"] = {**other.settings["sweep"], "seed": 1}
    with pytest.raises(MergeError, match=r"different settings: sweep .*'seed': 0.* but .*'seed': 1"):
        merge([s0, other], ["s0", "s1"])


@pytest.mark.parity
def test_overlaps_and_gaps_are_refused_naming_the_ids(runs, capsys):
    s0, s1, whole = (Report.read(runs / d) for d in ("s0", "s1", "whole"))
    with pytest.raises(MergeError, match=r"overlapping case ids: 1 \(whole and s1\)"):
        merge([whole, s1], ["whole", "s1"])
    with pytest.raises(MergeError, match=r"gaps: the sweep plans 3 case ids and no shard has 1$"):
        merge([s0], ["s0"])
    assert cli.main(["merge", str(runs / "s0"), "--out", str(runs / "refused")]) == 2
    assert "no shard has 1" in capsys.readouterr().err
    assert not (runs / "refused").exists()


def test_a_report_without_its_sweep_is_refused():
    with pytest.raises(MergeError, match="does not record its sweep"):
        merge([Report([], settings={}, env={})], ["user.json"])
