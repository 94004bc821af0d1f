"""Data-parallel training on MPI: one process per core or machine, gradients averaged.

Each of ``N`` processes (*ranks*) runs the same script on its own share of every
minibatch; after the backward pass, the ranks replace their gradients by the mean over
ranks, so every rank makes the same update and the parameters stay identical::

    from tapegrad import distributed as dist

    params = dist.broadcast(params)                 # everyone starts from rank 0's
    for xb, yb in batches:                          # the same global batches on every rank
        mine = dist.shard(len(xb))                  # this rank's slice of the batch
        grads = tg.grad(loss)(params, xb[mine], yb[mine])
        grads = dist.allreduce_mean(grads, weight=len(xb[mine]))
        params, state = opt.update(params, grads, state)
    if dist.is_main():
        tg.checkpoint.save(path, params)            # only rank 0 writes

Run it with ``mpiexec -n 2 python train.py``; the same script run as ``python train.py``
is one process and every function here is then the identity (or slice, or 0) without
loading MPI.

The maths. With a global batch ``B`` split into shards ``B_r`` of ``n_r`` examples, the
gradient of the batch mean is the weighted mean of the shards' mean gradients:
``(1/|B|) sum_{i in B} g_i = sum_r n_r g_r / sum_r n_r`` with ``g_r`` the mean over ``B_r``.
:func:`allreduce_mean` computes ``sum_r w_r x_r / sum_r w_r`` (``w_r = 1`` by default), so
passing ``weight=n_r`` gives the batch gradient exactly even when ``N`` does not divide
``|B|``. Only the rounding differs from one process: each rank sums its own shard first.

Detection. The processes are taken to be an MPI job when a launcher says so in the
environment (``PMI_SIZE`` from MPICH's and Intel's ``mpiexec`` and Slurm's
``srun --mpi=pmi2``, ``OMPI_COMM_WORLD_SIZE`` from Open MPI, ``MV2_COMM_WORLD_SIZE``,
``SLURM_STEP_NUM_TASKS``) with more than one process, or when the program has itself
initialised MPI through :mod:`mpi4py`. Otherwise nothing is imported and there is one
process. Importing this module never needs :mod:`mpi4py` (``pip install
'tapegrad[distributed]'`` installs it and MPICH).

Failures. A rank that dies with an uncaught exception would leave the others waiting in
their next reduction forever. So when MPI starts with more than one process, an
exception hook is installed that prints the traceback and calls ``MPI_Abort``, which ends
every rank; :func:`abort_on_error` does the same for ``sys.exit`` with a non-zero status.
A rank killed by a signal is noticed by ``mpiexec``, which ends the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from tapegrad.pytree import leaf_paths, tree_unflatten

__all__ = [
    "abort_on_error",
    "allreduce_mean",
    "barrier",
    "broadcast",
    "is_main",
    "rank",
    "shard",
    "size",
]

PyTree = Any

# Environment variables through which launchers announce the number of processes.
LAUNCHER_SIZE_VARIABLES = (
    "PMI_SIZE",  # MPICH / Intel MPI (Hydra), srun --mpi=pmi2
    "OMPI_COMM_WORLD_SIZE",  # Open MPI
    "MV2_COMM_WORLD_SIZE",  # MVAPICH
    "SLURM_STEP_NUM_TASKS",  # srun
)

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "comm": the communicator, or None for one process
# What a tree's layout (containers, dict keys, leaf dtypes and shapes) was checked to be
# across the ranks, and how its leaves pack into one buffer per dtype: by layout.
_plans: dict[tuple, list[tuple[np.dtype, list[int], int]]] = {}
_MAX_PLANS = 64
# Reduction buffers kept from call to call, by (dtype, length). MPICH reduces a buffer it
# has seen before in a third of the time it takes on fresh memory (0.13 against 0.45 ms
# for the MNIST MLP's 358 KB on two ranks here), so allreduce_mean reduces in these and
# copies the result out.
_buffers: dict[tuple[np.dtype, int], np.ndarray] = {}
_MAX_BUFFERS = 16


# ----------------------------------------------------------------------------- the job


def _launcher_size() -> tuple[str, int] | None:
    """``(variable, number of processes)`` from the first launcher variable set, if any."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return name, int(value)
    return None


