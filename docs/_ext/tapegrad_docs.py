"""The docs' own Sphinx extension: files generated at build time, and real error messages.

- ``builder-inited``: runs the scripts in ``docs/_examples/`` and writes what they print to
  ``docs/_generated/`` (the tapes shown on the "How it works" page), with the MLP tape as
  Graphviz DOT, rendered to SVG by ``dot -Tsvg`` when Graphviz is installed. Set
  ``TAPEGRAD_DOCS_NO_GRAPHVIZ=1`` to build as if it were not.
- The ``tg-error`` directive runs its content when the page is read and shows the code
  with the message of the exception it raised (``:raises:`` names the expected type; any
  other outcome fails the build). The test suite runs the same blocks (``conftest.py``).
- ``env-check-consistency``: every public name (``__all__``) of tapegrad and of its public
  submodules must be documented somewhere, or the build warns (an error under ``-W``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any

import numpy as np
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from tg_snippets import run_expecting_error, run_script

import tapegrad as tg

logger = logging.getLogger(__name__)

#: Modules whose ``__all__`` the API reference must cover.
API_MODULES = (
    "tapegrad",
    "nn",
    "optim",
    "random",
    "mnist",
    "datasets",
    "checkpoint",
    "testing",
    "pytree",
)


# ------------------------------------------------------------------------ generated files


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds it (keeps incremental builds quiet)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _graph_page(out: Path, dot_source: str) -> str:
    """The MyST snippet that shows the tape's graph: an SVG if ``dot`` can draw it, else DOT."""
    dot = None if os.environ.get("TAPEGRAD_DOCS_NO_GRAPHVIZ") else shutil.which("dot")
    svg = out / "mlp_tape.svg"
    if dot is not None:
        result = subprocess.run(
            [dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            _write_if_changed(svg, result.stdout)
            return (
                "```{image} /_generated/mlp_tape.svg\n"
                ":alt: the tape of the two-layer MLP drawn as a graph\n"
                ":align: center\n"
                "```\n"
            )
        logger.warning("dot -Tsvg failed, showing the DOT source instead: %s", result.stderr)
    svg.unlink(missing_ok=True)
    return (
        "Graphviz was not installed where these pages were built, so here is the graph's DOT\n"
        "source instead. Save it as `tape.dot` and run `dot -Tsvg tape.dot -o tape.svg` to\n"
        "draw it (or print `tape.to_dot()` yourself).\n\n"
        "```{literalinclude} /_generated/mlp_tape.dot\n:language: dot\n```\n"
    )


def generate(app: Sphinx) -> None:
    """Run ``docs/_examples/*.py``; write their output and the MLP graph to ``_generated``."""
    src = Path(app.srcdir)
    out = src / "_generated"
    out.mkdir(exist_ok=True)
    namespaces = {}
    for script in sorted((src / "_examples").glob("*.py")):
        printed, namespaces[script.stem] = run_script(script)
        _write_if_changed(out / f"{script.stem}.txt", printed)
    _write_if_changed(out / "op_table.md", op_table())
    dot_source = namespaces["mlp_tape"]["tape"].to_dot() + "\n"
    _write_if_changed(out / "mlp_tape.dot", dot_source)
    _write_if_changed(out / "mlp_tape_graph.md", _graph_page(out, dot_source))


FAMILIES = {
    "core": "Arithmetic, sums and moving values",
    "elementwise": "Elementwise functions",
    "reductions": "Reductions and scans",
    "shaping": "Reshaping, joining and splitting",
    "arranging": "Rearranging and picking",
    "products": "Products",
    "linalg": "Linear algebra (numpy.linalg)",
    "convolution": "Convolution and pooling (tapegrad.nn)",
    "scipy.special": "Special functions (tapegrad.scipy.special)",
    "scipy.stats": "Distributions (tapegrad.scipy.stats)",
    "scipy.linalg": "Triangular and Cholesky solves (tapegrad.scipy.linalg)",
    "layers": "Layers (tapegrad only)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def op_table() -> str:
    """Every op of the registry by family: its numpy name, method, derivative, convention."""
    from tapegrad.ops import REGISTRY

    with contextlib.suppress(ImportError):  # scipy's ops register when scipy is there
        import tapegrad.scipy  # noqa: F401

    by_family: dict[str, list] = {}
    for spec in REGISTRY.values():
        by_family.setdefault(spec.family, []).append(spec)
    lines = []
    for family, title in FAMILIES.items():
        specs = sorted(by_family.pop(family, []), key=lambda s: s.name)
        if not specs:
            continue
        lines += [
            f"### {title}",
            "",
            "| function | numpy / scipy | method | derivative | at kinks and ties |",
        ]
        lines.append("|---|---|---|---|---|")
        for spec in specs:
            numpy_name = ""
            if spec.family.startswith("scipy."):
                numpy_name = f"`scipy.{spec.name}`"
            elif spec.numpy is not None:
                numpy_name = f"`np.{spec.numpy.__name__}`"
            method = f"`x.{spec.method}()`" if spec.method else ""
            derivative = _cell(spec.derivative.removeprefix("VJP:").strip())
            lines.append(
                f"| `{spec.name}` | {numpy_name} | {method} | {derivative} | "
                f"{_cell(spec.convention)} |"
            )
        lines.append("")
    if by_family:
        raise ValueError(f"op families without a docs title: {sorted(by_family)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ tg-error directive


class ErrorExample(SphinxDirective):
    """```{tg-error} + ``:raises: Type`` + code: the code, then the message it really raises.

    The examples of one page share a namespace that starts with ``np`` and ``tg``.
    """

    has_content = True
    required_arguments = 0
    option_spec = {"raises": directives.unchanged_required}  # noqa: RUF012 (docutils API)

    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        expected = self.options.get("raises", "Exception")
        namespace = self.env.temp_data.setdefault("tg_error_namespace", {"np": np, "tg": tg})
        source, line = self.get_source_info()
        for module_file in Path(tg.__file__).parent.glob("*.py"):
            self.env.note_dependency(str(module_file))  # new messages: re-read the page
        try:
            message = run_expecting_error(code, namespace, expected, f"{source}:{line}")
        except AssertionError as exc:
            logger.warning("tg-error example: %s", exc, location=self.get_location())
            message = f"(the docs build expected {expected} here: {exc})"
        block = nodes.literal_block(code, code, language="python")
        shown = nodes.literal_block(message, message, language="text", classes=["tg-error"])
        container = nodes.container("", block, shown, classes=["tg-error-example"])
        self.set_source_info(container)
        return [container]


# ------------------------------------------------------------------------ API coverage


def _public_names() -> list[tuple[str, str, Any]]:
    """``(module, name, object)`` for each public non-module name the reference must cover."""
    out = []
    for short in API_MODULES:
        module = tg if short == "tapegrad" else getattr(tg, short)
        for name in module.__all__:
            obj = getattr(module, name)
            if not isinstance(obj, types.ModuleType):
                out.append((module.__name__, name, obj))
    return out


def _resolve(dotted: str) -> Any:
    """The object a documented name such as ``tapegrad.nn.mlp`` or ``tapegrad.tape.Tape.to_dot``
    refers to, or ``None`` if it cannot be imported."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def check_api_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn for each name of an ``__all__`` whose object no autodoc entry documents.

    Each object is documented once, where it is defined (``tg.grad`` as
    ``tapegrad.transforms.grad``), so a name counts as covered when the object it
    refers to is documented under any name.
    """
    documented = {id(_resolve(name)) for name in env.get_domain("py").objects}
    for module, name, obj in _public_names():
        if id(obj) not in documented:
            logger.warning(
                "%s.%s is public (in %s.__all__) but the API reference does not document it",
                module,
                name,
                module,
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("env-check-consistency", check_api_coverage)
    app.add_directive("tg-error", ErrorExample)
    app.add_css_file("tapegrad.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
