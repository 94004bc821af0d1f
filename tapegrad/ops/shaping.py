"""Reshaping, joining and splitting: ``concatenate``, ``stack``, ``take``, ``ravel``,
``squeeze``, ``expand_dims``, ``swapaxes``, ``moveaxis``, ``rollaxis``, ``broadcast_arrays``,
the ``*stack`` and ``*split`` families, ``append`` and ``atleast_*d``; ``linspace`` and
``gradient``, numpy's arithmetic written with these ops.

``concatenate`` and ``stack`` are primitives: each rule hands every input its own slice of
the cotangent. The rest are composites of them and of ``reshape``, ``transpose``,
``broadcast_to`` and ``getitem`` (core.py), whose rules already send the cotangent back; a
function that returns several arrays (``split``) gives each piece its own record, and the
interpreter adds the pieces' cotangents into their input's.

Shapes, axes and numpy's errors are worked out on a zero-memory stand-in of the input
(:func:`_probe`), so numpy's own shape logic is used and no value is read.
"""

from __future__ import annotations

import builtins
import itertools
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    broadcast_to,
    cast,
    equal,
    getitem,
    reshape,
    transpose,
    where,
    zero_vjp,
)
from tapegrad.ops.elementwise import floor
from tapegrad.ops.reductions import _along, _in_dtype
from tapegrad.ops.reductions import any as _any
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "append",
    "array_split",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "broadcast_arrays",
    "column_stack",
    "concatenate",
    "dsplit",
    "dstack",
    "expand_dims",
    "gradient",
    "hsplit",
    "hstack",
    "linspace",
    "moveaxis",
    "ravel",
    "rollaxis",
    "split",
    "squeeze",
    "stack",
    "swapaxes",
    "take",
    "vsplit",
    "vstack",
]

# numpy 2 returns several arrays (broadcast_arrays, atleast_1d(a, b)) as a tuple, numpy 1 as a list.
_SEVERAL = tuple if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else list


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


# =======================================================================================
# Helpers: numpy's shape logic on a stand-in, axes, array-likes


def _probe(x: ArrayLike) -> np.ndarray:
    """A read-only stand-in of ``x``'s shape that takes no memory (a broadcast scalar)."""
    return np.broadcast_to(np.empty((), np.bool_), shape_of(x))


def _renamed(e: Exception, message: str) -> Exception:
    """``e``'s kind (AxisError, ValueError, ...) with ``message``."""
    try:
        return type(e)(message)
    except Exception:  # a numpy subclass with its own constructor: keep the builtin kind
        return next(k for k in (ValueError, TypeError, IndexError) if isinstance(e, k))(message)


def _numpy_shape(name: str, fn: Any, x: ArrayLike, *args: Any) -> tuple[int, ...]:
    """The shape of numpy's ``fn(x, *args)``, computed on a stand-in; numpy's errors are
    raised naming ``tg.<name>`` and the input shape."""
    try:
        return fn(_probe(x), *args).shape
    except (ValueError, TypeError, IndexError) as e:
        raise _renamed(e, f"tg.{name}: {e} (input shape {shape_of(x)})") from e


def _axis(axis: Any, ndim: int, name: str) -> int:
    """``axis`` in ``0..ndim-1`` (a negative axis counts from the end); numpy's AxisError."""
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise AxisError(f"tg.{name}: axis {axis} is out of bounds for array of dimension {ndim}")
    return axis % ndim


def _axes(axes: Any, ndim: int, name: str) -> tuple[int, ...]:
    """An axis or a sequence of axes, each normalized by :func:`_axis`."""
    if isinstance(axes, (int, np.integer)):
        return (_axis(axes, ndim, name),)
    return tuple(_axis(a, ndim, name) for a in axes)


def _as_array(a: ArrayLike) -> ArrayLike:
    """numpy's ``asanyarray`` for anything but a traced value (a list becomes an array)."""
    return a if type(a) is Traced else np.asanyarray(a)


def _ndim(a: ArrayLike) -> int:
    return len(shape_of(a))


def _sequence(tup: Any, name: str) -> Sequence[ArrayLike]:
    """The arrays of ``tup`` for the ``*stack`` functions: a sequence, or the rows of an
    array; numpy's TypeError for anything else (a generator, say)."""
    if isinstance(tup, (np.ndarray, Traced)):
        return list(tup)
    if not hasattr(tup, "__getitem__"):
        raise TypeError(
            f'tg.{name}: arrays to stack must be passed as a "sequence" type such as list or tuple'
        )
    return tup