def _connect() -> Any:
    """The world communicator, or ``None`` for one process (MPI left alone)."""
    launcher = _launcher_size()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        comm = mpi.COMM_WORLD  # the program started MPI itself
    elif launcher is not None and launcher[1] > 1:
        try:
            from mpi4py import MPI  # initialises MPI
        except ImportError:
            raise RuntimeError(
                f"this process was started by an MPI launcher ({launcher[0]}={launcher[1]}) "
                "but mpi4py is not installed, so each process would train alone: "
                "pip install 'tapegrad[distributed]'"
            ) from None
        comm = MPI.COMM_WORLD
    else:
        return None
    if launcher is not None and comm.Get_size() != launcher[1]:
        raise RuntimeError(
            f"the launcher started {launcher[1]} processes ({launcher[0]}) but MPI reports "
            f"{comm.Get_size()}: the MPI library mpi4py uses cannot talk to this launcher. "
            "Use the mpiexec of that library (pip install 'tapegrad[distributed]' puts "
            "MPICH's in the environment's bin/); under Slurm, srun --mpi=pmi2"
        )
    if comm.Get_size() == 1:
        return None
    _install_excepthook(comm)
    return comm


def _comm() -> Any:
    try:
        return _state["comm"]
    except KeyError:
        pass
    with _lock:
        if "comm" not in _state:
            _state["comm"] = _connect()
    return _state["comm"]


def rank() -> int:
    """This process's index among the job's processes, ``0 <= rank() < size()``."""
    comm = _comm()
    return 0 if comm is None else comm.Get_rank()


def size() -> int:
    """The number of processes in the job: 1 when not launched by MPI."""
    comm = _comm()
    return 1 if comm is None else comm.Get_size()


def is_main() -> bool:
    """Whether this is rank 0: the process that prints and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank has called :func:`barrier` (nothing to do for one process)."""
    comm = _comm()
    if comm is not None:
        comm.Barrier()


# ----------------------------------------------------------------------------- failures


#: Seconds a failing rank waits, its output flushed, before aborting the job: the
#: launcher forwards each rank's output asynchronously, and an abort that arrives first
#: can kill it before the traceback reaches the terminal (seen with mpich's mpiexec on a
#: busy machine: the job ended non-zero with an empty stderr).
ABORT_GRACE = 1.0


