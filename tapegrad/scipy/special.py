"""``scipy.special``'s functions with derivatives: error functions and their inverses, the
gamma and log-gamma families, the incomplete gamma and beta functions, Student's t
distribution function, Bessel functions, the logistic pair, ``x log y``, and the
log-sum-exp family with scipy's defaults.

Each forward is scipy's own function, so values, dtypes and edge cases are scipy's. The
ufuncs among them (``erf``, ``gammaln``, ``xlogy``, ...) also dispatch: ``scipy.special.erf``
called on a traced value runs :func:`erf`. ``polygamma``, ``logsumexp``, ``softmax`` and
``log_softmax`` are Python functions in scipy that convert their arguments with
``np.asarray``; call them from this module on traced values.

The rules are written with tapegrad's ops (``gammaln'`` is :func:`digamma`, whose
derivative is ``polygamma(1, x)``, and so on up), so derivatives of any order work.

Some arguments are not differentiated: the shape parameters ``a``, ``b`` of
``gammainc``, ``gammaincc`` and ``betainc``, the degrees of freedom of ``stdtr``, and the
order ``v`` (or ``n``) of the Bessel functions (their derivatives in these have no closed
form in scipy's functions). Differentiating with respect to one of them raises
:class:`NotImplementedError` naming the function and the argument, rather than returning
a zero; pass it as a constant (or through ``tg.stop_gradient``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.special as sc

from tapegrad.ops.axes import kept_shape, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    _axis_param,
    equal,
    less,
    logical_and,
    reshape,
    sum,
    where,
    zero_vjp,
)
from tapegrad.ops.elementwise import cos, exp, log, log1p, sign, sin
from tapegrad.ops.registry import Interval, elementwise, op, unary
from tapegrad.tape import Primitive, bind

__all__ = [
    "beta",
    "betainc",
    "betaln",
    "digamma",
    "erf",
    "erfc",
    "erfcinv",
    "erfinv",
    "expit",
    "gamma",
    "gammainc",
    "gammaincc",
    "gammaln",
    "gammasgn",
    "i0",
    "i1",
    "iv",
    "ive",
    "j0",
    "j1",
    "jn",
    "jv",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "ndtr",
    "ndtri",
    "poch",
    "polygamma",
    "rgamma",
    "softmax",
    "stdtr",
    "xlog1py",
    "xlogy",
    "y0",
    "y1",
    "yn",
    "yv",
]

Axis = int | Sequence[int] | None

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG_PI = math.log(math.pi)


def _not_differentiable(function: str, argument: str, differentiable: str) -> NotImplementedError:
    """The error a rule raises when asked for the cotangent of an argument it does not
    differentiate (a shape parameter, an order)."""
    return NotImplementedError(
        f"tapegrad.scipy.special.{function}: no derivative with respect to {argument} "
        f"(no closed form; tapegrad differentiates {function} in {differentiable} only). "
        f"Pass {argument} as a constant, or through tg.stop_gradient({argument}) if a zero "
        "derivative is what you mean."
    )


# =======================================================================================
# Error functions and the normal distribution function


def _erf_vjp(i, g, ans, x):
    """d erf(x)/dx = 2 / sqrt(pi) e^(-x^2)."""
    return g * (exp(-(x * x)) * _TWO_OVER_SQRT_PI)


ERF = Primitive("erf", sc.erf, _erf_vjp)


@op(sc.erf, name="special.erf", sample=unary(-2.5, 2.5))
def erf(x: ArrayLike) -> ArrayLike:
    """The error function ``2 / sqrt(pi) int_0^x e^(-t^2) dt``. VJP: ``g 2 / sqrt(pi) e^(-x^2)``."""
    return bind(ERF, (x,))


def _erfc_vjp(i, g, ans, x):
    """d erfc(x)/dx = -2 / sqrt(pi) e^(-x^2)."""
    return g * (exp(-(x * x)) * -_TWO_OVER_SQRT_PI)


ERFC = Primitive("erfc", sc.erfc, _erfc_vjp)


@op(sc.erfc, name="special.erfc", sample=unary(-2.5, 2.5))
def erfc(x: ArrayLike) -> ArrayLike:
    """``1 - erf(x)``, accurate where ``erf`` is close to 1. VJP: ``-g 2 / sqrt(pi) e^(-x^2)``."""
    return bind(ERFC, (x,))


def _erfinv_vjp(i, g, ans, x):
    """erf(erfinv(x)) = x, so d erfinv(x)/dx = 1 / erf'(ans) = sqrt(pi) / 2 e^(ans^2)."""
    return g * (exp(ans * ans) * _SQRT_PI_OVER_TWO)


ERFINV = Primitive("erfinv", sc.erfinv, _erfinv_vjp)


@op(sc.erfinv, name="special.erfinv", sample=unary(-0.9, 0.9))
def erfinv(x: ArrayLike) -> ArrayLike:
    """The inverse of ``erf`` on ``(-1, 1)`` (``+-inf`` at ``+-1``).

    VJP: ``g sqrt(pi) / 2 e^(erfinv(x)^2)``.
    """
    return bind(ERFINV, (x,))


