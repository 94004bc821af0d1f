"""The core of the table: arithmetic, comparisons, ``where``, ``sum`` and the ops that move
values (reshape, transpose, broadcast, cast, indexing).

Their rules use only each other, and the reverse interpreter needs only them (to add
cotangents, undo broadcasting and restore dtypes), so every other op file builds on this one.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from tapegrad.ops.axes import dtype_of, kept_shape, shape_of
from tapegrad.ops.registry import Interval, elementwise, op, reduction, unary
from tapegrad.tape import Primitive, Traced, bind

ArrayLike = Any  # numpy arrays, Python or numpy scalars, or traced values

__all__ = [
    "ArrayLike",
    "IndexedCotangent",
    "add",
    "broadcast_to",
    "cast",
    "divide",
    "equal",
    "getitem",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "multiply",
    "negative",
    "no_out",
    "not_equal",
    "reshape",
    "scatter_add",
    "subtract",
    "sum",
    "transpose",
    "unbroadcast",
    "where",
    "zero_vjp",
]


def zero_vjp(i, g, ans, *args, **params):
    """The derivative is zero (or the argument is not differentiable): no cotangent."""
    return None


# =======================================================================================
# Arithmetic (broadcasting; the interpreter sums each cotangent back to its input's shape)


def _add_vjp(i, g, ans, x, y):
    """d(x + y)/dx = d(x + y)/dy = 1."""
    return g


ADD = Primitive("add", np.add, _add_vjp)


@op(np.add, sample=elementwise(Interval(), Interval()), argnums=(0, 1))
def add(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x + y``, broadcasting. VJP: ``(g, g)``."""
    return bind(ADD, (x, y))


def _subtract_vjp(i, g, ans, x, y):
    """d(x - y)/dx = 1, d(x - y)/dy = -1."""
    return g if i == 0 else -g


SUBTRACT = Primitive("subtract", np.subtract, _subtract_vjp)


