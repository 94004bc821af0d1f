"""Linear algebra: ``numpy.linalg``'s functions on stacks of matrices ``(..., m, n)``.

``inv solve det slogdet cholesky eigh eigvalsh svd qr norm pinv matrix_power multi_dot
lstsq``, with numpy's names, signatures, result types (``SlogdetResult``, ``EighResult``,
...) and dtypes (float32 in, float32 out).

The rules use solves, never an explicit inverse where a solve will do (numpy has no
triangular solver, so a triangular factor is solved with ``solve``), and are written in
tapegrad's ops, so second derivatives work (the Hessian of a log-determinant, say).

**Several results, one primitive.** A factorisation computes its results together
(``eigh`` gives eigenvalues and eigenvectors from one LAPACK call), but a record has one
output. Such a primitive returns its results *packed* into one array, which the public
function slices apart (``eigh``: ``[w; V]``, shape ``(..., n + 1, n)``); its rule receives
the cotangent in the same layout. On plain arrays the public function is numpy's call.

**What numpy reads is what is differentiated.** ``cholesky``, ``eigh``, ``eigvalsh`` and
the ``hermitian=True`` variants read one triangle of their input (the lower by default)
and treat it as the symmetric matrix ``S``. Their gradients are those of the function as
numpy computes it, entry by entry: zero on the unread triangle, and an off-diagonal entry
of the read triangle gets the cotangent of both ``S_ij`` and ``S_ji`` (see
:func:`_read_triangle`).

**Where a derivative does not exist** (repeated eigenvalues or singular values, a rank
that changes, a singular matrix), each op's ``convention`` says what is returned.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad.ops.arranging import _argsort, sort, take_along_axis, tril, triu
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    cast,
    equal,
    logical_or,
    no_out,
    reshape,
    sum,
    where,
    zero_vjp,
)
from tapegrad.ops.elementwise import abs, power, sign
from tapegrad.ops.products import matrix_transpose as _mT
from tapegrad.ops.registry import Interval, op
from tapegrad.ops.shaping import concatenate, moveaxis
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "cholesky",
    "det",
    "eigh",
    "eigvalsh",
    "inv",
    "lstsq",
    "matrix_power",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
]

# numpy's result types (named tuples in numpy 2, plain tuples before).
_SlogdetResult = type(np.linalg.slogdet(np.eye(1)))
_EighResult = type(np.linalg.eigh(np.eye(1)))
_SVDResult = type(np.linalg.svd(np.eye(1)))
_QRResult = type(np.linalg.qr(np.eye(1)))


def _result(kind: type, *parts: Any) -> tuple:
    return parts if kind is tuple else kind(*parts)


# =======================================================================================
# Helpers of the rules: metadata, masks and the symmetric-input map


def _eye(n: int, dtype: Any) -> np.ndarray:
    """The identity, a constant (it also serves as the mask of the diagonal)."""
    return np.eye(n, dtype=dtype)


def _safe_reciprocal(x: ArrayLike) -> ArrayLike:
    """``1 / x``, and ``0`` where ``x == 0``: no inf, and no NaN in its derivatives (the
    divided branch never sees a zero)."""
    zero = equal(x, 0)
    return where(zero, 0.0, 1.0 / where(zero, 1.0, x))


def _read_triangle(gs: ArrayLike, lower: bool) -> ArrayLike:
    """The cotangent of the triangle a function of a symmetric matrix reads.

    ``gs`` is a cotangent of the full symmetric matrix ``S`` (only its symmetric part
    matters: ``<gs, dS>`` for symmetric ``dS``). ``S`` is built from the read triangle
    ``T`` (``S_ij = S_ji = T_ij``), so ``dT_ij`` (``i != j``) moves both ``S_ij`` and
    ``S_ji`` and gets ``gs_ij + gs_ji``; a diagonal entry gets ``gs_ii``; the unread
    triangle gets zero::

        g_T = tril(gs + gs^T) - diag(gs)        (triu for the upper triangle)
    """
    both = gs + _mT(gs)
    diagonal = gs * _eye(shape_of(gs)[-1], dtype_of(gs))
    return (tril(both) if lower else triu(both)) - diagonal


def _symmetric_from_lower(a: ArrayLike) -> ArrayLike:
    """The symmetric matrix numpy reads from the lower triangle of ``a``."""
    return tril(a) + _mT(tril(a, -1))


def _check_matrices(a: ArrayLike, name: str, square: bool = True) -> tuple[int, int]:
    """``(m, n)`` of a stack of matrices; numpy's LinAlgError if it is not one."""
    shape = shape_of(a)
    if len(shape) < 2:
        raise np.linalg.LinAlgError(
            f"tg.{name}: {len(shape)}-dimensional array given; array must be at least "
            "two-dimensional"
        )
    m, n = shape[-2:]
    if square and m != n:
        raise np.linalg.LinAlgError(
            f"tg.{name}: last 2 dimensions of the array must be square, got shape {shape}"
        )
    return m, n


def _uplo(UPLO: str, name: str) -> str:
    uplo = str(UPLO).upper()
    if uplo not in ("L", "U"):
        raise ValueError(f"tg.{name}: UPLO argument must be 'L' or 'U', got {UPLO!r}")
    return uplo


def _frozen(value: Any) -> Any:
    """A scalar or array-like parameter as an immutable record parameter."""
    if value is None or np.ndim(value) == 0:
        return value
    return tuple(_frozen(v) for v in value)


# =======================================================================================
# Samplers: well-conditioned matrices built from drawn arrays
#
# A sampler draws orthogonal factors (the Q of a QR of a drawn matrix: Householder's Q is
# orthogonal for any input) and a spectrum with separated values, and multiplies them. The
# shapes are drawn with draw.*, so a replay redraws the same kind of matrix.


def _batch(draw) -> tuple[int, ...]:
    """0 to 2 leading axes of size 1 or 2."""
    return draw.shape(min_dims=0, max_dims=2, min_side=1, max_side=2)