def _ndtr_vjp(i, g, ans, x):
    """d Phi(x)/dx = phi(x) = e^(-x^2 / 2) / sqrt(2 pi)."""
    return g * (exp(x * x * -0.5) * _INV_SQRT_2PI)


NDTR = Primitive("ndtr", sc.ndtr, _ndtr_vjp)


@op(sc.ndtr, name="special.ndtr", sample=unary(-3, 3))
def ndtr(x: ArrayLike) -> ArrayLike:
    """The standard normal distribution function ``Phi(x)``. VJP: ``g e^(-x^2/2) / sqrt(2 pi)``."""
    return bind(NDTR, (x,))


def _log_ndtr_vjp(i, g, ans, x):
    """d log Phi(x)/dx = phi(x) / Phi(x) = e^(-x^2 / 2 - log Phi(x)) / sqrt(2 pi): the ratio
    is formed in log space, so it stays finite far in the left tail (where it tends to -x)."""
    return g * (exp(x * x * -0.5 - ans) * _INV_SQRT_2PI)


LOG_NDTR = Primitive("log_ndtr", sc.log_ndtr, _log_ndtr_vjp)


@op(sc.log_ndtr, name="special.log_ndtr", sample=unary(-6, 3))
def log_ndtr(x: ArrayLike) -> ArrayLike:
    """``log Phi(x)``, accurate in both tails. VJP: ``g phi(x) / Phi(x)``."""
    return bind(LOG_NDTR, (x,))


def _erfcinv_vjp(i, g, ans, x):
    """erfc(erfcinv(x)) = x, so d erfcinv(x)/dx = 1 / erfc'(ans) = -sqrt(pi) / 2 e^(ans^2)."""
    return g * (exp(ans * ans) * -_SQRT_PI_OVER_TWO)


ERFCINV = Primitive("erfcinv", sc.erfcinv, _erfcinv_vjp)


@op(sc.erfcinv, name="special.erfcinv", sample=unary(0.1, 1.9))
def erfcinv(x: ArrayLike) -> ArrayLike:
    """The inverse of ``erfc`` on ``(0, 2)`` (``+-inf`` at ``0`` and ``2``).

    VJP: ``-g sqrt(pi) / 2 e^(erfcinv(x)^2)``.
    """
    return bind(ERFCINV, (x,))


def _ndtri_vjp(i, g, ans, x):
    """Phi(ndtri(x)) = x, so d ndtri(x)/dx = 1 / phi(ans) = sqrt(2 pi) e^(ans^2 / 2)."""
    return g * (exp(ans * ans * 0.5) * _SQRT_2PI)


NDTRI = Primitive("ndtri", sc.ndtri, _ndtri_vjp)


@op(sc.ndtri, name="special.ndtri", sample=unary(0.05, 0.95))
def ndtri(x: ArrayLike) -> ArrayLike:
    """The inverse of :func:`ndtr` on ``(0, 1)``, the standard normal quantile function
    (``+-inf`` at ``0`` and ``1``).

    VJP: ``g / phi(ndtri(x)) = g sqrt(2 pi) e^(ndtri(x)^2 / 2)``.
    """
    return bind(NDTRI, (x,))


# =======================================================================================
# The log-gamma family: each derivative is the next function of the family


def _gammaln_vjp(i, g, ans, x):
    """d log|Gamma(x)|/dx = digamma(x)."""
    return g * digamma(x)


GAMMALN = Primitive("gammaln", sc.gammaln, _gammaln_vjp)


@op(sc.gammaln, name="special.gammaln", sample=unary(0.2, 5))
def gammaln(x: ArrayLike) -> ArrayLike:
    """``log |Gamma(x)|`` (``inf`` at the poles ``0, -1, -2, ...``). VJP: ``g digamma(x)``."""
    return bind(GAMMALN, (x,))


def _digamma_vjp(i, g, ans, x):
    """d digamma(x)/dx = polygamma(1, x), the trigamma function."""
    return g * polygamma(1, x)


DIGAMMA = Primitive("digamma", sc.digamma, _digamma_vjp)


@op(sc.digamma, name="special.digamma", sample=unary(0.2, 5))
def digamma(x: ArrayLike) -> ArrayLike:
    """``psi(x) = d log Gamma(x)/dx`` (scipy's ``digamma``, alias ``psi``).

    VJP: ``g polygamma(1, x)``.
    """
    return bind(DIGAMMA, (x,))


def _polygamma_vjp(i, g, ans, n, x):
    """d polygamma(n, x)/dx = polygamma(n + 1, x); the order ``n`` is an integer, not
    differentiated (a traced ``n`` raises, never a zero)."""
    if i == 0:
        raise _not_differentiable("polygamma", "n", "x")
    return g * polygamma(n + 1, x)


POLYGAMMA = Primitive("polygamma", sc.polygamma, _polygamma_vjp)


def _sample_polygamma(draw):
    shape = draw.shape()
    return (draw.integers(0, 2), draw.array(shape, Interval(0.5, 5))), {}


