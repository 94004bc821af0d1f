"""The primitive table: every differentiable op, its numpy forward and its VJP, side by side.

Each primitive is declared once as ``NAME = Primitive(name, forward, vjp)``. A VJP rule
``vjp(i, g, ans, *args, **params)`` returns the cotangent of argument ``i``: the
vector-Jacobian product ``g^T (d ans / d args[i])``. Rules are written with the public ops of
this module, never with raw numpy on ``g`` or on the residuals, so that when those are
traced by an outer transform the backward pass is itself recorded and can be
differentiated again (``grad(grad(f))``). Python operators count as tapegrad ops: on
traced values ``g * y`` is :func:`multiply` (through ``Traced.__mul__`` or numpy's
``__array_ufunc__`` protocol), and on plain arrays it is numpy's own ``*`` with no detour,
which keeps first-order backward passes as cheap as hand-written numpy. Masks and tie
weights, which are piecewise constant, are computed on concrete values.

Two jobs are *not* in the rules: undoing broadcasting (summing the cotangent over the axes
the forward broadcast) and casting the cotangent back to the input's dtype. The reverse
interpreter does both once, with :func:`unbroadcast` and :func:`cast`.

All ops follow numpy's names, broadcasting, dtype promotion (a Python scalar never widens a
float32 array) and ``axis``/``keepdims`` semantics. On plain arrays they are plain numpy
calls.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from tapegrad.tape import Primitive, Traced, _concrete, bind

ArrayLike = Any  # numpy arrays, Python or numpy scalars, or Traced values

__all__ = [
    "abs",
    "add",
    "affine",
    "broadcast_to",
    "cast",
    "concatenate",
    "divide",
    "exp",
    "getitem",
    "log",
    "log_softmax",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "multiply",
    "negative",
    "nll",
    "power",
    "relu",
    "reshape",
    "sigmoid",
    "softmax",
    "sqrt",
    "stack",
    "subtract",
    "sum",
    "take",
    "tanh",
    "transpose",
    "unbroadcast",
    "where",
]


def _shape(x: Any) -> tuple[int, ...]:
    try:
        return x.shape  # arrays, numpy scalars and traced values
    except AttributeError:
        return np.shape(x)


def _dtype(x: Any) -> np.dtype:
    return x.dtype if hasattr(x, "dtype") else np.result_type(x)


def _norm_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (all axes for ``None``)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(sorted(int(a) % ndim if ndim else int(a) for a in axes))


def _kept_shape(shape: tuple[int, ...], axis: int | Sequence[int] | None) -> tuple[int, ...]:
    """The shape a reduction over ``axis`` gives with ``keepdims=True``."""
    axes = _norm_axes(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


# =======================================================================================
# Elementwise arithmetic (broadcasting; the interpreter unbroadcasts the cotangents)


def _add_vjp(i, g, ans, x, y):
    """d(x + y)/dx = d(x + y)/dy = 1."""
    return g


def _subtract_vjp(i, g, ans, x, y):
    """d(x - y)/dx = 1, d(x - y)/dy = -1."""
    return g if i == 0 else -g


def _multiply_vjp(i, g, ans, x, y):
    """d(x y)/dx = y, d(x y)/dy = x."""
    return g * y if i == 0 else g * x


def _divide_vjp(i, g, ans, x, y):
    """d(x / y)/dx = 1 / y, d(x / y)/dy = -x / y^2 = -ans / y."""
    return g / y if i == 0 else -(g * ans) / y


def _negative_vjp(i, g, ans, x):
    """d(-x)/dx = -1."""
    return -g


def _power_vjp(i, g, ans, x, y):
    """d(x^y)/dx = y x^(y-1);  d(x^y)/dy = x^y log x (taken as 0 where x = 0)."""
    if i == 0:
        if type(y) is not Traced and np.all(np.asarray(y) == 0):
            return g * 0
        return g * y * x ** (y - 1)
    safe_x = where(_concrete(x) == 0, 1, x)
    return g * ans * log(safe_x)


def _tie_weights(a: Any, b: Any, dtype: np.dtype) -> np.ndarray:
    """1 where a wins, 1/2 on a tie, 0 where b wins: the share of the cotangent a gets."""
    a, b = _concrete(a), _concrete(b)
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)).astype(dtype, copy=False)


def _maximum_vjp(i, g, ans, x, y):
    """d max(x, y)/dx = [x > y] + [x = y] / 2 (ties share the cotangent equally)."""
    a, b = (x, y) if i == 0 else (y, x)
    return g * _tie_weights(a, b, _dtype(ans))


def _minimum_vjp(i, g, ans, x, y):
    """d min(x, y)/dx = [x < y] + [x = y] / 2 (ties share the cotangent equally)."""
    a, b = (y, x) if i == 0 else (x, y)
    return g * _tie_weights(a, b, _dtype(ans))


def _where_vjp(i, g, ans, cond, x, y):
    """d where(c, x, y)/dx = [c], d/dy = [not c]; the condition has no derivative."""
    if i == 0:
        return None
    c = _concrete(cond)
    return where(c, g, 0) if i == 1 else where(c, 0, g)


ADD = Primitive("add", np.add, _add_vjp)
SUBTRACT = Primitive("subtract", np.subtract, _subtract_vjp)
MULTIPLY = Primitive("multiply", np.multiply, _multiply_vjp)
DIVIDE = Primitive("divide", np.divide, _divide_vjp)
NEGATIVE = Primitive("negative", np.negative, _negative_vjp)
POWER = Primitive("power", np.power, _power_vjp)
MAXIMUM = Primitive("maximum", np.maximum, _maximum_vjp)
MINIMUM = Primitive("minimum", np.minimum, _minimum_vjp)
WHERE = Primitive("where", np.where, _where_vjp)


def add(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x + y``, broadcasting. VJP: ``(g, g)``."""
    return bind(ADD, (x, y))


