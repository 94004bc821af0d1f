"""Before/after: tapegrad at another git revision against the working tree, in one process.

A change's cost is measured side by side: the other revision's ``tapegrad/`` is exported
into a temporary directory as the package ``tapegrad_<rev>`` (its imports renamed), both
versions are imported into this process, and each round times every workload once per
version, alternating which goes first. Load on a shared machine then slows both alike, and
the ratio of medians is what is reported.

Workloads:

- ``op chain``: the gradient of the 100-op elementwise chain of ``op_overhead.py``
  (``tanh``, ``* 1.01``, ``+ 0.5``, ``exp``, 25 times) on a 10-element vector: per-op cost.
- ``mlp step B``: ``value_and_grad`` of the MNIST MLP's loss (784-100-100-10 ReLU, float32,
  ``nll``) on a batch of ``B`` random images, plus an SGD update: the training step of
  ``mlp_epoch.py`` without the data loading.

Run from the repository root::

    python benchmarks/compare_revisions.py HEAD~3          # 15 rounds
    python benchmarks/compare_revisions.py v0.1 --rounds 25
    python benchmarks/compare_revisions.py 1174105 --against 6473911   # two revisions
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def import_revision(rev: str, into: Path) -> ModuleType:
    """``tapegrad`` as it was at ``rev``, imported as the package ``tapegrad_<sha>``."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    name = f"tapegrad_{sha}"
    archive = subprocess.run(
        ["git", "archive", rev, "tapegrad"], cwd=REPO, capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "tapegrad").rename(into / name)
    pattern = re.compile(r"\btapegrad(?=[.\s])")
    for path in (into / name).rglob("*.py"):
        source = path.read_text()
        renamed = "\n".join(
            pattern.sub(name, line) if line.lstrip().startswith(("from ", "import ")) else line
            for line in source.splitlines()
        )
        path.write_text(renamed + "\n")
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def op_chain(tg: ModuleType) -> Callable[[], object]:
    def f(x):
        for _ in range(25):
            x = tg.exp(tg.tanh(x) * 1.01 + 0.5)
        return tg.sum(x)

    x = np.linspace(-0.5, 0.5, 10)
    grad = tg.grad(f)
    return lambda: grad(x)


def mlp_step(tg: ModuleType, batch: int) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    params = tg.nn.init_mlp(rng, [784, 100, 100, 10])
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    opt = tg.optim.sgd(0.01)
    state = opt.init(params)

    def loss(p):
        return tg.nn.nll(tg.nn.mlp(p, x), y)

    value_and_grad = tg.value_and_grad(loss)

    def step():
        _, g = value_and_grad(params)
        return opt.update(params, g, state)

    return step


def timed(fn: Callable[[], object], target: float) -> float:
    """Seconds per call, over a batch of calls lasting about ``target`` seconds."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= target:
            return elapsed / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rev", help="the revision to compare the working tree with (e.g. HEAD~3)")
    ap.add_argument("--against", help="compare with this revision instead of the working tree")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--target-ms", type=float, default=100.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        old = import_revision(args.rev, Path(tmp) / "a")
        if args.against:
            new = import_revision(args.against, Path(tmp) / "b")
        else:
            import tapegrad as new
        label = args.against or "working tree"
        versions = {args.rev: old, label: new}
        workloads = {"op chain": op_chain}
        for batch in (32, 128, 512):
            workloads[f"mlp step {batch}"] = lambda tg, b=batch: mlp_step(tg, b)
        calls = {(w, v): make(tg) for w, make in workloads.items() for v, tg in versions.items()}
        times: dict = {key: [] for key in calls}
        order = list(versions)
        for r in range(args.rounds + 1):
            for w in workloads:
                for v in order if r % 2 else reversed(order):
                    t = timed(calls[(w, v)], args.target_ms / 1000)
                    if r:  # round 0 warms up
                        times[(w, v)].append(t)

    print(f"{args.rounds} rounds, median seconds per call; numpy {np.__version__}, one thread")
    print(f"{'workload':<16}{args.rev:>14}{label:>14}{'ratio':>8}")
    for w in workloads:
        before = statistics.median(times[(w, args.rev)])
        after = statistics.median(times[(w, label)])
        scale, unit = (1e6 / 100, "us/op") if w == "op chain" else (1e3, "ms")
        print(
            f"{w:<16}{before * scale:>11.3f} {unit:<2}{after * scale:>11.3f}   "
            f"{after / before:>6.3f}"
        )


if __name__ == "__main__":
    main()
