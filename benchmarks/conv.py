"""conv2d forward + backward on the MNIST CNN's two convolutions, one thread.

The shapes of ``examples/mnist_cnn.py``'s convolutions with the example's defaults
(``--channels 16 32``, batch 128; float32, 5x5 kernels, padding 2, so each keeps its image
size):

- ``conv1``: x ``(B, 1, 28, 28)``, w ``(16, 1, 5, 5)``: the input is the data, so the
  backward pass computes the gradients of ``w`` and ``b`` only;
- ``conv2``: x ``(B, 16, 14, 14)``, w ``(32, 16, 5, 5)``: gradients of ``x``, ``w`` and ``b``.

``--channels C1 C2`` and ``--batch B`` time the example's other widths and batch sizes
(``--channels 32 64``: the TensorFlow tutorial's network, which the example also describes).

Every column computes the same thing: the output ``y = conv2d(x, w, b)`` and the
cotangents of the differentiated inputs for a fixed output cotangent ``u``:

- ``tapegrad``: ``out, pullback = tg.vjp(f, ...)`` then ``pullback(u)``, with
  ``f = tg.nn.conv2d(x, w, b, padding=2)``.
- ``torch``: PyTorch eager on CPU, one thread: ``F.conv2d`` then ``torch.autograd.grad``
  with ``u`` (leaf tensors made outside the timing).
- ``direct einsum``: the textbook numpy version: ``sliding_window_view`` of the padded
  input and ``np.einsum(..., optimize=True)`` for ``y`` and ``dw``; ``dx`` as the
  correlation of the padded cotangent's windows with the flipped kernel.
- ``... fwd`` columns: the forward pass alone (tapegrad on plain arrays, torch under
  ``no_grad``, the einsum), to show how each total splits.

Implementations run interleaved: each round times every column once (one call, or a few
for the small layer), in an order that rotates from round to round; medians and min-max
are over the rounds after one warm-up round. The load average of the machine is printed
before and after: on a shared machine the ratios, measured side by side, are more
trustworthy than the absolute times.

Run from the repository root::

    python benchmarks/conv.py                  # channels 16 32, batch 128, 7 rounds
    python benchmarks/conv.py --batch 64 --rounds 11
    python benchmarks/conv.py --channels 32 64
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _machine import CLOCKS, add_clock_argument, cpu_model, git_revision  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

import tapegrad as tg  # noqa: E402

#: The example's defaults: the output channels of its two convolutions, its batch size.
CHANNELS = (16, 32)
BATCH = 128
K = 5
PAD = 2


def layers(c1: int, c2: int) -> dict[str, tuple[int, int, int, bool]]:
    """name -> (input channels, output channels, image side, whether x is differentiated)
    for the example's convolutions with ``--channels c1 c2``."""
    return {"conv1": (1, c1, 28, False), "conv2": (c1, c2, 14, True)}


def direct(x: np.ndarray, w: np.ndarray, b: np.ndarray, u: np.ndarray, need_x: bool) -> tuple:
    """``(y, dw, db, dx)`` with ``sliding_window_view`` and ``np.einsum`` (``dx`` None when
    not needed): what one writes first in numpy."""
    xp = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    win = sliding_window_view(xp, (K, K), axis=(2, 3))  # (N, C, H, W, K, K)
    y = np.einsum("nchwpq,ocpq->nohw", win, w, optimize=True) + b[:, None, None]
    dw = np.einsum("nchwpq,nohw->ocpq", win, u, optimize=True)
    db = u.sum(axis=(0, 2, 3))
    dx = None
    if need_x:
        edge = K - 1 - PAD
        up = np.pad(u, ((0, 0), (0, 0), (edge, edge), (edge, edge)))
        uwin = sliding_window_view(up, (K, K), axis=(2, 3))  # (N, O, H, W, K, K)
        dx = np.einsum("nohwpq,ocpq->nchw", uwin, w[:, :, ::-1, ::-1], optimize=True)
    return y, dw, db, dx


def direct_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    win = sliding_window_view(xp, (K, K), axis=(2, 3))
    return np.einsum("nchwpq,ocpq->nohw", win, w, optimize=True) + b[:, None, None]


def columns(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, u: np.ndarray, need_x: bool
) -> tuple[dict[str, Callable[[], Any]], str]:
    """name -> a function of no argument computing the column's quantity; torch's version."""

    def tapegrad() -> Any:
        if need_x:
            f = lambda x, w, b: tg.nn.conv2d(x, w, b, padding=PAD)  # noqa: E731
            y, pullback = tg.vjp(f, x, w, b)
        else:
            f = lambda w, b: tg.nn.conv2d(x, w, b, padding=PAD)  # noqa: E731
            y, pullback = tg.vjp(f, w, b)
        return (y, *pullback(u))

    cols: dict[str, Callable[[], Any]] = {
        "tapegrad": tapegrad,
        "direct einsum": lambda: direct(x, w, b, u, need_x),
        "tapegrad fwd": lambda: tg.nn.conv2d(x, w, b, padding=PAD),
        "direct einsum fwd": lambda: direct_forward(x, w, b),
    }
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(1)
        with contextlib.suppress(RuntimeError):  # already set once in this process
            torch.set_num_interop_threads(1)
        xt = torch.from_numpy(x).requires_grad_(need_x)
        wt = torch.from_numpy(w).requires_grad_(True)
        bt = torch.from_numpy(b).requires_grad_(True)
        ut = torch.from_numpy(u)
        leaves = [xt, wt, bt] if need_x else [wt, bt]

        def torch_grad() -> Any:
            y = F.conv2d(xt, wt, bt, padding=PAD)
            return (y, *torch.autograd.grad(y, leaves, ut))

        def torch_forward() -> Any:
            with torch.no_grad():
                return F.conv2d(xt, wt, bt, padding=PAD)

        cols["torch"] = torch_grad
        cols["torch fwd"] = torch_forward
        version = f"{torch.__version__} (eager, {torch.get_num_threads()} thread)"
    except ImportError:
        version = "not importable: columns skipped"
    return cols, version


