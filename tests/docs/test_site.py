"""The documentation site builds strictly and its math renders in a real browser.

The site is the one at ``MANUAL_BP_SITE`` (CI builds it once, ``.ci/run``) or one built here with
``mkdocs build --strict``. Headless Chromium loads the seed derivation page from disk and dumps the
DOM after its scripts ran: MathJax's output elements must be there and no raw ``$$`` or ``\\[`` left.
Without mkdocs or Chromium the test skips with the reason; under CI (``CI=true``) it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {what} (the docs extra and chromium are installed by .ci/run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("MANUAL_BP_SITE")
    if built:
        path = Path(built)
        if not (path / "derivations" / "seed.html").exists():
            pytest.fail(f"MANUAL_BP_SITE={built} holds no built site (derivations/seed.html is missing)")
        return path
    try:
        import mathjax  # noqa: F401  (the django-static-mathjax wheel)
        import mkdocs  # noqa: F401
    except ImportError as err:
        _missing(f"the docs extra is not installed ({err}): pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _dump_dom(page: Path) -> str:
    browser = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    if browser is None:
        _missing("no headless Chromium on PATH (apt-get install chromium)")
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_seed_derivation_math_renders(site: Path) -> None:
    dom = _dump_dom(site / "derivations" / "seed.html")
    body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)  # only what the reader sees
    rendered = re.findall(r"<mjx-container\b[^>]*>", body)
    displayed = [tag for tag in rendered if 'display="true"' in tag]
    assert len(rendered) >= 20, f"MathJax rendered {len(rendered)} formulas on the seed page"
    assert len(displayed) >= 5, f"MathJax rendered {len(displayed)} displayed formulas on the seed page"
    assert "$$" not in body, "raw $$ left on the page"
    assert "\\[" not in re.sub(r"<mjx-assistive-mml\b.*?</mjx-assistive-mml>", "", body, flags=re.S)
    assert "<mjx-merror" not in body, "MathJax reported a TeX error"


def test_seed_page_includes_the_source(site: Path) -> None:
    """The code on a derivation page is the source's, included at build time."""
    html = (site / "derivations" / "seed.html").read_text(encoding="utf-8")
    assert "softmax_cross_entropy_backward" in html
    assert "--8&lt;--" not in html and "--8<--" not in html, "a snippet marker leaked onto the page"


def test_every_derivation_page_and_figure_is_built(site: Path) -> None:
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
        assert (site / "derivations" / f"{name}.html").exists(), name
    for fig in ("seed_graph.png", "seed_training.png", "report_errors.png", "fd_cost.png"):
        assert (site / "figures" / fig).stat().st_size > 10_000, fig
    tutorial = (site / "tutorial" / "seed_by_hand.html").read_text(encoding="utf-8")
    assert "<img" in tutorial, "the executed tutorial shows no figure"
    assert not re.findall(r'href="[^"]*\.md[#"]', tutorial), "a link in the tutorial points at a .md file"
    assert (site / "assets" / "mathjax" / "tex-chtml.js").exists()
