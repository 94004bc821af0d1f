"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2``.

``python tests/mpi_jobs.py JOB ARGS...`` runs the job named ``JOB`` on every rank. Jobs
check what only the ranks can see (every rank's values) with plain ``assert`` and print
``ok`` from rank 0 at the end; a failed assert aborts the job through the exception hook
of :mod:`tapegrad.distributed`, so the test sees a non-zero status and the traceback.

:func:`train` is also called by the tests in one process, as the reference.
"""

from __future__ import annotations

import copy
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


def use_path(path: str) -> None:
    """Make allreduce_mean reduce through shared memory (``"shared"``, even small trees) or
    by MPI_Allreduce (``"mpi"``); call before the first reduction."""
    if path == "shared":
        dist.SHARED_MEMORY_MIN_BYTES = 0
    else:
        os.environ["TAPEGRAD_SHARED_MEMORY"] = "0"


def took_path() -> str:
    """The path the reductions so far took (all one)."""
    kinds = {
        layout.shared is not None
        for layout in dist._plans.values()
        if layout.shared is not dist._UNDECIDED  # a broadcast's
    }
    assert len(kinds) == 1, kinds
    return "shared" if kinds.pop() else "mpi"


def job_train(steps: str, batch: str, out: str, path: str = "mpi") -> None:
    """Train, checking bit-identical parameters after every step; rank 0 saves them."""
    use_path(path)
    params = train(int(steps), int(batch), check_every_step=True)
    assert took_path() == path
    if dist.is_main():
        tg.checkpoint.save(out, params)
        print("ok")


def _random_tree(seed: int) -> dict:
    """A tree of every kind allreduce_mean takes, different on each rank."""
    rng = np.random.default_rng(1000 * seed + dist.rank())
    return {
        "a": rng.standard_normal((7, 5)).astype(np.float32),
        "b": [rng.standard_normal(4), np.float32(rng.standard_normal())],
        "c": rng.standard_normal(3).astype(np.float16),
        "z": (rng.standard_normal(2) + 1j * rng.standard_normal(2)).astype(np.complex64),
        "s": float(rng.standard_normal()),
    }


def _expected(tree: dict, weight: float | None) -> list:
    """Each leaf's mean by the formula, in rank order and in the leaf's dtype:
    ``(w_0 x_0 + w_1 x_1 + ...) * (1 / (w_0 + w_1 + ...))``, the weights summed in the
    dtype too (``x_0 + ... `` times ``1 / N`` without weights)."""
    everyone = dist._comm().allgather(tg.tree_leaves(tree))
    out = []
    for column in zip(*everyone, strict=True):
        xs = [np.asarray(x) for x in column]
        dtype = xs[0].dtype
        if weight is None:
            total = xs[0]
            for x in xs[1:]:
                total = total + x
            out.append(np.multiply(total, 1 / len(xs), dtype=dtype))
            continue
        weights = dist._comm().allgather(weight)
        total = np.multiply(xs[0], weights[0], dtype=dtype)
        w = dtype.type(weights[0])
        for x, wq in zip(xs[1:], weights[1:], strict=True):
            total = total + np.multiply(x, wq, dtype=dtype)
            w = w + dtype.type(wq)
        out.append(np.multiply(total, 1 / w.real, dtype=dtype))
    return out


def _check_mean(mean: dict, tree: dict, weight: float | None, exact: bool = True) -> None:
    """``mean`` is the formula's, bit for bit (else to round-off: MPI_Allreduce on more
    than 2 ranks may add in another order), with the leaves' kinds, on every rank."""
    for got, want, leaf in zip(
        tg.tree_leaves(mean), _expected(tree, weight), tg.tree_leaves(tree), strict=True
    ):
        assert type(got) is type(leaf), (type(got), type(leaf))
        assert np.asarray(got).dtype == np.asarray(leaf).dtype
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            rtol = 1e-2 if np.asarray(got).dtype == np.float16 else 1e-5
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
        if isinstance(got, np.ndarray):
            assert not got.flags.writeable
    digests = dist._comm().allgather(digest(mean))
    assert len(set(digests)) == 1, "ranks got different means"


def job_shared() -> None:
    """allreduce_mean through shared memory (forced for small trees): the formula's bits
    on every rank, read-only results, and a result held across calls never overwritten
    (the calls take MPI_Allreduce while every buffer is held, on all ranks alike)."""
    use_path("shared")
    r = dist.rank()
    counting = CountingComm(dist._comm())
    dist._state["comm"] = counting

    def reduce(seed: int, weight: float | None = 1.0 + r) -> tuple[dict, dict]:
        tree = _random_tree(seed)
        return dist.allreduce_mean(tree, weight=weight), tree

    def mpi_calls() -> int:
        return counting.calls.get("Allreduce", 0)

    m1, t1 = reduce(1)
    assert took_path() == "shared" and mpi_calls() == 0
    _check_mean(m1, t1, 1.0 + r)
    try:
        m1["a"][0, 0] = 1.0
    except ValueError:
        pass
    else:
        raise AssertionError("a result could be written into")
    m2, t2 = reduce(2, weight=None)
    _check_mean(m2, t2, None)
    m2b, t2b = reduce(22)  # m1's layout: m1 and m2b now hold both its buffers
    _check_mean(m2b, t2b, 1.0 + r)
    kept1, kept2 = copy.deepcopy(m1), copy.deepcopy(m2b)
    assert mpi_calls() == 0
    m3, t3 = reduce(3)  # both of this layout's buffers are held: MPI_Allreduce
    assert mpi_calls() == 4  # one per dtype
    _check_mean(m3, t3, 1.0 + r, exact=dist.size() == 2)
    assert digest(m1) == digest(kept1) and digest(m2b) == digest(kept2)
    # Rank 1 alone still holds a view of m1: every rank must keep off its buffer.
    view = m1["a"][2:4].T
    del m1
    if r != 1:
        del view
    m4, t4 = reduce(4)
    assert mpi_calls() == 8, counting.calls
    _check_mean(m4, t4, 1.0 + r, exact=dist.size() == 2)
    if r == 1:
        np.testing.assert_array_equal(view, kept1["a"][2:4].T)
        del view
    del m2b, m3, m4
    for seed in range(5, 9):  # nothing held: shared memory again, the buffers taking turns
        m, t = reduce(seed)
        _check_mean(m, t, 1.0 + r)
    assert mpi_calls() == 8
    try:
        reduce(9, weight=0.0)
    except ValueError as e:
        assert "weights of all ranks are 0" in str(e)
    else:
        raise AssertionError("weights of 0 everywhere gave no error")
    # At most _MAX_SHARED layouts get shared memory (it is never freed): later layouts
    # take MPI_Allreduce, with the same results.
    calls, n = mpi_calls(), dist.size()
    for extra in range(dist._MAX_SHARED - dist._state["windows"] + 1):
        mean = dist.allreduce_mean({"x": np.full(10 + extra, r + 1.0)})
        assert (mean["x"] == (n + 1) / 2).all(), mean
    assert dist._state["windows"] == dist._MAX_SHARED
    assert mpi_calls() == calls + 1, counting.calls  # the last layout only
    dist._state["comm"] = counting.comm
    if dist.is_main():
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
