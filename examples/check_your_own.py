"""Check your own backward: a kind manual_bp does not have, and a teacher's grading test (docs/check-your-own.md).

``python examples/check_your_own.py`` registers the custom kind and checks the pair against torch.
"""

import numpy as np
import pytest

import crosscheck
from crosscheck.check.grader import COURSE, grade

# --8<-- [start:custom_kind]
crosscheck.register_kind(
    "softsign",  # out = a x / (1 + |x|), a learnable scale a per feature
    torch=lambda x, a: a * x / (1 + x.abs()),
    params=lambda rng, shape: {"a": rng.normal(size=shape[1:])},
)


def softsign_forward(x, a):
    return a * x / (1 + np.abs(x)), (x, a)


def softsign_backward(dout, cache):
    x, a = cache
    return dout * a / (1 + np.abs(x)) ** 2, (dout * x / (1 + np.abs(x))).sum(axis=0)  # dx, da


# --8<-- [end:custom_kind]


# --8<-- [start:grading]
@pytest.mark.parametrize("kind", sorted(COURSE))
def test_layer(kind, student_file):
    grade(student_file, kind)


# --8<-- [end:grading]


if __name__ == "__main__":
    report = crosscheck.check_pair(softsign_forward, softsign_backward, kind="softsign")
    print(report.headline())
    print("PASSED" if report.ok else "\n".join(r.summary() for r in report.failures))