# =======================================================================================
# Reshaping: composites of reshape and transpose


def _sample_ravel(draw):
    shape = draw.shape()
    return (draw.array(shape, Interval()),), {"order": draw.choice(("C", "F"))}


@op(np.ravel, sample=_sample_ravel, method="ravel")
def ravel(a: ArrayLike, order: str = "C") -> ArrayLike:
    """The elements of ``a`` as a 1-d array, read in ``order``: ``"C"`` (last axis fastest)
    or ``"F"`` (first axis fastest); ``"A"`` and ``"K"`` follow the memory layout, so only
    plain arrays take them.

    VJP: ``g`` reshaped back (and transposed back for ``"F"``).
    """
    if order == "C":
        return reshape(a, (-1,))
    if order == "F":
        return reshape(transpose(a), (-1,))
    if type(a) is not Traced:
        return np.ravel(a, order)  # numpy's "A", "K", and its error for anything else
    raise ValueError(
        f'tg.ravel: order={order!r} is not supported on traced values ("A" and "K" read '
        'the memory layout, which a traced value does not expose); use "C" or "F"'
    )


@op(None, sample=_sample_ravel, name="flatten", method="flatten")
def _flatten(a: ArrayLike, order: str = "C") -> ArrayLike:
    """``a.flatten(order)``: a copy of ``a`` as a 1-d array (the method of ndarray; on
    traced values, which are never written to, the same as :func:`ravel`).

    VJP: ``g`` reshaped back (and transposed back for ``"F"``).
    """
    if type(a) is not Traced:
        return np.asanyarray(a).flatten(order)
    return ravel(a, order)


def _sample_squeeze(draw):
    shape = draw.shape()
    ones = draw.integers(0, 2 ** len(shape) - 1)
    shape = tuple(1 if ones >> k & 1 else s for k, s in enumerate(shape))
    unit = [k for k, s in enumerate(shape) if s == 1]
    options = [None, *unit, *(k - len(shape) for k in unit)] + ([tuple(unit)] if unit else [])
    return (draw.array(shape, Interval()),), {"axis": draw.choice(options)}


@op(np.squeeze, sample=_sample_squeeze, method="squeeze")
def squeeze(a: ArrayLike, axis: int | Sequence[int] | None = None) -> ArrayLike:
    """``a`` without its length-1 axes (only those in ``axis`` when given; numpy's
    ValueError if one of them is not of length 1).

    VJP: ``g`` reshaped back.
    """
    return reshape(a, _numpy_shape("squeeze", np.squeeze, a, axis))


def _sample_expand_dims(draw):
    shape = draw.shape(max_dims=2)
    k = draw.integers(1, 2)
    out_ndim = len(shape) + k
    axes = draw.choice(list(itertools.combinations(range(out_ndim), k)))
    negative = draw.integers(0, 2**k - 1)
    axes = tuple(a - out_ndim if negative >> j & 1 else a for j, a in enumerate(axes))
    axis = axes[0] if k == 1 and draw.choice((False, True)) else axes
    return (draw.array(shape, Interval()),), {"axis": axis}


@op(np.expand_dims, sample=_sample_expand_dims)
def expand_dims(a: ArrayLike, axis: int | Sequence[int]) -> ArrayLike:
    """``a`` with new axes of length 1 at ``axis`` (an int or a tuple, positions in the
    result).

    VJP: ``g`` reshaped back.
    """
    return reshape(a, _numpy_shape("expand_dims", np.expand_dims, a, axis))


def _sample_swapaxes(draw):
    shape = draw.shape(min_dims=1)
    n = len(shape)
    return (draw.array(shape, Interval()), draw.integers(-n, n - 1), draw.integers(-n, n - 1)), {}


@op(np.swapaxes, sample=_sample_swapaxes, method="swapaxes")
def swapaxes(a: ArrayLike, axis1: int, axis2: int) -> ArrayLike:
    """``a`` with axes ``axis1`` and ``axis2`` interchanged.

    VJP: ``g`` with the two axes swapped back.
    """
    ndim = _ndim(a)
    perm = list(range(ndim))
    i, j = _axis(axis1, ndim, "swapaxes"), _axis(axis2, ndim, "swapaxes")
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


def _sample_moveaxis(draw):
    shape = draw.shape(min_dims=1)
    n = len(shape)
    k = draw.integers(1, n)
    ends = []
    for _ in range(2):
        axes = draw.choice(list(itertools.permutations(range(n), k)))
        negative = draw.integers(0, 2**k - 1)
        ends.append([a - n if negative >> j & 1 else a for j, a in enumerate(axes)])
    kind = draw.choice((int, list, tuple)) if k == 1 else draw.choice((list, tuple))
    source, destination = (e[0] if kind is int else kind(e) for e in ends)
    return (draw.array(shape, Interval()), source, destination), {}


