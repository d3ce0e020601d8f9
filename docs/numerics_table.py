"""Measure the numerical edge cases of docs/numerics.md in manual_bp, PyTorch and JAX.

    python docs/numerics_table.py            # prints the Markdown table (torch and JAX columns need both)
    python docs/numerics_table.py --mbp-only # manual_bp's columns alone

Each row evaluates one scalar function at one point, in float64, and its
derivative with respect to the input entry named in the row (the upstream
gradient is 1 on the output entry named in the row and 0 elsewhere): manual_bp
through its layers' and losses' own forward and backward, torch through
autograd, JAX through ``jax.grad`` with ``jax_enable_x64``. Numbers are printed
with 12 significant digits, so that last-ulp differences between libraries do
not show and every difference that does is real. ``tests/test_numerics_doc.py``
recomputes manual_bp's columns and compares them with the committed table.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import manual_bp as mbp

NAN, INF = float("nan"), float("inf")
Pair = tuple[float, float]  # (value, derivative)


def fmt(v: float) -> str:
    """12 significant digits; nan, inf, -inf spelled out; a zero of either sign is 0."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return "0" if v == 0 else f"{v:.12g}"


# ---------------------------------------------------------------- manual_bp


def mbp_layer(make: Callable[[], mbp.Module], xs: list[float], i: int = 0, j: int = 0) -> Pair:
    """out[j] and d out[j] / d x[i] for a layer applied to the row xs."""
    layer = make()
    x = np.array([xs])
    with np.errstate(all="ignore"):
        out = layer.forward(x)
        dout = np.zeros_like(out)
        dout[0, j] = 1.0
        dx = layer.backward(dout)
    return float(out[0, j]), float(dx[0, i])


def mbp_loss(make: Callable[[], mbp.Loss], z: list[float], target: list[float] | int, i: int = 0) -> Pair:
    """The loss of one sample and dL / dz[i]."""
    loss = make()
    zz = np.array([z])
    t = np.array([target])  # (1,) label or (1, C) targets
    with np.errstate(all="ignore"):
        value = loss.forward(zz, t)
        dz = loss.backward(1.0)
    return float(value), float(dz[0, i])


# ---------------------------------------------------------------- torch and JAX (imported on first use)


def torch_fn(f: Callable, xs: list[float], i: int = 0, j: int = 0) -> Pair:
    import torch

    x = torch.tensor([xs], dtype=torch.float64, requires_grad=True)
    out = f(x)
    out[0, j].backward() if out.ndim else out.backward()
    value = out[0, j] if out.ndim else out
    return float(value.detach()), float(x.grad[0, i])


def jax_fn(f: Callable, xs: list[float], i: int = 0, j: int = 0) -> Pair:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def pick(x):
        out = f(x)
        return out[0, j] if out.ndim else out

    value, grad = jax.value_and_grad(pick)(jnp.array([xs], dtype=jnp.float64))
    return float(value), float(grad[0, i])


def _F():
    import torch.nn.functional as F

    return F


def _jnn():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax.nn


def _optax():
    import jax

    jax.config.update("jax_enable_x64", True)
    import optax

    return optax


def _torch_ce(z, label: int | None = None, probs: list[float] | None = None):
    import torch

    F = _F()
    if probs is not None:
        return F.cross_entropy(z, torch.tensor([probs], dtype=torch.float64))
    return F.cross_entropy(z, torch.tensor([label]))


def _jax_ce(z, label: int):
    import jax.numpy as jnp

    return _optax().softmax_cross_entropy_with_integer_labels(z, jnp.array([label]))[0]


def _torch_bce(z, t: float):
    import torch

    return _F().binary_cross_entropy_with_logits(z, torch.tensor([[t]], dtype=torch.float64))


def _jax_bce(z, t: float):
    import jax.numpy as jnp

    return _optax().sigmoid_binary_cross_entropy(z, jnp.array([[t]]))[0, 0]


# ---------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Row:
    id: str
    section: str
    what: str  # the function and the point, as the table shows them
    mbp: Callable[[], Pair]
    torch: Callable[[], Pair]
    jax: Callable[[], Pair]
    jax_name: str = ""  # what the JAX column computes, when it is not the obvious jax.nn function
    note: str = ""


