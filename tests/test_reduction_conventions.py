"""Exact tests of the reductions and scans: products at zeros, std at a constant slice,
ties of max/min/ptp, ddof, diff's prepend/append and average's weights.

The registry tests (tests/test_registry.py) check every op against numpy and finite
differences on domains away from kinks; these pin what happens at the kinks, and the
keyword variants the samplers do not draw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import ops
from tapegrad.testing import check_grads


def _without(x: np.ndarray, *js: int) -> float:
    """The product of ``x`` (1-d) without the entries at ``js``."""
    return float(np.prod(np.delete(x, list(js))))


# ---------------------------------------------------------------------------------------
# prod: the gradient is the product of the others, also at zeros, and no division happens


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([2.0, -1.5, 3.0], [-4.5, 6.0, -3.0]),
        ([2.0, 0.0, 3.0], [0.0, 6.0, 0.0]),  # one zero: it gets the product of the others
        ([2.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]),  # two zeros: all 0
        ([0.0], [1.0]),
        ([0.0, 0.0], [0.0, 0.0]),
    ],
)
def test_prod_gradient_is_the_product_of_the_others_at_zeros(x, expected):
    x = np.array(x)
    with np.errstate(all="raise"):  # a division by a zero would raise here
        value, g = tg.value_and_grad(ops.prod)(x)
    assert value == np.prod(x)
    assert g.tolist() == expected


@pytest.mark.parametrize(
    "x", [[2.0, 0.0, 3.0, -0.5], [2.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.5], [1.5, 2.0, -1.0, 0.5]]
)
def test_prod_hessian_is_exact_at_zeros(x):
    x = np.array(x)
    with np.errstate(all="raise"):
        h = tg.hessian(ops.prod)(x)
    n = len(x)
    expected = [[0.0 if i == j else _without(x, i, j) for j in range(n)] for i in range(n)]
    np.testing.assert_array_equal(h, expected)


def test_prod_over_axes_with_zeros_matches_the_product_of_the_others():
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, size=(3, 2, 4)) * 0.5  # many zeros, some slices with several
    u = rng.standard_normal((1, 2, 1))
    with np.errstate(all="raise"):
        g = tg.grad(lambda a: tg.sum(ops.prod(a, axis=(2, -3), keepdims=True) * u))(x)
    expected = np.empty_like(x)
    for b in range(2):
        line = x[:, b, :].reshape(-1)  # the slice reduced into one value
        others = [_without(line, j) for j in range(line.size)]
        expected[:, b, :] = np.reshape(others, (3, 4)) * u[0, b, 0]
    np.testing.assert_allclose(g, expected, rtol=1e-15, atol=0)
    check_grads(lambda a: ops.prod(a, axis=(0, 2)), (x,), order=2)  # multilinear: FD exact


def test_prod_keeps_numpy_dtypes_and_keywords():
    x32 = np.array([[1.5, -2.0], [0.5, 3.0]], np.float32)
    assert ops.prod(x32, axis=0).dtype == np.float32
    wide = ops.prod(x32, 1, np.float64)  # numpy's positional order: a, axis, dtype
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide, np.prod(x32, 1, np.float64))
    g = tg.grad(lambda a: tg.sum(ops.prod(a, axis=1, dtype=np.float64)))(x32)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, [[-2.0, 1.5], [3.0, 0.5]])
    small = np.array([100, 100], np.int8)
    assert ops.prod(small) == np.prod(small) and ops.prod(small).dtype == np.prod(small).dtype
    assert ops.prod(np.ones((2, 0)), axis=1).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------------------------
# cumprod: exact at zeros, without dividing, at first and second order


def _cumprod_jacobian(x: np.ndarray) -> np.ndarray:
    """d y_k / d x_j = prod_{m <= k, m != j} x_m for j <= k, else 0."""
    n = len(x)
    return np.array(
        [[_without(x[: k + 1], j) if j <= k else 0.0 for j in range(n)] for k in range(n)]
    )


@pytest.mark.parametrize(
    "x",
    [
        [1.5, -2.0, 0.5, 3.0, 1.0, -0.5, 2.0],  # no zero; 7 long: a three-step scan
        [1.5, 0.0, 2.0, -1.0, 0.5, 0.0, 3.0],  # two zeros
        [0.0, 0.0, 1.0, 2.0],
        [2.0, 0.0],
        [0.0],
    ],
)
def test_cumprod_jacobian_is_exact_at_zeros(x):
    x = np.array(x)
    with np.errstate(all="raise"):
        jac = tg.jacobian(ops.cumprod)(x)
    np.testing.assert_array_equal(jac, _cumprod_jacobian(x))


@pytest.mark.parametrize("x", [[1.5, 0.0, 2.0, -1.0, 0.5, 0.0], [0.5, 2.0, -1.5, 1.0, 3.0]])
def test_cumprod_hessian_is_exact_at_zeros(x):
    x = np.array(x)
    u = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0])[: len(x)]
    with np.errstate(all="raise"):
        h = tg.hessian(lambda a: tg.sum(ops.cumprod(a) * u))(x)
    n = len(x)
    expected = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                ks = range(max(i, j), n)
                expected[i, j] = sum(u[k] * _without(x[: k + 1], i, j) for k in ks)
    np.testing.assert_allclose(h, expected, rtol=1e-15, atol=0)


def test_cumprod_and_cumsum_flatten_for_axis_none_and_keep_dtypes():
    x = np.array([[1.0, 2.0], [0.0, -1.5]])
    np.testing.assert_array_equal(ops.cumprod(x), np.cumprod(x))
    np.testing.assert_array_equal(ops.cumsum(x), np.cumsum(x))
    u = np.array([1.0, 2.0, 3.0, 4.0])
    g = tg.grad(lambda a: tg.sum(ops.cumsum(a) * u))(x)
    np.testing.assert_array_equal(g, [[10.0, 9.0], [7.0, 4.0]])  # u summed from the end
    g = tg.grad(lambda a: tg.sum(ops.cumsum(a, axis=0) * x))(x)
    np.testing.assert_array_equal(g, [[1.0, 0.5], [0.0, -1.5]])
    small = np.array([100, 100], np.int8)  # numpy widens small integers
    assert ops.cumsum(small).dtype == np.cumsum(small).dtype
    assert ops.cumprod(np.float32([1.5, 2.0]), dtype=np.float64).dtype == np.float64
    assert ops.cumsum(np.float32([1.5, 2.0]), 0, np.float64).dtype == np.float64


# ---------------------------------------------------------------------------------------
# var and std: ddof as numpy, and std's derivative at a constant slice


@pytest.mark.parametrize("ddof", [0, 1, 2, 1.5])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1), (1,)])
def test_var_and_std_with_ddof_match_numpy_and_the_formula(ddof, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    for ours, theirs in ((ops.var, np.var), (ops.std, np.std)):
        for keepdims in (False, True):
            np.testing.assert_allclose(
                ours(x, axis, ddof=ddof, keepdims=keepdims),
                theirs(x, axis, ddof=ddof, keepdims=keepdims),
                rtol=1e-15,
            )
    n = x.size if axis is None else math.prod(x.shape[a] for a in np.atleast_1d(axis))
    u = rng.standard_normal(np.shape(np.var(x, axis, keepdims=True)))
    centered = x - x.mean(axis=axis, keepdims=True)
    g = tg.grad(lambda a: tg.sum(ops.var(a, axis, ddof=ddof, keepdims=True) * u))(x)
    np.testing.assert_allclose(g, 2 * u * centered / (n - ddof), rtol=1e-13)
    g = tg.grad(lambda a: tg.sum(ops.std(a, axis, ddof=ddof, keepdims=True) * u))(x)
    sd = x.std(axis=axis, ddof=ddof, keepdims=True)
    np.testing.assert_allclose(g, u * centered / ((n - ddof) * sd), rtol=1e-13)


def test_var_and_std_take_numpys_positional_order():
    x = np.array([[1.0, 2.0, 4.0], [3.0, -1.0, 0.5]])
    for ours, theirs in ((ops.var, np.var), (ops.std, np.std)):
        np.testing.assert_array_equal(
            ours(x, 1, None, None, 1, True), theirs(x, 1, None, None, 1, True)
        )


def test_var_and_std_with_no_degrees_of_freedom_give_numpys_inf_and_nan():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    for ours, theirs in ((ops.var, np.var), (ops.std, np.std)):
        with pytest.warns(RuntimeWarning), np.errstate(divide="ignore", invalid="ignore"):
            got, want = ours(x, axis=1, ddof=2), theirs(x, axis=1, ddof=2)
        np.testing.assert_array_equal(got, want)  # [inf, nan]
        assert np.isinf(got[0]) and np.isnan(got[1])


def test_std_derivative_at_a_constant_slice_is_nan():
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    assert ops.std(x, axis=1)[0] == 0.0
    with np.errstate(invalid="ignore"):
        g = tg.grad(lambda a: tg.sum(ops.std(a, axis=1)))(x)
    assert np.isnan(g[0]).all()  # 0 / 0: no derivative at a kink of std
    np.testing.assert_allclose(g[1], (x[1] - x[1].mean()) / (3 * x[1].std()), rtol=1e-15)
    with np.errstate(invalid="ignore"):
        g = tg.grad(lambda a: ops.std(a, ddof=1))(np.array([1.5, 1.5]))
    assert np.isnan(g).all()
    # var is smooth there: its derivative is 0
    g = tg.grad(lambda a: tg.sum(ops.var(a, axis=1)))(x)
    np.testing.assert_array_equal(g[0], [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("shape", "axis", "keepdims"),
    [((), None, False), ((1,), None, True), ((1, 3), 0, False), ((2, 1, 3), 1, True),
     ((1, 1), (0, 1), False)],
)  # fmt: skip
def test_std_over_slices_of_one_value_has_derivative_zero(shape, axis, keepdims):
    # std of one value is 0 for every value: a constant function, not a kink (autograd
    # gives 0 too), to every order, also through numpy's own np.std
    x = np.random.default_rng(0).standard_normal(shape) + 0.5
    u = np.random.default_rng(1).standard_normal(np.std(x, axis=axis, keepdims=keepdims).shape)

    def f(a):
        return tg.sum(np.std(a, axis=axis, keepdims=keepdims) * u)

    np.testing.assert_array_equal(tg.grad(f)(x), np.zeros(shape))
    np.testing.assert_array_equal(tg.hessian(f)(x), np.zeros(shape + shape))
    check_grads(f, (x,), order=2)
    with np.errstate(invalid="ignore", divide="ignore"), pytest.warns(RuntimeWarning):
        g = tg.grad(lambda a: tg.sum(np.std(a, axis=axis, ddof=1)))(x)  # no degrees of freedom
    assert np.isnan(g).all()


def test_var_of_ints_is_float64_as_numpy():
    x = np.array([1, 2, 4])
    assert ops.var(x).dtype == np.var(x).dtype == np.float64
    assert ops.std(np.float32([1.0, 2.0])).dtype == np.float32


# ---------------------------------------------------------------------------------------
# max, min, amax, amin and ptp: tied extrema share the cotangent


def test_amax_and_amin_are_max_and_min_also_through_numpy():
    x = np.array([[1.0, 3.0, 3.0], [0.0, 0.0, 2.0]])
    for name, expected in (
        ("max", [[0, 0.5, 0.5], [0, 0, 1]]),
        ("min", [[1, 0, 0], [0.5, 0.5, 0]]),
    ):
        for fn in (getattr(ops, name), getattr(ops, "a" + name), getattr(np, "a" + name)):
            g = tg.grad(lambda a, fn=fn: tg.sum(fn(a, axis=1)))(x)
            np.testing.assert_array_equal(g, expected)
    assert tnp.amax is ops.amax and tnp.amin is ops.amin
    np.testing.assert_array_equal(ops.amax(x, 0, None, True), np.amax(x, 0, None, True))


def test_ptp_ties_share_like_max_and_min():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(ops.ptp(x, axis=1), [3.0, 0.0])
    for fn in (ops.ptp, np.ptp):
        g = tg.grad(lambda a, fn=fn: tg.sum(fn(a, axis=1)))(x)
        np.testing.assert_array_equal(g, [[0, 0.5, 0.5, -0.5, -0.5], [0, 0, 0, 0, 0]])
    assert ops.ptp(np.float32([1.0, 4.0])).dtype == np.float32
    np.testing.assert_array_equal(
        ops.ptp(x, (0, 1), keepdims=True), np.ptp(x, (0, 1), keepdims=True)
    )


# ---------------------------------------------------------------------------------------
# diff: prepend and append are differentiable and split the gradient with a


@pytest.mark.parametrize("n", [1, 2, 3])
def test_diff_gradients_reach_prepend_and_append(n):
    a, p, q = np.array([1.0, 4.0, 9.0]), np.array(0.5), np.array([16.0, 25.0])
    full = np.concatenate([[p], a, q])
    np.testing.assert_array_equal(ops.diff(a, n, prepend=p, append=q), np.diff(full, n))
    u = np.arange(1.0, 7.0 - n)
    matrix = np.diff(np.eye(full.size), n, axis=0)  # diff as a matrix acting on full
    expected = matrix.T @ u
    ga, gp, gq = tg.grad(
        lambda a, p, q: tg.sum(ops.diff(a, n, prepend=p, append=q) * u), argnums=(0, 1, 2)
    )(a, p, q)
    np.testing.assert_array_equal(gp, expected[0])
    np.testing.assert_array_equal(ga, expected[1:4])
    np.testing.assert_array_equal(gq, expected[4:])


def test_diff_broadcasts_a_scalar_end_along_the_axis_and_sums_its_gradient():
    a = np.array([[1.0, 2.0], [4.0, 8.0], [9.0, 0.5]])
    u = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    gp = tg.grad(lambda p: tg.sum(ops.diff(a, axis=0, prepend=p) * u))(2.0)
    assert gp == -3.0  # out[0] = a[0] - p on both columns
    # numpy's own diff dispatches when only prepend is traced
    gp = tg.grad(lambda p: tg.sum(np.diff(a, 1, 0, p) * u))(np.array([[0.5, 1.0]]))
    np.testing.assert_array_equal(gp, [[-1.0, -2.0]])
    g = tg.grad(lambda a: tg.sum(ops.diff(a, 1, 1) ** 2))(a)
    d = np.diff(a, axis=1)[:, 0]
    np.testing.assert_array_equal(g, np.stack([-2 * d, 2 * d], axis=1))


def test_diff_of_order_zero_is_a_and_errors_are_numpys():
    a = np.array([1.0, 3.0])
    assert ops.diff(a, 0, prepend=5.0) is a  # numpy ignores prepend and append for n = 0
    gp = tg.grad(lambda p: tg.sum(ops.diff(a, 0, prepend=p)) + p)(1.0)
    assert gp == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        ops.diff(a, -1)
    with pytest.raises(ValueError, match="at least one dimensional"):
        ops.diff(np.array(1.0))
    np.testing.assert_array_equal(ops.diff(a, 3), np.diff(a, 3))  # empty, as numpy


# ---------------------------------------------------------------------------------------
# all and any: numpy's truth values (NaN is true, no elements: all True, any False), recorded
# with no derivative


def _traced(fn, x):
    """``fn(x)`` computed with ``x`` traced: the result's concrete value."""
    out, _ = tg.vjp(fn, x)
    return out


