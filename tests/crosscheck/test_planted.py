"""Planted bugs in manual_bp make crosscheck fail, and the report names the right first tensor.

Each plant swaps one formula for a plausible wrong one (monkeypatch), then the
comparison must fail with the expected first divergence: the tensor where the
wrong formula first shows in forward-then-backward order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import manual_bp as mbp
from crosscheck.run import cli
from crosscheck.run.compare import compare_case
from manual_bp import functional as F
from manual_bp import layers
from manual_bp import losses as L

pytestmark = pytest.mark.parity


def _net(seed: int, dtype: str = "float64"):
    """x (16, 5) -> Linear(5, 4) -> GELU -> Linear(4, 4) -> Tanh -> Linear(4, 3) -> CE."""
    rng = np.random.default_rng(seed)
    model = mbp.Sequential(
        mbp.Linear(5, 4, rng=rng, dtype=dtype),
        mbp.GELU(),
        mbp.Linear(4, 4, rng=rng, dtype=dtype),
        mbp.Tanh(),
        mbp.Linear(4, 3, rng=rng, dtype=dtype),
    )
    x = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.integers(0, 3, 16)
    dout = rng.standard_normal((16, 3)).astype(dtype)
    return model, mbp.SoftmaxCrossEntropy(), x, y, dout


def _first(model, loss_fn, x, y, dout, frameworks):
    result = compare_case(model, loss_fn, x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert not result.ok, "the planted bug went unnoticed"
    comp, bad = result.first_divergence
    assert comp.backend == "manual_bp"
    assert bad.error > 100 * bad.bound, f"{bad.name}: error {bad.error:.2e} barely above the bound"
    return comp.mode, bad.name


PLANTS = {
    # name: (what to patch, replacement factory, expected (mode, first tensor))
    "ce_drops_1/N": ("losses", "softmax_cross_entropy_backward", ("loss", "dlogits")),
    "linear_dx_missing_transpose": ("functional", "linear_backward", ("loss", "2.dx")),
    "gelu_uses_tanh_derivative": ("gelu", None, ("loss", "1.dx")),
    "tanh_forward_off_by_1e-6": ("tanh_fwd", None, ("loss", "3.out")),
}


def _plant(monkeypatch, name):
    if name == "ce_drops_1/N":
        good = L.softmax_cross_entropy_backward
        monkeypatch.setattr(
            L, "softmax_cross_entropy_backward", lambda dloss, cache: good(dloss, (*cache[:3], 1.0, *cache[4:]))
        )
    elif name == "linear_dx_missing_transpose":
        good = F.linear_backward

        def bad(dout, cache, *args, **kwargs):
            _, W, _ = cache
            dx, dW, db = good(dout, cache, *args, **kwargs)
            return (dout @ W if W.shape[0] == W.shape[1] else dx), dW, db  # only the square layer is wrong

        monkeypatch.setattr(layers, "linear_backward", bad)
    elif name == "gelu_uses_tanh_derivative":

        def bad(dout, cache):
            _, x, _ = cache
            t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return F.gelu_backward(dout, ("tanh", x, t))

        monkeypatch.setattr(mbp.GELU, "_bwd", staticmethod(bad))
    elif name == "tanh_forward_off_by_1e-6":  # a subtle forward slip: relative error 1e-6
        monkeypatch.setattr(mbp.Tanh, "_fwd", staticmethod(lambda x: F.tanh_forward(x * (1 + 1e-6))))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(PLANTS))
def test_plant_is_caught_at_the_right_tensor(name, seed, monkeypatch, frameworks):
    model, loss_fn, x, y, dout = _net(seed)
    clean = compare_case(model, loss_fn, x, y, dloss=1.3, dout=dout, frameworks=frameworks)
    assert clean.ok, clean.summary()
    _plant(monkeypatch, name)
    assert _first(model, loss_fn, x, y, dout, frameworks) == PLANTS[name][2]


def test_vjp_run_catches_a_backward_bug_the_loss_run_cannot_see(monkeypatch, frameworks):
    """A loss backward that ignores dloss passes a dloss = 1 run; the random scalar exposes it."""
    model, loss_fn, x, y, dout = _net(0)
    good = L.softmax_cross_entropy_backward
    monkeypatch.setattr(L, "softmax_cross_entropy_backward", lambda dloss, cache: good(1.0, cache))
    assert _first(model, loss_fn, x, y, dout, frameworks) == ("loss", "dlogits")


def test_sweep_cli_fails_and_names_the_tensor(monkeypatch, tmp_path, capsys, frameworks):
    _plant(monkeypatch, "gelu_uses_tanh_derivative")
    ids = []
    from crosscheck.cases import case

    # The first float64 cases with a GELU(approximate="none") layer (and no norm or dropout). (In float32 the two GELU
    # derivatives differ by about 1e-4 relative, the size of that tier's bound.)
    for i in range(200):
        mods = list(case(i, "float64").model.modules())
        # a normalisation can make the GELU's input gradient vanish (LayerNorm is scale-invariant) and
        # dropout can zero it: take cases where the wrong derivative must show
        plain = not any(m.kind in ("layer_norm", "batch_norm", "dropout") for m in mods)
        if plain and any(layer.kind == "gelu" and layer.approximate == "none" for layer in mods):
            ids.append(i)
        if len(ids) == 3:
            break
    argv = ["--quiet", "--jobs", "1", "--dtype", "float64", "--out", str(tmp_path)]  # the plant lives in this process
    argv += [a for i in ids for a in ("--case", str(i))]
    assert cli.main(argv) == 1
    report = (tmp_path / "report.md").read_text()
    assert "FAILED" in report and "first divergence" in report
    import json

    data = json.loads((tmp_path / "report.json").read_text())
    for c in data["cases"]:
        gelu_names = {f"{n}.dx" for n, k in _kinds(int(c["case_id"])) if k == "gelu"}
        assert not c["ok"] and c["first_divergence"]["tensor"] in gelu_names, c["first_divergence"]


def _kinds(case_id):
    from crosscheck.cases import case

    return [(layer.name, layer.kind) for layer in case(case_id, "float64").model.modules()]
