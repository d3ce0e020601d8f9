"""One entry per layer kind: everything crosscheck knows about it, in one place.

A ``Kind`` holds the kind's torch builder and JAX apply (the frameworks' own ops only),
its term-size rules (``scale_fwd``/``scale_bwd`` for the tolerance, ``terms`` and
``hazard`` for the case generator's near-kink test), its reduction lengths for the
float32 bound, how a spec reads it, how the case generator draws and describes it.
Generic code looks entries up by ``kind``; it holds no per-kind branches. Nothing here
imports manual_bp: the rules that see a manual_bp layer read its public attributes.
The derivations are on docs/tolerance.md and docs/cases.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from crosscheck.spec import LayerSpec

Array = Any
Image = tuple[int, ...] | None  # the (N, C, H, W) shape while the layers see images, else None


def amax(a: Any) -> float:
    """max |a| in float64 (0 for an empty array)."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64)), initial=0.0))


def col_abs_sum(W: np.ndarray) -> float:
    """max_j sum_k |W_kj|: the inf-norm gain of x -> x W."""
    return float(np.abs(W.astype(np.float64)).sum(axis=0).max(initial=0.0))


def row_abs_sum(W: np.ndarray) -> float:
    """max_k sum_j |W_kj|: the inf-norm gain of dout -> dout W^T."""
    return float(np.abs(W.astype(np.float64)).sum(axis=1).max(initial=0.0))


def no_grads(layer: LayerSpec, m: Any) -> dict[str, np.ndarray]:
    return {}


def no_hazard(layer: Any, h: np.ndarray, m: np.ndarray, tol: float) -> bool:
    return False


def no_fixed(layer: Any) -> dict[str, np.ndarray]:
    return {}


def no_lengths(layer: LayerSpec, image: Image) -> tuple[list[int], Image]:
    return [], image


def torch_call(layer: LayerSpec, m: Any, h: Any, apply: Callable[..., Any]) -> Any:
    """The default torch forward: the module on its input."""
    return m(h)


