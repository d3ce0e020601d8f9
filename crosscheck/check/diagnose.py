"""Diagnosis of a mismatching case: the first diverging tensor, its worst entry, a likely cause when the
numbers show one, and the command that replays the case.

The causes are read off the numbers alone: a constant factor (a missing 1/N, a factor 2, the keep
probability of a dropout), a flipped sign, a transposed result, a spatially flipped result, a sum
missing over the batch axis, values that differ only at a kink or a tie, a non-finite result where the
reference is finite, a gradient that is the forward's output, and a gradient that does not change when
the upstream gradient does (right only for an all-ones dout).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

RESIDUAL = 1e-8  # a hypothesis "got = f(want)" holds when ||got - f(want)|| <= RESIDUAL ||want||


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    return float(np.linalg.norm((a - b).ravel())) <= RESIDUAL * max(float(np.linalg.norm(b.ravel())), 1e-300)


def factor(got: np.ndarray, want: np.ndarray) -> float | None:
    """c with got = c want (least squares, exact within RESIDUAL), None if no constant factor explains got."""
    a, b = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    bb = float(b @ b)
    if a.shape != b.shape or bb == 0 or not np.all(np.isfinite(a)):
        return None
    c = float(a @ b) / bb
    return c if _close(a, c * b) else None


def _name_factor(c: float, named: dict[float, str]) -> str:
    """The factor c in words: the adapter's named factors (N, the keep probability) first, then -1, 2, 1/2."""
    candidates: dict[float, str] = {}
    for value, what in named.items():
        candidates.setdefault(value, f"a factor {what}")
        candidates.setdefault(1.0 / value, f"a factor 1/{what}")
        candidates.setdefault(-value, f"a factor -{what}")
    for value, what in {-1.0: "a flipped sign", 2.0: "a factor 2", 0.5: "a factor 1/2"}.items():
        candidates.setdefault(value, what)
    for value, what in candidates.items():
        if value != 1.0 and abs(c - value) <= 1e-6 * abs(value):
            return what
    return f"a constant factor {c:.6g}"


def _hint(what: str) -> str:
    """What a factor usually means in a backward pass."""
    if what.startswith("a factor N"):
        return f"{what}: a missing 1/N (a sum where a mean belongs)"
    if what.startswith("a factor 1/N"):
        return f"{what}: a mean where a sum belongs (or an extra 1/N)"
    if what.startswith("a factor p"):
        return f"{what}: not rescaled; inverted dropout divides the kept units by p"
    if what.startswith("a factor 1/p"):
        return f"{what}: rescaled twice (by 1/p in the forward and again in the backward)"
    return what


def cause(name: str, got: Any, want: np.ndarray, context: dict[str, Any]) -> str:
    """A likely cause of got != want, or '' when the numbers show none. context: ``factors`` {value: name},
    ``x`` the input, ``kinks`` a mask of x's entries on a kink or tie, ``out`` the reference forward output."""
    if got is None:
        return ""
    a, b = np.asarray(got), np.asarray(want)
    named = context.get("factors", {})
    if a.shape != b.shape:
        if a.ndim == 2 and a.shape == b.shape[::-1] and _close(a.T, b):
            return f"a transposed result: you return shape {a.shape}, the transpose of the expected {b.shape}"
        if a.ndim == b.ndim + 1 and a.shape[1:] == b.shape and _close(a.sum(axis=0), b):
            return f"not summed over the batch axis: you return {a.shape}; sum over axis 0 to get {b.shape}"
        if a.size == b.size and _close(a.reshape(b.shape), b):
            return f"the right values in the wrong shape {a.shape}: reshape to {b.shape} (the input's shape)"
        return ""
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
        return (
            "non-finite values (inf/nan) where the reference is finite: an overflow, such as exp of large "
            "inputs; subtract each row's maximum before exp (log-sum-exp)"
        )
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and _close(a.T, b):
        return "a transposed result"
    c = factor(a, b)
    if c is not None:
        what = _name_factor(c, named)
        # any two single numbers differ by a factor: an unnamed one means something only across entries
        if np.count_nonzero(b) >= 2 or not what.startswith("a constant factor"):
            return _hint(what)
    if a.ndim >= 2 and a.shape[-1] * a.shape[-2] > 1 and _close(a[..., ::-1, ::-1], b):
        return "a spatially flipped result (a kernel flipped: torch's convolution is a cross-correlation)"
    kinks = context.get("kinks")
    if kinks is not None and "dx" in name and a.shape == kinks.shape:
        differ = ~np.isclose(a, b, rtol=1e-9, atol=1e-12)
        if differ.any() and not (differ & ~kinks).any():
            return context.get("kink_text", "differs only where x sits on a kink")
    out = context.get("out")
    if out is not None and "dx" in name and np.shape(out) == a.shape and _close(a, out):
        return (
            "your dx equals the forward's output: the operation (a mask, a scale) was applied to x instead of to dout"
        )
    return ""


