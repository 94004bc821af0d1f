"""Sphinx configuration: MyST Markdown pages, the furo theme, autodoc for the API reference.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (after ``pip install -e
'.[docs]'``). The docs' own extension, ``_ext/tapegrad_docs.py``, runs the example scripts
and writes ``_generated/`` at the start of every build.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # tapegrad itself, installed or not

import tapegrad  # noqa: E402

project = "tapegrad"
author = "The tapegrad developers"
copyright = "2026, The tapegrad developers"
version = release = tapegrad.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "tapegrad_docs",
]

# Maths without a network (issue #10): the built pages must load nothing from a CDN, so
# MathJax comes from PyPI with the `docs` extra. `sphinx-mathjax-offline` ships MathJax 3.2.2,
# sets mathjax_path to "mathjax/tex-chtml.js" and copies MathJax into _build/html/_static/
# when a build succeeds; it needs nothing but pip, and the build stays clean under -W. Not
# sphinxcontrib-katex: without prerendering it loads KaTeX from a CDN, and prerendering needs
# node and the katex npm package at build time. Not imgmath: it needs LaTeX. The extension
# does not declare itself parallel-safe, so `sphinx-build -j N` would warn (and fail under -W);
# build serially. tests/test_docs_offline.py checks that no page loads an external script or
# stylesheet.

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "_examples", "_ext", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# MyST: $...$ and $$...$$ maths, amsmath environments, ::: fences, heading anchors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: signatures as written, members in source order, Google-style docstrings.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_type_aliases = {"ArrayLike": "ArrayLike", "PyTree": "PyTree", "PathLike": "PathLike"}
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"tapegrad {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
pygments_style = "sphinx"
pygments_dark_style = "monokai"
