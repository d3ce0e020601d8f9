"""docs/numerics.md states manual_bp's value and derivative at each edge case: recompute them.

The rows are measured by docs/numerics_table.py; this test re-evaluates every
row's manual_bp columns and compares them, as formatted strings, with the
committed table, so neither the code nor the document can change alone. With
torch and JAX installed (a parity test), their columns are compared too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "numerics.md"


def _table_module():
    spec = importlib.util.spec_from_file_location("numerics_table", ROOT / "docs" / "numerics_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


NT = _table_module()


def documented() -> dict[str, list[str]]:
    """Row id -> the cells of its line in docs/numerics.md."""
    rows = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_measured_row_is_documented_once() -> None:
    ids = [r.id for r in NT.ROWS]
    assert len(ids) == len(set(ids))
    assert set(documented()) == set(ids), "run `python docs/numerics_table.py` and update docs/numerics.md"


@pytest.mark.parametrize("row", NT.ROWS, ids=lambda r: r.id)
def test_manual_bp_columns_match_the_document(row) -> None:
    cells = documented()[row.id]
    value, derivative = (NT.fmt(v) for v in row.mbp())
    assert (cells[2], cells[3]) == (value, derivative), f"{row.id}: manual_bp now gives {value}, {derivative}"


@pytest.mark.parity
@pytest.mark.parametrize("row", NT.ROWS, ids=lambda r: r.id)
def test_torch_and_jax_columns_match_the_document(row, frameworks) -> None:
    cells = documented()[row.id]
    measured = [NT.fmt(v) for v in (*row.torch(), *row.jax())]
    assert cells[4:8] == measured, f"{row.id}: torch / JAX now give {measured}"
