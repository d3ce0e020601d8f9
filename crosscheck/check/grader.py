"""The autograder: one pytest test per layer of a student's file, the diagnosis as the failure message.

A teacher's test file (docs/check-your-own.md)::

    import pytest
    from crosscheck.check.grader import COURSE, grade

    @pytest.mark.parametrize("kind", sorted(COURSE))
    def test_layer(kind, student_file):
        grade(student_file, kind)

run as ``pytest -p crosscheck.check.grader --student path/to/layers.py test_grade.py``: this module is
also the pytest plugin that adds ``--student`` and the ``student_file`` fixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# adapter -> the course's function names (forward, backward); a loss has one function
COURSE: dict[str, tuple[str, str | None]] = {
    "affine": ("affine_forward", "affine_backward"),
    "relu": ("relu_forward", "relu_backward"),
    "sigmoid": ("sigmoid_forward", "sigmoid_backward"),
    "tanh": ("tanh_forward", "tanh_backward"),
    "batchnorm": ("batchnorm_forward", "batchnorm_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "conv": ("conv_forward_naive", "conv_backward_naive"),
    "max_pool": ("max_pool_forward_naive", "max_pool_backward_naive"),
    "softmax_loss": ("softmax_loss", None),
}
SHOWN = 3  # failing cases shown in one failure message


def grade(
    path: str | Path,
    kind: str,
    names: Sequence[str] | None = None,
    *,
    cases: int = 20,
    seed: int = 0,
    against: str | Sequence[str] = ("torch", "jax"),
) -> Any:
    """Check the pair ``names`` (default: the course's names for ``kind``) of the file at ``path``; fail the
    test (``pytest.fail``, no traceback) with the diagnoses when a case mismatches, else return the report."""
    import pytest

    from crosscheck.check.cli import load_pair
    from crosscheck.check.pair import check_pair

    names = tuple(names) if names is not None else tuple(n for n in COURSE[kind] if n)
    try:
        forward, backward = load_pair(f"{path}:{','.join(names)}")
    except ValueError as err:
        problem = str(err)
    else:
        problem = ""
    if problem:
        pytest.fail(f"{kind}: {problem}", pytrace=False)
    report = check_pair(forward, backward, kind=kind, cases=cases, seed=seed, against=against)
    if not report.ok:
        bad = report.failures
        shown = "\n\n".join(r.summary() for r in bad[:SHOWN])
        more = f"\n\n(and {len(bad) - SHOWN} more failing cases)" if len(bad) > SHOWN else ""
        pytest.fail(f"{kind}: {len(bad)} of {len(report.results)} cases mismatch\n\n{shown}{more}", pytrace=False)
    return report


# ---------------------------------------------------------------- the pytest plugin (-p crosscheck.check.grader)


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--student", action="store", default=None, help="the student's file of layer pairs to grade")


def _student_file(request: Any) -> Path:
    import pytest

    path = request.config.getoption("--student")
    if not path:
        pytest.skip("no --student FILE given")
    return Path(path)


try:  # the fixture exists only where pytest is installed
    import pytest as _pytest

    student_file = _pytest.fixture(_student_file, name="student_file")
except ImportError:  # pragma: no cover
    pass