def test_all_and_any_give_numpys_values_with_axis_keepdims_and_where():
    x = np.array([[1.0, 0.0, -2.0], [np.nan, 0.5, 0.0]])
    mask = np.array([[True, False, True], [True, True, False]])
    pinned = [
        ({}, False, True),
        ({"axis": 0}, [True, False, False], [True, True, True]),
        ({"axis": -1, "keepdims": True}, [[False], [False]], [[True], [True]]),
        ({"where": mask}, True, True),
        ({"axis": 1, "where": mask[:1]}, [True, False], [True, True]),
        ({"axis": 0, "where": np.zeros(3, bool)}, [True] * 3, [False] * 3),
    ]
    for kwargs, want_all, want_any in pinned:
        for name, want in (("all", want_all), ("any", want_any)):
            expected = getattr(np, name)(x, **kwargs)
            assert np.asarray(expected).tolist() == want, (name, kwargs)
            for way in (
                lambda a, n=name, k=kwargs: getattr(np, n)(a, **k),
                lambda a, n=name, k=kwargs: getattr(a, n)(**k),
                lambda a, n=name, k=kwargs: getattr(tnp, n)(a, **k),
            ):
                got = _traced(way, x)
                assert got.dtype == np.bool_ and np.asarray(got).tolist() == want, (name, kwargs)
            assert type(getattr(ops, name)(x, **kwargs)) is type(expected)
    assert ops.all(np.ones((0, 2))) and not ops.any(np.ones((0, 2)))


