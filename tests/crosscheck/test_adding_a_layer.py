"""docs/adding-a-layer.md, followed to the letter: its code blocks run in order and must pass.

The page adds a kind (the pair, the class, the crosscheck entry) and verifies it; the kind is removed
from both registries afterwards, so no other test sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import manual_bp as mbp
from crosscheck.kinds import REGISTRY

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding-a-layer.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_has_its_three_steps() -> None:
    code = blocks()
    assert len(code) == 3, f"{GUIDE}: expected the manual_bp, crosscheck and test blocks, found {len(code)}"
    assert "class Softsign(Module)" in code[0] and "Kind(" in code[1] and "compare_case" in code[2]


@pytest.mark.parity
def test_following_the_guide_adds_a_verified_kind(frameworks: tuple[str, ...]) -> None:
    namespace: dict[str, object] = {"__name__": "adding_a_layer_guide"}
    try:
        for i, code in enumerate(blocks()):
            exec(compile(code, f"{GUIDE}:block{i}", "exec"), namespace)
        assert "softsign" in mbp.Module.registry and "softsign" in REGISTRY
    finally:
        mbp.Module.registry.pop("softsign", None)
        REGISTRY.pop("softsign", None)


@pytest.mark.parity
def test_the_guide_fails_when_its_backward_is_wrong(frameworks: tuple[str, ...]) -> None:
    """The guide's own checks can fail: with dx = dout / (1 + |x|) (one factor short) they do."""
    code = blocks()
    wrong = code[0].replace("return dout / (d * d)", "return dout / d")
    assert wrong != code[0]
    namespace: dict[str, object] = {"__name__": "adding_a_layer_guide_wrong"}
    try:
        with pytest.raises(AssertionError, match="MISMATCH"):
            for i, block in enumerate((wrong, *code[1:])):
                exec(compile(block, f"{GUIDE}:block{i}", "exec"), namespace)
    finally:
        mbp.Module.registry.pop("softsign", None)
        REGISTRY.pop("softsign", None)
