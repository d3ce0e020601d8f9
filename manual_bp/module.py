"""``Module``: the base class of every layer and container.

A layer validates its input, calls its forward pair, keeps the cache, and in
``backward`` hands the cache to the backward pair and stores the parameter
gradients in ``self.grads`` (overwritten, never accumulated). Subclasses
provide ``_forward(x) -> (out, cache)`` and ``_backward(dout, cache) -> dx``;
the checks and the bookkeeping live here once.

Gradient storage. A new gradient may be written into the array that held the
same gradient after the last ``backward``, but only when nothing outside the
layer refers to that array any more (no variable, view, dict or optimiser
holds it), so that no one can see it change. A gradient you kept is never
touched: the new one then goes to a fresh array. Why: a fresh array of tens of
MB is fresh memory that the kernel zeroes page by page on the first write
(20-30 ms of a 850 ms float64 step for the 4096 x 4096 dW of
``benchmarks``' large MLP); arrays under ``REUSE_MIN_BYTES`` are always new,
as their memory is recycled by malloc anyway. NumPy applies the same rule when
it reuses an operand no one else holds as the output of an expression
(temporary elision).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from manual_bp._checks import StateError, check_dout, check_float_array, check_min_ndim, check_nonempty


def _pop_with_refcount(store: dict[str, np.ndarray], name: str) -> tuple[np.ndarray | None, int]:
    a = store.pop(name, None)
    return a, sys.getrefcount(a)


REUSE_MIN_BYTES = 1 << 20  # smaller arrays come from malloc's pool, whose pages are mapped already

# the count of an array that only ``store`` held, measured through the same code (it varies across CPython versions)
_, _ALONE = _pop_with_refcount({"a": np.empty(0)}, "a")


def take_unshared(
    store: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray | None:
    """Pop ``store[name]`` and return it if nothing else refers to it and it can hold a
    C-contiguous ``shape``/``dtype`` result; else None (the caller allocates)."""
    a, refs = _pop_with_refcount(store, name)
    if a is None or refs > _ALONE:
        return None
    fits = a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
    return a if fits and a.flags.owndata and a.flags.writeable else None


class Module:
    """Base class: ``forward(x) -> out`` then ``backward(dout) -> dx``.

    ``params`` and ``grads`` map names ("W", "b") to arrays; optimisers update
    ``params`` in place. ``training`` switches train/eval behaviour where a
    layer has any. ``name`` is set by the containing ``Sequential`` and appears
    in error messages.
    """

    kind: ClassVar[str] = ""
    reusable_grads: ClassVar[tuple[str, ...]] = ()  # gradients the layer writes through _grad_storage
    # True: x and dout are copied to C order before the layer's products (a no-op for a contiguous
    # array). NumPy < 2.3 multiplies strided operands without BLAS, in another summation order, so
    # this keeps every layout of the same values at the contiguous input's bits on every NumPy.
    contiguous: ClassVar[bool] = False
    min_ndim: ClassVar[int] = 0
    registry: ClassVar[dict[str, type[Module]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Module.registry[cls.kind] = cls

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._spare: dict[str, np.ndarray] = {}  # the last gradients, while backward computes new ones
        self._buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.name = ""
        self._cache: Any = None
        self._out: tuple[tuple[int, ...], np.dtype] | None = None

    # -- to be provided by each layer
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def _check_input(self, x: Any) -> np.ndarray:
        check_float_array(x, self.where)
        check_min_ndim(x, self.min_ndim, self.where)
        check_nonempty(x, self.where)
        return x

    def config(self) -> dict[str, Any]:
        """Hyperparameters as plain data; ``type(layer)(**layer.config())`` rebuilds the layer."""
        return {}

    # -- shared machinery
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name; updated in place by optimisers."""
        return self._params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """dL/d(param) by the same names, filled by ``backward``."""
        return self._grads

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved with the model (e.g. running statistics)."""
        return self._buffers

    @property
    def name(self) -> str:
        """The layer's dotted position, set by the containing ``Sequential`` ("0", "1.2")."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value
        cls = type(self).__name__
        # how error messages name this layer, e.g. ``Linear '0'``: formatted once, read by every check
        self.where = f"{cls} {value!r}" if value else cls

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output and keep what backward needs.

        A forward that raises leaves no cache behind: ``backward`` then raises ``StateError``
        instead of returning the gradient of an earlier call.
        """
        self._cache, self._out = None, None
        x = self._check_input(x)
        if self.contiguous:
            x = np.ascontiguousarray(x)
        out, self._cache = self._forward(x)
        self._out = (out.shape, out.dtype)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Return dL/dx for dout = dL/d(out); fill ``self.grads``.

        ``input_grad=False``: only the parameter gradients are needed (the first
        layer in training); a layer that can skip dx (Linear) then returns None.
        """
        if self._out is None:
            raise StateError(f"{self.where}: backward() called before forward()")
        check_dout(dout, *self._out, self.where)
        if self.contiguous:
            dout = np.ascontiguousarray(dout)
        if self._grads:  # keep what _grad_storage may reuse; free the rest before the new ones exist
            grads = self._grads  # (no local name may hold a gradient: it would count as a holder)
            self._spare = {k: grads[k] for k in self.reusable_grads
                           if k in grads and grads[k].nbytes >= REUSE_MIN_BYTES}
            self._grads.clear()
        dx = self._backward(dout, self._cache) if input_grad else self._param_backward(dout, self._cache)
        if self._spare:
            self._spare = {}  # what was not reused is freed here, before the next layer allocates
        return dx

    def _grad_storage(self, name: str, like: np.ndarray) -> np.ndarray | None:
        """The last backward's gradient ``name`` to write the new one (shaped like ``like``) into, or None.

        Only a gradient named in ``reusable_grads``, of at least ``REUSE_MIN_BYTES``,
        that nothing outside this layer refers to is returned (module docstring:
        gradient storage); pass it as ``out=``. None: let the product allocate.
        """
        return take_unshared(self._spare, name, like.shape, like.dtype) if self._spare else None

    def _param_backward(self, dout: np.ndarray, cache: Any) -> np.ndarray | None:
        """The parameter gradients only; layers that can save work by skipping dx override this."""
        return self._backward(dout, cache)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it, in execution order (containers first)."""
        yield self

    def zero_grad(self) -> None:
        """Drop the gradients of the last ``backward`` (they are overwritten, never accumulated)."""
        self._grads.clear()

    def train(self, mode: bool = True) -> Module:
        """Switch to training mode (``mode=False``: evaluation mode)."""
        self.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode."""
        return self.train(False)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
