"""The code on the derivation pages is included from the source by section markers: they must resolve.

A page includes a pair with ``--8<-- "manual_bp/<module>.py:<name>"`` (pymdownx.snippets); the source
holds ``# --8<-- [start:<name>]`` and ``# --8<-- [end:<name>]`` around it. This test needs neither
mkdocs nor a browser, so an edit to a source file that drops or unbalances a marker fails the plain
test run, not only the docs build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*--8<--\s+"([^":]+):([^"]+)"\s*$', re.M)
MARKER = re.compile(r"^# --8<-- \[(start|end):([\w-]+)\]$", re.M)


def includes() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for path, name in INCLUDE.findall(page.read_text(encoding="utf-8")):
            found.append((page.relative_to(ROOT).as_posix(), path, name))
    return found


def test_the_derivation_pages_include_code() -> None:
    pages = {page for page, _, _ in includes()}
    for name in (
        "seed",
        "linear",
        "activations",
        "norms",
        "softmax-and-losses",
        "conv-and-pooling",
        "attention",
        "recurrent",
    ):
        assert f"docs/derivations/{name}.md" in pages, f"docs/derivations/{name}.md includes no source"


@pytest.mark.parametrize(("page", "path", "name"), includes(), ids=lambda v: str(v))
def test_each_included_section_exists_once_and_holds_a_pair(page: str, path: str, name: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    markers = [(m.start(), m[1]) for m in MARKER.finditer(source) if m[2] == name]
    kinds = [kind for _, kind in markers]
    assert kinds == ["start", "end"], f"{page}: {path} marks section {name!r} {kinds}, want one start then one end"
    body = source[markers[0][0] : markers[1][0]]
    assert re.search(r"^def \w+\(", body, re.M), f"{path}:{name} holds no function"
    forwards = re.findall(r"^def ([a-z]\w*_forward)\(", body, re.M)
    assert len(forwards) <= 1, f"{path}:{name} holds several pairs {forwards}: a marker is out of place"


@pytest.mark.parametrize("path", sorted({p.relative_to(ROOT).as_posix() for p in (ROOT / "manual_bp").glob("*.py")}))
def test_every_marker_in_the_source_is_balanced(path: str) -> None:
    open_sections: list[str] = []
    for m in MARKER.finditer((ROOT / path).read_text(encoding="utf-8")):
        kind, name = m[1], m[2]
        if kind == "start":
            assert name not in open_sections, f"{path}: section {name!r} started twice"
            open_sections.append(name)
        else:
            assert open_sections and open_sections[-1] == name, f"{path}: end of {name!r} without its start"
            open_sections.pop()
    assert not open_sections, f"{path}: sections {open_sections} never end"
