"""Linear algebra (``tapegrad.numpy.linalg``): gradients against closed forms, the Hessian of a
log-determinant, the triangle that cholesky and eigh read, the norms' conventions at 0 and
at ties, reduced and non-square SVD and QR, stacks, float32, negative and zero matrix
powers, chains of products with 1-d ends, least squares, and the ways in (numpy's own
functions on traced values)."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.ops import REGISTRY
from tapegrad.ops.axes import dtype_of
from tapegrad.ops.linalg import (
    cholesky,
    det,
    eigh,
    eigvalsh,
    inv,
    lstsq,
    matrix_power,
    multi_dot,
    norm,
    pinv,
    qr,
    slogdet,
    solve,
    svd,
)
from tapegrad.testing import check_grads

RNG = np.random.default_rng(0)
LINALG = sorted(
    name for name, spec in REGISTRY.items() if spec.function.__module__ == "tapegrad.ops.linalg"
)


def _matrix(*shape, low=1.0):
    """A well-conditioned matrix (stack): singular values ``low, low + 0.5, ...``."""
    *batch, m, n = shape
    u = np.linalg.qr(RNG.standard_normal((*batch, m, m)))[0]
    v = np.linalg.qr(RNG.standard_normal((*batch, n, n)))[0]
    k = min(m, n)
    s = low + 0.5 * np.arange(k)
    return (u[..., :, :k] * s) @ np.swapaxes(v[..., :, :k], -1, -2)


def _spd(*shape):
    """A symmetric positive definite matrix (stack), eigenvalues 1, 1.5, 2, ..."""
    *batch, n = shape[:-1]
    q = np.linalg.qr(RNG.standard_normal((*batch, n, n)))[0]
    return (q * (1.0 + 0.5 * np.arange(n))) @ np.swapaxes(q, -1, -2)


def _with_noise_above(s):
    """``s``'s lower triangle with values above it that numpy does not read."""
    return np.tril(s) + np.triu(RNG.standard_normal(s.shape), 1)


def _fd_gradient(f, x, eps=1e-6):
    """Central differences of a scalar function of plain arrays, entry by entry."""
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


# ---------------------------------------------------------------------------------------
# inv, solve, det, slogdet: closed forms


def test_det_gradient_is_det_times_inverse_transpose():
    a = _matrix(3, 3)
    expected = np.linalg.det(a) * np.linalg.inv(a).T
    np.testing.assert_allclose(tg.grad(det)(a), expected, rtol=1e-12)


def test_slogdet_gradient_is_inverse_transpose_and_the_sign_has_none():
    a = _matrix(2, 3, 3)
    g = tg.grad(lambda x: tg.sum(slogdet(x)[1]))(a)
    np.testing.assert_allclose(g, np.swapaxes(np.linalg.inv(a), -1, -2), rtol=1e-12)
    assert not tg.grad(lambda x: tg.sum(slogdet(x).sign))(a).any()


def test_slogdet_returns_numpys_named_tuple_traced_or_not():
    a = _matrix(3, 3)
    expected = np.linalg.slogdet(a)
    got = slogdet(a)
    assert type(got) is type(expected)

    def check(x):
        traced = slogdet(x)
        assert type(traced) is type(expected)
        return traced.logabsdet, tg.stop_gradient(traced.sign)

    (value, sign), _ = tg.value_and_grad(check, has_aux=True)(a)
    assert (value, sign) == (expected.logabsdet, expected.sign)


def test_the_hessian_of_logdet_is_minus_the_inverse_twice():
    """d^2 log|det A| / dA_ij dA_kl = -(A^-1)_li (A^-1)_jk."""
    a = _matrix(3, 3)
    ainv = np.linalg.inv(a)
    h = tg.hessian(lambda x: slogdet(x)[1])(a)
    np.testing.assert_allclose(h, -np.einsum("li,jk->ijkl", ainv, ainv), rtol=1e-10, atol=1e-12)


def test_inv_gradient():
    a, w = _matrix(3, 3), RNG.standard_normal((3, 3))
    g = tg.grad(lambda x: tg.sum(inv(x) * w))(a)
    ainv_t = np.linalg.inv(a).T
    np.testing.assert_allclose(g, -ainv_t @ w @ ainv_t, rtol=1e-10)


