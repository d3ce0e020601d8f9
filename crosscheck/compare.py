"""Run manual_bp, PyTorch and JAX on one case and compare every named tensor.

``compare_case`` is the one comparison used everywhere (tests, the CLI,
``crosscheck.verify``). Each backend returns a dict of named tensors (see
``crosscheck.spec.tensor_names``); every pair of backends is compared name by
name in forward-then-backward order with ``crosscheck.tolerance.check``. Two
backward passes are checked: the real loss pulled back with a random scalar
``dloss``, and a random upstream gradient ``dout`` on the logits (a VJP), since
an all-ones upstream gradient hides wrong transposes and sums.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.scales import scales
from crosscheck.spec import NetSpec, leaves, read_spec, tensor_names

FRAMEWORKS = ("torch", "jax")
MODES = ("loss", "vjp")


def reference(framework: str) -> Any:
    """The reference module for ``framework`` ("torch" or "jax"), imported on first use."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"crosscheck: unknown framework {framework!r}; choose from {FRAMEWORKS}")
    try:
        return importlib.import_module(f"crosscheck.{framework}_ref")
    except ImportError as err:
        extra = "torch" if framework == "torch" else "jax"
        raise ImportError(
            f"crosscheck: the {framework} reference needs {err.name!r}; "
            f"install it with `pip install manual-bp[{extra}]`"
        ) from err


def run_manual(
    model: Any, loss_fn: Any, x: np.ndarray, target: Any, *, dloss: float = 1.0, dout: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """manual_bp's own forward and backward, layer by layer, under the names of ``tensor_names``."""
    layers = leaves(model)
    names = [layer.name or str(i) for i, layer in enumerate(layers)]
    got: dict[str, np.ndarray] = {}
    h = x
    for name, layer in zip(names, layers):
        h = layer.forward(h)
        got[f"{name}.out"] = h
    if dout is None:
        got["loss"] = np.asarray(loss_fn.forward(h, target))
        g = got["dlogits"] = loss_fn.backward(dloss)
    else:
        g = dout
    for name, layer in zip(reversed(names), reversed(layers)):
        g = layer.backward(g)
        got[f"{name}.dx"] = g
        for k, v in layer.grads.items():
            got[f"{name}.d{k}"] = v
    return got


def reduction_length(spec: NetSpec, x: np.ndarray) -> int:
    """The longest sum in the case: rows summed into dW/db, features in a product, classes."""
    rows = int(np.prod(x.shape[:-1]))
    widths = [x.shape[-1]]
    for layer in spec.layers:
        if layer.kind == "linear":
            widths += [layer.config["in_features"], layer.config["out_features"]]
    return max(rows, *widths)


@dataclass
class Comparison:
    """One pair of backends in one mode: a check per tensor, in forward-then-backward order."""

    mode: str
    backend: str
    reference: str
    checks: list[tolerance.TensorCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def first_divergence(self) -> tolerance.TensorCheck | None:
        return next((c for c in self.checks if not c.ok), None)


@dataclass
class CaseResult:
    """Everything compared for one case; ``first_divergence`` localises a failure."""

    case_id: str
    description: str
    dtype: str
    spec: NetSpec
    bound: float
    comparisons: list[Comparison] = field(default_factory=list)
    replay: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    @property
    def first_divergence(self) -> tuple[Comparison, tolerance.TensorCheck] | None:
        """The first failing tensor, manual_bp's comparisons first (mode by mode)."""
        for comp in sorted(self.comparisons, key=lambda c: c.backend != "manual_bp"):
            bad = comp.first_divergence
            if bad is not None:
                return comp, bad
        return None

    def summary(self) -> str:
        """One line, or for a failure the first diverging tensor and the replay command."""
        if self.ok:
            worst = max((c.error for comp in self.comparisons for c in comp.checks), default=0.0)
            return f"case {self.case_id}: ok ({self.description}; worst {worst:.2e} <= {self.bound:.1e})"
        comp, bad = self.first_divergence  # type: ignore[misc]
        what = bad.note or f"rel_norm {bad.rel_norm:.3e}, rel_max {bad.rel_max:.3e} > bound {bad.bound:.1e}"
        return (
            f"case {self.case_id}: MISMATCH ({self.description})\n"
            f"  first divergence: {bad.name} [{comp.mode} run, {comp.backend} vs {comp.reference}]: {what}\n"
            f"  replay: {self.replay}"
        )


def compare_case(
    model: Any,
    loss_fn: Any,
    x: np.ndarray,
    target: Any,
    *,
    dloss: float,
    dout: np.ndarray,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    case_id: str = "user",
    description: str = "",
    replay: str = "",
) -> CaseResult:
    """Run every backend in both modes and compare all tensors pairwise."""
    spec = read_spec(model, loss_fn)
    refs = {fw: reference(fw) for fw in frameworks}
    bound = tolerance.bound(spec.dtype, reduction_length(spec, x), len(spec.layers))
    result = CaseResult(case_id, description, spec.dtype, spec, bound, replay=replay)
    runs = {
        "manual_bp": {
            "loss": run_manual(model, loss_fn, x, target, dloss=dloss),
            "vjp": run_manual(model, loss_fn, x, target, dout=dout),
        }
    }
    runs.update({fw: ref.run(spec, x, target, dloss=dloss, dout=dout) for fw, ref in refs.items()})
    backends = list(runs)
    for mode in MODES:
        names = tensor_names(spec, with_loss=mode == "loss")
        kw = {"dloss": dloss, "dout": None} if mode == "loss" else {"dloss": dloss, "dout": dout}
        for i, a in enumerate(backends):
            for b in backends[i + 1 :]:
                S = scales(spec, runs[b][mode], x, target, **kw)
                checks = [_check_named(n, runs[a][mode], runs[b][mode], bound, S.get(n, 0.0)) for n in names]
                result.comparisons.append(Comparison(mode, a, b, checks))
    return result


def _check_named(
    name: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray], bound: float, scale: float
) -> tolerance.TensorCheck:
    if name not in a or name not in b:
        missing = "backend" if name not in a else "reference"
        return tolerance.TensorCheck(name, (), "", np.nan, np.nan, np.nan, bound, f"missing in the {missing}")
    return tolerance.check(name, a[name], b[name], bound, scale)
