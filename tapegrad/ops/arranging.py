"""Ops that rearrange, repeat or pick elements: flips, rolls, tiles, padding, diagonals and
triangles, ``take_along_axis``, ``sort``, ``partition`` and ``select``.

Each rule sends the cotangent back along the same arrangement, transposed: a flip or a roll
by its inverse, a copy (``tile``, ``repeat``, ``pad``) by summing the copies, a pick
(``diagonal``, ``take_along_axis``, ``sort``) by scattering ``g`` back into zeros, repeated
picks adding up. The positions a rule scatters to are computed from shapes and parameters,
or, for ``sort`` and ``partition``, by a recorded ``argsort`` of the input (and, for
``partition``, of the output), so a replayed tape finds the new permutation.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    _axis_param,
    cast,
    getitem,
    reshape,
    scatter_add,
    sum,
    where,
    zero_vjp,
)
from tapegrad.ops.registry import DISTINCT, Interval, op
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "diag",
    "diagflat",
    "diagonal",
    "flip",
    "fliplr",
    "flipud",
    "pad",
    "partition",
    "repeat",
    "roll",
    "rot90",
    "select",
    "sort",
    "take_along_axis",
    "tile",
    "tril",
    "triu",
]

Axis = int | Sequence[int] | None


def _axis_index(axis: Any, ndim: int, name: str) -> int:
    """``axis`` as a non-negative int, or numpy's AxisError naming the op."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim, f"tg.{name}")
    return axis % ndim


def _int_or_ints(value: Any) -> int | tuple[int, ...]:
    """An int, or a tuple of ints for a sequence (an immutable record parameter)."""
    a = np.asarray(value)
    return int(a) if a.ndim == 0 else tuple(int(v) for v in a.ravel())


def _sample_axes(draw):
    shape = draw.shape()
    return shape, draw.axis(len(shape))


# =======================================================================================
# Flips, rolls and rotations: permutations of the elements, undone by their inverses


def _flip_vjp(i, g, ans, m, axis=None):
    """A flip is its own inverse: flip the cotangent along the same axes."""
    return flip(g, axis)


FLIP = Primitive("flip", np.flip, _flip_vjp)


def _sample_flip(draw):
    shape, axis = _sample_axes(draw)
    return (draw.array(shape, Interval()),), {"axis": axis}


@op(np.flip, sample=_sample_flip)
def flip(m: ArrayLike, axis: Axis = None) -> ArrayLike:
    """Reverse the order of the elements along ``axis`` (all axes by default).

    VJP: ``flip(g, axis)``.
    """
    return bind(FLIP, (m,), {"axis": _axis_param(axis)})


def _sample_matrix(draw, min_dims=2):
    return (draw.array(draw.shape(min_dims=min_dims), Interval()),), {}


@op(np.fliplr, sample=_sample_matrix)
def fliplr(m: ArrayLike) -> ArrayLike:
    """Reverse the columns (axis 1) of an array of at least 2 dimensions.

    VJP: ``fliplr(g)``.
    """
    if len(shape_of(m)) < 2:
        raise ValueError(f"tg.fliplr: input must be >= 2-d, got shape {shape_of(m)}")
    return flip(m, 1)


@op(np.flipud, sample=lambda draw: _sample_matrix(draw, min_dims=1))
def flipud(m: ArrayLike) -> ArrayLike:
    """Reverse the rows (axis 0) of an array of at least 1 dimension. VJP: ``flipud(g)``."""
    if len(shape_of(m)) < 1:
        raise ValueError("tg.flipud: input must be >= 1-d, got a 0-d array")
    return flip(m, 0)


def _roll_vjp(i, g, ans, a, shift, axis=None):
    """Rolling by ``shift`` is undone by rolling by ``-shift``."""
    back = -shift if isinstance(shift, int) else tuple(-s for s in shift)
    return roll(g, back, axis)


ROLL = Primitive("roll", np.roll, _roll_vjp)


