"""Exact tests of the reshaping, joining and splitting ops and of building arrays from traced
values (``tapegrad.numpy.array``, ``r_``, ``c_``): keyword variants, numpy's errors, and
gradients the registry's generic properties do not pin."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.exceptions import AxisError

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.numpy.building import array, asarray, c_, r_
from tapegrad.ops import shaping
from tapegrad.testing import check_grads

X = np.arange(24.0).reshape(2, 3, 4) / 10


def traced_value(fn, *args):
    """``fn(*args)`` computed with every argument traced: the result's concrete value."""
    out, _ = tg.vjp(fn, *args)
    return out


# ---------------------------------------------------------------------------------------
# Splitting: each piece's cotangent goes back to its place


def test_array_split_uneven_pieces_and_their_gradients():
    x = np.arange(7.0)
    pieces = shaping.array_split(x, 3)
    assert [p.tolist() for p in pieces] == [[0, 1, 2], [3, 4], [5, 6]]
    w = (np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0]), np.array([100.0, 200.0]))
    g = tg.grad(
        lambda a: sum(tg.sum(p * v) for p, v in zip(shaping.array_split(a, 3), w, strict=True))
    )(x)
    np.testing.assert_array_equal(g, np.concatenate(w))
    # more sections than elements: the last pieces are empty, as in numpy
    assert [p.shape for p in shaping.array_split(np.ones(2), 4)] == [(1,), (1,), (0,), (0,)]


def test_split_points_that_overlap_add_their_cotangents():
    # points [3, 1]: pieces x[0:3], x[3:1] (empty) and x[1:]; x[1:3] is in two pieces
    g = tg.grad(lambda a: sum(tg.sum(p) for p in shaping.split(a, [3, 1])))(np.arange(5.0))
    assert g.tolist() == [1.0, 2.0, 2.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (shaping.split, (np.ones((4, 6)), 3, 1)),
        (shaping.split, (np.ones((4, 6)), [1, -2], -1)),
        (shaping.array_split, (np.ones((5, 2)), 3, 0)),
        (shaping.hsplit, (np.ones((2, 4)), 2)),
        (shaping.hsplit, (np.ones(5), [2])),
        (shaping.vsplit, (np.ones((4, 3)), [1, 3])),
        (shaping.dsplit, (np.ones((1, 2, 4)), 2)),
    ],
)
def test_split_family_gradients_through_stacked_pieces(fn, args):
    ary, *rest = args
    ary = ary * np.arange(ary.size).reshape(ary.shape)
    ours = fn(ary, *rest)
    theirs = getattr(np, fn.__name__)(ary, *rest)
    assert type(ours) is list and len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    u = np.random.default_rng(0).standard_normal(np.concatenate(theirs, axis=None).shape)
    check_grads(lambda a: tg.sum(tg.concatenate(fn(a, *rest), axis=None) * u), (ary,), order=2)


def test_split_errors_are_numpys():
    with pytest.raises(ValueError, match="does not result in an equal division"):
        shaping.split(np.ones(5), 2)
    with pytest.raises(ValueError, match="number sections must be larger than 0"):
        shaping.array_split(np.ones(5), 0)
    with pytest.raises(AxisError):
        shaping.split(np.ones((2, 2)), 2, axis=2)
    with pytest.raises(ValueError, match="vsplit only works on arrays of 2 or more"):
        shaping.vsplit(np.ones(4), 2)


# ---------------------------------------------------------------------------------------
# Joining


