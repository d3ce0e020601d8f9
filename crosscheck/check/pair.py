"""``check_pair``: a user's forward/backward pair against the PyTorch and JAX references (or the golden
answers), case by case, with the sweep's tolerance and report."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.check.adapters import Adapter, Drawn, adapter_for
from crosscheck.check.diagnose import diagnose
from crosscheck.run.compare import CaseResult, Comparison
from crosscheck.spec import NetSpec

YOURS = "yours"  # the backend name of the user's tensors in the report


@dataclass
class CheckResult(CaseResult):
    """A ``CaseResult`` with the diagnosis of its first mismatch (empty when it passed)."""

    diagnosis: str = ""

    def summary(self) -> str:
        return super().summary() if self.ok else self.diagnosis


def _replay(forward: Callable[..., Any], backward: Callable[..., Any] | None, kind: str, seed: int, k: int) -> str:
    """The one-line command that replays case k: the CLI when the pair comes from a file, else the call."""
    try:
        path = inspect.getsourcefile(forward)
    except TypeError:
        path = None
    names = ",".join(f.__name__ for f in (forward, backward) if f is not None)
    from crosscheck.check.adapters import ALIASES, BUILT_IN

    if path and not path.startswith("<") and ALIASES.get(kind, kind) in BUILT_IN:  # a custom kind: the call
        here = os.getcwd()
        path = os.path.relpath(path) if os.path.abspath(path).startswith(here + os.sep) else path
        return f"python -m crosscheck check {path}:{names} --kind {kind} --seed {seed} --case {k}"
    return f"crosscheck.check_pair({names}, kind={kind!r}, seed={seed}, only=[{k}])"


def run_user(
    adapter: Adapter,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    d: Drawn,
    dout: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], str]:
    """The user's tensors, and the error their code raised ('' if none); inputs are checked unmutated."""
    mine = d.copy()
    try:
        got = adapter.call(forward, backward, mine, dout)
    except Exception as err:  # the user's code: report what it raised as the case's failure
        return {}, f"raised {type(err).__name__}: {err}"
    if not np.array_equal(mine.x, d.x) or any(not np.array_equal(mine.params[k], v) for k, v in d.params.items()):
        return got, "mutated its inputs (x or a parameter)"
    return got, ""


def references(
    spec: NetSpec, x: np.ndarray, target: Any, dout: np.ndarray | None, frameworks: Sequence[str]
) -> dict[str, dict[str, np.ndarray]]:
    """Each framework's tensors (one run: the loss pulled back for a loss spec, else the VJP of dout)."""
    from crosscheck.reference import reference

    runs = {}
    for fw in frameworks:
        if spec.loss is not None:
            n, c = np.shape(x)
            runs[fw] = reference(fw).run(spec, x, target, dloss=1.0, dout=np.zeros((n, c)))["loss"]
        else:
            runs[fw] = reference(fw).run(spec, x, None, dloss=1.0, dout=dout)["vjp"]
    return runs


def expected(
    adapter: Adapter, spec: NetSpec, d: Drawn, x: np.ndarray, dout: np.ndarray | None, run: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, float], float]:
    """A reference run in the report's names and the user's shapes, its term sizes S, and the bound."""
    from crosscheck.tolerance import reduction_length, scales

    if spec.loss is not None:
        S = scales(spec, run, x, d.target, dloss=1.0, dout=None)
        return {n: run[n] for n in ("loss", "dlogits")}, S, tolerance.bound("float64", reduction_length(spec, x), 1)
    S_spec = scales(spec, run, x, None, dloss=1.0, dout=dout)
    want, S = {}, {}
    for name in adapter.names():
        tensor = name.split(".", 1)[1]
        spec_name = f"{adapter.name}.{adapter.param_names.get(tensor, tensor)}"
        t = run[spec_name]
        want[name] = t.reshape(d.x.shape) if tensor == "dx" else t  # affine: x (N, d1, ...) seen as (N, D)
        S[name] = S_spec.get(spec_name, 0.0)
    return want, S, tolerance.bound("float64", reduction_length(spec, x), 1)


def compare(
    names: list[str],
    got: dict[str, np.ndarray],
    want: dict[str, np.ndarray],
    S: dict[str, float],
    bound: float,
    error: str = "",
) -> list[tolerance.TensorCheck]:
    """One check per name (shape and dtype first, then values); a name the user's code did not give fails."""
    checks = []
    for n in names:
        if n not in got:
            note = error or "missing in your results"
            checks.append(
                tolerance.TensorCheck(n, tuple(np.shape(want[n])), "float64", np.nan, np.nan, np.nan, bound, note)
            )
        else:
            checks.append(tolerance.check(n, np.asarray(got[n]), want[n], bound, S.get(n, 0.0)))
    if error and all(n in got for n in names):
        checks.append(tolerance.TensorCheck("inputs", (), "", np.nan, np.nan, np.nan, bound, error))
    return checks