def _spaced(draw, batch, k, low, step, spread=0.3) -> np.ndarray:
    """``k`` values per matrix, ``low + step i + spread u_i`` (``u`` in [0, 1]): at least
    ``step - spread`` apart."""
    u = draw.array((*batch, k), Interval(0.0, 1.0))
    return low + step * np.arange(k) + spread * u


def _orthogonal(draw, batch, n) -> np.ndarray:
    """A drawn orthogonal matrix, turned by a fixed generic rotation: hypothesis favours
    zeros, and LAPACK's sign choices for eigen- and singular vectors jump at exactly
    diagonal matrices (a Householder reflection takes the sign of an entry that is 0)."""
    generic = np.linalg.qr(np.random.default_rng(n).standard_normal((n, n)))[0]
    return np.linalg.qr(draw.array((*batch, n, n), Interval()))[0] @ generic


def _signs(draw, shape) -> np.ndarray:
    return np.where(draw.array(shape, Interval(-1.0, 1.0)) < 0, -1.0, 1.0)


def _with_spectrum(draw, batch, m, n, s) -> np.ndarray:
    """``U diag(s) V^T`` (``m x n``) with drawn orthogonal ``U``, ``V``: singular values
    ``|s|``."""
    k = min(m, n)
    u = _orthogonal(draw, batch, m)[..., :, :k]
    v = _orthogonal(draw, batch, n)[..., :, :k]
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def _general(draw, batch, m, n) -> np.ndarray:
    """A well-conditioned matrix: singular values in [1, 2.8], at least 0.2 apart."""
    return _with_spectrum(draw, batch, m, n, _spaced(draw, batch, min(m, n), 1.0, 0.5))


def _symmetric(draw, batch, n, eigenvalues, uplo="L") -> np.ndarray:
    """``Q diag(eigenvalues) Q^T`` in the ``uplo`` triangle and drawn values in the other
    (which numpy does not read: a gradient there must be zero)."""
    q = _orthogonal(draw, batch, n)
    s = (q * eigenvalues[..., None, :]) @ np.swapaxes(q, -1, -2)
    noise = draw.array((*batch, n, n), Interval())
    if uplo == "L":
        return np.tril(s) + np.triu(noise, 1)
    return np.triu(s) + np.tril(noise, -1)


def _sample_square(draw):
    batch, n = _batch(draw), draw.integers(1, 4)
    return (_general(draw, batch, n, n),), {}


# =======================================================================================
# inv, solve, det, slogdet


def _inv_vjp(i, g, ans, a):
    """d(A^-1) = -A^-1 dA A^-1, so gA = -A^-T g A^-T (``ans`` is A^-1: no new inverse)."""
    at = _mT(ans)
    return -(at @ g @ at)


INV = Primitive("inv", np.linalg.inv, _inv_vjp)


@op(np.linalg.inv, sample=_sample_square, convention="singular matrix: LinAlgError, as numpy")
def inv(a: ArrayLike) -> ArrayLike:
    """The inverse of each matrix of the stack ``(..., n, n)``.

    VJP: ``-A^-T g A^-T``, from ``d(A^-1) = -A^-1 dA A^-1``.
    """
    return bind(INV, (a,))


def _solve_vjp(i, g, ans, a, b):
    """x = A^-1 b: gb = A^-T g (a solve with A^T), gA = -gb x^T.

    A 1-d ``b`` is one vector for every matrix of the stack (numpy 2's rule), so ``g`` and
    ``x`` have the stack's shape ``(..., n)`` and are solved as columns.
    """
    at = _mT(a)
    if len(shape_of(b)) == 1:
        gb = solve(at, g[..., None])[..., 0]
        return gb if i == 1 else -(gb[..., :, None] * ans[..., None, :])
    gb = solve(at, g)
    return gb if i == 1 else -(gb @ _mT(ans))


SOLVE = Primitive("solve", np.linalg.solve, _solve_vjp)


def _sample_solve(draw):
    batch, n = _batch(draw), draw.integers(1, 4)
    a = _general(draw, draw.choice((batch, batch[1:])), n, n)
    b_shape = draw.choice(((n,), (*batch, n, draw.integers(1, 3)), (n, 1)))
    return (a, draw.array(b_shape, Interval())), {}