def test_all_and_any_decide_a_where_and_pass_no_gradient_themselves():
    x = np.array([[1.0, 2.0], [-1.0, 3.0]])

    def f(a):
        rows = np.all(a > 0, axis=1, keepdims=True)
        return tg.sum(tg.where(rows, a, 3 * a) * (1 + np.any(a > 2.5)))

    assert tg.grad(f)(x).tolist() == [[2.0, 2.0], [6.0, 6.0]]
    assert tg.grad(lambda a: tg.sum(a * a.all()))(x).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert tg.grad(lambda a: tg.sum(a * np.any(a > 5)))(x).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_a_compiled_function_recomputes_all_and_any():
    def f(a):
        return tg.where(np.all(a > 0, axis=1, keepdims=True), a, -a) + np.any(a > 2.5)

    jf = tg.jit(f)
    for x in (np.array([[1.0, 2.0], [-1.0, 3.0]]), np.array([[-1.0, 2.0], [1.0, 1.0]])):
        np.testing.assert_array_equal(jf(x), f(x))
    np.testing.assert_array_equal(jf(np.array([[-1.0, 2.0], [1.0, 1.0]])), [[1, -2], [1, 1]])
    assert jf.compiled == 1


# ---------------------------------------------------------------------------------------
# average: differentiable in a and in weights


