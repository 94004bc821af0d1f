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

Reductions. On one machine, :func:`allreduce_mean` sums through an MPI-3 shared-memory
window (each rank writes its buffer, sums its share of everyone's, and reads the whole
mean in place); across machines, or for small trees, by ``MPI_Allreduce``. Either way
the mean's arrays are read-only: on one machine they are memory the ranks share.

Failures. A rank that dies with an uncaught exception would leave the others waiting in
their next reduction forever. So when MPI starts with more than one process, an
exception hook is installed that prints the traceback and calls ``MPI_Abort``, which ends
every rank; :func:`abort_on_error` does the same for ``sys.exit`` with a non-zero status.
A rank killed by a signal is noticed by ``mpiexec``, which ends the job.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np

from tapegrad.jit import _guard, _unflattener
from tapegrad.pytree import leaf_paths

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
_plans: dict[tuple, _Layout] = {}
_last: dict[tuple[str, str], _Layout] = {}  # the layout of the last call, by function
_UNDECIDED = object()
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


class _Layout:
    """How the trees of one layout pack: ``groups``, the leaves of each dtype (their
    indices and total size, in order of first appearance); ``rebuild``, a tree of the
    layout from a list of leaves (generated code); ``guard``, the leaves of a tree if it
    has this layout, else ``None`` (generated code, as ``tg.jit`` checks a call)."""

    __slots__ = ("groups", "guard", "rebuild", "shapes", "shared")

    def __init__(self, groups: list, guard: Any, rebuild: Any, shapes: list) -> None:
        self.groups, self.guard, self.rebuild, self.shapes = groups, guard, rebuild, shapes
        self.shared: Any = _UNDECIDED  # allreduce_mean's _SharedReduction, or None


def _plan(
    comm: Any, what: str, tree: PyTree, extra: str, kinds: str
) -> tuple[list, list[np.ndarray], _Layout]:
    """``(leaves, arrays, layout)`` of ``tree``: its leaves, as arrays, and its layout.

    The first time a layout is seen, it is compared across the ranks (a collective call):
    every rank raises the same ``ValueError`` if they differ. ``kinds`` are the dtype
    kinds allowed. A tree of the layout the last call of ``what`` had is read by that
    layout's guard, without building a key.
    """
    layout = _last.get((what, extra))
    if layout is not None:
        leaves = layout.guard((tree,))
        if leaves is not None:
            return leaves, [_as_array(leaf) for leaf in leaves], layout
    leaves = []
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
    layout = _plans.get(key)
    if layout is None:
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
        guard = _guard((tree,))
        if len(guard((tree,)) or ()) != len(leaves):
            guard = None  # the layout has leaves (ints, say) that the guard checks by value
        layout = _Layout(groups, guard, _unflattener(tree), [a.shape for a in arrays])
        if len(_plans) >= _MAX_PLANS:
            _plans.pop(next(iter(_plans)))
        _plans[key] = layout
    if layout.guard is not None:
        _last[what, extra] = layout
    return leaves, arrays, layout


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


def _views(layout: _Layout, buffers: list[np.ndarray]) -> list[np.ndarray]:
    """Each leaf's values, a view of its group's buffer in the leaf's shape."""
    views: list = [None] * len(layout.shapes)
    for (_, idx, _), buf in zip(layout.groups, buffers, strict=True):
        offset = 0
        for i in idx:
            shape = layout.shapes[i]
            end = offset + math.prod(shape)
            views[i] = buf[offset:end].reshape(shape)
            offset = end
    return views


def _unpack(leaves: list, layout: _Layout, views: list[np.ndarray]) -> PyTree:
    """The tree of ``leaves`` with each leaf replaced by its view, of the kind the leaf
    was: arrays stay views, numbers become numbers of their type."""
    values = [
        view if isinstance(leaf, np.ndarray) else _number(leaf, view)
        for leaf, view in zip(leaves, views, strict=True)
    ]
    return layout.rebuild(values)


def _number(leaf: Any, view: np.ndarray) -> Any:
    return (view.dtype.type if isinstance(leaf, np.generic) else type(leaf))(view[()])