def ties(x: np.ndarray, pool: dict[str, int]) -> np.ndarray:
    """The entries of x (N, C, H, W) that are a maximum of some window together with another entry."""
    ph, pw, s = pool["pool_height"], pool["pool_width"], pool["stride"]
    mask = np.zeros(x.shape, bool)
    H, W = x.shape[2:]
    for i in range(0, H - ph + 1, s):
        for j in range(0, W - pw + 1, s):
            win = x[:, :, i : i + ph, j : j + pw]
            top = win.max(axis=(2, 3), keepdims=True)
            hit = win == top
            multi = hit.sum(axis=(2, 3), keepdims=True) > 1
            mask[:, :, i : i + ph, j : j + pw] |= hit & multi
    return mask


def _worst(got: Any, want: np.ndarray) -> str:
    a, b = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if a.shape != b.shape:
        return f"shape {a.shape}, expected {b.shape}"
    diff = np.abs(a - b)
    diff = np.where(np.isnan(diff), np.inf, diff)
    idx = np.unravel_index(int(np.argmax(diff)), a.shape) if a.ndim else ()
    return f"worst entry at {tuple(int(i) for i in idx)}: yours {a[idx]:.10g}, expected {b[idx]:.10g}"


def ignores_dout(
    adapter: Any,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    d: Any,
    dout: np.ndarray | None,
    got: dict[str, np.ndarray],
    name: str,
) -> bool:
    """The user's ``name`` is the same for the random dout and for dout = ones: it ignores dout."""
    if backward is None or dout is None or name not in got or adapter.loss:
        return False
    try:
        ones = adapter.call(forward, backward, d.copy(), np.ones_like(dout))
    except Exception:
        return False
    return (
        name in ones
        and np.shape(ones[name]) == np.shape(got[name])
        and np.allclose(ones[name], got[name])
        and not np.allclose(dout, 1.0)
    )


def variant(
    adapter: Any, d: Any, got: dict[str, np.ndarray], name: str, rerun: Callable[[Any], dict[str, np.ndarray]]
) -> str:
    """The cause of the first of the adapter's variants (a known slip applied to the case: a flipped kernel)
    whose reference tensor ``name`` matches the user's, or ''."""
    for text, change in adapter.variants:
        try:
            theirs = rerun(change(d))
        except Exception:  # a variant the references cannot run explains nothing
            continue
        if name in theirs and _close(got[name], theirs[name]):
            return text
    return ""


def diagnose(
    result: Any,
    adapter: Any,
    d: Any,
    got: dict[str, np.ndarray],
    want: dict[str, np.ndarray],
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    dout: np.ndarray | None,
    error: str,
    rerun: Callable[[Any], dict[str, np.ndarray]] | None = None,
) -> str:
    """The failure message of a mismatching case (``CheckResult.summary``)."""
    first = result.first_divergence
    lines = [f"case {result.case_id}: MISMATCH ({result.description})"]
    if first is None:
        return ""
    comp, bad = first
    alias = " (your dx)" if bad.name == "dlogits" else ""
    what = bad.note or f"rel_norm {bad.rel_norm:.3e}, rel_max {bad.rel_max:.3e} > bound {bad.bound:.1e}"
    lines.append(f"  first diverging tensor: {bad.name}{alias} [{comp.backend} vs {comp.reference}]: {what}")
    likely = ""
    if bad.name in got and bad.name in want:
        lines.append(f"  {_worst(got[bad.name], want[bad.name])}")
        context: dict[str, Any] = {
            "factors": adapter.factors(d),
            "x": d.x,
            "kinks": d.kinks,
            "out": want.get(f"{adapter.name}.out"),
        }
        if adapter.name == "max_pool":
            context["kinks"] = ties(d.x, d.extra[0])
            context["kink_text"] = (
                "differs only at tied maxima: torch and JAX send a window's gradient to its "
                "first maximum (row-major), not split among the ties"
            )
        elif adapter.name == "relu":
            context["kink_text"] = (
                "differs only where x == 0 (the kink): torch and JAX take the derivative 0 there "
                "(use x > 0, not x >= 0)"
            )
        likely = cause(bad.name, got[bad.name], want[bad.name], context)
        if (
            not likely
            and bad.name.split(".")[-1].startswith("d")
            and ignores_dout(adapter, forward, backward, d, dout, got, bad.name)
        ):
            likely = (
                "the gradient ignores the upstream gradient dout (the same for a random dout as for all ones): "
                "multiply by dout"
            )
        if not likely and rerun is not None:
            likely = variant(adapter, d, got, bad.name, rerun)
    elif error:
        likely = f"your code {error}" if error.startswith(("raised", "mutated")) else error
    lines.append(f"  likely cause: {likely or 'none the numbers show'}")
    lines.append(f"  replay: {result.replay}")
    return "\n".join(lines)
