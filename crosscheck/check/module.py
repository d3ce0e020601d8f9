"""``check_module``: a user's layer object, or a whole model of such objects, against PyTorch and JAX.

A layer object follows manual_bp's protocol: ``forward(x) -> out``, ``backward(dout) -> dx``, the
parameters in a dict ``params`` (manual_bp's names and layouts: a linear ``W`` (in, out), ``b``) and the
gradients in a dict ``grads`` after the backward (or as attributes ``dW``, ``db``). ``kind`` and
``config()`` name the layer; without them ``like`` names the kind and the config is read off the
parameters (``LIKE``). A model that exposes manual_bp's ``modules()``, ``kind``, ``params``, ``grads`` and
``config()`` is compared layer by layer with the comparison ``crosscheck.verify`` uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.check.diagnose import cause
from crosscheck.check.pair import YOURS, CheckResult, references
from crosscheck.run.compare import Comparison
from crosscheck.spec import LayerSpec, NetSpec
from crosscheck.tolerance import reduction_length, scales

NAME = "layer"  # the layer's name in the report: layer.out, layer.dW, layer.dx


def _linear_config(params: dict[str, np.ndarray]) -> dict[str, Any]:
    D, M = params["W"].shape
    return {"in_features": D, "out_features": M, "bias": "b" in params}


# kind -> the config read off the parameters, for a layer object without config()
LIKE: dict[str, Callable[[dict[str, np.ndarray]], dict[str, Any]]] = {
    "linear": _linear_config,
    **{k: (lambda p: {}) for k in ("relu", "sigmoid", "tanh", "identity", "silu")},
}


def _spec_of(obj: Any, like: str | None) -> LayerSpec:
    kind = like or getattr(obj, "kind", None)
    if kind is None:
        raise ValueError("crosscheck.check_module: the object has no kind; pass like='linear' (or another kind)")
    params = {k: np.array(v, dtype=np.float64, copy=True) for k, v in dict(getattr(obj, "params", {})).items()}
    if callable(getattr(obj, "config", None)):
        config = dict(obj.config())
    elif kind in LIKE:
        config = LIKE[kind](params)
    else:
        raise ValueError(
            f"crosscheck.check_module: {type(obj).__name__} has no config(); for like={kind!r} give it "
            f"one (the kind's constructor arguments) or use a kind of {sorted(LIKE)}"
        )
    from crosscheck.kinds import lookup

    entry = lookup(kind)
    buffers = {k: np.array(v, copy=True) for k, v in dict(getattr(obj, "buffers", {}) or {}).items()}
    return LayerSpec(
        NAME, kind, config, params, buffers, {}, bool(getattr(obj, "training", True)), (), entry.integer_input, ()
    )


def _input(spec: LayerSpec, x: np.ndarray | None, rng: np.random.Generator, k: int) -> np.ndarray:
    if x is not None:
        return np.array(x, dtype=np.float64, copy=True)
    N = 1 if k == 0 else int(rng.integers(2, 6))
    D = spec.config.get("in_features") or (1 if k == 1 else int(rng.integers(2, 7)))
    h = rng.normal(size=(N, D)) * 2
    h[rng.random(h.shape) < 0.2] = 0.0  # kinks at 0
    return h


def _grads(obj: Any, params: Sequence[str]) -> dict[str, np.ndarray]:
    grads = dict(getattr(obj, "grads", {}) or {})
    return {
        p: np.asarray(grads[p] if p in grads else getattr(obj, f"d{p}"))
        for p in params
        if p in grads or hasattr(obj, f"d{p}")
    }


def _layer_case(
    obj: Any, like: str | None, x: np.ndarray | None, seed: int, k: int, against: Sequence[str]
) -> CheckResult:
    rng = np.random.default_rng([seed, k])
    layer = _spec_of(obj, like)
    h = _input(layer, x, rng, k)
    spec = NetSpec((layer,), None, "float64")
    names = [f"{NAME}.out", *(f"{NAME}.d{p}" for p in layer.params), f"{NAME}.dx"]
    got: dict[str, np.ndarray] = {}
    error = ""
    try:
        out = np.asarray(obj.forward(h.copy()))
        dout = rng.normal(size=out.shape)
        got[f"{NAME}.out"] = out
        got[f"{NAME}.dx"] = np.asarray(obj.backward(dout.copy()))
        got.update({f"{NAME}.d{p}": v for p, v in _grads(obj, list(layer.params)).items()})
    except Exception as err:  # the user's code: a failing case, not a crash of the check
        error, dout = f"raised {type(err).__name__}: {err}", None
    replay = f"crosscheck.check_module(obj, like={like!r}, seed={seed}, cases={k + 1})"
    bound = tolerance.bound("float64", reduction_length(spec, h), 1)
    result = CheckResult(
        f"module/{seed}/{k}",
        f"{type(obj).__name__} ({layer.kind}) on x{h.shape}",
        "float64",
        spec,
        bound,
        replay=replay,
    )
    if error:
        checks = [tolerance.TensorCheck(n, (), "", np.nan, np.nan, np.nan, bound, error) for n in names]
        result.comparisons.append(Comparison("vjp", YOURS, against[0], checks))
        result.diagnosis = f"case {result.case_id}: MISMATCH\n  your module {error}\n  replay: {replay}"
        return result
    runs = references(spec, h, None, dout, against)
    S = scales(spec, runs[against[0]], h, None, dloss=1.0, dout=dout)
    for fw in against:
        checks = [
            tolerance.check(n, got[n], runs[fw][n], bound, S.get(n, 0.0))
            if n in got
            else tolerance.TensorCheck(n, (), "", np.nan, np.nan, np.nan, bound, "missing in your module")
            for n in names
        ]
        result.comparisons.append(Comparison("vjp", YOURS, fw, checks))
    if not result.ok:
        comp, bad = result.first_divergence
        want = runs[comp.reference].get(bad.name)
        likely = (
            cause(bad.name, got.get(bad.name), want, {"factors": {float(h.shape[0]): "N (the batch size)"}})
            if want is not None
            else ""
        )
        result.diagnosis = (
            f"case {result.case_id}: MISMATCH ({result.description})\n"
            f"  first diverging tensor: {bad.name} [{comp.backend} vs {comp.reference}]: "
            f"{bad.note or f'rel_norm {bad.rel_norm:.3e} > bound {bad.bound:.1e}'}\n"
            f"  likely cause: {likely or 'none the numbers show'}\n  replay: {replay}"
        )
    return result


def check_module(
    obj: Any,
    like: str | None = None,
    x: np.ndarray | None = None,
    cases: int = 5,
    seed: int = 0,
    against: Sequence[str] = ("torch", "jax"),
    loss_fn: Any = None,
    y: Any = None,
) -> Any:
    """Verify a user's layer object (``like`` names its kind when it has no ``kind``) or a whole model.

    A layer: ``cases`` inputs (x, or drawn: a batch of 1 first, entries at 0 among them), each with a random
    upstream gradient; out, dx and every parameter gradient against torch and JAX. A model exposing
    ``modules()`` (manual_bp's containers, or your own built from such layers): every layer's tensors, as
    ``crosscheck.verify`` compares them, on ``x`` with ``loss_fn`` and ``y`` (default: manual_bp's MSE on a
    random target). Returns a ``crosscheck.run.report.Report``.
    """
    from crosscheck.run.report import Report

    start = time.perf_counter()
    against = tuple(against)
    if hasattr(obj, "modules") and like is None:
        results = _model_cases(obj, x, cases, seed, against, loss_fn, y)
    else:
        results = [_layer_case(obj, like, x, seed, k, against) for k in range(cases)]
    return Report(
        results,
        settings={
            "check_module": type(obj).__name__,
            "like": like,
            "cases": cases,
            "seed": seed,
            "against": list(against),
        },
        seconds=time.perf_counter() - start,
    )


def _model_cases(
    model: Any, x: np.ndarray | None, cases: int, seed: int, against: tuple[str, ...], loss_fn: Any, y: Any
) -> list[Any]:
    import manual_bp as mb
    from crosscheck.run.compare import compare_case

    first = next(m for m in model.modules() if getattr(m, "kind", "") != "sequential")
    results = []
    for k in range(cases):
        rng = np.random.default_rng([seed, k])
        if x is None:
            if not hasattr(first, "in_features"):
                raise ValueError("crosscheck.check_module: pass x= (the model's first layer has no in_features)")
            h = rng.normal(size=(1 if k == 0 else int(rng.integers(2, 6)), first.in_features))
        else:
            h = np.asarray(x)
        logits = model.forward(h)
        fn = loss_fn if loss_fn is not None else mb.MSE()
        target = y if y is not None else rng.normal(size=np.shape(logits))
        dout = rng.normal(size=np.shape(logits))
        results.append(
            compare_case(
                model,
                fn,
                h,
                target,
                dloss=float(rng.uniform(0.5, 2.0)),
                dout=dout,
                frameworks=against,
                case_id=f"model/{seed}/{k}",
                description=f"{type(model).__name__} on x{h.shape}",
                replay=f"crosscheck.check_module(model, seed={seed}, cases={k + 1})",
            )
        )
    return results