@op(np.moveaxis, sample=_sample_moveaxis)
def moveaxis(
    a: ArrayLike, source: int | Sequence[int], destination: int | Sequence[int]
) -> ArrayLike:
    """``a`` with the axes ``source`` moved to the positions ``destination``, the other
    axes kept in order.

    VJP: ``g`` with the axes moved back.
    """
    ndim = _ndim(a)
    _numpy_shape("moveaxis", np.moveaxis, a, source, destination)  # numpy's checks
    src, dst = _axes(source, ndim, "moveaxis"), _axes(destination, ndim, "moveaxis")
    perm = [k for k in range(ndim) if k not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        perm.insert(d, s)
    return transpose(a, perm)


def _sample_rollaxis(draw):
    shape = draw.shape(min_dims=1)
    n = len(shape)
    return (draw.array(shape, Interval()), draw.integers(-n, n - 1)), {
        "start": draw.integers(-n, n)
    }


@op(np.rollaxis, sample=_sample_rollaxis)
def rollaxis(a: ArrayLike, axis: int, start: int = 0) -> ArrayLike:
    """``a`` with axis ``axis`` moved to stand before the axis now at position ``start``
    (numpy's older :func:`moveaxis`): ``start`` runs from ``-ndim`` to ``ndim``, a negative
    one counting from the end and ``ndim`` moving the axis last; the other axes keep
    their order.

    VJP: ``g`` with the axis moved back (the inverse permutation).
    """
    ndim = _ndim(a)
    _numpy_shape("rollaxis", np.rollaxis, a, axis, start)  # numpy's checks
    src = _axis(axis, ndim, "rollaxis")
    dst = operator.index(start)
    dst += ndim if dst < 0 else 0
    if src < dst:  # counted before the axis was taken out
        dst -= 1
    perm = [k for k in range(ndim) if k != src]
    perm.insert(dst, src)
    return transpose(a, perm)


def _sample_broadcast_arrays(draw):
    shapes = draw.broadcastable_shapes(2)
    return tuple(draw.array(s, Interval()) for s in shapes), {}


@op(np.broadcast_arrays, sample=_sample_broadcast_arrays, argnums=(0, 1))
def broadcast_arrays(*args: ArrayLike, subok: bool = False) -> tuple[ArrayLike, ...]:
    """The arrays broadcast to their common shape, as a tuple (numpy 2; a list on numpy 1).
    An argument that already has that shape is returned as it is (``subok`` is accepted
    for numpy's signature; there are no subclasses here).

    VJP: each cotangent summed over the copies broadcasting made.
    """
    arrays = [_as_array(a) for a in args]
    shape = np.broadcast_shapes(*(shape_of(a) for a in arrays))
    return _SEVERAL(a if shape_of(a) == shape else broadcast_to(a, shape) for a in arrays)


def _atleast(arys: tuple, fix: Any) -> Any:
    """numpy's ``atleast_*d`` pattern: one result for one argument, else a tuple."""
    res = [fix(_as_array(a)) for a in arys]
    return res[0] if len(res) == 1 else _SEVERAL(res)


def _sample_one(draw):
    shape = draw.shape()
    return (draw.array(shape, Interval()),), {}


@op(np.atleast_1d, sample=_sample_one)
def atleast_1d(*arys: ArrayLike) -> Any:
    """Each argument with at least one axis (a 0-d value becomes shape ``(1,)``); one
    argument gives an array, several a tuple (numpy 2; a list on numpy 1).

    VJP: ``g`` reshaped back.
    """
    return _atleast(arys, lambda a: reshape(a, (1,)) if _ndim(a) == 0 else a)


def _2d(a: ArrayLike) -> ArrayLike:
    ndim = _ndim(a)
    return a if ndim >= 2 else reshape(a, (1, 1) if ndim == 0 else (1, shape_of(a)[0]))


@op(np.atleast_2d, sample=_sample_one)
def atleast_2d(*arys: ArrayLike) -> Any:
    """Each argument with at least two axes: ``()`` becomes ``(1, 1)``, ``(n,)`` becomes
    ``(1, n)``.

    VJP: ``g`` reshaped back.
    """
    return _atleast(arys, _2d)


def _3d(a: ArrayLike) -> ArrayLike:
    shape = shape_of(a)
    if len(shape) >= 3:
        return a
    return reshape(a, {0: (1, 1, 1), 1: (1, *shape, 1), 2: (*shape, 1)}[len(shape)])


@op(np.atleast_3d, sample=_sample_one)
def atleast_3d(*arys: ArrayLike) -> Any:
    """Each argument with at least three axes: ``()`` becomes ``(1, 1, 1)``, ``(n,)``
    becomes ``(1, n, 1)``, ``(m, n)`` becomes ``(m, n, 1)``.

    VJP: ``g`` reshaped back.
    """
    return _atleast(arys, _3d)


# =======================================================================================
# Joining: composites of concatenate


def _join(arrays: list, axis: int, dtype: Any, casting: str, name: str) -> ArrayLike:
    """``concatenate(arrays, axis)``, cast first to ``dtype`` under numpy's ``casting`` rule."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        for a in arrays:
            if not np.can_cast(dtype_of(a), dtype, casting):
                raise TypeError(
                    f"tg.{name}: Cannot cast array data from {dtype_of(a)!r} to {dtype!r} "
                    f"according to the rule {casting!r}"
                )
        arrays = [a if dtype_of(a) == dtype else cast(a, dtype) for a in arrays]
    if not arrays:
        raise ValueError(f"tg.{name}: need at least one array to concatenate")
    return concatenate(arrays, axis)


def _stacking(vary: Any) -> Any:
    """A sampler of 1-3 arrays that join: ``vary(ndim)`` is the axis whose length may differ
    between them (``None``: all of one shape)."""

    def sample(draw):
        shape = draw.shape(max_dims=3)
        axis = vary(len(shape))
        arrays = []
        for _ in range(draw.integers(1, 3)):
            s = list(shape)
            if axis is not None:
                s[axis] = draw.integers(1, 3)
            arrays.append(draw.array(s, Interval()))
        return (arrays,), {}

    return sample


@op(np.vstack, sample=_stacking(lambda ndim: 0 if ndim >= 2 else None))
def vstack(tup: Sequence[ArrayLike], *, dtype: Any = None, casting: str = "same_kind") -> ArrayLike:
    """Join arrays row-wise: ``concatenate`` along axis 0 after :func:`atleast_2d`, cast
    to ``dtype`` (if given) under numpy's ``casting`` rule.

    VJP: each input gets its rows of ``g``.
    """
    arrays = [_2d(_as_array(a)) for a in _sequence(tup, "vstack")]
    return _join(arrays, 0, dtype, casting, "vstack")


@op(np.hstack, sample=_stacking(lambda ndim: {0: None, 1: 0}.get(ndim, 1)))
def hstack(tup: Sequence[ArrayLike], *, dtype: Any = None, casting: str = "same_kind") -> ArrayLike:
    """Join arrays column-wise: along axis 1, or along axis 0 for 1-d arrays (0-d ones count
    as 1-d); ``dtype`` and ``casting`` as in :func:`vstack`.

    VJP: each input gets its columns of ``g``.
    """
    arrays = [_as_array(a) for a in _sequence(tup, "hstack")]
    arrays = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in arrays]
    axis = 0 if arrays and _ndim(arrays[0]) == 1 else 1
    return _join(arrays, axis, dtype, casting, "hstack")


@op(np.dstack, sample=_stacking(lambda ndim: 2 if ndim >= 3 else None))
def dstack(tup: Sequence[ArrayLike]) -> ArrayLike:
    """Join arrays depth-wise: along axis 2 after :func:`atleast_3d`.

    VJP: each input gets its slice of ``g`` along axis 2.
    """
    arrays = [_3d(_as_array(a)) for a in _sequence(tup, "dstack")]
    return _join(arrays, 2, None, "same_kind", "dstack")


def _sample_column_stack(draw):
    rows = draw.shape(min_dims=1, max_dims=1)[0]
    arrays = []
    for _ in range(draw.integers(1, 3)):
        shape = (rows,) if draw.choice((False, True)) else (rows, draw.integers(1, 3))
        arrays.append(draw.array(shape, Interval()))
    return (arrays,), {}


@op(np.column_stack, sample=_sample_column_stack)
def column_stack(tup: Sequence[ArrayLike]) -> ArrayLike:
    """Join 1-d arrays as columns (and 2-d arrays as they are) into a 2-d array.

    VJP: each input gets its columns of ``g``.
    """
    arrays = [_as_array(a) for a in _sequence(tup, "column_stack")]
    arrays = [reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in arrays]
    return _join(arrays, 1, None, "same_kind", "column_stack")


def _sample_append(draw):
    if draw.choice((False, True)):
        return (draw.array(draw.shape(), Interval()), draw.array(draw.shape(), Interval())), {}
    shape = draw.shape(min_dims=1)
    axis = draw.integers(-len(shape), len(shape) - 1)
    other = list(shape)
    other[axis] = draw.integers(1, 3)
    arrays = (draw.array(shape, Interval()), draw.array(other, Interval()))
    return arrays, {"axis": axis}


@op(np.append, sample=_sample_append, argnums=(0, 1))
def append(arr: ArrayLike, values: ArrayLike, axis: int | None = None) -> ArrayLike:
    """``values`` appended to ``arr`` along ``axis``; with ``axis=None`` both are flattened
    first and the result is 1-d.

    VJP: each gets its part of ``g`` (reshaped back when flattened).
    """
    return concatenate((_as_array(arr), _as_array(values)), axis)


# =======================================================================================
# Splitting: one getitem per piece


def _division_points(n: int, indices_or_sections: Any, name: str) -> list[int]:
    """numpy's ``array_split``: where the pieces of an axis of length ``n`` start and end."""
    try:
        points = [0, *(operator.index(k) for k in indices_or_sections), n]
    except TypeError:
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"tg.{name}: number sections must be larger than 0.") from None
        each, extras = divmod(n, sections)
        sizes = [0] + extras * [each + 1] + (sections - extras) * [each]
        points = list(itertools.accumulate(sizes))
    return points


