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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.kinds import REGISTRY
from crosscheck.reference import FRAMEWORKS, reference
from crosscheck.reference.read import read_spec
from crosscheck.spec import NetSpec, tensor_names, walk
from crosscheck.tolerance import reduction_length, scales

MODES = ("loss", "vjp")


def _recorded(model: Any) -> list[tuple[str, Any]]:
    """(name, module) for every module whose tensors are compared: all but plain Sequentials."""
    mods = list(model.modules()) if hasattr(model, "modules") else [model]
    return [(m.name or "0", m) for m in mods if m.kind != "sequential"]


@contextmanager
def _recording(model: Any, got: dict[str, np.ndarray]) -> Iterator[None]:
    """Record each module's output, buffers, gradients and dx under its spec name while the model's
    own ``forward`` / ``backward`` run (instance-level wrappers, removed afterwards)."""
    wrapped = []
    for name, m in _recorded(model):

        def fwd(x: Any, _m: Any = m, _name: str = name, _f: Any = m.forward) -> Any:
            out = got[f"{_name}.out"] = _f(x)
            if not hasattr(_m, "layers"):
                got.update({f"{_name}.{k}": v.copy() for k, v in _m.buffers.items()})
                got.update({f"{_name}.{o}": np.array(getattr(_m, o), copy=True) for o in _outputs(_m)})
            return out

        def bwd(g: Any, *args: Any, _m: Any = m, _name: str = name, _b: Any = m.backward, **kw: Any) -> Any:
            dx = _b(g, *args, **kw)
            if not hasattr(_m, "layers"):
                got.update({f"{_name}.d{k}": v for k, v in _m.grads.items()})
            if dx is not None:
                got[f"{_name}.dx"] = dx
            return dx

        m.forward, m.backward = fwd, bwd
        wrapped.append(m)
    try:
        yield
    finally:
        for m in wrapped:
            del m.forward, m.backward


def _outputs(m: Any) -> tuple[str, ...]:
    """The arrays a layer leaves besides its output that are compared (``Kind.outputs``: an RNN's h_n)."""
    entry = REGISTRY.get(m.kind)
    return entry.outputs if entry is not None else ()