@dataclass(frozen=True)
class Kind:
    """Everything crosscheck knows about one layer kind (keyed like ``manual_bp.Module.registry``).

    References (plain data in, frameworks' own ops only):
      torch_module(layer, dtype) -> nn.Module; torch_apply(layer, module, h, apply) -> out (``apply``
      runs a child, for containers); torch_grads(layer, module) -> {"dW": ...} in manual_bp's names and
      layouts; jax_apply(layer, params, x, net) -> out (``net.apply(child, x)`` runs a child,
      ``net.buffers[layer.name]`` holds and takes running statistics).
    Tolerance (``crosscheck.tolerance.scales``): scale_fwd(walker, layer, h, s_in, out) -> S(out);
      scale_bwd(walker, layer, g, h_in, s_x) -> G(dx), storing the parameter gradients' scales in
      ``walker.S``; lengths(layer, image) -> (reduction lengths, the next image shape).
    Case generator (``crosscheck.cases``), on manual_bp layers by their public attributes:
      terms(layer, x, y, m, eps) -> the size of the terms behind each entry of y; hazard(layer, h, m, tol)
      -> True if an input sits near a kink or a near-tie; draw(rng) -> constructor keyword arguments;
      plant(layer, rng): zero one output unit (weights and bias), so that a kink after it is met exactly;
      describe(layer) -> a short text for case descriptions.
      A container walks its children itself: walk(walker, layer, h, m) -> (y, m(y), hazard found).
    Exact oracle (``crosscheck.reference.exact``): exact(layer, params, x, net) -> out, the forward on object
      arrays of high-precision ``Var`` scalars (``crosscheck.kinds._exact``); ``net.apply(child, x)`` runs a
      child, ``net.buffers[layer.name]`` holds and takes running statistics; None: the exact sweep skips the kind.
    Spec reading: fixed(layer) -> arrays the references must reuse (a Dropout mask); integer_input:
      the layer takes indices (no dx); buffers: the running statistics it updates; outputs: arrays the
      layer leaves as attributes after its forward besides its output (an RNN's final state ``h_n``),
      compared after it as ``<layer>.<name>``: the torch apply leaves them as attributes of its module,
      the JAX apply in ``net.outs["<layer>.<name>"]``.
    """

    kind: str
    torch_module: Callable[[LayerSpec, Any], Any]
    jax_apply: Callable[[LayerSpec, dict[str, Array], Array, Any], Array]
    scale_fwd: Callable[[Any, LayerSpec, np.ndarray, float, np.ndarray], float]
    scale_bwd: Callable[[Any, LayerSpec, float, np.ndarray, float], float]
    terms: Callable[[Any, np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]
    describe: Callable[[Any], str] = repr
    torch_apply: Callable[[LayerSpec, Any, Any, Callable[..., Any]], Any] = torch_call
    torch_grads: Callable[[LayerSpec, Any], dict[str, np.ndarray]] = no_grads
    hazard: Callable[[Any, np.ndarray, np.ndarray, float], bool] = no_hazard
    lengths: Callable[[LayerSpec, Image], tuple[list[int], Image]] = no_lengths
    draw: Callable[[np.random.Generator], dict[str, Any]] | None = None
    plant: Callable[[Any, np.random.Generator], None] | None = None
    fixed: Callable[[Any], dict[str, np.ndarray]] = no_fixed
    integer_input: bool = False
    buffers: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    walk: Callable[[Any, Any, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, bool]] | None = None
    exact: Callable[[LayerSpec, dict[str, Any], Any, Any], Any] | None = None

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The fields an entry must set itself (no default)."""
        return tuple(
            f.name for f in fields(cls) if f.name != "kind" and f.default is MISSING and f.default_factory is MISSING
        )


@dataclass(frozen=True)
class LossKind:
    """Everything crosscheck knows about one loss kind.

    torch_loss(config, z, target) and jax_loss(config, z, target): the loss from the frameworks' own
    functionals; terms(config, z, target, s_z, rows, n): S of the summed loss before a mean's 1/n;
    grad_terms(config, s_z, t_max): A in G(dlogits) = |dloss| r A; per_row: a mean divides by the rows
    (cross-entropy), not the entries; divisor(config, target, rows, n): what a mean divides by when it is
    neither (a class-weighted mean: sum of w[y] over the labels not ignored); draw(rng, labels, dtype, N, C)
    -> (constructor keyword arguments, target); hazard(config, z, target, m, tol) -> True if a logit z (its
    terms m) lies within tol m of the loss's kink, as ``Kind.hazard``.
    exact(config, z, target) -> the loss as one ``Var`` from the logits' object array of ``Var`` (None: no exact
    form; the exact sweep skips the case).
    """

    kind: str
    torch_loss: Callable[[dict[str, Any], Any, Any], Any]
    jax_loss: Callable[[dict[str, Any], Any, Any], Any]
    terms: Callable[[dict[str, Any], np.ndarray, Any, float, int, int], float]
    grad_terms: Callable[[dict[str, Any], float, float], float]
    draw: Callable[[np.random.Generator, str, str, int, int], tuple[dict[str, Any], np.ndarray]]
    per_row: bool = False
    divisor: Callable[[dict[str, Any], Any, int, int], float] | None = None
    hazard: Callable[[dict[str, Any], np.ndarray, Any, np.ndarray, float], bool] | None = None
    exact: Callable[[dict[str, Any], Any, Any], Any] | None = None


REGISTRY: dict[str, Kind] = {}
LOSSES: dict[str, LossKind] = {}


def register(*entries: Kind | LossKind) -> None:
    """Add entries (a user's own kinds too): a layer kind to ``REGISTRY``, a loss kind to ``LOSSES``."""
    for e in entries:
        table: dict[str, Any] = LOSSES if isinstance(e, LossKind) else REGISTRY
        if e.kind in table and table[e.kind] is not e:
            raise ValueError(f"crosscheck: kind {e.kind!r} is registered twice")
        table[e.kind] = e


def lookup(kind: str) -> Kind:
    """The entry of a layer kind; a clear error for a kind crosscheck does not know."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise NotImplementedError(
            f"crosscheck: no entry for layer kind {kind!r} (known: {sorted(REGISTRY)}); "
            "docs/adding-a-layer.md shows how to add one"
        ) from None


def loss_kind(kind: str) -> LossKind:
    """The entry of a loss kind."""
    try:
        return LOSSES[kind]
    except KeyError:
        raise NotImplementedError(f"crosscheck: no entry for loss kind {kind!r} (known: {sorted(LOSSES)})") from None


def problems(entry: Kind | LossKind) -> list[str]:
    """What an entry lacks: every rule it must have (and every optional one it sets) must be callable."""
    found = []
    for f in fields(entry):
        value = getattr(entry, f.name)
        must = f.default is MISSING and f.default_factory is MISSING
        if (
            f.name != "kind"
            and f.type not in ("bool", "tuple[str, ...]")
            and (must or value is not None)
            and not callable(value)
        ):
            found.append(f"{entry.kind}: {f.name} is not callable")
    return found
