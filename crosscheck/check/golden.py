"""Golden answers: check a pair without PyTorch or JAX installed.

``crosscheck/check/golden/<adapter>.npz`` (float64) holds, for several drawn shapes of each adapter
(batch 1, width 1, kinks and ties among them): the inputs, parameters, trailing arguments (JSON), labels,
the upstream gradient, the expected out and gradients made by the torch reference and checked against
JAX within the bound, each tensor's term size S and the bound, and ``meta`` (JSON: the format version,
the environment fingerprint of the run that made them). ``make`` regenerates them; Dropout has none (its
expected output depends on the mask the user's own code draws: check it against the frameworks).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck import tolerance
from crosscheck.check.adapters import ADAPTERS, Adapter, Drawn

VERSION = 1
SEED = 20_240_601  # the cases of the golden answers: adapter.draw(default_rng([SEED, k]), k)
CASES = 4
DIR = Path(__file__).parent / "golden"
KINDS = tuple(name for name in ADAPTERS if name != "dropout")


def _encode(a: Any) -> Any:
    """An array inside a trailing argument (bn_param's running_mean) as JSON."""
    return {"__array__": np.asarray(a).tolist()}


def _decode(d: dict[str, Any]) -> Any:
    return np.asarray(d["__array__"], dtype=np.float64) if set(d) == {"__array__"} else d


def path(adapter: str, directory: Path = DIR) -> Path:
    return Path(directory) / f"{adapter}.npz"


def _dout(adapter: Adapter, d: Drawn, rng: np.random.Generator) -> np.ndarray | None:
    """A random upstream gradient of the layer's output shape (None for a loss)."""
    if adapter.loss:
        return None
    layer, x = adapter.layer(d, {})
    out_shape = layer.forward(x).shape  # manual_bp's forward only gives the shape here
    if adapter.name == "affine":
        out_shape = (d.x.shape[0], d.params["w"].shape[1])
    return rng.normal(size=out_shape)


def make(directory: Path = DIR, kinds: Sequence[str] = KINDS, cases: int = CASES) -> list[Path]:
    """Regenerate the golden answers with the torch reference, each checked against JAX within the bound."""
    from crosscheck.check.pair import expected, references
    from crosscheck.run.report import environment

    Path(directory).mkdir(parents=True, exist_ok=True)
    written = []
    for name in kinds:
        adapter = ADAPTERS[name]
        arrays: dict[str, np.ndarray] = {}
        for k in range(cases):
            rng = np.random.default_rng([SEED, k])
            d = adapter.draw(rng, k)
            dout = _dout(adapter, d, rng)
            spec, x = adapter.spec(d, {})
            runs = references(spec, x, d.target, dout, ("torch", "jax"))
            want, S, bound = expected(adapter, spec, d, x, dout, runs["torch"])
            jax_want = expected(adapter, spec, d, x, dout, runs["jax"])[0]
            for n in want:
                c = tolerance.check(n, want[n], jax_want[n], bound, S[n])
                if not c.ok:
                    raise AssertionError(f"golden {name} case {k}: torch and JAX disagree on {n}: {c}")
            p = f"k{k}/"
            arrays[p + "x"] = d.x
            arrays.update({f"{p}param/{n}": v for n, v in d.params.items()})
            arrays[p + "extra"] = np.array(json.dumps(list(d.extra), default=_encode))
            arrays[p + "description"] = np.array(d.description)
            if d.target is not None:
                arrays[p + "target"] = d.target
            if dout is not None:
                arrays[p + "dout"] = dout
            if d.kinks is not None:
                arrays[p + "kinks"] = d.kinks
            arrays.update({f"{p}want/{n}": np.asarray(v) for n, v in want.items()})
            arrays.update({f"{p}S/{n}": np.array(v) for n, v in S.items()})
            arrays[p + "bound"] = np.array(bound)
        env = environment()
        arrays["meta"] = np.array(
            json.dumps(
                {
                    "version": VERSION,
                    "adapter": name,
                    "cases": cases,
                    "seed": SEED,
                    "made_by": "torch, checked against jax",
                    "environment": env,
                },
                default=str,
            )
        )
        out = path(name, directory)
        np.savez_compressed(out, **arrays)
        written.append(out)
    return written


def load(adapter: str, directory: Path = DIR) -> dict[str, Any]:
    """The golden cases of an adapter: {"meta": {...}, "cases": [(Drawn, dout, want, S, bound), ...]}."""
    file = path(adapter, directory)
    if not file.is_file():
        raise ValueError(
            f"crosscheck: no golden answers for {adapter!r} (there are for {sorted(KINDS)}); "
            "check it against torch and JAX instead"
        )
    with np.load(file, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"]))
    cases = []
    for k in range(meta["cases"]):
        p = f"k{k}/"
        params = {n[len(p) + 6 :]: v for n, v in data.items() if n.startswith(p + "param/")}
        order = [n for n in ("w", "b", "gamma", "beta") if n in params]  # the call order of the course layouts
        extra = tuple(json.loads(str(data[p + "extra"]), object_hook=_decode))
        d = Drawn(
            data[p + "x"],
            {n: params[n] for n in order},
            extra,
            data.get(p + "target"),
            str(data[p + "description"]),
            data.get(p + "kinks"),
        )
        want = {n[len(p) + 5 :]: v for n, v in data.items() if n.startswith(p + "want/")}
        S = {n[len(p) + 2 :]: float(v) for n, v in data.items() if n.startswith(p + "S/")}
        cases.append((d, data.get(p + "dout"), want, S, float(data[p + "bound"])))
    return {"meta": meta, "cases": cases}


def check_golden(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    adapter: Adapter,
    only: Sequence[int] | None = None,
) -> list[Any]:
    """One ``CheckResult`` per golden case of the adapter: the user's tensors against the stored answers."""
    from crosscheck.check.diagnose import diagnose
    from crosscheck.check.pair import YOURS, CheckResult, compare, run_user
    from crosscheck.spec import LayerSpec, LossSpec, NetSpec

    golden = load(adapter.name)
    results = []
    for k, (d, dout, want, S, bound) in enumerate(golden["cases"]):
        if only is not None and k not in only:
            continue
        got, error = run_user(adapter, forward, backward, d, dout)
        spec = (
            NetSpec((), LossSpec(adapter.kind, {}), "float64")
            if adapter.loss
            else NetSpec((LayerSpec(adapter.name, adapter.kind, {}),), None, "float64")
        )
        replay = f"crosscheck.check_pair(..., kind={adapter.name!r}, against='golden', only=[{k}])"
        result = CheckResult(f"{adapter.name}/golden/{k}", d.description, "float64", spec, bound, replay=replay)
        mode = "loss" if adapter.loss else "vjp"
        result.comparisons.append(_comparison(mode, YOURS, compare(adapter.names(), got, want, S, bound, error)))
        if not result.ok:
            result.diagnosis = diagnose(result, adapter, d, got, want, forward, backward, dout, error)
        results.append(result)
    return results


def _comparison(mode: str, backend: str, checks: list[Any]) -> Any:
    from crosscheck.run.compare import Comparison

    return Comparison(mode, backend, "golden", checks)
