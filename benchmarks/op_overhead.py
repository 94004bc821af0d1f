"""Per-op overhead: the gradient of a chain of 100 elementwise ops on a 10-element vector.

The chain repeats four ops 25 times, ``x = tanh(x); x = x * 1.01; x = x + 0.5; x = exp(x)``,
on a float64 vector of 10 elements, then sums: ``f(x) = sum(chain(x))``. At this size numpy
itself costs well under a microsecond an op, so what is measured is the framework's own
cost of recording an op and of running its VJP. Every column computes the SAME chain:

- ``numpy fwd``: the chain in plain numpy, forward only (no gradient).
- ``numpy fwd+bwd by hand``: the gradient in plain numpy, with the forward values kept and
  the same VJP formulas as tapegrad's rules applied in reverse: the floor for any
  numpy-based tape (numpy's own per-call cost, nothing else).
- ``tapegrad trace``: ``tg.make_tape(f)(x)``: the forward pass recorded on a tape, no
  backward pass (shows how the cost splits between recording and the reverse pass).
- ``tapegrad``: ``tg.grad(f)(x)``: forward, recording and reverse pass.
- ``tapegrad via np.*``: the same, with the chain written with ``np.tanh``/``np.exp``/
  ``np.sum`` on traced values (numpy's dispatch protocols reach tapegrad's ops).
- ``tapegrad jit``: ``tg.jit(tg.grad(f))``: the gradient's tape compiled once, then run as
  straight-line numpy.
- ``autograd``, ``torch`` (eager, one thread, ``torch.autograd.grad``) and ``jax`` (eager
  ``jax.grad``, no ``jit``): the same, each only if it can be imported.

us/op is the time of one call divided by 100 (the final sum and the call's fixed cost are
spread over the 100 ops). Implementations run interleaved: each round times every column
once (a batch of calls lasting about ``--target-ms``), in an order that rotates from round
to round; medians and min-max are over the rounds after one warm-up round.

Run from the repository root::

    python benchmarks/op_overhead.py              # 15 rounds
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _machine import CLOCKS, add_clock_argument, cpu_model, dist_version, git_revision  # noqa: E402

import tapegrad as tg  # noqa: E402

N_OPS = 100
SIZE = 10


def make_chain(tanh: Callable, exp: Callable, total: Callable) -> Callable[[Any], Any]:
    """``x -> total(chain(x))`` with the 100-op chain, written with the given functions."""

    def f(x):
        for _ in range(N_OPS // 4):
            x = tanh(x)
            x = x * 1.01
            x = x + 0.5
            x = exp(x)
        return total(x)

    return f


def numpy_grad_by_hand(x: np.ndarray) -> np.ndarray:
    """The chain's gradient in plain numpy: forward keeping what the VJPs need, then back.

    Uses the same formulas as tapegrad's VJP rules, so it is the floor for any numpy-based
    tape: numpy's own cost of the forward ops and of the VJP arithmetic, nothing else.
    """
    saved = []
    for _ in range(N_OPS // 4):
        x = np.tanh(x)
        saved.append(x)
        x = x * 1.01
        x = x + 0.5
        x = np.exp(x)
        saved.append(x)
    g = np.ones_like(x)  # d sum / dx
    for _ in range(N_OPS // 4):
        g = g * saved.pop()  # exp: g * ans
        # add 0.5: g passes through unchanged
        g = g * 1.01  # multiply by 1.01
        t = saved.pop()
        g = g * (1 - t * t)  # tanh: g * (1 - ans^2)
    return g


def columns() -> tuple[dict[str, Callable[[np.ndarray], Any]], dict[str, str]]:
    """name -> a function of the input vector that computes the column's quantity."""
    cols: dict[str, Callable[[np.ndarray], Any]] = {}
    versions = {"numpy": np.__version__, "tapegrad": f"{tg.__version__} (git {git_revision()})"}
    numpy_f = make_chain(np.tanh, np.exp, np.sum)
    cols["numpy fwd"] = numpy_f
    cols["numpy fwd+bwd by hand"] = numpy_grad_by_hand
    tg_f = make_chain(tg.tanh, tg.exp, tg.sum)
    cols["tapegrad trace"] = tg.make_tape(tg_f)
    cols["tapegrad"] = tg.grad(tg_f)
    # the same chain written with numpy's own functions, reaching tapegrad by dispatch
    cols["tapegrad via np.*"] = tg.grad(make_chain(np.tanh, np.exp, np.sum))
    cols["tapegrad jit"] = tg.jit(tg.grad(tg_f))

    try:
        import autograd
        import autograd.numpy as anp

        cols["autograd"] = autograd.grad(make_chain(anp.tanh, anp.exp, anp.sum))
        versions["autograd"] = dist_version("autograd")
    except ImportError:
        versions["autograd"] = "not importable: column skipped"

    try:
        import torch

        torch.set_num_threads(1)
        with contextlib.suppress(RuntimeError):  # already set once in this process
            torch.set_num_interop_threads(1)
        torch_f = make_chain(torch.tanh, torch.exp, torch.sum)
        leaves: dict[int, Any] = {}

        def torch_grad(x: np.ndarray) -> Any:
            t = leaves.get(id(x))
            if t is None:  # one leaf tensor per input array, made outside the timing
                t = leaves[id(x)] = torch.tensor(x, requires_grad=True)
            return torch.autograd.grad(torch_f(t), t)[0]

        cols["torch"] = torch_grad
        versions["torch"] = f"{torch.__version__} (eager, {torch.get_num_threads()} thread)"
    except ImportError:
        versions["torch"] = "not importable: column skipped"

    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)  # the chain runs in float64 everywhere
        jax_grad = jax.grad(make_chain(jnp.tanh, jnp.exp, jnp.sum))

        def jax_eager(x: np.ndarray) -> Any:
            return jax.block_until_ready(jax_grad(x))

        cols["jax (no jit)"] = jax_eager
        versions["jax"] = f"{jax.__version__} (eager jax.grad, no jit)"
    except ImportError:
        versions["jax"] = "not importable: column skipped"
    return cols, versions


