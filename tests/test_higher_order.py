"""Second and third derivatives: grad of grad, and Hessian-vector products of an MLP loss."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from problems import mlp_loss, mlp_problem

import tapegrad as tg
from tapegrad.testing import check_grads

points = st.floats(-2.0, 2.0, allow_nan=False)
positive = st.floats(0.2, 3.0, allow_nan=False)

SECOND = {
    "tanh": (tg.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), points),
    "exp": (tg.exp, np.exp, points),
    "log": (tg.log, lambda x: -1 / x**2, positive),
    "sigmoid": (
        tg.sigmoid,
        lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s),
        points,
    ),
    "cube": (lambda x: x**3, lambda x: 6 * x, points),
    "sqrt": (tg.sqrt, lambda x: -0.25 * x**-1.5, positive),
}


@pytest.mark.parametrize("name", sorted(SECOND))
@given(data=st.data())
def test_grad_of_grad_matches_the_analytic_second_derivative(name, data):
    f, d2, domain = SECOND[name]
    x = data.draw(domain)
    np.testing.assert_allclose(tg.grad(tg.grad(f))(x), d2(x), rtol=1e-10, atol=1e-12)


@given(x=points)
def test_third_derivative_of_tanh(x):
    t = np.tanh(x)
    expected = -2 * (1 - t**2) ** 2 + 4 * t**2 * (1 - t**2)
    np.testing.assert_allclose(tg.grad(tg.grad(tg.grad(tg.tanh)))(x), expected, atol=1e-12)


def test_second_order_of_arrays_and_reductions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    for f in (
        lambda a: tg.logsumexp(a, axis=1),
        lambda a: tg.log_softmax(a, axis=0),
        lambda a: tg.softmax(a * 2.0),
        lambda a: tg.sum(a**2, axis=0) / tg.mean(tg.exp(a)),
        lambda a: tg.tanh(a) @ tg.sigmoid(a).T,
        lambda a: tg.concatenate([a[:, :2], a[::-1] ** 2], axis=1),
        lambda a: tg.take(tg.exp(a), np.array([0, 0, 5])),
    ):
        check_grads(f, (x,), order=2, rtol=1e-5, atol=1e-6)


def _hvp(f, params, v, *rest):
    """H v = d/dp <grad f(p), v>: reverse mode over reverse mode."""

    def inner(p):
        g = tg.grad(f)(p, *rest)
        return sum(tg.sum(g[k] * v[k]) for k in g)

    return tg.grad(inner)(params)


@pytest.mark.parametrize("seed", range(4))
def test_hessian_vector_product_of_a_small_mlp_matches_differences_of_gradients(seed):
    params, x, y = mlp_problem(seed)
    rng = np.random.default_rng(seed + 100)
    v = {k: rng.standard_normal(a.shape) for k, a in params.items()}
    hv = _hvp(mlp_loss, params, v, x, y)
    eps = 1e-5
    plus = tg.grad(mlp_loss)({k: params[k] + eps * v[k] for k in params}, x, y)
    minus = tg.grad(mlp_loss)({k: params[k] - eps * v[k] for k in params}, x, y)
    for k in params:
        fd = (plus[k] - minus[k]) / (2 * eps)
        np.testing.assert_allclose(hv[k], fd, rtol=1e-5, atol=1e-7)
        assert hv[k].shape == params[k].shape


def test_inner_and_outer_derivatives_are_kept_apart():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1 (perturbation confusion would give 2)
    def outer(x):
        return x * tg.grad(lambda y: x + y)(1.0)

    assert float(tg.grad(outer)(3.0)) == 1.0
    # d/dx [grad(lambda y: x * y**2)(y0)] = d/dx [2 x y0] = 2 y0
    assert float(tg.grad(lambda x: tg.grad(lambda y: x * y**2)(4.0))(3.0)) == 8.0