def _fill(dests: list[np.ndarray], arrays: list[np.ndarray], scale: float | None) -> None:
    """Write each array (times ``scale``) into its destination, a view of the same shape
    (see :func:`_views`)."""
    for dest, a in zip(dests, arrays, strict=True):
        if scale is None:
            np.copyto(dest, a)
        else:
            np.multiply(a, scale, out=dest, casting="same_kind")


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
    leaves, arrays, layout = _plan(comm, "broadcast", tree, f"with root {root}", "biufc")
    groups = layout.groups
    if comm.Get_rank() == root:
        buffers = [np.empty(total, dtype) for dtype, _, total in groups]
        _fill(_views(layout, buffers), arrays, None)
        for buf in buffers:
            comm.Bcast(buf, root=root)
        return tree
    buffers = []
    for dtype, _, total in groups:
        buffers.append(np.empty(total, dtype=dtype))
        comm.Bcast(buffers[-1], root=root)
    return _unpack(leaves, layout, _views(layout, buffers))


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
    leaves their kind and dtype (float32 stays float32); every rank gets the same bits.
    The leaves of each dtype are packed into one contiguous buffer (the weight rides at
    its end) and reduced at once, never one leaf at a time:

    - when all ranks run on one machine and the tree is at least
      :data:`SHARED_MEMORY_MIN_BYTES` large, through memory the ranks share (an MPI-3
      shared-memory window): each rank writes its buffer there, sums its ``1/N`` of the
      ranks' buffers and scales it, and reads the whole mean in place; the result's
      arrays are views of that memory (see below);
    - otherwise by one ``MPI_Allreduce`` per dtype; the result's arrays are views of one
      new array per dtype.

    **The result's arrays are read-only**: on one machine they are the very memory the
    other ranks read theirs from, so writing into them would change every rank's mean.
    Copy one to modify it. The memory is reused two calls later unless some rank still
    holds an array of that call's result (checked by reference count, agreed by all
    ranks): holding results is safe, and only makes the next calls take the
    ``MPI_Allreduce`` path.

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
    leaves, arrays, layout = _plan(comm, "allreduce_mean", tree, extra, "fc")
    groups = layout.groups
    tail = 0 if weight is None else 1  # the weight, summed with the values
    if layout.shared is _UNDECIDED:
        layout.shared = _shared_reduction(comm, layout, tail)
    views = None if layout.shared is None else layout.shared.reduce(arrays, weight)
    if views is None:
        from mpi4py import MPI  # loaded already: comm exists

        buffers = [_kept_buffer(dtype, total + tail) for dtype, _, total in groups]
        _fill(_views(layout, buffers), arrays, weight)
        means = []
        for buf, (dtype, _, total) in zip(buffers, groups, strict=True):
            if tail:
                buf[-1] = weight
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            divisor = comm.Get_size() if weight is None else buf[-1].real
            if divisor == 0:
                raise ValueError(_ZERO_WEIGHTS)
            means.append(np.multiply(buf[:total], 1 / divisor, dtype=dtype))  # new arrays
        views = _read_only(_views(layout, means))
    return _unpack(leaves, layout, views)


_ZERO_WEIGHTS = "allreduce_mean: the weights of all ranks are 0"

# ----------------------------------------------------------------------------- one machine

#: Trees smaller than this many bytes are reduced by ``MPI_Allreduce`` even when the
#: ranks share a machine: for them a reduction costs its latency, which shared memory
#: (two synchronisations) does not lower.
SHARED_MEMORY_MIN_BYTES = 64 * 1024
#: Shared memory for one layout takes ``N + 2`` times the tree's bytes (a buffer per rank
#: and two for results); beyond this many bytes, ``MPI_Allreduce`` is used instead.
SHARED_MEMORY_MAX_BYTES = 1 << 30
# At most this many layouts get shared memory, which lives until the process ends (an
# array of a result may outlive any call, so it is never freed).
_MAX_SHARED = 8


def _shared_reduction(comm: Any, layout: _Layout, tail: int) -> _SharedReduction | None:
    """The shared-memory reduction for ``layout``, made on its first call (a collective
    call: every rank makes the same decision from the same layout), or ``None``."""
    nbytes = sum(dtype.itemsize * (total + tail) for dtype, _, total in layout.groups)
    if (
        _shared_memory_allowed()
        and nbytes >= SHARED_MEMORY_MIN_BYTES
        and nbytes * (comm.Get_size() + 2) <= SHARED_MEMORY_MAX_BYTES
        and _state.get("windows", 0) < _MAX_SHARED
    ):
        node = _node(comm)
        if node is not None:
            _state["windows"] = _state.get("windows", 0) + 1
            return _SharedReduction(node, layout, tail)
    return None


def _shared_memory_allowed() -> bool:
    """``TAPEGRAD_SHARED_MEMORY=0`` in the environment (the same on every rank) turns the
    shared-memory reduction off."""
    return os.environ.get("TAPEGRAD_SHARED_MEMORY", "1").strip() not in ("0", "false", "no")


def _node(comm: Any) -> Any:
    """A communicator of this machine's ranks when every rank is on this machine, else
    ``None`` (made once; a collective call)."""
    if "node" not in _state:
        from mpi4py import MPI

        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        whole = node.Get_size() == comm.Get_size()
        _state["node"] = node if whole else None
        if not whole:
            node.Free()
    return _state["node"]


