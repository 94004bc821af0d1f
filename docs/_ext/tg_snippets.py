"""Run the code examples of the docs: shared by the Sphinx build and by the test suite.

Nothing here imports Sphinx, so ``conftest.py`` (which needs only the ``test`` extra) can
use it too. Both sides run an example the same way: its own fresh temporary directory as
the working directory (so it may write files such as ``ckpt.npz``), Python warnings
silenced (``np.log(-1.0)`` warns before ``tg.debug_nans`` raises), and a namespace shared
by the examples of one page.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def in_scratch_directory() -> Iterator[Path]:
    """Run the body in a fresh temporary working directory, removed afterwards."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tapegrad-docs-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def run_expecting_error(code: str, namespace: dict, expected: str, filename: str) -> str:
    """Run ``code`` in ``namespace``; return ``"ExceptionType: message"`` of what it raised.

    ``expected`` names the exception type (``"ValueError"``); anything else, or no
    exception at all, raises ``AssertionError`` saying what happened instead.
    """
    compiled = compile(code, filename, "exec")
    try:
        with in_scratch_directory(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compiled, namespace)
    except Exception as exc:
        got = type(exc).__name__
        if got != expected:
            raise AssertionError(
                f"the example should raise {expected} but raised {got}: {exc}"
            ) from exc
        return f"{got}: {exc}"
    raise AssertionError(f"the example should raise {expected} but raised nothing")


def run_script(path: Path) -> tuple[str, dict[str, Any]]:
    """Run the Python script at ``path``; return what it printed and its global variables."""
    out = io.StringIO()
    with in_scratch_directory(), contextlib.redirect_stdout(out):
        namespace = runpy.run_path(str(path), run_name="__main__")
    return out.getvalue(), namespace
