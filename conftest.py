"""Run the examples of README.md, docs/ and tapegrad's docstrings; compare what they print.

Plain ``pytest`` collects these files (``testpaths`` in pyproject.toml). The ``>>>``
examples in the docstrings of ``tapegrad/*.py`` are doctests. In each Markdown file, in
order and sharing one namespace (and one temporary working directory):

- a ```` ```python ```` block is run; what it prints is kept;
- an ```` ```output ```` block must equal what the ``python`` block before it printed
  (``...`` matches anything, as in doctest), so a stale output fails the test;
- a ```` ```python ```` or ```` ```pycon ```` block starting with ``>>>`` is a doctest;
- a ```` ```{tg-error} ```` block must raise the exception its ``:raises:`` option names
  (the docs build runs the same code and shows the real message);
- ``% skip: next`` skips the next example.
"""

from __future__ import annotations

import contextlib
import difflib
import doctest
import io
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.doctest import DocTestEvaluator
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.abstract import DocTestStringParser
from sybil.parsers.myst import CodeBlockParser, SkipParser
from sybil.parsers.myst.lexers import DirectiveLexer
from sybil.parsers.rest import DocTestParser

sys.path.insert(0, str(Path(__file__).resolve().parent / "docs" / "_ext"))
from tg_snippets import run_expecting_error

_STDOUT = "__printed__"  # namespace key: what the last python block printed
_DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_run_python = PythonEvaluator()


def _evaluate_python(example: Example) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _run_python(example)
    example.namespace[_STDOUT] = printed.getvalue()


def _evaluate_output(example: Example) -> None:
    if _STDOUT not in example.namespace:
        raise AssertionError("an output block must follow a python block")
    got = _normalise(example.namespace.pop(_STDOUT))
    want = _normalise(str(example.parsed))
    if not doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS):
        diff = difflib.unified_diff(
            want.splitlines(), got.splitlines(), "shown in the docs", "printed", lineterm=""
        )
        raise AssertionError("the example's output has changed:\n" + "\n".join(diff))


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def _evaluate_error(example: Example) -> None:
    options = example.region.lexemes.get("options", {})
    run_expecting_error(
        str(example.parsed),
        example.namespace,
        options.get("raises", "Exception"),
        f"{example.path}:{example.line}",
    )


class PythonBlockParser:
    """```` ```python ```` / ```` ```pycon ```` blocks: doctests if they start with ``>>>``,
    else run with their printed output kept for the next ```` ```output ```` block."""

    def __init__(self) -> None:
        self.blocks = [CodeBlockParser(language) for language in ("python", "pycon")]
        self.doctests = DocTestStringParser(DocTestEvaluator(_DOCTEST_FLAGS))

    def __call__(self, document: Document) -> Iterable[Region]:
        regions = [r for blocks in self.blocks for r in blocks(document)]
        for region in sorted(regions, key=lambda r: r.start):
            source = region.parsed
            if source.lstrip().startswith(">>>"):
                for doctest_region in self.doctests(source, document.path):
                    doctest_region.adjust(region, source)
                    yield doctest_region
            else:
                region.evaluator = _evaluate_python
                yield region


def _error_blocks(document: Document) -> Iterable[Region]:
    for region in DirectiveLexer(directive="tg-error")(document):
        region.parsed = region.lexemes["source"]
        region.evaluator = _evaluate_error
        yield region


def _setup(namespace: dict) -> None:
    """Each file runs in its own temporary directory (examples may write checkpoints)."""
    namespace["__tmpdir__"] = tempfile.TemporaryDirectory(prefix="tapegrad-doctest-")
    namespace["__oldcwd__"] = os.getcwd()
    os.chdir(namespace["__tmpdir__"].name)


def _teardown(namespace: dict) -> None:
    os.chdir(namespace["__oldcwd__"])
    namespace["__tmpdir__"].cleanup()


markdown = Sybil(
    parsers=[
        PythonBlockParser(),
        CodeBlockParser("output", _evaluate_output),
        _error_blocks,
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md", "docs/*/*.md"],
    excludes=["docs/_build/*", "docs/_generated/*", "examples/*", "benchmarks/*", "tests/*"],
    setup=_setup,
    teardown=_teardown,
)

# The ``>>>`` examples in tapegrad's docstrings, which the API reference shows.
docstrings = Sybil(
    parsers=[DocTestParser(optionflags=_DOCTEST_FLAGS)],
    patterns=["tapegrad/*.py"],
    setup=_setup,
    teardown=_teardown,
)

pytest_collect_file = (markdown + docstrings).pytest()
