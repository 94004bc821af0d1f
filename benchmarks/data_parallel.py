"""Data-parallel training throughput: samples per second on 1 and 2 MPI processes.

The MNIST example's network (784-100-100-10 ReLU, float32, mean NLL, momentum 0.9) trains
at a global batch of 512 (``--batch``): each of the ``N`` ranks computes the gradient of
its ``512 / N`` examples, :func:`tapegrad.distributed.allreduce_mean` averages the
gradients, and every rank makes the same update (the loop of ``examples/mnist_tape.py``,
whose gradient and update are each compiled with ``tg.jit``; ``--no-jit`` runs them as
Python).
The data are random images of MNIST's shape, so nothing is read from disk.

Run from the repository root (needs ``pip install -e '.[distributed]'``)::

    python benchmarks/data_parallel.py               # 1 warm-up + 5 rounds, ~2 minutes idle
    python benchmarks/data_parallel.py --ranks 1 2 --rounds 9 --steps 300

The script launches itself once per round and number of ranks with ``mpiexec -n N``,
alternating the order from round to round so that a slow spell of a shared machine hits
all alike, with ``OPENBLAS_NUM_THREADS=1`` (and MKL's and OpenMP's) so that each rank uses
one core. Each run times ``--steps`` steps after ``--warmup`` untimed ones. Before each
run it waits for the machine to be idle (``--idle``), and runs again a run that another
job disturbed (``--min-cpu-share``). A third configuration, ``2 alone``, runs two
independent single processes side by side at half the batch each: the ceiling of 2 ranks
if the reduction cost nothing (the two cores share caches and memory bandwidth).

Printed per configuration, as medians over the rounds (min-max beside):

- ``samples/s``: ``batch * steps / seconds`` of rank 0 (for ``2 alone``: the sum);
- ``ms/step``;
- ``allreduce ms/step``: the time rank 0 spends in ``allreduce_mean`` during training,
  waiting for the slower rank included;
- ``bare allreduce ms``: the same reduction of the gradient tree alone, right after a
  barrier, repeated: the cost of the communication itself;
- ``speed-up``: median samples/s against 1 rank's; ``per round``: the median (and range)
  of the same ratio taken within each round, whose runs follow each other, so that a
  slow or fast spell of the machine longer than a round cancels;
- ``CPU share``: the smallest share of its run's time that a rank spent on a CPU (a run
  below ``--min-cpu-share``, disturbed by another job, is run again).

``--model`` prints instead the inputs of the cost model of ``docs/distributed.md`` measured
on this machine (one process, one thread): the MLP's step time at per-rank batches
``512 / N``, the float32 matrix-product rate, the time of a momentum update and of a sum
of buffers the size of the MLP and of the CNN (conv5x5-32, pool, conv5x5-64, pool, dense
1024, dense 10, "same" padding), and the speed-ups they predict for ``N`` ranks on two
assumed networks.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _machine import CLOCKS, add_clock_argument, cpu_model, dist_version, git_revision  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad import distributed as dist  # noqa: E402

SIZES = (784, 100, 100, 10)
ALONE = "2 alone"
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def loss_fn(params: dict, x: np.ndarray, y: np.ndarray) -> object:
    return tg.nn.nll(tg.nn.mlp(params, x), y)


def worker(batch: int, steps: int, warmup: int, seed: int, jit: bool = True) -> None:
    """One rank's training loop; rank 0 prints one JSON line of timings.

    With ``jit`` the gradient and the update are each compiled with ``tg.jit`` (during the
    warm-up steps), as ``examples/mnist_tape.py`` does under ``mpiexec``.
    """
    rng = np.random.default_rng(seed)
    params = dist.broadcast(tg.nn.init_mlp(rng, SIZES, dtype=np.float32))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pool = 16 * batch  # a few distinct batches, the same on every rank
    x = rng.random((pool, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], pool)
    opt = tg.optim.momentum(0.05, mu=0.9)
    state = opt.init(params)
    value_and_grad, update = tg.value_and_grad(loss_fn), opt.update
    if jit:
        value_and_grad, update = tg.jit(value_and_grad), tg.jit(update)
    mine = dist.shard(batch)
    n_mine = mine.stop - mine.start
    reduce_seconds = 0.0
    clock = time.perf_counter
    for step in range(warmup + steps):
        if step == warmup:
            dist.barrier()
            reduce_seconds, t0, cpu0 = 0.0, clock(), time.process_time()
        rows = slice((step % 16) * batch + mine.start, (step % 16) * batch + mine.stop)
        xb, yb = x[rows], y[rows]
        loss, grads = value_and_grad(params, xb, yb)
        t = clock()
        loss, grads = dist.allreduce_mean((loss, grads), weight=n_mine)
        reduce_seconds += clock() - t
        params, state = update(params, grads, state)
    seconds = clock() - t0
    # The share of the time this rank was on a CPU: below 1 when another job took turns.
    share = (time.process_time() - cpu0) / seconds
    comm = dist._comm()
    shares = [share] if comm is None else comm.allgather(share)
    cpus = cpus if comm is None else comm.allgather(cpus)  # each rank's, to show binding

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
                    "cpu_share": min(shares),
                    "cpus": cpus,
                }
            ),
            flush=True,
        )


# ----------------------------------------------------------------------------- cost model

#: Assumed cluster networks: (name, latency alpha in s, bandwidth beta in bytes/s).
NETWORKS = (("10 GbE", 30e-6, 1.1e9), ("100 Gb/s InfiniBand", 2e-6, 11e9))
CNN_LAYERS = (  # (name, parameter shape, multiply-adds per example forward, has input grad)
    ("conv1 5x5x1x32", (5, 5, 1, 32), 28 * 28 * 32 * 25, False),
    ("conv2 5x5x32x64", (5, 5, 32, 64), 14 * 14 * 64 * 25 * 32, True),
    ("dense 3136x1024", (3136, 1024), 3136 * 1024, True),
    ("dense 1024x10", (1024, 10), 1024 * 10, True),
)


def mlp_counts() -> tuple[int, float]:
    """(parameters, training FLOPs per example) of the MLP: forward 2 per weight, the
    weight gradient 2 more, the input gradient 2 more except for the first layer."""
    weights = [a * b for a, b in itertools.pairwise(SIZES)]
    params = sum(weights) + sum(SIZES[1:])
    return params, 2.0 * sum(weights) * 2 + 2.0 * sum(weights[1:])


def cnn_counts() -> tuple[int, float]:
    """(parameters, training FLOPs per example) of the CNN, counted the same way."""
    params = sum(math.prod(shape) + shape[-1] for _, shape, _, _ in CNN_LAYERS)
    flops = sum(2.0 * macs * (3 if dx else 2) for _, _, macs, dx in CNN_LAYERS)
    return params, flops


_timer = CLOCKS["wall"]  # --clock


def best_seconds(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat, timer=_timer)) / number


def mlp_step_seconds(batch: int) -> float:
    """One training step of the MLP at ``batch`` examples, in one process."""
    rng = np.random.default_rng(0)
    params = tg.nn.init_mlp(rng, SIZES, dtype=np.float32)
    x = rng.random((batch, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], batch)
    opt = tg.optim.momentum(0.05, mu=0.9)
    state = opt.init(params)
    value_and_grad = tg.value_and_grad(loss_fn)

    def step() -> None:
        _, grads = value_and_grad(params, x, y)
        opt.update(params, grads, state)

    return best_seconds(step, number=max(5, 5000 // batch))


def cnn_loss(params: dict, x: np.ndarray, y: np.ndarray) -> object:
    """The CNN of the cost model: conv5x5-32, pool, ReLU, conv5x5-64, pool, ReLU, dense
    1024 ReLU, dense 10; images ``(batch, 1, 28, 28)``."""
    h = x
    for name in ("conv1", "conv2"):
        h = tg.nn.conv2d(h, params[name]["w"], params[name]["b"], padding=2)
        h = tg.nn.relu(tg.nn.max_pool2d(h, 2))
    h = tg.nn.relu(tg.nn.affine(params["dense"]["W"], params["dense"]["b"], tg.nn.flatten(h)))
    return tg.nn.nll(tg.nn.affine(params["out"]["W"], params["out"]["b"], h), y)


def cnn_step_seconds(batch: int, number: int) -> float:
    """One training step of the CNN at ``batch`` examples, in one process."""
    rng = np.random.default_rng(0)

    def layer(*shape: int) -> dict:
        return {"w" if len(shape) == 4 else "W": rng.normal(0, 0.05, shape).astype(np.float32),
                "b": np.zeros(shape[0], np.float32)}  # fmt: skip

    params = {
        "conv1": layer(32, 1, 5, 5),
        "conv2": layer(64, 32, 5, 5),
        "dense": layer(1024, 7 * 7 * 64),
        "out": layer(10, 1024),
    }
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    opt = tg.optim.momentum(0.05, mu=0.9)
    state = opt.init(params)
    value_and_grad = tg.value_and_grad(cnn_loss)

    def step() -> None:
        _, grads = value_and_grad(params, x, y)
        opt.update(params, grads, state)

    return best_seconds(step, number=number, repeat=3)


def model(args: argparse.Namespace) -> None:
    """Measure the cost model's inputs here and print its predictions."""
    mlp_params, mlp_flops = mlp_counts()
    cnn_params, cnn_flops = cnn_counts()
    print("# Cost model of data-parallel training (one process, one BLAS thread, measured)")
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average, at start); clock {args.clock}")
    print(
        f"MLP {'-'.join(map(str, SIZES))}: {mlp_params:,} parameters = "
        f"{4 * mlp_params:,} bytes float32; {mlp_flops / 1e6:.2f} MFLOP per example"
    )
    print(
        f"CNN conv5x5-32, pool, conv5x5-64, pool, dense 1024, 10: {cnn_params:,} parameters "
        f"= {4 * cnn_params:,} bytes; {cnn_flops / 1e6:.1f} MFLOP per example"
    )
    for name, shape, _, _ in CNN_LAYERS:
        print(f"    {name:<18} {math.prod(shape) + shape[-1]:>10,} parameters")

    rng = np.random.default_rng(0)
    a = rng.random((args.batch, 3136), dtype=np.float32)
    b = rng.random((3136, 1024), dtype=np.float32)
    gemm = 2 * a.shape[0] * 3136 * 1024 / best_seconds(lambda: a @ b, number=5)
    print(f"float32 matmul ({args.batch}x3136 @ 3136x1024): {gemm / 1e9:.1f} GFLOP/s")
    sums = {}
    for name, n in (("MLP", mlp_params), ("CNN", cnn_params)):
        u, v = np.ones(n, np.float32), np.ones(n, np.float32)
        sums[name] = best_seconds(lambda u=u, v=v: np.add(u, v, out=u), number=20)
        print(f"sum of two {name}-sized float32 buffers: {1e3 * sums[name]:.3f} ms")
    cnn_tree = [rng.random(shape, dtype=np.float32) for _, shape, _, _ in CNN_LAYERS]
    opt = tg.optim.momentum(0.05, mu=0.9)
    state = opt.init(cnn_tree)
    update = best_seconds(lambda: opt.update(cnn_tree, cnn_tree, state), number=5)
    print(f"momentum update of the CNN's parameters: {1e3 * update:.2f} ms")

    ranks = [n for n in (1, 2, 4, 8, 16, 32, 64) if args.batch // n >= 1]
    steps = {n: mlp_step_seconds(args.batch // n) for n in ranks}
    cnn_steps = {n: cnn_step_seconds(args.batch // n, number=1 + n // 8) for n in ranks}
    print()
    print(f"Step at per-rank batch {args.batch}/N (value_and_grad + momentum update), tapegrad:")
    for n in ranks:
        print(
            f"    N={n:<3} batch {args.batch // n:>4}: MLP {1e3 * steps[n]:8.3f} ms   "
            f"CNN {1e3 * cnn_steps[n]:8.1f} ms"
        )

    def comm(n: int, nbytes: float, alpha: float, beta: float, local: float) -> float:
        """MPICH's large-message allreduce (reduce-scatter, then allgather):
        2 log2(N) latencies, 2 (N-1)/N of the buffer over the wire, (N-1)/N of it summed."""
        if n == 1:
            return 0.0
        return 2 * math.log2(n) * alpha + 2 * (n - 1) / n * nbytes / beta + (n - 1) / n * local

    print()
    print(f"Predicted samples/s at global batch {args.batch} (speed-up, parallel efficiency):")
    for net, alpha, beta in NETWORKS:
        print(f"  {net} (latency {1e6 * alpha:.0f} us, {beta / 1e9:.1f} GB/s):")
        for n in ranks:
            t_mlp = steps[n] + comm(n, 4 * mlp_params, alpha, beta, sums["MLP"])
            t_cnn = cnn_steps[n] + comm(n, 4 * cnn_params, alpha, beta, sums["CNN"])
            t_mlp1, t_cnn1 = steps[1], cnn_steps[1]
            print(
                f"    N={n:<3} MLP {args.batch / t_mlp:>9,.0f} ({t_mlp1 / t_mlp:5.1f}x, "
                f"{100 * t_mlp1 / t_mlp / n:3.0f} %)   CNN {args.batch / t_cnn:>7,.0f} "
                f"({t_cnn1 / t_cnn:5.1f}x, {100 * t_cnn1 / t_cnn / n:3.0f} %)"
            )


# ----------------------------------------------------------------------------- runs


def _run(command: list[str], timeout: float) -> subprocess.Popen:
    env = {**os.environ, **ONE_THREAD, "HYDRA_LAUNCHER": "fork"}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )


def _result(proc: subprocess.Popen, timeout: float, what: str) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SystemExit(f"{what}: no result within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise SystemExit(f"{what}: exited with status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def launch(config: str, args: argparse.Namespace, timeout: float) -> dict:
    """Run :func:`worker` as ``config`` says; rank 0's timings.

    ``"N"``: on N ranks under ``mpiexec``. ``"2 alone"``: two single processes at half
    the batch each, side by side and independent: what 2 ranks would reach if the
    reduction cost nothing.
    """
    worker_args = [
        __file__, "--worker", "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--seed", str(args.seed),
        *(["--no-jit"] if args.no_jit else []),
    ]  # fmt: skip
    if config == ALONE:
        half = [sys.executable, *worker_args, "--batch", str(args.batch // 2)]
        if args.bind_to == "core":  # each on its own core, as mpiexec -bind-to core does
            procs = [_run([*half, "--cpu", str(cpu)], timeout) for cpu in (0, 1)]
        else:
            procs = [_run(half, timeout), _run(half, timeout)]
        a, b = (_result(p, timeout, config) for p in procs)
        return {
            "samples_per_s": a["samples_per_s"] + b["samples_per_s"],
            "ms_per_step": max(a["ms_per_step"], b["ms_per_step"]),
            "allreduce_ms": 0.0,
            "bare_allreduce_ms": 0.0,
            "cpu_share": min(a["cpu_share"], b["cpu_share"]),
            "cpus": [a["cpus"], b["cpus"]],
        }
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if mpiexec is None:
        raise SystemExit("mpiexec not found: pip install -e '.[distributed]'")
    command = [mpiexec, "-bind-to", args.bind_to, "-n", config, sys.executable]
    command += [*worker_args, "--batch", str(args.batch)]
    return _result(_run(command, timeout), timeout, f"{config} ranks")


def cpu_busy(seconds: float = 0.5) -> float:
    """The fraction of the machine's CPU time spent busy over the next ``seconds``."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle and iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_idle(limit: float, patience: float) -> float:
    """Wait (at most ``patience`` seconds) until other jobs use under ``limit`` of the CPUs;
    the busy fraction last seen."""
    deadline = time.monotonic() + patience
    busy = cpu_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def _fmt(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--no-alone",
        action="store_true",
        help=f"skip the '{ALONE}' runs (two independent processes at half the batch)",
    )
    ap.add_argument("--batch", type=int, default=512, help="global batch size")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=5, help="counted rounds (after a warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--idle",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="before each run, wait (up to --patience s) until the machine's CPUs are busy "
        "less than this fraction of the time (1: never wait)",
    )
    ap.add_argument("--patience", type=float, default=120.0)
    ap.add_argument(
        "--min-cpu-share",
        type=float,
        default=0.95,
        help="run again (up to 5 times) a run during which a rank was on a CPU less than "
        "this share of the time: another job took turns with it",
    )
    ap.add_argument(
        "--no-jit",
        action="store_true",
        help="run each step as Python instead of the two programs tg.jit compiles from the "
        "gradient and the update (what examples/mnist_tape.py runs under mpiexec)",
    )
    ap.add_argument(
        "--bind-to",
        choices=["core", "none"],
        default="core",
        help="mpiexec's -bind-to: pin each rank to a core (the default, as MPI jobs are "
        "usually run), or let the kernel move them ('2 alone' pins its two processes too)",
    )
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", action="store_true", help="print the cost model's inputs")
    add_clock_argument(ap)  # for --model; the runs of 1 and 2 ranks use wall time
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        with dist.abort_on_error():
            worker(args.batch, args.steps, args.warmup, args.seed, jit=not args.no_jit)
        return
    if args.model:
        global _timer
        _timer = CLOCKS[args.clock]
        model(args)
        return

    print("# Data-parallel MLP training: 784-100-100-10 ReLU, float32, momentum")
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"python  : {platform.python_version()}; numpy {np.__version__}")
    print(f"tapegrad: {tg.__version__} (git {git_revision()})")
    print(f"MPI     : mpi4py {dist_version('mpi4py')}, mpich {dist_version('mpich')}")
    print(
        f"run     : global batch {args.batch}, {args.steps} timed steps after {args.warmup}; "
        f"mpiexec -bind-to {args.bind_to}"
    )
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average, at start)")
    configs = [str(n) for n in args.ranks] + ([] if args.no_alone else [ALONE])
    results: dict[str, list[dict]] = {c: [] for c in configs}
    busy_before, disturbed = [], 0
    for round_ in range(args.rounds + 1):
        order = configs if round_ % 2 == 0 else configs[::-1]
        for n in order:
            for _attempt in range(5):
                busy_before.append(wait_until_idle(args.idle, args.patience))
                result = launch(n, args, timeout=120 + 0.1 * args.steps)
                print(
                    f"  round {round_} ({'warm-up' if round_ == 0 else 'counted'}): {n:>7} "
                    f"{result['samples_per_s']:8.0f} samples/s, allreduce "
                    f"{result['allreduce_ms']:.3f} ms/step, CPU share {result['cpu_share']:.2f}, "
                    f"CPUs {result['cpus']}",
                    flush=True,
                )
                if result["cpu_share"] >= args.min_cpu_share:
                    break
                disturbed += 1
            if round_ > 0:  # round 0 warms the caches up
                results[n].append(result)
    print(f"load    : {os.getloadavg()[0]:.2f} (1-minute average, at the end)")
    print(
        f"idle    : CPUs busy {100 * min(busy_before):.0f}-{100 * max(busy_before):.0f} % "
        f"in the 0.5 s before each run (waited up to {args.patience:.0f} s for < "
        f"{100 * args.idle:.0f} %); {disturbed} runs disturbed by other jobs (a rank on a "
        f"CPU < {100 * args.min_cpu_share:.0f} % of the time) were run again"
    )
    print()
    base = statistics.median(r["samples_per_s"] for r in results[configs[0]])
    print(
        f"{'ranks':>7}  {'samples/s':>20}  {'ms/step':>18}  {'allreduce ms/step':>18}  "
        f"{'bare allreduce ms':>18}  {'speed-up':>8}  {'per round':>18}  {'CPU share':>9}"
    )
    for n in configs:
        rows = results[n]
        speed = statistics.median(r["samples_per_s"] for r in rows)
        # Each round runs every configuration back to back: the ratio within a round
        # cancels the machine's slower and faster spells that last longer than a round.
        paired = [
            r["samples_per_s"] / b["samples_per_s"]
            for r, b in zip(rows, results[configs[0]], strict=True)
        ]
        print(
            f"{n:>7}  {_fmt([r['samples_per_s'] for r in rows], 0):>20}  "
            f"{_fmt([r['ms_per_step'] for r in rows], 2):>18}  "
            f"{_fmt([r['allreduce_ms'] for r in rows], 3):>18}  "
            f"{_fmt([r['bare_allreduce_ms'] for r in rows], 3):>18}  "
            f"{speed / base:>7.2f}x  {_fmt(paired, 2):>18}  "
            f"{min(r['cpu_share'] for r in rows):>9.2f}"
        )


if __name__ == "__main__":
    main()
