"""LayerNorm and BatchNorm1d (manual_bp/norm.py): the running statistics follow torch's momentum and
unbiased variance; evaluation never updates them.

Finite differences, dtypes and bad input of both are in tests/kinds/test_new_layers.py.
"""

from __future__ import annotations

import numpy as np

import manual_bp as mbp


def test_batch_norm_running_statistics_follow_torch_momentum() -> None:
    r = np.random.default_rng(0)
    bn, x = mbp.BatchNorm1d(3, momentum=0.1), r.standard_normal((5, 3))
    bn.forward(x)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(0), rtol=1e-15)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-15)
    out = bn.forward(x)  # normalised with the biased variance
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-13)
    before = {k: v.copy() for k, v in bn.buffers.items()}
    bn.eval().forward(x)
    assert all(np.array_equal(before[k], bn.buffers[k]) for k in before)  # eval never updates
