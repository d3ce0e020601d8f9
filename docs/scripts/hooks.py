"""MkDocs hooks (mkdocs.yml ``hooks:``): draw the figures before the build, ship MathJax after it.

Figures: every ``docs/scripts/fig_*.py`` has ``OUTPUTS`` (file names under docs/figures/) and
``main(out_dir)``. A script runs when one of its outputs is missing or older than the script, so
``mkdocs serve`` does not redraw (and reload) forever; ``DOCS_REDRAW=1`` redraws everything. The
figures are build products (docs/figures/ is git-ignored): a fresh clone draws them all.

Pages outside docs/: benchmarks/README.md (and the images it shows) join the site as
``benchmarks/README.md``; a docs page's link ``../benchmarks/...`` is pointed at that copy, and the
copy's ``../docs/X.md`` links at ``../X.md``. The files in the repository stay readable on their own.

MathJax: the site loads ``assets/mathjax/tex-chtml.js``, copied here from the ``mathjax`` package of
the ``django-static-mathjax`` wheel (the docs extra), so pages render math offline.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import time
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.manual_bp")
SCRIPTS = Path(__file__).resolve().parent
FIGURES = SCRIPTS.parent / "figures"
ROOT = SCRIPTS.parents[1]
OUTSIDE = ("benchmarks/README.md",)  # repository pages shown on the site, with the images they show


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"docs_fig_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw_figures(force: bool = False) -> list[str]:
    """Run each stale figure script; returns the names of the scripts that ran."""
    import matplotlib

    matplotlib.use("Agg")
    FIGURES.mkdir(exist_ok=True)
    ran = []
    for script in sorted(SCRIPTS.glob("fig_*.py")):
        module = _load(script)
        outputs = [FIGURES / name for name in module.OUTPUTS]
        stale = force or any(not p.exists() or p.stat().st_mtime < script.stat().st_mtime for p in outputs)
        if not stale:
            continue
        start = time.perf_counter()
        module.main(FIGURES)
        missing = [p.name for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"{script.name} did not write {missing}")
        log.info("drew %s in %.1f s", ", ".join(module.OUTPUTS), time.perf_counter() - start)
        ran.append(script.name)
    return ran


def on_pre_build(config, **kwargs) -> None:
    draw_figures(force=os.environ.get("DOCS_REDRAW") == "1")


def on_post_build(config, **kwargs) -> None:
    import mathjax  # the django-static-mathjax wheel's package: MathJax 3's es5 build

    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    dest = Path(config["site_dir"]) / "assets" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / "tex-chtml.js", dest / "tex-chtml.js")
    fonts = dest / "output" / "chtml" / "fonts" / "woff-v2"
    if not fonts.exists():
        shutil.copytree(es5 / "output" / "chtml" / "fonts" / "woff-v2", fonts)


def undocumented_modules() -> list[str]:
    """manual_bp's and crosscheck's public modules that no API page (docs/api/*.md) names with ``:::``."""
    named = set()
    for page in (SCRIPTS.parent / "api").glob("*.md"):
        named |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    missing = []
    for package in ("manual_bp",):
        for path in sorted((ROOT / package).glob("*.py")):
            module = f"{package}.{path.stem}"
            if not path.stem.startswith("_") and module not in named:
                missing.append(module)
    return missing


def on_files(files, config, **kwargs):
    missing = undocumented_modules()
    body = "\n\n".join(f"::: {m}" for m in missing) if missing else "Every module is on one of the pages above."
    files.append(
        File.generated(
            config,
            "api/more.md",
            content=(
                "# manual_bp: the other modules\n\nModules that no page above places yet; the list is made when the "
                "site is built, so a new module is in the reference from its first commit.\n\n" + body + "\n"
            ),
        )
    )
    for rel in OUTSIDE:
        text = (ROOT / rel).read_text(encoding="utf-8")
        files.append(File.generated(config, rel, content=re.sub(r"\]\(\.\./docs/", "](../", text)))
        folder = Path(rel).parent
        for image in sorted(set(re.findall(r"!\[[^\]]*\]\(([^)\s]+\.(?:png|svg|jpg))\)", text))):
            source = ROOT / folder / image
            if source.exists():  # a missing one is left to the strict build's broken-link warning
                files.append(File.generated(config, (folder / image).as_posix(), abs_src_path=str(source)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri.startswith("benchmarks/"):
        return markdown
    depth = page.file.src_uri.count("/")
    return markdown.replace("](../benchmarks/", "](" + "../" * depth + "benchmarks/")


def on_post_page(output, page, config, **kwargs):
    """The tutorial notebook's Markdown links name the .md pages (they work in Jupyter, beside the files);
    mkdocs-jupyter leaves them as written, so point them at the built pages here."""
    if not page.file.src_uri.endswith(".py"):
        return output
    return re.sub(r'href="((?![a-z]+:)[^"#]*?)\.md(#[^"]*)?"', lambda m: f'href="{m[1]}.html{m[2] or ""}"', output)
