"""High-precision scalars with reverse mode: the exact oracle's arithmetic (``Kind.exact``).

A ``Var`` holds an ``mpmath.mpf`` value and its parents with their local derivatives. NumPy object
arrays of ``Var`` carry the usual operators, so an exact forward reads like the NumPy one
(``x @ W + b``); ``backward`` walks the tape in reverse creation order. Piecewise functions follow the
documented kink conventions by choosing the branch on the value (``where``). No float rounding happens
anywhere: inputs enter exactly (every float32/float64 is an mpf), and every operation rounds at the
working precision (``mpmath.mp.dps``, set by ``crosscheck.reference.exact``). mpmath is imported lazily.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

_ids = itertools.count()
_budget = [0, 0]  # [nodes made, limit] of the current exact run; a limit of 0 means none


class TooLarge(RuntimeError):
    """An exact run would take more scalar operations than its limit."""


def mp() -> Any:
    """The mpmath module (imported on first use; the ``exact`` extra)."""
    import mpmath

    return mpmath


def set_budget(limit: int) -> None:
    """Count the nodes made from now on and raise ``TooLarge`` past ``limit`` (0: no limit)."""
    _budget[0], _budget[1] = 0, limit


class Var:
    """One scalar of the tape: value ``v`` (mpf), ``parents`` ((Var, d value / d parent), ...), gradient ``g``."""

    __slots__ = ("g", "i", "parents", "v")

    def __init__(self, v: Any, parents: tuple[tuple[Var, Any], ...] = ()) -> None:
        self.v, self.parents, self.g, self.i = v, parents, 0, next(_ids)
        _budget[0] += 1
        if _budget[1] and _budget[0] > _budget[1]:
            raise TooLarge(f"crosscheck.exact: more than {_budget[1]} scalar operations")

    def __add__(self, o: Any) -> Var:
        if isinstance(o, Var):
            return Var(self.v + o.v, ((self, 1), (o, 1)))
        return Var(self.v + o, ((self, 1),))

    __radd__ = __add__

    def __sub__(self, o: Any) -> Var:
        if isinstance(o, Var):
            return Var(self.v - o.v, ((self, 1), (o, -1)))
        return Var(self.v - o, ((self, 1),))

    def __rsub__(self, o: Any) -> Var:
        return Var(o - self.v, ((self, -1),))

    def __mul__(self, o: Any) -> Var:
        if isinstance(o, Var):
            return Var(self.v * o.v, ((self, o.v), (o, self.v)))
        return Var(self.v * o, ((self, o),))

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Var:
        if isinstance(o, Var):
            q = self.v / o.v
            return Var(q, ((self, 1 / o.v), (o, -q / o.v)))
        return Var(self.v / o, ((self, 1 / mpf(o)),))

    def __rtruediv__(self, o: Any) -> Var:
        q = o / self.v
        return Var(q, ((self, -q / self.v),))

    def __neg__(self) -> Var:
        return Var(-self.v, ((self, -1),))

    def __pow__(self, k: int) -> Var:
        return Var(self.v**k, ((self, k * self.v ** (k - 1)),))

    def __gt__(self, o: Any) -> bool:
        return bool(self.v > value(o))

    def __lt__(self, o: Any) -> bool:
        return bool(self.v < value(o))

    def __ge__(self, o: Any) -> bool:
        return bool(self.v >= value(o))

    def __le__(self, o: Any) -> bool:
        return bool(self.v <= value(o))

    def __repr__(self) -> str:
        return f"Var({mp().nstr(self.v, 20)})"


def value(a: Any) -> Any:
    return a.v if isinstance(a, Var) else a


def mpf(a: Any) -> Any:
    """The exact value of a float or an int as an mpf (an mpf as it is: never through a float)."""
    m = mp()
    if isinstance(a, m.mpf):
        return a
    return m.mpf(int(a)) if isinstance(a, (int, np.integer)) else m.mpf(float(a))


def const(a: Any) -> Var:
    return Var(mpf(a))


def leaves(a: np.ndarray) -> np.ndarray:
    """An object array of fresh ``Var`` leaves holding the exact values of the float array ``a``."""
    a = np.asarray(a)
    out = np.empty(a.shape, dtype=object)
    for idx, v in np.ndenumerate(a):
        out[idx] = Var(mp().mpf(float(v)))
    return out


def copy(a: np.ndarray) -> np.ndarray:
    """A fresh node per entry (d = 1): the gradient that reaches it is the gradient of this use only."""
    return elementwise(a, lambda x: Var(x.v, ((x, 1),)))


def elementwise(a: np.ndarray, f: Callable[[Var], Var]) -> np.ndarray:
    out = np.empty(np.shape(a), dtype=object)
    for idx, x in np.ndenumerate(np.asarray(a, dtype=object)):
        out[idx] = f(x)
    return out


def unary(f: Callable[[Any], Any], df: Callable[[Any, Any], Any]) -> Callable[[Var], Var]:
    """A scalar function with its derivative df(x, f(x)), as a Var operation."""

    def op(x: Var) -> Var:
        y = f(x.v)
        return Var(y, ((x, df(x.v, y)),))

    return op


def exp(x: Var) -> Var:
    return unary(mp().exp, lambda v, y: y)(x)


def log(x: Var) -> Var:
    return unary(mp().log, lambda v, y: 1 / v)(x)


def log1p(x: Var) -> Var:
    return unary(mp().log1p, lambda v, y: 1 / (1 + v))(x)


def tanh(x: Var) -> Var:
    return unary(mp().tanh, lambda v, y: 1 - y * y)(x)


def sqrt(x: Var) -> Var:
    return unary(mp().sqrt, lambda v, y: 1 / (2 * y))(x)


def erf(x: Var) -> Var:
    m = mp()
    return unary(m.erf, lambda v, y: 2 / m.sqrt(m.pi) * m.exp(-v * v))(x)


def sigmoid(x: Var) -> Var:
    return 1 / (1 + exp(-x))


def absolute(x: Var) -> Var:
    """|x|, derivative sign(x) (0 at 0)."""
    return x if x.v > 0 else (-x if x.v < 0 else x * 0)


def relu(x: Var) -> Var:
    """max(x, 0), derivative 0 at 0 (a constant 0 carries no gradient)."""
    return x if x.v > 0 else x * 0


def total(a: Iterable[Any]) -> Var:
    """The exact sum of an iterable of Vars (one node, all derivatives 1)."""
    items = [x for x in np.asarray(a, dtype=object).ravel()]
    if not items:
        return const(0)
    s = mp().fsum(x.v for x in items)
    return Var(s, tuple((x, 1) for x in items))


def sum_axis(a: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """``total`` along one axis of an object array."""
    moved = np.moveaxis(np.asarray(a, dtype=object), axis, -1)
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*moved.shape[:-1]):
        out[idx] = total(moved[idx])
    return np.expand_dims(out, axis) if keepdims else out


def matmul(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """x @ W over the last axis of x, each entry one exact dot-product node."""
    x2 = np.asarray(x, dtype=object).reshape(-1, x.shape[-1])
    out = np.empty((x2.shape[0], W.shape[1]), dtype=object)
    for i in range(x2.shape[0]):
        for j in range(W.shape[1]):
            out[i, j] = dot(x2[i], W[:, j])
    return out.reshape(*x.shape[:-1], W.shape[1])


def dot(a: np.ndarray, b: np.ndarray) -> Var:
    """sum_k a_k b_k as one node (an exact fused dot product)."""
    m = mp()
    s = m.fdot((p.v, q.v) for p, q in zip(a, b))
    parents = tuple(pair for p, q in zip(a, b) for pair in ((p, q.v), (q, p.v)))
    return Var(s, parents)


def backward(seeds: Iterable[tuple[Var, Any]]) -> None:
    """Reverse mode: every node reachable from the seeded roots gets ``g`` = d(sum seed * root) / d node."""
    roots = list(seeds)
    seen: dict[int, Var] = {}
    stack = [r for r, _ in roots]
    while stack:
        n = stack.pop()
        if n.i in seen:
            continue
        seen[n.i] = n
        n.g = 0
        stack.extend(p for p, _ in n.parents if p.i not in seen)
    for r, s in roots:
        r.g += mpf(s)
    for i in sorted(seen, reverse=True):
        n = seen[i]
        if n.g:
            for p, d in n.parents:
                p.g += n.g * d


def values(a: np.ndarray) -> np.ndarray:
    """The mpf values of an object array of Vars."""
    return elementwise(a, lambda x: x.v) if np.ndim(a) else np.array(value(a), dtype=object)


def grads(a: np.ndarray) -> np.ndarray:
    """The mpf gradients of an object array of Vars."""
    return elementwise(a, lambda x: mp().mpf(x.g))
