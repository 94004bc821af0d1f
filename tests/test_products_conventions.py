"""Products (``einsum``, ``dot``, ``tensordot``, ``kron``, ``cross``, ...): values against
numpy and gradients against finite differences, case by case, beyond the registry's samples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.ops import cross, dot, einsum, inner, kron, outer, tensordot, vdot
from tapegrad.testing import check_grads

RNG = np.random.default_rng(0)


def _arrays(*shapes, dtype=np.float64):
    return tuple(RNG.uniform(-2, 2, s).astype(dtype) for s in shapes)


def _check(fn, numpy_fn, args, order=2):
    """Same value as numpy (and dtype), and gradients w.r.t. every argument right to
    ``order``."""
    ours, theirs = fn(*args), numpy_fn(*args)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype
    assert np.shape(ours) == np.shape(theirs)
    check_grads(fn, args, argnums=tuple(range(len(args))), order=order)


# ---------------------------------------------------------------------------------------
# einsum: every kind of subscripts numpy accepts

EINSUM_CASES = {
    "matrix product": ("ij,jk->ik", [(2, 3), (3, 4)]),
    "matrix-vector": ("ij,j->i", [(2, 3), (3,)]),
    "batch matmul": ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    "transpose": ("ij->ji", [(2, 3)]),
    "sum of all": ("ij->", [(2, 3)]),
    "sum over an index": ("ij->j", [(2, 3)]),
    "indices only in one operand": ("ij,kl->il", [(2, 3), (4, 2)]),
    "trace": ("ii->", [(3, 3)]),
    "trace, implicit": ("ii", [(3, 3)]),
    "diagonal": ("ii->i", [(3, 3)]),
    "diagonal of a 3-d array": ("iii->i", [(2, 2, 2)]),
    "diagonal of non-adjacent axes": ("iji->ij", [(3, 2, 3)]),
    "diagonal, then summed": ("iij->j", [(2, 2, 3)]),
    "diagonal in a product": ("ii,i->i", [(3, 3), (3,)]),
    "repeated in two operands": ("ii,ij->j", [(3, 3), (3, 2)]),
    "outer": ("i,j->ij", [(2,), (3,)]),
    "batched outer": ("ij,ik->ijk", [(2, 3), (2, 4)]),
    "dot": ("i,i", [(4,), (4,)]),
    "implicit output": ("ij,jk", [(2, 3), (3, 4)]),
    "implicit output is sorted": ("ba", [(2, 3)]),
    "implicit, upper case before lower": ("bA,Ac", [(2, 3), (3, 2)]),
    "ellipsis": ("...ij->...ji", [(2, 3, 4)]),
    "ellipsis with broadcasting": ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    "ellipsis in the middle": ("i...j,j...->...i", [(2, 3, 4), (4, 3)]),
    "ellipsis, implicit output": ("...i,...i", [(2, 3), (3,)]),
    "ellipsis of no axes": ("...ij,jk->...ik", [(2, 3), (3, 2)]),
    "batch diagonal": ("...ii->...i", [(2, 3, 3)]),
    "labels of size 1 broadcast": ("ij,ij->ij", [(1, 3), (2, 3)]),
    "three operands": ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 4)]),
    "three operands, one summed away": ("i,ij,k->j", [(2,), (2, 3), (4,)]),
    "a scalar operand": (",ij->ij", [(), (2, 3)]),
    "scalars only": (",", [(), ()]),
    "a scalar result": ("i,->", [(3,), ()]),
    "spaces": (" ij , jk -> ik ", [(2, 3), (3, 2)]),
}


@pytest.mark.parametrize("case", list(EINSUM_CASES))
def test_einsum_matches_numpy_and_finite_differences(case):
    subscripts, shapes = EINSUM_CASES[case]
    args = _arrays(*shapes)
    _check(
        lambda *ops: einsum(subscripts, *ops),
        lambda *ops: np.einsum(subscripts, *ops),
        args,
    )


@pytest.mark.parametrize("optimize", [True, "greedy", "optimal", "path"])
def test_einsum_optimize_is_passed_to_numpy(optimize):
    args = _arrays((2, 3), (3, 4), (4,))
    if optimize == "path":
        optimize = np.einsum_path("ij,jk,k->i", *args, optimize="greedy")[0]
    _check(
        lambda *ops: einsum("ij,jk,k->i", *ops, optimize=optimize),
        lambda *ops: np.einsum("ij,jk,k->i", *ops, optimize=optimize),
        args,
    )


def test_einsum_trace_and_diagonal_gradients_are_exact():
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(tg.grad(lambda x: einsum("ii", x))(a), np.eye(3))
    g = tg.grad(lambda x: tg.sum(einsum("ii->i", x) * np.array([1.0, 2.0, 3.0])))(a)
    np.testing.assert_array_equal(g, np.diag([1.0, 2.0, 3.0]))
    # summed away: every element of x gets the cotangent of its row
    g = tg.grad(lambda x: tg.sum(einsum("ij->i", x) * np.array([1.0, 2.0, 3.0])))(a)
    np.testing.assert_array_equal(g, [[1.0] * 3, [2.0] * 3, [3.0] * 3])


def test_einsum_second_derivative_of_a_trace_of_a_product():
    # f(A) = tr(A A): grad 2 A^T, Hessian-vector product with V is 2 V^T.
    a, v = _arrays((3, 3), (3, 3))
    np.testing.assert_allclose(tg.grad(lambda x: einsum("ij,ji", x, x))(a), 2 * a.T)
    hvp = tg.grad(lambda x: tg.sum(tg.grad(lambda y: einsum("ij,ji", y, y))(x) * v))(a)
    np.testing.assert_allclose(hvp, 2 * v.T)


def test_einsum_interleaved_form():
    a, b = _arrays((2, 3), (3, 4))
    _check(
        lambda x, y: einsum(x, [0, 27], y, [27, 2], [2, 0]),
        lambda x, y: np.einsum(x, [0, 27], y, [27, 2], [2, 0]),
        (a, b),
    )
    _check(  # implicit output, ellipsis
        lambda x, y: einsum(x, [Ellipsis, 0, 1], y, [1, 2]),
        lambda x, y: np.einsum(x, [Ellipsis, 0, 1], y, [1, 2]),
        _arrays((2, 2, 3), (3, 4)),
    )
    _check(lambda x: einsum(x, [0, 0]), lambda x: np.einsum(x, [0, 0]), _arrays((3, 3)))


def test_einsum_through_numpy_on_traced_values():
    a, b = _arrays((2, 3), (3, 4))
    ga, gb = tg.grad(lambda x, y: np.sum(np.einsum("ij,jk", x, y)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.ones((2, 4)) @ b.T)
    np.testing.assert_allclose(gb, a.T @ np.ones((2, 4)))
    g = tg.grad(lambda x: np.einsum(x, [0, 0]))(a[:, :2])
    np.testing.assert_array_equal(g, np.eye(2))


def test_einsum_errors():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="einsum"):
        einsum("ij,jk->ik", a, a)  # numpy's own error, naming the op
    with pytest.raises(ValueError, match=r"tg\.einsum: subscript 60"):
        einsum(a, [0, 60])
    with pytest.raises(TypeError, match=r"tg\.einsum: expected a subscripts string"):
        einsum(a, 0)
    with pytest.raises(TypeError):
        einsum("ij", a, out=np.empty(3))


@pytest.mark.parametrize("case", ["trace", "diagonal", "ellipsis with broadcasting", "dot"])
def test_einsum_keeps_float32(case):
    subscripts, shapes = EINSUM_CASES[case]
    args = _arrays(*shapes, dtype=np.float32)
    out = einsum(subscripts, *args)
    assert np.asarray(out).dtype == np.float32
    grads = tg.grad(lambda *ops: tg.sum(einsum(subscripts, *ops)), argnums=tuple(range(len(args))))(
        *args
    )
    assert [g.dtype for g in grads] == [np.float32] * len(args)
    # second order too
    hvp = tg.grad(
        lambda x: tg.sum(tg.grad(lambda y: tg.sum(einsum(subscripts, y, *args[1:]) ** 2))(x))
    )(args[0])
    assert hvp.dtype == np.float32


# ---------------------------------------------------------------------------------------
# dot, vdot, inner, outer


@pytest.mark.parametrize(
    "shapes",
    [
        [(), (3,)],
        [(2, 3), ()],
        [(3,), (3,)],
        [(2, 3), (3,)],
        [(3,), (3, 2)],
        [(2, 3), (3, 4)],
        [(2, 2, 3), (3,)],
        [(3,), (2, 3, 4)],
        [(2, 2, 3), (3, 4)],
        [(2, 3), (4, 3, 2)],
        [(2, 1, 3), (2, 2, 3, 2)],  # N-d: no batch broadcasting, a's axes then b's
    ],
)
def test_dot_follows_numpy_on_every_ndim(shapes):
    _check(dot, np.dot, _arrays(*shapes))


def test_dot_of_matrices_is_one_matmul_record():
    a, b = _arrays((2, 3), (3, 4))
    tape = tg.make_tape(lambda x, y: dot(x, y), argnums=(0, 1))(a, b)
    assert [r.primitive.name for r in tape] == ["matmul"]
    tape = tg.make_tape(lambda x: x.dot(b))(a)  # the method
    assert [r.primitive.name for r in tape] == ["matmul"]


def test_dot_promotes_python_scalars_as_numpy_does():
    x = np.ones(3, np.float32)
    assert dot(x, 2.0).dtype == np.dot(x, 2.0).dtype == np.float64
    assert dot(x, np.ones(3, np.float32)).dtype == np.float32


def test_dot_error_names_the_shapes():
    with pytest.raises(ValueError, match=r"tg\.dot: shapes \(2, 3\) and \(4, 2\) not aligned"):
        dot(np.ones((2, 3)), np.ones((4, 2)))


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (3,)], [(2, 3), (3, 2)], [(2, 3), (6,)]])
def test_vdot_flattens(shapes):
    _check(vdot, np.vdot, _arrays(*shapes))


def test_vdot_needs_equal_sizes():
    with pytest.raises(ValueError, match=r"tg\.vdot"):
        vdot(np.ones(3), np.ones(4))


@pytest.mark.parametrize(
    "shapes", [[(), (3,)], [(3,), (3,)], [(2, 3), (3,)], [(3,), (2, 3)], [(2, 3), (4, 2, 3)]]
)
def test_inner_sums_the_last_axes(shapes):
    _check(inner, np.inner, _arrays(*shapes))


@pytest.mark.parametrize("shapes", [[(), ()], [(3,), (2,)], [(2, 2), (3,)], [(2, 1, 2), ()]])
def test_outer_flattens(shapes):
    _check(outer, np.outer, _arrays(*shapes))


# ---------------------------------------------------------------------------------------
# tensordot


@pytest.mark.parametrize(
    ("shapes", "axes"),
    [
        ([(2, 3), (3, 4)], 1),
        ([(2, 3, 4), (3, 4, 2)], 2),
        ([(2, 3), (4,)], 0),
        ([(), ()], 0),
        ([(2, 3, 4), (4, 3)], ([1, 2], [1, 0])),
        ([(2, 3, 4), (4, 3)], ((-1, -2), (0, 1))),
        ([(2, 3), (2, 4)], (0, 0)),
        ([(2, 3), (4, 3)], (-1, -1)),
        ([(2, 3), (4, 3)], (np.array([1]), np.array([1]))),
        ([(2, 3), (4,)], ([], [])),
    ],
)
def test_tensordot_axes_forms(shapes, axes):
    _check(
        lambda a, b: tensordot(a, b, axes), lambda a, b: np.tensordot(a, b, axes), _arrays(*shapes)
    )


def test_tensordot_default_axes_and_errors():
    a, b = _arrays((2, 3, 4), (3, 4, 2))
    np.testing.assert_allclose(tensordot(a, b), np.tensordot(a, b))
    with pytest.raises(ValueError, match=r"tg\.tensordot: shape-mismatch"):
        tensordot(a, b, 1)
    with pytest.raises(ValueError, match=r"tg\.tensordot: duplicate axes"):
        tensordot(a, b, ([1, 1], [0, 0]))
    with pytest.raises(np.exceptions.AxisError):
        tensordot(a, b, ([5], [0]))


# ---------------------------------------------------------------------------------------
# kron


@pytest.mark.parametrize(
    "shapes", [[(), ()], [(), (2,)], [(2,), (3,)], [(2, 2), (2, 3)], [(3,), (2, 1, 2)]]
)
def test_kron_values_and_gradients(shapes):
    _check(kron, np.kron, _arrays(*shapes))


def test_kron_gradient_is_a_blockwise_sum():
    a, b, u = _arrays((2, 2), (3, 2), (6, 4))
    ga, gb = tg.grad(lambda x, y: tg.sum(kron(x, y) * u), argnums=(0, 1))(a, b)
    blocks = u.reshape(2, 3, 2, 2).transpose(0, 2, 1, 3)  # blocks[i, j] multiplies a[i, j]
    np.testing.assert_allclose(ga, np.einsum("ijkl,kl->ij", blocks, b))
    np.testing.assert_allclose(gb, np.einsum("ijkl,ij->kl", blocks, a))


# ---------------------------------------------------------------------------------------
# cross


@pytest.mark.parametrize(
    ("shapes", "kwargs"),
    [
        ([(3,), (3,)], {}),
        ([(4, 3), (3,)], {}),
        ([(2, 1, 3), (4, 3)], {}),
        ([(3, 4), (4, 3)], {"axisa": 0}),
        ([(3, 2), (2, 3)], {"axisa": 0, "axisb": 1, "axisc": 0}),
        ([(2, 3, 2), (3, 2)], {"axis": -2}),
        ([(3, 2), (1, 3, 2)], {"axisa": -2, "axisb": 1, "axisc": 1}),
    ],
)
def test_cross_values_and_gradients(shapes, kwargs):
    _check(
        lambda a, b: cross(a, b, **kwargs), lambda a, b: np.cross(a, b, **kwargs), _arrays(*shapes)
    )


@pytest.mark.parametrize(
    ("shapes", "kwargs"),
    [
        ([(2,), (2,)], {}),
        ([(4, 2), (2,)], {}),
        ([(2,), (3,)], {}),
        ([(4, 3), (2,)], {}),
        ([(2, 4), (3,)], {"axisa": 0}),
        ([(2, 4), (4, 2)], {"axisa": 0}),
    ],
)
def test_cross_of_2_vectors_as_numpy_deprecated_it(shapes, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _check(
            lambda a, b: cross(a, b, **kwargs),
            lambda a, b: np.cross(a, b, **kwargs),
            _arrays(*shapes),
        )


def test_cross_gradient_is_a_cross_product():
    a, b, u = _arrays((3,), (3,), (3,))
    ga, gb = tg.grad(lambda x, y: tg.sum(cross(x, y) * u), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.cross(b, u))
    np.testing.assert_allclose(gb, np.cross(u, a))


def test_cross_errors_come_from_numpy_with_the_op_named():
    with pytest.raises(ValueError, match="cross"):
        cross(np.ones(4), np.ones(3))


# ---------------------------------------------------------------------------------------
# float32 stays float32


@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (dot, [(2, 2, 3), (4, 3, 2)]),
        (vdot, [(2, 3), (6,)]),
        (inner, [(2, 3), (4, 3)]),
        (outer, [(2,), (3,)]),
        (lambda a, b: tensordot(a, b, ([0], [1])), [(3, 2), (2, 3)]),
        (kron, [(2, 2), (2,)]),
        (cross, [(2, 3), (3,)]),
    ],
)
def test_products_keep_float32(fn, shapes):
    args = _arrays(*shapes, dtype=np.float32)
    assert np.asarray(fn(*args)).dtype == np.float32
    grads = tg.grad(lambda *a: tg.sum(fn(*a)), argnums=(0, 1))(*args)
    assert [g.dtype for g in grads] == [np.float32, np.float32]