def test_append_with_axis_none_flattens_both():
    arr, values = np.arange(6.0).reshape(2, 3), np.array([[7.0], [8.0]])
    np.testing.assert_array_equal(shaping.append(arr, values), np.append(arr, values))
    ga, gv = tg.grad(lambda a, v: tg.sum(shaping.append(a, v) * np.arange(8.0)), argnums=(0, 1))(
        arr, values
    )
    np.testing.assert_array_equal(ga, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(gv, [[6.0], [7.0]])
    # a Python float appended to float32 is float64 in numpy (np.ravel(1.0) is float64)
    x32 = np.ones(2, np.float32)
    assert shaping.append(x32, 1.0).dtype == np.append(x32, 1.0).dtype == np.float64
    assert traced_value(lambda a: shaping.append(a, 1.0), x32).dtype == np.float64


def test_vstack_and_hstack_cast_to_dtype_under_numpys_casting_rule():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    got = shaping.vstack([a, b], dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == (2, 2)
    g = tg.grad(lambda x: tg.sum(shaping.hstack([x, b], dtype=np.float32)))(a)
    assert g.dtype == np.float64 and g.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="according to the rule 'same_kind'"):
        shaping.vstack([a, b], dtype=np.int64)
    np.testing.assert_array_equal(
        shaping.vstack([a, b], dtype=np.int64, casting="unsafe"),
        np.vstack([a, b], dtype=np.int64, casting="unsafe"),
    )


def test_column_stack_dstack_and_hstack_of_scalars_match_numpy():
    a, b = np.arange(3.0), np.arange(6.0).reshape(3, 2)
    cases = [
        (shaping.column_stack, np.column_stack, [a, b, a]),
        (shaping.dstack, np.dstack, [a, a]),
        (shaping.dstack, np.dstack, [b, b]),
        (shaping.hstack, np.hstack, [np.float64(1.0), 2.0]),
        (shaping.vstack, np.vstack, [1.0, 2.0]),
    ]
    for ours, theirs, arrays in cases:
        np.testing.assert_array_equal(ours(arrays), theirs(arrays))
        traced = traced_value(lambda *xs, ours=ours: ours(list(xs)), *map(np.asarray, arrays))
        np.testing.assert_array_equal(traced, theirs(arrays))
    with pytest.raises(TypeError, match="sequence"):
        shaping.vstack(x for x in (a, a))


def test_numpys_own_joining_and_splitting_functions_on_traced_values():
    def f(x):
        pieces = np.split(x, [1])
        top, bottom = np.broadcast_arrays(pieces[0], pieces[1])
        assert type(top) is tg.Traced and type(pieces) is list
        return tg.sum(np.vstack([top, bottom]) * np.arange(4.0).reshape(2, 2))

    g = tg.grad(f)(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0 + 1.0, 2.0 + 3.0])


