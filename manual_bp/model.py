"""``Sequential``: a chain of layers with named parameters, gradients and state; ``Residual`` and its pair."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from manual_bp._checks import StateError, check_dout, check_like
from manual_bp.module import Module

Cache = Any


class Sequential(Module):
    """out = f_K(... f_1(f_0(x))); backward applies the layers' backward in reverse.

    Parameters, gradients and buffers are exposed under dotted names
    ``"<index>.<name>"`` (``"0.W"``, ``"2.b"``; nested: ``"1.0.W"``).
    """

    kind = "sequential"

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: item {i} is a {type(layer).__name__}, not a manual_bp layer; "
                    f"pass layer instances, e.g. Sequential(Linear(2, 3), ReLU())"
                )
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("Sequential: the same layer instance appears twice; create one per position")
        self.layers: list[Module] = list(layers)
        self._name_children()

    def _name_children(self) -> None:
        prefix = f"{self.name}." if self.name else ""
        for i, layer in enumerate(self.layers):
            layer.name = f"{prefix}{i}"
            if isinstance(layer, Sequential):
                layer._name_children()

    def _collect(self, attr: str) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in getattr(layer, attr).items()}

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._collect("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._collect("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self._collect("buffers")

    def config(self) -> dict[str, Any]:
        return {"layers": [architecture(layer) for layer in self.layers]}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run every layer in order; each validates its own input."""
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        for layer in self.layers:
            x = layer.forward(x)
        self._out = (x.shape, x.dtype)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Chain rule in reverse: each layer maps dL/d(its output) to dL/d(its input).

        ``input_grad=False`` (training): the first layer may skip dL/dx (a Linear
        saves one of its three matrix products) and None may be returned.
        """
        if self._out is None:
            raise StateError("Sequential: backward() called before forward()")
        for i in reversed(range(len(self.layers))):
            dout = self.layers[i].backward(dout, input_grad=input_grad or i > 0)
        return dout

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.zero_grad()

    def modules(self) -> Iterator[Module]:
        yield self
        for layer in self.layers:
            yield from layer.modules()

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    # -- state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        return {k: v.copy() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy ``state`` into the model, in place; all-or-nothing.

        Every key, shape and dtype is checked before anything is written, so a
        mismatch raises ValueError/TypeError and leaves the model untouched.
        """
        own = {**self.params, **self.buffers}
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"Sequential.load_state_dict: missing keys {missing}, unexpected keys {extra}")
        for k, v in own.items():
            check_like(state[k], v, "Sequential.load_state_dict", repr(k), "the model expects")
        for k, v in own.items():
            np.copyto(v, state[k])


# --8<-- [start:residual_pair]
def residual_forward(x: np.ndarray, fx: np.ndarray) -> tuple[np.ndarray, Cache]:
    """out = x + f(x), f a sub-network evaluated by the caller.  x, fx: (N, *)  ->  out: (N, *)."""
    return x + fx, None


def residual_backward(dout: np.ndarray, dx_branch: np.ndarray) -> np.ndarray:
    """dx = dout (the skip path) + dx_branch (dout pulled back through f by the caller)."""
    return dout + dx_branch


# --8<-- [end:residual_pair]


class Residual(Sequential):
    """y = x + f(x), f the sub-sequence of ``layers``; f must keep the shape of x.

    Backward: dx = dout (the skip path) + f's backward applied to dout. Names
    nest as in ``Sequential``: ``Residual`` at position 1 holding a Linear has
    ``"1.0.W"``.
    """

    kind = "residual"

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.layers:
            raise ValueError(f"{self.where}: the residual branch has no layers")
        fx = super().forward(x)
        if fx.shape != x.shape or fx.dtype != x.dtype:
            raise ValueError(
                f"{self.where}: the branch maps input {x.shape} {x.dtype} to {fx.shape} {fx.dtype}; "
                f"y = x + f(x) needs f to keep the shape and dtype (e.g. Linear(D, D))"
            )
        out, _ = residual_forward(x, fx)
        self._out = (out.shape, out.dtype)
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """dx = dout + f's backward of dout (the skip path always needs the branch's dx)."""
        if self._out is None:
            raise StateError(f"{self.where}: backward() called before forward()")
        check_dout(dout, *self._out, self.where)
        return residual_backward(dout, super().backward(dout))

    def __repr__(self) -> str:
        return "Residual(" + ", ".join(repr(layer) for layer in self.layers) + ")"


def architecture(layer: Module) -> dict[str, Any]:
    """Plain-data description of a layer or model: ``{"kind": ..., "config": {...}}``."""
    return {"kind": layer.kind, "config": layer.config()}


def build(arch: Mapping[str, Any]) -> Module:
    """Rebuild a layer or model from ``architecture(...)`` output (parameters freshly initialised)."""
    kind = arch.get("kind")
    cls = Module.registry.get(kind)
    if cls is None:
        raise ValueError(f"build: unknown layer kind {kind!r}; known kinds: {sorted(Module.registry)}")
    config = dict(arch.get("config", {}))
    if issubclass(cls, Sequential):
        return cls(*(build(child) for child in config["layers"]))
    return cls(**config)