def _sample_roll(draw):
    shape, axis = _sample_axes(draw)
    n = len(axis) if isinstance(axis, tuple) else 1
    shift = draw.integers(-5, 5)
    if n > 1 and draw.choice((False, True)):
        shift = tuple(draw.integers(-5, 5) for _ in range(n))
    return (draw.array(shape, Interval()), shift), {"axis": axis}


@op(np.roll, sample=_sample_roll)
def roll(a: ArrayLike, shift: int | Sequence[int], axis: Axis = None) -> ArrayLike:
    """Roll the elements by ``shift`` along ``axis`` (of the flattened array by default);
    a tuple of shifts rolls along a tuple of axes.

    VJP: ``roll(g, -shift, axis)``.
    """
    return bind(ROLL, (a,), {"shift": _int_or_ints(shift), "axis": _axis_param(axis)})


def _rot90_vjp(i, g, ans, m, k=1, axes=(0, 1)):
    """Rotating by ``k`` quarter turns is undone by ``-k`` quarter turns in the same plane."""
    return rot90(g, -k, axes)


ROT90 = Primitive("rot90", np.rot90, _rot90_vjp)


def _sample_rot90(draw):
    shape = draw.shape(min_dims=2)
    nd = len(shape)
    first = draw.integers(-nd, nd - 1)
    second = draw.choice([a for a in range(-nd, nd) if a % nd != first % nd])
    kwargs = {"k": draw.integers(-4, 5), "axes": (first, second)}
    return (draw.array(shape, Interval()),), kwargs


@op(np.rot90, sample=_sample_rot90)
def rot90(m: ArrayLike, k: int = 1, axes: Sequence[int] = (0, 1)) -> ArrayLike:
    """Rotate by ``k`` quarter turns in the plane of ``axes``, from the first axis towards
    the second. VJP: ``rot90(g, -k, axes)``.
    """
    return bind(ROT90, (m,), {"k": int(k), "axes": tuple(int(a) for a in axes)})


# =======================================================================================
# Copies: tile, repeat, pad. The cotangent of an element is the sum over its copies.


def _tile_vjp(i, g, ans, A, reps):
    """Each element has one copy per tile: sum ``g`` over the tiles.

    ``g`` is reshaped so that every axis of length ``r s`` (``r`` tiles of ``s``) becomes
    two axes ``(r, s)``, then summed over the ``r`` axes.
    """
    shape = shape_of(A)
    d = builtins.max(len(reps), len(shape))
    sides = (1,) * (d - len(shape)) + shape
    tiles = (1,) * (d - len(reps)) + reps
    split = tuple(n for pair in zip(tiles, sides, strict=True) for n in pair)
    return reshape(sum(reshape(g, split), axis=tuple(range(0, 2 * d, 2))), shape)


TILE = Primitive("tile", np.tile, _tile_vjp)


def _sample_tile(draw):
    shape = draw.shape(max_dims=2)
    reps = tuple(draw.integers(1, 3) for _ in range(draw.integers(1, 3)))
    return (draw.array(shape, Interval()), draw.choice((reps, reps[0]))), {}


@op(np.tile, sample=_sample_tile)
def tile(A: ArrayLike, reps: int | Sequence[int]) -> ArrayLike:
    """``A`` repeated ``reps`` times along each axis (numpy's rules for unequal lengths of
    ``reps`` and ``A.shape``). VJP: ``g`` summed over the tiles.
    """
    reps = _int_or_ints(reps)
    return bind(TILE, (A,), {"reps": (reps,) if isinstance(reps, int) else reps})


def _repeat_vjp(i, g, ans, a, repeats, axis=None):
    """Element ``j`` is copied ``repeats[j]`` times, next to each other: sum ``g`` over each
    run of copies (a reshape and a sum for a single count, a segment sum otherwise).
    """
    shape = shape_of(a)
    flat = (math.prod(shape),)
    target, ax = (flat, 0) if axis is None else (shape, axis)
    if isinstance(repeats, int):
        runs = (*target[:ax], target[ax], repeats, *target[ax + 1 :])
        ct = sum(reshape(g, runs), axis=ax + 1)
    else:
        owner = np.repeat(np.arange(target[ax]), repeats)  # the element each copy came from
        ct = scatter_add(g, target, dtype_of(a), (slice(None),) * ax + (owner,))
    return ct if axis is not None else reshape(ct, shape)


