"""``Module``: the base class of every layer and container.

A layer validates its input, calls its forward pair, keeps the cache, and in
``backward`` hands the cache to the backward pair and stores the parameter
gradients in ``self.grads`` (overwritten, never accumulated). Subclasses
provide ``_forward(x) -> (out, cache)`` and ``_backward(dout, cache) -> dx``;
the checks and the bookkeeping live here once. The speed devices it calls
(gradient storage, C-order operands) are in ``manual_bp.fast``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from manual_bp import fast
from manual_bp._checks import StateError, check_dout, check_float_array, check_min_ndim, check_nonempty


class Module:
    """Base class: ``forward(x) -> out`` then ``backward(dout) -> dx``.

    ``params`` and ``grads`` map names ("W", "b") to arrays; optimisers update
    ``params`` in place. ``training`` switches train/eval behaviour where a
    layer has any. ``name`` is set by the containing ``Sequential`` and appears
    in error messages.
    """

    kind: ClassVar[str] = ""
    reusable_grads: ClassVar[tuple[str, ...]] = ()  # gradients the layer writes through _grad_storage
    contiguous: ClassVar[bool] = False  # True: x and dout go to the products in C order (fast.operand)
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
        x = fast.operand(self._check_input(x), self.contiguous)
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
        dout = fast.operand(dout, self.contiguous)
        if self._grads:  # the last gradients: storage for the new ones, or freed now (fast.set_aside)
            self._spare = fast.set_aside(self._grads, self.reusable_grads)
        dx = self._backward(dout, self._cache) if input_grad else self._param_backward(dout, self._cache)
        if self._spare:
            self._spare = {}  # what was not reused is freed here, before the next layer allocates
        return dx

    def _grad_storage(self, name: str, like: np.ndarray) -> np.ndarray | None:
        """The last backward's gradient ``name`` to write the new one (shaped like ``like``) into, or None.

        Only a gradient named in ``reusable_grads``, of at least ``fast.REUSE_MIN_BYTES``,
        that nothing outside this layer refers to is returned (``manual_bp.fast``:
        gradient storage); pass it as ``out=``. None: let the product allocate.
        """
        return fast.take_unshared(self._spare, name, like.shape, like.dtype) if self._spare else None

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
