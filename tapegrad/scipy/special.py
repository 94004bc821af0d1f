"""``scipy.special``'s functions with derivatives: error functions, the log-gamma family,
the logistic pair, ``x log y``, and the log-sum-exp family with scipy's defaults.

Each forward is scipy's own function, so values, dtypes and edge cases are scipy's. The
ufuncs among them (``erf``, ``gammaln``, ``xlogy``, ...) also dispatch: ``scipy.special.erf``
called on a traced value runs :func:`erf`. ``polygamma``, ``logsumexp``, ``softmax`` and
``log_softmax`` are Python functions in scipy that convert their arguments with
``np.asarray``; call them from this module on traced values.

The rules are written with tapegrad's ops (``gammaln'`` is :func:`digamma`, whose
derivative is ``polygamma(1, x)``, and so on up), so derivatives of any order work.
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
    logical_and,
    reshape,
    sum,
    where,
    zero_vjp,
)
from tapegrad.ops.elementwise import exp, log, log1p
from tapegrad.ops.registry import Interval, elementwise, op, unary
from tapegrad.tape import Primitive, bind

__all__ = [
    "betaln",
    "digamma",
    "erf",
    "erfc",
    "erfinv",
    "expit",
    "gammaln",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "ndtr",
    "polygamma",
    "softmax",
    "xlog1py",
    "xlogy",
]

Axis = int | Sequence[int] | None

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


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
    differentiated."""
    if i == 0:
        return None
    return g * polygamma(n + 1, x)


POLYGAMMA = Primitive("polygamma", sc.polygamma, _polygamma_vjp)


def _sample_polygamma(draw):
    shape = draw.shape()
    return (draw.integers(0, 2), draw.array(shape, Interval(0.5, 5))), {}


# scipy's polygamma returns float64 for float32 x (it multiplies by gamma(n + 1.0)).
@op(sc.polygamma, name="special.polygamma", sample=_sample_polygamma, argnums=(1,), float32=False)
def polygamma(n: ArrayLike, x: ArrayLike) -> ArrayLike:
    """``digamma`` differentiated ``n`` times (``n = 0`` is ``digamma``), broadcasting the
    integer orders ``n`` against ``x``; ``n`` gets no cotangent.

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