REPEAT = Primitive("repeat", np.repeat, _repeat_vjp)


def _sample_repeat(draw):
    shape = draw.shape(max_dims=2)
    axis = draw.axis(len(shape), tuples=False)
    n = math.prod(shape) if axis is None else shape[axis]
    per_element = np.array([draw.integers(0, 3) for _ in range(n)])
    repeats = draw.choice((draw.integers(0, 3), per_element))
    return (draw.array(shape, Interval()), repeats), {"axis": axis}


@op(np.repeat, sample=_sample_repeat, method="repeat")
def repeat(a: ArrayLike, repeats: int | Sequence[int], axis: int | None = None) -> ArrayLike:
    """Repeat each element ``repeats`` times (one count, or one per element) along ``axis``
    (of the flattened array by default). VJP: ``g`` summed over each element's copies.
    """
    r = np.asarray(repeats)
    if r.dtype.kind not in "iub":
        raise TypeError(f"tg.repeat: repeats must be integers, got {r.dtype}")
    counts = int(r.ravel()[0]) if r.size == 1 else tuple(int(v) for v in r.ravel())
    if axis is not None:
        axis = _axis_index(axis, len(shape_of(a)), "repeat")
    return bind(REPEAT, (a,), {"repeats": counts, "axis": axis})


#: The modes pad differentiates and the keyword arguments each takes.
_PAD_MODES = {"constant": ("constant_values",), "edge": (), "reflect": ("reflect_type",)}


def _pad_vjp(i, g, ans, array, pad_width, mode, constant_values=0):
    """``constant``: the cotangent of the interior, ``g`` without its border. ``edge`` and
    ``reflect`` copy elements of ``array`` into the border: each element gets the sum of
    ``g`` over its copies, a scatter-add through the index map ``pad`` applies to each axis.
    """
    shape = shape_of(array)
    if mode == "constant":
        return getitem(
            g, tuple(slice(b, b + n) for (b, _), n in zip(pad_width, shape, strict=True))
        )
    # pad copies along each axis in turn, so the source of an output element is the outer
    # product of the axes' maps: np.pad of arange(n) says which element each slot copies.
    sources = (np.pad(np.arange(n), w, mode) for n, w in zip(shape, pad_width, strict=True))
    return scatter_add(g, shape, dtype_of(array), np.ix_(*sources))


PAD = Primitive("pad", np.pad, _pad_vjp)


