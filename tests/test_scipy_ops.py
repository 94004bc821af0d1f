"""tapegrad.scipy: the registry's properties for its ops, scipy's dispatch, the optional
import, and exact tests of the conventions (xlogy at x = 0, the triangle a triangular
solve reads, scipy's defaults and keywords).

The shared registry tests (``test_registry.py``, ``test_foundation.py``, ``test_jit.py``)
are parametrized with the ops registered when they are collected; tapegrad.scipy's ops
are among them only if ``tapegrad.scipy`` was imported first. Whatever they do not cover
is checked here, by calling the same hypothesis tests with this package's names.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

# Imported before tapegrad.scipy, so their parametrizations are what their own collection saw.
import test_foundation
import test_jit
import test_registry
from hypothesis import given
from hypothesis import strategies as st
from strategies import draw_case, per_op

import tapegrad as tg
import tapegrad.scipy
from tapegrad.ops import REGISTRY
from tapegrad.ops.registry import BY_NUMPY
from tapegrad.pytree import tree_leaves
from tapegrad.scipy import linalg, special, stats
from tapegrad.testing import check_grads

SCIPY_OPS = sorted(
    n for n, s in REGISTRY.items() if s.function.__module__.startswith("tapegrad.scipy.")
)


def _not_covered_by(test) -> list[str]:
    """This package's ops that the shared hypothesis ``test`` is not parametrized with."""
    covered = {
        n for m in getattr(test, "pytestmark", []) if m.name == "parametrize" for n in m.args[1]
    }
    return [n for n in SCIPY_OPS if n not in covered]


def test_every_function_of_the_package_is_registered():
    names = {f"special.{n}" for n in special.__all__} | {f"linalg.{n}" for n in linalg.__all__}
    names |= {
        f"stats.norm.{n}" for n in ("pdf", "logpdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf")
    }
    names |= {"stats.t.logpdf", "stats.t.pdf", "stats.t.cdf"}
    names |= {
        f"stats.{d}.{n}" for d in ("chi2", "gamma", "beta", "dirichlet") for n in ("logpdf", "pdf")
    }
    names |= {"stats.poisson.logpmf", "stats.poisson.pmf"}
    names |= {"stats.multivariate_normal.logpdf", "stats.multivariate_normal.pdf"}
    assert names == set(SCIPY_OPS)


# ---------------------------------------------------------------------------------------
# The registry's properties (values equal scipy's with its dtype, first and second
# derivatives equal finite differences, float32 kept, a recorded backward pass replays on
# new inputs, tg.jit compiles each op and its gradient bit for bit)


@pytest.mark.parametrize("name", _not_covered_by(test_registry.test_values_match_numpy))
def test_values_match_scipy(name):
    test_registry.test_values_match_numpy(name)


@pytest.mark.parametrize(
    "name", _not_covered_by(test_registry.test_gradients_match_finite_differences)
)
def test_gradients_match_finite_differences(name):
    test_registry.test_gradients_match_finite_differences(name)


@pytest.mark.parametrize(
    "name",
    [n for n in _not_covered_by(test_registry.test_float32_in_float32_out) if REGISTRY[n].float32],
)
def test_float32_in_float32_out(name):
    test_registry.test_float32_in_float32_out(name)


@pytest.mark.parametrize(
    "name", _not_covered_by(test_foundation.test_a_recorded_backward_pass_replays_on_new_inputs)
)
def test_a_recorded_backward_pass_replays_on_new_inputs(name):
    test_foundation.test_a_recorded_backward_pass_replays_on_new_inputs(name)


@pytest.mark.parametrize(
    "name", _not_covered_by(test_jit.test_every_registered_op_and_its_gradient_compile_bitwise)
)
def test_op_and_gradient_compile_bitwise(name):
    test_jit.test_every_registered_op_and_its_gradient_compile_bitwise(name)


