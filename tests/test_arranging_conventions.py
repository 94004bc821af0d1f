"""Exact tests of the rearranging ops (``tapegrad/ops/arranging.py``): which input gets which
cotangent at sort ties, pad borders, per-element repeats, repeated picks, triangles of
stacks, diagonals with offsets and select's priority; second derivatives through every op
(the registry's second-order checks of these linear ops never trace a cotangent); errors.
"""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.ops.arranging import _argsort
from tapegrad.testing import check_grads


def _vjp(f, x, u):
    """The gradient of ``<f(x), u>`` with respect to ``x``."""
    return tg.grad(lambda a: tg.sum(f(a) * u))(x)


# ---------------------------------------------------------------------------------------
# sort


def test_sort_ties_get_the_cotangents_of_their_stable_slots():
    x = np.array([2.0, 1.0, 2.0, 1.0])
    u = np.array([10.0, 20.0, 30.0, 40.0])
    # stable order: x[1], x[3], x[0], x[2] fill slots 0, 1, 2, 3
    expected = [30.0, 10.0, 40.0, 20.0]
    for kind in (None, "quicksort", "stable"):
        assert _vjp(lambda a, kind=kind: tnp.sort(a, kind=kind), x, u).tolist() == expected
    assert _vjp(lambda a: a.sort(), x, u).tolist() == expected  # a traced value's method
    assert _vjp(np.sort, x, u).tolist() == expected  # numpy's own sort on a traced value


def test_sort_ties_in_a_long_array_follow_the_stable_order_not_quicksorts():
    x = np.tile([2.0, 1.0, 0.0, 1.0], 10)  # long enough for numpy's quicksort to reorder ties
    u = np.arange(40.0)
    slots = np.empty(40)
    slots[np.argsort(x, kind="stable")] = np.arange(40.0)  # the slot each element lands in
    assert not np.array_equal(np.argsort(x), np.argsort(x, kind="stable"))
    np.testing.assert_array_equal(_vjp(tnp.sort, x, u), u[slots.astype(int)])
    # equal elements keep their input order: earlier ones get the earlier slots
    for value in (0.0, 1.0, 2.0):
        assert np.all(np.diff(slots[x == value]) > 0)


def test_sort_ties_along_an_axis_and_flattened():
    x = np.array([[1.0, 1.0], [0.0, 1.0]])
    u = np.array([[1.0, 2.0], [3.0, 4.0]])
    # axis 0: column 0 swaps its rows, column 1 is a tie and keeps its order
    assert _vjp(lambda a: tnp.sort(a, axis=0), x, u).tolist() == [[3.0, 2.0], [1.0, 4.0]]
    # axis None sorts [1, 1, 0, 1]: slots 0..3 hold elements 2, 0, 1, 3 of the flat array
    g = _vjp(lambda a: tnp.sort(a, axis=None), x, u.ravel())
    assert g.tolist() == [[2.0, 3.0], [1.0, 4.0]]


def test_sort_of_a_traced_array_has_second_derivatives():
    w = np.array([1.0, 2.0, 3.0])

    def f(a):
        return tg.sum(w * tnp.sort(a) ** 3)

    x = np.array([0.3, -1.2, 0.7])
    rank = np.array([1, 0, 2])  # the slot each element sorts into
    np.testing.assert_allclose(tg.grad(f)(x), 3 * w[rank] * x**2)
    np.testing.assert_allclose(tg.hessian(f)(x), np.diag(6 * w[rank] * x))
    # the permutation belongs to the point: another order, another Hessian
    y = np.array([0.7, 0.3, -1.2])
    np.testing.assert_allclose(tg.hessian(f)(y), np.diag(6 * w[[2, 1, 0]] * y))
    check_grads(f, (x,), order=3)


