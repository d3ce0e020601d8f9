"""The golden answers: check_pair(..., against="golden") without PyTorch or JAX, and the shipped fixtures
regenerated and compared (parity)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crosscheck import tolerance
from crosscheck.check import golden
from tests.helpers import students
from tests.helpers.students import STUDENTS, load, pair

# dropout has no golden answers (its expected output depends on the mask the student's code draws); the
# cause of a wrongly shaped dx and of a flipped kernel needs a reference rerun
PAIRS = {k: v for k, v in students.PAIRS.items() if k != "dropout"}
MISTAKES = {
    k: v
    for k, v in students.MISTAKES.items()
    if v[0] in PAIRS and k not in ("affine_dx_not_reshaped", "conv_flipped_kernel")
}


def test_every_adapter_but_dropout_has_small_versioned_answers() -> None:
    assert set(golden.KINDS) == set(PAIRS)
    total = 0
    for kind in golden.KINDS:
        data = golden.load(kind)
        assert data["meta"]["version"] == golden.VERSION and data["meta"]["environment"]["torch"]
        assert len(data["cases"]) == golden.CASES
        shapes = [d.x.shape for d, *_ in data["cases"]]
        assert shapes[0][0] == 1 or kind == "batchnorm", f"{kind}: case 0 is a batch of 1"
        for d, _, want, *_ in data["cases"]:
            assert d.x.dtype == np.float64 and all(v.dtype == np.float64 for v in want.values())
        total += golden.path(kind).stat().st_size
    assert total < 1_000_000


@pytest.mark.parametrize("adapter", sorted(PAIRS))
def test_correct_pairs_pass_the_golden_answers(adapter: str) -> None:
    import crosscheck

    report = crosscheck.check_pair(*pair(load("correct"), adapter), kind=adapter, against="golden")
    assert len(report.results) == golden.CASES
    assert report.ok, "\n".join(r.summary() for r in report.failures)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_the_golden_answers(name: str) -> None:
    import crosscheck

    adapter, tensor, words = MISTAKES[name]
    report = crosscheck.check_pair(*pair(load(name), adapter), kind=adapter, against="golden")
    assert report.failures, f"{name}: passed every golden case"
    for r in report.failures:
        comp, bad = r.first_divergence
        assert (bad.name, comp.reference) == (tensor, "golden"), r.summary()
        cause = r.summary().split("likely cause:")[1]
        assert (words or "none the numbers show") in cause, r.summary()


@pytest.mark.subprocess
def test_golden_works_without_torch_and_jax() -> None:
    """A child process in which importing torch or jax fails: the golden path still checks a pair."""
    code = f"""
import sys

class NoFrameworks:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "jax", "jaxlib", "optax"):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NoFrameworks())
import importlib.util, crosscheck
spec = importlib.util.spec_from_file_location("correct", {str(STUDENTS / "correct.py")!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
r = crosscheck.check_pair(m.affine_forward, m.affine_backward, kind="affine", against="golden")
bad = crosscheck.check_pair(m.affine_forward, m.relu_backward, kind="affine", against="golden")
try:
    crosscheck.check_pair(m.affine_forward, m.affine_backward, kind="affine", cases=1)
except ImportError:
    pass
print(r.ok, len(r.results), bad.ok, "torch" in sys.modules or "jax" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", str(golden.CASES), "False", "False"], out.stdout


@pytest.mark.parity
def test_golden_answers_have_not_drifted(tmp_path: Path, frameworks: tuple[str, ...]) -> None:
    """Regenerate every fixture: the same inputs, and answers within the bound of the shipped ones."""
    golden.make(tmp_path)
    for kind in golden.KINDS:
        shipped, fresh = golden.load(kind), golden.load(kind, tmp_path)
        assert json.dumps(shipped["meta"]["seed"]) == json.dumps(fresh["meta"]["seed"])
        for k, (a, b) in enumerate(zip(shipped["cases"], fresh["cases"])):
            (d1, dout1, want1, S1, bound), (d2, dout2, want2, _, _) = a, b
            assert np.array_equal(d1.x, d2.x) and set(want1) == set(want2), f"{kind} case {k}: inputs drifted"
            if dout1 is not None:
                assert np.array_equal(dout1, dout2)
            for n in want1:
                c = tolerance.check(n, want2[n], want1[n], bound, S1[n])
                assert c.ok, f"{kind} case {k}: {n} drifted: {c}"
