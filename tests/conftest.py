"""Shared test configuration: hypothesis profiles and the MNIST directory."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# "ci" (the default) is derandomized: the same examples on every run, so CI is repeatable,
# with enough of them to matter and no deadline (timing on a shared machine is noise).
# "dev" explores new random examples each run: HYPOTHESIS_PROFILE=dev pytest.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]

# tapegrad.scipy's ops join the registry, and so every registry-driven test, when scipy is
# installed: imported here, before any test module is collected and parametrized.
if importlib.util.find_spec("scipy") is not None:
    import tapegrad.scipy  # noqa: F401


def mnist_dir() -> Path | None:
    """``$TAPEGRAD_DATA_DIR``, else ``../shared/data/mnist`` beside the repository."""
    env = os.environ.get("TAPEGRAD_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return path.resolve() if path.is_dir() else None


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_dir()
    if path is None:
        pytest.skip("MNIST files not found (set TAPEGRAD_DATA_DIR)")
    return path