def test_sort_records_its_permutation_so_a_tape_replays_on_new_inputs():
    u = np.array([1.0, 2.0, 3.0])

    def gradient(a):
        return tg.grad(lambda b: tg.sum(tnp.sort(b) ** 2 * u))(a)

    tape = tg.make_tape(gradient)(np.array([0.1, 0.3, 0.2]))
    assert "argsort" in {r.primitive.name for r in tape}
    new = np.array([0.3, 0.1, 0.2])
    env = {tape.inputs[0][0]: new}
    for rec in tape:
        args = [a if p is None else env[p] for a, p in zip(rec.args, rec.parents, strict=True)]
        env[rec.out] = rec.primitive.forward(*args, **rec.params)
    np.testing.assert_allclose(env[tape.output_node], 2 * new * u[[2, 0, 1]])


def test_argsort_is_recorded_with_no_derivative():
    x = np.array([3.0, 1.0, 2.0])
    picked = _vjp(lambda a: tnp.take_along_axis(a, _argsort(a), axis=-1), x, np.arange(3.0))
    assert picked.tolist() == [2.0, 0.0, 1.0]
    assert _argsort(x).tolist() == [1, 2, 0]


# ---------------------------------------------------------------------------------------
# pad

_U7 = np.array([1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6])


@pytest.mark.parametrize(
    ("mode", "kwargs", "value", "grad"),
    [
        # the border holds constants: only the interior slots send cotangents back
        ("constant", {}, [0, 0, 1, 2, 3, 4, 0], [100.0, 1e3, 1e4, 1e5]),
        ("constant", {"constant_values": 5.0}, [5, 5, 1, 2, 3, 4, 5], [100.0, 1e3, 1e4, 1e5]),
        # slots copy elements [0, 0, 0, 1, 2, 3, 3]
        ("edge", {}, [1, 1, 1, 2, 3, 4, 4], [111.0, 1e3, 1e4, 1.1e6]),
        # slots copy elements [2, 1, 0, 1, 2, 3, 2] (the edge is not repeated)
        ("reflect", {}, [3, 2, 1, 2, 3, 4, 3], [100.0, 1010.0, 1010001.0, 1e5]),
        (
            "reflect",
            {"reflect_type": "even"},
            [3, 2, 1, 2, 3, 4, 3],
            [100.0, 1010.0, 1010001.0, 1e5],
        ),
    ],
)
def test_pad_sends_the_border_cotangents_to_the_elements_they_copy(mode, kwargs, value, grad):
    x = np.array([1.0, 2.0, 3.0, 4.0])

    def f(a):
        return tnp.pad(a, (2, 1), mode, **kwargs)

    assert f(x).tolist() == value
    assert _vjp(f, x, _U7).tolist() == grad


def test_pad_corners_in_two_dimensions():
    u = np.arange(16.0).reshape(4, 4)
    # edge: each element of a 2x2 array is copied to its own 2x2 quadrant, corners included
    g = _vjp(lambda a: tnp.pad(a, 1, "edge"), np.ones((2, 2)), u)
    assert g.tolist() == [[10.0, 18.0], [42.0, 50.0]]
    # reflect: rows copy [1, 0, 1, 0] and columns [1, 0, 1, 2, 1] of a 2x3 array
    u = np.arange(20.0).reshape(4, 5)
    rows, cols = [1, 0, 1, 0], [1, 0, 1, 2, 1]
    expected = np.zeros((2, 3))
    for r, i in enumerate(rows):
        for c, j in enumerate(cols):
            expected[i, j] += u[r, c]
    np.testing.assert_array_equal(
        _vjp(lambda a: tnp.pad(a, 1, "reflect"), np.ones((2, 3)), u), expected
    )


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_has_second_derivatives(mode):
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
    check_grads(lambda a: tg.sum(tnp.pad(a, ((1, 2), (3, 1)), mode) ** 3), (x,), order=2)


@pytest.mark.parametrize("mode", ["wrap", "symmetric", "mean", "linear_ramp", "empty"])
def test_pad_names_a_mode_it_does_not_differentiate(mode):
    with pytest.raises(ValueError, match=f"tg.pad: mode '{mode}' is not supported"):
        tnp.pad(np.ones(3), 1, mode)


