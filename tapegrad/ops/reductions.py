"""Reductions beyond ``sum``: ``mean``, ``max``, ``min`` and ``logsumexp``.

Each rule reshapes ``g`` to the ``keepdims`` shape and lets it broadcast back over the
reduced axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tapegrad.ops.axes import dtype_of, kept_shape, normalize_axes, shape_of
from tapegrad.ops.core import ArrayLike, _axis_param, broadcast_to, cast, equal, reshape, sum
from tapegrad.ops.elementwise import exp
from tapegrad.ops.registry import DISTINCT, op, reduction
from tapegrad.tape import Primitive, bind

__all__ = ["logsumexp", "max", "mean", "min"]

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
def mean(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> ArrayLike:
    """Mean over ``axis``. VJP: ``g / n`` broadcast back, ``n`` the count averaged."""
    return _reduce(MEAN, x, axis, keepdims)


def _extremum_vjp(i, g, ans, x, axis=None, keepdims=False):
    """d max(x)/dx_j = [x_j = max] / (number of ties): ties share the cotangent equally."""
    kept = kept_shape(shape_of(x), axis)
    hits = cast(equal(x, reshape(ans, kept)), dtype_of(ans))
    return reshape(g, kept) * (hits / sum(hits, axis=axis, keepdims=True))


MAX = Primitive("max", np.max, _extremum_vjp)
MIN = Primitive("min", np.min, _extremum_vjp)
_DISTINCT = reduction(DISTINCT)
_TIES = "tied extrema share the cotangent equally"


@op(np.max, sample=_DISTINCT, method="max", convention=_TIES)
def max(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> ArrayLike:
    """Maximum over ``axis``. VJP: ``g`` to the maximum (shared equally among ties)."""
    return _reduce(MAX, x, axis, keepdims)


@op(np.min, sample=_DISTINCT, method="min", convention=_TIES)
def min(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> ArrayLike:
    """Minimum over ``axis``. VJP: ``g`` to the minimum (shared equally among ties)."""
    return _reduce(MIN, x, axis, keepdims)


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
