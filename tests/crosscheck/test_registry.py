"""The kind registry is complete: every manual_bp layer and loss kind has a crosscheck entry with every
rule, the generic code holds no per-kind branches, and the case generator draws every kind."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import crosscheck
import manual_bp as mbp
from crosscheck import cases
from crosscheck.kinds import LOSSES, REGISTRY, Kind, LossKind
from crosscheck.kinds.entry import problems

PKG = Path(crosscheck.__file__).parent
FLATTENED = {"sequential"}  # a plain Sequential is read as its layers: the spec has no such kind


def test_every_manual_bp_layer_kind_has_an_entry() -> None:
    missing = sorted(set(mbp.Module.registry) - FLATTENED - set(REGISTRY))
    assert not missing, f"layer kinds without a crosscheck entry (add one to crosscheck/kinds/): {missing}"


def test_every_manual_bp_loss_kind_has_an_entry() -> None:
    kinds = set(mbp.Loss.registry)
    assert {"softmax_cross_entropy", "mse", "huber"} <= kinds  # subclasses of subclasses too
    missing = sorted(kinds - set(LOSSES))
    assert not missing, f"loss kinds without a crosscheck entry (crosscheck/kinds/losses.py): {missing}"


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_entry_is_complete(kind: str) -> None:
    assert problems(REGISTRY[kind]) == [], kind


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_every_loss_entry_is_complete(kind: str) -> None:
    assert problems(LOSSES[kind]) == [], kind


@pytest.mark.parametrize("field", Kind.required())
def test_an_incomplete_entry_is_named(field: str) -> None:
    broken = dataclasses.replace(REGISTRY["linear"], **{field: None})
    assert problems(broken) == [f"linear: {field} is not callable"]


def test_a_missing_required_rule_cannot_be_built() -> None:
    with pytest.raises(TypeError, match="scale_bwd"):
        Kind("x", torch_module=print, jax_apply=print, scale_fwd=print, terms=print)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="draw"):
        LossKind("x", torch_loss=print, jax_loss=print, terms=print, grad_terms=print)  # type: ignore[call-arg]


def test_an_unknown_kind_is_a_clear_error() -> None:
    from crosscheck.kinds import lookup

    with pytest.raises(NotImplementedError, match=r"no entry for layer kind 'hardtanh'.*adding-a-layer"):
        lookup("hardtanh")


GENERIC = [
    "reference/torch_ref.py",
    "reference/jax_ref.py",
    "reference/read.py",
    "tolerance/scales.py",
    "tolerance/lengths.py",
    "tolerance/bounds.py",
    "cases/hazards.py",
    "run/compare.py",
    "run/report.py",
]


def _kind_comparisons(source: str) -> list[str]:
    """Every comparison of a ``.kind`` with a layer kind's name (``x.kind == "relu"``, ``kind in (...)``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(isinstance(o, ast.Attribute) and o.attr == "kind" for o in operands):
            continue
        names = {c.value for o in operands for c in ast.walk(o) if isinstance(c, ast.Constant)}
        if names & set(REGISTRY):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("module", GENERIC)
def test_generic_code_has_no_per_kind_branches(module: str) -> None:
    assert _kind_comparisons((PKG / module).read_text()) == [], module


def test_the_branch_finder_finds_branches() -> None:
    assert _kind_comparisons('if layer.kind == "relu":\n    pass') == ["layer.kind == 'relu'"]
    assert _kind_comparisons('ok = m.kind in ("conv2d", "x")') == ["m.kind in ('conv2d', 'x')"]
    assert _kind_comparisons('if layer.kind == "sequential":\n    pass') == []


def test_the_default_sweep_draws_every_kind() -> None:
    """Every registered kind appears in the first 300 case ids (the default sweep runs 500)."""
    seen = set()
    for i in range(300):
        seen |= {m.kind for m in cases.case(i).model.modules()}
    assert not set(REGISTRY) - seen, f"kinds no case draws: {sorted(set(REGISTRY) - seen)}"
