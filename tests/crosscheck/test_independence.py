"""No circular verification: the PyTorch and JAX references never reach manual_bp's math.

The references (the drivers and every kind entry, whose torch and JAX side sits in the
entry) may import only the frameworks, NumPy, the standard library and crosscheck's
plain-data modules. Checked twice: statically (every import
statement and every dynamic import call in their source) and dynamically
(importing them in a fresh interpreter loads no manual_bp module).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import crosscheck

PKG = Path(crosscheck.__file__).parent
# the drivers, and every kind entry (its torch and JAX side sits beside its other rules)
REFERENCES = [
    "reference/torch_ref.py",
    "reference/jax_ref.py",
    "reference/torch_train.py",
    "reference/jax_train.py",
    "reference/exact.py",
    *sorted(p.relative_to(PKG).as_posix() for p in (PKG / "kinds").glob("*.py")),
]
ALLOWED_ROOTS = {
    "__future__",
    "typing",
    "math",
    "dataclasses",
    "functools",
    "collections",
    "itertools",
    "numpy",
    "torch",
    "jax",
    "optax",
    "mpmath",
}
ALLOWED_CROSSCHECK = {
    "crosscheck.spec",
    "crosscheck.reference.optim_spec",
    "crosscheck.reference.torch_ref",
    "crosscheck.reference.jax_ref",
    "crosscheck.kinds",
    *(f"crosscheck.kinds.{p.stem}" for p in (PKG / "kinds").glob("*.py")),
}


def forbidden_imports(source: str) -> list[str]:
    """Every import in ``source`` outside the allowed set (static, including importlib/__import__ calls)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            # `from crosscheck.reference import torch_ref` is judged by the submodule it names
            names = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in ALLOWED_CROSSCHECK or module == "crosscheck" else module
                for a in node.names
            ]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            names += ["<dynamic>"] if not names else []
        else:
            continue
        for name in names:
            if name in ALLOWED_CROSSCHECK or name.split(".")[0] in ALLOWED_ROOTS:
                continue
            bad.append(name)
    return bad


@pytest.mark.parametrize("module", REFERENCES)
def test_reference_imports_only_frameworks(module):
    path = PKG / module
    if not path.exists():
        pytest.fail(f"{path} is missing")
    assert forbidden_imports(path.read_text()) == []


def test_allowed_crosscheck_modules_are_plain_data():
    for name in ("spec.py", "reference/optim_spec.py"):
        path = PKG / name
        if path.exists():
            assert forbidden_imports(path.read_text()) == [], name


@pytest.mark.parametrize(
    "source",
    [
        "import manual_bp",
        "from manual_bp.functional import relu_backward",
        "from manual_bp import functional as F",
        "import manual_bp.losses as L",
        "from .. import manual_bp",
        "from crosscheck import compare",  # compare runs manual_bp itself
        "from crosscheck.run import compare",
        "from crosscheck.cases import hazards",  # the case generator builds manual_bp layers
        "import importlib\nimportlib.import_module('manual_bp.functional')",
        "__import__('manual_bp')",
        "def f():\n    from manual_bp.layers import Linear",
    ],
)
def test_the_checker_catches_forbidden_imports(source):
    assert forbidden_imports(source), source


def test_importing_the_references_loads_no_manual_bp(frameworks):
    code = (
        "import sys\n"
        "import crosscheck.kinds, crosscheck.reference.torch_ref, crosscheck.reference.jax_ref\n"
        "import crosscheck.reference.torch_train, crosscheck.reference.jax_train, crosscheck.reference.exact\n"
        "bad = sorted(m for m in sys.modules if m == 'manual_bp' or m.startswith('manual_bp.'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent)
    assert out.returncode == 0, out.stdout + out.stderr