def _split(ary: ArrayLike, indices_or_sections: Any, axis: int, name: str) -> list[ArrayLike]:
    ary = _as_array(ary)
    ax = _axis(axis, _ndim(ary), name)
    points = _division_points(shape_of(ary)[ax], indices_or_sections, name)
    before = (slice(None),) * ax
    return [getitem(ary, (*before, slice(s, e))) for s, e in itertools.pairwise(points)]


def _sections(draw, n: int, equal: bool) -> Any:
    """A sections count (dividing ``n`` when ``equal``) or a list of split points (in any
    order, negative or past the end: pieces may be empty or overlap)."""
    if draw.choice((False, True)):
        return [draw.integers(-n, n + 1) for _ in range(draw.integers(0, 3))]
    if equal:
        return draw.choice([d for d in range(1, n + 1) if n % d == 0])
    return draw.integers(1, n + 1)


def _splitting(equal: bool, fixed_axis: Any = None, min_dims: int = 1) -> Any:
    """A sampler for the ``*split`` functions: ``fixed_axis(ndim)`` gives the axis the
    function splits (``None``: ``split``/``array_split``, whose ``axis`` is drawn)."""

    def sample(draw):
        shape = draw.shape(min_dims=min_dims)
        if fixed_axis is None:
            axis = draw.integers(-len(shape), len(shape) - 1)
            sections = _sections(draw, shape[axis], equal)
            return (draw.array(shape, Interval()), sections), {"axis": axis}
        sections = _sections(draw, shape[fixed_axis(len(shape))], equal)
        return (draw.array(shape, Interval()), sections), {}

    return sample