def test_pad_refuses_odd_reflection_foreign_keywords_and_traced_constants():
    with pytest.raises(ValueError, match="reflect_type='odd'"):
        tnp.pad(np.ones(3), 1, "reflect", reflect_type="odd")
    with pytest.raises(ValueError, match="unsupported keyword arguments for mode 'edge'"):
        tnp.pad(np.ones(3), 1, "edge", constant_values=1.0)
    with pytest.raises(TypeError, match="constant_values is not differentiated"):
        tg.grad(lambda c: tg.sum(tnp.pad(np.ones(3), 1, constant_values=c)))(1.0)
    with pytest.raises(TypeError, match="pad_width must be of integral type"):
        tnp.pad(np.ones(3), 1.5)


# ---------------------------------------------------------------------------------------
# repeat and tile


def test_repeat_with_a_count_per_element_sums_each_elements_copies():
    x = np.array([1.0, 2.0, 3.0])
    out = tnp.repeat(x, [2, 0, 3])
    assert out.tolist() == [1.0, 1.0, 3.0, 3.0, 3.0]
    u = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert _vjp(lambda a: tnp.repeat(a, [2, 0, 3]), x, u).tolist() == [3.0, 0.0, 12.0]
    assert _vjp(lambda a: a.repeat(np.array([2, 0, 3])), x, u).tolist() == [3.0, 0.0, 12.0]
    # along axis 1 of a matrix: columns [x0, x1, x1]
    u = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    g = _vjp(lambda a: tnp.repeat(a, [1, 2, 0], axis=1), np.ones((2, 3)), u)
    assert g.tolist() == [[1.0, 5.0, 0.0], [4.0, 11.0, 0.0]]


def test_repeat_with_one_count_sums_runs_of_the_flattened_array():
    u = np.arange(8.0)
    assert _vjp(lambda a: tnp.repeat(a, 2), np.ones((2, 2)), u).tolist() == [[1, 5], [9, 13]]
    assert _vjp(lambda a: tnp.repeat(a, [2]), np.ones((2, 2)), u).tolist() == [[1, 5], [9, 13]]


def test_tile_sums_the_tiles():
    u = np.arange(8.0).reshape(2, 4)
    g = _vjp(lambda a: tnp.tile(a, (2, 2)), np.ones(2), u)  # tiles of [x0, x1]
    assert g.tolist() == [0 + 2 + 4 + 6, 1 + 3 + 5 + 7]


# ---------------------------------------------------------------------------------------
# take_along_axis


def test_take_along_axis_adds_up_repeated_picks():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    idx = np.array([[2, 2, 0, -1], [1, 1, 1, 1]])
    u = np.array([[1.0, 10.0, 100.0, 1000.0], [1.0, 2.0, 3.0, 4.0]])
    assert tnp.take_along_axis(x, idx, axis=1).tolist() == [[3, 3, 1, 3], [5, 5, 5, 5]]
    g = _vjp(lambda a: tnp.take_along_axis(a, idx, axis=1), x, u)
    assert g.tolist() == [[100.0, 0.0, 1011.0], [0.0, 10.0, 0.0]]
    g = _vjp(lambda a: tnp.take_along_axis(a, np.array([3, 3, 0]), axis=None), x, np.ones(3))
    assert g.tolist() == [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]


def test_take_along_axis_with_traced_indices_from_argsort_is_sort():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
    u = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    def by_argsort(a):
        return tnp.take_along_axis(a, _argsort(a, axis=1), axis=1)

    np.testing.assert_array_equal(by_argsort(x), np.sort(x, axis=1))
    np.testing.assert_array_equal(_vjp(by_argsort, x, u), _vjp(tnp.sort, x, u))
    check_grads(lambda a: tg.sum(by_argsort(a) ** 3 * u), (x,), order=2)


def test_take_along_axis_errors():
    with pytest.raises(IndexError, match="indices must be integers"):
        tnp.take_along_axis(np.ones(3), np.array([0.0]), axis=0)
    with pytest.raises(ValueError, match="same number of dimensions"):
        tnp.take_along_axis(np.ones((2, 2)), np.array([0]), axis=0)


