"""Exact conventions of the elementwise ops at kinks, ties, jumps and special values, and
their numpy-specific behaviour (keywords, aliases, dtypes, sign conventions).

The registry tests (tests/test_registry.py) check every op on random inputs kept away from
these points; here each chosen value at such a point is pinned.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad import ops


def grad_sum(fn, argnums=0):
    """The gradient of ``sum(fn(*args))``."""
    return tg.grad(lambda *a: tg.sum(fn(*a)), argnums=argnums)


def second_derivatives(fn):
    """The second derivatives of an elementwise ``fn``: the diagonal of its Hessian."""
    return tg.grad(lambda a: tg.sum(grad_sum(fn)(a)))


def traced_value(fn, *args):
    """``fn(*args)`` computed with every argument traced: the result's concrete value."""
    out, _ = tg.vjp(fn, *args)
    return out


# ---------------------------------------------------------------------------------------
# clip: a keeps the gradient at its bounds (PyTorch's clamp); the bounds get it where they
# clip; a_max wins where the bounds cross


def test_clip_gives_a_the_gradient_between_and_at_its_bounds():
    a = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(grad_sum(lambda x: ops.clip(x, 0.0, 1.0))(a), [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(grad_sum(lambda x: ops.clip(x, 0.0, None))(a), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(grad_sum(lambda x: ops.clip(x, None, 1.0))(a), [1, 1, 1, 1, 0])


def test_clip_sends_the_gradient_to_the_bound_that_clips_with_broadcasting():
    a = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    lo, hi = np.array(0.0), np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    ga, glo, ghi = grad_sum(ops.clip, argnums=(0, 1, 2))(a, lo, hi)
    np.testing.assert_array_equal(ga, [0, 1, 1, 1, 0])
    assert glo.shape == () and float(glo) == 1.0  # only -1 is below: ties stay with a
    np.testing.assert_array_equal(ghi, [0, 0, 0, 0, 1])


def test_clip_with_crossed_bounds_gives_everything_to_a_max_as_numpy_returns_it():
    a, lo, hi = np.array([-1.0, 0.5, 3.0]), np.array([2.0, 2.0, 2.0]), np.array([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(ops.clip(a, lo, hi), np.clip(a, lo, hi))
    ga, glo, ghi = grad_sum(ops.clip, argnums=(0, 1, 2))(a, lo, hi)
    assert ga.tolist() == [0, 0, 0] and glo.tolist() == [0, 0, 0] and ghi.tolist() == [1, 1, 1]


def test_clip_with_equal_bounds_at_a_gives_the_gradient_to_a():
    a = np.array([1.0])
    ga, glo, ghi = grad_sum(ops.clip, argnums=(0, 1, 2))(a, np.array([1.0]), np.array([1.0]))
    assert ga.tolist() == [1.0] and glo.tolist() == [0.0] and ghi.tolist() == [0.0]


def test_clip_accepts_numpys_keywords_and_refuses_what_numpy_refuses():
    a = np.array([-1.0, 0.5, 2.0])
    for call in (
        lambda f: f(a, a_min=0.0, a_max=1.0),
        lambda f: f(a, min=0.0, max=1.0),
        lambda f: f(a, max=1.0),
        lambda f: f(a, min=0.0),
        lambda f: f(a, None, 1.0),
        lambda f: f(a),
    ):
        np.testing.assert_array_equal(call(ops.clip), call(np.clip))
    with pytest.raises(TypeError, match="a_max"):
        ops.clip(a, 0.0)
    with pytest.raises(ValueError, match="not both"):
        ops.clip(a, 0.0, 1.0, min=0.0)


def test_clip_through_numpy_and_the_method_with_keyword_bounds():
    a = np.array([-1.0, 0.5, 2.0])
    for f, expected in (
        (lambda x: np.clip(x, min=0.0), [0, 1, 1]),
        (lambda x: np.clip(x, None, 1.0), [1, 1, 0]),
        (lambda x: x.clip(max=1.0), [1, 1, 0]),
        (lambda x: x.clip(0.0, 1.0), [0, 1, 0]),
        (lambda x: tnp.clip(x, a_min=0.0, a_max=1.0), [0, 1, 0]),
    ):
        np.testing.assert_array_equal(grad_sum(f)(a), expected)


def test_clip_keeps_float32_with_python_float_bounds():
    a = np.array([-1.0, 0.5, 2.0], np.float32)
    out = ops.clip(a, 0.0, 1.0)
    assert out.dtype == np.float32 and out.dtype == np.clip(a, 0.0, 1.0).dtype
    value, g = tg.value_and_grad(lambda x: tg.sum(ops.clip(x, 0.0, 1.0)))(a)
    assert value.dtype == np.float32 and g.dtype == np.float32
    assert g.tolist() == [0.0, 1.0, 0.0]


# ---------------------------------------------------------------------------------------
# fmax and fmin: ties share the cotangent; a NaN input gets none


def test_fmax_and_fmin_split_ties_and_skip_nan():
    x = np.array([1.0, 2.0, np.nan, np.nan, 3.0, 4.0])
    y = np.array([1.0, 3.0, 1.0, np.nan, np.nan, 0.0])
    np.testing.assert_array_equal(ops.fmax(x, y), np.fmax(x, y))
    np.testing.assert_array_equal(ops.fmin(x, y), np.fmin(x, y))
    gx, gy = grad_sum(ops.fmax, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(gy, [0.5, 1, 1, 0, 0, 0])
    gx, gy = grad_sum(ops.fmin, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(gy, [0.5, 0, 1, 0, 0, 1])


def test_fmax_with_a_broadcast_scalar_sums_its_share():
    g = grad_sum(lambda c: ops.fmax(np.array([0.0, 1.0, 2.0, np.nan]), c))(1.0)
    assert float(g) == 2.5  # wins at 0, ties at 1, loses at 2, wins against NaN


# ---------------------------------------------------------------------------------------
# sinc at and near 0


def test_sinc_at_zero_is_one_with_derivatives_of_the_series():
    assert ops.sinc(0.0) == 1.0
    assert tg.grad(ops.sinc)(0.0) == 0.0
    np.testing.assert_allclose(tg.grad(tg.grad(ops.sinc))(0.0), -(math.pi**2) / 3, rtol=1e-15)
    assert tg.grad(tg.grad(tg.grad(ops.sinc)))(0.0) == 0.0  # sinc is even


def _sinc_second_derivative(x):
    """sinc''(x) = -pi^2 sinc(x) - 2 sinc'(x) / x, sinc'(x) = (cos(pi x) - sinc(x)) / x."""
    s = np.sinc(x)
    return -(math.pi**2) * s - 2 * (np.cos(math.pi * x) - s) / x**2


def test_sinc_derivatives_are_smooth_across_the_series_switch_and_finite_near_zero():
    d1, d2 = tg.grad(ops.sinc), tg.grad(tg.grad(ops.sinc))
    for x in (0.05, 0.1 - 1e-9, 0.1 + 1e-9, 0.5, -1.5):
        np.testing.assert_allclose(d1(x), (np.cos(math.pi * x) - np.sinc(x)) / x, rtol=1e-12)
        np.testing.assert_allclose(d2(x), _sinc_second_derivative(x), rtol=1e-10)
    for x in (1e-300, 1e-8, -1e-8):  # the Taylor series: no cancellation, no 0/0
        np.testing.assert_allclose(d1(x), -(math.pi**2) / 3 * x, rtol=1e-12)
        np.testing.assert_allclose(d2(x), -(math.pi**2) / 3, rtol=1e-12)
    x32 = np.array([0.0, 0.05, 0.5], np.float32)
    g = grad_sum(ops.sinc)(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [0.0, d1(0.05), d1(0.5)], rtol=1e-5)


# ---------------------------------------------------------------------------------------
# Zero derivatives: heaviside, rounding, floor_divide, sign


def test_heaviside_has_zero_derivative_in_x_and_the_mask_of_zeros_in_h0():
    x = np.array([-1.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(ops.heaviside(x, 0.5), np.heaviside(x, 0.5))
    gx, gh = grad_sum(ops.heaviside, argnums=(0, 1))(x, np.full(4, 0.5))
    assert gx.tolist() == [0, 0, 0, 0] and gh.tolist() == [0, 1, 0, 1]
    gh = grad_sum(lambda h: np.heaviside(x, h))(0.5)  # numpy's ufunc, a broadcast h0
    assert float(gh) == 2.0


@pytest.mark.parametrize(
    "fn", [ops.floor, ops.ceil, ops.trunc, ops.rint, ops.round, ops.around, ops.sign]
)
def test_piecewise_constant_functions_have_zero_derivative_at_their_jumps_too(fn):
    x = np.array([-2.5, -1.0, -0.5, 0.0, 0.5, 1.5, 2.0, 2.7])
    np.testing.assert_array_equal(fn(x), getattr(np, fn.__name__)(x))
    g = grad_sum(lambda a: fn(a) * a)(x)  # d(f(a) a)/da = f(a) when f' = 0
    np.testing.assert_array_equal(g, fn(x))
    assert second_derivatives(lambda a: fn(a) * a * a)(x).tolist() == (2 * fn(x)).tolist()


def test_round_takes_decimals_as_numpy_and_works_as_a_method_and_through_numpy():
    x = np.array([1.25, -0.35, 2.449, 15.0, 25.0])
    for decimals in (-1, 0, 1, 2):
        np.testing.assert_array_equal(ops.round(x, decimals), np.round(x, decimals))
        np.testing.assert_array_equal(ops.around(x, decimals=decimals), np.around(x, decimals))
    for f in (
        lambda a: a.round(1),
        lambda a: np.round(a, decimals=1),
        lambda a: np.around(a, 1),
        lambda a: tnp.round(a, 1),
    ):
        value, g = tg.value_and_grad(lambda a, f=f: tg.sum(f(a) * a))(x)
        np.testing.assert_allclose(value, np.sum(np.round(x, 1) * x))
        np.testing.assert_array_equal(g, np.round(x, 1))


def test_floor_divide_has_zero_derivative_and_numpys_values():
    x, y = np.array([5.5, -5.5, 5.5, -5.5, 6.0]), np.array([2.0, 2.0, -2.0, -2.0, 2.0])
    np.testing.assert_array_equal(ops.floor_divide(x, y), np.floor_divide(x, y))
    gx, gy = grad_sum(ops.floor_divide, argnums=(0, 1))(x, y)
    assert gx.tolist() == [0.0] * 5 and gy.tolist() == [0.0] * 5
    gx = grad_sum(lambda a: np.floor_divide(a, y) * a)(x)
    np.testing.assert_array_equal(gx, np.floor_divide(x, y))


# ---------------------------------------------------------------------------------------
# Remainders: numpy's sign conventions, d/dy = -floor(x / y) or -trunc(x / y)


X = np.array([5.5, -5.5, 5.5, -5.5, 0.75])
Y = np.array([2.0, 2.0, -2.0, -2.0, 0.5])


def test_mod_follows_the_sign_of_the_divisor_and_its_gradient_the_floor():
    np.testing.assert_array_equal(ops.mod(X, Y), [1.5, 0.5, -0.5, -1.5, 0.25])
    np.testing.assert_array_equal(ops.mod(X, Y), np.mod(X, Y))
    assert ops.mod is ops.remainder and tnp.mod is ops.remainder
    for f in (ops.mod, np.mod, np.remainder, tnp.remainder):
        gx, gy = grad_sum(f, argnums=(0, 1))(X, Y)
        np.testing.assert_array_equal(gx, np.ones(5), err_msg=str(f))
        np.testing.assert_array_equal(gy, [-2.0, 3.0, 3.0, -2.0, -1.0], err_msg=str(f))


def test_fmod_follows_the_sign_of_the_dividend_and_its_gradient_the_truncation():
    np.testing.assert_array_equal(ops.fmod(X, Y), [1.5, -1.5, 1.5, -1.5, 0.25])
    np.testing.assert_array_equal(ops.fmod(X, Y), np.fmod(X, Y))
    for f in (ops.fmod, np.fmod):
        gx, gy = grad_sum(f, argnums=(0, 1))(X, Y)
        np.testing.assert_array_equal(gx, np.ones(5))
        np.testing.assert_array_equal(gy, [-2.0, 2.0, 2.0, -2.0, -1.0])


def test_mod_with_a_python_divisor_keeps_float32():
    x = np.array([5.5, -5.5], np.float32)
    assert ops.mod(x, 2.0).dtype == np.float32
    g = grad_sum(lambda a: np.mod(a, 2.0) * 3.0)(x)
    assert g.dtype == np.float32 and g.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------------------------------
# nan_to_num, hypot, arctan2, cbrt, float_power at their special values


def test_nan_to_num_passes_the_gradient_where_x_is_finite_only():
    x = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])
    np.testing.assert_array_equal(ops.nan_to_num(x), np.nan_to_num(x))
    kw = {"nan": 7.0, "posinf": 8.0, "neginf": -9.0}
    np.testing.assert_array_equal(ops.nan_to_num(x, **kw), [1.0, 7.0, 8.0, -9.0, -2.0])
    for f in (ops.nan_to_num, np.nan_to_num, lambda a: tnp.nan_to_num(a, copy=False, **kw)):
        np.testing.assert_array_equal(grad_sum(f)(x), [1.0, 0.0, 0.0, 0.0, 1.0])
    assert np.isnan(x[1])  # copy=False never changes a traced value's array


def test_nan_to_num_copy_false_replaces_in_place_on_plain_arrays_as_numpy():
    x = np.array([np.nan, 1.0])
    out = ops.nan_to_num(x, copy=False)
    assert out is x and x.tolist() == [0.0, 1.0]


def test_hypot_and_arctan2_have_zero_gradient_at_the_origin_and_no_nan_above():
    x, y = np.array([0.0, 3.0]), np.array([0.0, 4.0])
    gx, gy = grad_sum(ops.hypot, argnums=(0, 1))(x, y)
    assert gx.tolist() == [0.0, 0.6] and gy.tolist() == [0.0, 0.8]
    gy, gx = grad_sum(ops.arctan2, argnums=(0, 1))(y, x)
    np.testing.assert_allclose(gy, [0.0, 3 / 25])
    np.testing.assert_allclose(gx, [0.0, -4 / 25])
    for f in (ops.hypot, ops.arctan2):
        h = second_derivatives(lambda a, f=f: f(a, a))(np.array([0.0, 1.0]))
        assert np.all(np.isfinite(h))


def test_cbrt_is_zero_at_zero_with_infinite_derivative():
    x = np.array([0.0, -8.0, 27.0])
    np.testing.assert_array_equal(ops.cbrt(x), np.cbrt(x))
    with np.errstate(divide="ignore"):
        g = grad_sum(ops.cbrt)(x)
    np.testing.assert_allclose(g, [np.inf, 1 / 12, 1 / 27])


def test_float_power_computes_in_float64_and_returns_float32_gradients():
    x, y = np.array([2.0, 3.0], np.float32), np.array([3.0, 0.5], np.float32)
    assert ops.float_power(x, y).dtype == np.float64 == np.float_power(x, y).dtype
    gx, gy = grad_sum(ops.float_power, argnums=(0, 1))(x, y)
    assert gx.dtype == gy.dtype == np.float32
    np.testing.assert_allclose(gx, [12.0, 0.5 / np.sqrt(3.0)], rtol=1e-6)
    np.testing.assert_allclose(gy, [8 * np.log(2.0), np.sqrt(3.0) * np.log(3.0)], rtol=1e-6)


# ---------------------------------------------------------------------------------------
# numpy's separate ufuncs with the same values, and the functions as numpy reaches them


@pytest.mark.parametrize(
    ("name", "alias"), [("deg2rad", "radians"), ("rad2deg", "degrees"), ("round", "around")]
)
def test_numpys_twin_functions_are_both_tapegrads(name, alias):
    assert getattr(np, name) is not getattr(np, alias)  # separate objects in numpy
    assert getattr(tnp, name) is getattr(ops, name) and getattr(tnp, alias) is getattr(ops, alias)
    x = np.array([0.3, -1.7, 90.0])
    g1 = grad_sum(lambda a: getattr(np, name)(a) * a)(x)
    g2 = grad_sum(lambda a: getattr(np, alias)(a) * a)(x)
    np.testing.assert_array_equal(g1, g2)


def test_angle_conversions_have_the_exact_constant_derivative():
    x = np.array([1.0, -30.0])
    assert grad_sum(ops.deg2rad)(x).tolist() == [math.pi / 180] * 2
    assert grad_sum(ops.degrees)(x).tolist() == [180 / math.pi] * 2


def test_positive_and_fabs_as_numpy():
    x = np.array([-2.0, 0.0, 3.0])
    out = ops.positive(x)
    assert out is not x and out.tolist() == x.tolist()
    assert grad_sum(np.positive)(x).tolist() == [1.0, 1.0, 1.0]
    assert ops.fabs(np.array([-2, 3])).dtype == np.fabs(np.array([-2, 3])).dtype == np.float64
    assert grad_sum(np.fabs)(x).tolist() == [-1.0, 0.0, 1.0]  # fabs'(0) = 0, as abs


# ---------------------------------------------------------------------------------------
# The parts of real numbers: real, conj and real_if_close are the identity, imag is 0,
# angle is 0 or pi; iscomplex and isreal are recorded booleans


def _parts():
    """Each way in to the parts of a number, with its derivative on real inputs."""
    return [
        (np.real, 1.0),
        (lambda a: a.real, 1.0),
        (tnp.real, 1.0),
        (np.conj, 1.0),
        (np.conjugate, 1.0),
        (lambda a: a.conj(), 1.0),
        (lambda a: a.conjugate(), 1.0),
        (np.real_if_close, 1.0),
        (np.imag, 0.0),
        (lambda a: a.imag, 0.0),
        (tnp.imag, 0.0),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_real_conj_and_imag_of_real_values_are_the_value_and_zero(dtype):
    x = np.array([[-1.5, 0.0], [2.0, -0.25]], dtype)
    w = np.array([[1.0, 2.0], [3.0, 4.0]], dtype)
    for k, (f, slope) in enumerate(_parts()):
        value, g = tg.value_and_grad(lambda a, f=f: tg.sum(f(a) * w))(x)
        out = traced_value(f, x)
        assert out.shape == x.shape and out.dtype == dtype, k
        np.testing.assert_array_equal(out, x * slope, err_msg=str(k))
        assert value.dtype == dtype and g.dtype == dtype, k
        np.testing.assert_array_equal(g, w * slope, err_msg=str(k))
    assert ops.conj is ops.conjugate and tnp.conj is ops.conjugate and tg.conj is ops.conjugate


def test_real_if_close_returns_a_real_argument_itself_and_complex_ones_to_numpy():
    x = np.array([1.0, -2.0])
    assert ops.real_if_close(x) is x
    z = np.array([1.0 + 1e-20j, 2.0])
    np.testing.assert_array_equal(ops.real_if_close(z), np.real_if_close(z))
    assert ops.real_if_close(z).dtype == np.float64
    assert ops.real_if_close(z + 1j).dtype == np.complex128
    with pytest.raises(TypeError, match="complex traced value"):
        tg.jit(lambda a: np.real_if_close(a))(z)


def test_angle_of_real_values_is_0_or_pi_as_numpy_and_its_derivative_is_0_at_zero_too():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan])
    for deg, half_turn in ((False, math.pi), (True, 180.0)):
        want = [half_turn, half_turn, 0.0, 0.0, np.nan]
        np.testing.assert_array_equal(ops.angle(x, deg=deg), want)
        np.testing.assert_array_equal(ops.angle(x, deg), np.angle(x, deg))
        np.testing.assert_array_equal(traced_value(lambda a, d=deg: np.angle(a, deg=d), x), want)
    finite = x[:4]
    for f in (ops.angle, np.angle, lambda a: np.angle(a, deg=True)):
        assert grad_sum(f)(finite).tolist() == [0.0] * 4
        np.testing.assert_array_equal(grad_sum(lambda a, f=f: f(a) * a)(finite), f(finite))
        h = second_derivatives(lambda a, f=f: f(a) * a * a)(finite)
        np.testing.assert_array_equal(h, 2 * f(finite))


def test_angle_keeps_float32_and_gives_integers_float64_as_numpy():
    x32 = np.array([-1.0, 2.0], np.float32)
    for deg in (False, True):
        assert ops.angle(x32, deg=deg).dtype == np.float32 == np.angle(x32, deg=deg).dtype
    assert ops.angle(np.array([-1, 2])).dtype == np.float64
    assert grad_sum(np.angle)(x32).dtype == np.float32


def test_iscomplex_and_isreal_of_real_values_and_their_obj_twins():
    x = np.array([[1.0, 0.0], [-2.0, np.nan]])
    for f, want in ((np.iscomplex, False), (np.isreal, True), (tnp.iscomplex, False)):
        out = traced_value(f, x)
        assert out.dtype == np.bool_ and out.shape == x.shape and (out == want).all()
    assert ops.isreal(np.float64(1.0)) is np.True_ and ops.iscomplex(2.0) is np.False_
    seen = {}

    def f(a):
        seen["obj"] = (np.iscomplexobj(a), np.isrealobj(a))
        return tg.sum(tg.where(np.isreal(a) & ~np.iscomplex(a), a * a, 0.0))

    assert grad_sum(f)(x[0]).tolist() == [2.0, 0.0]
    assert seen["obj"] == (False, True)
    assert {"isreal", "iscomplex"} <= {r.primitive.name for r in tg.make_tape(f)(x[0])}


def test_a_compiled_function_recomputes_iscomplex_and_isreal():
    f = tg.jit(lambda z, a: tg.where(np.iscomplex(z), a, 0.0) + tg.where(np.isreal(z), 0.0, a))
    a = np.array([1.0, 2.0, 3.0])
    for z in (np.array([1j, 2, 3]), np.array([1, 2j, 3 + 0j])):
        np.testing.assert_array_equal(f(z, a), np.where(np.iscomplex(z), 2 * a, 0.0))
    assert f.compiled == 1


def test_complex_values_stay_undifferentiated_with_the_same_errors():
    z = np.array([1.0 + 2.0j])
    with pytest.raises(TypeError, match="cannot differentiate with respect to"):
        tg.grad(lambda a: tg.sum(np.real(a)))(z)
    with pytest.raises(TypeError, match="complex result on a traced input"):
        tg.grad(lambda a: tg.sum(np.imag(a * 1j)))(np.array([1.0]))
    with pytest.raises(TypeError, match="complex result on a traced input"):
        tg.jit(lambda a: np.conj(a))(z)
