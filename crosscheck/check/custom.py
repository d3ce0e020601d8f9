"""``register_kind``: a kind manual_bp does not have, from its forward in torch or in JAX.

The user gives the forward as a function of the input and named parameters in the frameworks' own ops;
autodiff gives the gradients. The kind goes into the kind registry (``crosscheck.kinds.register``) and
gets a ``check_pair`` adapter (``forward(x, *params) -> (out, cache)``, ``backward(dout, cache) -> (dx,
*dparams)``) and a ``check_module`` entry. Tolerance: no term-size rule is sound for every op, so a
custom kind without its own rules uses a documented conservative fallback (docs/tolerance.md):
S(out) = c max(S(x), max|theta|, max|out|), G(dx) = c G(dout) max(1, max|x|, max|theta|), a parameter
gradient's S = c n G(dout) max(1, max|x|) with n the batch rows; c = ``scale`` (default 16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck.check.adapters import ADAPTERS, Adapter, Drawn
from crosscheck.kinds.entry import Kind, amax, register
from crosscheck.spec import LayerSpec

SCALE = 16.0  # the fallback's constant c


def _params_max(layer: LayerSpec) -> float:
    return max((amax(v) for v in layer.params.values()), default=0.0)


def _fallback(c: float) -> tuple[Callable[..., float], Callable[..., float]]:
    def fwd(w: Any, layer: LayerSpec, h: np.ndarray, s_in: float, out: np.ndarray) -> float:
        return c * max(s_in, _params_max(layer), amax(out))

    def bwd(w: Any, layer: LayerSpec, g: float, h_in: np.ndarray, s_x: float) -> float:
        rows = int(np.prod(np.shape(h_in)[:1])) or 1
        for p in layer.params:
            w.store(layer, f"d{p}", c * rows * g * max(1.0, amax(h_in)))
        return c * g * max(1.0, amax(h_in), _params_max(layer))

    return fwd, bwd


def _torch_module(fn: Callable[..., Any]) -> Callable[[LayerSpec, Any], Any]:
    def build(layer: LayerSpec, dtype: Any) -> Any:
        from crosscheck.kinds._frameworks import nn, torch

        class Custom(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.theta = nn.ParameterDict(
                    {k: nn.Parameter(torch.tensor(np.array(v), dtype=dtype)) for k, v in layer.params.items()}
                )

            def forward(self, h: Any) -> Any:
                return fn(h, **dict(self.theta.items()))

        return Custom()

    return build


def _torch_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    return {f"d{k}": p.grad.detach().numpy().copy() for k, p in m.theta.items()}


def _default_draw(rng: np.random.Generator, k: int) -> np.ndarray:
    N = 1 if k == 0 else int(rng.integers(2, 6))
    D = 1 if k == 1 else int(rng.integers(2, 7))
    return rng.normal(size=(N, D)) * 2


def register_kind(
    name: str,
    *,
    torch: Callable[..., Any] | None = None,
    jax: Callable[..., Any] | None = None,
    params: Callable[[np.random.Generator, tuple[int, ...]], dict[str, np.ndarray]] | None = None,
    draw: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    scale: float = SCALE,
    scale_fwd: Callable[..., float] | None = None,
    scale_bwd: Callable[..., float] | None = None,
) -> Adapter:
    """Add a kind of your own: ``torch(x, **params)`` and/or ``jax(x, **params)`` (the frameworks' own ops)
    give its forward; ``params(rng, x_shape)`` draws its parameters (call order = dict order); ``draw(rng,
    k)`` its input (default: (N, D) normal, case 0 a batch of 1, case 1 a width of 1). Tolerance: your
    ``scale_fwd``/``scale_bwd`` (as ``crosscheck.kinds.Kind``'s), else the conservative fallback with
    constant ``scale``. Returns the kind's adapter: ``check_pair(f, b, kind=name)`` then checks your pair,
    against the frameworks you gave a forward for."""
    if torch is None and jax is None:
        raise ValueError(f"register_kind({name!r}): give its forward in torch= or jax= (or both)")
    if name in ADAPTERS:
        raise ValueError(f"register_kind: {name!r} is already a kind of check_pair")
    fwd, bwd = _fallback(scale)

    def missing(fw: str) -> Callable[..., Any]:
        def fail(*args: Any) -> Any:
            raise NotImplementedError(f"custom kind {name!r} has no {fw} forward")

        return fail

    entry = Kind(
        name,
        torch_module=_torch_module(torch) if torch else missing("torch"),
        torch_grads=_torch_grads,
        jax_apply=(lambda layer, p, x, net: jax(x, **p)) if jax else missing("jax"),
        scale_fwd=scale_fwd or fwd,
        scale_bwd=scale_bwd or bwd,
        terms=lambda layer, x, y, m, eps: np.full(np.shape(y), amax(y) * scale),
        describe=lambda layer: name,
    )
    register(entry)
    make_params = params or (lambda rng, shape: {})
    draw_x = draw or _default_draw

    def draw_case(rng: np.random.Generator, k: int) -> Drawn:
        x = draw_x(rng, k)
        return Drawn(x, make_params(rng, x.shape), description=f"{name} x{x.shape}")

    def layer(d: Drawn, got: dict[str, np.ndarray]) -> tuple[LayerSpec, np.ndarray]:
        return LayerSpec(name, name, {}, {k: np.array(v, dtype=np.float64) for k, v in d.params.items()}), d.x

    probe = draw_case(np.random.default_rng(0), 2)
    grads = ("dx", *(f"d{p}" for p in probe.params))
    adapter = Adapter(
        name,
        name,
        grads,
        draw_case,
        layer,
        {g: g for g in grads if g != "dx"},
        frameworks=tuple(fw for fw, f in (("torch", torch), ("jax", jax)) if f is not None),
    )
    ADAPTERS[name] = adapter
    return adapter


def unregister_kind(name: str) -> None:
    """Remove a kind that ``register_kind`` added (its registry entry and its adapter)."""
    from crosscheck.kinds.entry import REGISTRY

    ADAPTERS.pop(name, None)
    REGISTRY.pop(name, None)