# ---------------------------------------------------------------------------------------
# triangles and diagonals


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_tril_and_triu_on_a_stack_of_matrices(k):
    x = np.arange(1.0, 25.0).reshape(2, 3, 4)
    u = np.arange(24.0).reshape(2, 3, 4) - 7
    i, j = np.indices((3, 4))
    lower, upper = j <= i + k, j >= i + k
    np.testing.assert_array_equal(tnp.tril(x, k), np.where(lower, x, 0))
    np.testing.assert_array_equal(tnp.triu(x, k), np.where(upper, x, 0))
    np.testing.assert_array_equal(_vjp(lambda a: tnp.tril(a, k), x, u), np.where(lower, u, 0))
    np.testing.assert_array_equal(_vjp(lambda a: tnp.triu(a, k), x, u), np.where(upper, u, 0))


def test_tril_of_a_vector_sums_the_cotangent_over_its_rows():
    # tril of a 1-d x is the matrix of rows x masked: out[i, j] = x[j] where j <= i
    u = np.arange(9.0).reshape(3, 3)
    g = _vjp(tnp.tril, np.ones(3), u)
    assert g.tolist() == [0 + 3 + 6, 4 + 7, 8]
    g = _vjp(tnp.triu, np.ones(3), u)
    assert g.tolist() == [0, 1 + 4, 2 + 5 + 8]


def test_diag_of_a_vector_with_offsets():
    u = np.arange(16.0).reshape(4, 4)
    v = np.array([1.0, 2.0])
    assert tnp.diag(v, 1).tolist() == [[0, 1, 0], [0, 0, 2], [0, 0, 0]]
    assert _vjp(lambda a: tnp.diag(a, 1), v, u[:3, :3]).tolist() == [u[0, 1], u[1, 2]]
    assert _vjp(lambda a: tnp.diag(a, -2), v, u).tolist() == [u[2, 0], u[3, 1]]


def test_diag_of_a_matrix_with_offsets():
    x = np.arange(12.0).reshape(3, 4)
    assert tnp.diag(x, 1).tolist() == [1.0, 6.0, 11.0]
    g = _vjp(lambda a: tnp.diag(a, 1), x, np.array([1.0, 2.0, 3.0]))
    assert g.tolist() == [[0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 3]]
    g = _vjp(lambda a: tnp.diag(a, -1), x, np.array([1.0, 2.0]))
    assert g.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 2, 0, 0]]
    assert _vjp(lambda a: tnp.diag(a, 5), x, np.zeros(0)).tolist() == np.zeros((3, 4)).tolist()


def test_diagonal_of_a_stack_and_diagflat():
    x = np.arange(24.0).reshape(2, 3, 4)
    out = tnp.diagonal(x, offset=-1, axis1=-1, axis2=0)  # planes (axis 2, axis 0), 3 of them
    np.testing.assert_array_equal(out, np.diagonal(x, -1, -1, 0))
    u = np.arange(1.0, 1.0 + out.size).reshape(out.shape)  # (3, 2): axis 1, then diagonal
    expected = np.zeros_like(x)
    for r in range(3):
        for d in range(2):
            expected[d, r, d + 1] = u[r, d]  # element (axis1 = d + 1, axis2 = d) of plane r
    np.testing.assert_array_equal(_vjp(lambda a: a.diagonal(-1, -1, 0), x, u), expected)
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    u = np.arange(25.0).reshape(5, 5)
    assert _vjp(lambda a: tnp.diagflat(a, -1), v, u).tolist() == [[5, 11], [17, 23]]


# ---------------------------------------------------------------------------------------
# select


def test_select_the_first_true_condition_wins_and_default_fills_the_rest():
    x = np.arange(6.0)
    conds = [x < 3, (x > 1) & (x < 5)]  # both hold at 2: the first wins
    a, b, d = x + 10, x + 20, np.array(-1.0)
    u = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    out = tnp.select(conds, [a, b], d)
    assert out.tolist() == [10, 11, 12, 23, 24, -1]
    ga, gb, gd = tg.grad(
        lambda p, q, r: tg.sum(tnp.select(conds, [p, q], r) * u), argnums=(0, 1, 2)
    )(a, b, d)
    assert ga.tolist() == [1, 2, 3, 0, 0, 0]
    assert gb.tolist() == [0, 0, 0, 4, 5, 0]
    assert gd.shape == () and float(gd) == 6.0  # the broadcast default sums its share