@pytest.mark.parametrize("b_shape", [(3,), (3, 2), (2, 3, 2)])
def test_solve_gradients_for_vector_and_matrix_right_hand_sides(b_shape):
    a, b = _matrix(2, 3, 3), RNG.standard_normal(b_shape)
    x = np.linalg.solve(a, b)
    w = RNG.standard_normal(x.shape)
    ga, gb = tg.grad(lambda a, b: tg.sum(solve(a, b) * w), argnums=(0, 1))(a, b)
    wb = np.linalg.solve(np.swapaxes(a, -1, -2), w[..., None] if len(b_shape) == 1 else w)
    if len(b_shape) == 1:  # one vector solved against both matrices: its cotangents add
        np.testing.assert_allclose(gb, wb[..., 0].sum(0), rtol=1e-10)
        np.testing.assert_allclose(ga, -wb * x[..., None, :], rtol=1e-10)
    else:  # a (3, 2) b is broadcast against both matrices: its cotangents add
        np.testing.assert_allclose(gb, wb if len(b_shape) == 3 else wb.sum(0), rtol=1e-10)
        np.testing.assert_allclose(ga, -wb @ np.swapaxes(x, -1, -2), rtol=1e-10)
    check_grads(lambda a, b: tg.sum(solve(a, b) ** 3), (a, b), argnums=(0, 1), order=2)


def test_singular_matrices_raise_numpys_error_naming_the_op():
    with pytest.raises(np.linalg.LinAlgError, match=r"tg\.inv"):
        tg.grad(lambda x: tg.sum(inv(x)))(np.ones((2, 2)))
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        tg.grad(lambda x: slogdet(x)[1])(np.ones((2, 3)))


# ---------------------------------------------------------------------------------------
# cholesky and eigh read one triangle: their gradients are those of numpy's function


def _read_triangle_expected(gs, lower=True):
    both = gs + gs.T
    return (np.tril(both) if lower else np.triu(both)) - np.diag(np.diag(gs))


def test_cholesky_reads_the_lower_triangle():
    """logdet via Cholesky: 2 sum log diag L = log det S, d/dS = S^-1; the upper triangle
    is not read (zero gradient), each lower entry moves S_ij and S_ji."""
    s = _spd(3, 3)
    a = _with_noise_above(s)

    def logdet(x):
        return 2.0 * tg.sum(tg.log(tg.diagonal(cholesky(x), axis1=-2, axis2=-1)))

    g = tg.grad(logdet)(a)
    np.testing.assert_allclose(g, _read_triangle_expected(np.linalg.inv(s)), rtol=1e-10)
    assert not np.triu(g, 1).any()
    fd = _fd_gradient(lambda x: 2 * np.log(np.diag(np.linalg.cholesky(x))).sum(), a)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_cholesky_upper_reads_the_upper_triangle():
    s = _spd(3, 3)
    a = _with_noise_above(s).T  # noise below, which upper=True does not read
    w = RNG.standard_normal((3, 3))
    g = tg.grad(lambda x: tg.sum(cholesky(x, upper=True) * w))(a)
    assert not np.tril(g, -1).any()
    fd = _fd_gradient(lambda x: (np.linalg.cholesky(x, upper=True) * w).sum(), a)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_cholesky_second_order_on_a_stack():
    a = np.stack([_with_noise_above(_spd(3, 3)) for _ in range(2)])
    w = RNG.standard_normal((2, 3, 3))
    check_grads(lambda x: tg.sum(cholesky(x) ** 3 * w), (a,), order=2)


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_reads_one_triangle(uplo):
    """sum(w^2) = |S|_F^2: gS = 2 S, so a read off-diagonal entry gets 4 S_ij."""
    s = _spd(3, 3)
    a = _with_noise_above(s) if uplo == "L" else _with_noise_above(s).T
    g = tg.grad(lambda x: tg.sum(eigh(x, UPLO=uplo).eigenvalues ** 2))(a)
    np.testing.assert_allclose(g, _read_triangle_expected(2 * s, uplo == "L"), rtol=1e-10)
    w = RNG.standard_normal((3, 3))
    g = tg.grad(lambda x: tg.sum(eigh(x, uplo)[1] ** 2 * w))(a)
    fd = _fd_gradient(lambda x: (np.linalg.eigh(x, uplo)[1] ** 2 * w).sum(), a)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    unread = np.triu(g, 1) if uplo == "L" else np.tril(g, -1)
    assert not unread.any()


