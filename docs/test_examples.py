"""The scripts in docs/_examples/ run (the docs build shows what they print)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
from tg_snippets import run_script  # noqa: E402

SCRIPTS = sorted((DOCS / "_examples").glob("*.py"))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if "tape" in s.stem], ids=lambda p: p.name)
def test_example_script_prints_a_tape(script: Path) -> None:
    printed, namespace = run_script(script)
    lines = printed.splitlines()
    assert lines[0].startswith("v0 = input")
    assert lines[-1] == f"return v{namespace['tape'].output_node}"
    assert len(namespace["tape"]) == len(lines) - len(namespace["tape"].inputs) - 1


def test_the_jit_example_prints_the_program_it_compiled() -> None:
    printed, namespace = run_script(DOCS / "_examples" / "jit_step.py")
    lines = printed.splitlines()
    program = namespace["program"]
    assert (
        lines[0]
        == f"# {program.records} records traced, {program.lines} operations after the passes"
    )
    assert "\n".join(lines[1:]).rstrip() == program.source.rstrip()
    code = "\n".join(lines[1:]).rstrip().splitlines()
    assert code[0].startswith("def train_step(v0, ") and code[-1].startswith("    return (")
