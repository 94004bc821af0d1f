"""Joining arrays and picking from them: ``concatenate``, ``stack``, ``take``.

Each rule hands every input its own slice of the cotangent.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence

import numpy as np

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import ArrayLike, getitem, reshape
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, bind

__all__ = ["concatenate", "stack", "take"]


def _concatenate_forward(*xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _concatenate_vjp(i, g, ans, *xs, axis=0):
    """Each input gets its own slice of the cotangent along ``axis``."""
    if axis is None:  # numpy flattens the inputs first
        start = builtins.sum(math.prod(shape_of(x)) for x in xs[:i])
        piece = getitem(g, slice(start, start + math.prod(shape_of(xs[i]))))
        return reshape(piece, shape_of(xs[i]))
    ax = axis % len(shape_of(xs[i]))
    start = builtins.sum(shape_of(x)[ax] for x in xs[:i])
    return getitem(g, (slice(None),) * ax + (slice(start, start + shape_of(xs[i])[ax]),))


CONCATENATE = Primitive("concatenate", _concatenate_forward, _concatenate_vjp)


def _sample_join(draw):
    shape = draw.shape(min_dims=1)
    n = draw.integers(1, 3)
    arrays = [draw.array(shape, Interval()) for _ in range(n)]
    return (arrays,), {"axis": draw.integers(-len(shape), len(shape) - 1)}


def _join_argnums_error(name: str) -> ValueError:
    return ValueError(f"tg.{name}: need at least one array")


@op(np.concatenate, sample=_sample_join)
def concatenate(arrays: Sequence[ArrayLike], axis: int | None = 0) -> ArrayLike:
    """Join arrays along an existing axis. VJP: each input gets its slice of ``g``."""
    arrays = tuple(arrays)
    if not arrays:
        raise _join_argnums_error("concatenate")
    return bind(CONCATENATE, arrays, {"axis": None if axis is None else int(axis)})


def _stack_forward(*xs, axis=0):
    return np.stack(xs, axis=axis)


def _stack_vjp(i, g, ans, *xs, axis=0):
    """Input ``i`` gets the cotangent's slice ``i`` along the new axis."""
    ax = axis % (len(shape_of(xs[i])) + 1)
    return getitem(g, (slice(None),) * ax + (i,))


STACK = Primitive("stack", _stack_forward, _stack_vjp)


@op(np.stack, sample=_sample_join)
def stack(arrays: Sequence[ArrayLike], axis: int = 0) -> ArrayLike:
    """Join arrays of one shape along a new axis. VJP: input ``i`` gets ``g`` at ``i``."""
    arrays = tuple(arrays)
    if not arrays:
        raise _join_argnums_error("stack")
    return bind(STACK, arrays, {"axis": int(axis)})


def take(x: ArrayLike, indices: ArrayLike, axis: int | None = None) -> ArrayLike:
    """``np.take``: pick ``indices`` along ``axis`` (from the flattened array by default).

    VJP: ``g`` scattered back to the picked places (repeats add up).
    """
    if isinstance(indices, (list, tuple, int)):
        indices = np.asarray(indices)
    if dtype_of(indices).kind not in "iu":
        raise TypeError(f"tg.take: indices must be integers, got dtype {dtype_of(indices)}")
    if axis is None:
        return getitem(reshape(x, (-1,)), indices)
    ax = axis % len(shape_of(x))
    return getitem(x, (slice(None),) * ax + (indices,))
