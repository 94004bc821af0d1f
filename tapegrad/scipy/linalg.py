"""``scipy.linalg``'s triangular solves and Cholesky helpers, with derivatives.

``solve_triangular`` is one primitive (scipy's forward) whose VJP costs one more
triangular solve: the cotangent of ``b`` is a solve with the transposed triangle, and the
cotangent of ``a`` is minus the outer product of that with the solution, kept to the
triangle that was read. ``cho_factor`` and ``cho_solve`` are composites of tapegrad's
``cholesky`` and of ``solve_triangular``, with scipy's ``(c, lower)`` convention.

Only one triangle of ``a`` (or ``c``) is read, as in scipy: the other triangle, and the
diagonal when ``unit_diagonal=True``, get a zero cotangent. Stacks of matrices work as in
scipy: ``a`` is ``(..., n, n)``, and ``b`` is a vector ``(n,)`` or ``(..., n, k)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from tapegrad.ops.arranging import tril, triu
from tapegrad.ops.axes import shape_of
from tapegrad.ops.core import ArrayLike, reshape
from tapegrad.ops.linalg import cholesky
from tapegrad.ops.products import matmul, matrix_transpose
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, bind

__all__ = ["cho_factor", "cho_solve", "solve_triangular"]

_TRANS = {0: 0, 1: 1, 2: 1, "N": 0, "T": 1, "C": 1}  # real matrices: "C" is "T"


def _triangle(m: ArrayLike, lower: bool, unit_diagonal: bool) -> ArrayLike:
    """The part of ``m`` a triangular solve reads: one triangle, without the diagonal when
    it is taken to be 1."""
    k = int(unit_diagonal)
    return tril(m, -k) if lower else triu(m, k)


def _outer(u: ArrayLike, v: ArrayLike, vectors: bool) -> ArrayLike:
    """``u v^T`` for (stacks of) vectors ``(..., n)``, or ``u @ v^T`` for ``(..., n, k)``."""
    if vectors:
        shape = shape_of(u)
        return reshape(u, (*shape, 1)) * reshape(v, (*shape[:-1], 1, shape[-1]))
    return matmul(u, matrix_transpose(v))


def _solve_triangular_forward(a, b, trans=0, lower=False, unit_diagonal=False, check_finite=True):
    kwargs = {"trans": trans, "lower": lower, "unit_diagonal": unit_diagonal}
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 and b.ndim <= 2:
        return sla.solve_triangular(a, b, check_finite=check_finite, **kwargs)
    # Stacks, solved slice by slice (scipy < 1.15 takes no stacks): a (..., n, n) against
    # b (n,), the same vector for every matrix, or b (..., n, k), batch axes broadcast.
    if a.ndim < 2:
        raise ValueError(f"tg.solve_triangular: a must be (..., n, n), got shape {a.shape}")
    core = b.shape if b.ndim == 1 else b.shape[-2:]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[: b.ndim - len(core)])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + core)
    out = np.empty(batch + core, np.result_type(a, b, np.float32))
    for k in np.ndindex(*batch):
        out[k] = sla.solve_triangular(a[k], b[k], check_finite=check_finite, **kwargs)
    return out


def _solve_triangular_vjp(i, g, ans, a, b, trans=0, lower=False, unit_diagonal=False, **_):
    """With ``T`` the triangle read and ``A = T`` (or ``T^T`` for ``trans=1``), ``x = A^-1 b``:
    ``b_bar = A^-T g`` (a solve with the other ``trans``), and from ``dx = -A^-1 dA x``,
    ``A_bar = -b_bar x^T``, so ``T_bar = -b_bar x^T`` (``-x b_bar^T`` for ``trans=1``),
    kept to the triangle read."""
    vectors = len(shape_of(b)) == 1  # b (n,) is a vector even when a is a stack
    g_shape = shape_of(g)
    if vectors and len(g_shape) > 1:  # a stack of vectors: solve them as (..., n, 1) columns
        g = reshape(g, (*g_shape, 1))
    b_bar = solve_triangular(a, g, trans=1 - trans, lower=lower, unit_diagonal=unit_diagonal)
    b_bar = reshape(b_bar, g_shape) if shape_of(b_bar) != g_shape else b_bar
    if i == 1:
        return b_bar
    t_bar = _outer(b_bar, ans, vectors) if trans == 0 else _outer(ans, b_bar, vectors)
    return _triangle(-t_bar, lower, unit_diagonal)  # tril(-x): +0.0 above, not -0.0


SOLVE_TRIANGULAR = Primitive("solve_triangular", _solve_triangular_forward, _solve_triangular_vjp)


def _well_conditioned_triangle(draw, batch: tuple[int, ...], n: int) -> np.ndarray:
    """A matrix whose triangles have diagonals in [1, 2] (either sign) and small off-diagonal
    entries: every triangular solve with it is well conditioned."""
    a = draw.array((*batch, n, n), Interval(-0.4, 0.4))
    diagonal = draw.array((*batch, n), Interval(1, 2)) * draw.choice((1.0, -1.0))
    return a + diagonal[..., None] * np.eye(n) - a * np.eye(n)


def _sample_solve_triangular(draw):
    n = draw.integers(1, 4)
    batch = draw.choice(((), (), (2,)))
    a = _well_conditioned_triangle(draw, batch, n)
    b_shape = draw.choice(((n,), (n, draw.integers(1, 3)), (2, n, 2)))
    kwargs = {
        "trans": draw.choice((0, 1, "T")),
        "lower": draw.choice((False, True)),
        "unit_diagonal": draw.choice((False, True)),
    }
    return (a, draw.array(b_shape, Interval(-2, 2))), kwargs


@op(
    sla.solve_triangular,
    name="linalg.solve_triangular",
    sample=_sample_solve_triangular,
    argnums=(0, 1),
    convention="only the triangle read (without the diagonal if unit_diagonal) gets a cotangent",
)
def solve_triangular(
    a: ArrayLike,
    b: ArrayLike,
    trans: int | str = 0,
    lower: bool = False,
    unit_diagonal: bool = False,
    overwrite_b: bool = False,
    check_finite: bool = True,
) -> ArrayLike:
    """Solve ``T x = b`` (``trans=0`` or ``'N'``) or ``T^T x = b`` (``1``, ``'T'``, or ``2``,
    ``'C'``, the same for real matrices) for ``x``, where ``T`` is the lower (``lower=True``)
    or upper triangle of ``a`` with, if ``unit_diagonal``, ones on the diagonal.

    ``a`` is ``(..., n, n)``; ``b`` is ``(n,)`` or ``(..., n, k)``; stacks broadcast, as in
    scipy. ``overwrite_b`` is accepted and ignored (``b`` is never written into).

    VJP: ``b_bar = solve_triangular(a, g, trans=1 - trans)``, ``a_bar = -b_bar x^T`` (read part).

    (For ``trans=1``, ``a_bar = -x b_bar^T``; only the triangle read gets a cotangent.)
    """
    if trans not in _TRANS:
        raise ValueError(
            f"tg.solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', not {trans!r}"
        )
    params = {
        "trans": _TRANS[trans],
        "lower": bool(lower),
        "unit_diagonal": bool(unit_diagonal),
        "check_finite": bool(check_finite),
    }
    return bind(SOLVE_TRIANGULAR, (a, b), params)


def _sample_cho_factor(draw):
    n = draw.integers(1, 4)
    m = draw.array((n, n), Interval(-1, 1))
    unread = draw.array((n, n), Interval(-1, 1))  # cho_factor copies it through
    lower = draw.choice((False, True))
    spd = m @ m.T + n * np.eye(n)  # eigenvalues in [n, n + n^2]: cond <= 1 + n
    a = np.tril(spd) + np.triu(unread, 1) if lower else np.triu(spd) + np.tril(unread, -1)
    return (a,), {"lower": lower}


# float32=False: the result holds the flag lower, a bool (float32 c is checked in
# tests/test_scipy_ops.py).
@op(
    sla.cho_factor,
    name="linalg.cho_factor",
    sample=_sample_cho_factor,
    float32=False,
    convention="reads one triangle; the other is copied into c, so its cotangent passes "
    "straight through",
)
def cho_factor(
    a: ArrayLike, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True
) -> tuple:
    """``(c, lower)``: the Cholesky factor of ``a`` in one triangle of ``c`` (``L`` with
    ``a = L L^T`` in the lower one if ``lower``, else ``U = L^T`` in the upper one), for
    :func:`cho_solve`. As in scipy, only that triangle of ``a`` is read, and ``c`` holds
    ``a``'s entries in the other triangle. ``overwrite_a`` and ``check_finite`` are accepted
    and ignored; a matrix that is not positive definite raises ``LinAlgError``.

    VJP: tapegrad's ``cholesky`` rule on the read triangle; the identity on the other.
    """
    lower = bool(lower)
    if lower:
        return cholesky(a) + triu(a, 1), lower
    return cholesky(a, upper=True) + tril(a, -1), lower


def _lower_flag(lower: Any) -> bool:
    """scipy's ``lower`` flag; for stacks scipy's ``cho_factor`` gives one per matrix."""
    if np.ndim(lower) == 0:
        return bool(lower)
    flags = np.unique(np.asarray(lower, dtype=bool))
    if flags.size != 1:
        raise ValueError("tg.cho_solve: the factors of a stack must all be lower or all upper")
    return bool(flags[0])


def _sample_cho_solve(draw):
    n = draw.integers(1, 4)
    m = draw.array((n, n), Interval(-1, 1))
    lower = draw.choice((False, True))
    factor = np.linalg.cholesky(m @ m.T + n * np.eye(n))  # cond(factor factor^T) <= 1 + n
    unread = draw.array((n, n), Interval(-1, 1))  # what cho_solve must ignore
    c = factor + np.triu(unread, 1) if lower else factor.T + np.tril(unread, -1)
    b_shape = draw.choice(((n,), (n, draw.integers(1, 3))))
    return ((c, lower), draw.array(b_shape, Interval(-2, 2))), {}


# argnums=(1,) and float32=False: tg.grad refuses the bool in (c, lower), so the tests
# differentiate and cast b only; c's derivative and float32 (c, b) are checked in
# tests/test_scipy_ops.py.
@op(
    sla.cho_solve,
    name="linalg.cho_solve",
    sample=_sample_cho_solve,
    argnums=(1,),
    float32=False,
)
def cho_solve(
    c_and_lower: tuple,
    b: ArrayLike,
    overwrite_b: bool = False,
    check_finite: bool = True,
) -> ArrayLike:
    """Solve ``A x = b`` given ``(c, lower)`` from :func:`cho_factor`: ``A = L L^T`` with
    ``L`` the lower triangle of ``c`` (``lower=True``), or ``A = U^T U`` with ``U`` its
    upper triangle. The other triangle of ``c`` is not read (its cotangent is zero).

    VJP: ``b_bar = A^-1 g``; ``-(b_bar x^T + x b_bar^T) L`` on ``c``'s lower triangle.

    (Upper: ``-U (b_bar x^T + x b_bar^T)`` on the upper triangle; it is the rule of the two
    triangular solves.)
    """
    c, lower = c_and_lower
    lower = _lower_flag(lower)
    if lower:  # L y = b, then L^T x = y
        y = solve_triangular(c, b, lower=True, check_finite=check_finite)
        return solve_triangular(c, y, trans=1, lower=True, check_finite=check_finite)
    y = solve_triangular(c, b, trans=1, lower=False, check_finite=check_finite)  # U^T y = b
    return solve_triangular(c, y, lower=False, check_finite=check_finite)
