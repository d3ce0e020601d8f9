"""``manual_bp.functional``: it re-exports every forward/backward pair, and no pair mutates its
arguments or its cache."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import manual_bp
from manual_bp import functional as F
from manual_bp import losses as L
from tests.helpers import DTYPES

# ---------------------------------------------------------------- one namespace


def test_functional_re_exports_every_pair_of_every_module() -> None:
    """Each ``<name>_forward`` defined in a manual_bp module has its ``<name>_backward`` beside it, and
    ``functional`` re-exports exactly these pairs, the same objects. The modules are read, not imported:
    importing one the package does not import would register its layer kinds for every later test."""
    homes = {}
    for path in sorted(Path(manual_bp.__file__).parent.glob("*.py")):
        defined = {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}
        for name in sorted(n for n in defined if n.endswith("_forward")):
            backward = name.removesuffix("_forward") + "_backward"
            assert backward in defined, f"manual_bp/{path.name}: {name} has no {backward} beside it"
            homes[name] = homes[backward] = f"manual_bp.{path.stem}"
    missing, stale = sorted(set(homes) - set(F.__all__)), sorted(set(F.__all__) - set(homes))
    assert not missing, f"pairs not re-exported by manual_bp/functional.py (import it, list it in __all__): {missing}"
    assert not stale, f"manual_bp/functional.py exports names that are no pair of a module: {stale}"
    for name, module in homes.items():
        assert getattr(F, name) is getattr(importlib.import_module(module), name), name


# ---------------------------------------------------------------- nothing mutates its inputs


PAIRS: list[tuple[str, Callable, Callable]] = [
    ("identity", F.identity_forward, F.identity_backward),
    ("relu", F.relu_forward, F.relu_backward),
    ("leaky_relu", lambda x: F.leaky_relu_forward(x, 0.1), F.leaky_relu_backward),
    ("elu", lambda x: F.elu_forward(x, 1.3), F.elu_backward),
    ("sigmoid", F.sigmoid_forward, F.sigmoid_backward),
    ("tanh", F.tanh_forward, F.tanh_backward),
    ("silu", F.silu_forward, F.silu_backward),
    ("softplus", lambda x: F.softplus_forward(x, 2.0, 1.0), F.softplus_backward),
    ("gelu", lambda x: F.gelu_forward(x, "none"), F.gelu_backward),
    ("gelu_tanh", lambda x: F.gelu_forward(x, "tanh"), F.gelu_backward),
    ("softmax", F.softmax_forward, F.softmax_backward),
    ("log_softmax", F.log_softmax_forward, F.log_softmax_backward),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "fwd", "bwd"), PAIRS, ids=[n for n, _, _ in PAIRS])
def test_functional_pair_mutates_nothing(name: str, fwd: Callable, bwd: Callable, dtype: type) -> None:
    r = np.random.default_rng(0)
    x = (r.standard_normal((4, 5)) * 3).astype(dtype)
    dout = r.standard_normal((4, 5)).astype(dtype)
    x0, dout0 = x.copy(), dout.copy()
    out, cache = fwd(x)
    out0 = out.copy()
    dx = bwd(dout, cache)
    dx_again = bwd(dout, cache)  # backward leaves its cache intact: a second call agrees bit for bit
    assert np.array_equal(x, x0) and np.array_equal(dout, dout0) and np.array_equal(out, out0), name
    assert np.array_equal(dx, dx_again), name
    assert out.dtype == dtype and dx.dtype == dtype, name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_pair_mutates_nothing(dtype: type, bias: bool) -> None:
    r = np.random.default_rng(0)
    x, W = r.standard_normal((2, 3, 4)).astype(dtype), r.standard_normal((4, 5)).astype(dtype)
    b = r.standard_normal(5).astype(dtype) if bias else None
    dout = r.standard_normal((2, 3, 5)).astype(dtype)
    copies = [a.copy() for a in (x, W, dout)] + ([b.copy()] if bias else [])
    out, cache = F.linear_forward(x, W, b)
    grads = F.linear_backward(dout, cache)
    again = F.linear_backward(dout, cache)
    for a, c in zip([x, W, dout] + ([b] if bias else []), copies):
        assert np.array_equal(a, c)
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads if g is not None)
    assert all((g is None and h is None) or np.array_equal(g, h) for g, h in zip(grads, again))
    assert (grads[2] is None) == (not bias)


def test_loss_functional_pairs_mutate_nothing() -> None:
    r = np.random.default_rng(3)
    z = r.standard_normal((4, 3)) * 5
    y = r.integers(0, 3, 4)
    t = r.random((4, 3))
    for i, (fwd, bwd, target) in enumerate(
        [
            (
                lambda a, b: L.softmax_cross_entropy_forward(a, b, "mean", 0.1),
                L.softmax_cross_entropy_backward,
                y,
            ),
            (lambda a, b: L.softmax_cross_entropy_forward(a, b, "sum", 0.0), L.softmax_cross_entropy_backward, y),
            (
                lambda a, b: L.softmax_cross_entropy_forward(a, b, "mean", 0.2),
                L.softmax_cross_entropy_backward,
                t,
            ),
            (lambda a, b: L.mse_forward(a, b, "mean"), L.mse_backward, t),
            (lambda a, b: L.bce_with_logits_forward(a, b, "sum"), L.bce_with_logits_backward, t),
        ]
    ):
        z0, target0 = z.copy(), target.copy()
        _, cache = fwd(z, target)
        g1, g2 = bwd(2.0, cache), bwd(2.0, cache)
        assert np.array_equal(z, z0) and np.array_equal(target, target0), f"pair {i}: {bwd.__name__}"
        assert np.array_equal(g1, g2), f"pair {i}: {bwd.__name__}"