# scipy's polygamma returns float64 for float32 x (it multiplies by gamma(n + 1.0)).
@op(sc.polygamma, name="special.polygamma", sample=_sample_polygamma, argnums=(1,), float32=False)
def polygamma(n: ArrayLike, x: ArrayLike) -> ArrayLike:
    """``digamma`` differentiated ``n`` times (``n = 0`` is ``digamma``), broadcasting the
    integer orders ``n`` against ``x``; ``n`` is not differentiated (a traced ``n``, a
    float standing for an order, raises :class:`NotImplementedError` if its derivative is
    asked for).

    VJP: ``g polygamma(n + 1, x)``.
    """
    return bind(POLYGAMMA, (n, x))


def _betaln_vjp(i, g, ans, a, b):
    """log|B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b), so
    d/da = digamma(a) - digamma(a + b), and likewise for b."""
    return g * (digamma(a if i == 0 else b) - digamma(a + b))


BETALN = Primitive("betaln", sc.betaln, _betaln_vjp)


@op(
    sc.betaln,
    name="special.betaln",
    sample=elementwise(Interval(0.3, 4), Interval(0.3, 4)),
    argnums=(0, 1),
)
def betaln(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """``log |B(a, b)|``, the log of the beta function, broadcasting.

    VJP: ``(g (digamma(a) - digamma(a + b)), g (digamma(b) - digamma(a + b)))``.
    """
    return bind(BETALN, (a, b))


# ---------------------------------------------------------------------------------------
# The gamma function, its reciprocal and sign, the beta function, Pochhammer's symbol


def _gamma_vjp(i, g, ans, x):
    """d Gamma(x)/dx = Gamma(x) digamma(x)."""
    return g * (ans * digamma(x))


GAMMA = Primitive("gamma", sc.gamma, _gamma_vjp)


@op(sc.gamma, name="special.gamma", sample=unary(-2.8, 4, avoid=(-2, -1, 0), gap=0.2))
def gamma(x: ArrayLike) -> ArrayLike:
    """The gamma function (scipy's values at the poles ``0, -1, -2, ...``: ``inf`` or nan).

    VJP: ``g Gamma(x) digamma(x)``.
    """
    return bind(GAMMA, (x,))


def _rgamma_vjp(i, g, ans, x):
    """d (1/Gamma(x))/dx = -digamma(x) / Gamma(x) = -rgamma(x) digamma(x) for x >= 1/2.

    Below 1/2 that product is 0 * nan at the poles 0, -1, -2, ..., where 1/Gamma is 0 and
    its slope is (-1)^n n!. There the reflection formula 1/Gamma(x) = Gamma(1 - x)
    sin(pi x) / pi, an entire function of x < 1, gives the derivative
    Gamma(1 - x) (cos(pi x) - digamma(1 - x) sin(pi x) / pi), finite everywhere below 1/2
    (no division by Gamma). Each side reads a safe x where the other is chosen, so no
    nan reaches the unchosen branch's rules at higher orders."""
    left = less(x, 0.5)
    x_left = where(left, x, 0.0)
    x_right = where(left, 1.0, x)
    reflected = gamma(1.0 - x_left)
    d_left = reflected * (
        cos(x_left * math.pi) - sin(x_left * math.pi) * digamma(1.0 - x_left) / math.pi
    )
    d_right = -(rgamma(x_right) * digamma(x_right))
    return g * where(left, d_left, d_right)


RGAMMA = Primitive("rgamma", sc.rgamma, _rgamma_vjp)


@op(
    sc.rgamma,
    name="special.rgamma",
    sample=unary(-2.6, 4),
    convention="entire: value 0 at the poles 0, -1, -2, ... of Gamma, slope (-1)^n n! there",
)
def rgamma(x: ArrayLike) -> ArrayLike:
    """``1 / Gamma(x)``, an entire function: 0 at ``x = 0, -1, -2, ...``.

    VJP: ``-g rgamma(x) digamma(x)``; for ``x < 1/2``, from the reflection formula,
    ``g Gamma(1 - x) (cos(pi x) - digamma(1 - x) sin(pi x) / pi)``, which is
    ``g (-1)^n n!`` at ``x = -n``.
    """
    return bind(RGAMMA, (x,))


GAMMASGN = Primitive("gammasgn", sc.gammasgn, zero_vjp)


@op(sc.gammasgn, name="special.gammasgn", sample=unary(-2.8, 4, avoid=(-2, -1, 0), gap=0.1))
def gammasgn(x: ArrayLike) -> ArrayLike:
    """The sign of ``Gamma(x)``: ``1`` for ``x > 0``, ``+-1`` alternating between the poles
    (nan at ``-1, -2, ...``, as in scipy). Piecewise constant: derivative 0."""
    return bind(GAMMASGN, (x,))


def _beta_vjp(i, g, ans, a, b):
    """B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), so d/da = B(a, b) (digamma(a) -
    digamma(a + b)), and likewise for b."""
    return g * (ans * (digamma(a if i == 0 else b) - digamma(a + b)))


BETA = Primitive("beta", sc.beta, _beta_vjp)


@op(
    sc.beta,
    name="special.beta",
    sample=elementwise(Interval(0.3, 4), Interval(0.3, 4)),
    argnums=(0, 1),
)
def beta(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """The beta function ``B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b)``, broadcasting.

    VJP: ``(g B (digamma(a) - digamma(a + b)), g B (digamma(b) - digamma(a + b)))``.
    """
    return bind(BETA, (a, b))


def _poch_vjp(i, g, ans, z, m):
    """poch(z, m) = Gamma(z + m) / Gamma(z): d/dz = poch (digamma(z + m) - digamma(z)),
    d/dm = poch digamma(z + m)."""
    if i == 0:
        return g * (ans * (digamma(z + m) - digamma(z)))
    return g * (ans * digamma(z + m))


POCH = Primitive("poch", sc.poch, _poch_vjp)


@op(
    sc.poch,
    name="special.poch",
    sample=elementwise(Interval(0.3, 4), Interval(-0.2, 2)),
    argnums=(0, 1),
)
def poch(z: ArrayLike, m: ArrayLike) -> ArrayLike:
    """Pochhammer's symbol ``(z)_m = Gamma(z + m) / Gamma(z)``, broadcasting.

    VJP: ``(g poch (digamma(z + m) - digamma(z)), g poch digamma(z + m))``.
    """
    return bind(POCH, (z, m))


# ---------------------------------------------------------------------------------------
# Regularized incomplete gamma and beta functions, Student's t distribution function:
# differentiable in x only (their derivatives in the shape parameters have no closed form)


def _gamma_density(a, x):
    """x^(a - 1) e^(-x) / Gamma(a), in log space: finite where each factor would
    overflow, ``inf`` at ``x = 0`` for ``a < 1`` and 1 there for ``a = 1``."""
    return exp(xlogy(a - 1.0, x) - x - gammaln(a))


def _gammainc_vjp(i, g, ans, a, x):
    """d P(a, x)/dx = x^(a - 1) e^(-x) / Gamma(a); the parameter a is not differentiated."""
    if i == 0:
        raise _not_differentiable("gammainc", "a", "x")
    return g * _gamma_density(a, x)


GAMMAINC = Primitive("gammainc", sc.gammainc, _gammainc_vjp)


_GAMMAINC = {
    "sample": elementwise(Interval(0.5, 4), Interval(0.1, 5)),
    "argnums": (1,),
    "float32": False,  # float64 a with float32 x is float64; both float32 stay float32
}


@op(sc.gammainc, name="special.gammainc", **_GAMMAINC)
def gammainc(a: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The regularized lower incomplete gamma function
    ``P(a, x) = int_0^x t^(a - 1) e^(-t) dt / Gamma(a)``, broadcasting; differentiable in
    ``x`` only (``a``: :class:`NotImplementedError`).

    VJP: ``g x^(a - 1) e^(-x) / Gamma(a)`` (computed as ``e^((a - 1) log x - x - gammaln(a))``).
    """
    return bind(GAMMAINC, (a, x))


def _gammaincc_vjp(i, g, ans, a, x):
    """Q(a, x) = 1 - P(a, x): d Q/dx = -x^(a - 1) e^(-x) / Gamma(a); a not differentiated."""
    if i == 0:
        raise _not_differentiable("gammaincc", "a", "x")
    return -(g * _gamma_density(a, x))


GAMMAINCC = Primitive("gammaincc", sc.gammaincc, _gammaincc_vjp)


@op(sc.gammaincc, name="special.gammaincc", **_GAMMAINC)
def gammaincc(a: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The regularized upper incomplete gamma function ``Q(a, x) = 1 - P(a, x)``,
    broadcasting; differentiable in ``x`` only (``a``: :class:`NotImplementedError`).

    VJP: ``-g x^(a - 1) e^(-x) / Gamma(a)``.
    """
    return bind(GAMMAINCC, (a, x))


def _betainc_vjp(i, g, ans, a, b, x):
    """d I_x(a, b)/dx = x^(a - 1) (1 - x)^(b - 1) / B(a, b), the beta density, in log space;
    the parameters a and b are not differentiated."""
    if i < 2:
        raise _not_differentiable("betainc", "ab"[i], "x")
    return g * exp(xlogy(a - 1.0, x) + xlog1py(b - 1.0, -x) - betaln(a, b))


BETAINC = Primitive("betainc", sc.betainc, _betainc_vjp)


@op(
    sc.betainc,
    name="special.betainc",
    sample=elementwise(Interval(0.5, 4), Interval(0.5, 4), Interval(0.05, 0.95)),
    argnums=(2,),
    float32=False,  # float64 a, b with float32 x is float64
)
def betainc(a: ArrayLike, b: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The regularized incomplete beta function
    ``I_x(a, b) = int_0^x t^(a - 1) (1 - t)^(b - 1) dt / B(a, b)``, broadcasting;
    differentiable in ``x`` only (``a``, ``b``: :class:`NotImplementedError`).

    VJP: ``g x^(a - 1) (1 - x)^(b - 1) / B(a, b)``.
    """
    return bind(BETAINC, (a, b, x))


def t_log_density(df: ArrayLike, t: ArrayLike) -> ArrayLike:
    """The log density of Student's t distribution with ``df`` degrees of freedom, written
    as scipy writes it: ``log poch(df / 2, 1 / 2) - (log df + log pi) / 2 -
    (df + 1) / 2 log1p(t^2 / df)`` (differentiable in both)."""
    return log(poch(df * 0.5, 0.5)) - (log(df) + _LOG_PI) * 0.5 - (df + 1) / 2 * log1p(t * t / df)


def _stdtr_vjp(i, g, ans, df, t):
    """d stdtr(df, t)/dt is the t density; df is not differentiated."""
    if i == 0:
        raise _not_differentiable("stdtr", "df", "t")
    return g * exp(t_log_density(df, t))


STDTR = Primitive("stdtr", sc.stdtr, _stdtr_vjp)


@op(
    sc.stdtr,
    name="special.stdtr",
    sample=elementwise(Interval(0.5, 10), Interval(-4, 4)),
    argnums=(1,),
    float32=False,  # float64 df with float32 t is float64
)
def stdtr(df: ArrayLike, t: ArrayLike) -> ArrayLike:
    """Student's t distribution function with ``df > 0`` degrees of freedom, broadcasting;
    differentiable in ``t`` only (``df``: :class:`NotImplementedError`).

    VJP: ``g Gamma((df + 1) / 2) / (Gamma(df / 2) sqrt(df pi)) (1 + t^2 / df)^(-(df + 1) / 2)``.
    """
    return bind(STDTR, (df, t))


# =======================================================================================
# Bessel functions, differentiated in x (the order is not differentiated). Each
# derivative is a recurrence, d/dx C_v = (C_{v-1} -+ C_{v+1}) / 2, which needs no division
# by x, so J_1'(0) = 1/2 and I_1'(0) = 1/2 come out exactly.


def _j0_vjp(i, g, ans, x):
    """J_0' = -J_1."""
    return -(g * j1(x))


J0 = Primitive("j0", sc.j0, _j0_vjp)


@op(sc.j0, name="special.j0", sample=unary(-8, 8))
def j0(x: ArrayLike) -> ArrayLike:
    """The Bessel function of the first kind of order 0. VJP: ``-g J_1(x)``."""
    return bind(J0, (x,))


def _j1_vjp(i, g, ans, x):
    """J_1' = (J_0 - J_2) / 2, which is J_0 - J_1 / x away from 0 and 1/2 at 0."""
    return g * ((j0(x) - jv(2.0, x)) * 0.5)


J1 = Primitive("j1", sc.j1, _j1_vjp)


@op(sc.j1, name="special.j1", sample=unary(-8, 8))
def j1(x: ArrayLike) -> ArrayLike:
    """The Bessel function of the first kind of order 1.

    VJP: ``g (J_0(x) - J_2(x)) / 2`` (``= g (J_0 - J_1 / x)`` for ``x != 0``).
    """
    return bind(J1, (x,))


def _y0_vjp(i, g, ans, x):
    """Y_0' = -Y_1."""
    return -(g * y1(x))


Y0 = Primitive("y0", sc.y0, _y0_vjp)


@op(sc.y0, name="special.y0", sample=unary(0.5, 8))
def y0(x: ArrayLike) -> ArrayLike:
    """The Bessel function of the second kind of order 0, on ``x > 0`` (``-inf`` at 0, nan
    below). VJP: ``-g Y_1(x)``."""
    return bind(Y0, (x,))


def _y1_vjp(i, g, ans, x):
    """Y_1' = (Y_0 - Y_2) / 2 = Y_0 - Y_1 / x."""
    return g * ((y0(x) - yv(2.0, x)) * 0.5)


Y1 = Primitive("y1", sc.y1, _y1_vjp)


@op(sc.y1, name="special.y1", sample=unary(0.5, 8))
def y1(x: ArrayLike) -> ArrayLike:
    """The Bessel function of the second kind of order 1, on ``x > 0``.

    VJP: ``g (Y_0(x) - Y_2(x)) / 2`` (``= g (Y_0 - Y_1 / x)``).
    """
    return bind(Y1, (x,))


def _jv_vjp(i, g, ans, v, x):
    """d J_v(x)/dx = (J_{v-1}(x) - J_{v+1}(x)) / 2; the order v is not differentiated."""
    if i == 0:
        raise _not_differentiable("jv", "v", "x")
    return g * ((jv(v - 1.0, x) - jv(v + 1.0, x)) * 0.5)


JV = Primitive("jv", sc.jv, _jv_vjp)

_ORDER_NOT_DIFFERENTIATED = "the order v (or n) is not differentiated: NotImplementedError"
#: Orders drawn in quarters: integers and fractions, none so small that scipy's Y_v fails
_ORDERS = Interval(0, 3, step=0.25)


@op(
    sc.jv,
    name="special.jv",
    sample=elementwise(_ORDERS, Interval(0.2, 8)),
    argnums=(1,),
    float32=False,
    convention=_ORDER_NOT_DIFFERENTIATED,
)
def jv(v: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The Bessel function of the first kind of real order ``v``, broadcasting (nan for
    ``x < 0`` unless ``v`` is an integer, as in scipy).

    VJP: ``g (J_{v-1}(x) - J_{v+1}(x)) / 2``.
    """
    return bind(JV, (v, x))


def _sample_integer_order(low: float, high: float):
    def sample(draw):
        return (draw.integers(0, 3), draw.array(draw.shape(), Interval(low, high))), {}

    return sample


# scipy's jn is jv (one ufunc): jn registers integer orders, where x < 0 is allowed.
@op(
    sc.jn,
    name="special.jn",
    sample=_sample_integer_order(-8, 8),
    argnums=(1,),
    convention=_ORDER_NOT_DIFFERENTIATED,
)
def jn(n: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The Bessel function of the first kind of integer order ``n`` (scipy's ``jn``, the
    same function as ``jv``), for every real ``x``.

    VJP: ``g (J_{n-1}(x) - J_{n+1}(x)) / 2``.
    """
    return bind(JV, (n, x))


def _yv_vjp(i, g, ans, v, x):
    """d Y_v(x)/dx = (Y_{v-1}(x) - Y_{v+1}(x)) / 2; the order v is not differentiated."""
    if i == 0:
        raise _not_differentiable("yv", "v", "x")
    return g * ((yv(v - 1.0, x) - yv(v + 1.0, x)) * 0.5)


YV = Primitive("yv", sc.yv, _yv_vjp)


@op(
    sc.yv,
    name="special.yv",
    sample=elementwise(Interval(0, 2, step=0.25), Interval(1, 8)),
    argnums=(1,),
    float32=False,
    convention=_ORDER_NOT_DIFFERENTIATED,
)
def yv(v: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The Bessel function of the second kind of real order ``v``, on ``x > 0``,
    broadcasting.

    VJP: ``g (Y_{v-1}(x) - Y_{v+1}(x)) / 2``.
    """
    return bind(YV, (v, x))


def _yn_vjp(i, g, ans, n, x):
    """d Y_n(x)/dx = (Y_{n-1}(x) - Y_{n+1}(x)) / 2 (Y_{-1} = -Y_1); n not differentiated."""
    if i == 0:
        raise _not_differentiable("yn", "n", "x")
    return g * ((yn(n - 1, x) - yn(n + 1, x)) * 0.5)


YN = Primitive("yn", sc.yn, _yn_vjp)


@op(
    sc.yn,
    name="special.yn",
    sample=_sample_integer_order(1, 8),
    argnums=(1,),
    float32=False,  # scipy: yn(int, float32) is float64
    convention=_ORDER_NOT_DIFFERENTIATED,
)
def yn(n: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The Bessel function of the second kind of integer order ``n``, on ``x > 0``.

    VJP: ``g (Y_{n-1}(x) - Y_{n+1}(x)) / 2``.
    """
    return bind(YN, (n, x))


def _i0_vjp(i, g, ans, x):
    """I_0' = I_1."""
    return g * i1(x)


I0 = Primitive("i0", sc.i0, _i0_vjp)


# scipy's iv is nan at subnormal x (iv(2.0, 1e-309)), so derivatives of i0 and i1 that
# reach iv are nan there: the tests keep |x| >= 1e-290 (x = 0 itself is exact: test_scipy_ops)
@op(sc.i0, name="special.i0", sample=unary(-4, 4, avoid=(0.0,), gap=1e-290))
def i0(x: ArrayLike) -> ArrayLike:
    """The modified Bessel function of the first kind of order 0. VJP: ``g I_1(x)``."""
    return bind(I0, (x,))


def _i1_vjp(i, g, ans, x):
    """I_1' = (I_0 + I_2) / 2, which is I_0 - I_1 / x away from 0 and 1/2 at 0."""
    return g * ((i0(x) + iv(2.0, x)) * 0.5)


I1 = Primitive("i1", sc.i1, _i1_vjp)


@op(sc.i1, name="special.i1", sample=unary(-4, 4, avoid=(0.0,), gap=1e-290))
def i1(x: ArrayLike) -> ArrayLike:
    """The modified Bessel function of the first kind of order 1.

    VJP: ``g (I_0(x) + I_2(x)) / 2`` (``= g (I_0 - I_1 / x)`` for ``x != 0``).
    """
    return bind(I1, (x,))


def _iv_vjp(i, g, ans, v, x):
    """d I_v(x)/dx = (I_{v-1}(x) + I_{v+1}(x)) / 2; the order v is not differentiated."""
    if i == 0:
        raise _not_differentiable("iv", "v", "x")
    return g * ((iv(v - 1.0, x) + iv(v + 1.0, x)) * 0.5)


IV = Primitive("iv", sc.iv, _iv_vjp)


@op(
    sc.iv,
    name="special.iv",
    sample=elementwise(_ORDERS, Interval(0.2, 4)),
    argnums=(1,),
    float32=False,
    convention=_ORDER_NOT_DIFFERENTIATED,
)
def iv(v: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The modified Bessel function of the first kind of real order ``v``, broadcasting
    (nan for ``x < 0`` unless ``v`` is an integer, as in scipy).

    VJP: ``g (I_{v-1}(x) + I_{v+1}(x)) / 2``.
    """
    return bind(IV, (v, x))


def _ive_vjp(i, g, ans, v, x):
    """ive(v, x) = I_v(x) e^(-|x|), so d/dx = (ive(v - 1, x) + ive(v + 1, x)) / 2 -
    sign(x) ive(v, x); at x = 0 (a kink of |x|) sign(0) = 0 takes the mean of the two
    one-sided slopes. The order v is not differentiated."""
    if i == 0:
        raise _not_differentiable("ive", "v", "x")
    return g * ((ive(v - 1.0, x) + ive(v + 1.0, x)) * 0.5 - sign(x) * ans)


IVE = Primitive("ive", sc.ive, _ive_vjp)


@op(
    sc.ive,
    name="special.ive",
    sample=elementwise(_ORDERS, Interval(0.2, 6)),
    argnums=(1,),
    float32=False,
    convention="at x = 0, a kink of e^(-|x|), the mean of the one-sided slopes (sign(0) = 0); "
    + _ORDER_NOT_DIFFERENTIATED,
)
def ive(v: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The exponentially scaled modified Bessel function ``I_v(x) e^(-|x|)`` of real order
    ``v``, broadcasting, for real ``x``.

    VJP: ``g ((ive(v - 1, x) + ive(v + 1, x)) / 2 - sign(x) ive(v, x))``.
    """
    return bind(IVE, (v, x))


# =======================================================================================
# The logistic function and its inverse


def _expit_vjp(i, g, ans, x):
    """d expit(x)/dx = expit(x) (1 - expit(x)) = ans (1 - ans)."""
    return g * (ans * (1 - ans))


EXPIT = Primitive("expit", sc.expit, _expit_vjp)


@op(sc.expit, name="special.expit", sample=unary(-4, 4))
def expit(x: ArrayLike) -> ArrayLike:
    """The logistic sigmoid ``1 / (1 + e^-x)``. VJP: ``g expit(x) (1 - expit(x))``."""
    return bind(EXPIT, (x,))


def _logit_vjp(i, g, ans, x):
    """d log(x / (1 - x))/dx = 1 / x + 1 / (1 - x) = 1 / (x (1 - x))."""
    return g / (x * (1 - x))


LOGIT = Primitive("logit", sc.logit, _logit_vjp)


@op(sc.logit, name="special.logit", sample=unary(0.05, 0.95))
def logit(x: ArrayLike) -> ArrayLike:
    """``log(x / (1 - x))``, the inverse of ``expit``, on ``(0, 1)``. VJP: ``g / (x (1 - x))``."""
    return bind(LOGIT, (x,))


# =======================================================================================
# x log y and x log(1 + y): zero where x is zero, whatever y is


_XLOGY_CONVENTION = (
    "value 0 where x = 0 (even at y = 0); there the derivative in y is 0 and in x is log(y) "
    "(-inf at y = 0)"
)


def _xlogy_vjp(i, g, ans, x, y):
    """d(x log y)/dx = log y; d(x log y)/dy = x / y, which is 0 where x = 0: the function is
    identically 0 on that line, y = 0 included (there y is replaced by 1 to avoid 0/0)."""
    if i == 0:
        return g * log(y)
    return g * (x / where(logical_and(equal(x, 0), equal(y, 0)), 1.0, y))


XLOGY = Primitive("xlogy", sc.xlogy, _xlogy_vjp)


@op(
    sc.xlogy,
    name="special.xlogy",
    sample=elementwise(Interval(-2, 2), Interval(0.2, 3)),
    argnums=(0, 1),
    convention=_XLOGY_CONVENTION,
)
def xlogy(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x log(y)``, and 0 where ``x = 0`` (so ``xlogy(p, p)`` is 0 at ``p = 0``).

    VJP: ``(g log y, g x / y)``, the second 0 where ``x = 0``.
    """
    return bind(XLOGY, (x, y))


def _xlog1py_vjp(i, g, ans, x, y):
    """d(x log(1 + y))/dx = log(1 + y); d/dy = x / (1 + y), which is 0 where x = 0 (y = -1
    included: there 1 + y is replaced by 1 to avoid 0/0)."""
    if i == 0:
        return g * log1p(y)
    return g * (x / where(logical_and(equal(x, 0), equal(y, -1)), 1.0, y + 1))


XLOG1PY = Primitive("xlog1py", sc.xlog1py, _xlog1py_vjp)


@op(
    sc.xlog1py,
    name="special.xlog1py",
    sample=elementwise(Interval(-2, 2), Interval(-0.8, 3)),
    argnums=(0, 1),
    convention=(
        "value 0 where x = 0 (even at y = -1); there the derivative in y is 0 and in x is "
        "log1p(y) (-inf at y = -1)"
    ),
)
def xlog1py(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x log(1 + y)``, and 0 where ``x = 0``.

    VJP: ``(g log1p(y), g x / (1 + y))``, the second 0 where ``x = 0``.
    """
    return bind(XLOG1PY, (x, y))


# =======================================================================================
# logsumexp, softmax and log_softmax, with scipy's signatures (axis=None: every element)


def _broadcast_shape(a: ArrayLike, b: ArrayLike | None) -> tuple[int, ...]:
    return shape_of(a) if b is None else np.broadcast_shapes(shape_of(a), shape_of(b))


def _logsumexp_forward(a, b, axis=None, keepdims=False, return_sign=False):
    out = sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    return out[0] if return_sign else out


def _logsumexp_sign_forward(a, b, axis=None, keepdims=False):
    return sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)[1]


LOGSUMEXP_SIGN = Primitive("logsumexp_sign", _logsumexp_sign_forward, zero_vjp)


def _logsumexp_vjp(i, g, ans, a, b, axis=None, keepdims=False, return_sign=False):
    """With ``S = sum(b e^a)`` and ``ans = log|S|``: d ans/da_j = b_j e^(a_j) / S =
    s b_j e^(a_j - ans) and d ans/db_j = s e^(a_j - ans), ``s`` the sign of ``S`` (1 unless
    ``return_sign``, since scipy's value is nan for a negative sum otherwise)."""
    kept = kept_shape(_broadcast_shape(a, b), axis)
    w = reshape(g, kept) * exp(a - reshape(ans, kept))
    if return_sign:
        w = w * bind(LOGSUMEXP_SIGN, (a, b), {"axis": axis, "keepdims": True})
    return w * b if i == 0 and b is not None else w


LOGSUMEXP = Primitive("logsumexp_b", _logsumexp_forward, _logsumexp_vjp)


def _sample_logsumexp(draw):
    a_shape, b_shape = draw.broadcastable_shapes(2)
    ndim = len(np.broadcast_shapes(a_shape, b_shape))
    axis = draw.axis(ndim)
    return_sign = draw.choice((False, True))
    sign = draw.choice((1.0, -1.0)) if return_sign else 1.0
    a = draw.array(a_shape, Interval(-3, 3))
    b = draw.array(b_shape, Interval(0.5, 2)) * sign
    kwargs = {"keepdims": draw.choice((False, True)), "return_sign": return_sign}
    return (a, axis, b), kwargs


@op(sc.logsumexp, name="special.logsumexp", sample=_sample_logsumexp, argnums=(0, 2))
def logsumexp(
    a: ArrayLike,
    axis: Axis = None,
    b: ArrayLike = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> ArrayLike:
    """``log(sum(b e^a))`` over ``axis`` (every element by default), without overflow;
    ``b`` (scale factors, broadcast against ``a``) is differentiable. With
    ``return_sign=True`` returns ``(log|S|, sign(S))`` for ``S = sum(b e^a)`` (the sign is
    piecewise constant: no cotangent); without it a negative ``S`` gives nan, as in scipy.

    VJP: ``g b e^(a - ans)`` for ``a``, ``g e^(a - ans)`` for ``b`` (times the sign of ``S``).
    """
    axis = _axis_param(axis)
    params = {"axis": axis, "keepdims": bool(keepdims), "return_sign": bool(return_sign)}
    out = bind(LOGSUMEXP, (a, b), params)
    if not return_sign:
        return out
    return out, bind(LOGSUMEXP_SIGN, (a, b), {"axis": axis, "keepdims": bool(keepdims)})


def _sample_softmax(draw):
    shape = draw.shape()
    return (draw.array(shape, Interval(-3, 3)),), {"axis": draw.axis(len(shape))}


def _softmax_vjp(i, g, ans, x, axis=None):
    """d s_j/dx_k = s_j ([j = k] - s_k) within each slice: VJP ``s (g - sum(g s))``."""
    return ans * (g - sum(g * ans, axis=axis, keepdims=True))


SOFTMAX = Primitive("softmax_scipy", sc.softmax, _softmax_vjp)


@op(sc.softmax, name="special.softmax", sample=_sample_softmax)
def softmax(x: ArrayLike, axis: Axis = None) -> ArrayLike:
    """``e^x / sum(e^x)`` over ``axis``: every element by default, as in scipy (tapegrad's
    own ``tg.softmax`` defaults to the last axis).

    VJP: ``s (g - sum(g s, axis))`` with ``s = softmax(x)``.
    """
    return bind(SOFTMAX, (x,), {"axis": _axis_param(axis)})


def _log_softmax_vjp(i, g, ans, x, axis=None):
    """d log s_j/dx_k = [j = k] - s_k: VJP ``g - e^ans sum(g)``."""
    return g - exp(ans) * sum(g, axis=axis, keepdims=True)


LOG_SOFTMAX = Primitive("log_softmax_scipy", sc.log_softmax, _log_softmax_vjp)


@op(sc.log_softmax, name="special.log_softmax", sample=_sample_softmax)
def log_softmax(x: ArrayLike, axis: Axis = None) -> ArrayLike:
    """``x - logsumexp(x, axis)``: every element by default, as in scipy.

    VJP: ``g - softmax(x) sum(g, axis)``.
    """
    return bind(LOG_SOFTMAX, (x,), {"axis": _axis_param(axis)})
