"""The documentation site seen as a person sees it: every page opened in headless Chromium
(tests/browser.py), every figure decoded, no console message and no failed request (a missing
stylesheet, script or figure). Skips where Chromium or MkDocs is absent (`apt-get install
chromium`; `pip install -e '.[docs]'`)."""

from __future__ import annotations

import shutil

import pytest
from browser import CHROMIUM, check_page
from helpers import REPO
from test_docs import build_site

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    dest = tmp_path_factory.mktemp("site") / "site"
    rc, out = build_site(dest)
    assert rc == 0, out
    return dest


def figures_shown(page) -> int:
    return sum(1 for line in (REPO / "docs" / page).read_text().splitlines() if line.startswith("!["))


@pytest.mark.parametrize("page", sorted(p.name for p in (REPO / "docs").glob("*.md")))
def test_every_page_renders_its_figures_without_console_errors(site, page, tmp_path):
    path = "/" if page == "index.md" else f"/{page[:-3]}/"
    check = check_page(site, path)
    assert check.broken_images == [], check.broken_images
    assert check.console == [], check.console
    assert check.failed_requests == [], check.failed_requests
    # the page's own figures are among its images (the theme adds none of its own)
    assert check.images >= figures_shown(page)
    assert check.text.strip(), "the page shows no text"


def test_the_check_can_fail(site, tmp_path):
    """A page with a missing figure and a script error is caught by each of the three checks."""
    root = tmp_path / "broken"
    shutil.copytree(site, root)
    (root / "broken").mkdir()
    (root / "broken/index.html").write_text(
        '<html><head><link rel="stylesheet" href="/missing.css"></head><body><p>text</p>'
        '<img src="/figures/no-such-figure.png"><script>undefinedFunction();</script></body></html>')
    check = check_page(root, "/broken/")
    assert check.broken_images == ["/figures/no-such-figure.png"]
    assert any("undefinedFunction" in line for line in check.console), check.console
    assert "404 /missing.css" in check.failed_requests


def test_a_screenshot_of_the_results_page(site, tmp_path):
    """A screenshot a person can look at (kept in tmp; DMFCORE_SCREENSHOTS=DIR keeps a copy)."""
    import os

    shot = tmp_path / "results.png"
    check = check_page(site, "/results/", screenshot=shot)
    assert check.screenshot is not None and shot.stat().st_size > 20_000
    keep = os.environ.get("DMFCORE_SCREENSHOTS")
    if keep:
        Path = type(shot)
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "docs_results.png")