def test_eigh_second_order_on_spd_stacks():
    a = np.stack([_with_noise_above(_spd(3, 3)) for _ in range(2)])
    w, v = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3, 3))

    def f(x):
        vals, vecs = eigh(x)
        return tg.sum(vals**2 * w) + tg.sum(vecs**3 * v)

    check_grads(f, (a,), order=2)
    check_grads(lambda x: tg.sum(eigvalsh(x) ** 3), (a,), order=2)


def test_repeated_eigenvalues_give_finite_gradients():
    """At the identity every eigenvalue is repeated: the eigenvector terms of ties are
    dropped, so functions of the eigenvalues keep their exact gradient (no NaN)."""
    g = tg.grad(lambda x: tg.sum(eigh(x)[0] ** 2))(np.eye(3))
    np.testing.assert_array_equal(g, 2 * np.eye(3))
    g = tg.grad(lambda x: tg.sum(eigh(x)[1]))(np.eye(3))
    assert np.isfinite(g).all()
    g = tg.grad(lambda x: tg.sum(svd(x)[1]))(np.eye(3))  # the nuclear norm: U V^T = I
    np.testing.assert_allclose(g, np.eye(3), atol=1e-15)


# ---------------------------------------------------------------------------------------
# svd and qr: reduced, non-square, the other modes


@pytest.mark.parametrize("shape", [(4, 2), (2, 4), (3, 3), (2, 3, 2)])
def test_svd_reduced_values_and_second_order(shape):
    a = _matrix(*shape)
    got, expected = svd(a, full_matrices=False), np.linalg.svd(a, full_matrices=False)
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, y)
    wu, ws, wv = (RNG.standard_normal(np.shape(x)) for x in expected)

    def f(x):
        u, s, vh = svd(x, full_matrices=False)
        return tg.sum(u**3 * wu) + tg.sum(s**2 * ws) + tg.sum(vh**3 * wv)

    check_grads(f, (a,), order=2)
    check_grads(lambda x: tg.sum(svd(x, compute_uv=False) ** 3), (a,), order=2)


def test_svd_full_matrices_on_a_traced_non_square_matrix_raises():
    a = _matrix(3, 2)
    for x, y in zip(svd(a), np.linalg.svd(a), strict=True):  # plain: numpy's values
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="full_matrices=False"):
        tg.grad(lambda x: tg.sum(svd(x)[1]))(a)
    square = _matrix(3, 3)  # square: full and reduced agree, with a derivative
    check_grads(lambda x: tg.sum(svd(x)[0] ** 3), (square,), order=1)


