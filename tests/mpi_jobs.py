"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2``.

``python tests/mpi_jobs.py JOB ARGS...`` runs the job named ``JOB`` on every rank. Jobs
check what only the ranks can see (every rank's values) with plain ``assert`` and print
``ok`` from rank 0 at the end; a failed assert aborts the job through the exception hook
of :mod:`tapegrad.distributed`, so the test sees a non-zero status and the traceback.

:func:`train` is also called by the tests in one process, as the reference.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import numpy as np

import tapegrad as tg
from tapegrad import distributed as dist

SIZES = (20, 32, 32, 5)


def problem(seed: int = 0, n: int = 512) -> tuple[dict, np.ndarray, np.ndarray]:
    """float32 parameters of a 20-32-32-5 ReLU MLP, ``n`` inputs and labels."""
    rng = np.random.default_rng(seed)
    params = tg.nn.init_mlp(rng, SIZES, dtype=np.float32)
    x = rng.standard_normal((n, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], n)
    return params, x, y


def _loss(params: dict, x: Any, y: Any) -> Any:
    return tg.nn.nll(tg.nn.mlp(params, x), y)


def digest(tree: Any) -> bytes:
    """A hash of the bytes of every leaf: equal digests mean bit-identical trees."""
    h = hashlib.sha256()
    for leaf in tg.tree_leaves(tree):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.digest()


def train(steps: int, batch: int, check_every_step: bool = False, use: float = 1.0) -> dict:
    """``steps`` momentum steps at global batch ``batch``, split across the ranks.

    ``use`` < 1 trains on only the first fraction of each batch (a wrong reduction, for
    the tests' control). With ``check_every_step``, asserts after every update that all
    ranks hold bit-identical parameters.
    """
    params, x, y = problem()
    params = dist.broadcast(params)
    opt = tg.optim.momentum(0.1, mu=0.9)
    state = opt.init(params)
    grad = tg.grad(_loss)
    for step in range(steps):
        start = (step * batch) % (len(x) - batch)
        rows = np.arange(start, start + int(batch * use))
        mine = rows[dist.shard(len(rows))]
        grads = grad(params, x[mine], y[mine])
        grads = dist.allreduce_mean(grads, weight=len(mine))
        params, state = opt.update(params, grads, state)
        if check_every_step and dist.size() > 1:
            comm = dist._comm()
            digests = comm.allgather(digest(params))
            assert len(set(digests)) == 1, f"ranks disagree after step {step + 1}"
    return params


class CountingComm:
    """The world communicator, counting the calls of each of its methods."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.calls = comm, {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.comm, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


def job_api() -> None:
    """broadcast and allreduce_mean: values, dtypes, kinds, one Allreduce per dtype."""
    r, n = dist.rank(), dist.size()
    assert n == 2 and dist.is_main() == (r == 0)
    tree = {
        "w": np.full((2, 3), r + 1, np.float32),
        "v": [np.arange(4.0) * (r + 1), np.float32(r), 2.5 * r],
        "i": np.arange(3) + 10 * r,
        "flag": bool(r),
    }
    got = dist.broadcast(tree)
    assert got["w"].dtype == np.float32 and (got["w"] == 1).all()
    assert (got["v"][0] == np.arange(4.0)).all() and got["v"][0].dtype == np.float64
    assert type(got["v"][1]) is np.float32 and got["v"][1] == 0
    assert type(got["v"][2]) is float and got["v"][2] == 0.0
    assert (got["i"] == np.arange(3)).all() and got["flag"] is False
    got1 = dist.broadcast({"w": np.full(3, r, np.float64)}, root=1)
    assert (got1["w"] == 1).all()

    counting = CountingComm(dist._comm())
    dist._state["comm"] = counting
    grads = {"a": tree["w"], "b": tree["v"][:2], "c": np.full(5, r, np.float32)}
    mean = dist.allreduce_mean(grads)
    assert counting.calls.get("Allreduce") == 2, counting.calls  # float32 and float64
    assert mean["a"].dtype == np.float32 and (mean["a"] == 1.5).all()
    assert (mean["b"][0] == np.arange(4.0) * 1.5).all()
    assert type(mean["b"][1]) is np.float32 and mean["b"][1] == 0.5
    assert (mean["c"] == 0.5).all() and mean["c"].dtype == np.float32
    # weighted: rank 0 weighs 1, rank 1 weighs 3: (1 * 1 + 3 * 2) / 4
    weighted = dist.allreduce_mean({"a": tree["w"]}, weight=1 + 2 * r)
    assert (weighted["a"] == 1.75).all()
    # a rank with weight 0 contributes nothing
    alone = dist.allreduce_mean({"a": tree["w"]}, weight=r)
    assert (alone["a"] == 2).all()
    dist._state["comm"] = counting.comm
    assert dist.shard(10) == slice(5 * r, 5 * r + 5)
    if dist.is_main():
        print("ok")


def job_train(steps: str, batch: str, out: str) -> None:
    """Train, checking bit-identical parameters after every step; rank 0 saves them."""
    params = train(int(steps), int(batch), check_every_step=True)
    if dist.is_main():
        tg.checkpoint.save(out, params)
        print("ok")


def job_mismatch() -> None:
    """Trees that differ across ranks: every rank gets the same clear error."""
    r = dist.rank()
    cases = {
        "shape": {"W": np.zeros((3, 4 + r), np.float32)},
        "dtype": {"W": np.zeros(3, np.float32 if r == 0 else np.float64)},
        "key": {"W": np.zeros(3), ("b" if r == 0 else "c"): np.zeros(2)},
        "leaves": {"W": [np.zeros(3)] * (1 + r)},
    }
    for name, tree in cases.items():
        try:
            dist.allreduce_mean(tree)
        except ValueError as e:
            print(f"rank {r} {name}: {e}", flush=True)
        else:
            raise AssertionError(f"{name}: no error")
    try:
        dist.allreduce_mean({"W": np.zeros(3)}, weight=1.0 if r == 0 else None)
    except ValueError as e:
        print(f"rank {r} weight: {e}", flush=True)
    try:
        dist.broadcast({"W": np.zeros((2, 2 + r))})
    except ValueError as e:
        print(f"rank {r} broadcast: {e}", flush=True)
    dist.barrier()  # every line above is printed before rank 1 ends the job
    # Uncaught, on rank 1 only: the exception hook must end both ranks.
    if r == 1:
        raise RuntimeError("rank 1 gives up")
    dist.barrier()  # rank 0 waits here for a rank that never comes


def job_example(mode: str, examples_dir: str, *argv: str) -> None:
    """examples/mnist_tape.py with ``argv``; rank 1 raises (``mode == "raise"``) or is
    killed (``"kill"``) at its first reduction after the checkpoint file (``--save``)
    exists: rank 0 has then finished writing it."""
    sys.path.insert(0, examples_dir)
    import mnist_tape

    ckpt = argv[argv.index("--save") + 1]
    reduce = dist.allreduce_mean

    def failing(tree: Any, weight: float | None = None) -> Any:
        if dist.rank() == 1 and os.path.exists(ckpt):
            if mode == "kill":
                os.kill(os.getpid(), 9)
            raise RuntimeError("rank 1 fails in epoch 2")
        return reduce(tree, weight)

    dist.allreduce_mean = failing
    mnist_tape.main(list(argv))


if __name__ == "__main__":
    globals()[f"job_{sys.argv[1]}"](*sys.argv[2:])
