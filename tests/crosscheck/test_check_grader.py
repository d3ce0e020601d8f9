"""The autograder pattern and the ``check`` subcommand, run as a teacher and a student would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.students import STUDENTS

ROOT = Path(__file__).parents[2]

TEACHER = """
import pytest
from crosscheck.check.grader import COURSE, grade

@pytest.mark.parametrize("kind", sorted(k for k in COURSE if k != "dropout"))
def test_layer(kind, student_file):
    grade(student_file, kind, against="golden")
"""


def _pytest(tmp_path: Path, student: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_grade.py").write_text(TEACHER)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "crosscheck.check.grader",
        "--student",
        str(STUDENTS / f"{student}.py"),
        str(tmp_path / "test_grade.py"),
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


@pytest.mark.subprocess
def test_the_grader_passes_a_correct_file(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "correct")
    assert out.returncode == 0 and "8 passed" in out.stdout, out.stdout + out.stderr


@pytest.mark.subprocess
def test_the_grader_fails_one_test_per_wrong_layer_with_the_diagnosis(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "relu_at_zero")  # a file with relu only: relu mismatches, the others are missing
    assert out.returncode == 1
    assert "test_layer[relu] - Failed: relu: " in out.stdout, out.stdout
    assert "likely cause: differs only where x == 0" in out.stdout
    assert "has no function 'affine_forward'" in out.stdout


@pytest.mark.subprocess
def test_the_check_subcommand_replays_one_case() -> None:
    target = f"{STUDENTS / 'sigmoid_sign_flip.py'}:sigmoid_forward,sigmoid_backward"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "crosscheck",
            "check",
            target,
            "--kind",
            "sigmoid",
            "--against",
            "golden",
            "--case",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 1, out.stderr
    assert "case sigmoid/golden/2: MISMATCH" in out.stdout and "likely cause: a flipped sign" in out.stdout
    assert "FAILED: 1 cases, 1 mismatching" in out.stdout


@pytest.mark.subprocess
def test_the_check_subcommand_names_a_bad_target() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crosscheck", "check", "nowhere.py:f,g", "--kind", "relu"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 2 and "no Python file at 'nowhere.py'" in out.stderr