def test_svd_hermitian_reads_the_lower_triangle():
    q = np.linalg.qr(RNG.standard_normal((3, 3)))[0]
    s = (q * np.array([-2.0, 1.0, 1.5])) @ q.T
    a = _with_noise_above(s)
    for x, y in zip(svd(a, hermitian=True), np.linalg.svd(a, hermitian=True), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(
        svd(a, hermitian=True, compute_uv=False),
        np.linalg.svd(a, hermitian=True, compute_uv=False),
    )
    check_grads(lambda x: tg.sum(svd(x, hermitian=True, compute_uv=False) ** 3), (a,), order=2)
    w = RNG.standard_normal((3, 3))
    g = tg.grad(lambda x: tg.sum(svd(x, hermitian=True)[2] * w))(a)
    fd = _fd_gradient(lambda x: (np.linalg.svd(x, hermitian=True)[2] * w).sum(), a)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    assert not np.triu(g, 1).any()


@pytest.mark.parametrize("shape", [(4, 2), (3, 3), (2, 4), (2, 2, 3)])
def test_qr_reduced_and_r_modes(shape):
    a = _matrix(*shape) if shape[-2] >= shape[-1] else RNG.standard_normal(shape)
    q, r = qr(a)
    eq, er = np.linalg.qr(a)
    np.testing.assert_array_equal(q, eq)
    np.testing.assert_array_equal(r, er)
    wq, wr = RNG.standard_normal(eq.shape), RNG.standard_normal(er.shape)
    check_grads(lambda x: tg.sum(qr(x)[0] ** 3 * wq) + tg.sum(qr(x)[1] ** 3 * wr), (a,), order=2)
    check_grads(lambda x: tg.sum(qr(x, mode="r") * wr), (a,), order=1)


def test_qr_modes_without_a_derivative_raise_on_traced_input():
    a = _matrix(3, 2)
    assert qr(a, mode="complete")[0].shape == (3, 3)  # plain: numpy's
    for mode in ("complete", "raw"):
        with pytest.raises(ValueError, match="mode="):
            tg.grad(lambda x, mode=mode: tg.sum(qr(x, mode=mode)[1]))(a)


# ---------------------------------------------------------------------------------------
# norm: every ord, axis pairs, keepdims, and the conventions at 0 and at ties


VECTOR_ORDS = [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5, -1.5]
MATRIX_ORDS = [None, "fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf]


@pytest.mark.parametrize("ord", VECTOR_ORDS)
def test_vector_norm_gradients_against_closed_forms(ord):
    x = np.array([0.5, -2.0, 1.25, -0.75])
    g = tg.grad(lambda v: norm(v, ord))(x)
    if ord in (None, 2):
        expected = x / np.linalg.norm(x)
    elif ord == 1:
        expected = np.sign(x)
    elif ord in (np.inf, -np.inf):
        k = np.argmax(np.abs(x)) if ord > 0 else np.argmin(np.abs(x))
        expected = np.where(np.arange(4) == k, np.sign(x), 0.0)
    elif ord == 0:
        expected = np.zeros(4)
    else:
        expected = np.sign(x) * (np.abs(x) / np.linalg.norm(x, ord)) ** (ord - 1)
    np.testing.assert_allclose(g, expected, rtol=1e-12)


@pytest.mark.parametrize("ord", VECTOR_ORDS)
def test_vector_norms_at_zero_have_the_zero_subgradient_and_no_nan(ord):
    with np.errstate(divide="ignore"):  # numpy's own forward for p < 0 at 0
        g = tg.grad(lambda v: norm(v, ord))(np.zeros(3))
        h = tg.hessian(lambda v: norm(v, ord))(np.zeros(3))
    np.testing.assert_array_equal(g, np.zeros(3))
    np.testing.assert_array_equal(h, np.zeros((3, 3)))


@pytest.mark.parametrize("ord", MATRIX_ORDS)
def test_matrix_norms_at_zero_have_the_zero_subgradient_and_no_nan(ord):
    g = tg.grad(lambda v: norm(v, ord))(np.zeros((2, 3)))
    h = tg.hessian(lambda v: norm(v, ord))(np.zeros((2, 3)))
    np.testing.assert_array_equal(g, np.zeros((2, 3)))
    np.testing.assert_array_equal(h, np.zeros((2, 3, 2, 3)))


def test_norm_ties_share_and_zero_entries_get_zero():
    x = np.array([2.0, -2.0, 1.0])
    np.testing.assert_array_equal(tg.grad(lambda v: norm(v, np.inf))(x), [0.5, -0.5, 0.0])
    np.testing.assert_array_equal(tg.grad(lambda v: norm(v, 1))(np.array([0.0, -3.0])), [0, -1])
    g = tg.grad(lambda v: norm(v, 0.5))(np.array([0.0, 1.0, 4.0]))
    assert g[0] == 0 and np.isfinite(g).all()
    m = np.array([[1.0, -1.0], [2.0, 2.0]])  # column sums 3, 3: tied
    np.testing.assert_array_equal(tg.grad(lambda v: norm(v, 1))(m), 0.5 * np.sign(m))
    np.testing.assert_array_equal(tg.grad(lambda v: norm(v, np.inf))(m), [[0, 0], [1, 1]])


@pytest.mark.parametrize("ord", MATRIX_ORDS)
def test_matrix_norm_gradients_against_closed_forms(ord):
    x = np.array([[2.0, -0.5, 1.0], [0.25, 1.5, -1.5]])  # no tied row or column sums
    g = tg.grad(lambda v: norm(v, ord))(x)
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    sums = {1: np.abs(x).sum(0), -1: np.abs(x).sum(0), np.inf: np.abs(x).sum(1)}
    sums[-np.inf] = sums[np.inf]
    if ord in (None, "fro"):
        expected = x / np.linalg.norm(x)
    elif ord == "nuc":
        expected = u @ vh
    elif ord in (2, -2):
        k = 0 if ord == 2 else -1
        expected = np.outer(u[:, k], vh[k])
    else:
        k = np.argmax(sums[ord]) if ord > 0 else np.argmin(sums[ord])
        mask = np.arange(3) == k if ord in (1, -1) else (np.arange(2) == k)[:, None]
        expected = np.where(mask, np.sign(x), 0.0)
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_matrix_norms_over_axis_pairs_of_a_stack(ord, keepdims):
    """The norm over axes (2, 0) of a (3, 2, 2) stack is the norm of each x[:, k, :].T."""
    x = RNG.uniform(0.5, 2.0, (3, 2, 2)) * np.sign(RNG.standard_normal((3, 2, 2)))
    out = norm(x, ord, axis=(2, 0), keepdims=keepdims)
    expected = np.linalg.norm(x, ord, axis=(2, 0), keepdims=keepdims)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert out.shape == expected.shape == ((1, 2, 1) if keepdims else (2,))
    weights = np.reshape([1.0, -2.0], out.shape)
    g = tg.grad(lambda v: tg.sum(norm(v, ord, axis=(2, 0), keepdims=keepdims) * weights))(x)
    for k, w in enumerate([1.0, -2.0]):
        gk = tg.grad(lambda m: norm(m, ord))(x[:, k, :].T)
        np.testing.assert_allclose(g[:, k, :], w * gk.T, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------
# pinv, matrix_power, multi_dot, lstsq


@pytest.mark.parametrize("shape", [(4, 2), (2, 4), (3, 3)])
def test_pinv_gradients_of_non_square_matrices(shape):
    a = _matrix(*shape)
    np.testing.assert_array_equal(pinv(a), np.linalg.pinv(a))
    w = RNG.standard_normal(shape[::-1])
    check_grads(lambda x: tg.sum(pinv(x) ** 3 * w), (a,), order=2)
    np.testing.assert_array_equal(pinv(a, rtol=1e-3), np.linalg.pinv(a, rtol=1e-3))


def test_pinv_hermitian_reads_the_lower_triangle():
    a = _with_noise_above(_spd(3, 3))
    np.testing.assert_array_equal(pinv(a, hermitian=True), np.linalg.pinv(a, hermitian=True))
    w = RNG.standard_normal((3, 3))
    g = tg.grad(lambda x: tg.sum(pinv(x, hermitian=True) * w))(a)
    fd = _fd_gradient(lambda x: (np.linalg.pinv(x, hermitian=True) * w).sum(), a)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n", [-3, -1, 0, 1, 2, 5])
def test_matrix_power_values_and_gradients(n):
    a = _matrix(2, 3, 3, low=0.6) * 0.8
    traced = {}

    def f(x):
        traced["value"] = tg.stop_gradient(matrix_power(x, n))
        return tg.sum(matrix_power(x, n) ** 2)

    g = tg.grad(f)(a)
    np.testing.assert_array_equal(traced["value"], np.linalg.matrix_power(a, n))
    if n == 0:  # the identity: no derivative
        np.testing.assert_array_equal(traced["value"], np.broadcast_to(np.eye(3), a.shape))
        np.testing.assert_array_equal(g, np.zeros_like(a))
    if n == 2:  # d <A^2, G> = G A^T + A^T G with G = 2 A^2
        at, gg = np.swapaxes(a, -1, -2), 2 * a @ a
        np.testing.assert_allclose(g, gg @ at + at @ gg, rtol=1e-12)
    check_grads(lambda x: tg.sum(matrix_power(x, n) ** 2), (a,), order=2)


def test_matrix_power_refuses_a_non_integer_exponent():
    with pytest.raises(TypeError, match="integer"):
        tg.grad(lambda x: tg.sum(matrix_power(x, 1.5)))(np.eye(2))


@pytest.mark.parametrize(
    "shapes",
    [
        [(3,), (3, 2), (2, 4)],
        [(2, 3), (3, 4), (4,)],
        [(3,), (3, 2), (2, 4), (4,)],
        [(2, 3), (3, 1), (1, 4), (4, 2)],
    ],
)
def test_multi_dot_of_three_and_four_with_1d_ends(shapes):
    arrays = [RNG.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(multi_dot(arrays), np.linalg.multi_dot(arrays), rtol=1e-12)

    def f(*xs):
        return tg.sum(multi_dot(list(xs)) ** 3)

    check_grads(f, arrays, argnums=tuple(range(len(arrays))), order=2)


@pytest.mark.parametrize("m, n", [(4, 2), (2, 4), (3, 3)])
@pytest.mark.parametrize("vector", [True, False])
def test_lstsq_values_and_gradients(m, n, vector):
    a = _matrix(m, n)
    b = RNG.standard_normal((m,) if vector else (m, 2))
    got, expected = lstsq(a, b), np.linalg.lstsq(a, b)
    for x, y in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, y)

    def f(a, b):
        x, residuals, rank, s = lstsq(a, b)
        assert int(rank) == min(m, n)
        return tg.sum(x**3) + tg.sum(residuals**2) + tg.sum(s**2)

    check_grads(f, (a, b), argnums=(0, 1), order=2)
    if m > n:  # the residuals by the envelope theorem: d|b - Ax|^2/db = 2 r
        x = expected[0]
        r = b - a @ x
        g = tg.grad(lambda b: tg.sum(lstsq(a, b)[1]))(b)
        np.testing.assert_allclose(g, 2 * r, rtol=1e-9, atol=1e-12)


def test_lstsq_keeps_float32():
    a, b = _matrix(4, 2).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    x, residuals, rank, s = lstsq(a, b)
    assert x.dtype == residuals.dtype == s.dtype == np.float32
    assert rank == 2
    ga, gb = tg.grad(lambda a, b: tg.sum(lstsq(a, b)[0]), argnums=(0, 1))(a, b)
    assert ga.dtype == gb.dtype == np.float32


# ---------------------------------------------------------------------------------------
# float32, stacks, and the ways in


FLOAT32_CASES = {
    "inv": (lambda x: inv(x), (3, 3)),
    "solve": (lambda x: solve(x, np.ones(3, np.float32)), (2, 3, 3)),
    "det": (lambda x: det(x), (2, 3, 3)),
    "slogdet": (lambda x: slogdet(x)[1], (3, 3)),
    "cholesky": (lambda x: cholesky(x), "spd"),
    "eigh": (lambda x: eigh(x)[1], "spd"),
    "eigvalsh": (lambda x: eigvalsh(x), "spd"),
    "svd": (lambda x: svd(x, full_matrices=False)[2], (3, 2)),
    "svdvals": (lambda x: svd(x, compute_uv=False), (2, 3)),
    "svd hermitian": (lambda x: svd(x, hermitian=True)[0], "spd"),
    "qr": (lambda x: qr(x)[0], (3, 2)),
    "norm": (lambda x: norm(x, "nuc"), (3, 2)),
    "pinv": (lambda x: pinv(x), (2, 3)),
    "matrix_power": (lambda x: matrix_power(x, -2), (3, 3)),
    "multi_dot": (lambda x: multi_dot([x, x.T, x]), (3, 2)),
}


@pytest.mark.parametrize("case", list(FLOAT32_CASES))
def test_float32_in_float32_out_with_float32_gradients(case):
    fn, shape = FLOAT32_CASES[case]
    a = (_spd(3, 3) if shape == "spd" else _matrix(*shape)).astype(np.float32)
    out = fn(a)
    assert np.asarray(out).dtype == np.float32
    g = tg.grad(lambda x: tg.sum(fn(x)))(a)
    assert g.dtype == np.float32


def test_a_stack_is_the_matrices_one_by_one():
    a = _matrix(2, 2, 3, 3)
    w = RNG.standard_normal((2, 2, 3, 3))
    for fn in (inv, lambda x: cholesky(x @ np.swapaxes(x, -1, -2)), lambda x: qr(x)[1]):
        g = tg.grad(lambda x, fn=fn: tg.sum(fn(x) * w))(a)
        for idx in np.ndindex(2, 2):
            gi = tg.grad(lambda x, fn=fn, idx=idx: tg.sum(fn(x) * w[idx]))(a[idx])
            np.testing.assert_allclose(g[idx], gi, rtol=1e-12)


@pytest.mark.parametrize("name", LINALG)
def test_tapegrad_numpy_linalg_and_numpy_dispatch_reach_the_op(name):
    spec = REGISTRY[name]
    assert getattr(tnp.linalg, name) is spec.function
    a = _spd(3, 3)
    args = ([a, a, a],) if name == "multi_dot" else (a, a) if name in ("solve", "lstsq") else (a,)
    if name == "matrix_power":
        args = (a, 3)

    def loss(fn):
        def f(x):
            out = fn(*((x, *args[1:]) if name != "multi_dot" else ([x, a, x],)))
            leaves = [o for o in tg.tree_leaves(out) if dtype_of(o).kind == "f"]
            return sum(tg.sum(o**2) for o in leaves)

        return f

    ours = tg.value_and_grad(loss(spec.function))(a)
    theirs = tg.value_and_grad(loss(spec.numpy))(a)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