UFUNC_OPS = [n for n in SCIPY_OPS if isinstance(REGISTRY[n].numpy, np.ufunc)]


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in _not_covered_by(test_registry.test_every_way_in_gives_the_same_value_and_gradient)
        if n in UFUNC_OPS
    ],
)
@per_op(6)
@given(data=st.data())
def test_scipy_ufuncs_on_traced_values_run_the_op(name, data):
    # scipy.special's ufuncs reach tapegrad's op through numpy's __array_ufunc__.
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    u = test_registry._direction(spec.function(*args, **kwargs))
    diff = [args[k] for k in spec.argnums]
    results = []
    for fn in (spec.function, spec.numpy):
        loss = test_registry._diff_fn(spec, args, fn, kwargs, u)
        value, grads = tg.value_and_grad(loss, argnums=tuple(range(len(diff))))(*diff)
        results.append([value, *tree_leaves(grads)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_which_scipy_functions_dispatch():
    ufuncs = {
        "erf", "erfc", "erfinv", "ndtr", "log_ndtr", "gammaln", "digamma", "betaln",
        "expit", "logit", "xlogy", "xlog1py", "erfcinv", "ndtri", "gamma", "rgamma",
        "gammasgn", "beta", "poch", "gammainc", "gammaincc", "betainc", "stdtr", "j0", "j1",
        "y0", "y1", "jv", "jn", "yv", "yn", "i0", "i1", "iv", "ive",
    }  # fmt: skip
    assert {n.removeprefix("special.") for n in UFUNC_OPS} == ufuncs
    assert BY_NUMPY[scipy.special.psi] is special.digamma  # psi is digamma's other name
    x = np.array([0.5, 2.0])
    np.testing.assert_allclose(
        tg.grad(lambda x: tg.sum(scipy.special.gammaln(x)))(x), scipy.special.digamma(x)
    )
    # scipy's Python functions convert their arguments with np.asarray: use this package's
    with pytest.raises(TypeError, match="drop its derivative"):
        tg.grad(lambda x: scipy.special.logsumexp(x))(x)


# ---------------------------------------------------------------------------------------
# The optional dependency

BLOCK_SCIPY = "import sys\nsys.modules['scipy'] = None  # as if scipy were not installed\n"


def _run(*parts: str) -> subprocess.CompletedProcess:
    code = "".join(textwrap.dedent(part) for part in parts)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_tapegrad_scipy_without_scipy_says_what_to_install():
    result = _run(
        BLOCK_SCIPY,
        """
        import tapegrad, tapegrad.numpy
        try:
            import tapegrad.scipy.special
        except ImportError as e:
            print(e)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'tapegrad[scipy]'" in result.stdout


def test_tapegrad_and_tapegrad_numpy_never_import_scipy():
    result = _run(
        """
        import sys
        import numpy as np
        import tapegrad as tg, tapegrad.numpy as tnp, tapegrad.ops
        print(tg.grad(lambda x: tnp.sum(tnp.sin(x)))(np.zeros(2)), "scipy" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[1.", "1.]", "False"]


# ---------------------------------------------------------------------------------------
# special: the derivatives the docstrings state, scipy's keywords and defaults


def test_the_log_gamma_family_differentiates_into_itself():
    x = np.array([0.3, 1.0, 2.5, 7.0])

    def derivative(f):
        return lambda x: tg.grad(lambda t: tg.sum(f(t)))(x)

    np.testing.assert_allclose(derivative(special.gammaln)(x), scipy.special.digamma(x))
    np.testing.assert_allclose(derivative(special.digamma)(x), scipy.special.polygamma(1, x))
    np.testing.assert_allclose(
        derivative(lambda t: special.polygamma(2, t))(x), scipy.special.polygamma(3, x)
    )
    # third derivative of gammaln through two rules written with ops
    third = derivative(derivative(derivative(special.gammaln)))
    np.testing.assert_allclose(third(x), scipy.special.polygamma(2, x), rtol=1e-12)
    a, b = 1.5, 2.5
    ga, gb = tg.grad(special.betaln, argnums=(0, 1))(a, b)
    ab = scipy.special.digamma(a + b)
    np.testing.assert_allclose([ga, gb], scipy.special.digamma([a, b]) - ab)


def test_polygamma_broadcasts_integer_orders_and_does_not_differentiate_them():
    n, x = np.array([[0], [1], [3]]), np.array([0.5, 1.5])
    np.testing.assert_array_equal(special.polygamma(n, x), scipy.special.polygamma(n, x))
    g = tg.grad(lambda x: tg.sum(special.polygamma(n, x)))(x)
    np.testing.assert_allclose(g, scipy.special.polygamma(n + 1, x).sum(axis=0))
    with pytest.raises(NotImplementedError, match=r"polygamma: no derivative with respect to n"):
        tg.grad(lambda order: special.polygamma(order, 1.5))(1.0)  # an order, never a zero


def test_error_function_derivatives():
    x = np.array([-0.9, 0.0, 0.5])
    grad = tg.grad(lambda t: tg.sum(special.erf(t)))
    np.testing.assert_allclose(grad(x), 2 / np.sqrt(np.pi) * np.exp(-(x**2)))
    grad = tg.grad(lambda t: tg.sum(special.erfinv(t)))
    np.testing.assert_allclose(grad(x), np.sqrt(np.pi) / 2 * np.exp(scipy.special.erfinv(x) ** 2))
    # erfinv(+-1) = +-inf, and so is its slope
    with np.errstate(invalid="ignore"):  # the sum inf - inf
        g = tg.grad(lambda t: tg.sum(special.erfinv(t)))(np.array([-1.0, 1.0]))
    assert np.all(np.isinf(g))


def test_log_ndtr_slope_stays_finite_in_the_far_left_tail():
    x = np.array([-40.0, -10.0, 0.0, 5.0])
    g = tg.grad(lambda t: tg.sum(special.log_ndtr(t)))(x)
    phi_over_phi = np.exp(-(x**2) / 2 - scipy.special.log_ndtr(x)) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(g, phi_over_phi, rtol=1e-12)
    assert 40 < g[0] < 40.03  # phi(x) / Phi(x) ~ -x far out, where both underflow


def test_xlogy_is_zero_where_x_is_zero_and_so_is_its_slope_in_y():
    x, y = np.array([0.0, 0.0, 0.0, 2.0]), np.array([0.0, 3.0, -1.0, 3.0])
    np.testing.assert_array_equal(special.xlogy(x, y), [0.0, 0.0, 0.0, 2 * np.log(3)])
    with np.errstate(divide="ignore", invalid="ignore"):
        gx, gy = tg.grad(lambda x, y: tg.sum(special.xlogy(x, y)), argnums=(0, 1))(x, y)
        np.testing.assert_array_equal(gx, np.log(y))  # -inf at y = 0, nan at y < 0
    np.testing.assert_array_equal(gy, [0.0, 0.0, 0.0, 2 / 3])
    # the mixed second derivative 1/y survives at x = 0 (only y = 0 is replaced)
    mixed = tg.grad(lambda x: tg.grad(lambda y: special.xlogy(x, y))(3.0))(0.0)
    np.testing.assert_allclose(mixed, 1 / 3)
    # entropy: -sum p log p has slope -(log p + 1), -inf at p = 0 where p log p is 0
    p = np.array([0.0, 0.5, 0.5])
    with np.errstate(divide="ignore"):
        g = tg.grad(lambda p: -tg.sum(special.xlogy(p, p)))(p)
    np.testing.assert_array_equal(g, [np.inf, np.log(2) - 1, np.log(2) - 1])


def test_xlog1py_is_zero_where_x_is_zero_and_so_is_its_slope_in_y():
    x, y = np.array([0.0, 0.0, 2.0]), np.array([-1.0, 2.0, 2.0])
    np.testing.assert_array_equal(special.xlog1py(x, y), [0.0, 0.0, 2 * np.log(3)])
    with np.errstate(divide="ignore"):
        gx, gy = tg.grad(lambda x, y: tg.sum(special.xlog1py(x, y)), argnums=(0, 1))(x, y)
        np.testing.assert_array_equal(gx, np.log1p(y))
    np.testing.assert_array_equal(gy, [0.0, 0.0, 2 / 3])


def test_logsumexp_keywords_and_derivatives():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.uniform(0.5, 2, size=(4,))
    for kwargs in (
        {},
        {"axis": 1},
        {"axis": (0, -1), "keepdims": True},
        {"axis": 0, "b": b[:3, None]},
    ):
        np.testing.assert_array_equal(
            special.logsumexp(a, **kwargs), scipy.special.logsumexp(a, **kwargs)
        )
    # without b the gradient is scipy's softmax over the same axes
    g = tg.grad(lambda a: tg.sum(special.logsumexp(a, axis=1)))(a)
    np.testing.assert_allclose(g, scipy.special.softmax(a, axis=1), rtol=1e-14)
    check_grads(lambda a: special.logsumexp(a, axis=0, keepdims=True), (a,), order=2)
    check_grads(lambda a, b: special.logsumexp(a, axis=1, b=b), (a, b), argnums=(0, 1), order=2)
    # zeros in b drop terms; a negative sum is nan unless return_sign=True
    b0 = np.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(special.logsumexp(a, axis=1, b=b0), np.logaddexp(a[:, 1], a[:, 3]))
    with np.errstate(invalid="ignore"):
        assert np.isnan(special.logsumexp(a[0], b=-b))
    value, sign = special.logsumexp(a[0], b=-b, return_sign=True)
    np.testing.assert_allclose([value, sign], scipy.special.logsumexp(a[0], b=-b, return_sign=True))
    assert sign == -1.0
    ga, gb = tg.grad(lambda a, b: special.logsumexp(a, b=b, return_sign=True)[0], argnums=(0, 1))(
        a[0], -b
    )
    s = np.sum(-b * np.exp(a[0]))
    np.testing.assert_allclose(ga, -b * np.exp(a[0]) / s)
    np.testing.assert_allclose(gb, np.exp(a[0]) / s)


def test_softmax_defaults_to_every_element_as_in_scipy():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(special.softmax(x).sum(), 1.0)
    np.testing.assert_allclose(special.softmax(x, axis=-1), tg.softmax(x))  # tapegrad's default
    np.testing.assert_array_equal(special.log_softmax(x), scipy.special.log_softmax(x))
    check_grads(lambda x: special.softmax(x, axis=(0, 1)), (x,), order=2)
    check_grads(lambda x: special.log_softmax(x), (x,), order=2)


# ---------------------------------------------------------------------------------------
# stats


def test_norm_derivatives_in_loc_and_scale():
    x, loc, scale = np.array([-1.0, 0.3, 2.0]), 0.5, 1.5
    z = (x - loc) / scale
    p = scipy.stats.norm.pdf(x, loc, scale)
    gx, gl, gs = tg.grad(lambda *a: tg.sum(stats.norm.logpdf(*a)), argnums=(0, 1, 2))(x, loc, scale)
    np.testing.assert_allclose(gx, -z / scale)
    np.testing.assert_allclose(gl, np.sum(z / scale))
    np.testing.assert_allclose(gs, np.sum((z**2 - 1) / scale))
    gs = tg.grad(lambda s: tg.sum(stats.norm.cdf(x, loc, s)))(scale)
    np.testing.assert_allclose(gs, np.sum(-p * z))  # dPhi(z)/dscale = -phi(z) z / scale


def test_norm_follows_scipy_on_dtypes_and_bad_scales():
    x32 = np.array([0.5, 1.0], np.float32)
    for f in ("pdf", "logpdf", "cdf", "logcdf"):
        ours, theirs = getattr(stats.norm, f), getattr(scipy.stats.norm, f)
        assert ours(x32).dtype == theirs(x32).dtype == np.float64
        with np.errstate(invalid="ignore", divide="ignore"):
            got = ours(x32, 0.0, np.array([-1.0, 0.0]))
            expected = theirs(x32, 0.0, [-1.0, 0.0])
        assert np.all(np.isnan(got)) and np.all(np.isnan(expected))
        assert type(ours(0.3)) is type(theirs(0.3)) is np.float64


# ---------------------------------------------------------------------------------------
# linalg


def _triangle_case(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n)) * 0.3 + 2 * np.eye(n), rng.normal(size=(n, 2))


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_only_the_triangle_read_gets_a_cotangent(lower, unit_diagonal):
    a, b = _triangle_case()
    kw = {"lower": lower, "unit_diagonal": unit_diagonal}
    ga = tg.grad(lambda a: tg.sum(linalg.solve_triangular(a, b, **kw) ** 2))(a)
    read = (
        np.tril(np.ones((3, 3)), -unit_diagonal)
        if lower
        else np.triu(np.ones((3, 3)), unit_diagonal)
    )
    assert np.all(ga[read == 0] == 0.0) and np.all(ga[read == 1] != 0.0)
    check_grads(lambda a, b: linalg.solve_triangular(a, b, **kw), (a, b), argnums=(0, 1), order=2)


def test_solve_triangular_takes_scipys_trans_spellings():
    a, b = _triangle_case()
    for trans, same in (("N", 0), ("T", 1), (2, 1), ("C", 1)):
        got = linalg.solve_triangular(a, b, trans=trans, lower=True)
        np.testing.assert_array_equal(got, linalg.solve_triangular(a, b, trans=same, lower=True))
        np.testing.assert_array_equal(got, scipy.linalg.solve_triangular(a, b, trans, lower=True))
    with pytest.raises(ValueError, match=r"tg\.solve_triangular: trans must be"):
        linalg.solve_triangular(a, b, trans="X")


def test_solve_triangular_on_stacks_and_float32():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 3, 3)) * 0.3 + 2 * np.eye(3)
    for b in (rng.normal(size=3), rng.normal(size=(2, 3, 2)), rng.normal(size=(4, 1, 3, 1))):
        np.testing.assert_array_equal(
            linalg.solve_triangular(a, b), scipy.linalg.solve_triangular(a, b)
        )
        check_grads(linalg.solve_triangular, (a, b), argnums=(0, 1), order=2)
    a32, b32 = a.astype(np.float32), rng.normal(size=3).astype(np.float32)
    ga, gb = tg.grad(lambda a, b: tg.sum(linalg.solve_triangular(a, b, lower=True)), (0, 1))(
        a32, b32
    )
    assert linalg.solve_triangular(a32, b32).dtype == ga.dtype == gb.dtype == np.float32


@pytest.mark.parametrize("lower", [False, True])
def test_cho_solve_differentiates_the_factor_and_ignores_the_other_triangle(lower):
    rng = np.random.default_rng(2)
    m = rng.normal(size=(3, 3))
    factor = np.linalg.cholesky(m @ m.T + 3 * np.eye(3))
    c = factor if lower else factor.T
    c = c + (np.triu(rng.normal(size=(3, 3)), 1) if lower else np.tril(rng.normal(size=(3, 3)), -1))
    b = rng.normal(size=(3, 2))
    np.testing.assert_allclose(
        linalg.cho_solve((c, lower), b), scipy.linalg.cho_solve((c, lower), b), rtol=1e-12
    )
    check_grads(lambda c, b: linalg.cho_solve((c, lower), b), (c, b), argnums=(0, 1), order=2)
    gc = tg.grad(lambda c: tg.sum(linalg.cho_solve((c, lower), b)))(c)
    unread = np.triu(np.ones((3, 3)), 1) if lower else np.tril(np.ones((3, 3)), -1)
    assert np.all(gc[unread == 1] == 0.0)
    c32, b32 = c.astype(np.float32), b.astype(np.float32)
    gc, gb = tg.grad(lambda c, b: tg.sum(linalg.cho_solve((c, lower), b)), (0, 1))(c32, b32)
    assert linalg.cho_solve((c32, lower), b32).dtype == gc.dtype == gb.dtype == np.float32


@pytest.mark.parametrize("lower", [False, True])
def test_cho_factor_is_scipys_and_differentiates_the_triangle_it_reads(lower):
    rng = np.random.default_rng(3)
    m = rng.normal(size=(3, 3))
    a = m @ m.T + 3 * np.eye(3)
    noise = rng.normal(size=(3, 3))
    a = np.tril(a) + np.triu(noise, 1) if lower else np.triu(a) + np.tril(noise, -1)
    c, flag = linalg.cho_factor(a, lower=lower)
    c_scipy, flag_scipy = scipy.linalg.cho_factor(a, lower=lower)
    np.testing.assert_allclose(c, c_scipy, rtol=1e-14)
    assert flag is flag_scipy is lower
    check_grads(lambda a: linalg.cho_factor(a, lower=lower)[0], (a,), order=2)
    # the unread triangle is copied into c: its cotangent passes straight through
    u = rng.normal(size=(3, 3))
    ga = tg.grad(lambda a: tg.sum(linalg.cho_factor(a, lower=lower)[0] * u))(a)
    unread = np.triu(np.ones((3, 3)), 1) if lower else np.tril(np.ones((3, 3)), -1)
    np.testing.assert_array_equal(ga[unread == 1], u[unread == 1])
    # cho_solve(cho_factor(a)) solves a x = b, and its gradient is that of numpy's solve
    b = rng.normal(size=3)
    sym = np.tril(a) + np.tril(a, -1).T if lower else np.triu(a) + np.triu(a, 1).T

    def solve(a):
        return linalg.cho_solve(linalg.cho_factor(a, lower=lower), b)

    np.testing.assert_allclose(solve(a), np.linalg.solve(sym, b), rtol=1e-12)
    check_grads(solve, (a,), order=2)
    a32 = a.astype(np.float32)
    g32 = tg.grad(lambda a: tg.sum(linalg.cho_factor(a, lower=lower)[0]))(a32)
    assert linalg.cho_factor(a32, lower=lower)[0].dtype == g32.dtype == np.float32


MVN_CASES = [
    # (x shape, mean, cov kind): scipy's dimension inference and squeezing
    ((3,), None, "matrix"),
    ((4, 3), "vector", "matrix"),
    ((1, 3), "vector", "diagonal"),
    ((2, 1, 3), "vector", "scalar"),
    ((), None, None),  # the standard normal in one dimension
    ((5,), "scalar", "scalar"),  # one dimension: x (5,) is five points
]


@pytest.mark.parametrize(("x_shape", "mean_kind", "cov_kind"), MVN_CASES)
def test_multivariate_normal_logpdf_follows_scipy(x_shape, mean_kind, cov_kind):
    rng = np.random.default_rng(4)
    d = 1 if mean_kind == "scalar" or cov_kind is None else 3
    x = rng.normal(size=x_shape)
    mean = {None: None, "vector": rng.normal(size=d), "scalar": 0.5}[mean_kind]
    m = rng.normal(size=(d, d))
    cov = {
        None: 1,
        "scalar": 1.7,
        "diagonal": rng.uniform(0.5, 2, size=d),
        "matrix": m @ m.T + d * np.eye(d),
    }[cov_kind]
    ours = stats.multivariate_normal.logpdf(x, mean, cov)
    theirs = scipy.stats.multivariate_normal.logpdf(x, mean, cov)
    assert type(ours) is type(theirs) and np.shape(ours) == np.shape(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    diff = [v for v in (x, mean, cov) if isinstance(v, np.ndarray) or type(v) is float]
    nums = tuple(k for k, v in enumerate((x, mean, cov)) if any(v is w for w in diff))
    check_grads(stats.multivariate_normal.logpdf, (x, mean, cov), argnums=nums, order=2)


def test_multivariate_normal_logpdf_gradient_in_closed_form():
    # d/dm = C^-1 (x - m); d/dC = (C^-1 (x - m)(x - m)^T C^-1 - C^-1) / 2, on the lower
    # triangle that cholesky reads (off-diagonal entries count twice)
    rng = np.random.default_rng(5)
    m = rng.normal(size=(3, 3))
    cov, x, mean = m @ m.T + 3 * np.eye(3), rng.normal(size=3), rng.normal(size=3)
    gm, gc = tg.grad(stats.multivariate_normal.logpdf, argnums=(1, 2))(x, mean, cov)
    inv = np.linalg.inv(cov)
    alpha = inv @ (x - mean)
    np.testing.assert_allclose(gm, alpha, rtol=1e-12)
    full = 0.5 * (np.outer(alpha, alpha) - inv)
    np.testing.assert_allclose(gc, np.tril(2 * full) - np.diag(np.diag(full)), rtol=1e-10)


def test_multivariate_normal_errors():
    with pytest.raises(NotImplementedError, match="allow_singular"):
        stats.multivariate_normal.logpdf(np.zeros(2), cov=np.eye(2), allow_singular=True)
    with pytest.raises(ValueError, match="does not fit a mean of length 2"):
        stats.multivariate_normal.logpdf(np.zeros(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="x has 3 components per point, the distribution 2"):
        stats.multivariate_normal.logpdf(np.zeros(3), np.zeros(2))
    with pytest.raises(np.linalg.LinAlgError):
        stats.multivariate_normal.logpdf(np.zeros(2), cov=-np.eye(2))


# ---------------------------------------------------------------------------------------
# special: the gamma family, incomplete functions, Bessel functions, inverses


def _slope(f, x):
    """d/dx sum(f(x)), elementwise for an elementwise f."""
    return tg.grad(lambda t: tg.sum(f(t)))(np.asarray(x, float))


def test_rgamma_slope_at_the_poles_of_gamma_is_finite():
    # 1/Gamma is entire: at x = -n its value is 0 and its slope (-1)^n n!, where the
    # product -rgamma(x) digamma(x) would be 0 * nan
    x = np.array([0.0, -1.0, -2.0, -3.0])
    np.testing.assert_array_equal(special.rgamma(x), 0.0)
    np.testing.assert_allclose(_slope(special.rgamma, x), [1.0, -1.0, 2.0, -6.0], rtol=1e-14)
    # second derivative at the poles too (finite differences of the first)
    check_grads(special.rgamma, (np.array([-2.0, -1.0, 0.0, 0.3, 0.5, 2.0]),), order=3)
    np.testing.assert_allclose(
        _slope(special.gamma, [0.5, 3.0]),
        scipy.special.gamma([0.5, 3.0]) * scipy.special.digamma([0.5, 3.0]),
    )
    np.testing.assert_array_equal(_slope(special.gammasgn, [-1.5, 0.5]), [0.0, 0.0])


@pytest.mark.parametrize(
    ("f", "args", "argument"),
    [
        (special.gammainc, (1.5, 0.7), "a"),
        (special.gammaincc, (1.5, 0.7), "a"),
        (special.betainc, (1.5, 2.0, 0.3), "a"),
        (special.stdtr, (3.0, 0.7), "df"),
        (special.jv, (1.5, 0.7), "v"),
        (special.yv, (1.5, 0.7), "v"),
        (special.iv, (1.5, 0.7), "v"),
        (special.ive, (1.5, 0.7), "v"),
        (special.yn, (2.0, 0.7), "n"),
    ],
)
def test_arguments_without_a_rule_raise_instead_of_giving_zero(f, args, argument):
    name = f.__name__
    with pytest.raises(
        NotImplementedError, match=rf"special\.{name}: no derivative with respect to {argument}"
    ):
        tg.grad(f, argnums=0)(*args)
    if f is special.betainc:
        with pytest.raises(NotImplementedError, match="with respect to b"):
            tg.grad(f, argnums=1)(*args)
    # the differentiable argument alone works, and so do both with the parameter constant
    tg.grad(f, argnums=len(args) - 1)(*args)


def test_incomplete_gamma_and_beta_slopes_are_the_densities():
    a, x = np.array([0.5, 1.0, 2.5]), np.array([0.3, 1.0, 4.0])
    density = x ** (a - 1) * np.exp(-x) / scipy.special.gamma(a)
    gx = tg.grad(lambda x: tg.sum(special.gammainc(a, x)))(x)
    np.testing.assert_allclose(gx, density, rtol=1e-13)
    gx = tg.grad(lambda x: tg.sum(special.gammaincc(a, x)))(x)
    np.testing.assert_allclose(gx, -density, rtol=1e-13)
    # at x = 0: infinite for a < 1, 1 for a = 1, 0 for a > 1
    g0 = tg.grad(lambda x: tg.sum(special.gammainc(a, x)))(np.zeros(3))
    np.testing.assert_array_equal(g0, [np.inf, 1.0, 0.0])
    b, y = 2.5, np.array([0.1, 0.5, 0.9])
    gy = tg.grad(lambda y: tg.sum(special.betainc(1.5, b, y)))(y)
    np.testing.assert_allclose(gy, scipy.stats.beta.pdf(y, 1.5, b), rtol=1e-12)
    # float32 in, float32 out when every argument is float32
    a32, x32 = np.float32([1.5, 2.0]), np.float32([0.5, 1.0])
    g32 = tg.grad(lambda x: tg.sum(special.gammainc(a32, x)))(x32)
    assert special.gammainc(a32, x32).dtype == g32.dtype == np.float32
    # the mixed derivative d/da d/dx P(a, x) exists (the density is differentiable in a)
    mixed = tg.grad(lambda a: tg.grad(lambda x: special.gammainc(a, x))(1.3))(2.0)
    h = 1e-6
    fd = (scipy.stats.gamma.pdf(1.3, 2.0 + h) - scipy.stats.gamma.pdf(1.3, 2.0 - h)) / (2 * h)
    np.testing.assert_allclose(mixed, fd, rtol=1e-7)


def test_bessel_slopes_follow_the_recurrences_and_are_exact_at_zero():
    x = np.array([0.0, 0.5, 2.0, 7.0])
    np.testing.assert_allclose(_slope(special.j0, x), -scipy.special.j1(x), rtol=1e-14)
    np.testing.assert_allclose(_slope(special.i0, x), scipy.special.i1(x), rtol=1e-14)
    # J_1' = J_0 - J_1 / x and I_1' = I_0 - I_1 / x away from 0; 1/2 at 0
    xs = x[1:]
    np.testing.assert_allclose(
        _slope(special.j1, xs),
        scipy.special.j0(xs) - scipy.special.j1(xs) / xs,
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        _slope(special.i1, xs), scipy.special.i0(xs) - scipy.special.i1(xs) / xs, rtol=1e-12
    )
    assert _slope(special.j1, [0.0]) == _slope(special.i1, [0.0]) == 0.5
    assert tg.grad(tg.grad(special.j1))(0.0) == tg.grad(tg.grad(special.i1))(0.0) == 0.0
    y = np.array([0.5, 2.0, 7.0])
    np.testing.assert_allclose(_slope(special.y0, y), -scipy.special.y1(y), rtol=1e-14)
    np.testing.assert_allclose(
        _slope(special.y1, y), scipy.special.y0(y) - scipy.special.y1(y) / y, rtol=1e-12
    )
    # integer orders: jn at negative x, yn against the real-order yv; orders broadcast
    n = np.array([[0], [1], [3]])
    np.testing.assert_allclose(
        tg.grad(lambda t: tg.sum(special.jn(n, t)))(-x),
        (scipy.special.jv(n - 1, -x) - scipy.special.jv(n + 1, -x)).sum(axis=0) / 2,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        tg.grad(lambda t: tg.sum(special.yn(2, t)))(y),
        tg.grad(lambda t: tg.sum(special.yv(2.0, t)))(y),
        rtol=1e-12,
    )
    check_grads(lambda t: special.jn(2, t), (np.array([-3.0, 0.0, 1.5]),), order=3)


def test_ive_slope_includes_the_scaling_and_uses_sign_zero_at_zero():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    v = 2.0  # an integer order: ive is defined for negative x
    expected = scipy.special.ive(v, x) * (
        (scipy.special.iv(v - 1, x) + scipy.special.iv(v + 1, x)) / 2 / scipy.special.iv(v, x)
        - np.sign(x)
    )
    np.testing.assert_allclose(
        tg.grad(lambda t: tg.sum(special.ive(v, t)))(x), expected, rtol=1e-12
    )
    check_grads(lambda t: special.ive(v, t), (x,), order=2)
    # at 0 the kink of e^-|x|: mean of the one-sided slopes, (ive(1, 0) + ive(3, 0)) / 2 = 0
    # for v = 2, and 1/2 for v = 1 (as I_1'(0))
    assert tg.grad(lambda t: special.ive(1.0, t))(0.0) == 0.5


def test_inverse_functions_slopes():
    x = np.array([0.05, 0.5, 0.975])
    z = scipy.special.ndtri(x)
    np.testing.assert_allclose(_slope(special.ndtri, x), 1 / scipy.stats.norm.pdf(z), rtol=1e-12)
    y = np.array([0.1, 1.0, 1.9])
    w = scipy.special.erfcinv(y)
    np.testing.assert_allclose(
        _slope(special.erfcinv, y), -np.sqrt(np.pi) / 2 * np.exp(w**2), rtol=1e-13
    )
    assert _slope(special.erfcinv, [1.0]) == -np.sqrt(np.pi) / 2


# ---------------------------------------------------------------------------------------
# stats: the new distributions


def test_norm_sf_ppf_isf_and_their_derivatives():
    q, loc, scale = np.array([0.1, 0.5, 0.8]), 0.3, 2.0
    for f in ("sf", "logsf", "ppf", "isf"):
        arg = q if f in ("ppf", "isf") else q * 4 - 2
        np.testing.assert_allclose(
            getattr(stats.norm, f)(arg, loc, scale),
            getattr(scipy.stats.norm, f)(arg, loc, scale),
            rtol=1e-14,
        )
    z = scipy.special.ndtri(q)
    gq, gl, gs = tg.grad(lambda *a: tg.sum(stats.norm.ppf(*a)), argnums=(0, 1, 2))(q, loc, scale)
    np.testing.assert_allclose(gq, scale / scipy.stats.norm.pdf(z), rtol=1e-12)
    np.testing.assert_allclose([gl, gs], [3.0, z.sum()], rtol=1e-12)
    gq = tg.grad(lambda q: tg.sum(stats.norm.isf(q, loc, scale)))(q)
    np.testing.assert_allclose(gq, -scale / scipy.stats.norm.pdf(z), rtol=1e-12)
    # logsf stays finite far in the right tail, where sf underflows
    g = tg.grad(lambda x: stats.norm.logsf(x))(40.0)
    assert -40.03 < g < -40
    with np.errstate(invalid="ignore", divide="ignore"):
        got = stats.norm.ppf(np.array([0.0, 1.0, 1.5, 0.5]), 0.0, np.array([1.0, 1.0, 1.0, -1.0]))
    np.testing.assert_array_equal(got, [-np.inf, np.inf, np.nan, np.nan])


def test_shape_families_outside_the_support_and_with_bad_parameters():
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for ours, theirs, args in (
            (stats.chi2, scipy.stats.chi2, (2.0,)),
            (stats.gamma, scipy.stats.gamma, (1.0,)),
            (stats.beta, scipy.stats.beta, (1.0, 1.0)),
            (stats.t, scipy.stats.t, (3.0,)),
        ):
            for f in ("logpdf", "pdf"):
                for a in (args, tuple(-1.0 for _ in args)):
                    for scale in (1.5, -1.0):
                        got = getattr(ours, f)(x, *a, 0.2, scale)
                        want = getattr(theirs, f)(x, *a, 0.2, scale)
                        np.testing.assert_allclose(got, want, rtol=1e-13)
    # outside the support the value is constant: slope 0 in x and in the parameters (the
    # unused branch is fed a point of the support, so no log of a negative number, whose
    # nan times the zero cotangent would be nan, is computed)
    outside = np.array([-1.0, -0.5])
    for ours, args in ((stats.chi2, (3.0,)), (stats.gamma, (2.5,)), (stats.beta, (2.0, 3.0))):
        nums = tuple(range(len(args) + 3))
        grads = tg.grad(lambda *a, d=ours: tg.sum(d.logpdf(*a)), argnums=nums)(
            outside, *args, 0.0, 1.0
        )
        np.testing.assert_array_equal(np.concatenate([np.ravel(g) for g in grads]), 0.0)
    g = tg.grad(lambda b: tg.sum(stats.beta.logpdf(np.array([1.5]), 2.0, b)))(3.0)
    assert g == 0.0


def test_t_distribution_derivatives_and_what_cdf_does_not_differentiate():
    x, df, loc, scale = np.array([-1.0, 0.3, 2.0]), 4.5, 0.2, 1.3
    check_grads(stats.t.logpdf, (x, df, loc, scale), argnums=(0, 1, 2, 3), order=2)
    z = (x - loc) / scale
    gx = tg.grad(lambda x: tg.sum(stats.t.cdf(x, df, loc, scale)))(x)
    np.testing.assert_allclose(gx, scipy.stats.t.pdf(x, df, loc, scale), rtol=1e-12)
    gs = tg.grad(lambda s: tg.sum(stats.t.cdf(x, df, loc, s)))(scale)
    np.testing.assert_allclose(gs, -np.sum(scipy.stats.t.pdf(z, df) * z / scale), rtol=1e-12)
    with pytest.raises(NotImplementedError, match="stdtr: no derivative with respect to df"):
        tg.grad(lambda d: tg.sum(stats.t.cdf(x, d)))(df)
    # d logpdf / d df in closed form
    w = (df + 1) * z / (df + z**2)
    gd = tg.grad(lambda d: tg.sum(stats.t.logpdf(x, d, loc, scale)))(df)
    expected = (
        scipy.special.digamma((df + 1) / 2)
        - scipy.special.digamma(df / 2)
        - 1 / df
        - np.log1p(z**2 / df)
        + w * z / df
    ) / 2
    np.testing.assert_allclose(gd, expected.sum(), rtol=1e-12)


def test_gamma_chi2_beta_gradients_in_closed_form():
    x = np.array([0.5, 1.0, 3.0])
    ga = tg.grad(lambda a: tg.sum(stats.gamma.logpdf(x, a)))(2.5)
    np.testing.assert_allclose(ga, np.sum(np.log(x) - scipy.special.digamma(2.5)), rtol=1e-13)
    gd = tg.grad(lambda d: tg.sum(stats.chi2.logpdf(x, d)))(3.0)
    expected = np.sum(np.log(x) - scipy.special.digamma(1.5) - np.log(2)) / 2
    np.testing.assert_allclose(gd, expected, rtol=1e-13)
    p = np.array([0.2, 0.7])
    gx, ga, gb = tg.grad(lambda *v: tg.sum(stats.beta.logpdf(*v)), argnums=(0, 1, 2))(p, 2.0, 3.0)
    np.testing.assert_allclose(gx, 1 / p - 2 / (1 - p), rtol=1e-13)
    dab = scipy.special.digamma(5.0)
    np.testing.assert_allclose(ga, np.sum(np.log(p)) - 2 * (scipy.special.digamma(2.0) - dab))
    np.testing.assert_allclose(gb, np.sum(np.log1p(-p)) - 2 * (scipy.special.digamma(3.0) - dab))


def test_poisson_differentiates_mu_and_follows_scipy_on_counts():
    k = np.array([0.0, 1.0, 4.0, 2.5, -1.0])
    with np.errstate(divide="ignore"):
        for f in ("logpmf", "pmf"):
            np.testing.assert_array_equal(
                getattr(stats.poisson, f)(k, 2.0), getattr(scipy.stats.poisson, f)(k, 2.0)
            )
        g = tg.grad(lambda m: tg.sum(stats.poisson.logpmf(k, m)))(2.0)
    np.testing.assert_allclose(g, (0 + 1 + 4) / 2.0 - 3)  # k / mu - 1 at the valid counts
    # mu = 0: logpmf(0, 0) = 0 with slope -1 (0 log 0 = 0)
    assert stats.poisson.logpmf(0.0, 0.0) == 0.0
    assert tg.grad(lambda m: stats.poisson.logpmf(0.0, m))(0.0) == -1.0
    assert np.isnan(stats.poisson.logpmf(1.0, -1.0)) and np.isnan(scipy.stats.poisson.logpmf(1, -1))
    gm = tg.grad(lambda m: tg.sum(stats.poisson.pmf(k[:3], m)))(2.0)
    expected = np.sum(scipy.stats.poisson.pmf(k[:3], 2.0) * (k[:3] / 2.0 - 1))
    np.testing.assert_allclose(gm, expected, rtol=1e-13)


def test_dirichlet_components_on_the_first_axis_and_gradients():
    alpha = np.array([1.5, 2.0, 0.7])
    x = np.array([[0.2, 0.5], [0.3, 0.25], [0.5, 0.25]])  # two points, columns
    np.testing.assert_allclose(
        stats.dirichlet.logpdf(x, alpha), scipy.stats.dirichlet.logpdf(x, alpha)
    )
    # k - 1 components: the last is 1 - sum, and the gradient flows through it
    np.testing.assert_allclose(
        stats.dirichlet.pdf(x[:2], alpha), scipy.stats.dirichlet.pdf(x, alpha)
    )
    gx, ga = tg.grad(lambda x, a: tg.sum(stats.dirichlet.logpdf(x, a)), argnums=(0, 1))(x, alpha)
    np.testing.assert_allclose(gx, (alpha[:, None] - 1) / x)
    psi = scipy.special.digamma
    np.testing.assert_allclose(ga, np.log(x).sum(axis=1) - 2 * (psi(alpha) - psi(alpha.sum())))
    g2 = tg.grad(lambda x: tg.sum(stats.dirichlet.logpdf(x, alpha)))(x[:2])
    np.testing.assert_allclose(g2, gx[:2] - gx[2])
    with pytest.raises(ValueError, match="must hold 3 or 2 components"):
        stats.dirichlet.logpdf(np.full(5, 0.2), alpha)


def test_multivariate_normal_pdf_is_exp_logpdf():
    rng = np.random.default_rng(6)
    m = rng.normal(size=(3, 3))
    cov, x, mean = m @ m.T + 3 * np.eye(3), rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_allclose(
        stats.multivariate_normal.pdf(x, mean, cov),
        scipy.stats.multivariate_normal.pdf(x, mean, cov),
        rtol=1e-13,
    )
    check_grads(stats.multivariate_normal.pdf, (x, mean, cov), argnums=(0, 1, 2), order=2)


def test_scipy_ufuncs_without_a_rule_are_named_as_scipys():
    with pytest.raises(TypeError, match=r"^scipy\.special\.kv has no derivative rule"):
        tg.grad(lambda x: tg.sum(scipy.special.kv(1, x)))(np.array([1.0, 2.0]))
    # before tapegrad.scipy is imported, the error says to import it
    code = (
        "import numpy as np, scipy.special as sc, tapegrad as tg\n"
        "try:\n    tg.grad(lambda x: tg.sum(sc.erf(x)))(np.ones(2))\n"
        "except TypeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("scipy.special.erf on a traced value: import tapegrad.scipy")