def subtract(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x - y``, broadcasting. VJP: ``(g, -g)``."""
    return bind(SUBTRACT, (x, y))


def multiply(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x * y``, broadcasting. VJP: ``(g y, g x)``."""
    return bind(MULTIPLY, (x, y))


def divide(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x / y`` (true division), broadcasting. VJP: ``(g / y, -g x / y^2)``."""
    return bind(DIVIDE, (x, y))


def negative(x: ArrayLike) -> ArrayLike:
    """``-x``. VJP: ``-g``."""
    return bind(NEGATIVE, (x,))


def power(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x ** y``, broadcasting. VJP: ``(g y x^(y-1), g x^y log x)``."""
    return bind(POWER, (x, y))


def maximum(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise maximum, broadcasting. On ties each input gets half the cotangent."""
    return bind(MAXIMUM, (x, y))


def minimum(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise minimum, broadcasting. On ties each input gets half the cotangent."""
    return bind(MINIMUM, (x, y))


def where(condition: ArrayLike, x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x`` where ``condition`` holds, else ``y`` (numpy's three-argument ``where``).

    The cotangent flows to ``x`` where the condition holds and to ``y`` elsewhere; the
    condition (a boolean array) is not differentiated.
    """
    return bind(WHERE, (condition, x, y))


# =======================================================================================
# Elementwise functions


def _exp_vjp(i, g, ans, x):
    """d e^x/dx = e^x = ans."""
    return g * ans


def _log_vjp(i, g, ans, x):
    """d log x/dx = 1 / x."""
    return g / x


def _sqrt_vjp(i, g, ans, x):
    """d sqrt(x)/dx = 1 / (2 sqrt(x)) = 1 / (2 ans)."""
    return g / (ans * 2)


def _tanh_vjp(i, g, ans, x):
    """d tanh(x)/dx = 1 - tanh(x)^2 = 1 - ans^2."""
    return g * (1 - ans * ans)


def _sigmoid_forward(x):
    # 1 / (1 + e^-x) written through tanh: no overflow for large |x|, dtype kept.
    return np.tanh(x * 0.5) * 0.5 + 0.5


def _sigmoid_vjp(i, g, ans, x):
    """d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x)) = ans (1 - ans)."""
    return g * ans * (1 - ans)


def _relu_forward(x):
    return np.maximum(x, 0)


def _relu_vjp(i, g, ans, x):
    """d relu(x)/dx = [x > 0] (0 at the kink x = 0)."""
    return g * (_concrete(x) > 0)


def _abs_vjp(i, g, ans, x):
    """d |x|/dx = sign(x) (0 at the kink x = 0)."""
    return g * np.sign(_concrete(x))


EXP = Primitive("exp", np.exp, _exp_vjp)
LOG = Primitive("log", np.log, _log_vjp)
SQRT = Primitive("sqrt", np.sqrt, _sqrt_vjp)
TANH = Primitive("tanh", np.tanh, _tanh_vjp)
SIGMOID = Primitive("sigmoid", _sigmoid_forward, _sigmoid_vjp)
RELU = Primitive("relu", _relu_forward, _relu_vjp)
ABS = Primitive("abs", np.abs, _abs_vjp)


def exp(x: ArrayLike) -> ArrayLike:
    """``e ** x``. VJP: ``g * ans``."""
    return bind(EXP, (x,))


def log(x: ArrayLike) -> ArrayLike:
    """Natural logarithm. VJP: ``g / x``."""
    return bind(LOG, (x,))


def sqrt(x: ArrayLike) -> ArrayLike:
    """Square root. VJP: ``g / (2 sqrt(x))``."""
    return bind(SQRT, (x,))


def tanh(x: ArrayLike) -> ArrayLike:
    """Hyperbolic tangent. VJP: ``g (1 - tanh(x)^2)``."""
    return bind(TANH, (x,))


def sigmoid(x: ArrayLike) -> ArrayLike:
    """Logistic function ``1 / (1 + e^-x)``, stable for large ``|x|``. VJP: ``g s (1 - s)``."""
    return bind(SIGMOID, (x,))


def relu(x: ArrayLike) -> ArrayLike:
    """``max(x, 0)``. VJP: ``g [x > 0]``, so ``relu'(0) = 0``."""
    return bind(RELU, (x,))


def abs(x: ArrayLike) -> ArrayLike:
    """``|x|``. VJP: ``g sign(x)``, so ``abs'(0) = 0``."""
    return bind(ABS, (x,))


# =======================================================================================
# Reductions. Each VJP reshapes g to the keepdims shape and lets it broadcast back.


def _sum_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d sum(x)/dx_j = 1: the cotangent is broadcast back over the reduced axes."""
    shape = _shape(x)
    return broadcast_to(reshape(g, _kept_shape(shape, axis)), shape)


def _mean_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d mean(x)/dx_j = 1 / n, n the number of elements averaged."""
    shape = _shape(x)
    n = math.prod(shape[a] for a in _norm_axes(axis, len(shape)))
    return broadcast_to(reshape(g, _kept_shape(shape, axis)), shape) / n


def _extremum_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d max(x)/dx_j = [x_j = max] / (number of ties): ties share the cotangent equally."""
    shape = _shape(x)
    kept = _kept_shape(shape, axis)
    hits = _concrete(x) == np.reshape(_concrete(ans), kept)
    share = (hits / hits.sum(axis=_norm_axes(axis, len(shape)), keepdims=True)).astype(
        _dtype(ans), copy=False
    )
    return reshape(g, kept) * share


def _logsumexp_forward(x, axis=None, keepdims=False):
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) rows: no shift
    with np.errstate(divide="ignore"):  # a row of -inf has log(0) = -inf, its right answer
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=_norm_axes(axis, x.ndim))


def _logsumexp_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d logsumexp(x)/dx = softmax(x) = exp(x - ans)."""
    kept = _kept_shape(_shape(x), axis)
    return reshape(g, kept) * exp(x - reshape(ans, kept))


SUM = Primitive("sum", np.sum, _sum_vjp)
MEAN = Primitive("mean", np.mean, _mean_vjp)
MAX = Primitive("max", np.max, _extremum_vjp)
MIN = Primitive("min", np.min, _extremum_vjp)
LOGSUMEXP = Primitive("logsumexp", _logsumexp_forward, _logsumexp_vjp)


def _reduce(prim: Primitive, x: ArrayLike, axis: Any, keepdims: bool) -> ArrayLike:
    if isinstance(axis, list):
        axis = tuple(axis)
    return bind(prim, (x,), {"axis": axis, "keepdims": keepdims})


def sum(x: ArrayLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> ArrayLike:
    """Sum over ``axis`` (all axes by default). VJP: ``g`` broadcast back over ``axis``."""
    return _reduce(SUM, x, axis, keepdims)


def mean(
    x: ArrayLike, axis: int | Sequence[int] | None = None, keepdims: bool = False
) -> ArrayLike:
    """Mean over ``axis``. VJP: ``g / n`` broadcast back, ``n`` the count averaged."""
    return _reduce(MEAN, x, axis, keepdims)


def max(x: ArrayLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> ArrayLike:
    """Maximum over ``axis``. The cotangent is shared equally among tied maxima."""
    return _reduce(MAX, x, axis, keepdims)


def min(x: ArrayLike, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> ArrayLike:
    """Minimum over ``axis``. The cotangent is shared equally among tied minima."""
    return _reduce(MIN, x, axis, keepdims)


def logsumexp(
    x: ArrayLike, axis: int | Sequence[int] | None = None, keepdims: bool = False
) -> ArrayLike:
    """``log(sum(exp(x), axis))``, computed after subtracting the maximum (no overflow).

    VJP: ``g softmax(x)`` over ``axis``.
    """
    return _reduce(LOGSUMEXP, x, axis, keepdims)


# =======================================================================================
# Softmax family (normalised over one axis)


def _log_softmax_forward(x, axis=-1):
    return x - _logsumexp_forward(x, axis=axis, keepdims=True)


def _log_softmax_vjp(i, g, ans, x, axis=-1):
    """d log_softmax(x)_j/dx_k = [j = k] - softmax_k: VJP ``g - softmax * sum(g)``."""
    return g - exp(ans) * sum(g, axis=axis, keepdims=True)


def _softmax_forward(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_vjp(i, g, ans, x, axis=-1):
    """d softmax_j/dx_k = s_j ([j = k] - s_k): VJP ``s * (g - sum(g s))``."""
    return ans * (g - sum(g * ans, axis=axis, keepdims=True))


LOG_SOFTMAX = Primitive("log_softmax", _log_softmax_forward, _log_softmax_vjp)
SOFTMAX = Primitive("softmax", _softmax_forward, _softmax_vjp)


def log_softmax(x: ArrayLike, axis: int = -1) -> ArrayLike:
    """``x - logsumexp(x, axis, keepdims=True)``, stable for large inputs."""
    return bind(LOG_SOFTMAX, (x,), {"axis": axis})


def softmax(x: ArrayLike, axis: int = -1) -> ArrayLike:
    """``exp(x) / sum(exp(x), axis)``, computed after subtracting the maximum."""
    return bind(SOFTMAX, (x,), {"axis": axis})


# =======================================================================================
# Linear algebra


def _matrix_transpose(a: ArrayLike) -> ArrayLike:
    nd = len(_shape(a))
    return transpose(a) if nd == 2 else transpose(a, (*range(nd - 2), nd - 1, nd - 2))


def _insert_axis(a: ArrayLike, axis: int) -> ArrayLike:
    shape = list(_shape(a))
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(a, tuple(shape))


def _matmul_vjp(i, g, ans, x, y):
    """For ``x (..., n, k) @ y (..., k, m)``: dx = g y^T, dy = x^T g (1-d operands promoted)."""
    xd, yd = len(_shape(x)), len(_shape(y))
    if xd == 1 and yd == 1:  # inner product
        return g * y if i == 0 else g * x
    x2 = reshape(x, (1, -1)) if xd == 1 else x
    y2 = reshape(y, (-1, 1)) if yd == 1 else y
    g2 = _insert_axis(g, -2) if xd == 1 else g
    g2 = _insert_axis(g2, -1) if yd == 1 else g2
    if i == 0:
        d = g2 @ _matrix_transpose(y2)
        return sum(reshape(d, (-1, _shape(x)[0])), axis=0) if xd == 1 else d
    d = _matrix_transpose(x2) @ g2
    return sum(reshape(d, (-1, _shape(y)[0])), axis=0) if yd == 1 else d


MATMUL = Primitive("matmul", np.matmul, _matmul_vjp)


def matmul(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x @ y`` with numpy's rules (1-d operands, batch broadcasting).

    VJP for 2-d operands: ``(g @ y.T, x.T @ g)``.
    """
    return bind(MATMUL, (x, y))


# =======================================================================================
# Shape and indexing


def _reshape_vjp(i, g, ans, x, shape):
    """Reshaping moves no values: reshape the cotangent back."""
    return reshape(g, _shape(x))


def _transpose_vjp(i, g, ans, x, axes=None):
    """Transposing moves values: apply the inverse permutation to the cotangent."""
    if axes is None:
        return transpose(g)
    return transpose(g, tuple(int(a) for a in np.argsort(axes)))


def _broadcast_to_vjp(i, g, ans, x, shape):
    """Broadcasting copies values: sum the cotangent over the copies."""
    return unbroadcast(g, _shape(x))


def _cast_forward(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


def _cast_vjp(i, g, ans, x, dtype):
    """A cast is the identity on values: cast the cotangent back to the input's dtype."""
    return cast(g, _dtype(x))


def _concatenate_forward(*xs, axis=0):
    return np.concatenate(xs, axis=axis)


def _concatenate_vjp(i, g, ans, *xs, axis=0):
    """Each input gets its own slice of the cotangent along ``axis``."""
    if axis is None:  # numpy flattens the inputs first
        start = builtins.sum(math.prod(_shape(x)) for x in xs[:i])
        piece = getitem(g, slice(start, start + math.prod(_shape(xs[i]))))
        return reshape(piece, _shape(xs[i]))
    ax = axis % len(_shape(xs[i]))
    start = builtins.sum(_shape(x)[ax] for x in xs[:i])
    return getitem(g, (slice(None),) * ax + (slice(start, start + _shape(xs[i])[ax]),))


def _stack_forward(*xs, axis=0):
    return np.stack(xs, axis=axis)


def _stack_vjp(i, g, ans, *xs, axis=0):
    """Input ``i`` gets the cotangent's slice ``i`` along the new axis."""
    ax = axis % (len(_shape(xs[i])) + 1)
    return getitem(g, (slice(None),) * ax + (i,))


def _getitem_forward(x, index):
    return x[index]


def _getitem_vjp(i, g, ans, x, index):
    """Indexing picks values: scatter-add the cotangent back into zeros (repeats add up).

    A concrete cotangent is returned as an :class:`IndexedCotangent` (``g`` at ``index``)
    that the interpreter adds straight into the input's accumulated cotangent, so a loop of
    ``x[i]`` costs no dense zero array per gather. A traced one stays a traced op.
    """
    if type(g) is Traced:
        return scatter_add(g, index, _shape(x), _dtype(x))
    return IndexedCotangent(index, g, _shape(x), _dtype(x))


@attrs.frozen(eq=False)
class IndexedCotangent:
    """A sparse cotangent: zeros of ``shape``/``dtype`` plus ``values`` at ``index``."""

    index: Any
    values: Any
    shape: tuple[int, ...]
    dtype: np.dtype

    def add_into(self, out: np.ndarray) -> None:
        """``out += self``, in place (repeated indices add up)."""
        np.add.at(out, self.index, self.values)

    def dense(self) -> np.ndarray:
        """The cotangent as a new dense array."""
        return _scatter_add_forward(self.values, self.index, self.shape, self.dtype)


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.all(
        isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts
    )


def _scatter_add_forward(g, index, shape, dtype):
    out = np.zeros(shape, dtype)
    if _is_basic_index(index):
        out[index] = g  # a basic index selects each element at most once
    else:
        np.add.at(out, index, g)
    return out


def _scatter_add_vjp(i, gg, ans, g, index, shape, dtype):
    """scatter_add is linear in g; its transpose is the gather ``gg[index]``."""
    return getitem(gg, index)


RESHAPE = Primitive("reshape", np.reshape, _reshape_vjp)
TRANSPOSE = Primitive("transpose", np.transpose, _transpose_vjp)
BROADCAST_TO = Primitive("broadcast_to", np.broadcast_to, _broadcast_to_vjp)
CAST = Primitive("cast", _cast_forward, _cast_vjp)
CONCATENATE = Primitive("concatenate", _concatenate_forward, _concatenate_vjp)
STACK = Primitive("stack", _stack_forward, _stack_vjp)
GETITEM = Primitive("getitem", _getitem_forward, _getitem_vjp)
SCATTER_ADD = Primitive("scatter_add", _scatter_add_forward, _scatter_add_vjp)


def reshape(x: ArrayLike, shape: int | Sequence[int]) -> ArrayLike:
    """``x`` with a new shape (one entry may be -1). VJP: ``g`` reshaped to ``x.shape``."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    return bind(RESHAPE, (x,), {"shape": shape})


def transpose(x: ArrayLike, axes: Sequence[int] | None = None) -> ArrayLike:
    """Permute the axes (reverse them by default). VJP: the inverse permutation of ``g``."""
    if axes is not None:
        nd = len(_shape(x))
        axes = tuple(int(a) % nd if nd else int(a) for a in axes)
    return bind(TRANSPOSE, (x,), {"axes": axes})


def broadcast_to(x: ArrayLike, shape: Sequence[int]) -> ArrayLike:
    """``x`` broadcast to ``shape`` (a read-only view). VJP: ``g`` summed over the copies."""
    return bind(BROADCAST_TO, (x,), {"shape": tuple(shape)})


def cast(x: ArrayLike, dtype: Any) -> ArrayLike:
    """``x.astype(dtype)``. VJP: ``g`` cast back to ``x``'s dtype."""
    return bind(CAST, (x,), {"dtype": np.dtype(dtype)})


def concatenate(arrays: Sequence[ArrayLike], axis: int | None = 0) -> ArrayLike:
    """Join arrays along an existing axis. VJP: each input gets its slice of ``g``."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("tg.concatenate: need at least one array to concatenate")
    return bind(CONCATENATE, arrays, {"axis": axis})


def stack(arrays: Sequence[ArrayLike], axis: int = 0) -> ArrayLike:
    """Join arrays of one shape along a new axis. VJP: input ``i`` gets ``g`` at ``i``."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("tg.stack: need at least one array to stack")
    return bind(STACK, arrays, {"axis": axis})


def getitem(x: ArrayLike, index: Any) -> ArrayLike:
    """``x[index]`` with numpy's basic and advanced indexing.

    VJP: ``g`` scattered back into zeros of ``x``'s shape; repeated integer indices add up.
    """
    if type(index) is Traced:
        raise TypeError("tg.getitem: an index cannot be a traced value; index with integers")
    if isinstance(index, list):
        index = np.asarray(index)
    return bind(GETITEM, (x,), {"index": index})


def scatter_add(g: ArrayLike, index: Any, shape: Sequence[int], dtype: Any) -> ArrayLike:
    """Zeros of ``shape``/``dtype`` with ``g`` added at ``index``: the transpose of indexing."""
    return bind(
        SCATTER_ADD, (g,), {"index": index, "shape": tuple(shape), "dtype": np.dtype(dtype)}
    )


def take(x: ArrayLike, indices: ArrayLike, axis: int | None = None) -> ArrayLike:
    """``np.take``: pick ``indices`` along ``axis`` (from the flattened array by default)."""
    indices = np.asarray(_concrete(indices))
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"tg.take: indices must be integers, got dtype {indices.dtype}")
    if axis is None:
        return getitem(reshape(x, (-1,)), indices)
    ax = axis % len(_shape(x))
    return getitem(x, (slice(None),) * ax + (indices,))


def unbroadcast(g: ArrayLike, shape: tuple[int, ...]) -> ArrayLike:
    """Sum ``g`` down to ``shape``: the transpose of numpy broadcasting ``shape -> g.shape``.

    Leading axes that broadcasting added are summed away; axes where ``shape`` has 1 and
    ``g`` does not are summed with ``keepdims``. This is the one place tapegrad undoes
    broadcasting.
    """
    gshape = _shape(g)
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
    if _shape(g) != shape:  # a cotangent smaller than its input (a scalar, say)
        g = broadcast_to(g, shape)
    return g


# =======================================================================================
# Layers used by tapegrad.nn: one primitive each, so the tape stays short.


def _affine_forward(W, b, x):
    if type(W) is not np.ndarray or type(b) is not np.ndarray or type(x) is not np.ndarray:
        W, b, x = np.asarray(W), np.asarray(b), np.asarray(x)
    if W.ndim != 2 or b.shape != (W.shape[0],) or x.ndim not in (1, 2) or x.shape[-1] != W.shape[1]:
        raise ValueError(
            f"tg.affine: expected W (out, in), b (out,) and x (batch, in) or (in,); got "
            f"W {W.shape}, b {b.shape}, x {x.shape}"
        )
    out = x @ W.T
    if out.ndim == 2 and b.dtype == out.dtype:
        out += b  # the product is a fresh array: add the bias in place
        return out
    return out + b


def _affine_vjp(i, g, ans, W, b, x):
    """For ``y = x W^T + b``: dL/dW = g^T x, dL/db = sum of g over the batch, dL/dx = g W."""
    batched = len(_shape(x)) == 2
    if i == 0:
        return g.T @ x if batched else reshape(g, (-1, 1)) * x
    if i == 1:
        return g.sum(axis=0) if batched else g
    return g @ W


def _check_labels(logits_shape: tuple[int, ...], labels: Any) -> np.ndarray:
    labels = np.asarray(_concrete(labels))
    if len(logits_shape) != 2:
        raise ValueError(f"tg.nll: expected logits of shape (batch, classes), got {logits_shape}")
    batch, classes = logits_shape
    if labels.dtype.kind not in "iu":
        raise ValueError(
            f"tg.nll: labels must be integers in [0, {classes}), got dtype {labels.dtype}"
        )
    if labels.shape != (batch,):
        raise ValueError(
            f"tg.nll: expected labels of shape ({batch},) for logits {logits_shape}, "
            f"got {labels.shape}"
        )
    if batch and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"tg.nll: labels must lie in [0, {classes}), got values from {labels.min()} "
            f"to {labels.max()}"
        )
    return labels


def _nll_forward(logits, labels):
    logits = np.asarray(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # largest logit of a row: 0
    probs = np.exp(shifted)
    total = probs.sum(axis=1, keepdims=True)
    loss = np.log(total[:, 0])
    loss -= shifted[np.arange(len(labels)), labels]
    probs /= total
    return loss.sum() / len(labels), probs  # the softmax is the VJP's residual


def _nll_vjp(i, g, ans, logits, labels, saved=None):
    """d nll/d logits = (softmax(logits) - onehot(labels)) / batch."""
    batch = len(labels)
    rows = np.arange(batch)
    if saved is not None and type(g) is not Traced:  # concrete: finish the saved softmax
        scale = g / batch
        out = saved * scale
        out[rows, labels] -= scale
        return out
    probs = saved if saved is not None else softmax(logits, axis=1)
    onehot = np.zeros(_shape(logits), _dtype(logits))
    onehot[rows, labels] = 1
    return (probs - onehot) * (g / batch)


AFFINE = Primitive("affine", _affine_forward, _affine_vjp)
NLL = Primitive("nll", _nll_forward, _nll_vjp, saves=True)


def affine(W: ArrayLike, b: ArrayLike, x: ArrayLike) -> ArrayLike:
    """``x @ W.T + b`` with ``W (out, in)``, ``b (out,)``, ``x (batch, in)`` or ``(in,)``.

    VJP (the lab report's equations): ``dL/dW = g^T x``, ``dL/db = sum_batch g``,
    ``dL/dx = g W``; the last is never computed when ``x`` is a constant (input images).
    """
    return bind(AFFINE, (W, b, x))


def nll(logits: ArrayLike, labels: ArrayLike) -> ArrayLike:
    """Mean negative log-likelihood ``mean_i(logsumexp(logits_i) - logits_i[labels_i])``.

    ``logits`` has shape ``(batch, classes)``; ``labels`` are integers in ``[0, classes)``
    of shape ``(batch,)``. Stable for large logits. VJP: ``(softmax - onehot) / batch``.
    """
    return bind(NLL, (logits,), {"labels": _check_labels(_shape(logits), labels)})


# =======================================================================================
# Python operators and numpy ufuncs on traced values


def _swap(op):
    def reflected(self, other):
        return op(other, self)

    reflected.__name__ = f"r{op.__name__}"
    return reflected


def _comparison(ufunc):
    def compare(self, other):
        return ufunc(_concrete(self), _concrete(other))

    compare.__name__ = ufunc.__name__
    return compare


def _traced_getitem(self, index):
    return getitem(self, index)


def _traced_iter(self):
    return (getitem(self, k) for k in range(len(self)))


def _traced_reshape(self, *shape):
    return reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)


def _traced_transpose(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return transpose(self, axes or None)


def _traced_reduction(fn):
    def method(self, axis=None, keepdims=False):
        return fn(self, axis=axis, keepdims=keepdims)

    method.__name__ = fn.__name__
    return method


_UFUNCS = {
    np.add: add,
    np.subtract: subtract,
    np.multiply: multiply,
    np.divide: divide,
    np.negative: negative,
    np.power: power,
    np.matmul: matmul,
    np.exp: exp,
    np.log: log,
    np.sqrt: sqrt,
    np.tanh: tanh,
    np.absolute: abs,
    np.maximum: maximum,
    np.minimum: minimum,
}
_COMPARISONS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal}


def _traced_array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method == "__call__" and not kwargs:
        if ufunc in _UFUNCS:
            return _UFUNCS[ufunc](*inputs)
        if ufunc in _COMPARISONS or ufunc in (np.isfinite, np.isnan, np.isinf, np.sign):
            return ufunc(*(_concrete(a) for a in inputs))
    raise TypeError(
        f"np.{ufunc.__name__} ({method}{', with ' + ', '.join(kwargs) if kwargs else ''}) has "
        "no derivative rule in tapegrad; use the tapegrad op of the same name (tg.exp, tg.sum, "
        "...) or declare a new primitive"
    )


for _name, _fn in {
    "__add__": add,
    "__sub__": subtract,
    "__mul__": multiply,
    "__truediv__": divide,
    "__pow__": power,
    "__matmul__": matmul,
}.items():
    setattr(Traced, _name, _fn)
    setattr(Traced, "__r" + _name[2:], _swap(_fn))
for _name, _ufunc in {
    "__lt__": np.less,
    "__le__": np.less_equal,
    "__gt__": np.greater,
    "__ge__": np.greater_equal,
    "__eq__": np.equal,
    "__ne__": np.not_equal,
}.items():
    setattr(Traced, _name, _comparison(_ufunc))
Traced.__hash__ = None  # __eq__ is elementwise, as in numpy
Traced.__neg__ = negative
Traced.__pos__ = lambda self: self
Traced.__abs__ = abs
Traced.__getitem__ = _traced_getitem
Traced.__iter__ = _traced_iter
Traced.__array_ufunc__ = _traced_array_ufunc
Traced.T = property(transpose)
Traced.reshape = _traced_reshape
Traced.transpose = _traced_transpose
Traced.astype = cast
Traced.sum = _traced_reduction(sum)
Traced.mean = _traced_reduction(mean)
Traced.max = _traced_reduction(max)
Traced.min = _traced_reduction(min)