class _SharedReduction:
    """The ranks of one machine averaging the trees of one layout through shared memory.

    The window holds, for each dtype group of ``total`` elements, ``N`` slots of
    ``total + tail`` (rank ``q`` writes its weighted values and its weight into slot
    ``q``) and two result buffers of ``total``. A reduction:

    1. each rank writes its weighted values into its slot;
    2. all agree, in one small ``MPI_Allreduce`` that is also the barrier after
       writing, on a result buffer that no rank still holds a result of (if both are
       held, every rank takes ``MPI_Allreduce`` instead);
    3. rank ``r`` sums elements ``[r total / N, (r + 1) total / N)`` of the slots, in rank
       order, into that buffer and scales them by ``1 / sum of weights``;
    4. a barrier; every rank returns the leaves' views of the whole buffer, made once
       (read-only).

    ``MPI_Win_sync`` around each synchronisation orders the loads and stores (the window
    is locked for its lifetime, ``MPI_MODE_NOCHECK``: no rank locks against another).
    Writing only the chunks other ranks read, and taking one's own term from one's own
    arrays, measured no faster (a reduction of the MNIST MLP's 358 KB on 2 ranks: 215 us
    from warm caches and 378 from cold, against 195 and 391 writing the whole slot), so
    each rank writes its whole slot.
    """

    def __init__(self, node: Any, layout: _Layout, tail: int) -> None:
        from mpi4py import MPI

        self.node, self.mpi = node, MPI
        self.rank, self.size = r, n = node.Get_rank(), node.Get_size()
        places, nbytes = [], 0
        for dtype, _, total in layout.groups:
            slots = nbytes
            results = slots + _aligned(n * (total + tail) * dtype.itemsize)
            nbytes = results + 2 * _aligned(total * dtype.itemsize)
            places.append((slots, results))
        self.win = MPI.Win.Allocate_shared(nbytes if r == 0 else 0, 1, comm=node)
        memory, _ = self.win.Shared_query(0)
        self.slots: list[np.ndarray] = []
        self.results: tuple[list, list] = ([], [])
        for (dtype, _, total), (slots, results) in zip(layout.groups, places, strict=True):
            count = n * (total + tail)
            self.slots.append(np.frombuffer(memory, dtype, count, slots).reshape(n, -1))
            for k in (0, 1):
                offset = results + k * _aligned(total * dtype.itemsize)
                # One array per buffer: every view of it refers to it (numpy collapses a
                # view's base to the array that wraps foreign memory), so its reference
                # count says whether a result made from it is still held.
                self.results[k].append(np.frombuffer(memory, dtype, total, offset))
        # Where each leaf goes in this rank's slot, and its result in each buffer.
        self.packed = _views(layout, [slots[r] for slots in self.slots])
        self.views = (_read_only(_views(layout, self.results[0])),
                      _read_only(_views(layout, self.results[1])))  # fmt: skip
        self.win.Lock_all(MPI.MODE_NOCHECK)
        # No rank ever locks against another (MODE_NOCHECK): the epoch only makes
        # MPI_Win_sync legal, and opening and closing it are local calls.
        atexit.register(self.win.Unlock_all)  # closed before MPI finalises
        self.watched = (tuple(self.results[0] + self.views[0]),
                        tuple(self.results[1] + self.views[1]))  # fmt: skip
        self.idle = (self._holders(0), self._holders(1))
        self.flags = np.zeros(2, np.int8)
        self.next = 0

    def _holders(self, k: int) -> int:
        """References to result buffer ``k`` and to its leaves' views: the views made
        here, and whatever the results handed out still hold."""
        return sum(map(sys.getrefcount, self.watched[k]))

    def _synchronise(self, flags: np.ndarray | None = None) -> None:
        self.win.Sync()
        if flags is None:
            self.node.Barrier()
        else:
            self.node.Allreduce(self.mpi.IN_PLACE, flags, op=self.mpi.MAX)
        self.win.Sync()

    def reduce(self, arrays: list[np.ndarray], weight: float | None) -> list | None:
        """Each leaf's mean, a read-only view of a result buffer; ``None`` when both
        result buffers are still held somewhere (every rank then gets ``None``)."""
        r, n = self.rank, self.size
        _fill(self.packed, arrays, weight)
        if weight is not None:
            for slots in self.slots:
                slots[r, -1] = weight
        flags = self.flags
        flags[0] = self._holders(0) > self.idle[0]
        flags[1] = self._holders(1) > self.idle[1]
        self._synchronise(flags)
        k = self.next if not flags[self.next] else 1 - self.next
        if flags[k]:
            return None
        self.next = 1 - k
        divisors = [n if weight is None else _sum_in_order(s[:, -1]).real for s in self.slots]
        if any(d == 0 for d in divisors):
            raise ValueError(_ZERO_WEIGHTS)
        for slots, result, divisor in zip(self.slots, self.results[k], divisors, strict=True):
            lo, hi = r * result.size // n, (r + 1) * result.size // n
            mine = result[lo:hi]
            np.add(slots[0, lo:hi], slots[1, lo:hi], out=mine)
            for q in range(2, n):
                np.add(mine, slots[q, lo:hi], out=mine)
            np.multiply(mine, 1 / divisor, out=mine)
        self._synchronise()
        return self.views[k]


def _read_only(arrays: list[np.ndarray]) -> list[np.ndarray]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _sum_in_order(values: np.ndarray) -> np.generic:
    """``values[0] + values[1] + ...`` in their dtype, left to right, as every rank sums."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _aligned(nbytes: int) -> int:
    return -(-nbytes // 64) * 64  # a cache line, so no two buffers share one