def test_average_gradients_in_both_arguments():
    a = np.array([[1.0, 2.0, 4.0], [3.0, -1.0, 0.5]])
    w = np.array([1.0, 2.0, 0.5])  # along axis 1
    u = np.array([1.0, -2.0])
    avg, total = np.average(a, axis=1, weights=w), w.sum()
    ga, gw = tg.grad(lambda a, w: tg.sum(ops.average(a, 1, w) * u), argnums=(0, 1))(a, w)
    np.testing.assert_allclose(ga, u[:, None] * w / total, rtol=1e-15)
    np.testing.assert_allclose(gw, (u[:, None] * (a - avg[:, None]) / total).sum(0), rtol=1e-15)
    # weights of a's own shape, over all elements
    full = np.array([[1.0, 2.0, 0.5], [1.5, 1.0, 3.0]])
    ga, gw = tg.grad(lambda a, w: ops.average(a, weights=w), argnums=(0, 1))(a, full)
    np.testing.assert_allclose(ga, full / full.sum(), rtol=1e-15)
    np.testing.assert_allclose(gw, (a - np.average(a, weights=full)) / full.sum(), rtol=1e-15)


def test_average_weights_along_unsorted_axes():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 4))
    w = rng.uniform(0.5, 2.0, (4, 2))  # a's shape along axis (2, 0), in that order
    for keepdims in (False, True):
        ours = ops.average(a, (2, 0), w, keepdims=keepdims)
        np.testing.assert_allclose(ours, np.average(a, (2, 0), w, keepdims=keepdims), rtol=1e-15)
        got = tg.grad(lambda a, w: tg.sum(np.average(a, (2, 0), w) * np.arange(3.0)), (0, 1))(a, w)
        assert got[0].shape == a.shape and got[1].shape == w.shape
    check_grads(lambda a, w: ops.average(a, (2, 0), w), (a, w), argnums=(0, 1), order=2)