def test_select_with_traced_conditions_and_numpy_dtypes():
    x = np.array([-1.0, 2.0, 0.5])
    g = tg.grad(lambda a: tg.sum(np.select([a > 1, a > 0], [a * 3, a * 2], default=a)))(x)
    assert g.tolist() == [1.0, 3.0, 2.0]
    x32 = x.astype(np.float32)
    assert tnp.select([x32 > 0], [x32]).dtype == np.select([x32 > 0], [x32]).dtype
    assert tnp.select([x > 0], [1.5], 0).dtype == np.select([x > 0], [1.5], 0).dtype
    # Python numbers do not widen float32, though a where of two of them is float64
    out = tnp.select([x32 > 1, x32 > 0], [x32, 1.5], 0)
    assert out.dtype == np.float32 and out.tolist() == [0.0, 2.0, 1.5]
    with pytest.raises(TypeError, match="invalid entry 0 in condlist"):
        tnp.select([x], [x])
    with pytest.raises(ValueError, match="same length"):
        tnp.select([x > 0], [x, x])


# ---------------------------------------------------------------------------------------
# Second derivatives through every op: a cubic after the op traces the cotangent, so the
# rule's own rule runs (the registry's checks of these linear ops never do that)

_X = np.array([[0.5, -1.0, 2.0, 0.1], [1.5, 0.3, -0.7, -1.4], [0.9, -0.2, 1.1, 0.6]])
_SECOND = {
    "flip": lambda a: tnp.flip(a, axis=1),
    "fliplr": tnp.fliplr,
    "flipud": tnp.flipud,
    "roll": lambda a: tnp.roll(a, (1, -2), axis=(0, 1)),
    "roll flattened": lambda a: tnp.roll(a, 5),
    "rot90": lambda a: tnp.rot90(a, 3),
    "tile": lambda a: tnp.tile(a, (2, 1, 2)),
    "repeat": lambda a: tnp.repeat(a, [2, 0, 1, 3], axis=1),
    "pad": lambda a: tnp.pad(a, 2, "reflect"),
    "diag": lambda a: tnp.diag(tnp.diag(a, 1), -1),
    "diagonal": lambda a: tnp.diagonal(a, -1),
    "diagflat": tnp.diagflat,
    "tril": lambda a: tnp.tril(a, 1),
    "triu": tnp.triu,
    "take_along_axis": lambda a: tnp.take_along_axis(a, np.array([[0, 0, 2, 0]]), axis=0),
    "sort": lambda a: tnp.sort(a, axis=0),
    "select": lambda a: tnp.select([_X > 0, _X > -1], [a, a * 2], default=a[0]),
}


@pytest.mark.parametrize("name", sorted(_SECOND))
def test_second_derivatives_through_each_op(name):
    op = _SECOND[name]
    check_grads(lambda a: tg.sum(op(a) ** 3), (_X,), order=2)


def test_flips_need_enough_dimensions():
    with pytest.raises(ValueError, match=r"tg\.fliplr: input must be >= 2-d"):
        tnp.fliplr(np.ones(3))
    with pytest.raises(ValueError, match=r"tg\.flipud"):
        tnp.flipud(np.float64(1.0))


# ---------------------------------------------------------------------------------------
# partition


def _slot_of_each_input(x, out):
    """Where each element of ``x`` went in ``out`` (distinct values)."""
    return np.array([np.flatnonzero(out == v)[0] for v in x])


@pytest.mark.parametrize("kth", [0, 3, 60, -1, (2, 7), [1, -2]])
def test_partition_sends_each_slot_back_to_the_element_it_holds(kth):
    # numpy's argpartition may order the other elements differently from partition (it
    # does for all of these arrays with an int kth, numpy 2.4): scattering through its
    # positions would give wrong gradients, so the rule must not use them
    u = np.arange(120.0)
    for seed in range(10):
        x = np.random.default_rng(seed).standard_normal(120)  # distinct values
        expected = u[_slot_of_each_input(x, np.partition(x, kth))]
        np.testing.assert_array_equal(_vjp(lambda a: np.partition(a, kth), x, u), expected)
        np.testing.assert_array_equal(_vjp(lambda a: tnp.partition(a, kth), x, u), expected)


