"""One layer of a family's makers in a small network, in either dtype, compared by ``compare_case``: shared by the
parity tests of the new norms, convolutions and pools (tests/crosscheck/test_norms.py, test_conv_kinds.py)."""

from __future__ import annotations

import numpy as np

import manual_bp as mbp
from crosscheck.run.compare import CaseResult, compare_case


def in_dtype(layer: mbp.Module, dtype: str) -> mbp.Module:
    """The same layer (parameters, running statistics, mode) in ``dtype``, rebuilt from its architecture."""
    arch = mbp.architecture(layer)
    if "dtype" in arch["config"]:
        arch["config"]["dtype"] = dtype
    out = mbp.build(arch)
    for name, p in layer.params.items():
        out.params[name][...] = p.astype(dtype)
    for name, b in layer.buffers.items():
        out.buffers[name][...] = b.astype(dtype)
    return out.train(layer.training)


def network_case(layer: mbp.Module, x: np.ndarray, dtype: str, seed: int, case_id: str) -> CaseResult:
    """x -> layer -> Flatten -> Linear(., 3) -> cross-entropy, compared with torch and JAX in both runs (the loss
    pulled back by a random scalar, and a random upstream gradient)."""
    r = np.random.default_rng([seed, 99])
    layer = in_dtype(layer, dtype)
    xd = x.astype(dtype)
    drawn = {name: b.copy() for name, b in layer.buffers.items()}
    features = int(np.prod(layer.forward(xd).shape[1:]))
    for name, b in drawn.items():  # that forward moved the running statistics: back to the drawn ones
        np.copyto(layer.buffers[name], b)
    head = mbp.Linear(features, 3, rng=r, dtype=dtype)
    model = mbp.Sequential(layer, mbp.Flatten(), head)
    N = x.shape[0]
    return compare_case(
        model,
        mbp.SoftmaxCrossEntropy(),
        xd,
        r.integers(0, 3, N),
        dloss=float(r.uniform(0.5, 2)),
        dout=r.standard_normal((N, 3)).astype(dtype),
        case_id=case_id,
        description=repr(layer),
    )


def worst(result: CaseResult) -> tuple[float, float]:
    """(worst error, smallest margin bound / error) over manual_bp's comparisons."""
    checks = [c for comp in result.comparisons if comp.backend == "manual_bp" for c in comp.checks]
    return max(c.error for c in checks), min(c.margin for c in checks)


__all__ = ["in_dtype", "network_case", "worst"]
