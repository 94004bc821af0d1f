"""vjp, jvp, jacobian, hessian, hvp, stop_gradient and user-defined primitives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapegrad as tg
from tapegrad.testing import arrays, check_grads, shapes


def vector_fn(x, A):
    """A vector-valued composition R^n -> R^m."""
    return tg.concatenate([tg.tanh(A @ x), tg.exp(x[:1]) * tg.sum(x**2, keepdims=True)])


def fd_jacobian(f, x, eps=1e-6):
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = eps
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))).ravel() / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(f(x)) + x.shape)


@st.composite
def problem(draw):
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x = draw(arrays((n,)))
    A = draw(arrays((m, n)))
    v = draw(arrays((n,)))
    u = draw(arrays((m + 1,)))
    return x, A, v, u


@given(p=problem())
def test_jacobian_matches_finite_differences_and_jvp_vjp_agree(p):
    x, A, v, u = p
    J = tg.jacobian(vector_fn)(x, A)
    assert J.shape == (A.shape[0] + 1, x.size)
    np.testing.assert_allclose(J, fd_jacobian(lambda z: vector_fn(z, A), x), rtol=1e-6, atol=1e-8)
    out, tangent = tg.jvp(lambda z: vector_fn(z, A), (x,), (v,))
    np.testing.assert_allclose(out, vector_fn(x, A))
    np.testing.assert_allclose(tangent, J @ v, rtol=1e-10, atol=1e-12)
    out, pullback = tg.vjp(vector_fn, x, A)
    ct_x, ct_A = pullback(u)
    np.testing.assert_allclose(ct_x, u @ J, rtol=1e-10, atol=1e-12)
    JA = tg.jacobian(vector_fn, argnums=1)(x, A)
    np.testing.assert_allclose(ct_A, np.tensordot(u, JA, axes=1), rtol=1e-10, atol=1e-12)


@given(x=arrays(shapes(min_dims=1, max_dims=2)), data=st.data())
def test_hessian_of_a_quadratic_form_is_a_plus_a_transpose(x, data):
    n = x.size
    A = data.draw(arrays((n, n)))
    H = tg.hessian(lambda z: tg.reshape(z, (-1,)) @ A @ tg.reshape(z, (-1,)))(x)
    assert H.shape == x.shape + x.shape
    np.testing.assert_allclose(H.reshape(n, n), A + A.T, rtol=1e-12, atol=1e-12)


def scalar_fn(x, y):
    return tg.sum(tg.tanh(x) * tg.sigmoid(y)) + tg.logsumexp(x * y) + tg.sum(x**3) / 3


@given(p=problem())
def test_hessian_is_symmetric_matches_differences_and_hvp(p):
    x, _, v, _ = p
    y = np.linspace(-1, 1, x.size)
    H = tg.hessian(scalar_fn)(x, y)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        H, fd_jacobian(lambda z: tg.grad(scalar_fn)(z, y), x), rtol=1e-5, atol=1e-7
    )
    hv_x, hv_y = tg.hvp(scalar_fn, (x, y), (v, np.zeros_like(y)))
    np.testing.assert_allclose(hv_x, H @ v, rtol=1e-10, atol=1e-12)
    Hxy = tg.jacobian(tg.grad(scalar_fn, argnums=1), argnums=0)(x, y)
    np.testing.assert_allclose(hv_y, Hxy @ v, rtol=1e-10, atol=1e-12)


def test_pytree_jacobian_hessian_and_hvp():
    params = {"a": np.array([1.0, 2.0]), "b": np.array(3.0)}

    def f(p):
        return tg.sum(p["a"] ** 2) * p["b"]

    H = tg.hessian(f)(params)
    np.testing.assert_allclose(H["a"]["a"], 2 * 3.0 * np.eye(2))
    np.testing.assert_allclose(H["a"]["b"], [2.0, 4.0])
    np.testing.assert_allclose(H["b"]["b"], 0.0)
    v = {"a": np.array([1.0, 0.0]), "b": np.array(1.0)}
    (hv,) = tg.hvp(f, (params,), (v,))
    np.testing.assert_allclose(hv["a"], H["a"]["a"] @ v["a"] + H["a"]["b"] * v["b"])
    np.testing.assert_allclose(hv["b"], H["b"]["a"] @ v["a"])
    out, pullback = tg.vjp(lambda p: {"sq": p["a"] ** 2, "b": p["b"]}, params)
    np.testing.assert_array_equal(out["sq"], [1.0, 4.0])
    (ct,) = pullback({"sq": np.ones(2), "b": np.array(2.0)})
    np.testing.assert_allclose(ct["a"], [2.0, 4.0])
    assert float(ct["b"]) == 2.0


def test_jacobian_of_a_boolean_or_integer_output_is_a_type_error():
    # as grad: a comparison or a count has no derivative (JAX's jacrev refuses too)
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="real floating-point outputs, got bool"):
        tg.jacobian(lambda a: {"y": a * 2, "mask": a > 1})(x)
    with pytest.raises(TypeError, match="got int64"):
        tg.jacobian(lambda a: (a > 1).astype(np.int64))(x)
    np.testing.assert_array_equal(tg.jacobian(lambda a: a * 2)(x), 2 * np.eye(2))


def test_vjp_can_be_called_many_times_and_checks_its_cotangent():
    out, pullback = tg.vjp(lambda x: x * 2.0, np.ones(3))
    assert type(out) is np.ndarray and out.tolist() == [2.0] * 3
    np.testing.assert_array_equal(pullback(np.ones(3))[0], [2.0] * 3)
    np.testing.assert_array_equal(pullback(np.arange(3.0))[0], [0.0, 2.0, 4.0])
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        pullback(np.ones(2))


def test_jvp_and_hvp_check_their_tangents():
    with pytest.raises(ValueError, match="tangent"):
        tg.jvp(tg.exp, (np.ones(2),), (np.ones(3),))
    with pytest.raises(ValueError, match="tangents"):
        tg.hvp(lambda x: tg.sum(x), (np.ones(2),), ())


# ---------------------------------------------------------------------------------------
# stop_gradient


def test_stop_gradient_zeroes_exactly_the_stopped_path():
    def f(x):
        return tg.sum(x * tg.stop_gradient(x)) + tg.sum(tg.stop_gradient(tg.exp(x)))

    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(tg.grad(f)(x), x)  # d(x * c)/dx = c = x; the exp path: 0
    assert float(tg.grad(lambda z: tg.stop_gradient(z) ** 2)(3.0)) == 0.0
    # it also stops outer levels of a nested transform
    assert (
        float(tg.grad(lambda a: tg.grad(lambda b: b * tg.stop_gradient(a) ** 2)(1.0))(3.0)) == 0.0
    )


# ---------------------------------------------------------------------------------------
# User-defined primitives


@tg.primitive
def softplus(x):
    """log(1 + e^x), computed by numpy."""
    return np.logaddexp(0.0, x)


@softplus.defvjp
def softplus_vjp(i, g, ans, x):
    return g * tg.sigmoid(x)


@given(x=arrays(shapes()))
def test_user_primitive_with_a_correct_vjp_passes_check_grads(x):
    check_grads(softplus, (x,), order=2)
    tape = tg.make_tape(lambda z: tg.sum(softplus(z)))(x)
    assert [r.primitive.name for r in tape] == ["softplus", "sum"]


def test_user_primitive_under_nested_grad_and_broadcasting():
    d2 = tg.grad(tg.grad(softplus))(0.3)
    s = 1 / (1 + np.exp(-0.3))
    np.testing.assert_allclose(d2, s * (1 - s))
    scale = tg.primitive(lambda x, y: x * y, name="scale")
    scale.defvjp(lambda i, g, ans, x, y: g * y if i == 0 else g * x)
    gx, gy = tg.grad(lambda x, y: tg.sum(scale(x, y)), argnums=(0, 1))(np.ones((2, 3)), np.ones(3))
    np.testing.assert_array_equal(gx, np.ones((2, 3)))
    np.testing.assert_array_equal(gy, [2.0, 2.0, 2.0])  # unbroadcast by the interpreter


def test_user_primitive_with_a_wrong_vjp_fails_check_grads_naming_leaf_and_index():
    bad = tg.primitive(np.sin, name="bad_sin")
    bad.defvjp(lambda i, g, ans, x: g * tg.tanh(x))  # wrong: should be cos
    params = {"w": np.array([0.1, 0.5])}
    with pytest.raises(AssertionError, match=r"params\['w'\] at index \(0,\)") as info:
        check_grads(lambda params: tg.sum(bad(params["w"])), (params,))
    assert "reverse mode gives" in str(info.value) and "finite differences give" in str(info.value)


def test_user_primitive_without_a_vjp_says_how_to_declare_one():
    fwd_only = tg.primitive(np.sinh)
    np.testing.assert_allclose(fwd_only(np.ones(2)), np.sinh(1.0))
    with pytest.raises(NotImplementedError, match="defvjp"):
        tg.grad(lambda x: tg.sum(fwd_only(x)))(np.ones(2))


# ---------------------------------------------------------------------------------------
# Third derivatives


@given(x=st.floats(-2, 2))
def test_third_derivative_of_tanh_by_nesting_grad_three_times(x):
    t = np.tanh(x)
    np.testing.assert_allclose(
        tg.grad(tg.grad(tg.grad(tg.tanh)))(x), -2 * (1 - t**2) * (1 - 3 * t**2), atol=1e-12
    )


def test_check_grads_catches_a_primitive_that_mutates_its_input():
    def scale_in_place(x):
        x *= 2.0  # a buggy forward: writes into the caller's array
        return x

    bad = tg.primitive(scale_in_place, vjp=lambda i, g, ans, x: g * 2.0)
    with pytest.raises(AssertionError, match=r"changed the argument x"):
        check_grads(lambda x: tg.sum(bad(x)), (np.ones(3),))