def _abort(comm: Any, code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    time.sleep(ABORT_GRACE)
    comm.Abort(code)


def _install_excepthook(comm: Any) -> None:
    previous = sys.excepthook

    def abort_job(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)  # the traceback first, as Python prints it
        _abort(comm, 1)

    sys.excepthook = abort_job


@contextlib.contextmanager
def abort_on_error() -> Iterator[None]:
    """End the whole MPI job when the block raises, ``sys.exit(status)`` included.

    An exception prints its traceback and aborts with status 1; ``SystemExit`` with a
    non-zero status prints its message (as Python would) and aborts with that status
    (1 for a message). ``sys.exit(0)`` and normal exits pass through. For one process
    this does nothing. Without it, a rank that exits while the others wait in a
    reduction leaves them waiting forever.
    """
    try:
        yield
    except SystemExit as e:
        comm = _comm()
        if comm is None or e.code is None or e.code == 0:
            raise
        if isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
        _abort(comm, code)
    except BaseException:
        comm = _comm()
        if comm is None:
            raise
        traceback.print_exc()
        _abort(comm, 1)


# ----------------------------------------------------------------------------- sharding


def shard(n: int, *, rank: int | None = None, size: int | None = None) -> slice:
    """The slice of ``n`` items (examples, or the rows of one minibatch) this rank owns.

    Rank ``r`` of ``N`` gets ``[r n // N, (r + 1) n // N)``: consecutive, disjoint slices
    covering ``range(n)``, whose lengths differ by at most one. Split each *global*
    minibatch with it and the batch size that the optimizer sees stays the same whatever
    the number of processes. ``rank`` and ``size`` default to this process's.

    >>> [shard(10, rank=r, size=3) for r in range(3)]
    [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    n = _count(n, "n")
    r = _rank_of() if rank is None else _count(rank, "rank")
    s = _size_of() if size is None else _count(size, "size")
    if not 0 <= r < s:
        raise ValueError(f"shard: rank must lie in [0, size), got rank {r} of size {s}")
    return slice(r * n // s, (r + 1) * n // s)


def _count(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"shard: {name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"shard: {name} must be >= 0, got {value}")
    return int(value)


_rank_of, _size_of = rank, size  # ``shard``'s keyword arguments shadow the functions


# ----------------------------------------------------------------------------- trees


def _walk(node: PyTree, leaves: list) -> Hashable:
    """Append the leaves of ``node`` to ``leaves``; return a hashable key of its containers
    (their types, lengths and dict keys)."""
    if isinstance(node, dict):
        return (type(node), tuple(node), tuple([_walk(v, leaves) for v in node.values()]))
    if isinstance(node, (list, tuple)):
        return (type(node), tuple([_walk(v, leaves) for v in node]))
    leaves.append(node)
    return None


def _as_array(leaf: Any) -> np.ndarray | None:
    """``leaf`` as an array (numbers become 0-d arrays); ``None`` if it is not a number."""
    if type(leaf) is np.ndarray:
        return leaf
    if isinstance(leaf, (bool, int, float, complex, np.generic, np.ndarray)):
        return np.asarray(leaf)
    return None


def _plan(
    comm: Any, what: str, tree: PyTree, extra: str, kinds: str
) -> tuple[list, list[np.ndarray], list[tuple[np.dtype, list[int], int]]]:
    """``(leaves, arrays, groups)`` of ``tree``: its leaves, as arrays, and the leaves of
    each dtype with their total size, in order of first appearance.

    The first time a layout is seen, it is compared across the ranks (a collective call):
    every rank raises the same ``ValueError`` if they differ. ``kinds`` are the dtype
    kinds allowed.
    """
    leaves: list = []
    structure = _walk(tree, leaves)
    arrays = [_as_array(leaf) for leaf in leaves]
    if any(a is None for a in arrays):
        path, leaf = next(
            (p, x) for p, x, a in zip(leaf_paths(tree), leaves, arrays, strict=True) if a is None
        )
        raise TypeError(
            f"{what}: the leaf {path or 'at the root'} is a {type(leaf).__name__}; expected "
            "numpy arrays or numbers"
        )
    key = (what, extra, structure, tuple([(a.dtype, a.shape) for a in arrays]))
    groups = _plans.get(key)
    if groups is None:
        paths = list(leaf_paths(tree))
        for path, a in zip(paths, arrays, strict=True):
            if a.dtype.kind not in kinds:
                raise TypeError(
                    f"{what}: the leaf {path or 'at the root'} has dtype {a.dtype}"
                    + ("; only floating-point leaves can be averaged" if kinds == "fc" else "")
                )
        _check_same(comm, what, _describe(arrays, paths), extra)
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, a in enumerate(arrays):
            by_dtype.setdefault(a.dtype.newbyteorder("="), []).append(i)
        groups = [(dt, idx, sum(arrays[i].size for i in idx)) for dt, idx in by_dtype.items()]
        if len(_plans) >= _MAX_PLANS:
            _plans.pop(next(iter(_plans)))
        _plans[key] = groups
    return leaves, arrays, groups


def _describe(arrays: list[np.ndarray], paths: list[str]) -> list[tuple[str, str, tuple]]:
    return [
        (path or "the root", a.dtype.newbyteorder("=").name, a.shape)
        for path, a in zip(paths, arrays, strict=True)
    ]


def _check_same(comm: Any, what: str, description: list, extra: str) -> None:
    """Compare a hash of ``description`` across the ranks; on a mismatch, raise on every
    rank a ``ValueError`` naming the first difference from rank 0."""
    key = hashlib.blake2b(repr((what, extra, description)).encode(), digest_size=16).digest()
    mine = np.frombuffer(key, dtype=np.uint8)
    everyone = np.empty((comm.Get_size(), mine.size), dtype=np.uint8)
    comm.Allgather(mine, everyone)
    if (everyone == mine).all():
        return
    descriptions = comm.allgather((extra, description))  # small, and only on a mismatch
    raise ValueError(f"{what}: the trees differ across ranks: " + _difference(descriptions))


def _difference(descriptions: list) -> str:
    extra0, leaves0 = descriptions[0]
    for r, (extra, leaves) in enumerate(descriptions[1:], start=1):
        if extra != extra0:
            return f"rank 0 called it {extra0}, rank {r} {extra}"
        for (p0, d0, s0), (p, d, s) in zip(leaves0, leaves, strict=False):
            if p != p0:
                return f"rank 0 has a leaf {p0} where rank {r} has {p}"
            if (d, s) != (d0, s0):
                return f"{p} is {d0} of shape {s0} on rank 0 but {d} of shape {s} on rank {r}"
        if len(leaves) > len(leaves0):
            return f"rank {r} has a leaf {leaves[len(leaves0)][0]} that rank 0 has not"
        if len(leaves) < len(leaves0):
            return f"rank 0 has a leaf {leaves0[len(leaves)][0]} that rank {r} has not"
    return "their signatures differ"  # pragma: no cover - equal descriptions hash equal


def _unpack(tree: PyTree, leaves: list, groups: list, buffers: list[np.ndarray]) -> PyTree:
    """``tree`` with its leaves cut back out of ``buffers`` (one per group), each of the
    kind it was: arrays as views of the buffer, numbers as numbers of their type."""
    values: list = [None] * len(leaves)
    for (_, idx, _), buf in zip(groups, buffers, strict=True):
        offset = 0
        for i in idx:
            leaf = leaves[i]
            if type(leaf) is np.ndarray or isinstance(leaf, np.ndarray):
                values[i] = buf[offset : offset + leaf.size].reshape(leaf.shape)
                offset += leaf.size
            else:
                kind = type(leaf) if not isinstance(leaf, np.generic) else buf.dtype.type
                values[i] = kind(buf[offset])
                offset += 1
    return tree_unflatten(tree, values)


def _pack(
    arrays: list[np.ndarray], idx: list[int], buf: np.ndarray, scale: float | None
) -> np.ndarray:
    """Copy the leaves ``idx`` (times ``scale``) into ``buf``, one after the other."""
    offset = 0
    for i in idx:
        n = arrays[i].size
        dest = buf[offset : offset + n]
        if scale is None:
            dest[...] = arrays[i].reshape(-1)
        else:
            np.multiply(arrays[i].reshape(-1), scale, out=dest, casting="same_kind")
        offset += n
    return buf


def _kept_buffer(dtype: np.dtype, n: int) -> np.ndarray:
    """A buffer of ``n`` elements of ``dtype`` that later calls will be handed again."""
    buf = _buffers.pop((dtype, n), None)
    if buf is None:
        buf = np.empty(n, dtype=dtype)
        if len(_buffers) >= _MAX_BUFFERS:
            _buffers.pop(next(iter(_buffers)))  # the least recently used
    _buffers[dtype, n] = buf
    return buf


def broadcast(tree: PyTree, root: int = 0) -> PyTree:
    """Rank ``root``'s ``tree`` on every rank: call it on all ranks with trees of one shape.

    Every rank passes a tree of the same structure, leaf shapes and dtypes (the values on
    ranks other than ``root`` are ignored: freshly initialised parameters will do); all
    get ``root``'s values back, as new arrays, except ``root`` itself, which gets its
    ``tree`` back unchanged. Leaves are numpy arrays of a bool, integer, float or complex
    dtype, numpy scalars or Python numbers, and keep their kind. One ``MPI_Bcast`` per
    dtype; a structure that differs across ranks raises ``ValueError`` naming the leaf.
    For one process, returns ``tree``.
    """
    comm = _comm()
    _check_root(root, 1 if comm is None else comm.Get_size())
    if comm is None:
        return tree
    leaves, arrays, groups = _plan(comm, "broadcast", tree, f"with root {root}", "biufc")
    if comm.Get_rank() == root:
        for dtype, idx, total in groups:
            comm.Bcast(_pack(arrays, idx, np.empty(total, dtype), None), root=root)
        return tree
    buffers = []
    for dtype, _, total in groups:
        buffers.append(np.empty(total, dtype=dtype))
        comm.Bcast(buffers[-1], root=root)
    return _unpack(tree, leaves, groups, buffers)


def _check_root(root: Any, n: int) -> None:
    if isinstance(root, (bool, np.bool_)) or not isinstance(root, (int, np.integer)):
        raise TypeError(f"broadcast: root must be an int, got {type(root).__name__}")
    if not 0 <= root < n:
        raise ValueError(f"broadcast: root must lie in [0, {n}), got {root}")


def allreduce_mean(tree: PyTree, weight: float | None = None) -> PyTree:
    """The mean over ranks of a pytree of floating-point leaves (gradients, say).

    Every rank passes a tree of the same structure, shapes and dtypes and gets back
    ``sum_r x_r / N``, or with ``weight``, ``sum_r w_r x_r / sum_r w_r`` (pass each
    rank's number of examples so that uneven shards average to the gradient of the whole
    batch; a rank with ``weight=0`` contributes nothing). Leaves are float or complex
    arrays, numpy scalars or Python floats. The result has the tree's structure, and its
    leaves their kind and dtype (float32 stays float32); its arrays are views of one new
    array per dtype. The leaves of each dtype are packed into one contiguous buffer and
    reduced by one ``MPI_Allreduce`` (the weight rides in the same buffer).

    The first call with a given layout (containers, dict keys, dtypes and shapes)
    compares a hash of it across the ranks and raises ``ValueError`` naming the first
    difference; later calls with that layout skip the check. Every rank must make the
    same calls in the same order, as with any MPI collective.

    For one process, returns ``tree`` itself.
    """
    if weight is not None:
        weight = float(weight)
        if not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"allreduce_mean: weight must be a finite number >= 0, got {weight}")
    comm = _comm()
    if comm is None:
        return tree
    extra = "without a weight" if weight is None else "with a weight"
    leaves, arrays, groups = _plan(comm, "allreduce_mean", tree, extra, "fc")

    from mpi4py import MPI  # loaded already: comm exists

    tail = 0 if weight is None else 1  # the weight, summed with the values
    buffers = []
    for dtype, idx, total in groups:
        buf = _pack(arrays, idx, _kept_buffer(dtype, total + tail), weight)
        if tail:
            buf[-1] = weight
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        divisor = comm.Get_size() if weight is None else buf[-1].real
        if divisor == 0:
            raise ValueError("allreduce_mean: the weights of all ranks are 0")
        buffers.append(np.multiply(buf[:total], 1 / divisor, dtype=dtype))  # a new array
    return _unpack(tree, leaves, groups, buffers)
