"""Data-parallel training throughput: samples per second on 1 and 2 MPI processes.

The MNIST example's network (784-100-100-10 ReLU, float32, mean NLL, momentum 0.9) trains
at a global batch of 512 (``--batch``): each of the ``N`` ranks computes the gradient of
its ``512 / N`` examples, :func:`tapegrad.distributed.allreduce_mean` averages the
gradients, and every rank makes the same update (the loop of ``examples/mnist_tape.py``).
The data are random images of MNIST's shape, so nothing is read from disk.

Run from the repository root (needs ``pip install -e '.[distributed]'``)::

    python benchmarks/data_parallel.py               # 1 warm-up + 5 rounds, ~1 minute
    python benchmarks/data_parallel.py --ranks 1 2 --rounds 9 --steps 300

The script launches itself once per round and number of ranks with ``mpiexec -n N``,
alternating the numbers of ranks from round to round so that a slow spell of a shared
machine hits both, with ``OPENBLAS_NUM_THREADS=1`` (and MKL's and OpenMP's) so that each
rank uses one core. Each run times ``--steps`` steps after ``--warmup`` untimed ones.

Printed per number of ranks, as medians over the rounds (min-max beside):

- ``samples/s``: ``batch * steps / seconds`` of rank 0;
- ``ms/step``;
- ``allreduce ms/step``: the time rank 0 spends in ``allreduce_mean`` during training,
  waiting for the slower rank included;
- ``bare allreduce ms``: the same reduction of the gradient tree alone, right after a
  barrier, repeated: the cost of the communication itself;
- ``speed-up``: samples/s against 1 rank.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _machine import cpu_model, dist_version, git_revision  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad import distributed as dist  # noqa: E402

SIZES = (784, 100, 100, 10)
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def loss_fn(params: dict, x: np.ndarray, y: np.ndarray) -> object:
    return tg.nn.nll(tg.nn.mlp(params, x), y)


def worker(batch: int, steps: int, warmup: int, seed: int) -> None:
    """One rank's training loop; rank 0 prints one JSON line of timings."""
    rng = np.random.default_rng(seed)
    params = dist.broadcast(tg.nn.init_mlp(rng, SIZES, dtype=np.float32))
    pool = 16 * batch  # a few distinct batches, the same on every rank
    x = rng.random((pool, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], pool)
    opt = tg.optim.momentum(0.05, mu=0.9)
    state = opt.init(params)
    value_and_grad = tg.value_and_grad(loss_fn)
    mine = dist.shard(batch)
    n_mine = mine.stop - mine.start
    reduce_seconds = 0.0
    clock = time.perf_counter
    for step in range(warmup + steps):
        if step == warmup:
            dist.barrier()
            reduce_seconds, t0 = 0.0, clock()
        rows = slice((step % 16) * batch + mine.start, (step % 16) * batch + mine.stop)
        xb, yb = x[rows], y[rows]
        loss, grads = value_and_grad(params, xb, yb)
        t = clock()
        loss, grads = dist.allreduce_mean((loss, grads), weight=n_mine)
        reduce_seconds += clock() - t
        params, state = opt.update(params, grads, state)
    seconds = clock() - t0

    # The reduction alone, every rank ready: what the communication itself costs.
    bare = []
    for _ in range(50):
        dist.barrier()
        t = clock()
        dist.allreduce_mean((loss, grads), weight=n_mine)
        bare.append(clock() - t)
    if dist.is_main():
        print(
            json.dumps(
                {
                    "ranks": dist.size(),
                    "samples_per_s": batch * steps / seconds,
                    "ms_per_step": 1e3 * seconds / steps,
                    "allreduce_ms": 1e3 * reduce_seconds / steps,
                    "bare_allreduce_ms": 1e3 * statistics.median(bare),
                    "final_loss": float(loss),
                }
            ),
            flush=True,
        )


def launch(ranks: int, args: argparse.Namespace, timeout: float) -> dict:
    """Run :func:`worker` on ``ranks`` processes; rank 0's timings."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install -e '.[distributed]'")
    command = [
        mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker",
        "--batch", str(args.batch), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--seed", str(args.seed),
    ]  # fmt: skip
    env = {**os.environ, **ONE_THREAD, "HYDRA_LAUNCHER": "fork"}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SystemExit(f"{ranks} ranks: no result within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise SystemExit(f"{ranks} ranks: mpiexec exited with status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def _fmt(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=512, help="global batch size")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=5, help="counted rounds (after a warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        with dist.abort_on_error():
            worker(args.batch, args.steps, args.warmup, args.seed)
        return

    print("# Data-parallel MLP training: 784-100-100-10 ReLU, float32, momentum")
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"python  : {platform.python_version()}; numpy {np.__version__}")
    print(f"tapegrad: {tg.__version__} (git {git_revision()})")
    print(f"MPI     : mpi4py {dist_version('mpi4py')}, mpich {dist_version('mpich')}")
    print(f"run     : global batch {args.batch}, {args.steps} timed steps after {args.warmup}")
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average, at start)")
    results: dict[int, list[dict]] = {n: [] for n in args.ranks}
    for round_ in range(args.rounds + 1):
        order = args.ranks if round_ % 2 == 0 else args.ranks[::-1]
        for n in order:
            result = launch(n, args, timeout=120 + 0.1 * args.steps)
            if round_ > 0:  # round 0 warms the caches up
                results[n].append(result)
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average, at the end)")
    print()
    base = statistics.median(r["samples_per_s"] for r in results[args.ranks[0]])
    print(
        f"{'ranks':>5}  {'samples/s':>20}  {'ms/step':>18}  {'allreduce ms/step':>18}  "
        f"{'bare allreduce ms':>18}  {'speed-up':>8}"
    )
    for n in args.ranks:
        rows = results[n]
        speed = statistics.median(r["samples_per_s"] for r in rows)
        print(
            f"{n:>5}  {_fmt([r['samples_per_s'] for r in rows], 0):>20}  "
            f"{_fmt([r['ms_per_step'] for r in rows], 2):>18}  "
            f"{_fmt([r['allreduce_ms'] for r in rows], 3):>18}  "
            f"{_fmt([r['bare_allreduce_ms'] for r in rows], 3):>18}  "
            f"{speed / base:>7.2f}x"
        )


if __name__ == "__main__":
    main()