def check_same_results(cols: dict[str, Callable[[], Any]]) -> None:
    """Every column's output and gradients agree with tapegrad's (float32 tolerances)."""
    want = [np.asarray(a) for a in cols["tapegrad"]()]
    for name in ("direct einsum", "torch"):
        if name not in cols:
            continue
        got = cols[name]()
        if name == "direct einsum":  # (y, dw, db, dx) -> tapegrad's order (y, [dx,] dw, db)
            got = (got[0], got[3], got[1], got[2])
        got = [np.asarray(a.detach() if hasattr(a, "detach") else a) for a in got if a is not None]
        for a, b in zip(want, got, strict=True):
            scale = np.abs(a).max()
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale, err_msg=name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=BATCH, help=f"batch size (default {BATCH})")
    ap.add_argument("--rounds", type=int, default=7, help="counted rounds (default 7)")
    names = list(layers(*CHANNELS))
    ap.add_argument("--layers", nargs="+", default=names, choices=names)
    ap.add_argument(
        "--channels",
        type=int,
        nargs=2,
        default=list(CHANNELS),
        metavar=("C1", "C2"),
        help="output channels of the two convolutions (default %(default)s: the example's)",
    )
    add_clock_argument(ap)
    args = ap.parse_args(argv)
    shapes = layers(*args.channels)
    clock = CLOCKS[args.clock]

    print(
        f"# conv2d forward + backward, float32, batch {args.batch}, {K}x{K} kernels, padding {PAD}"
    )
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"python  : {platform.python_version()}, numpy {np.__version__}")
    print(f"tapegrad: {tg.__version__} (git {git_revision()})")
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            api, version, threads = lib.get("internal_api"), lib.get("version"), lib["num_threads"]
            print(f"blas    : {api} {version}, {threads} thread(s)")
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    summary = {}
    for layer in args.layers:
        c_in, c_out, side, need_x = shapes[layer]
        x = rng.standard_normal((args.batch, c_in, side, side)).astype(np.float32)
        w = (rng.standard_normal((c_out, c_in, K, K)) / np.sqrt(c_in * K * K)).astype(np.float32)
        b = rng.standard_normal(c_out).astype(np.float32)
        u = rng.standard_normal((args.batch, c_out, side, side)).astype(np.float32)
        cols, torch_version = columns(x, w, b, u, need_x)
        check_same_results(cols)
        names = list(cols)
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                gc.collect()
                t0 = clock()
                cols[name]()
                ms = (clock() - t0) * 1e3
                if r > 0:
                    times[name].append(ms)
        med = {name: statistics.median(v) for name, v in times.items()}
        summary[layer] = med
        grads = "x, w, b" if need_x else "w, b (x is the data)"
        print()
        print(
            f"## {layer}: x ({args.batch}, {c_in}, {side}, {side}), w ({c_out}, {c_in}, {K}, {K}); "
            f"gradients of {grads}; torch {torch_version}"
        )
        print()
        print("| column | ms (median) | min - max | x tapegrad |")
        print("|---|---:|---:|---:|")
        for name in names:
            v = times[name]
            print(
                f"| {name} | {med[name]:.1f} | {min(v):.1f} - {max(v):.1f} | "
                f"{med[name] / med['tapegrad' + (' fwd' if name.endswith('fwd') else '')]:.2f} |"
            )
    load_after = os.getloadavg()

    print()
    print(
        f"load average (1, 5, 15 min): before {load_before}, after {load_after}; "
        f"{os.cpu_count()} logical CPUs"
    )
    total = {name: sum(m[name] for m in summary.values()) for name in next(iter(summary.values()))}
    print(
        f"both layers, fwd+bwd: tapegrad {total['tapegrad']:.1f} ms, direct einsum "
        f"{total['direct einsum']:.1f} ms"
        + (f", torch {total['torch']:.1f} ms" if "torch" in total else "")
    )
    for layer, med in [*summary.items(), ("both", total)]:
        ratio = med["tapegrad"] / med["direct einsum"]
        line = f"{layer}: tapegrad / direct einsum = {ratio:.2f} (target <= 0.5)"
        if "torch" in med:
            line += f"; tapegrad / torch = {med['tapegrad'] / med['torch']:.2f} (target <= 1.5)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
