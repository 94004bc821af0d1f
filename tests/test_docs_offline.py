"""The built docs load no script and no stylesheet from another host (issue #10).

The pages must work offline, maths included: MathJax is bundled by the ``docs`` extra
(``sphinx-mathjax-offline``, see ``docs/conf.py``) instead of coming from a CDN. This test
builds the docs into a temporary directory (about 10 s) and reads every page's ``<script
src>`` and ``<link rel="stylesheet" href>``. It is skipped where Sphinx is not installed; CI
installs the ``docs`` extra, so it runs there.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


class _Resources(HTMLParser):
    """Collects the URLs of a page's scripts and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and "stylesheet" in a.get("rel", "").lower().split() and a.get("href"):
            self.urls.append(a["href"])


def _resources(page: Path) -> list[str]:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def _is_external(url: str) -> bool:
    url = url.strip().lower()
    return url.startswith(("http:", "https:", "//"))


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML docs, built as CI builds them (warnings are errors)."""
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("Sphinx is not installed: pip install -e '.[docs]' to build the docs")
    out = tmp_path_factory.mktemp("docs_html")
    cmd = [sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(DOCS), str(out)]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"the docs build failed:\n{result.stdout}{result.stderr}"
    return out


@pytest.fixture(scope="module")
def resources(built_docs: Path) -> dict[Path, list[str]]:
    """Each built page and the URLs of the scripts and stylesheets it loads."""
    pages = sorted(built_docs.rglob("*.html"))
    assert pages, f"the build wrote no HTML page into {built_docs}"
    return {page: _resources(page) for page in pages}


def test_no_page_loads_an_external_script_or_stylesheet(
    built_docs: Path, resources: dict[Path, list[str]]
) -> None:
    offenders = [
        f"{page.relative_to(built_docs)}: {url}"
        for page, urls in resources.items()
        for url in urls
        if _is_external(url)
    ]
    assert not offenders, "pages load from another host:\n" + "\n".join(offenders)


def test_maths_pages_load_a_local_mathjax(
    built_docs: Path, resources: dict[Path, list[str]]
) -> None:
    found = []
    for page, urls in resources.items():
        for url in urls:
            name = urlsplit(url).path
            if not _is_external(url) and ("mathjax" in name.lower() or "katex" in name.lower()):
                target = (page.parent / name).resolve()
                assert target.is_file(), f"{page.relative_to(built_docs)} loads {url}: no file"
                found.append(page.name)
    assert "maths.html" in found, f"maths.html loads no local MathJax or KaTeX (found: {found})"
