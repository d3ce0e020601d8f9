"""crosscheck.check_pair on course-style pairs: the correct ones pass every adapter, each student mistake
fails with the right first tensor and, where the numbers show it, the right likely cause."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.students import MISTAKES, PAIRS, load, pair


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("adapter", sorted(PAIRS))
def test_correct_pairs_pass(adapter: str, seed: int, frameworks: tuple[str, ...]) -> None:
    import crosscheck

    report = crosscheck.check_pair(
        *pair(load("correct"), adapter), kind=adapter, cases=8, seed=seed, against=frameworks
    )
    assert len(report.results) == 8
    assert report.ok, "\n".join(r.summary() for r in report.failures)


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_student_mistake_is_diagnosed(name: str, frameworks: tuple[str, ...]) -> None:
    import crosscheck

    adapter, tensor, words = MISTAKES[name]
    report = crosscheck.check_pair(*pair(load(name), adapter), kind=adapter, cases=8, seed=3, against=frameworks)
    assert report.failures, f"{name}: every case passed"
    for r in report.failures:
        comp, bad = r.first_divergence
        assert (bad.name, comp.backend) == (tensor, "yours"), r.summary()
        text = r.summary()
        assert "replay: python -m crosscheck check " in text and f"--case {r.case_id.rsplit('/', 1)[1]}" in text
        if words is None:
            assert "likely cause: none the numbers show" in text, text
        else:
            assert words in text.split("likely cause:")[1], text


@pytest.mark.parity
def test_diagnosis_names_the_worst_entry(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    r = crosscheck.check_pair(
        *pair(load("sigmoid_sign_flip"), "sigmoid"), kind="sigmoid", cases=1, against=frameworks
    ).results[0]
    assert "worst entry at (" in r.summary() and "yours" in r.summary() and "expected" in r.summary()


@pytest.mark.parity
def test_a_crash_in_the_users_code_is_a_failing_case(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    def forward(x, w, b):
        return x @ w + b, (x, w)  # x (N, d1, d2) is never reshaped: a crash for those cases

    def backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(0)

    report = crosscheck.check_pair(forward, backward, kind="affine", cases=4, against=frameworks)
    crashed = [r for r in report.failures if "raised" in r.summary()]
    assert crashed and all("likely cause: your code raised" in r.summary() for r in crashed)


@pytest.mark.parity
def test_inputs_mutated_by_the_user_fail(frameworks: tuple[str, ...]) -> None:
    import crosscheck

    def forward(x):
        out = np.maximum(x, 0)
        x *= 1.0  # harmless in value, but a write
        x[...] = out
        return out, out

    def backward(dout, cache):
        return dout * (cache > 0)

    report = crosscheck.check_pair(forward, backward, kind="relu", cases=2, against=frameworks)
    assert not report.ok and "mutated its inputs" in report.failures[0].summary()


def test_unknown_kind_names_the_choices() -> None:
    import crosscheck

    with pytest.raises(ValueError, match=r"no ready adapter for kind 'lstm'.*affine"):
        crosscheck.check_pair(lambda x: x, None, kind="lstm")