def run_manual(
    model: Any, loss_fn: Any, x: np.ndarray, target: Any, *, dloss: float = 1.0, dout: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """manual_bp's own ``model.forward`` and ``model.backward``, every module's tensors recorded under
    the names of ``tensor_names``."""
    got: dict[str, np.ndarray] = {}
    with _recording(model, got):
        h = model.forward(x)
        if dout is None:
            got["loss"] = np.asarray(loss_fn.forward(h, target))
            g = got["dlogits"] = loss_fn.backward(dloss)
        else:
            g = dout
        model.backward(g)
    return got


def _modules(model: Any) -> list[Any]:
    return list(model.modules()) if hasattr(model, "modules") else [model]


@contextmanager
def preserved_state(model: Any) -> Iterator[None]:
    """Restore running statistics and Dropout masks (and their ``frozen`` flags) on exit."""
    mods = _modules(model)
    buffers = [(v, v.copy()) for m in mods if not hasattr(m, "layers") for v in m.buffers.values()]
    masks = [(m, m.mask, m.frozen) for m in mods if hasattr(m, "frozen")]  # layers that draw a mask
    try:
        yield
    finally:
        for v, old in buffers:
            np.copyto(v, old)
        for m, mask, frozen in masks:
            m.mask, m.frozen = mask, frozen


def run_manual_both(
    model: Any, loss_fn: Any, x: np.ndarray, target: Any, *, dloss: float, dout: np.ndarray
) -> tuple[NetSpec, dict[str, dict[str, np.ndarray]]]:
    """Both manual_bp runs from the same state, and the spec the references need.

    The first run draws each Dropout mask; the second reuses it (frozen); both
    start from the same running statistics. The spec is read with the
    statistics as they were before the forward and with the masks drawn. On
    return the model is as it was (buffers, masks and ``frozen`` flags restored).
    """
    mods = _modules(model)
    start = [(v, v.copy()) for m in mods if not hasattr(m, "layers") for v in m.buffers.values()]
    runs: dict[str, dict[str, np.ndarray]] = {}
    with preserved_state(model):
        for mode in ("loss", "vjp") if loss_fn is not None else ("vjp",):
            kw = {"dloss": dloss} if mode == "loss" else {"dout": dout}
            runs[mode] = run_manual(model, loss_fn, x, target, **kw)
            for v, old in start:  # rewind the running statistics
                np.copyto(v, old)
            for m in mods:
                if hasattr(m, "frozen"):
                    m.frozen = True  # later forwards reuse the mask just drawn
        spec = read_spec(model, loss_fn)
    return spec, runs


def compare_running_buffers(
    model: Any, xs: list[np.ndarray], frameworks: tuple[str, ...] = FRAMEWORKS
) -> list[tolerance.TensorCheck]:
    """Several training forwards (one per batch in ``xs``) in manual_bp and in each reference, each
    carrying its own running statistics from step to step; every buffer compared after every step
    (``step<k>/<layer>.running_mean``). manual_bp's model is left as it was."""
    refs = {fw: reference(fw) for fw in frameworks}
    spec = read_spec(model)
    mods = [m for m in _modules(model) if not hasattr(m, "layers") and m.buffers]
    with preserved_state(model):
        mine = []
        for x in xs:
            model.forward(x)
            mine.append({f"{m.name or '0'}.{k}": v.copy() for m in mods for k, v in m.buffers.items()})
    bound = tolerance.bound(spec.dtype, reduction_length(spec, xs[0]), len(walk(spec.layers)))
    # S: the terms behind a batch mean are |x|, behind a variance x^2 (exact for a BatchNorm fed by x itself)
    s_x = max(float(np.abs(np.asarray(x, np.float64)).max()) for x in xs) if xs[0].dtype.kind == "f" else 0.0
    checks = []
    for fw, ref in refs.items():
        theirs = ref.running_buffers(spec, xs)
        for k, (a, b) in enumerate(zip(mine, theirs), start=1):
            checks += [
                tolerance.check(f"step{k}/{n} [{fw}]", a[n], b[n], bound, s_x * s_x if "var" in n else s_x) for n in a
            ]
    return checks


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

    def to_dict(self) -> dict[str, Any]:
        """The report's plain-data entry for this case (``crosscheck.run.records.result_to_dict``)."""
        from crosscheck.run.records import result_to_dict

        return result_to_dict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CaseResult:
        """The result back from ``to_dict``'s dict (a ``TrajectoryResult`` for a trajectory's)."""
        from crosscheck.run.records import result_from_dict

        return result_from_dict(d)

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
    """Run every backend in both modes and compare all tensors pairwise.

    The model is left as it was (running statistics and Dropout masks restored).
    """
    refs = {fw: reference(fw) for fw in frameworks}
    spec, manual = run_manual_both(model, loss_fn, x, target, dloss=dloss, dout=dout)
    bound = tolerance.bound(spec.dtype, reduction_length(spec, x), len(walk(spec.layers)))
    result = CaseResult(case_id, description, spec.dtype, spec, bound, replay=replay)
    runs = {"manual_bp": manual}
    runs.update({fw: ref.run(spec, x, target, dloss=dloss, dout=dout) for fw, ref in refs.items()})
    backends = list(runs)
    for mode in MODES:
        names = tensor_names(spec, with_loss=mode == "loss")
        kw = {"dloss": dloss, "dout": None} if mode == "loss" else {"dloss": dloss, "dout": dout}
        for i, a in enumerate(backends):
            for b in backends[i + 1 :]:
                S = scales(spec, runs[b][mode], x, target, **kw)
                checks = [check_named(n, runs[a][mode], runs[b][mode], bound, S.get(n, 0.0)) for n in names]
                result.comparisons.append(Comparison(mode, a, b, checks))
    return result


def check_named(
    name: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray], bound: float, scale: float = 0.0
) -> tolerance.TensorCheck:
    """``tolerance.check`` of ``a[name]`` against ``b[name]``; a failing check when either lacks it."""
    if name not in a or name not in b:
        missing = "backend" if name not in a else "reference"
        return tolerance.TensorCheck(name, (), "", np.nan, np.nan, np.nan, bound, f"missing in the {missing}")
    return tolerance.check(name, a[name], b[name], bound, scale)