def one_case(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    adapter: Adapter,
    seed: int,
    k: int,
    against: Sequence[str],
    kind: str,
) -> CheckResult:
    """Draw case k of ``seed``, run the user's pair and the references, compare and diagnose."""
    rng = np.random.default_rng([seed, k])
    d = adapter.draw(rng, k)
    names = adapter.names()
    case_id = f"{adapter.name}/{seed}/{k}"
    replay = _replay(forward, backward, kind, seed, k)
    mode = "vjp" if adapter.loss is None else "loss"
    dout = None
    if adapter.loss is None:  # the user's out fixes dout's shape; a random upstream gradient, never all ones
        try:
            out = forward(
                d.x.copy(),
                *(p.copy() for p in d.params.values()),
                *(dict(e) if isinstance(e, dict) else e for e in d.extra),
            )[0]
        except Exception as err:  # the user's code: what it raised is the case's failure
            spec, _ = adapter.spec(d, {})
            result = CheckResult(case_id, d.description, "float64", spec, tolerance.FLOAT64_BOUND, replay=replay)
            note = f"raised {type(err).__name__}: {err}"
            checks = [tolerance.TensorCheck(n, (), "", np.nan, np.nan, np.nan, result.bound, note) for n in names]
            result.comparisons.append(Comparison(mode, YOURS, against[0], checks))
            result.diagnosis = diagnose(result, adapter, d, {}, {}, forward, backward, None, note)
            return result
        dout = rng.normal(size=np.shape(out))
    got, error = run_user(adapter, forward, backward, d, dout)
    spec, x = adapter.spec(d, got)
    runs = references(spec, x, d.target, dout, against)
    want, S, bound = expected(adapter, spec, d, x, dout, runs[against[0]])
    result = CheckResult(case_id, d.description, "float64", spec, bound, replay=replay)
    result.comparisons.append(Comparison(mode, YOURS, against[0], compare(names, got, want, S, bound, error)))
    for fw in against[1:]:
        other, _, _ = expected(adapter, spec, d, x, dout, runs[fw])
        result.comparisons.append(Comparison(mode, YOURS, fw, compare(names, got, other, S, bound, error)))
        result.comparisons.append(Comparison(mode, against[0], fw, compare(names, want, other, S, bound)))
    if not result.ok:

        def rerun(changed: Drawn) -> dict[str, np.ndarray]:
            spec2, x2 = adapter.spec(changed, got)
            return expected(
                adapter, spec2, changed, x2, dout, references(spec2, x2, changed.target, dout, against[:1])[against[0]]
            )[0]

        result.diagnosis = diagnose(result, adapter, d, got, want, forward, backward, dout, error, rerun)
    return result


def check_pair(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    kind: str = "linear",
    adapter: Adapter | None = None,
    cases: int = 20,
    seed: int = 0,
    against: str | Sequence[str] = ("torch", "jax"),
    only: Sequence[int] | None = None,
) -> Any:
    """Verify a user's layer pair ``out, cache = forward(x, *params, *hyper)``, ``grads = backward(dout, cache)``.

    kind: a ready adapter (``affine``/``linear``, ``relu``, ``sigmoid``, ``tanh``, ``batchnorm``, ``dropout``,
    ``conv``, ``max_pool``, ``softmax_loss``: see ``crosscheck.check.adapters``) unless ``adapter`` is given.
    ``cases`` cases are drawn from ``seed`` (``only``: just these case indices); each compares the user's
    out and gradients with torch and JAX (``against``), or with the shipped answers (``against="golden"``,
    no framework needed). Returns a ``crosscheck.run.report.Report``; a failing case's ``summary()`` is its
    diagnosis: the first diverging tensor, the worst entry, a likely cause and the replay command.
    """
    from crosscheck.run.report import Report

    adapter = adapter or adapter_for(kind)
    fws = (against,) if isinstance(against, str) else tuple(against)
    if fws != ("golden",):
        fws = tuple(fw for fw in fws if fw in adapter.frameworks) or fws  # a custom kind: the forwards it has
    start = time.perf_counter()
    ks = list(only) if only is not None else list(range(cases))
    if fws == ("golden",):
        from crosscheck.check.golden import check_golden

        results = check_golden(forward, backward, adapter, ks if only is not None else None)
    else:
        results = [one_case(forward, backward, adapter, seed, k, fws, kind) for k in ks]
    settings = {"check_pair": adapter.name, "cases": len(results), "seed": seed, "against": list(fws)}
    return Report(results, settings=settings, seconds=time.perf_counter() - start)
