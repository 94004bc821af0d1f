"""What both benchmarks share: their clock option, and what they print about the machine."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path

#: ``--clock`` choices: wall time, or the CPU time of this process.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_clock_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: time.perf_counter (default); cpu: time.process_time, the CPU time of "
        "this process (less sensitive to other jobs on a shared machine)",
    )


def dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def git_revision() -> str:
    """The repository's commit, marked ``+changes`` when tapegrad/ has uncommitted edits."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "tapegrad"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" +changes" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