@op(np.subtract, sample=elementwise(Interval(), Interval()), argnums=(0, 1))
def subtract(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x - y``, broadcasting. VJP: ``(g, -g)``."""
    return bind(SUBTRACT, (x, y))


def _multiply_vjp(i, g, ans, x, y):
    """d(x y)/dx = y, d(x y)/dy = x."""
    return g * y if i == 0 else g * x


MULTIPLY = Primitive("multiply", np.multiply, _multiply_vjp)


@op(np.multiply, sample=elementwise(Interval(), Interval()), argnums=(0, 1))
def multiply(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x * y``, broadcasting. VJP: ``(g y, g x)``."""
    return bind(MULTIPLY, (x, y))


def _divide_vjp(i, g, ans, x, y):
    """d(x / y)/dx = 1 / y, d(x / y)/dy = -x / y^2 = -ans / y."""
    return g / y if i == 0 else -(g * ans) / y


DIVIDE = Primitive("divide", np.divide, _divide_vjp)


@op(np.divide, sample=elementwise(Interval(), Interval(-3, 3, avoid=(0,), gap=0.3)), argnums=(0, 1))
def divide(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x / y`` (true division), broadcasting. VJP: ``(g / y, -g x / y^2)``."""
    return bind(DIVIDE, (x, y))


def _negative_vjp(i, g, ans, x):
    """d(-x)/dx = -1."""
    return -g


NEGATIVE = Primitive("negative", np.negative, _negative_vjp)


@op(np.negative, sample=unary())
def negative(x: ArrayLike) -> ArrayLike:
    """``-x``. VJP: ``-g``."""
    return bind(NEGATIVE, (x,))


# =======================================================================================
# Comparisons: boolean results, recorded (a replayed tape recomputes every mask) with no
# derivative


EQUAL = Primitive("equal", np.equal, zero_vjp)
NOT_EQUAL = Primitive("not_equal", np.not_equal, zero_vjp)
LESS = Primitive("less", np.less, zero_vjp)
LESS_EQUAL = Primitive("less_equal", np.less_equal, zero_vjp)
GREATER = Primitive("greater", np.greater, zero_vjp)
GREATER_EQUAL = Primitive("greater_equal", np.greater_equal, zero_vjp)


LOGICAL_AND = Primitive("logical_and", np.logical_and, zero_vjp)
LOGICAL_OR = Primitive("logical_or", np.logical_or, zero_vjp)
LOGICAL_NOT = Primitive("logical_not", np.logical_not, zero_vjp)


def logical_and(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x and y`` elementwise, a boolean array (no derivative)."""
    return bind(LOGICAL_AND, (x, y))


def logical_or(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x or y`` elementwise, a boolean array (no derivative)."""
    return bind(LOGICAL_OR, (x, y))


def logical_not(x: ArrayLike) -> ArrayLike:
    """``not x`` elementwise, a boolean array (no derivative)."""
    return bind(LOGICAL_NOT, (x,))


def equal(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x == y`` elementwise, a boolean array (no derivative)."""
    return bind(EQUAL, (x, y))


def not_equal(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x != y`` elementwise, a boolean array (no derivative)."""
    return bind(NOT_EQUAL, (x, y))


def less(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x < y`` elementwise, a boolean array (no derivative)."""
    return bind(LESS, (x, y))


def less_equal(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x <= y`` elementwise, a boolean array (no derivative)."""
    return bind(LESS_EQUAL, (x, y))


def greater(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x > y`` elementwise, a boolean array (no derivative)."""
    return bind(GREATER, (x, y))


def greater_equal(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x >= y`` elementwise, a boolean array (no derivative)."""
    return bind(GREATER_EQUAL, (x, y))


# =======================================================================================
# Selection


def _where_vjp(i, g, ans, cond, x, y):
    """d where(c, x, y)/dx = [c], d/dy = [not c]; the condition has no derivative."""
    if i == 0:
        return None
    return where(cond, g, 0) if i == 1 else where(cond, 0, g)


WHERE = Primitive("where", np.where, _where_vjp)


def _sample_where(draw):
    cs, xs, ys = draw.broadcastable_shapes(3)
    cond = draw.array(cs, Interval(-1, 1)) > 0
    return (cond, draw.array(xs, Interval()), draw.array(ys, Interval())), {}


@op(np.where, sample=_sample_where, argnums=(1, 2))
def where(condition: ArrayLike, x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x`` where ``condition`` holds, else ``y`` (numpy's three-argument ``where``).

    VJP: ``g`` flows to ``x`` where the condition holds and to ``y`` elsewhere; the
    condition (a boolean array) is not differentiated.
    """
    return bind(WHERE, (condition, x, y))


# =======================================================================================
# Sum, and the ops that move values without changing them


def _sum_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d sum(x)/dx_j = 1: the cotangent is broadcast back over the reduced axes."""
    shape = shape_of(x)
    return broadcast_to(reshape(g, kept_shape(shape, axis)), shape)


def _sum_forward(x, axis=None, keepdims=False):
    """``np.sum`` without its Python layer: the reduction it calls, ``np.add.reduce``."""
    return np.add.reduce(x, axis, None, None, keepdims)


SUM = Primitive("sum", _sum_forward, _sum_vjp, fresh=True)


@op(np.sum, sample=reduction(), method="sum")
def sum(
    a: ArrayLike,
    axis: int | Sequence[int] | None = None,
    dtype: Any = None,
    out: None = None,
    keepdims: bool = False,
) -> ArrayLike:
    """Sum over ``axis`` (all axes by default), in ``dtype`` if given (numpy's order of
    arguments; ``out`` must be None). VJP: ``g`` broadcast back over ``axis``."""
    no_out("sum", out)
    if dtype is not None:
        a = cast(a, dtype)
    return bind(SUM, (a,), {"axis": _axis_param(axis), "keepdims": bool(keepdims)})


def no_out(name: str, out: Any) -> None:
    """Refuse numpy's ``out=``: a traced value is never written into."""
    if out is not None:
        raise TypeError(f"tg.{name}: out= is not supported; use the returned array")


def _axis_param(axis: Any) -> Any:
    """``axis`` as an immutable record parameter (a list becomes a tuple)."""
    if axis is None or isinstance(axis, (int, np.integer)):
        return None if axis is None else int(axis)
    return tuple(int(a) for a in axis)


def _reshape_vjp(i, g, ans, x, shape):
    """Reshaping moves no values: reshape the cotangent back."""
    return reshape(g, shape_of(x))


def _reshape_forward(x, shape):
    # the method numpy's np.reshape calls, without its dispatch layer
    return x.reshape(shape) if type(x) is np.ndarray else np.reshape(x, shape)


RESHAPE = Primitive("reshape", _reshape_forward, _reshape_vjp)


def _sample_reshape(draw):
    shape = draw.shape()
    return (draw.array(shape, Interval()),), {"shape": (-1,) + (1,) * draw.integers(0, 2)}


@op(np.reshape, sample=_sample_reshape)
def reshape(x: ArrayLike, shape: int | Sequence[int]) -> ArrayLike:
    """``x`` with a new shape (one entry may be -1). VJP: ``g`` reshaped to ``x.shape``."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    return bind(RESHAPE, (x,), {"shape": shape})


def _transpose_vjp(i, g, ans, x, axes=None):
    """Transposing moves values: apply the inverse permutation to the cotangent."""
    if axes is None:
        return transpose(g)
    return transpose(g, tuple(int(a) for a in np.argsort(axes)))


def _transpose_forward(x, axes=None):
    # the method numpy's np.transpose calls, without its dispatch layer
    return x.transpose(axes) if type(x) is np.ndarray else np.transpose(x, axes)


TRANSPOSE = Primitive("transpose", _transpose_forward, _transpose_vjp)


def _sample_transpose(draw):
    shape = draw.shape()
    axes = tuple(reversed(range(len(shape)))) if draw.choice((False, True)) else None
    return (draw.array(shape, Interval()),), {"axes": axes}


@op(np.transpose, sample=_sample_transpose)
def transpose(x: ArrayLike, axes: Sequence[int] | None = None) -> ArrayLike:
    """Permute the axes (reverse them by default). VJP: the inverse permutation of ``g``."""
    if axes is not None:
        nd = len(shape_of(x))
        axes = tuple(int(a) % nd if nd else int(a) for a in axes)
    return bind(TRANSPOSE, (x,), {"axes": axes})


def _broadcast_to_vjp(i, g, ans, x, shape):
    """Broadcasting copies values: sum the cotangent over the copies."""
    return unbroadcast(g, shape_of(x))


BROADCAST_TO = Primitive("broadcast_to", np.broadcast_to, _broadcast_to_vjp)


def _sample_broadcast_to(draw):
    small, big = draw.broadcastable_shapes(2)
    return (draw.array(small, Interval()),), {"shape": np.broadcast_shapes(small, big)}


@op(np.broadcast_to, sample=_sample_broadcast_to)
def broadcast_to(x: ArrayLike, shape: Sequence[int]) -> ArrayLike:
    """``x`` broadcast to ``shape`` (a read-only view). VJP: ``g`` summed over the copies."""
    return bind(BROADCAST_TO, (x,), {"shape": tuple(int(s) for s in shape)})


def _cast_forward(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


def _cast_vjp(i, g, ans, x, dtype):
    """A cast is the identity on values: cast the cotangent back to the input's dtype."""
    return cast(g, dtype_of(x))


CAST = Primitive("cast", _cast_forward, _cast_vjp)


def cast(x: ArrayLike, dtype: Any) -> ArrayLike:
    """``x.astype(dtype)``. VJP: ``g`` cast back to ``x``'s dtype."""
    return bind(CAST, (x,), {"dtype": np.dtype(dtype)})


def unbroadcast(g: ArrayLike, shape: tuple[int, ...]) -> ArrayLike:
    """Sum ``g`` down to ``shape``: the transpose of numpy broadcasting ``shape -> g.shape``.

    Leading axes that broadcasting added are summed away; axes where ``shape`` has 1 and
    ``g`` does not are summed with ``keepdims``. This is the one place tapegrad undoes
    broadcasting.
    """
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    if lead > 0:
        g = sum(g, axis=tuple(range(lead)))
        gshape = gshape[lead:]
    if lead >= 0:
        axes = tuple(k for k, s in enumerate(shape) if s == 1 and gshape[k] != 1)
        if axes:
            g = sum(g, axis=axes, keepdims=True)
    if shape_of(g) != shape:  # a cotangent smaller than its input (a scalar, say)
        g = broadcast_to(g, shape)
    return g


# =======================================================================================
# Indexing. The arrays in an index (integer or boolean) are arguments of the record, not
# parameters: a replayed tape recomputes an index made from its inputs, and the record's
# parameters stay immutable. The parameter ``index`` is the index with each array replaced
# by the marker ARRAY.


class _ArrayMarker:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ARRAY"

    def __reduce__(self) -> str:
        return "ARRAY"


ARRAY = _ArrayMarker()


def _split_index(index: Any) -> tuple[Any, tuple]:
    """``(template, arrays)``: the index with its arrays replaced by :data:`ARRAY`."""
    if isinstance(index, (int, np.integer, slice)) or index is None or index is Ellipsis:
        return index, ()
    if isinstance(index, list):
        index = np.asarray(index)
    if not isinstance(index, tuple):
        if type(index) is Traced or isinstance(index, (np.ndarray, np.generic)):
            return ARRAY, (index,)
        raise IndexError(f"tg.getitem: unsupported index {index!r}")
    parts, arrays = [], []
    for p in index:
        if isinstance(p, list):
            p = np.asarray(p)
        if type(p) is Traced or isinstance(p, np.ndarray):
            parts.append(ARRAY)
            arrays.append(p)
        else:
            parts.append(p)
    return tuple(parts), tuple(arrays)


def _join_index(template: Any, arrays: Sequence[Any]) -> Any:
    """The inverse of :func:`_split_index`."""
    if not arrays:
        return template
    if template is ARRAY:
        return arrays[0]
    it = iter(arrays)
    return tuple(next(it) if p is ARRAY else p for p in template)


def _getitem_forward(x, *arrays, index):
    return x[_join_index(index, arrays)]


def _getitem_vjp(i, g, ans, x, *arrays, index):
    """Indexing picks values: scatter-add the cotangent back into zeros (repeats add up).

    A concrete cotangent with a concrete index is returned as an
    :class:`IndexedCotangent` that the interpreter adds straight into the input's
    accumulated cotangent, so a loop of ``x[i]`` costs no dense zero array per gather.
    """
    if i:
        return None  # the index arrays
    if type(g) is Traced or builtins.any(type(a) is Traced for a in arrays):
        return scatter_add(g, shape_of(x), dtype_of(x), index, *arrays)
    return IndexedCotangent(_join_index(index, arrays), g, shape_of(x), dtype_of(x))


GETITEM = Primitive("getitem", _getitem_forward, _getitem_vjp)


def getitem(x: ArrayLike, index: Any) -> ArrayLike:
    """``x[index]`` with numpy's basic and advanced indexing (the arrays in ``index`` may be
    traced integer or boolean values).

    VJP: ``g`` scattered back into zeros of ``x``'s shape; repeated integer indices add up.
    """
    template, arrays = _split_index(index)
    for a in arrays:
        if dtype_of(a).kind not in "iub":
            raise IndexError(
                "tg.getitem: arrays used as indices must be integers or booleans, "
                f"got {dtype_of(a)}"
            )
    return bind(GETITEM, (x, *arrays), {"index": template})


def _is_basic(template: Any) -> bool:
    parts = template if isinstance(template, tuple) else (template,)
    return ARRAY not in parts


def _scatter_add_forward(g, *arrays, shape, dtype, index):
    out = np.zeros(shape, dtype)
    if _is_basic(index):
        out[index] = g  # a basic index selects each element at most once
    else:
        np.add.at(out, _join_index(index, arrays), g)
    return out


def _scatter_add_vjp(i, gg, ans, g, *arrays, shape, dtype, index):
    """scatter_add is linear in g; its transpose is the gather ``gg[index]``."""
    if i:
        return None
    return getitem(gg, _join_index(index, arrays))


SCATTER_ADD = Primitive("scatter_add", _scatter_add_forward, _scatter_add_vjp)


def scatter_add(
    g: ArrayLike, shape: Sequence[int], dtype: Any, index: Any, *arrays: ArrayLike
) -> ArrayLike:
    """Zeros of ``shape``/``dtype`` with ``g`` added at ``index``: the transpose of indexing.

    ``index`` is a full index, or a template holding :data:`ARRAY` markers filled in order
    by ``arrays``.
    """
    if not arrays:
        index, arrays = _split_index(index)
    return bind(
        SCATTER_ADD,
        (g, *arrays),
        {"shape": tuple(shape), "dtype": np.dtype(dtype), "index": index},
    )


@attrs.frozen(eq=False)
class IndexedCotangent:
    """A sparse cotangent: zeros of ``shape``/``dtype`` plus ``values`` at ``index``."""

    index: Any
    values: Any
    shape: tuple[int, ...]
    dtype: np.dtype

    def add_into(self, out: np.ndarray) -> None:
        """``out += self``, in place (repeated indices add up)."""
        if _is_basic(_split_index(self.index)[0]):
            out[self.index] += self.values  # a basic index selects each element once
        else:
            np.add.at(out, self.index, self.values)

    def dense(self) -> np.ndarray:
        """The cotangent as a new dense array."""
        out = np.zeros(self.shape, self.dtype)
        self.add_into(out)
        return out