def _rows() -> list[Row]:
    F, jnn = _F, _jnn
    R: list[Row] = []

    def add(id: str, section: str, what: str, m, t, j, jax_name: str = "", note: str = "") -> None:
        R.append(Row(id, section, what, m, t, j, jax_name, note))

    K = "kinks"
    add(
        "relu-0",
        K,
        "ReLU at 0",
        lambda: mbp_layer(mbp.ReLU, [0.0]),
        lambda: torch_fn(lambda x: F().relu(x), [0.0]),
        lambda: jax_fn(lambda x: jnn().relu(x), [0.0]),
        "jax.nn.relu",
        "ReLU'(0) = 0 by convention",
    )
    add(
        "relu-0-maximum",
        K,
        "ReLU at 0, JAX written as maximum(x, 0)",
        lambda: mbp_layer(mbp.ReLU, [0.0]),
        lambda: torch_fn(lambda x: F().relu(x), [0.0]),
        lambda: jax_fn(lambda x: __import__("jax.numpy").numpy.maximum(x, 0.0), [0.0]),
        "jnp.maximum(x, 0)",
        "maximum splits the tie: 0.5",
    )
    add(
        "leaky-0",
        K,
        "LeakyReLU(0.01) at 0",
        lambda: mbp_layer(lambda: mbp.LeakyReLU(0.01), [0.0]),
        lambda: torch_fn(lambda x: F().leaky_relu(x, 0.01), [0.0]),
        lambda: jax_fn(lambda x: jnn().leaky_relu(x, 0.01), [0.0]),
        "jax.nn.leaky_relu",
        "jax.nn.leaky_relu tests x >= 0: slope 1 at 0",
    )
    add(
        "elu-0",
        K,
        "ELU(0.5) at 0",
        lambda: mbp_layer(lambda: mbp.ELU(0.5), [0.0]),
        lambda: torch_fn(lambda x: F().elu(x, 0.5), [0.0]),
        lambda: jax_fn(lambda x: jnn().elu(x, 0.5), [0.0]),
        "jax.nn.elu",
        "ELU'(0) = alpha",
    )
    add(
        "softplus-at-threshold",
        K,
        "Softplus(β=1, threshold=20) at x = 20 (βx = threshold)",
        lambda: mbp_layer(mbp.Softplus, [20.0]),
        lambda: torch_fn(lambda x: F().softplus(x), [20.0]),
        lambda: jax_fn(lambda x: jnn().softplus(x), [20.0]),
        "jax.nn.softplus (no threshold)",
        "the log branch: the switch is strict, βx > threshold",
    )
    add(
        "softplus-above-threshold",
        K,
        "Softplus(β=1, threshold=20) at x = 20.5",
        lambda: mbp_layer(mbp.Softplus, [20.5]),
        lambda: torch_fn(lambda x: F().softplus(x), [20.5]),
        lambda: jax_fn(lambda x: jnn().softplus(x), [20.5]),
        "jax.nn.softplus (no threshold)",
        "identity above the threshold: derivative exactly 1; JAX has no threshold",
    )

    S = "saturation"
    for x in (-40.0, 40.0, -1e4):
        add(
            f"sigmoid-{x:g}",
            S,
            f"Sigmoid at {x:g}",
            lambda x=x: mbp_layer(mbp.Sigmoid, [x]),
            lambda x=x: torch_fn(lambda a: __import__("torch").sigmoid(a), [x]),
            lambda x=x: jax_fn(lambda a: jnn().sigmoid(a), [x]),
            "jax.nn.sigmoid",
        )
    for x in (10.0, 20.0):
        add(
            f"tanh-{x:g}",
            S,
            f"Tanh at {x:g}",
            lambda x=x: mbp_layer(mbp.Tanh, [x]),
            lambda x=x: torch_fn(lambda a: __import__("torch").tanh(a), [x]),
            lambda x=x: jax_fn(lambda a: __import__("jax.numpy").numpy.tanh(a), [x]),
            "jnp.tanh",
            "1 - t² evaluated as (1 - t)(1 + t)" if x == 10.0 else "",
        )
    add(
        "softplus--1e4",
        S,
        "Softplus at -1e4",
        lambda: mbp_layer(mbp.Softplus, [-1e4]),
        lambda: torch_fn(lambda a: F().softplus(a), [-1e4]),
        lambda: jax_fn(lambda a: jnn().softplus(a), [-1e4]),
        "jax.nn.softplus",
    )
    add(
        "softplus-1e4-log-branch",
        S,
        "Softplus(threshold=1e9) at 1e4 (the log branch)",
        lambda: mbp_layer(lambda: mbp.Softplus(threshold=1e9), [1e4]),
        lambda: torch_fn(lambda a: F().softplus(a, 1.0, 1e9), [1e4]),
        lambda: jax_fn(lambda a: jnn().softplus(a), [1e4]),
        "jax.nn.softplus",
        "logaddexp: no overflow",
    )
    add(
        "gelu--10",
        S,
        "GELU (erf) at -10",
        lambda: mbp_layer(mbp.GELU, [-10.0]),
        lambda: torch_fn(lambda a: F().gelu(a), [-10.0]),
        lambda: jax_fn(lambda a: jnn().gelu(a, approximate=False), [-10.0]),
        "jax.nn.gelu(approximate=False)",
        "Φ = erfc(-x/√2)/2 keeps the tail (exact: -7.6e-23); torch's (1 + erf)/2 cancels to 0 below about -8.3",
    )
    xs = [1e4, -1e4, 0.0]
    add(
        "log-softmax-big-min",
        S,
        "LogSoftmax([1e4, -1e4, 0]), entry 1",
        lambda: mbp_layer(mbp.LogSoftmax, xs, 1, 1),
        lambda: torch_fn(lambda a: F().log_softmax(a, -1), xs, 1, 1),
        lambda: jax_fn(lambda a: jnn().log_softmax(a), xs, 1, 1),
        "jax.nn.log_softmax",
    )
    add(
        "log-softmax-big-max",
        S,
        "LogSoftmax([1e4, -1e4, 0]), entry 0",
        lambda: mbp_layer(mbp.LogSoftmax, xs, 0, 0),
        lambda: torch_fn(lambda a: F().log_softmax(a, -1), xs, 0, 0),
        lambda: jax_fn(lambda a: jnn().log_softmax(a), xs, 0, 0),
        "jax.nn.log_softmax",
    )

    L = "losses"
    CE = mbp.SoftmaxCrossEntropy
    add(
        "ce-confident-mistake",
        L,
        "cross-entropy, logits [1e4, -1e4], label 1, dL/dz0",
        lambda: mbp_loss(CE, [1e4, -1e4], 1),
        lambda: torch_fn(lambda z: _torch_ce(z, 1), [1e4, -1e4]),
        lambda: jax_fn(lambda z: _jax_ce(z, 1), [1e4, -1e4]),
        "optax.softmax_cross_entropy_with_integer_labels",
    )
    add(
        "ce-800",
        L,
        "cross-entropy, logits [0, 800], label 0, dL/dz0",
        lambda: mbp_loss(CE, [0.0, 800.0], 0),
        lambda: torch_fn(lambda z: _torch_ce(z, 0), [0.0, 800.0]),
        lambda: jax_fn(lambda z: _jax_ce(z, 0), [0.0, 800.0]),
        "optax.softmax_cross_entropy_with_integer_labels",
        "log(p + 1e-15) would give 34.5",
    )
    add(
        "ce-right",
        L,
        "cross-entropy, logits [1e4, -1e4], label 0, dL/dz1",
        lambda: mbp_loss(CE, [1e4, -1e4], 0, 1),
        lambda: torch_fn(lambda z: _torch_ce(z, 0), [1e4, -1e4], 1),
        lambda: jax_fn(lambda z: _jax_ce(z, 0), [1e4, -1e4], 1),
        "optax.softmax_cross_entropy_with_integer_labels",
    )
    for z, t in ((1e4, 0.0), (-1e4, 0.0), (1e4, 0.5)):
        add(
            f"bce-{z:g}-{t:g}",
            L,
            f"BCE with logits, z = {z:g}, t = {t:g}",
            lambda z=z, t=t: mbp_loss(mbp.BCEWithLogits, [z], [t]),
            lambda z=z, t=t: torch_fn(lambda a: _torch_bce(a, t), [z]),
            lambda z=z, t=t: jax_fn(lambda a: _jax_bce(a, t), [z]),
            "optax.sigmoid_binary_cross_entropy",
        )

    N = "nan-inf"
    add(
        "relu-nan",
        N,
        "ReLU at NaN (upstream gradient 1)",
        lambda: mbp_layer(mbp.ReLU, [NAN]),
        lambda: torch_fn(lambda x: F().relu(x), [NAN]),
        lambda: jax_fn(lambda x: jnn().relu(x), [NAN]),
        "jax.nn.relu",
        "the mask x > 0 is False at NaN; torch's tests x <= 0",
    )
    add(
        "leaky-nan",
        N,
        "LeakyReLU(0.01) at NaN",
        lambda: mbp_layer(lambda: mbp.LeakyReLU(0.01), [NAN]),
        lambda: torch_fn(lambda x: F().leaky_relu(x, 0.01), [NAN]),
        lambda: jax_fn(lambda x: jnn().leaky_relu(x, 0.01), [NAN]),
        "jax.nn.leaky_relu",
    )
    add(
        "relu-inf",
        N,
        "ReLU at +inf",
        lambda: mbp_layer(mbp.ReLU, [INF]),
        lambda: torch_fn(lambda x: F().relu(x), [INF]),
        lambda: jax_fn(lambda x: jnn().relu(x), [INF]),
        "jax.nn.relu",
    )
    add(
        "sigmoid-nan",
        N,
        "Sigmoid at NaN",
        lambda: mbp_layer(mbp.Sigmoid, [NAN]),
        lambda: torch_fn(lambda a: __import__("torch").sigmoid(a), [NAN]),
        lambda: jax_fn(lambda a: jnn().sigmoid(a), [NAN]),
        "jax.nn.sigmoid",
    )
    add(
        "sigmoid-inf",
        N,
        "Sigmoid at +inf",
        lambda: mbp_layer(mbp.Sigmoid, [INF]),
        lambda: torch_fn(lambda a: __import__("torch").sigmoid(a), [INF]),
        lambda: jax_fn(lambda a: jnn().sigmoid(a), [INF]),
        "jax.nn.sigmoid",
    )
    add(
        "softplus-inf",
        N,
        "Softplus at +inf",
        lambda: mbp_layer(mbp.Softplus, [INF]),
        lambda: torch_fn(lambda a: F().softplus(a), [INF]),
        lambda: jax_fn(lambda a: jnn().softplus(a), [INF]),
        "jax.nn.softplus",
    )
    add(
        "softmax-inf",
        N,
        "Softmax([inf, 0]), entry 0",
        lambda: mbp_layer(mbp.Softmax, [INF, 0.0]),
        lambda: torch_fn(lambda a: F().softmax(a, -1), [INF, 0.0]),
        lambda: jax_fn(lambda a: jnn().softmax(a), [INF, 0.0]),
        "jax.nn.softmax",
        "inf - inf",
    )
    add(
        "ce-inf",
        N,
        "cross-entropy, logits [inf, 0], label 1",
        lambda: mbp_loss(CE, [INF, 0.0], 1),
        lambda: torch_fn(lambda z: _torch_ce(z, 1), [INF, 0.0]),
        lambda: jax_fn(lambda z: _jax_ce(z, 1), [INF, 0.0]),
        "optax.softmax_cross_entropy_with_integer_labels",
    )
    add(
        "ce-minus-inf",
        N,
        "cross-entropy, logits [-inf, 0, 0], label 1, dL/dz1",
        lambda: mbp_loss(CE, [-INF, 0.0, 0.0], 1, 1),
        lambda: torch_fn(lambda z: _torch_ce(z, 1), [-INF, 0.0, 0.0], 1),
        lambda: jax_fn(lambda z: _jax_ce(z, 1), [-INF, 0.0, 0.0], 1),
        "optax.softmax_cross_entropy_with_integer_labels",
        "a class with probability 0 drops out",
    )
    add(
        "ce-nan",
        N,
        "cross-entropy, logits [nan, 0], label 1",
        lambda: mbp_loss(CE, [NAN, 0.0], 1),
        lambda: torch_fn(lambda z: _torch_ce(z, 1), [NAN, 0.0]),
        lambda: jax_fn(lambda z: _jax_ce(z, 1), [NAN, 0.0]),
        "optax.softmax_cross_entropy_with_integer_labels",
    )
    return R


ROWS = _rows()
HEADER = (
    "| id | case | manual_bp value | manual_bp derivative | torch value | torch derivative "
    "| JAX value | JAX derivative | JAX function | note |"
)


def table(frameworks: bool = True, section: str | None = None) -> list[str]:
    lines = [HEADER, "|" + "---|" * 10]
    for r in ROWS:
        if section is not None and r.section != section:
            continue
        m = r.mbp()
        t = r.torch() if frameworks else (NAN, NAN)
        j = r.jax() if frameworks else (NAN, NAN)
        cells = [f"`{r.id}`", r.what, *(fmt(v) for v in (*m, *t, *j)), r.jax_name, r.note]
        if not frameworks:
            cells[4:8] = ["—"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbp-only", action="store_true", help="skip the torch and JAX columns")
    args = parser.parse_args(argv)
    for section in dict.fromkeys(r.section for r in ROWS):
        print(f"\n### {section}\n")
        print("\n".join(table(not args.mbp_only, section)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