def test_average_returned_and_errors_match_numpy():
    a = np.array([[1.0, 2.0, 4.0], [3.0, -1.0, 0.5]])
    w = np.array([1.0, 2.0, 0.5])
    for weights in (None, w):
        want = np.average(a, 1, weights, returned=True)

        def loss(a, weights=weights):
            avg, total = ops.average(a, 1, weights, True)
            return tg.sum(avg), (avg, total)

        (_, (avg, total)), _ = tg.value_and_grad(loss, has_aux=True)(a)
        np.testing.assert_array_equal(avg, want[0])
        np.testing.assert_array_equal(total, want[1])
        assert total.dtype == want[1].dtype
    # the sum of the weights, broadcast to the average's shape, is differentiable in w
    gw = tg.grad(lambda w: tg.sum(ops.average(a, 1, w, returned=True)[1]))(w)
    np.testing.assert_array_equal(gw, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(ops.average(a, keepdims=True), np.average(a, keepdims=True))
    with pytest.raises(ZeroDivisionError):
        tg.grad(lambda w: ops.average(a, 1, w)[0])(np.array([1.0, -1.0, 0.0]))
    with pytest.raises(TypeError, match="Axis must be specified"):
        tg.grad(lambda w: ops.average(a, weights=w))(w)


# ---------------------------------------------------------------------------------------
# trace


def test_trace_gradient_is_the_offset_diagonal_of_the_chosen_planes():
    x = np.arange(24.0).reshape(2, 3, 4)
    u = np.array([1.0, 10.0, 100.0])  # one per element of axis 1, which remains
    out = ops.trace(x, 1, 2, 0)
    np.testing.assert_array_equal(out, np.trace(x, 1, 2, 0))
    g = tg.grad(lambda a: tg.sum(ops.trace(a, 1, 2, 0) * u))(x)
    expected = np.zeros_like(x)
    for i in range(4):  # axis1 = 2 indexes rows, axis2 = 0 columns at row + offset
        if 0 <= i + 1 < 2:
            expected[i + 1, :, i] = u
    np.testing.assert_array_equal(g, expected)
    assert ops.trace(np.float32([[1.0, 2.0], [3.0, 4.0]])).dtype == np.float32
    assert ops.trace(np.eye(3), 5) == 0.0


# ---------------------------------------------------------------------------------------
# numpy's out= is refused with a TypeError


def test_out_is_refused():
    x = np.ones((2, 2))
    for fn in (ops.prod, ops.var, ops.std, ops.cumsum, ops.cumprod, ops.amax, ops.ptp, ops.all):
        with pytest.raises(TypeError, match="out= is not supported"):
            fn(x, out=np.empty(4))
    with pytest.raises(TypeError, match="out= is not supported"):
        tg.grad(lambda a: tg.sum(np.cumsum(a, out=np.empty(4))))(x)