def test_broadcast_arrays_keeps_an_argument_of_the_full_shape():
    def f(x, y):
        bx, by = shaping.broadcast_arrays(x, y)
        assert by is y and bx.shape == (2, 3)
        return tg.sum(bx * by)

    gx, gy = tg.grad(f, argnums=(0, 1))(np.ones((1, 3)), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(gx, [[3.0, 5.0, 7.0]])
    np.testing.assert_array_equal(gy, np.ones((2, 3)))


def test_atleast_with_several_arguments_returns_a_tuple_like_numpy():
    a, b = np.float64(2.0), np.arange(3.0)
    for ours, theirs in [
        (shaping.atleast_1d, np.atleast_1d),
        (shaping.atleast_2d, np.atleast_2d),
        (shaping.atleast_3d, np.atleast_3d),
    ]:
        got, want = ours(a, b), theirs(a, b)
        assert type(got) is type(want)
        assert [g.shape for g in got] == [w.shape for w in want]
        assert [g.shape for g in traced_value(lambda x, y, f=ours: f(x, y), a, b)] == [
            w.shape for w in want
        ]
    ga, gb = tg.grad(lambda x, y: sum(tg.sum(t) for t in shaping.atleast_3d(x, y)), argnums=(0, 1))(
        a, b
    )
    assert float(ga) == 1.0 and gb.tolist() == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------------------
# Reshaping


def test_expand_dims_with_tuple_axes():
    x = np.arange(6.0).reshape(2, 3)
    for axis in [(0, -1), (1, 3), (-4, 1)]:
        assert shaping.expand_dims(x, axis).shape == np.expand_dims(x, axis).shape
        assert traced_value(lambda a, ax=axis: shaping.expand_dims(a, ax), x).shape == (
            np.expand_dims(x, axis).shape
        )
    check_grads(
        lambda a: tg.sum(shaping.expand_dims(a, (0, 3)) * np.arange(6.0).reshape(1, 2, 3, 1)), (x,)
    )
    with pytest.raises(ValueError, match="repeated axis"):
        shaping.expand_dims(x, (1, 1))
    with pytest.raises(AxisError):
        shaping.expand_dims(x, (0, 4))


def test_moveaxis_agrees_with_numpy_for_every_source_and_destination_of_3_axes():
    for k in (1, 2, 3):
        for source in itertools.permutations(range(-3, 3), k):
            for destination in itertools.permutations(range(3), k):
                try:
                    want = np.moveaxis(X, source, destination)
                except ValueError:  # an axis repeated (as -1 and 2, say)
                    with pytest.raises(ValueError, match="repeated axis"):
                        shaping.moveaxis(X, source, destination)
                    continue
                got = shaping.moveaxis(X, list(source), list(destination))
                np.testing.assert_array_equal(got, want, err_msg=f"{source} {destination}")


def test_moveaxis_with_lists_matches_numpy_values_and_gradients():
    for source, destination in [([0, 1], [-1, -2]), ([2], [0]), (-1, 0), ((0, 2), (2, 0))]:
        want = np.moveaxis(X, source, destination)
        np.testing.assert_array_equal(shaping.moveaxis(X, source, destination), want)
        got = traced_value(lambda a, s=source, d=destination: shaping.moveaxis(a, s, d), X)
        np.testing.assert_array_equal(got, want)
    u = np.random.default_rng(1).standard_normal((4, 3, 2))
    check_grads(lambda a: tg.sum(shaping.moveaxis(a, [0, 1], [-1, -2]) * u), (X,))
    with pytest.raises(ValueError, match="must have the same number of elements"):
        shaping.moveaxis(X, [0, 1], [0])


def test_rollaxis_agrees_with_numpy_for_every_axis_and_start_of_3_axes():
    for axis in range(-3, 3):
        for start in range(-3, 4):
            want = np.rollaxis(X, axis, start)
            np.testing.assert_array_equal(shaping.rollaxis(X, axis, start), want)
            got = traced_value(lambda a, k=axis, s=start: np.rollaxis(a, k, s), X)
            np.testing.assert_array_equal(got, want, err_msg=f"{axis} {start}")
            u = np.arange(24.0).reshape(want.shape)
            g = tg.grad(lambda a, k=axis, s=start, u=u: tg.sum(np.rollaxis(a, k, s) * u))(X)
            np.testing.assert_array_equal(np.rollaxis(g, axis, start), u)  # the inverse move


def test_rollaxis_start_counts_before_the_axis_is_taken_out_and_errors_are_numpys():
    x = np.ones((2, 3, 4))
    assert shaping.rollaxis(x, 0, 3).shape == (3, 4, 2)  # start = ndim: last
    assert shaping.rollaxis(x, 0, 2).shape == (3, 2, 4)  # before the axis now at 2
    assert shaping.rollaxis(x, 2, 1).shape == (2, 4, 3)
    assert shaping.rollaxis(x, -1, -3).shape == (4, 2, 3)
    assert shaping.rollaxis(x, 1).shape == (3, 2, 4)
    with pytest.raises(AxisError, match="'start' arg requires -3 <= start < 4"):
        shaping.rollaxis(x, 0, 4)
    with pytest.raises(AxisError, match="'start' arg requires"):
        tg.grad(lambda a: tg.sum(np.rollaxis(a, 0, -4)))(x)
    with pytest.raises(AxisError):
        shaping.rollaxis(x, 3)


def test_squeeze_of_an_axis_longer_than_one_is_numpys_error():
    x = np.ones((1, 3, 1))
    for value in (x, None):
        with pytest.raises(ValueError, match="cannot select an axis to squeeze out which has "):
            if value is None:
                tg.grad(lambda a: tg.sum(shaping.squeeze(a, axis=1)))(x)
            else:
                shaping.squeeze(value, axis=1)
    assert shaping.squeeze(x, axis=(0, -1)).shape == (3,)
    with pytest.raises(AxisError):
        shaping.squeeze(x, axis=3)


def test_swapaxes_and_ravel_orders_on_traced_values_match_numpy():
    np.testing.assert_array_equal(
        traced_value(lambda a: shaping.swapaxes(a, 0, -1), X), np.swapaxes(X, 0, -1)
    )
    for order in "CF":
        np.testing.assert_array_equal(
            traced_value(lambda a, o=order: shaping.ravel(a, o), X), np.ravel(X, order)
        )
        np.testing.assert_array_equal(
            traced_value(lambda a, o=order: a.flatten(o), X), X.flatten(order)
        )
    # "K" follows memory layout: numpy's on plain arrays, refused on traced values
    np.testing.assert_array_equal(shaping.ravel(X.T, "K"), np.ravel(X.T, "K"))
    with pytest.raises(ValueError, match='use "C" or "F"'):
        tg.grad(lambda a: tg.sum(shaping.ravel(a, "K")))(X)
    with pytest.raises(AxisError):
        shaping.swapaxes(X, 0, 3)


# ---------------------------------------------------------------------------------------
# take


def test_take_with_traced_integer_indices_and_the_wrap_and_clip_modes():
    x = np.array([10.0, 20.0, 30.0])

    def f(a):
        idx = tg.cast(a > 15.0, np.int64)  # traced integers: [0, 1, 1]
        return tg.sum(shaping.take(a, idx) * np.array([1.0, 2.0, 3.0]))

    assert tg.grad(f)(x).tolist() == [1.0, 5.0, 0.0]
    idx = [-1, 3, 5, -4]
    for mode, want in [("wrap", [2, 0, 2, 2]), ("clip", [0, 2, 2, 0])]:
        np.testing.assert_array_equal(shaping.take(x, idx, mode=mode), x[want])
        np.testing.assert_array_equal(np.take(x, idx, mode=mode), x[want])
        g = tg.grad(lambda a, m=mode: tg.sum(x.take(idx, mode=m) * a.take(idx, mode=m)))(x)
        np.testing.assert_array_equal(g, np.bincount(want, x[want], minlength=3))
    with pytest.raises(AxisError):
        shaping.take(X, [0], axis=3)  # never wrapped around silently
    with pytest.raises(TypeError, match="indices must be integers"):
        shaping.take(x, [0.5])


# ---------------------------------------------------------------------------------------
# Building arrays from traced values


def test_array_of_mixed_nested_lists_has_numpys_shape_dtype_and_the_gradient():
    def build(a, b):
        return array([[1.0, a], [b, 2.0]])

    got = traced_value(build, 3.0, 4.0)
    np.testing.assert_array_equal(got, [[1.0, 3.0], [4.0, 2.0]])
    ga, gb = tg.grad(lambda a, b: tg.sum(build(a, b) * np.array([[0, 5.0], [7.0, 0]])), (0, 1))(
        3.0, 4.0
    )
    assert (float(ga), float(gb)) == (5.0, 7.0)

    # a traced vector next to a list of a traced scalar and a number
    v = np.array([1.0, 2.0])
    check_grads(lambda a, s: tg.sum(array([a, [s, 5.0], (a * s)]) ** 2), (v, 3.0), (0, 1), 2)
    assert traced_value(lambda a, s: array([a, [s, 5.0]]), v, 3.0).shape == (2, 2)


@pytest.mark.parametrize(
    ("values", "dtype", "want"),
    [
        ((np.float32(1.0), 2.0), None, np.float64),  # a Python float in a list is float64
        ((np.float32(1.0), np.float32(2.0)), None, np.float32),
        ((np.float32(1.0), 2.0), np.float32, np.float32),
        ((1.5, 2.0), np.int64, np.int64),
    ],
)
def test_array_dtype_follows_numpy(values, dtype, want):
    a, b = values
    assert np.array([[a], [b]], dtype=dtype).dtype == want
    got = traced_value(lambda x: array([[x], [b]], dtype=dtype), np.asarray(a))
    assert got.dtype == want and got.shape == (2, 1)
    np.testing.assert_array_equal(got, np.array([[a], [b]], dtype=dtype))
    if np.dtype(want).kind == "f":
        g = tg.grad(lambda x: tg.sum(array([[x], [b]], dtype=dtype)))(np.asarray(a))
        assert g.dtype == np.asarray(a).dtype and float(g) == 1.0


def test_array_and_asarray_of_a_traced_value_and_their_keywords():
    def f(x):
        assert asarray(x) is x
        copy = array(x)
        assert copy is not x and type(copy) is tg.Traced
        assert asarray(x, np.float32).dtype == np.float32
        assert array(x, ndmin=3).shape == (1, 1, 2)
        with pytest.raises(ValueError, match="Unable to avoid copy"):
            asarray(x, np.float32, copy=False)
        with pytest.raises(ValueError, match="Unable to avoid copy"):
            array([x, x], copy=False)
        with pytest.raises(ValueError, match="inhomogeneous"):
            array([x, 1.0])
        return tg.sum(copy * array([x, x], ndmin=3))

    np.testing.assert_array_equal(tg.grad(f)(np.array([1.0, 2.0])), [4.0, 8.0])
    plain = [[1, 2], [3, 4]]
    assert array(plain).dtype == np.array(plain).dtype and asarray(X) is X


def test_numpys_own_array_refuses_traced_values_and_says_what_to_use():
    with pytest.raises(TypeError, match=r"tapegrad\.numpy\.array\(\[\.\.\.\]\) or tg\.stack"):
        tg.grad(lambda x: tg.sum(np.array([x, 1.0])))(2.0)


# ---------------------------------------------------------------------------------------
# r_ and c_


def test_r_joins_traced_values_scalars_and_ranges():
    def f(x, v):
        return r_[x, 1.0, v, 0:2, [x, 2.0]]

    x, v = 3.0, np.array([4.0, 5.0])
    want = np.r_[x, 1.0, v, 0:2, [x, 2.0]]
    np.testing.assert_array_equal(traced_value(f, x, v), want)
    u = np.arange(want.size, dtype=float)
    check_grads(lambda a, b: tg.sum(f(a, b) * u), (x, v), (0, 1), 2)
    gx, gv = tg.grad(lambda a, b: tg.sum(f(a, b) * u), (0, 1))(x, v)
    assert (float(gx), gv.tolist()) == (0.0 + 6.0, [2.0, 3.0])
    # Python scalars are weak: float32 stays float32, as in numpy
    x32 = np.ones(2, np.float32)
    assert traced_value(lambda a: r_[a, 1.0], x32).dtype == np.r_[x32, 1.0].dtype == np.float32


def test_c_stacks_traced_columns():
    a, b = np.array([1.0, 2.0, 3.0]), np.arange(6.0).reshape(3, 2)

    def f(x, y):
        return c_[x, y, np.zeros(3), x * 2]

    want = np.c_[a, b, np.zeros(3), a * 2]
    np.testing.assert_array_equal(traced_value(f, a, b), want)
    u = np.random.default_rng(2).standard_normal(want.shape)
    check_grads(lambda x, y: tg.sum(f(x, y) * u), (a, b), (0, 1), 2)


def test_r_directives():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for key in ("0,2", "1,2", "0,2,0", "-1"):
        want = np.r_[key, a, b]
        np.testing.assert_array_equal(traced_value(lambda x, y, k=key: r_[k, x, y], a, b), want)
    assert r_[0:3].tolist() == [0, 1, 2]  # numpy's own without a traced value
    with pytest.raises(ValueError, match="matrix directives"):
        tg.grad(lambda x: tg.sum(r_["r", x, x]))(a)
    with pytest.raises(ValueError, match="first entry"):
        tg.grad(lambda x: tg.sum(r_[x, "0,2", x]))(a)


# ---------------------------------------------------------------------------------------
# linspace: numpy's arithmetic bit for bit on traced start and stop


def _bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, a.tobytes()


@pytest.mark.parametrize("num", [0, 1, 2, 7, 50])
@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("axis", [0, -1, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linspace_of_traced_ends_is_numpys_bit_for_bit(num, endpoint, axis, dtype):
    start = np.array([0.1, -3.7, 1e-3, 2.0], dtype)
    stop = np.array([[1.3], [7e5]], dtype)  # broadcasts against start: ends of shape (2, 4)
    for retstep in (False, True):
        ours = traced_value(
            lambda a, b, r=retstep: np.linspace(a, b, num, endpoint, r, axis=axis), start, stop
        )
        theirs = np.linspace(start, stop, num, endpoint, retstep, axis=axis)
        for o, t in zip(ours if retstep else [ours], theirs if retstep else [theirs], strict=True):
            assert _bits(o) == _bits(t)
    # a Python float next to a traced float32 end stays float32, as in numpy
    ours = traced_value(lambda b: np.linspace(0.1, b, num, endpoint, axis=axis), stop)
    assert _bits(ours) == _bits(np.linspace(0.1, stop, num, endpoint, axis=axis))


def test_linspace_takes_numpys_branch_for_zero_steps():
    # a denormal step rounds to 0: numpy computes arange / div * delta instead of
    # arange * step for every element (a branch the tape records as a where)
    start = np.array([0.0, 1.0])
    stop = np.array([5e-324, 3.0])
    assert (np.subtract(stop, start) / 9 == 0).any()
    ours = traced_value(lambda a, b: np.linspace(a, b, 10), start, stop)
    assert _bits(ours) == _bits(np.linspace(start, stop, 10))
    assert _bits(ours) != _bits(
        np.arange(10.0)[:, None] * ((stop - start) / 9) + start
    )  # the other branch differs: this test can tell them apart


def test_linspace_derivative_is_the_interpolation_weights():
    num = 5
    w = np.arange(num) / (num - 1)
    u = np.array([1.0, -2.0, 0.5, 3.0, 4.0])
    g_start, g_stop = tg.grad(lambda a, b: np.sum(np.linspace(a, b, num) * u), argnums=(0, 1))(
        0.3, 2.0
    )
    np.testing.assert_allclose(g_start, np.sum((1 - w) * u))
    np.testing.assert_allclose(g_stop, np.sum(w * u))
    # endpoint=False: div is num, the last sample is not stop
    w = np.arange(num) / num
    g_start, g_stop = tg.grad(
        lambda a, b: np.sum(np.linspace(a, b, num, endpoint=False) * u), argnums=(0, 1)
    )(0.3, 2.0)
    np.testing.assert_allclose([g_start, g_stop], [np.sum((1 - w) * u), np.sum(w * u)])
    # num=1 with endpoint: the one sample is start (0 * delta + start); the step is NaN
    g_start, g_stop = tg.grad(lambda a, b: np.linspace(a, b, 1)[0], argnums=(0, 1))(0.3, 2.0)
    assert (g_start, g_stop) == (1.0, 0.0)
    assert np.isnan(np.linspace(tg.stop_gradient(0.3), 2.0, 1, retstep=True)[1])
    # retstep: the step is (stop - start) / div
    step_grad = tg.grad(lambda a, b: np.linspace(a, b, 5, retstep=True)[1], argnums=(0, 1))
    assert step_grad(0.3, 2.0) == (-0.25, 0.25)


def test_linspace_along_an_axis_and_to_second_order():
    start, stop = np.array([[0.5, -1.0, 2.0]]), np.array([[1.5], [3.0]])
    check_grads(lambda a, b: tg.sum(np.linspace(a, b, 4, axis=-1) ** 3), (start, stop), order=2)
    check_grads(
        lambda a, b: tg.sum(np.linspace(a, b, 3, endpoint=False, retstep=True)[1] ** 3),
        (start, stop),
        order=2,
    )


def test_linspace_with_an_integer_dtype_floors_and_has_no_derivative():
    stop = np.array([7.9, -2.5])
    ours = traced_value(lambda b: np.linspace(0.0, b, 5, dtype=np.int64), stop)
    assert _bits(ours) == _bits(np.linspace(0.0, stop, 5, dtype=np.int64))
    assert _bits(tnp.linspace(0, 3, 4)) == _bits(np.linspace(0, 3, 4))  # integer ends


def test_linspace_refuses_a_negative_num():
    with pytest.raises(ValueError, match="must be non-negative"):
        tg.grad(lambda b: np.sum(np.linspace(0.0, b, -1)))(1.0)


# ---------------------------------------------------------------------------------------
# gradient: numpy's stencils, linear in f


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize(
    "spacing",
    [(), (0.5,), (0.5, 2.0), (np.array([0.0, 0.5, 1.5]), 2.0), (np.array([0, 1, 2]), 1.0)],
    ids=["none", "one", "per-axis", "coordinates", "even-integer-coordinates"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_is_numpys_bit_for_bit(edge_order, spacing, dtype):
    f = (np.arange(12.0).reshape(3, 4) ** 1.7).astype(dtype)  # 3 rows: edge_order 2's minimum
    for axis in (None, 0, -2, (1, 0)):
        # one spacing per axis of `axis`, in its order (coordinates belong to axis 0)
        given = spacing[::-1] if axis == (1, 0) else spacing
        if len(spacing) == 2 and axis in (0, -2):
            given = spacing[:1]
        kwargs = {"axis": axis, "edge_order": edge_order}
        ours = traced_value(lambda a, kw=kwargs, s=given: np.gradient(a, *s, **kw), f)
        theirs = np.gradient(f, *given, **kwargs)
        assert type(ours) is type(theirs)  # a tuple for several axes (numpy 2)
        for o, t in zip(
            *(x if isinstance(x, tuple) else (x,) for x in (ours, theirs)), strict=True
        ):
            assert _bits(o) == _bits(t)


def test_gradient_edges_on_a_length_3_axis():
    f = np.array([1.0, 4.0, 2.0])
    u = np.array([1.0, 10.0, 100.0])
    # edge_order 2: out[0] = -3/2 f0 + 2 f1 - 1/2 f2, out[1] = (f2 - f0) / 2,
    # out[2] = 1/2 f0 - 2 f1 + 3/2 f2 (h = 1); the gradient is the transposed stencil
    stencil = np.array([[-1.5, 2.0, -0.5], [-0.5, 0.0, 0.5], [0.5, -2.0, 1.5]])
    np.testing.assert_array_equal(np.gradient(f, edge_order=2), stencil @ f)
    g = tg.grad(lambda a: np.sum(np.gradient(a, edge_order=2) * u))(f)
    np.testing.assert_array_equal(g, stencil.T @ u)
    stencil1 = np.array([[-1.0, 1.0, 0.0], [-0.5, 0.0, 0.5], [0.0, -1.0, 1.0]])
    g = tg.grad(lambda a: np.sum(np.gradient(a) * u))(f)
    np.testing.assert_array_equal(g, stencil1.T @ u)


def test_gradient_in_a_traced_spacing():
    f = np.array([[1.0, 4.0, 2.0, 0.5], [3.0, -1.0, 2.0, 2.5], [0.0, 1.5, -2.0, 1.0]])
    for edge_order in (1, 2):

        def out(a, h, e=edge_order):
            return tg.sum(tg.stack(np.gradient(a, h, edge_order=e)) ** 2)

        check_grads(out, (f, 0.7), argnums=(0, 1), order=2)
        # every term is divided by h: d out / dh = -2 out / h
        np.testing.assert_allclose(tg.grad(out, argnums=1)(f, 0.7), -2 * out(f, 0.7) / 0.7)
    # one traced spacing per axis, one of them constant coordinates
    check_grads(
        lambda a, h: tg.sum(tg.stack(np.gradient(a, h, np.array([0.0, 1.0, 3.0, 3.5]))) ** 2),
        (f, 0.5),
        argnums=(0, 1),
        order=2,
    )


def test_gradient_refuses_what_numpy_refuses_and_traced_coordinates():
    f = np.ones((2, 3))
    with pytest.raises(ValueError, match="at least \\(edge_order \\+ 1\\) elements"):
        tg.grad(lambda a: tg.sum(np.gradient(a, edge_order=2)[0]))(f)
    with pytest.raises(TypeError, match="invalid number of arguments"):
        tg.grad(lambda a: tg.sum(np.gradient(a, 1.0, 2.0, 3.0)[0]))(f)
    with pytest.raises(ValueError, match="greater than 2"):
        tg.grad(lambda a: tg.sum(np.gradient(a, edge_order=3)))(np.ones(5))
    with pytest.raises(TypeError, match="coordinate arrays are not differentiated"):
        tg.grad(lambda x: tg.sum(np.gradient(np.ones(3), x)))(np.array([0.0, 1.0, 3.0]))