def check_same_gradient(cols: dict[str, Callable], x: np.ndarray) -> None:
    want = np.asarray(cols["tapegrad"](x))
    # the chain's derivative by forward differences of the numpy chain, as a sanity check
    eps = 1e-6
    f = cols["numpy fwd"]
    fd = np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(SIZE)])
    np.testing.assert_allclose(want, fd, rtol=1e-5, atol=1e-8)
    for name, fn in cols.items():
        if name in ("numpy fwd", "tapegrad trace", "tapegrad"):
            continue
        got = np.asarray(fn(x), dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=name)
    print(
        "gradient check: every column agrees with tapegrad to rtol 1e-12, and tapegrad "
        "with central differences to rtol 1e-5"
    )


def calibrate(fn: Callable, x: np.ndarray, target_s: float) -> int:
    """Calls per timed batch so that a batch lasts about ``target_s``."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 20:
            return max(1, round(n * target_s / max(dt, 1e-9)))
        n *= 4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="counted rounds (default 15)")
    ap.add_argument("--target-ms", type=float, default=100.0, help="length of one timed batch")
    add_clock_argument(ap)
    args = ap.parse_args(argv)
    clock = CLOCKS[args.clock]

    cols, versions = columns()
    print(f"# Per-op overhead: gradient of sum(chain of {N_OPS} elementwise ops), float64[{SIZE}]")
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"python  : {platform.python_version()}")
    for name, version in versions.items():
        print(f"{name:<8}: {version}")
    x = np.random.default_rng(0).normal(size=SIZE)
    check_same_gradient(cols, x)

    names = list(cols)
    reps = {name: calibrate(cols[name], x, args.target_ms / 1000) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    print(f"timing ({args.clock} clock): 1 warm-up + {args.rounds} rounds, calls per batch: {reps}")
    sys.stdout.flush()
    for r in range(args.rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn, n = cols[name], reps[name]
            gc.collect()
            t0 = clock()
            for _ in range(n):
                fn(x)
            us_per_op = (clock() - t0) / n / N_OPS * 1e6
            if r > 0:
                times[name].append(us_per_op)

    med = {name: statistics.median(v) for name, v in times.items()}
    print()
    print("| column | us/op (median) | min - max | x numpy fwd | x tapegrad |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        v = times[name]
        print(
            f"| {name} | {med[name]:.2f} | {min(v):.2f} - {max(v):.2f} | "
            f"{med[name] / med['numpy fwd']:.1f} | {med[name] / med['tapegrad']:.2f} |"
        )
    print()
    tg_us = med["tapegrad"]
    trace = med["tapegrad trace"]
    print(
        f"tapegrad: {tg_us:.2f} us/op = {trace:.2f} recording the forward pass + "
        f"{tg_us - trace:.2f} reverse pass (and fixed costs spread over {N_OPS} ops)"
    )
    floor = med["numpy fwd+bwd by hand"]
    print(
        f"numpy floor (same forward and VJP arithmetic by hand): {floor:.2f} us/op; "
        f"tapegrad's own overhead above it: {tg_us - floor:.2f} us/op"
    )
    print(f"target tapegrad <= 5 us/op: {'met' if tg_us <= 5 else 'NOT met'} ({tg_us:.2f})")
    if "torch" in med:
        ratio = tg_us / med["torch"]
        print(f"tapegrad / PyTorch eager = {ratio:.2f}")
        print(
            f"target tapegrad <= 0.3 x PyTorch: {'met' if ratio <= 0.3 else 'NOT met'} "
            f"(0.3 x PyTorch = {0.3 * med['torch']:.2f} us/op; the numpy floor alone is "
            f"{floor / med['torch']:.2f} x PyTorch)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