@op(np.split, sample=_splitting(equal=True))
def split(ary: ArrayLike, indices_or_sections: Any, axis: int = 0) -> list[ArrayLike]:
    """A list of pieces of ``ary`` along ``axis``: ``indices_or_sections`` equal pieces
    (numpy's ValueError if the axis does not divide), or the pieces between the given split
    points.

    VJP: each piece's cotangent goes back to its place (overlaps add up).
    """
    if not hasattr(indices_or_sections, "__len__"):
        n = shape_of(ary)[_axis(axis, len(shape_of(ary)), "split")]
        if n % int(indices_or_sections):
            raise ValueError(
                f"tg.split: array split does not result in an equal division (an axis of "
                f"length {n} into {indices_or_sections} sections); use array_split"
            )
    return _split(ary, indices_or_sections, axis, "split")


@op(np.array_split, sample=_splitting(equal=False))
def array_split(ary: ArrayLike, indices_or_sections: Any, axis: int = 0) -> list[ArrayLike]:
    """Like :func:`split`, but ``n`` sections of an axis of length ``l`` need not divide it:
    the first ``l % n`` pieces get one element more.

    VJP: each piece's cotangent goes back to its place (overlaps add up).
    """
    return _split(ary, indices_or_sections, axis, "array_split")


@op(np.hsplit, sample=_splitting(equal=True, fixed_axis=lambda ndim: 1 if ndim > 1 else 0))
def hsplit(ary: ArrayLike, indices_or_sections: Any) -> list[ArrayLike]:
    """:func:`split` along axis 1 (axis 0 for 1-d arrays).

    VJP: each piece's cotangent goes back to its place.
    """
    ndim = _ndim(ary)
    if ndim == 0:
        raise ValueError("tg.hsplit: hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if ndim > 1 else 0)


@op(np.vsplit, sample=_splitting(equal=True, fixed_axis=lambda ndim: 0, min_dims=2))
def vsplit(ary: ArrayLike, indices_or_sections: Any) -> list[ArrayLike]:
    """:func:`split` along axis 0 of an array of 2 or more axes.

    VJP: each piece's cotangent goes back to its place.
    """
    if _ndim(ary) < 2:
        raise ValueError("tg.vsplit: vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


@op(np.dsplit, sample=_splitting(equal=True, fixed_axis=lambda ndim: 2, min_dims=3))
def dsplit(ary: ArrayLike, indices_or_sections: Any) -> list[ArrayLike]:
    """:func:`split` along axis 2 of an array of 3 or more axes.

    VJP: each piece's cotangent goes back to its place.
    """
    if _ndim(ary) < 3:
        raise ValueError("tg.dsplit: dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


# =======================================================================================
# Picking


def _take_index_forward(indices, size, mode):
    return np.mod(indices, size) if mode == "wrap" else np.clip(indices, 0, size - 1)


# The wrapped or clipped indices: integers, recorded (a replay recomputes them) with no
# derivative.
TAKE_INDEX = Primitive("take_index", _take_index_forward, zero_vjp)


def _sample_take(draw):
    shape = draw.shape(min_dims=1)
    axis = draw.choice((None, *range(-len(shape), len(shape))))
    size = math.prod(shape) if axis is None else shape[axis]
    mode = draw.choice(("raise", "wrap", "clip"))
    low, high = (-size, size - 1) if mode == "raise" else (-2 * size, 2 * size)
    count = draw.integers(0, 4)  # 0: one integer index
    if count:
        indices = [draw.integers(low, high) for _ in range(count)]
    else:
        indices = draw.integers(low, high)
    kwargs = {"axis": axis} if mode == "raise" else {"axis": axis, "mode": mode}
    return (draw.array(shape, Interval()), indices), kwargs


@op(np.take, sample=_sample_take, method="take")
def take(a: ArrayLike, indices: ArrayLike, axis: int | None = None, mode: str = "raise") -> Any:
    """``np.take``: the elements at ``indices`` along ``axis`` (of the flattened array by
    default). ``indices`` are integers: an int, a list, an array or a traced integer array.
    ``mode="raise"`` allows negative indices and raises past the ends; ``"wrap"`` wraps
    every index around; ``"clip"`` clips it to ``0..n-1`` (so no negative indexing).

    VJP: ``g`` scattered back to the picked places (repeats add up).
    """
    if isinstance(indices, (list, tuple, int)):
        indices = np.asarray(indices)
    if dtype_of(indices).kind not in "iu":
        raise TypeError(f"tg.take: indices must be integers, got dtype {dtype_of(indices)}")
    a = _as_array(a)
    if axis is None:
        a, ax = ravel(a), 0
    else:
        ax = _axis(axis, _ndim(a), "take")
    if mode != "raise":
        if mode not in ("wrap", "clip"):
            raise ValueError(f"tg.take: mode must be 'raise', 'wrap' or 'clip', not {mode!r}")
        indices = bind(TAKE_INDEX, (indices,), {"size": shape_of(a)[ax], "mode": mode})
    return getitem(a, (slice(None),) * ax + (indices,))


# =======================================================================================
# Ranges and numerical derivatives: numpy's arithmetic, written with ops


def _inexact_dtype(*values: ArrayLike) -> np.dtype:
    """numpy's result type of ``values`` (Python numbers weak), made inexact: integers and
    booleans give float64, as ``np.linspace`` does."""
    dt = np.result_type(*(v if type(v) in (int, float, complex) else dtype_of(v) for v in values))
    return dt if dt.kind in "fc" else np.result_type(dt, 1.0)


def _sample_linspace(draw):
    start_shape, stop_shape = draw.broadcastable_shapes(2, max_dims=2)
    num = draw.integers(0, 5)
    endpoint = draw.choice((True, False))
    ndim = 1 + len(np.broadcast_shapes(start_shape, stop_shape))
    kwargs = {"num": num, "endpoint": endpoint, "axis": draw.integers(-ndim, ndim - 1)}
    if (num - 1 if endpoint else num) > 0 and draw.choice((False, True)):
        kwargs["retstep"] = True  # the step is NaN (not differentiable) otherwise
    return (draw.array(start_shape, Interval()), draw.array(stop_shape, Interval())), kwargs


@op(
    np.linspace,
    sample=_sample_linspace,
    argnums=(0, 1),
    convention="numpy's arithmetic, bit for bit: start + arange(num) * step, the last sample "
    "is stop itself (endpoint=True); where some step is 0, arange(num) / div * (stop - start)",
)
def linspace(
    start: ArrayLike,
    stop: ArrayLike,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
    *,
    device: Any = None,
) -> Any:
    """``num`` evenly spaced samples from ``start`` to ``stop`` (scalars or arrays, which
    broadcast to a shape ``S``): an array of shape ``S`` with a new axis of length ``num``
    inserted at ``axis``, and with ``retstep`` the step ``(stop - start) / div`` too
    (shape ``S``; NaN, a Python float, when ``div = num - 1`` or ``num`` without endpoint is
    0). The dtype is that of ``start`` and ``stop`` made inexact, or ``dtype`` (an integer
    dtype floors the samples first, as numpy does). numpy's computation, op by op:
    ``start + k * step`` for ``k = 0 .. num-1`` (``start + k / div * (stop - start)`` if
    any step is 0), the last sample replaced by ``stop`` when ``endpoint``.

    VJP: ``sum_k (1 - k/div) g_k`` to ``start``, ``sum_k (k/div) g_k`` to ``stop``.
    (Sample ``k`` is ``(1 - k/div) start + (k/div) stop``, the last one ``stop`` itself
    with ``endpoint``; the step's cotangent ``h`` adds ``-h/div`` and ``h/div``.)
    """
    if device not in (None, "cpu"):
        raise ValueError(f"tg.linspace: device must be None or 'cpu', got {device!r}")
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    start, stop = (
        v if type(v) in (Traced, int, float, complex) else np.asanyarray(v) for v in (start, stop)
    )
    dt = _inexact_dtype(start, stop)
    start, stop = _in_dtype(start, dt), _in_dtype(stop, dt)
    delta = stop - start
    k = np.arange(0, num, dtype=dt).reshape((-1,) + (1,) * len(shape_of(delta)))
    if div > 0:
        step = delta / div
        # numpy's branch for denormal steps (gh-5437), taken when any step is 0: an op, so
        # that a replayed tape decides it again
        y = where(_any(equal(step, 0)), k / div * delta, k * step)
    else:
        step = np.nan
        y = k * delta
    y = y + start
    if endpoint and num > 1:
        y = where((np.arange(num) == num - 1).reshape(shape_of(k)), stop, y)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None:
        if np.issubdtype(dtype, np.integer):
            y = floor(y)
        if dtype_of(y) != np.dtype(dtype):
            y = cast(y, dtype)
    return (y, step) if retstep else y


def _spacing(spacing: ArrayLike, n: int) -> ArrayLike:
    """One axis's spacing for :func:`gradient`: a scalar (maybe traced) as it is, or the
    differences of constant coordinates, reduced to their first one when all are equal (as
    numpy does, so that the uniform formulas give numpy's bits)."""
    if not shape_of(spacing):
        return spacing
    if type(spacing) is Traced:
        raise TypeError(
            "tg.gradient: coordinate arrays are not differentiated; pass them as constants "
            "(tg.stop_gradient(x)), or a traced scalar spacing"
        )
    x = np.asanyarray(spacing)
    if x.ndim != 1:
        raise ValueError("distances must be either scalars or 1d")
    if len(x) != n:
        raise ValueError("when 1d, distances must match the length of the corresponding dimension")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64)
    dx = np.diff(x)
    return dx[0] if (dx == dx[0]).all() else dx


def _one_gradient(f: ArrayLike, axis: int, dx: ArrayLike, edge_order: int, otype: Any) -> Any:
    """numpy's ``gradient`` of ``f`` along one axis, expression by expression."""
    nd = len(shape_of(f))

    def part(start: int | None, stop: int | None) -> ArrayLike:
        return getitem(f, _along(axis, slice(start, stop)))

    def along(c: np.ndarray) -> np.ndarray:  # coefficients, one per slice along axis
        return c.reshape(tuple(-1 if d == axis else 1 for d in range(nd)))

    uniform = not shape_of(dx)
    if uniform:
        interior = (part(2, None) - part(None, -2)) / (2.0 * dx)
    else:
        dx1, dx2 = dx[0:-1], dx[1:]
        a = along(-(dx2) / (dx1 * (dx1 + dx2)))
        b = along((dx2 - dx1) / (dx1 * dx2))
        c = along(dx1 / (dx2 * (dx1 + dx2)))
        interior = a * part(None, -2) + b * part(1, -1) + c * part(2, None)
    if edge_order == 1:
        first = (part(1, 2) - part(0, 1)) / (dx if uniform else dx[0])
        last = (part(-1, None) - part(-2, -1)) / (dx if uniform else dx[-1])
    else:
        if uniform:
            a, b, c = -1.5 / dx, 2.0 / dx, -0.5 / dx
        else:
            dx1, dx2 = dx[0], dx[1]
            a = -(2.0 * dx1 + dx2) / (dx1 * (dx1 + dx2))
            b = (dx1 + dx2) / (dx1 * dx2)
            c = -dx1 / (dx2 * (dx1 + dx2))
        first = a * part(0, 1) + b * part(1, 2) + c * part(2, 3)
        if uniform:
            a, b, c = 0.5 / dx, -2.0 / dx, 1.5 / dx
        else:
            dx1, dx2 = dx[-2], dx[-1]
            a = (dx2) / (dx1 * (dx1 + dx2))
            b = -(dx2 + dx1) / (dx1 * dx2)
            c = (2.0 * dx2 + dx1) / (dx2 * (dx1 + dx2))
        last = a * part(-3, -2) + b * part(-2, -1) + c * part(-1, None)
    pieces = [p if dtype_of(p) == otype else cast(p, otype) for p in (first, interior, last)]
    return concatenate(pieces, axis=axis)


def _sample_gradient(draw):
    edge_order = draw.choice((1, 2))
    shape = draw.shape(min_dims=1, min_side=edge_order + 1)
    kwargs = {"axis": draw.axis(len(shape)), "edge_order": edge_order}
    return (draw.array(shape, Interval()), draw.array((), Interval(0.5, 2.0))), kwargs


@op(
    np.gradient,
    sample=_sample_gradient,
    argnums=(0, 1),
    convention="numpy's formulas, bit for bit: central differences inside, one-sided "
    "differences of order edge_order at the two ends",
)
def gradient(f: ArrayLike, *varargs: ArrayLike, axis: Any = None, edge_order: int = 1) -> Any:
    """numpy's ``gradient``: the rate of change of samples ``f`` along each of ``axis`` (all
    axes by default), one array of ``f``'s shape per axis (a tuple of them for several
    axes, as numpy 2). Spacings: none (1), one scalar for every axis, or one per axis,
    each a scalar ``h`` (maybe traced) or constant coordinates ``x`` (1-d, the axis'
    length). Inside, ``(f[i+1] - f[i-1]) / 2h`` (second order, the three-point formula for
    uneven ``x``); at the ends, one-sided differences of order ``edge_order`` (1:
    ``(f[1] - f[0]) / h``; 2: ``(-3/2 f[0] + 2 f[1] - 1/2 f[2]) / h``). Float ``f`` keeps
    its dtype; integer ``f`` gives float64.

    VJP: ``g`` through the transposed stencils to ``f``; ``-<g, out> / h`` to a scalar ``h``.
    (``out`` is linear in ``f``, and a scalar spacing ``h`` divides every term.)
    """
    f = f if type(f) is Traced else np.asanyarray(f)
    shape = shape_of(f)
    nd = len(shape)
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = _axes(axis, nd, "gradient")
        if len(set(axes)) != len(axes):
            raise ValueError("repeated axis")
    if not varargs:
        spacings = [1.0] * len(axes)
    elif len(varargs) == 1 and not shape_of(varargs[0]):
        spacings = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacings = [_spacing(h, shape[ax]) for h, ax in zip(varargs, axes, strict=True)]
    else:
        raise TypeError("invalid number of arguments")
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    otype = dtype_of(f)
    if otype.kind not in "fc":
        if otype.kind in "iu":
            f = cast(f, np.float64)
        otype = np.dtype(np.float64)
    outs = []
    for ax, dx in zip(axes, spacings, strict=True):
        if shape[ax] < edge_order + 1:
            raise ValueError(
                "Shape of array too small to calculate a numerical gradient, "
                "at least (edge_order + 1) elements are required."
            )
        outs.append(_one_gradient(f, ax, dx, edge_order, otype))
    return outs[0] if len(outs) == 1 else _SEVERAL(outs)
