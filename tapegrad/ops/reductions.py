"""Reductions beyond ``sum`` and scans: ``mean``, ``max``, ``min``, ``logsumexp``, ``prod``,
``var``, ``std``, ``amax``, ``amin``, ``ptp``, the truth tests ``all`` and ``any``,
``average``, ``cumsum``, ``cumprod``, ``diff`` and ``trace``.

Each reduction's rule reshapes ``g`` to the ``keepdims`` shape and lets it broadcast back
over the reduced axes. The products (``prod``, ``cumprod``) never divide by ``x``: their
rules are products of prefix and suffix products, exact where ``x`` has zeros and
themselves differentiable.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad.ops.axes import dtype_of, kept_shape, normalize_axes, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    _axis_param,
    broadcast_to,
    cast,
    equal,
    getitem,
    no_out,
    reshape,
    scatter_add,
    sum,
    transpose,
    zero_vjp,
)
from tapegrad.ops.elementwise import exp
from tapegrad.ops.registry import DISTINCT, Interval, op, reduction
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "all",
    "amax",
    "amin",
    "any",
    "average",
    "cumprod",
    "cumsum",
    "diff",
    "logsumexp",
    "max",
    "mean",
    "min",
    "prod",
    "ptp",
    "std",
    "trace",
    "var",
]

Axis = int | Sequence[int] | None


def _reduce(prim: Primitive, x: ArrayLike, axis: Axis, keepdims: bool) -> ArrayLike:
    return bind(prim, (x,), {"axis": _axis_param(axis), "keepdims": bool(keepdims)})


def _mean_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d mean(x)/dx_j = 1 / n, n the number of elements averaged."""
    shape = shape_of(x)
    n = math.prod(shape[a] for a in normalize_axes(axis, len(shape)))
    return broadcast_to(reshape(g, kept_shape(shape, axis)), shape) / n


MEAN = Primitive("mean", np.mean, _mean_vjp)


@op(np.mean, sample=reduction(), method="mean")
def mean(
    a: ArrayLike, axis: Axis = None, dtype: Any = None, out: None = None, keepdims: bool = False
) -> ArrayLike:
    """Mean over ``axis``, computed in ``dtype`` if given (numpy's order of arguments).

    VJP: ``g / n`` broadcast back, ``n`` the count averaged.
    """
    no_out("mean", out)
    if dtype is not None:
        a = cast(a, dtype)
    return _reduce(MEAN, a, axis, keepdims)


def _extremum_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d max(x)/dx_j = [x_j = max] / (number of ties): ties share the cotangent equally."""
    kept = kept_shape(shape_of(x), axis)
    hits = cast(equal(x, reshape(ans, kept)), dtype_of(ans))
    return reshape(g, kept) * (hits / sum(hits, axis=axis, keepdims=True))


def _max_forward(x, axis=None, keepdims=False):
    """``np.max`` without its Python layer: the reduction it calls."""
    return np.maximum.reduce(x, axis, None, None, keepdims)


def _min_forward(x, axis=None, keepdims=False):
    """``np.min`` without its Python layer: the reduction it calls."""
    return np.minimum.reduce(x, axis, None, None, keepdims)


MAX = Primitive("max", _max_forward, _extremum_vjp, fresh=True)
MIN = Primitive("min", _min_forward, _extremum_vjp, fresh=True)
_DISTINCT = reduction(DISTINCT)
_TIES = "tied extrema share the cotangent equally"


@op(np.max, sample=_DISTINCT, method="max", convention=_TIES)
def max(a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False) -> ArrayLike:
    """Maximum over ``axis``. VJP: ``g`` to the maximum (shared equally among ties)."""
    no_out("max", out)
    return _reduce(MAX, a, axis, keepdims)


@op(np.min, sample=_DISTINCT, method="min", convention=_TIES)
def min(a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False) -> ArrayLike:
    """Minimum over ``axis``. VJP: ``g`` to the minimum (shared equally among ties)."""
    no_out("min", out)
    return _reduce(MIN, a, axis, keepdims)


def logsumexp_forward(x, axis=None, keepdims=False):
    """numpy's ``log(sum(exp(x)))`` after subtracting the maximum (no overflow)."""
    x = np.asarray(x)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) rows: no shift
    with np.errstate(divide="ignore"):  # a row of -inf has log(0) = -inf, its right answer
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=normalize_axes(axis, x.ndim))