@op(
    np.linalg.solve,
    sample=_sample_solve,
    argnums=(0, 1),
    convention="singular matrix: LinAlgError, as numpy",
)
def solve(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """``x`` with ``a @ x = b`` for each matrix of the stack ``a (..., n, n)``.

    ``b`` is a vector ``(n,)`` (the same for every matrix) or a stack of matrices
    ``(..., n, k)`` broadcast against ``a``, as in numpy 2.

    VJP: ``gb = A^-T g`` (a solve), ``gA = -gb x^T``.
    """
    return bind(SOLVE, (a, b))


def _batch_scalar(x: ArrayLike) -> ArrayLike:
    """A per-matrix value ``(...)`` as ``(..., 1, 1)``, to scale each matrix."""
    return x[..., None, None]


def _det_vjp(i, g, ans, a):
    """d det(A) = det(A) tr(A^-1 dA), so gA = g det(A) A^-T.

    The cotangent is itself the inverse, so it is computed once with ``inv``.
    """
    return _batch_scalar(g * ans) * _mT(inv(a))


DET = Primitive("det", np.linalg.det, _det_vjp)


@op(
    np.linalg.det,
    sample=_sample_square,
    convention="singular matrix: the value is 0 and the backward pass raises LinAlgError "
    "(det A^-T is not formed through the adjugate)",
)
def det(a: ArrayLike) -> ArrayLike:
    """The determinant of each matrix of the stack ``(..., n, n)``.

    VJP: ``g det(A) A^-T``.
    """
    return bind(DET, (a,))


def _slogdet_forward(a):
    """``[sign, log|det|]`` packed on a new last axis."""
    return np.stack(np.linalg.slogdet(a), axis=-1)


def _slogdet_vjp(i, g, ans, a):
    """d log|det A| = tr(A^-1 dA), so gA = g A^-T; the sign has zero derivative."""
    return _batch_scalar(g[..., 1]) * _mT(inv(a))


SLOGDET = Primitive("slogdet", _slogdet_forward, _slogdet_vjp)


@op(
    np.linalg.slogdet,
    sample=_sample_square,
    convention="the sign has zero derivative; singular matrix: sign 0, logabsdet -inf and "
    "the backward pass raises LinAlgError",
)
def slogdet(a: ArrayLike) -> tuple:
    """``(sign, logabsdet)`` of each matrix of the stack ``(..., n, n)``: numpy's
    ``SlogdetResult``, ``det = sign * exp(logabsdet)`` without overflow.

    VJP: ``g_logabsdet A^-T``; the sign has none.
    """
    if type(a) is not Traced:
        return np.linalg.slogdet(a)
    _check_matrices(a, "slogdet")
    packed = bind(SLOGDET, (a,))
    return _result(_SlogdetResult, packed[..., 0], packed[..., 1])


# =======================================================================================
# cholesky


def _phi(x: ArrayLike) -> ArrayLike:
    """The lower triangle of ``x`` with its diagonal halved."""
    return tril(x) - 0.5 * (x * _eye(shape_of(x)[-1], dtype_of(x)))


def _cholesky_vjp(i, g, ans, a, upper=False):
    """Cholesky, S = L L^T (Murray 2016). dS = dL L^T + L dL^T gives
    L^-1 dS L^-T = L^-1 dL + (L^-1 dL)^T with L^-1 dL lower triangular, so
    dL = L Phi(L^-1 dS L^-T) (Phi: the lower triangle, diagonal halved). Transposed:
    gS = L^-T Phi(L^T gL) L^-1, two solves with L^T; then the read triangle's cotangent
    (:func:`_read_triangle`). With ``upper=True`` numpy returns U = L^T and reads the
    upper triangle.
    """
    lower, glower = (_mT(ans), _mT(g)) if upper else (ans, g)
    lt = _mT(lower)
    x = solve(lt, _phi(lt @ glower))  # L^-T Phi(L^T gL)
    gs = _mT(solve(lt, _mT(x)))  # ... L^-1
    return _read_triangle(gs, lower=not upper)


CHOLESKY = Primitive("cholesky", np.linalg.cholesky, _cholesky_vjp)


def _sample_cholesky(draw):
    batch, n = _batch(draw), draw.integers(1, 4)
    upper = draw.choice((False, True))
    a = _symmetric(draw, batch, n, _spaced(draw, batch, n, 1.0, 0.5), "U" if upper else "L")
    return (a,), ({"upper": True} if upper else {})


_TRIANGLE = (
    "reads only the lower triangle ({upper}), as numpy does: the gradient is that of "
    "numpy's function entry by entry, zero on the unread triangle, and each off-diagonal "
    "entry of the read triangle gets the cotangents of both S_ij and S_ji"
)


@op(
    np.linalg.cholesky,
    sample=_sample_cholesky,
    convention=_TRIANGLE.format(upper="the upper with upper=True")
    + "; not positive definite: LinAlgError",
)
def cholesky(a: ArrayLike, /, *, upper: bool = False) -> ArrayLike:
    """The Cholesky factor ``L`` (lower, ``a = L L^T``; ``U = L^T`` with ``upper=True``) of
    each symmetric positive definite matrix of the stack ``(..., n, n)``. Only the lower
    triangle of ``a`` is read (the upper with ``upper=True``).

    VJP (Murray 2016): ``gS = L^-T Phi(L^T gL) L^-1`` (two solves with ``L^T``), mapped to
    the read triangle.
    """
    return bind(CHOLESKY, (a,), {"upper": True} if upper else {})


# =======================================================================================
# eigh, eigvalsh


def _eigh_forward(a, UPLO="L"):
    """``[w; V]``: the eigenvalues as the first row above the eigenvectors,
    ``(..., n + 1, n)``."""
    w, v = np.linalg.eigh(a, UPLO)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_vjp(i, g, ans, a, UPLO="L"):
    """S = V diag(w) V^T: dw = diag(V^T dS V), dV = V (F o V^T dS V) with
    F_ij = 1 / (w_j - w_i) (i != j), so gS = V (diag(gw) + F o V^T gV) V^T; then the read
    triangle's cotangent. F is 0 for exactly equal eigenvalues (no inf/NaN)."""
    w, v = ans[..., 0, :], ans[..., 1:, :]
    gw, gv = g[..., 0, :], g[..., 1:, :]
    n = shape_of(a)[-1]
    f = _safe_reciprocal(w[..., None, :] - w[..., :, None])
    inner = f * (_mT(v) @ gv) + gw[..., None, :] * _eye(n, dtype_of(ans))
    return _read_triangle(v @ inner @ _mT(v), lower=UPLO == "L")


EIGH = Primitive("eigh", _eigh_forward, _eigh_vjp)


def _sample_eigh(draw):
    batch, n = _batch(draw), draw.integers(1, 4)
    uplo = draw.choice(("L", "U"))
    a = _symmetric(draw, batch, n, _spaced(draw, batch, n, -1.5, 0.7), uplo)
    return (a,), {"UPLO": uplo}


_TIES = (
    "; eigenvector terms of exactly equal eigenvalues are dropped (no inf/NaN): gradients "
    "of symmetric functions of the eigenvalues stay exact, gradients through the "
    "eigenvectors of a repeated eigenvalue do not exist and are not meaningful"
)


@op(
    np.linalg.eigh,
    sample=_sample_eigh,
    convention=_TRIANGLE.format(upper="the upper with UPLO='U'") + _TIES,
)
def eigh(a: ArrayLike, UPLO: str = "L") -> tuple:
    """``(eigenvalues, eigenvectors)`` of each symmetric matrix of the stack ``(..., n, n)``:
    numpy's ``EighResult``, eigenvalues ascending, eigenvectors in the columns. Only the
    ``UPLO`` triangle of ``a`` is read.

    VJP: ``gS = V (diag(gw) + F o V^T gV) V^T`` with ``F_ij = 1 / (w_j - w_i)``, mapped to
    the read triangle.
    """
    uplo = _uplo(UPLO, "eigh")
    if type(a) is not Traced:
        return np.linalg.eigh(a, uplo)
    _check_matrices(a, "eigh")
    packed = bind(EIGH, (a,), {"UPLO": uplo})
    return _result(_EighResult, packed[..., 0, :], packed[..., 1:, :])


def _eigvalsh_vjp(i, g, ans, a, UPLO="L"):
    """dw_k = v_k^T dS v_k, so gS = V diag(g) V^T (V from ``eigh``); then the read
    triangle's cotangent."""
    v = eigh(a, UPLO)[1]
    return _read_triangle((v * g[..., None, :]) @ _mT(v), lower=UPLO == "L")


EIGVALSH = Primitive("eigvalsh", np.linalg.eigvalsh, _eigvalsh_vjp)


@op(
    np.linalg.eigvalsh,
    sample=_sample_eigh,
    convention=_TRIANGLE.format(upper="the upper with UPLO='U'"),
)
def eigvalsh(a: ArrayLike, UPLO: str = "L") -> ArrayLike:
    """The eigenvalues (ascending) of each symmetric matrix of the stack ``(..., n, n)``;
    only the ``UPLO`` triangle is read.

    VJP: ``V diag(g) V^T`` (``V`` from ``eigh``), mapped to the read triangle.
    """
    return bind(EIGVALSH, (a,), {"UPLO": _uplo(UPLO, "eigvalsh")})


# =======================================================================================
# svd


def _svd_forward(a, full_matrices=False):
    """``[U^T | s | Vh]`` packed on the last axis: ``(..., k, m + 1 + n)``, k = min(m, n)."""
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return np.concatenate([np.swapaxes(u, -1, -2), s[..., :, None], vh], axis=-1)


def _svd_unpack(packed: ArrayLike, m: int) -> tuple:
    """``(U, s, Vh)`` from the packed layout of :func:`_svd_forward`."""
    return _mT(packed[..., :m]), packed[..., m], packed[..., m + 1 :]


def _svd_vjp(i, g, ans, a, full_matrices=False):
    """A = U S V^T (Townsend 2016), with F_ij = 1 / (s_j^2 - s_i^2) (i != j):

        gA = U [(F o (U^T gU - gU^T U)) S + diag(gs) + S (F o (V^T gV - gV^T V))] V^T
             + (I - U U^T) gU S^-1 V^T        (m > n)
             + U S^-1 gV^T (I - V V^T)        (m < n)

    F is 0 for exactly equal singular values and S^-1 is 0 for exactly zero ones (those
    derivatives do not exist; no inf/NaN).
    """
    m, n = shape_of(a)[-2:]
    u, s, vh = _svd_unpack(ans, m)
    gu, gs, gvh = _svd_unpack(g, m)
    k = min(m, n)
    s_row, s_col = s[..., None, :], s[..., :, None]
    f = _safe_reciprocal(s_row * s_row - s_col * s_col)
    utgu = _mT(u) @ gu
    vtgv = vh @ _mT(gvh)
    inner = (f * (utgu - _mT(utgu))) * s_row + s_col * (f * (vtgv - _mT(vtgv)))
    inner = inner + gs[..., :, None] * _eye(k, dtype_of(ans))
    ga = u @ inner @ vh
    if m > k:
        ga = ga + ((gu - u @ utgu) * _safe_reciprocal(s_row)) @ vh
    if n > k:
        ga = ga + u @ ((gvh - (gvh @ _mT(vh)) @ vh) * _safe_reciprocal(s_col))
    return ga


SVD = Primitive("svd", _svd_forward, _svd_vjp)


def _svdvals_forward(a):
    return np.linalg.svd(a, compute_uv=False)


def _svdvals_vjp(i, g, ans, a):
    """ds_k = u_k^T dA v_k, so gA = U diag(g) V^T (U, V from the reduced ``svd``)."""
    u, _, vh = svd(a, full_matrices=False)
    return (u * g[..., None, :]) @ vh


SVDVALS = Primitive("svdvals", _svdvals_forward, _svdvals_vjp)


def _unit_sign(w):
    """``+-1``, the sign of each eigenvalue as svd(hermitian=True) takes it (``-0.0`` is
    negative)."""
    return np.copysign(1.0, w)


_UNIT_SIGN = Primitive("unit_sign", _unit_sign, zero_vjp)


def _hermitian_svd(a: ArrayLike, compute_uv: bool) -> Any:
    """numpy's ``svd(hermitian=True)``, step by step with tapegrad's ops: the eigenvalues
    by magnitude, descending; the sign of each moves into ``Vh``."""
    if not compute_uv:
        return sort(abs(eigvalsh(a)))[..., ::-1]
    w, u = eigh(a)
    sgn = bind(_UNIT_SIGN, (w,))
    s = abs(w)
    order = _argsort(s)[..., ::-1]
    sgn = take_along_axis(sgn, order, axis=-1)
    s = take_along_axis(s, order, axis=-1)
    u = take_along_axis(u, order[..., None, :], axis=-1)
    return _result(_SVDResult, u, s, _mT(u * sgn[..., None, :]))


def _sample_svd(draw):
    batch, m, n = _batch(draw), draw.integers(1, 4), draw.integers(1, 4)
    hermitian = m == n and draw.choice((False, True))
    if hermitian:  # |eigenvalues| apart; the lower triangle is read
        w = _spaced(draw, batch, n, 1.0, 0.5) * _signs(draw, (*batch, n))
        a = _symmetric(draw, batch, n, w)
    else:
        a = _general(draw, batch, m, n)
    kwargs = {
        "full_matrices": m == n and draw.choice((False, True)),
        "compute_uv": draw.choice((True, False)),
        "hermitian": hermitian,
    }
    return (a,), kwargs


@op(
    np.linalg.svd,
    sample=_sample_svd,
    convention="derivative for distinct singular values: terms of exactly equal ones, and "
    "the 1/s terms of exactly zero ones, are dropped (no inf/NaN); "
    "full_matrices=True: derivative for square matrices only (a traced non-square input "
    "raises); hermitian=True reads the lower triangle, as numpy",
)
def svd(
    a: ArrayLike, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    """The singular value decomposition ``a = U diag(S) Vh`` of each matrix of the stack
    ``(..., m, n)``: numpy's ``SVDResult`` (``S`` descending), or ``S`` alone with
    ``compute_uv=False``. ``full_matrices=False`` gives ``U (..., m, k)``,
    ``Vh (..., k, n)``, ``k = min(m, n)``. ``hermitian=True`` is numpy's eigenvalue route
    (it reads the lower triangle).

    VJP (Townsend 2016): ``U [(F o skew(U^T gU)) S + diag(gS) + S (F o skew(V^T gV))] V^T``
    plus the ``S^-1`` terms of a non-square ``a``, with ``F_ij = 1 / (s_j^2 - s_i^2)``;
    ``compute_uv=False``: ``U diag(gS) Vh``.
    """
    if type(a) is not Traced:
        return np.linalg.svd(a, full_matrices, compute_uv, hermitian)
    m, n = _check_matrices(a, "svd", square=False)
    if hermitian:
        _check_matrices(a, "svd")
        return _hermitian_svd(a, compute_uv)
    if not compute_uv:
        return bind(SVDVALS, (a,))
    if full_matrices and m != n:
        raise ValueError(
            f"tg.svd: full_matrices=True on a non-square traced matrix (shape {shape_of(a)}) "
            "has no derivative: the extra singular vectors are not unique. Use "
            "full_matrices=False."
        )
    packed = bind(SVD, (a,), {"full_matrices": bool(full_matrices)})
    return _result(_SVDResult, *_svd_unpack(packed, m))


# =======================================================================================
# qr


def _qr_forward(a):
    """``[Q^T | R]`` of the reduced QR packed on the last axis: ``(..., k, m + n)``."""
    q, r = np.linalg.qr(a)
    return np.concatenate([np.swapaxes(q, -1, -2), r], axis=-1)


def _qr_square_vjp(q, r, gq, gr):
    """For A = QR with R square (m >= n): gA = (gQ + Q copyltu(M)) R^-T with
    M = R gR^T - gQ^T Q and copyltu(M) the symmetric matrix of M's lower triangle
    (Walter & Lehmann 2018). R^-T is a solve with the triangular R."""
    mm = r @ _mT(gr) - _mT(gq) @ q
    below = tril(mm, -1)
    c = below + _mT(below) + mm * _eye(shape_of(mm)[-1], dtype_of(mm))
    return _mT(solve(r, _mT(gq + q @ c)))


def _qr_vjp(i, g, ans, a):
    """Tall or square A: :func:`_qr_square_vjp`. Wide A = [X | Y] (m < n): Q R_X is the QR
    of X and R = [R_X | Q^T Y], so gY = Q gR_Y and X gets the square rule with
    gQ + Y gR_Y^T."""
    m, n = shape_of(a)[-2:]
    q, r = _mT(ans[..., :m]), ans[..., m:]
    gq, gr = _mT(g[..., :m]), g[..., m:]
    if m >= n:
        return _qr_square_vjp(q, r, gq, gr)
    y, gry = a[..., :, m:], gr[..., :, m:]
    gx = _qr_square_vjp(q, r[..., :, :m], gq + y @ _mT(gry), gr[..., :, :m])
    return concatenate([gx, q @ gry], axis=-1)


QR = Primitive("qr", _qr_forward, _qr_vjp)


def _sample_qr(draw):
    batch, m, n = _batch(draw), draw.integers(1, 4), draw.integers(1, 4)
    if m >= n:
        a = _general(draw, batch, m, n)
    else:  # its leading square block must be invertible
        a = np.concatenate(
            [_general(draw, batch, m, m), draw.array((*batch, m, n - m), Interval())], -1
        )
    modes = ("reduced", "r", "complete") if m <= n else ("reduced", "r")
    return (a,), {"mode": draw.choice(modes)}


@op(
    np.linalg.qr,
    sample=_sample_qr,
    convention="derivative where the leading square block is invertible (R's diagonal "
    "nonzero); mode='complete' with m > n and mode='raw' give values only (a traced input "
    "raises)",
)
def qr(a: ArrayLike, mode: str = "reduced") -> Any:
    """The QR decomposition of each matrix of the stack ``(..., m, n)``: numpy's
    ``QRResult`` ``(Q, R)`` (``mode='reduced'``, ``'complete'``), or ``R`` (``mode='r'``).

    VJP (reduced, m >= n): ``(gQ + Q copyltu(R gR^T - gQ^T Q)) R^-T``; a wide matrix
    ``[X | Y]`` through the QR of ``X``.
    """
    if type(a) is not Traced:
        return np.linalg.qr(a, mode)
    m, n = _check_matrices(a, "qr", square=False)
    if mode not in ("reduced", "r", "complete") or (mode == "complete" and m > n):
        raise ValueError(
            f"tg.qr: mode={mode!r} on a traced matrix of shape {shape_of(a)} has no "
            "derivative; use mode='reduced' (or 'r')"
        )
    packed = bind(QR, (a,))
    r = packed[..., m:]
    return r if mode == "r" else _result(_QRResult, _mT(packed[..., :m]), r)


# =======================================================================================
# norm


def _norm_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """The reduced axes, non-negative, in numpy's order (``(row, col)`` for a matrix)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        return (axis % ndim,)
    return tuple(a % ndim for a in axis)


def _norm_vjp(i, g, ans, x, ord=None, axis=None, keepdims=False):
    """Per ``ord``, with ``g`` and ``ans`` broadcast back over the reduced axes:

    - 2-norm (vector ``None``/2, matrix ``None``/``'fro'``): ``g x / ans``
    - 1: ``g sign(x)``; ``inf``/``-inf``: ``g sign(x)`` on the extreme ``|x|`` (ties share)
    - p: ``g sign(x) (|x| / ans)^(p - 1)``, 0 at zero entries (where for p < 1 it is
      infinite: PyTorch's choice); 0 (a count): no derivative
    - ``'nuc'``: ``g U V^T``; 2 / -2: ``g u v^T`` of the largest / smallest singular value
    - matrix 1 / -1 (inf / -inf): ``g sign(x)`` on the extreme column (row) sum (ties share)

    Every ord gets the zero subgradient where ``ans == 0`` (x = 0), through ``where`` and
    safe reciprocals, so neither the gradient nor its derivative has a NaN there.
    """
    shape = shape_of(x)
    axes = _norm_axes(axis, len(shape))
    kept = tuple(1 if d in axes else s for d, s in enumerate(shape))
    gk, ak = reshape(g, kept), reshape(ans, kept)
    matrix = len(axes) == 2 and ord is not None
    if ord is None or ord == "fro" or (ord == 2 and not matrix):
        return x * (gk * _safe_reciprocal(ak))
    if ord == 0:
        return None
    if matrix and ord in ("nuc", 2, -2):
        xm = moveaxis(x, axes, (-2, -1))
        u, _, vh = svd(xm, full_matrices=False)
        if ord == 2:
            u, vh = u[..., :, :1], vh[..., :1, :]
        elif ord == -2:
            u, vh = u[..., :, -1:], vh[..., -1:, :]
        return where(equal(ak, 0), 0.0, gk * moveaxis(u @ vh, (-2, -1), axes))
    if matrix:  # 1, -1: column sums (over the rows); inf, -inf: row sums
        row, col = axes
        summed, extreme = (row, col) if ord in (1, -1) else (col, row)
        sums = sum(abs(x), axis=summed, keepdims=True)
        hits = cast(equal(sums, ak), dtype_of(x))
        return gk * (hits / sum(hits, axis=extreme, keepdims=True)) * sign(x)
    if ord == 1:
        return gk * sign(x)
    if ord in (np.inf, -np.inf):
        hits = cast(equal(abs(x), ak), dtype_of(x))
        return gk * (hits / sum(hits, axis=axes, keepdims=True)) * sign(x)
    zero = logical_or(equal(x, 0), equal(ak, 0))
    ratio = where(zero, 1.0, abs(x) * _safe_reciprocal(ak))
    return where(zero, 0.0, gk * sign(x) * power(ratio, float(ord) - 1.0))


NORM = Primitive("norm", np.linalg.norm, _norm_vjp)

_VECTOR_ORDS = (None, 1, 2, np.inf, -np.inf, 0, 3, 0.5, -1.5)
_MATRIX_ORDS = (None, "fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf)
_AWAY_FROM_ZERO = Interval(-2.0, 2.0, avoid=(0.0,), gap=0.3)


def _sample_norm(draw):
    kind = draw.choice(("flat", "vector", "matrix"))
    keepdims = draw.choice((False, True))
    if kind == "flat":  # ord None, axis None: the 2-norm of all elements
        return (draw.array(draw.shape(1, 3, 1, 3), _AWAY_FROM_ZERO),), {"keepdims": keepdims}
    if kind == "vector":
        shape = draw.shape(1, 3, 1, 3)
        ndim = len(shape)
        axis = draw.choice((None, 0, -1)) if ndim == 1 else draw.integers(-ndim, ndim - 1)
        ord = draw.choice(_VECTOR_ORDS)
        if ord in (np.inf, -np.inf):  # distinct magnitudes (86 values for 27 elements)
            x = draw.array(shape, Interval(0.3, 2.0, step=0.02, distinct=True))
            x = x * _signs(draw, shape)
        else:
            x = draw.array(shape, _AWAY_FROM_ZERO)
        return (x,), {"ord": ord, "axis": axis, "keepdims": keepdims}
    batch, m, n = draw.shape(0, 1, 1, 2), draw.integers(1, 3), draw.integers(1, 3)
    ord = draw.choice(_MATRIX_ORDS)
    if ord in ("nuc", 2, -2):
        x = _general(draw, batch, m, n)
    elif ord in (1, -1, np.inf, -np.inf):  # row and column sums of |x| apart
        rows = np.array(draw.choice(list(itertools.permutations(range(m)))))
        cols = np.array(draw.choice(list(itertools.permutations(range(n)))))
        u = draw.array((*batch, m, n), Interval(0.0, 1.0))
        x = (1.0 + 0.1 * u + 0.3 * rows[:, None] + 0.3 * cols) * _signs(draw, (*batch, m, n))
    else:
        x = draw.array((*batch, m, n), _AWAY_FROM_ZERO)
    ndim = len(batch) + 2
    if ndim == 2 and draw.choice((False, True)):
        return (x,), {"ord": ord, "keepdims": keepdims}
    row = draw.integers(0, ndim - 1)
    col = draw.choice([d for d in range(ndim) if d != row])
    x = np.moveaxis(x, (-2, -1), (row, col))
    axis = (row - ndim if draw.choice((False, True)) else row, col)
    return (x,), {"ord": ord, "axis": axis, "keepdims": keepdims}


@op(
    np.linalg.norm,
    sample=_sample_norm,
    convention="zero subgradient at x = 0 for every ord (PyTorch's choice; no NaN in the "
    "gradient or its derivative); ord 1: sign(0) = 0; other p: 0 at zero entries; ties "
    "of |x| (inf, -inf) and of row or column sums (matrix 1, -1, inf, -inf) share the "
    "cotangent equally; matrix 2 / -2 with a repeated extreme singular value: the "
    "singular vectors LAPACK returns",
)
def norm(
    x: ArrayLike,
    ord: Any = None,
    axis: int | Sequence[int] | None = None,
    keepdims: bool = False,
) -> ArrayLike:
    """numpy's vector or matrix norm: vectors (``axis`` an int, or a 1-d ``x``) with ``ord``
    None/2, 1, ``inf``, ``-inf``, 0 (a count) or any p; matrices (``axis`` a pair, or a
    2-d ``x``) with ``'fro'``/None, ``'nuc'``, 2, -2, 1, -1, ``inf``, ``-inf``; ``ord=None``
    with ``axis=None`` is the 2-norm of all elements.

    VJP: ``g x / norm`` for the 2-norms, ``g U V^T`` for ``'nuc'``, ``g sign(x)`` on the
    extreme entries or sums for 1/inf (see the rule).
    """
    if axis is not None:
        axis = int(axis) if isinstance(axis, (int, np.integer)) else tuple(int(a) for a in axis)
    if isinstance(ord, (np.integer, np.floating)):
        ord = ord.item()
    return bind(NORM, (x,), {"ord": ord, "axis": axis, "keepdims": bool(keepdims)})


# =======================================================================================
# pinv


def _pinv_forward(a, rcond=None, hermitian=False, **rtol):
    return np.linalg.pinv(a, rcond, hermitian, **rtol)


def _pinv_vjp(i, g, ans, a, rcond=None, hermitian=False, **rtol):
    """For P = A^+ at constant rank (Golub & Pereyra 1973):
    dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P, so

        gA = -P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A)

    (the projections applied as products, never formed). With ``hermitian=True`` numpy
    reads the lower triangle: the rule is that of the symmetric matrix it reads, mapped
    back to the triangle."""
    if hermitian:
        a = _symmetric_from_lower(a)
    p, pt, gt = ans, _mT(ans), _mT(g)
    ga = -(pt @ g @ pt)
    x = gt @ p @ pt
    ga = ga + (x - a @ (p @ x))
    x = pt @ p @ gt
    ga = ga + (x - (x @ p) @ a)
    return _read_triangle(ga, lower=True) if hermitian else ga


PINV = Primitive("pinv", _pinv_forward, _pinv_vjp)


def _sample_pinv(draw):
    batch, m, n = _batch(draw), draw.integers(1, 4), draw.integers(1, 4)
    if m == n and draw.choice((False, True)):
        w = _spaced(draw, batch, n, 1.0, 0.5) * _signs(draw, (*batch, n))
        return (_symmetric(draw, batch, n, w),), {"hermitian": True}
    return (_general(draw, batch, m, n),), {"rcond": draw.choice((None, 1e-10))}


@op(
    np.linalg.pinv,
    sample=_sample_pinv,
    convention="derivative at constant rank (singular values below the cutoff stay "
    "zero; where the rank changes there is none); hermitian=True reads the lower "
    "triangle, as numpy",
)
def pinv(
    a: ArrayLike, rcond: Any = None, hermitian: bool = False, *, rtol: Any = np._NoValue
) -> ArrayLike:
    """The Moore-Penrose pseudo-inverse of each matrix of the stack ``(..., m, n)``
    (singular values at or below ``rcond * max(s)`` are dropped; ``rtol`` as numpy 2).

    VJP: ``-P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A)``, ``P = A^+``.
    """
    params = {"rcond": _frozen(rcond), "hermitian": bool(hermitian)}
    if rtol is not np._NoValue:
        params["rtol"] = _frozen(rtol)
    return bind(PINV, (a,), params)


# =======================================================================================
# matrix_power, multi_dot


def _sample_matrix_power(draw):
    batch, n = _batch(draw), draw.integers(1, 4)
    a = _with_spectrum(draw, batch, n, n, _spaced(draw, batch, n, 0.6, 0.25, spread=0.2))
    return (a, draw.integers(-3, 5)), {}


@op(
    np.linalg.matrix_power,
    sample=_sample_matrix_power,
    convention="n = 0: the identity, with no derivative; n < 0: powers of inv(a)",
)
def matrix_power(a: ArrayLike, n: int) -> ArrayLike:
    """``a`` to the integer power ``n`` for each matrix of the stack ``(..., m, m)``
    (``n < 0``: powers of its inverse; ``n = 0``: the identity).

    Its derivative is that of numpy's own algorithm, written with ``matmul`` and ``inv``:
    squarings and products by the binary digits of ``|n|`` (so the values are numpy's, bit
    for bit, and the tape holds ``O(log |n|)`` products).
    """
    if type(a) is not Traced:
        return np.linalg.matrix_power(a, n)
    m = _check_matrices(a, "matrix_power")[0]
    try:
        n = operator.index(n)
    except TypeError as e:
        raise TypeError("tg.matrix_power: exponent must be an integer") from e
    if n == 0:
        return np.broadcast_to(_eye(m, dtype_of(a)), shape_of(a)).copy()
    if n < 0:
        a, n = inv(a), -n
    if n <= 3:
        return a if n == 1 else (a @ a if n == 2 else (a @ a) @ a)
    z = result = None
    while n > 0:
        z = a if z is None else z @ z
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else result @ z
    return result


def _multi_dot_forward(*arrays):
    return np.linalg.multi_dot(arrays)


def _as_matrices(arrays: Sequence[ArrayLike]) -> list:
    """The operands as matrices: a 1-d first one is a row, a 1-d last one a column."""
    mats = list(arrays)
    if len(shape_of(mats[0])) == 1:
        mats[0] = reshape(mats[0], (1, -1))
    if len(shape_of(mats[-1])) == 1:
        mats[-1] = reshape(mats[-1], (-1, 1))
    return mats


def _multi_dot_vjp(i, g, ans, *arrays):
    """For A_0 ... A_{N-1}: gA_i = (A_0 ... A_{i-1})^T g (A_{i+1} ... A_{N-1})^T, itself a
    chain product ``multi_dot([A_{i-1}^T, ..., A_0^T, g, A_{N-1}^T, ..., A_{i+1}^T])``
    (in the cheapest order)."""
    mats = _as_matrices(arrays)
    g = reshape(g, (shape_of(mats[0])[0], shape_of(mats[-1])[1]))
    chain = [_mT(m) for m in reversed(mats[:i])] + [g] + [_mT(m) for m in reversed(mats[i + 1 :])]
    gi = chain[0] if len(chain) == 1 else multi_dot(chain)
    return reshape(gi, shape_of(arrays[i]))


MULTI_DOT = Primitive("multi_dot", _multi_dot_forward, _multi_dot_vjp)


def _sample_multi_dot(draw):
    count = draw.integers(2, 4)
    sizes = [draw.integers(1, 3) for _ in range(count + 1)]
    shapes = [(sizes[k], sizes[k + 1]) for k in range(count)]
    if draw.choice((False, True)):
        shapes[0] = shapes[0][1:]
    if draw.choice((False, True)):
        shapes[-1] = shapes[-1][:1]
    return ([draw.array(s, Interval()) for s in shapes],), {}


@op(np.linalg.multi_dot, sample=_sample_multi_dot)
def multi_dot(arrays: Sequence[ArrayLike], *, out: None = None) -> ArrayLike:
    """The product of two or more matrices in the cheapest order (the first may be a 1-d
    row, the last a 1-d column; numpy's ``multi_dot``).

    VJP: ``gA_i = (A_0 ... A_{i-1})^T g (A_{i+1} ... A_{N-1})^T``, a ``multi_dot`` too.
    """
    no_out("multi_dot", out)
    arrays = tuple(arrays)
    if len(arrays) < 2:
        raise ValueError("tg.multi_dot: expecting at least two arrays")
    return bind(MULTI_DOT, arrays)


# =======================================================================================
# lstsq: four primitives, one per result (the rank has no derivative)


def _lstsq_part(k: int, name: str):
    """The forward giving result ``k`` of numpy's lstsq."""

    def forward(a, b, rcond=None):
        return np.linalg.lstsq(a, b, rcond)[k]

    forward.__name__ = f"lstsq_{name}"
    return forward


def _lstsq_rcond(rcond: Any, m: int, n: int) -> float:
    """The cutoff numpy's lstsq uses, relative to the largest singular value."""
    eps = float(np.finfo(np.float64).eps)
    if rcond is None:
        return eps * max(m, n)
    return eps if rcond < 0 else float(rcond)


def _as_columns(b: ArrayLike, x: ArrayLike, g: ArrayLike) -> tuple:
    """``b``, ``x`` and ``g`` as matrices of columns (a 1-d ``b`` is one column)."""
    if len(shape_of(b)) == 1:
        return b[:, None], x[:, None], g[:, None]
    return b, x, g


def _lstsq_solution_vjp(i, g, ans, a, b, rcond=None):
    """x = P b with P = A^+ (constant rank): gb = P^T g, and from dP (see ``pinv``),
    gA = -P^T g x^T + r (P P^T g)^T + (P^T x)(g - A^T P^T g)^T with r = b - A x."""
    m, n = shape_of(a)
    p = pinv(a, rcond=_lstsq_rcond(rcond, m, n))
    b2, x2, g2 = _as_columns(b, ans, g)
    ptg = _mT(p) @ g2
    if i == 1:
        return ptg if len(shape_of(b)) == 2 else ptg[:, 0]
    r = b2 - a @ x2
    return -(ptg @ _mT(x2)) + r @ _mT(p @ ptg) + (_mT(p) @ x2) @ _mT(g2 - _mT(a) @ ptg)


def _lstsq_residuals_vjp(i, g, ans, a, b, rcond=None):
    """residual_j = |b_j - A x_j|^2 at the minimiser x, which does not move it to first
    order (the envelope theorem): d/dA = -2 r_j x_j^T, d/db_j = 2 r_j."""
    if shape_of(ans)[0] == 0:  # numpy gives no residuals (m <= n or rank < n)
        return None
    x = bind(LSTSQ_SOLUTION, (a, b), {"rcond": rcond})
    b2, x2, _ = _as_columns(b, x, g)
    rg = (b2 - a @ x2) * g
    if i == 1:
        return 2.0 * (rg if len(shape_of(b)) == 2 else rg[:, 0])
    return -2.0 * (rg @ _mT(x2))


def _lstsq_singular_values_vjp(i, g, ans, a, b, rcond=None):
    """The singular values of A: gA = U diag(g) V^T, as ``svd``'s; b has no part in them."""
    if i == 1:
        return None
    u, _, vh = svd(a, full_matrices=False)
    return (u * g) @ vh


LSTSQ_SOLUTION = Primitive("lstsq_solution", _lstsq_part(0, "solution"), _lstsq_solution_vjp)
LSTSQ_RESIDUALS = Primitive("lstsq_residuals", _lstsq_part(1, "residuals"), _lstsq_residuals_vjp)
LSTSQ_RANK = Primitive("lstsq_rank", _lstsq_part(2, "rank"), zero_vjp)
LSTSQ_SINGULAR_VALUES = Primitive(
    "lstsq_singular_values", _lstsq_part(3, "singular_values"), _lstsq_singular_values_vjp
)


def _sample_lstsq(draw):
    m, n = draw.integers(1, 4), draw.integers(1, 4)
    b_shape = draw.choice(((m,), (m, draw.integers(1, 2))))
    return (_general(draw, (), m, n), draw.array(b_shape, Interval())), {}


@op(
    np.linalg.lstsq,
    sample=_sample_lstsq,
    argnums=(0, 1),
    # the rank is an integer leaf of the result; x, residuals and s keep float32 (pinned
    # in tests/test_linalg_conventions.py)
    float32=False,
    convention="derivatives at constant (full) rank: the solution through the "
    "pseudo-inverse, the residuals by the envelope theorem, the singular values as svd's; "
    "the rank has none",
)
def lstsq(a: ArrayLike, b: ArrayLike, rcond: float | None = None) -> tuple:
    """numpy's least-squares solution of ``a @ x = b`` (``a (m, n)``, ``b (m,)`` or
    ``(m, k)``; no stacks, as numpy): the tuple ``(x, residuals, rank, s)``.

    VJP of the solution, for constant rank: ``gb = A^+T g``,
    ``gA = -A^+T g x^T + r (A^+ A^+T g)^T + (A^+T x)(g - A^T A^+T g)^T``, ``r = b - A x``;
    of the residuals ``|r_j|^2`` (m > n): ``-2 r_j x_j^T`` and ``2 r_j``.
    """
    if type(a) is not Traced and type(b) is not Traced:
        return np.linalg.lstsq(a, b, rcond)
    args, params = (a, b), {"rcond": None if rcond is None else float(rcond)}
    return (
        bind(LSTSQ_SOLUTION, args, params),
        bind(LSTSQ_RESIDUALS, args, params),
        bind(LSTSQ_RANK, args, params),
        bind(LSTSQ_SINGULAR_VALUES, args, params),
    )