def _pad_pairs(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """``pad_width`` as ``((before, after),) * ndim`` (numpy's broadcasting of it)."""
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu":
        raise TypeError(f"tg.pad: pad_width must be of integral type, got {pw.dtype}")
    if (pw < 0).any():
        raise ValueError(f"tg.pad: pad widths cannot be negative, got {pad_width!r}")
    try:
        pairs = np.broadcast_to(pw, (ndim, 2))
    except ValueError:
        raise ValueError(
            f"tg.pad: pad_width {pad_width!r} does not fit an array of {ndim} dimensions"
        ) from None
    return tuple((int(b), int(a)) for b, a in pairs)


def _constant_param(value: Any) -> Any:
    """``constant_values`` as an immutable parameter: a number or nested tuples of them."""
    if type(value) is Traced:
        raise TypeError(
            "tg.pad: constant_values is not differentiated, and a traced value was given; "
            "pass a constant (tg.stop_gradient(v)), or pad with 0 and add v times a mask"
        )
    a = np.asarray(value)
    return a.item() if a.ndim == 0 else _nested_tuple(a.tolist())


def _nested_tuple(x: Any) -> Any:
    return tuple(_nested_tuple(e) for e in x) if isinstance(x, list) else x


def _sample_pad(draw):
    shape = draw.shape(min_dims=1)
    mode = draw.choice(tuple(_PAD_MODES))
    pad_width = draw.choice(
        (
            draw.integers(0, 2),
            (draw.integers(0, 2), draw.integers(0, 3)),
            tuple((draw.integers(0, 2), draw.integers(0, 2)) for _ in shape),
        )
    )
    kwargs = {"mode": mode}
    if mode == "constant":
        kwargs["constant_values"] = draw.choice((0, 1.5, (-1.0, 2.0)))
    elif mode == "reflect" and draw.choice((False, True)):
        kwargs["reflect_type"] = "even"
    return (draw.array(shape, Interval()), pad_width), kwargs


@op(
    np.pad,
    sample=_sample_pad,
    convention="edge/reflect: each element gets the sum of the cotangents of its border copies",
)
def pad(array: ArrayLike, pad_width: Any, mode: str = "constant", **kwargs: Any) -> ArrayLike:
    """Pad ``array`` by ``pad_width`` (``((before, after),) * ndim``, numpy's shorthands
    accepted) in mode ``constant`` (with ``constant_values``, a constant that is not
    differentiated), ``edge`` or ``reflect`` (``reflect_type="even"``).

    VJP: ``constant``: ``g`` without the border; ``edge``/``reflect``: ``g`` of each border
    slot added to the element it copies.
    """
    if not isinstance(mode, str) or mode not in _PAD_MODES:
        raise ValueError(
            f"tg.pad: mode {mode!r} is not supported; tapegrad differentiates the modes "
            "'constant', 'edge' and 'reflect'"
        )
    unknown = set(kwargs) - set(_PAD_MODES[mode])
    if unknown:
        raise ValueError(f"tg.pad: unsupported keyword arguments for mode {mode!r}: {unknown}")
    if kwargs.get("reflect_type", "even") != "even":
        raise ValueError(
            f"tg.pad: reflect_type={kwargs['reflect_type']!r} is not supported (only 'even')"
        )
    params = {"pad_width": _pad_pairs(pad_width, len(shape_of(array))), "mode": mode}
    if "constant_values" in kwargs:
        params["constant_values"] = _constant_param(kwargs["constant_values"])
    return bind(PAD, (array,), params)


# =======================================================================================
# Diagonals and triangles


def _diagonal_index(shape: tuple[int, ...], offset: int, axis1: int, axis2: int) -> tuple:
    """Integer index arrays for ``x[index] == np.diagonal(x, offset, axis1, axis2)``.

    They broadcast to the diagonal's shape: the other axes in order, then the diagonal.
    """
    n1, n2 = shape[axis1], shape[axis2]
    length = builtins.max(
        0, builtins.min(n1 + builtins.min(offset, 0), n2 - builtins.max(offset, 0))
    )
    others = [d for d in range(len(shape)) if d not in (axis1, axis2)]
    nd = len(others) + 1
    index: list[Any] = [None] * len(shape)
    for p, d in enumerate(others):
        index[d] = np.arange(shape[d]).reshape((1,) * p + (-1,) + (1,) * (nd - p - 1))
    last = (1,) * (nd - 1) + (length,)
    index[axis1] = (np.arange(length) + builtins.max(-offset, 0)).reshape(last)
    index[axis2] = (np.arange(length) + builtins.max(offset, 0)).reshape(last)
    return tuple(index)


def _diagonal_vjp(i, g, ans, a, offset=0, axis1=0, axis2=1):
    """The diagonal picks elements: scatter ``g`` back onto the diagonal of zeros."""
    shape = shape_of(a)
    return scatter_add(g, shape, dtype_of(a), _diagonal_index(shape, offset, axis1, axis2))


DIAGONAL = Primitive("diagonal", np.diagonal, _diagonal_vjp)


def _sample_diagonal(draw):
    shape = draw.shape(min_dims=2)
    nd = len(shape)
    axis1 = draw.integers(-nd, nd - 1)
    axis2 = draw.choice([a for a in range(-nd, nd) if a % nd != axis1 % nd])
    kwargs = {"offset": draw.integers(-2, 2), "axis1": axis1, "axis2": axis2}
    return (draw.array(shape, Interval()),), kwargs


@op(np.diagonal, sample=_sample_diagonal, method="diagonal")
def diagonal(a: ArrayLike, offset: int = 0, axis1: int = 0, axis2: int = 1) -> ArrayLike:
    """The ``offset`` diagonal of the planes ``(axis1, axis2)``, as a new last axis (numpy
    returns a read-only view; this is equal to it). VJP: ``g`` placed on that diagonal of
    zeros.
    """
    nd = len(shape_of(a))
    if nd < 2:
        raise ValueError(f"tg.diagonal: needs an array of at least 2 dimensions, got {nd}")
    axis1, axis2 = _axis_index(axis1, nd, "diagonal"), _axis_index(axis2, nd, "diagonal")
    return bind(DIAGONAL, (a,), {"offset": int(offset), "axis1": axis1, "axis2": axis2})


def _diag_vjp(i, g, ans, v, k=0):
    """A 1-d ``v`` is placed on the ``k`` diagonal: its cotangent is that diagonal of ``g``.
    A 2-d ``v`` gives its ``k`` diagonal: ``g`` goes back onto it.
    """
    shape = shape_of(v)
    if len(shape) == 1:
        return diag(g, k)
    return scatter_add(g, shape, dtype_of(v), _diagonal_index(shape, k, 0, 1))


DIAG = Primitive("diag", np.diag, _diag_vjp)


def _sample_diag(draw):
    shape = draw.choice(((draw.integers(1, 4),), (draw.integers(1, 4), draw.integers(1, 4))))
    return (draw.array(shape, Interval()),), {"k": draw.integers(-2, 2)}


@op(np.diag, sample=_sample_diag)
def diag(v: ArrayLike, k: int = 0) -> ArrayLike:
    """A 1-d ``v`` on the ``k`` diagonal of a square matrix of zeros, or the ``k`` diagonal
    of a 2-d ``v``. VJP: the ``k`` diagonal of ``g``, or ``g`` placed on it.
    """
    return bind(DIAG, (v,), {"k": int(k)})


def _diagflat_vjp(i, g, ans, v, k=0):
    """The flattened ``v`` is placed on the ``k`` diagonal: its cotangent is that diagonal
    of ``g``, reshaped to ``v``."""
    return reshape(diag(g, k), shape_of(v))


DIAGFLAT = Primitive("diagflat", np.diagflat, _diagflat_vjp)


def _sample_diagflat(draw):
    shape = draw.shape(max_dims=2, max_side=3)
    return (draw.array(shape, Interval()),), {"k": draw.integers(-2, 2)}


@op(np.diagflat, sample=_sample_diagflat)
def diagflat(v: ArrayLike, k: int = 0) -> ArrayLike:
    """The flattened ``v`` on the ``k`` diagonal of a square matrix of zeros.

    VJP: the ``k`` diagonal of ``g``, reshaped to ``v``.
    """
    return bind(DIAGFLAT, (v,), {"k": int(k)})


def _tril_vjp(i, g, ans, m, k=0):
    """tril keeps the elements on and below the ``k`` diagonal: so does its cotangent (a
    1-d ``m`` was broadcast to rows; the interpreter sums them)."""
    return tril(g, k)


def _triu_vjp(i, g, ans, m, k=0):
    """triu keeps the elements on and above the ``k`` diagonal: so does its cotangent (a
    1-d ``m`` was broadcast to rows; the interpreter sums them)."""
    return triu(g, k)


TRIL = Primitive("tril", np.tril, _tril_vjp)
TRIU = Primitive("triu", np.triu, _triu_vjp)


def _sample_triangle(draw):
    shape = draw.shape(min_dims=1)
    return (draw.array(shape, Interval()),), {"k": draw.integers(-2, 2)}


@op(np.tril, sample=_sample_triangle)
def tril(m: ArrayLike, k: int = 0) -> ArrayLike:
    """The lower triangle of each matrix in the last two axes of ``m``: zeros above the
    ``k`` diagonal (a 1-d ``m`` is a row repeated). VJP: ``tril(g, k)``.
    """
    return bind(TRIL, (m,), {"k": int(k)})


@op(np.triu, sample=_sample_triangle)
def triu(m: ArrayLike, k: int = 0) -> ArrayLike:
    """The upper triangle of each matrix in the last two axes of ``m``: zeros below the
    ``k`` diagonal (a 1-d ``m`` is a row repeated). VJP: ``triu(g, k)``.
    """
    return bind(TRIU, (m,), {"k": int(k)})


# =======================================================================================
# Picking along an axis, and sorting


def _along_axis_index(indices: ArrayLike, shape: tuple[int, ...], axis: int) -> tuple:
    """The index with ``x[index] == np.take_along_axis(x, indices, axis)``: ``indices`` on
    ``axis`` and an ``arange`` on every other axis, shaped to broadcast against it."""
    nd = len(shape)
    return tuple(
        indices if d == axis else np.arange(n).reshape((1,) * d + (n,) + (1,) * (nd - d - 1))
        for d, n in enumerate(shape)
    )


def _sample_take_along_axis(draw):
    shape = draw.shape(min_dims=1)
    axis = draw.choice((None, draw.integers(-len(shape), len(shape) - 1)))
    source = (math.prod(shape),) if axis is None else shape
    ax = 0 if axis is None else axis % len(shape)
    n = source[ax]
    ishape = (*source[:ax], draw.integers(1, 4), *source[ax + 1 :])
    picks = [draw.integers(-n, n - 1) for _ in range(math.prod(ishape))]
    return (draw.array(shape, Interval()), np.array(picks).reshape(ishape), axis), {}


@op(np.take_along_axis, sample=_sample_take_along_axis, convention="repeated indices add up")
def take_along_axis(arr: ArrayLike, indices: ArrayLike, axis: int | None = -1) -> ArrayLike:
    """Pick ``indices`` (integers, maybe traced, e.g. an ``argsort``) along ``axis`` of
    ``arr`` (of the flattened ``arr`` for ``None``). VJP: ``g`` scattered back to the
    picked places; picks of one element add up.
    """
    if not isinstance(indices, (np.ndarray, Traced)):
        indices = np.asarray(indices)
    if dtype_of(indices).kind not in "iu":
        raise IndexError(f"tg.take_along_axis: indices must be integers, got {dtype_of(indices)}")
    shape, ishape = shape_of(arr), shape_of(indices)
    if axis is None:
        if len(ishape) != 1:
            raise ValueError(
                f"tg.take_along_axis: with axis=None, indices must be 1-d, got shape {ishape}"
            )
        return getitem(reshape(arr, (-1,)), indices)
    if len(ishape) != len(shape):
        raise ValueError(
            "tg.take_along_axis: indices and arr must have the same number of dimensions, "
            f"got shapes {ishape} and {shape}"
        )
    ax = _axis_index(axis, len(shape), "take_along_axis")
    return getitem(arr, _along_axis_index(indices, shape, ax))


def _order_param(order: Any) -> Any:
    return order if order is None or isinstance(order, str) else tuple(order)


ARGSORT = Primitive("argsort", np.argsort, zero_vjp)


def _argsort(
    a: ArrayLike, axis: int | None = -1, kind: str | None = None, order: Any = None, *, stable=None
) -> ArrayLike:
    """``np.argsort`` as a recorded primitive with no derivative (integer results).

    Not a public op (numpy's own ``argsort`` is what ``tapegrad.numpy`` exports): ``sort``'s
    rule uses it, so a replayed tape recomputes the permutation of its new input.
    """
    params = {"axis": _axis_param(axis), "kind": kind, "order": _order_param(order)}
    if stable is not None:  # numpy >= 2 only
        params["stable"] = stable
    return bind(ARGSORT, (a,), params)


def _sort_vjp(i, g, ans, a, axis=-1, kind=None, order=None, stable=None):
    """Sorting permutes: output slot ``j`` along ``axis`` is input ``perm[j]``, so ``g`` is
    scattered back through the permutation, ``perm`` a recorded stable ``argsort`` of
    ``a``. Tied elements get the cotangents of the slots the stable sort gives them (in
    their input order).
    """
    shape = shape_of(a)
    perm = _argsort(a, axis=axis, kind="stable")
    if axis is None:
        flat = scatter_add(g, (math.prod(shape),), dtype_of(a), (perm,))
        return reshape(flat, shape)
    return scatter_add(g, shape, dtype_of(a), _along_axis_index(perm, shape, axis))


SORT = Primitive("sort", np.sort, _sort_vjp)


def _sample_sort(draw):
    shape = draw.shape()
    options = (None, *range(-len(shape), len(shape)))
    kwargs = {"axis": draw.choice(options), "kind": draw.choice((None, "stable", "quicksort"))}
    return (draw.array(shape, DISTINCT),), kwargs


@op(
    np.sort,
    sample=_sample_sort,
    method="sort",
    convention="ties: each tied element gets the cotangent of the output slot numpy's "
    "stable sort assigns it (equal elements keep their input order)",
)
def sort(
    a: ArrayLike,
    axis: int | None = -1,
    kind: str | None = None,
    order: Any = None,
    *,
    stable: bool | None = None,
) -> ArrayLike:
    """A sorted copy of ``a`` along ``axis`` (of the flattened ``a`` for ``None``). As a
    method of a traced value, ``x.sort()`` returns this copy (traced values are immutable;
    ``ndarray.sort`` sorts in place).

    VJP: ``g`` scattered back through the sorting permutation (a stable ``argsort``).
    """
    if axis is not None:
        axis = _axis_index(axis, len(shape_of(a)), "sort")
    params = {"axis": axis, "kind": kind, "order": _order_param(order)}
    if stable is not None:  # numpy >= 2 only
        params["stable"] = stable
    return bind(SORT, (a,), params)


def _partition_vjp(i, g, ans, a, kth, axis=-1, kind="introselect", order=None):
    """Partitioning permutes, so ``g`` goes back through the permutation. Which input a
    slot holds is found from the values, not from ``argpartition`` (whose order of the
    non-``kth`` elements differs from ``partition``'s): ``ans`` and ``a`` hold the same
    values, so the ``r``-th smallest slot of ``ans`` (a recorded stable ``argsort``) came
    from the ``r``-th smallest element of ``a`` (another). Tied elements, in input order,
    get the cotangents of their value's slots in output order, as for ``sort``.
    """
    shape = shape_of(a)
    source = _argsort(a, axis=axis, kind="stable")  # input position of the r-th smallest
    slot = _argsort(ans, axis=-1 if axis is None else axis, kind="stable")  # its output slot
    if axis is None:
        flat = scatter_add(getitem(g, slot), (math.prod(shape),), dtype_of(a), (source,))
        return reshape(flat, shape)
    ranked = getitem(g, _along_axis_index(slot, shape, axis))
    return scatter_add(ranked, shape, dtype_of(a), _along_axis_index(source, shape, axis))


PARTITION = Primitive("partition", np.partition, _partition_vjp)


def _sample_partition(draw):
    shape = draw.shape(min_dims=1)
    axis = draw.choice((None, *range(-len(shape), len(shape))))
    n = math.prod(shape) if axis is None else shape[axis]
    kth = draw.choice((draw.integers(-n, n - 1), tuple(draw.integers(-n, n - 1) for _ in range(2))))
    return (draw.array(shape, DISTINCT), kth), {"axis": axis}


@op(
    np.partition,
    sample=_sample_partition,
    convention="ties: as sort, tied elements (in input order) get the cotangents of the "
    "slots holding their value (in output order); NaNs go last",
)
def partition(
    a: ArrayLike,
    kth: int | Sequence[int],
    axis: int | None = -1,
    kind: str = "introselect",
    order: Any = None,
) -> ArrayLike:
    """A copy of ``a`` with each ``kth`` element (an int or a sequence, negative from the
    end) where a sort along ``axis`` (of the flattened ``a`` for ``None``) puts it, smaller
    or equal elements before it and greater or equal ones after, in numpy's order. Same
    shape and dtype as ``a``. A traced value has no in-place ``x.partition``.

    VJP: ``g`` scattered back through the permutation, slot to the input it holds.
    (Slots and inputs are matched by rank, through two stable ``argsort`` calls.)
    """
    if order is not None:
        raise ValueError(
            "tg.partition: order= (fields of a structured array) is not supported; traced "
            "values are float arrays"
        )
    if kind != "introselect":
        raise ValueError(f"tg.partition: kind must be 'introselect' (got {kind!r})")
    if type(kth) is Traced:
        raise TypeError("tg.partition: kth must be integers known when tracing, not traced")
    k = np.asarray(kth)
    if k.dtype == np.bool_:
        raise ValueError("tg.partition: booleans are unacceptable as partition index")
    if k.dtype.kind not in "iu" or k.ndim > 1:
        raise TypeError(f"tg.partition: kth must be an int or a sequence of ints, got {kth!r}")
    if axis is not None:
        axis = _axis_index(axis, len(shape_of(a)), "partition")
    params = {"kth": _int_or_ints(k), "axis": axis, "kind": kind, "order": None}
    return bind(PARTITION, (a,), params)


# =======================================================================================
# select: nested wheres


def _sample_select(draw):
    n = draw.integers(1, 3)
    *shapes, default_shape = draw.broadcastable_shapes(2 * n + 1)
    conds = [draw.array(s, Interval(-1, 1)) > 0 for s in shapes[:n]]
    choices = [draw.array(s, Interval()) for s in shapes[n:]]
    return (conds, choices, draw.array(default_shape, Interval())), {}


@op(
    np.select,
    sample=_sample_select,
    argnums=(1, 2),
    convention="the first true condition picks; default where none holds",
)
def select(
    condlist: Sequence[ArrayLike], choicelist: Sequence[ArrayLike], default: ArrayLike = 0
) -> ArrayLike:
    """``choicelist[i]`` where ``condlist[i]`` is the first true condition, else
    ``default``, broadcasting (conditions are boolean arrays, maybe traced).

    VJP: ``g`` flows to the choice each element came from (or to ``default``).
    """
    if len(condlist) != len(choicelist):
        raise ValueError(
            f"tg.select: {len(choicelist)} choices for {len(condlist)} conditions; "
            "condlist and choicelist must have the same length"
        )
    if not condlist:
        raise ValueError("tg.select: an empty condition list is not possible")
    conds = [c if isinstance(c, (np.ndarray, Traced)) else np.asarray(c) for c in condlist]
    for k, c in enumerate(conds):
        if dtype_of(c) != np.bool_:
            raise TypeError(
                f"tg.select: invalid entry {k} in condlist: should be a boolean array, "
                f"got {dtype_of(c)}"
            )
    values = [*choicelist, default]
    # numpy's result dtype: Python numbers are weak, everything else counts as an array.
    dtype = np.result_type(
        *(v if type(v) in (int, float, complex) else dtype_of(_as_array(v)) for v in values)
    )
    out = default
    for c, choice in zip(reversed(conds), reversed(choicelist), strict=True):
        out = where(c, choice, out)  # earlier conditions are applied last: they win
    return out if dtype_of(out) == dtype else cast(out, dtype)


def _as_array(x: Any) -> Any:
    return x if isinstance(x, (np.ndarray, np.generic, Traced)) else np.asarray(x)