def _logsumexp_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d logsumexp(x)/dx = softmax(x) = exp(x - ans)."""
    kept = kept_shape(shape_of(x), axis)
    return reshape(g, kept) * exp(x - reshape(ans, kept))


LOGSUMEXP = Primitive("logsumexp", logsumexp_forward, _logsumexp_vjp)


@op(sample=reduction())
def logsumexp(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> ArrayLike:
    """``log(sum(exp(x), axis))``, computed after subtracting the maximum (no overflow).

    VJP: ``g softmax(x)`` over ``axis``.
    """
    return _reduce(LOGSUMEXP, x, axis, keepdims)


# =======================================================================================
# Helpers for the blocks below: numpy's ``dtype=`` and ``out=``, and moving values along
# one axis with indexing ops, so that the rules built from them stay differentiable


def _dtype_param(dtype: Any) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


def _in_dtype(x: ArrayLike, dtype: np.dtype | None) -> ArrayLike:
    """``x`` as the forward computed with it: cast to ``dtype`` when one was asked for."""
    return x if dtype is None or dtype_of(x) == dtype else cast(x, dtype)


def _along(axis: int, index: Any) -> tuple:
    """An index that applies ``index`` to axis ``axis`` (non-negative) and takes the rest."""
    return (slice(None),) * axis + (index,)


def _flip(v: ArrayLike, axis: int) -> ArrayLike:
    """``v`` reversed along ``axis``."""
    return getitem(v, _along(axis, slice(None, None, -1)))


def _shift(v: ArrayLike, k: int, axis: int) -> ArrayLike:
    """``out[j] = v[j - k]`` along ``axis``, with zeros where ``j - k`` is out of range."""
    shape = shape_of(v)
    n = shape[axis]
    m = builtins.max(n - builtins.abs(k), 0)  # how many values stay
    src, dst = (slice(0, m), slice(n - m, n)) if k >= 0 else (slice(n - m, n), slice(0, m))
    return scatter_add(getitem(v, _along(axis, src)), shape, dtype_of(v), _along(axis, dst))


def _first(shape: tuple[int, ...], axis: int, dtype: np.dtype) -> np.ndarray:
    """A constant that broadcasts against ``shape``: 1 at index 0 of ``axis``, else 0."""
    e = np.zeros(tuple(s if k == axis else 1 for k, s in enumerate(shape)), dtype)
    e[_along(axis, slice(0, 1))] = 1
    return e


def _exclusive_cumprod(v: ArrayLike, axis: int) -> ArrayLike:
    """``prod_{m < k} v_m`` along ``axis`` (1 at ``k = 0``), without dividing."""
    return _shift(cumprod(v, axis=axis), 1, axis) + _first(shape_of(v), axis, dtype_of(v))


def _count(shape: tuple[int, ...], axis: Axis) -> int:
    """How many elements a reduction over ``axis`` combines into each result."""
    return math.prod(shape[k] for k in normalize_axes(axis, len(shape)))


# =======================================================================================
# Products


def _prod_vjp(i, g, ans, x, axis=None, dtype=None, keepdims=False):
    """d prod(x)/dx_j = prod_{m != j} x_m: the product of the values before ``x_j`` times the
    product of those after it, along the reduced axes moved to the end and flattened."""
    x = _in_dtype(x, dtype)
    shape = shape_of(x)
    axes = normalize_axes(axis, len(shape))
    rest = tuple(k for k in range(len(shape)) if k not in axes)
    perm = (*rest, *axes)
    moved = perm != tuple(range(len(shape)))
    lined = reshape(
        transpose(x, perm) if moved else x, (*(shape[k] for k in rest), _count(shape, axis))
    )
    last = len(rest)
    before = _exclusive_cumprod(lined, last)
    after = _flip(_exclusive_cumprod(_flip(lined, last), last), last)
    others = reshape(before * after, tuple(shape[k] for k in perm))
    if moved:
        others = transpose(others, tuple(int(k) for k in np.argsort(perm)))
    return reshape(g, kept_shape(shape, axis)) * others


PROD = Primitive("prod", np.prod, _prod_vjp)

#: Multiples of 0.5: exact zeros, one or several in a slice, and ties.
_ZEROS = Interval(-1.5, 1.5, step=0.5)


def _sample_prod(draw):
    shape = draw.shape()
    kwargs = {"axis": draw.axis(len(shape)), "keepdims": draw.choice((False, True))}
    return (draw.array(shape, draw.choice((_ZEROS, Interval(-1.5, 1.5)))),), kwargs


@op(
    np.prod,
    sample=_sample_prod,
    method="prod",
    convention="exact at zeros: with one zero in a slice it gets the product of the others "
    "and the rest 0; with two or more, all 0",
)
def prod(
    a: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    keepdims: bool = False,
) -> ArrayLike:
    """Product over ``axis`` (all axes by default), computed in ``dtype`` if given.

    VJP: ``g prod_{m != j} x_m`` for each ``x_j``, from exclusive prefix and suffix products
    (no division by ``x``), so it is exact where ``x`` has zeros.
    """
    no_out("prod", out)
    params = {"axis": _axis_param(axis), "dtype": _dtype_param(dtype), "keepdims": bool(keepdims)}
    return bind(PROD, (a,), params)


def _cumprod_vjp(i, g, ans, x, axis=None, dtype=None):
    """With ``y_k = prod_{m <= k} x_m``: ``dL/dx_j = y_{j-1} S_j`` (``y_{-1} = 1``), where
    ``S_j = sum_{k >= j} g_k prod_{j < m <= k} x_m``.

    ``S`` solves the linear recurrence ``S_j = g_j + x_{j+1} S_{j+1}``; a scan of
    ``ceil(log2 n)`` steps of shifts and products computes it, without dividing by ``x``
    (exact at zeros) and with ops, so the rule is differentiable again.
    """
    shape = shape_of(x)
    x = _in_dtype(reshape(x, (-1,)) if axis is None else x, dtype)  # numpy flattens for None
    ax = 0 if axis is None else axis % len(shape)
    n = shape_of(x)[ax]
    s, a = g, _shift(x, -1, ax)  # the window of S is [j, j + d); a_j = prod of x over (j, j + d]
    d = 1
    while d < n:
        s = s + a * _shift(s, -d, ax)
        if 2 * d < n:
            a = a * _shift(a, -d, ax)
        d *= 2
    ct = (_shift(ans, 1, ax) + _first(shape_of(x), ax, dtype_of(ans))) * s
    return reshape(ct, shape) if axis is None else ct


CUMPROD = Primitive("cumprod", np.cumprod, _cumprod_vjp)


def _sample_scan(*intervals: Interval):
    def sample(draw):
        shape = draw.shape()
        axis = draw.axis(len(shape), tuples=False)
        return (draw.array(shape, draw.choice(intervals)),), {"axis": axis}

    return sample


@op(
    np.cumprod,
    sample=_sample_scan(_ZEROS, Interval(-1.5, 1.5)),
    method="cumprod",
    convention="exact at zeros (no division by x)",
)
def cumprod(
    a: ArrayLike, axis: int | None = None, dtype: Any = None, out: None = None
) -> ArrayLike:
    """Cumulative product along ``axis`` (of the flattened array for ``None``).

    VJP: ``dx_j = y_{j-1} sum_{k >= j} g_k prod_{j < m <= k} x_m`` (``y`` the result), by a
    log-depth scan of products: no division, exact at zeros.
    """
    no_out("cumprod", out)
    return bind(CUMPROD, (a,), {"axis": _axis_param(axis), "dtype": _dtype_param(dtype)})


# =======================================================================================
# Moments: var and std


def _per_dof(scale: float, n: int, ddof: float) -> float:
    """``scale / (n - ddof)``; inf where numpy's degrees of freedom ``max(n - ddof, 0)``
    are 0 (numpy's value is then inf or nan too)."""
    dof = n - ddof
    return scale / dof if dof > 0 else math.inf


def _var_vjp(i, g, ans, x, axis=None, dtype=None, ddof=0, keepdims=False):
    """d var(x)/dx_j = 2 (x_j - mean(x)) / (n - ddof)."""
    x = _in_dtype(x, dtype)
    shape = shape_of(x)
    centered = x - mean(x, axis=axis, keepdims=True)
    return reshape(g, kept_shape(shape, axis)) * centered * _per_dof(2.0, _count(shape, axis), ddof)


VAR = Primitive("var", np.var, _var_vjp)


def _sample_var(draw):
    shape = draw.shape()
    axis = draw.axis(len(shape))
    ddof = draw.choice(range(builtins.min(_count(shape, axis), 2)))  # keep n - ddof >= 1
    kwargs = {"axis": axis, "ddof": ddof, "keepdims": draw.choice((False, True))}
    return (draw.array(shape, Interval()),), kwargs


@op(np.var, sample=_sample_var, method="var")
def var(
    a: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    ddof: float = 0,
    keepdims: bool = False,
) -> ArrayLike:
    """Variance over ``axis``: ``sum((x - mean)^2) / (n - ddof)``.

    VJP: ``2 g (x - mean) / (n - ddof)``. Where ``n - ddof <= 0`` numpy's value is inf or
    nan (with its warning) and so is the derivative.
    """
    no_out("var", out)
    params = {"axis": _axis_param(axis), "dtype": _dtype_param(dtype), "ddof": ddof}
    return bind(VAR, (a,), {**params, "keepdims": bool(keepdims)})


def _std_vjp(i, g, ans, x, axis=None, dtype=None, ddof=0, keepdims=False):
    """d std(x)/dx_j = (x_j - mean(x)) / ((n - ddof) std(x)): 0 / 0 = NaN where std = 0,
    except over slices of one value (``n == 1 > ddof``), where std is 0 whatever ``x``
    and so is its derivative: ``g (x - mean(x))``, exactly 0 (and so its derivatives)."""
    x = _in_dtype(x, dtype)
    shape = shape_of(x)
    kept = kept_shape(shape, axis)
    n = _count(shape, axis)
    centered = x - mean(x, axis=axis, keepdims=True)
    scaled = reshape(g, kept) * centered * _per_dof(1.0, n, ddof)
    if n == 1 and ddof < 1:  # a function of x that is constant, not a kink
        return scaled
    return scaled / reshape(ans, kept)


STD = Primitive("std", np.std, _std_vjp)


def _sample_std(draw):
    # two or more distinct values per slice keep std away from 0, where it has a kink
    shape = draw.shape(min_dims=1, min_side=2)
    kwargs = {
        "axis": draw.axis(len(shape)),
        "ddof": draw.choice((0, 1)),
        "keepdims": draw.choice((False, True)),
    }
    return (draw.array(shape, DISTINCT),), kwargs


@op(
    np.std,
    sample=_sample_std,
    method="std",
    convention="NaN where a slice of two or more values is constant (std = 0), as PyTorch "
    "and JAX; 0 over slices of one value, where std is 0 whatever x",
)
def std(
    a: ArrayLike,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    ddof: float = 0,
    keepdims: bool = False,
) -> ArrayLike:
    """Standard deviation over ``axis``: ``sqrt(var(a, axis, ddof=ddof))``.

    VJP: ``g (x - mean) / ((n - ddof) std)``; NaN over a constant slice of two or more
    values (std = 0), where the derivative does not exist (PyTorch and JAX give NaN too);
    0 over slices of one value (``n = 1``, ``ddof < 1``), where std is 0 for every ``x``.
    """
    no_out("std", out)
    params = {"axis": _axis_param(axis), "dtype": _dtype_param(dtype), "ddof": ddof}
    return bind(STD, (a,), {**params, "keepdims": bool(keepdims)})


# =======================================================================================
# numpy's other names for max and min, and the range max - min


@op(np.amax, sample=_DISTINCT, convention=_TIES)
def amax(a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False) -> ArrayLike:
    """numpy's ``amax``, the same as :func:`max`. VJP: ``g`` to the maximum (ties share it)."""
    no_out("amax", out)
    return _reduce(MAX, a, axis, keepdims)


@op(np.amin, sample=_DISTINCT, convention=_TIES)
def amin(a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False) -> ArrayLike:
    """numpy's ``amin``, the same as :func:`min`. VJP: ``g`` to the minimum (ties share it)."""
    no_out("amin", out)
    return _reduce(MIN, a, axis, keepdims)


@op(np.ptp, sample=_DISTINCT, convention="as max - min: tied extrema share the cotangent")
def ptp(a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False) -> ArrayLike:
    """Range (peak to peak) over ``axis``: ``max(a) - min(a)``, as numpy computes it.

    VJP: ``g`` to the maximum and ``-g`` to the minimum, tied extrema sharing equally (a
    constant slice gets ``g/n - g/n = 0``).
    """
    no_out("ptp", out)
    return max(a, axis=axis, keepdims=keepdims) - min(a, axis=axis, keepdims=keepdims)


# =======================================================================================
# Truth tests over axes: boolean results, recorded (a replayed tape recomputes them) with
# no derivative


def _all_forward(a, where=True, axis=None, keepdims=False):
    return np.all(a, axis=axis, keepdims=keepdims, where=where)


def _any_forward(a, where=True, axis=None, keepdims=False):
    return np.any(a, axis=axis, keepdims=keepdims, where=where)


ALL = Primitive("all", _all_forward, zero_vjp)
ANY = Primitive("any", _any_forward, zero_vjp)


def _sample_truth(draw):
    """Values -1, 0 and 1 (zeros are false), an axis, ``keepdims`` and maybe a ``where``
    mask of the same shape."""
    shape = draw.shape()
    kwargs = {"axis": draw.axis(len(shape)), "keepdims": draw.choice((False, True))}
    if draw.choice((False, True)):
        kwargs["where"] = draw.array(shape, Interval(-1, 1)) > 0
    return (draw.array(shape, Interval(-1, 1, step=1)),), kwargs


def _truth(prim: Primitive, a: ArrayLike, axis: Axis, keepdims: bool, where: Any) -> ArrayLike:
    args = (a,) if where is True else (a, where)  # a where array is an input, like an index
    return bind(prim, args, {"axis": _axis_param(axis), "keepdims": bool(keepdims)})


@op(np.all, sample=_sample_truth, method="all", float32=False)
def all(
    a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False, *, where: Any = True
) -> ArrayLike:
    """Whether every element over ``axis`` (all axes by default) is nonzero: a boolean
    array, or a numpy bool when all axes are reduced; True over no elements. ``where``, a
    boolean array that broadcasts to ``a``'s shape, leaves the elements where it is False
    out (numpy's order of arguments; ``out`` must be None).

    Derivative: none (a boolean result).
    """
    no_out("all", out)
    return _truth(ALL, a, axis, keepdims, where)


@op(np.any, sample=_sample_truth, method="any", float32=False)
def any(
    a: ArrayLike, axis: Axis = None, out: None = None, keepdims: bool = False, *, where: Any = True
) -> ArrayLike:
    """Whether some element over ``axis`` (all axes by default) is nonzero: a boolean array,
    or a numpy bool when all axes are reduced; False over no elements. ``where`` as in
    :func:`all` (numpy's order of arguments; ``out`` must be None).

    Derivative: none (a boolean result).
    """
    no_out("any", out)
    return _truth(ANY, a, axis, keepdims, where)


# =======================================================================================
# Weighted average


def _axis_order(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative axes in the order given (numpy's weights follow it)."""
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(a % ndim for a in axes)


def _aligned_weights(w: ArrayLike, shape: tuple[int, ...], axis: Axis) -> ArrayLike:
    """The weights as numpy's ``average`` uses them: ``a``'s shape, or the shape of ``a``
    along ``axis`` (in ``axis``'s order) turned to broadcast against ``a``."""
    if shape_of(w) == shape:
        return w
    axes = _axis_order(axis, len(shape))
    if list(axes) != sorted(axes):
        w = transpose(w, tuple(int(k) for k in np.argsort(axes)))
    return reshape(w, tuple(s if k in axes else 1 for k, s in enumerate(shape)))


def _average_forward(a, w, axis=None, keepdims=False):
    return np.average(a, axis, w, keepdims=keepdims)


def _average_vjp(i, g, ans, a, w, axis=None, keepdims=False):
    """With ``avg = sum(a w) / sum(w)`` over ``axis``: d avg/da = w / sum(w) and
    d avg/dw = (a - avg) / sum(w). Weights given along ``axis`` get their cotangent summed
    over the other axes and put back in their own shape."""
    shape = shape_of(a)
    kept = kept_shape(shape, axis)
    aligned = _aligned_weights(w, shape, axis)
    per_weight = reshape(g, kept) / sum(aligned, axis=axis, keepdims=True)
    if i == 0:
        return per_weight * aligned
    ct = per_weight * (a - reshape(ans, kept))
    if shape_of(w) == shape:
        return ct
    axes = _axis_order(axis, len(shape))
    ct = sum(ct, axis=tuple(k for k in range(len(shape)) if k not in axes))
    if list(axes) != sorted(axes):  # undo the transpose of _aligned_weights
        ct = transpose(ct, tuple(int(k) for k in np.argsort(np.argsort(axes))))
    return ct


AVERAGE = Primitive("average", _average_forward, _average_vjp)


def _sample_average(draw):
    shape = draw.shape()
    axis = draw.axis(len(shape))
    along = axis is not None and draw.choice((False, True))  # weights of a's shape along axis
    wshape = tuple(shape[k] for k in _axis_order(axis, len(shape))) if along else shape
    args = (draw.array(shape, Interval()), axis, draw.array(wshape, Interval(0.5, 2)))
    return args, {"keepdims": draw.choice((False, True))}


@op(np.average, sample=_sample_average, argnums=(0, 2))
def average(
    a: ArrayLike,
    axis: Axis = None,
    weights: ArrayLike | None = None,
    returned: bool = False,
    *,
    keepdims: bool = False,
) -> Any:
    """Weighted average over ``axis``: ``sum(a w) / sum(w)`` (the mean without weights).

    ``weights`` has ``a``'s shape, or the shape of ``a`` along ``axis``. With ``returned``
    the result is ``(average, sum of weights)``, the sum broadcast to the average's shape.

    VJP: ``g w / sum(w)`` for ``a`` and ``g (a - average) / sum(w)`` for ``weights``.
    """
    if type(a) is not Traced and type(weights) is not Traced:
        return np.average(a, axis, weights, returned, keepdims=keepdims)
    axis = _axis_param(axis)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        if not returned:
            return avg
        count = math.prod(shape_of(a)) / builtins.max(math.prod(shape_of(avg)), 1)
        return avg, np.full(shape_of(avg), count, dtype_of(avg))[()]
    avg = bind(AVERAGE, (a, weights), {"axis": axis, "keepdims": bool(keepdims)})
    if not returned:
        return avg
    total = sum(
        cast(_aligned_weights(weights, shape_of(a), axis), dtype_of(avg)), axis, keepdims=keepdims
    )
    if shape_of(total) != shape_of(avg):
        total = broadcast_to(total, shape_of(avg))
    return avg, total


# =======================================================================================
# Scans and differences


def _cumsum_vjp(i, g, ans, x, axis=None, dtype=None):
    """With ``y_k = sum_{m <= k} x_m``: ``dL/dx_j = sum_{k >= j} g_k``, a cumulative sum of
    ``g`` from the end."""
    if axis is None:  # numpy flattened x
        return reshape(_flip(cumsum(_flip(g, 0), 0), 0), shape_of(x))
    ax = axis % len(shape_of(x))
    return _flip(cumsum(_flip(g, ax), ax), ax)


CUMSUM = Primitive("cumsum", np.cumsum, _cumsum_vjp)


@op(np.cumsum, sample=_sample_scan(Interval()), method="cumsum")
def cumsum(a: ArrayLike, axis: int | None = None, dtype: Any = None, out: None = None) -> ArrayLike:
    """Cumulative sum along ``axis`` (of the flattened array for ``None``).

    VJP: ``g`` summed cumulatively from the end along ``axis``.
    """
    no_out("cumsum", out)
    return bind(CUMSUM, (a,), {"axis": _axis_param(axis), "dtype": _dtype_param(dtype)})


def _diff_forward(a, *ends, n, axis, prepend, append):
    given = iter(ends)
    kwargs = {}
    if prepend:
        kwargs["prepend"] = next(given)
    if append:
        kwargs["append"] = next(given)
    return np.diff(a, n, axis, **kwargs)


def _difference_transpose(g: ArrayLike, axis: int) -> ArrayLike:
    """The transpose of ``x -> x[1:] - x[:-1]`` along ``axis``: ``out[k] = g[k-1] - g[k]``,
    one longer than ``g`` (zeros beyond its ends)."""
    shape = list(shape_of(g))
    shape[axis] += 1
    shape, dtype = tuple(shape), dtype_of(g)
    return scatter_add(g, shape, dtype, _along(axis, slice(1, None))) - scatter_add(
        g, shape, dtype, _along(axis, slice(0, -1))
    )


def _diff_vjp(i, g, ans, a, *ends, n, axis, prepend, append):
    """``diff`` is linear: apply the transpose of one difference ``n`` times to ``g``, then
    give ``prepend``, ``a`` and ``append`` their slices along ``axis``."""
    for _ in range(n):
        g = _difference_transpose(g, axis)
    args = (a, *ends)
    order = ([1] if prepend else []) + [0] + ([len(ends)] if append else [])
    start = 0
    for k in order:
        length = shape_of(args[k])[axis] if shape_of(args[k]) else 1  # a scalar is one slice
        if k == i:
            return getitem(g, _along(axis, slice(start, start + length)))
        start += length
    return None


DIFF = Primitive("diff", _diff_forward, _diff_vjp)


def _sample_diff(draw):
    shape = draw.shape(min_dims=1)
    axis = draw.integers(-len(shape), len(shape) - 1)
    n = draw.integers(0, 2)
    ends = []
    for _ in range(2):  # prepend and append: a scalar, or one or two slices along axis
        side = draw.choice((0, 1, 2))
        end = list(shape)
        end[axis] = side
        ends.append(draw.array(tuple(end) if side else (), Interval()))
    return (draw.array(shape, Interval()), n, axis, *ends), {}


@op(np.diff, sample=_sample_diff, argnums=(0, 3, 4))
def diff(
    a: ArrayLike,
    n: int = 1,
    axis: int = -1,
    prepend: ArrayLike = np._NoValue,
    append: ArrayLike = np._NoValue,
) -> ArrayLike:
    """The ``n``-th difference along ``axis``, ``out[j] = x[j + 1] - x[j]`` applied ``n``
    times, of ``a`` joined with ``prepend`` and ``append`` (a scalar is one slice).

    VJP: linear in every input: ``g`` through the transposed differences, split between
    ``prepend``, ``a`` and ``append``.
    """
    if n == 0:
        return a  # as numpy: prepend and append are ignored
    nd = len(shape_of(a))
    if nd and -nd <= axis < nd:  # otherwise numpy raises its own error
        axis %= nd
    ends = tuple(e for e in (prepend, append) if e is not np._NoValue)
    params = {
        "n": n,
        "axis": axis,
        "prepend": prepend is not np._NoValue,
        "append": append is not np._NoValue,
    }
    return bind(DIFF, (a, *ends), params)


# =======================================================================================
# Trace


def _trace_vjp(i, g, ans, x, offset=0, axis1=0, axis2=1, dtype=None):
    """d trace(x)/dx = 1 on the ``offset`` diagonal of the (axis1, axis2) planes, else 0."""
    shape = shape_of(x)
    nd = len(shape)
    a1, a2 = axis1 % nd, axis2 % nd
    eye = np.eye(shape[a1], shape[a2], k=offset, dtype=dtype_of(g))  # a constant of shapes
    if a1 > a2:
        eye = eye.T
    eye = eye.reshape(tuple(s if k in (a1, a2) else 1 for k, s in enumerate(shape)))
    expanded = list(shape_of(g))
    for k in sorted((a1, a2)):
        expanded.insert(k, 1)
    return reshape(g, tuple(expanded)) * eye


TRACE = Primitive("trace", np.trace, _trace_vjp)


def _sample_trace(draw):
    shape = draw.shape(min_dims=2)
    nd = len(shape)
    axis1 = draw.integers(-nd, nd - 1)
    axis2 = draw.choice([k for k in range(-nd, nd) if k % nd != axis1 % nd])
    kwargs = {"offset": draw.integers(-2, 2), "axis1": axis1, "axis2": axis2}
    return (draw.array(shape, Interval()),), kwargs


@op(np.trace, sample=_sample_trace, method="trace")
def trace(
    a: ArrayLike,
    offset: int = 0,
    axis1: int = 0,
    axis2: int = 1,
    dtype: Any = None,
    out: None = None,
) -> ArrayLike:
    """Sum of the ``offset`` diagonal of the (``axis1``, ``axis2``) planes of ``a``.

    VJP: ``g`` on that diagonal, zeros elsewhere.
    """
    no_out("trace", out)
    params = {"offset": int(offset), "axis1": int(axis1), "axis2": int(axis2)}
    return bind(TRACE, (a,), {**params, "dtype": _dtype_param(dtype)})