def test_partition_along_axes_and_flattened():
    x = np.random.default_rng(2).permutation(24).reshape(2, 3, 4) / 5.0
    u = np.random.default_rng(3).standard_normal((2, 3, 4))
    for axis in (0, 1, -1):
        out = np.partition(x, 1, axis=axis)
        assert _bits_equal(tg.vjp(lambda a, ax=axis: tnp.partition(a, 1, axis=ax), x)[0], out)
        g = _vjp(lambda a, ax=axis: np.partition(a, 1, axis=ax), x, u)
        # each element's cotangent is u at the slot holding its value (values are distinct)
        np.testing.assert_array_equal(g, np.vectorize(lambda v, o=out: u[o == v][0])(x))
    out = np.partition(x, (3, 10), axis=None)
    g = _vjp(lambda a: np.partition(a, (3, 10), axis=None), x, u.ravel())
    np.testing.assert_array_equal(g.ravel(), u.ravel()[_slot_of_each_input(x.ravel(), out)])


def _bits_equal(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_partition_ties_follow_sorts_convention():
    x = np.array([2.0, 1.0, 2.0, 1.0, 0.0])
    u = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    # sorted: 0, 1, 1, 2, 2. The two 1s (inputs 1 and 3, in input order) take the slots
    # holding 1 in output order; the same for the 2s (inputs 0 and 2)
    out = np.partition(x, 2)
    g = _vjp(lambda a: np.partition(a, 2), x, u)
    ones, twos = np.flatnonzero(out == 1.0), np.flatnonzero(out == 2.0)
    assert g[[1, 3]].tolist() == u[ones].tolist() and g[[0, 2]].tolist() == u[twos].tolist()
    assert g[4] == u[np.flatnonzero(out == 0.0)[0]]
    # as sort: with the slots in sorted order the two rules agree
    np.testing.assert_array_equal(
        _vjp(lambda a: tnp.partition(a, [0, 1, 2, 3, 4]), x, u), _vjp(tnp.sort, x, u)
    )


def test_partition_has_second_derivatives_and_replays_under_jit():
    w = np.array([1.0, 2.0, 3.0, 4.0])

    def f(a):
        return tg.sum(w * np.partition(a, 1) ** 3)

    x = np.array([0.3, -1.2, 0.7, 2.0])
    check_grads(f, (x,), order=2)
    step = tg.jit(tg.grad(f))
    for y in (x, np.array([2.0, 0.7, -1.2, 0.3]), np.array([-1.0, 3.0, 0.1, -2.0])):
        np.testing.assert_array_equal(step(y), tg.grad(f)(y))


def test_argpartition_of_a_traced_value_is_a_recorded_index():
    x = np.array([0.5, -1.0, 2.0, 0.0])
    g = tg.grad(lambda a: a[np.argpartition(a, 0)[0]] * 3.0)(x)
    assert g.tolist() == [0.0, 3.0, 0.0, 0.0]


def test_partition_refusals():
    x = np.array([1.0, 3.0, 2.0])
    with pytest.raises(TypeError, match="partitions x in place"):
        tg.grad(lambda a: tg.sum(a.partition(1)))(x)
    with pytest.raises(ValueError, match="kind must be 'introselect'"):
        tg.grad(lambda a: tg.sum(np.partition(a, 1, kind="quicksort")))(x)
    with pytest.raises(ValueError, match="order="):
        tg.grad(lambda a: tg.sum(np.partition(a, 1, order="f")))(x)
    with pytest.raises(ValueError, match="booleans"):
        tg.grad(lambda a: tg.sum(np.partition(a, True)))(x)
    with pytest.raises(ValueError):  # numpy's own error: kth out of bounds
        tg.grad(lambda a: tg.sum(np.partition(a, 5)))(x)
