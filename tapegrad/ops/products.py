"""Products of arrays: ``matmul``.

The rules are products of the cotangent with the other operand, transposed.
"""

from __future__ import annotations

import numpy as np

from tapegrad.ops.axes import shape_of
from tapegrad.ops.core import ArrayLike, reshape, sum, transpose
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, bind

__all__ = ["matmul", "matrix_transpose"]


def matrix_transpose(a: ArrayLike) -> ArrayLike:
    """Swap the last two axes of ``a`` (a stack of matrices)."""
    nd = len(shape_of(a))
    return transpose(a) if nd == 2 else transpose(a, (*range(nd - 2), nd - 1, nd - 2))


def _insert_axis(a: ArrayLike, axis: int) -> ArrayLike:
    shape = list(shape_of(a))
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(a, tuple(shape))


def _matmul_vjp(i, g, ans, x, y):
    """For ``x (..., n, k) @ y (..., k, m)``: dx = g y^T, dy = x^T g (1-d operands promoted)."""
    xd, yd = len(shape_of(x)), len(shape_of(y))
    if xd == 1 and yd == 1:  # inner product
        return g * y if i == 0 else g * x
    x2 = reshape(x, (1, -1)) if xd == 1 else x
    y2 = reshape(y, (-1, 1)) if yd == 1 else y
    g2 = _insert_axis(g, -2) if xd == 1 else g
    g2 = _insert_axis(g2, -1) if yd == 1 else g2
    if i == 0:
        d = g2 @ matrix_transpose(y2)
        return sum(reshape(d, (-1, shape_of(x)[0])), axis=0) if xd == 1 else d
    d = matrix_transpose(x2) @ g2
    return sum(reshape(d, (-1, shape_of(y)[0])), axis=0) if yd == 1 else d


MATMUL = Primitive("matmul", np.matmul, _matmul_vjp)


def _sample_matmul(draw):
    n, k, m = (draw.integers(1, 3) for _ in range(3))
    batch = draw.shape(max_dims=2, max_side=2)
    xs = draw.choice(((k,), (*batch, n, k), (n, k)))
    ys = draw.choice(((k,), (*batch, k, m), (k, m)))
    return (draw.array(xs, Interval()), draw.array(ys, Interval())), {}


@op(np.matmul, sample=_sample_matmul, argnums=(0, 1))
def matmul(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x @ y`` with numpy's rules (1-d operands, batch broadcasting).

    VJP for 2-d operands: ``(g @ y.T, x.T @ g)``.
    """
    return bind(MATMUL, (x, y))
