"""The scripts in docs/_examples/ run (the docs build shows what they print)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
from tg_snippets import run_script  # noqa: E402


@pytest.mark.parametrize("script", sorted((DOCS / "_examples").glob("*.py")), ids=lambda p: p.name)
def test_example_script_prints_a_tape(script: Path) -> None:
    printed, namespace = run_script(script)
    lines = printed.splitlines()
    assert lines[0].startswith("v0 = input")
    assert lines[-1] == f"return v{namespace['tape'].output_node}"
    assert len(namespace["tape"]) == len(lines) - len(namespace["tape"].inputs) - 1
