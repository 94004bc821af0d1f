"""``scipy.stats``' distributions with derivatives.

- ``norm.pdf``, ``logpdf``, ``cdf``, ``logcdf``, ``sf``, ``logsf``, ``ppf``, ``isf`` with
  ``loc`` and ``scale`` (differentiable, broadcasting against ``x``);
- ``t.pdf``, ``t.logpdf`` (every argument differentiable) and ``t.cdf`` (not in ``df``:
  it is :func:`~tapegrad.scipy.special.stdtr`, whose derivative in ``df`` has no closed
  form); ``chi2``, ``gamma`` and ``beta``'s ``pdf`` and ``logpdf``, in every argument;
- ``poisson.pmf``, ``poisson.logpmf``, in ``mu``;
- ``dirichlet.pdf``, ``dirichlet.logpdf``, in ``x`` and ``alpha``;
- ``multivariate_normal.logpdf(x, mean=None, cov=1)`` and ``pdf``, written with
  tapegrad's ``cholesky`` and :func:`tapegrad.scipy.linalg.solve_triangular`.

They are composites of tapegrad's ops (no new primitive), following scipy's arithmetic:
``z = (x - loc) / scale`` in the inputs' dtype, then float64, as scipy computes every
density in float64 (float32 inputs give float64 results, so their specs say
``float32=False``; ``dirichlet`` keeps float32, as scipy does). A ``scale`` that is not
positive gives nan, as in scipy; so do invalid shape parameters; outside the support a
log density is ``-inf`` and a density 0, with slope 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.stats as sst

from tapegrad.numpy.building import asarray
from tapegrad.ops.arranging import diagonal
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    cast,
    equal,
    greater,
    greater_equal,
    less_equal,
    logical_and,
    reshape,
    sum,
    transpose,
    where,
)
from tapegrad.ops.elementwise import exp, floor, log
from tapegrad.ops.linalg import cholesky
from tapegrad.ops.registry import Interval, op
from tapegrad.ops.shaping import concatenate
from tapegrad.scipy.linalg import solve_triangular
from tapegrad.scipy.special import (
    betaln,
    gammaln,
    log_ndtr,
    ndtr,
    ndtri,
    stdtr,
    t_log_density,
    xlog1py,
    xlogy,
)

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]

_LOG_2 = math.log(2)
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2PI = math.log(2 * math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)


def _float64(x: ArrayLike) -> ArrayLike:
    """``x`` (an array, a number or nested lists) in scipy's result dtype: float64 for
    anything up to float64."""
    x = asarray(x)
    dtype = np.promote_types(dtype_of(x), np.float64)
    return x if dtype_of(x) == dtype else cast(x, dtype)


def _scalar(out: ArrayLike) -> ArrayLike:
    """A 0-d result as a numpy scalar, as scipy returns it (``where`` gives 0-d arrays)."""
    return reshape(out, (-1,))[0] if shape_of(out) == () else out


def _standardized(x: ArrayLike, loc: ArrayLike, scale: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """``(z, scale)`` with ``z = (x - loc) / scale`` as scipy computes it; a ``scale`` that is
    not positive is nan."""
    scale = where(greater(scale, 0), scale, np.nan)
    return _float64((x - loc) / scale), scale


def _sample_norm(draw):
    shapes = draw.broadcastable_shapes(3)
    intervals = (Interval(-3, 3), Interval(-1, 1), Interval(0.5, 2))
    return tuple(draw.array(s, i) for s, i in zip(shapes, intervals, strict=True)), {}


_NORM = {"sample": _sample_norm, "argnums": (0, 1, 2), "float32": False}  # scipy: float64


def _sample_quantile(draw):
    shapes = draw.broadcastable_shapes(3)
    intervals = (Interval(0.05, 0.95), Interval(-1, 1), Interval(0.5, 2))
    return tuple(draw.array(s, i) for s, i in zip(shapes, intervals, strict=True)), {}


_QUANTILE = {"argnums": (0, 1, 2), "float32": False}


class norm_gen:
    """The normal distribution with mean ``loc`` and standard deviation ``scale``, as
    ``scipy.stats.norm``: ``tapegrad.scipy.stats.norm.logpdf(x, loc, scale)``. Every
    argument broadcasts and is differentiable."""

    @staticmethod
    @op(sst.norm.pdf, name="stats.norm.pdf", **_NORM)
    def pdf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``e^(-z^2 / 2) / (sqrt(2 pi) scale)`` with ``z = (x - loc) / scale``.

        VJP: ``g p (-z, z, z^2 - 1) / scale`` for ``(x, loc, scale)``, ``p`` the density.
        """
        z, scale = _standardized(x, loc, scale)
        return exp(z * z * -0.5) / _SQRT_2PI / scale

    @staticmethod
    @op(sst.norm.logpdf, name="stats.norm.logpdf", **_NORM)
    def logpdf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``-z^2 / 2 - log sqrt(2 pi) - log scale`` with ``z = (x - loc) / scale``.

        VJP: ``g (-z, z, z^2 - 1) / scale`` for ``(x, loc, scale)``.
        """
        z, scale = _standardized(x, loc, scale)
        return z * z * -0.5 - _LOG_SQRT_2PI - log(scale)

    @staticmethod
    @op(sst.norm.cdf, name="stats.norm.cdf", **_NORM)
    def cdf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``Phi(z)`` with ``z = (x - loc) / scale`` (:func:`~tapegrad.scipy.special.ndtr`).

        VJP: ``g phi(z) (1, -1, -z) / scale`` for ``(x, loc, scale)``.
        """
        z, _ = _standardized(x, loc, scale)
        return ndtr(z)

    @staticmethod
    @op(sst.norm.logcdf, name="stats.norm.logcdf", **_NORM)
    def logcdf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``log Phi(z)`` with ``z = (x - loc) / scale``, accurate in the left tail
        (:func:`~tapegrad.scipy.special.log_ndtr`).

        VJP: ``g phi(z) / Phi(z) (1, -1, -z) / scale`` for ``(x, loc, scale)``.
        """
        z, _ = _standardized(x, loc, scale)
        return log_ndtr(z)

    @staticmethod
    @op(sst.norm.sf, name="stats.norm.sf", **_NORM)
    def sf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """The survival function ``1 - Phi(z) = Phi(-z)`` with ``z = (x - loc) / scale``.

        VJP: ``g phi(z) (-1, 1, z) / scale`` for ``(x, loc, scale)``.
        """
        z, _ = _standardized(x, loc, scale)
        return ndtr(-z)

    @staticmethod
    @op(sst.norm.logsf, name="stats.norm.logsf", **_NORM)
    def logsf(x: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``log Phi(-z)`` with ``z = (x - loc) / scale``, accurate in the right tail.

        VJP: ``g phi(z) / Phi(-z) (-1, 1, z) / scale`` for ``(x, loc, scale)``.
        """
        z, _ = _standardized(x, loc, scale)
        return log_ndtr(-z)

    @staticmethod
    @op(sst.norm.ppf, name="stats.norm.ppf", sample=_sample_quantile, **_QUANTILE)
    def ppf(q: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """The quantile function ``loc + scale ndtri(q)`` (nan outside ``[0, 1]``, ``-inf``
        and ``inf`` at ``0`` and ``1``).

        VJP: ``g (scale / phi(ndtri(q)), 1, ndtri(q))`` for ``(q, loc, scale)``.
        """
        scale = where(greater(scale, 0), scale, np.nan)
        return _scalar(_float64(ndtri(q) * scale + loc))

    @staticmethod
    @op(sst.norm.isf, name="stats.norm.isf", sample=_sample_quantile, **_QUANTILE)
    def isf(q: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """The inverse survival function ``loc - scale ndtri(q)``, the ``1 - q`` quantile.

        VJP: ``g (-scale / phi(ndtri(q)), 1, -ndtri(q))`` for ``(q, loc, scale)``.
        """
        scale = where(greater(scale, 0), scale, np.nan)
        return _scalar(_float64(-ndtri(q) * scale + loc))


norm = norm_gen()


# =======================================================================================
# Distributions with shape parameters: scipy's rv_continuous arithmetic on z = (x - loc) /
# scale, then -inf (log density) or 0 (density) outside the support and nan for invalid
# parameters. The parameters and z are replaced by safe values where they are not used, so
# no nan or inf of an unused branch reaches a derivative.


def _all(*conditions: ArrayLike) -> ArrayLike:
    out = conditions[0]
    for c in conditions[1:]:
        out = logical_and(out, c)
    return out


def _location_scale(
    log_density: Callable[..., ArrayLike],
    x: ArrayLike,
    params: tuple[ArrayLike, ...],
    loc: ArrayLike,
    scale: ArrayLike,
    valid: ArrayLike,
    safe: tuple[float, ...],
    support: tuple[float, float],
    in_log: bool,
) -> ArrayLike:
    """scipy's ``logpdf`` (``in_log=True``) or ``pdf`` of a location-scale family with the
    standardized log density ``log_density(z, *params)``: ``log_density(z) - log(scale)``
    or ``e^log_density(z) / scale`` where the parameters are ``valid`` (a mask) and
    ``z`` lies in the closed ``support``; ``-inf`` or ``0`` elsewhere; nan for invalid
    parameters, ``scale <= 0`` or a nan ``z``."""
    valid = logical_and(valid, greater(scale, 0))
    scale = where(valid, scale, 1.0)
    params = tuple(where(valid, p, s) for p, s in zip(params, safe, strict=True))
    z = _float64((x - loc) / scale)
    inside = _all(valid, greater_equal(z, support[0]), less_equal(z, support[1]))
    z_in = where(inside, z, 0.5 if support[1] <= 1 else 1.0)  # a point of every support
    if in_log:
        value, outside = log_density(z_in, *params) - log(scale), -np.inf
    else:
        value, outside = exp(log_density(z_in, *params)) / scale, 0.0
    # outside the support: -inf or 0; invalid parameters and nan z: nan, as scipy's badvalue
    return _scalar(where(inside, value, where(logical_and(valid, equal(z, z)), outside, np.nan)))


def _broadcast_sample(*intervals: Interval):
    def sample(draw):
        shapes = draw.broadcastable_shapes(len(intervals))
        return tuple(draw.array(s, i) for s, i in zip(shapes, intervals, strict=True)), {}

    return sample


_REAL_LINE = (-np.inf, np.inf)
_HALF_LINE = (0.0, np.inf)


def _t_log_density(z, df):
    return t_log_density(df, z)


_T = {
    "sample": _broadcast_sample(
        Interval(-3, 3), Interval(0.5, 10), Interval(-1, 1), Interval(0.5, 2)
    ),
    "argnums": (0, 1, 2, 3),
    "float32": False,
}


class t_gen:
    """Student's t distribution with ``df > 0`` degrees of freedom, location ``loc`` and
    scale ``scale``, as ``scipy.stats.t``: ``tapegrad.scipy.stats.t.logpdf(x, df, loc,
    scale)``. Every argument broadcasts. ``df = inf`` (the normal limit) is not
    supported: nan."""

    @staticmethod
    @op(sst.t.logpdf, name="stats.t.logpdf", **_T)
    def logpdf(
        x: ArrayLike, df: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0
    ) -> ArrayLike:
        """``log poch(df / 2, 1 / 2) - (log df + log pi) / 2 - (df + 1) / 2 log(1 + z^2 / df)
        - log scale`` with ``z = (x - loc) / scale``.

        VJP: ``g (-w, w, w z - 1) / scale`` for ``(x, loc, scale)`` and ``g d_df`` for
        ``df``, with ``w = (df + 1) z / (df + z^2)`` and ``d_df = (digamma((df + 1) / 2) -
        digamma(df / 2) - 1 / df - log(1 + z^2 / df) + w z / df) / 2``.
        """
        return _location_scale(
            _t_log_density, x, (df,), loc, scale, greater(df, 0), (1.0,), _REAL_LINE, True
        )

    @staticmethod
    @op(sst.t.pdf, name="stats.t.pdf", **_T)
    def pdf(x: ArrayLike, df: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``e^logpdf``: the density. VJP: ``g pdf`` times the derivatives of ``logpdf``."""
        return _location_scale(
            _t_log_density, x, (df,), loc, scale, greater(df, 0), (1.0,), _REAL_LINE, False
        )

    @staticmethod
    @op(sst.t.cdf, name="stats.t.cdf", **{**_T, "argnums": (0, 2, 3)})
    def cdf(x: ArrayLike, df: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``stdtr(df, z)`` with ``z = (x - loc) / scale``
        (:func:`~tapegrad.scipy.special.stdtr`): differentiable in ``x``, ``loc`` and
        ``scale``; in ``df`` it raises :class:`NotImplementedError` (the derivative of the
        incomplete beta function in its parameters has no closed form).

        VJP: ``g p(z) (1, -1, -z) / scale`` for ``(x, loc, scale)``, ``p`` the t density.
        """
        # df goes to stdtr as given (nan for df <= 0): a df passed through a where on a
        # traced condition would be traced, and stdtr refuses to differentiate it
        valid = greater(scale, 0)
        z = _float64((x - loc) / where(valid, scale, 1.0))
        return _scalar(where(valid, stdtr(df, z), np.nan))


t = t_gen()


def _chi2_log_density(z, df):
    """scipy's ``xlogy(df / 2 - 1, z) - z / 2 - gammaln(df / 2) - log(2) df / 2``."""
    return xlogy(df / 2.0 - 1, z) - z / 2.0 - gammaln(df / 2.0) - (_LOG_2 * df) / 2


_CHI2 = {
    "sample": _broadcast_sample(
        Interval(0.5, 6), Interval(0.5, 6), Interval(-0.2, 0.2), Interval(0.5, 2)
    ),
    "argnums": (0, 1, 2, 3),
    "float32": False,
}


class chi2_gen:
    """The chi-squared distribution with ``df > 0`` degrees of freedom, as
    ``scipy.stats.chi2``: ``logpdf(x, df, loc=0, scale=1)``, ``pdf``; support ``z >= 0``."""

    @staticmethod
    @op(sst.chi2.logpdf, name="stats.chi2.logpdf", **_CHI2)
    def logpdf(
        x: ArrayLike, df: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0
    ) -> ArrayLike:
        """``(df / 2 - 1) log z - z / 2 - gammaln(df / 2) - df log(2) / 2 - log scale`` with
        ``z = (x - loc) / scale >= 0`` (``-inf`` below 0).

        VJP: ``g ((df / 2 - 1) / z - 1 / 2) / scale`` for ``x``; for ``df``,
        ``g (log z - digamma(df / 2) - log 2) / 2``; ``loc`` and ``scale`` by the chain rule
        through ``z``.
        """
        return _location_scale(
            _chi2_log_density, x, (df,), loc, scale, greater(df, 0), (1.0,), _HALF_LINE, True
        )

    @staticmethod
    @op(sst.chi2.pdf, name="stats.chi2.pdf", **_CHI2)
    def pdf(x: ArrayLike, df: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``e^logpdf`` (0 below the support). VJP: ``g pdf`` times the derivatives of
        ``logpdf``."""
        return _location_scale(
            _chi2_log_density, x, (df,), loc, scale, greater(df, 0), (1.0,), _HALF_LINE, False
        )


chi2 = chi2_gen()


def _gamma_log_density(z, a):
    """scipy's ``xlogy(a - 1, z) - z - gammaln(a)``."""
    return xlogy(a - 1.0, z) - z - gammaln(a)


class gamma_gen:
    """The gamma distribution with shape ``a > 0``, as ``scipy.stats.gamma``:
    ``logpdf(x, a, loc=0, scale=1)``, ``pdf``; support ``z >= 0``."""

    @staticmethod
    @op(sst.gamma.logpdf, name="stats.gamma.logpdf", **_CHI2)
    def logpdf(
        x: ArrayLike, a: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0
    ) -> ArrayLike:
        """``(a - 1) log z - z - gammaln(a) - log scale`` with ``z = (x - loc) / scale >= 0``.

        VJP: ``g ((a - 1) / z - 1) / scale`` for ``x``, ``g (log z - digamma(a))`` for
        ``a``; ``loc`` and ``scale`` by the chain rule through ``z``.
        """
        return _location_scale(
            _gamma_log_density, x, (a,), loc, scale, greater(a, 0), (1.0,), _HALF_LINE, True
        )

    @staticmethod
    @op(sst.gamma.pdf, name="stats.gamma.pdf", **_CHI2)
    def pdf(x: ArrayLike, a: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0) -> ArrayLike:
        """``e^logpdf`` (0 below the support). VJP: ``g pdf`` times the derivatives of
        ``logpdf``."""
        return _location_scale(
            _gamma_log_density, x, (a,), loc, scale, greater(a, 0), (1.0,), _HALF_LINE, False
        )


gamma = gamma_gen()


def _beta_log_density(z, a, b):
    """scipy's ``xlog1py(b - 1, -z) + xlogy(a - 1, z) - betaln(a, b)``."""
    return xlog1py(b - 1.0, -z) + xlogy(a - 1.0, z) - betaln(a, b)


_BETA = {
    "sample": _broadcast_sample(
        Interval(0.15, 0.85),
        Interval(0.5, 4),
        Interval(0.5, 4),
        Interval(-0.1, 0.1),
        Interval(1, 1.5),
    ),
    "argnums": (0, 1, 2, 3, 4),
    "float32": False,
}


class beta_gen:
    """The beta distribution with shapes ``a, b > 0``, as ``scipy.stats.beta``:
    ``logpdf(x, a, b, loc=0, scale=1)``, ``pdf``; support ``0 <= z <= 1``."""

    @staticmethod
    @op(sst.beta.logpdf, name="stats.beta.logpdf", **_BETA)
    def logpdf(
        x: ArrayLike, a: ArrayLike, b: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0
    ) -> ArrayLike:
        """``(a - 1) log z + (b - 1) log(1 - z) - betaln(a, b) - log scale`` with
        ``z = (x - loc) / scale`` in ``[0, 1]``.

        VJP: ``g ((a - 1) / z - (b - 1) / (1 - z)) / scale`` for ``x``,
        ``g (log z - digamma(a) + digamma(a + b))`` for ``a``,
        ``g (log(1 - z) - digamma(b) + digamma(a + b))`` for ``b``; ``loc`` and ``scale`` by
        the chain rule through ``z``.
        """
        valid = logical_and(greater(a, 0), greater(b, 0))
        return _location_scale(
            _beta_log_density, x, (a, b), loc, scale, valid, (1.0, 1.0), (0.0, 1.0), True
        )

    @staticmethod
    @op(sst.beta.pdf, name="stats.beta.pdf", **_BETA)
    def pdf(
        x: ArrayLike, a: ArrayLike, b: ArrayLike, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0
    ) -> ArrayLike:
        """``e^logpdf`` (0 outside ``[0, 1]``; scipy computes it with Boost, equal to
        rounding). VJP: ``g pdf`` times the derivatives of ``logpdf``."""
        valid = logical_and(greater(a, 0), greater(b, 0))
        return _location_scale(
            _beta_log_density, x, (a, b), loc, scale, valid, (1.0, 1.0), (0.0, 1.0), False
        )


beta = beta_gen()


# =======================================================================================
# poisson


def _sample_poisson(draw):
    k_shape, mu_shape = draw.broadcastable_shapes(2)
    k = draw.array(k_shape, Interval(0, 6, step=1.0))
    return (k, draw.array(mu_shape, Interval(0.2, 5))), {}


_POISSON = {"sample": _sample_poisson, "argnums": (1,), "float32": False}


def _poisson(k: ArrayLike, mu: ArrayLike, loc: ArrayLike, in_log: bool) -> ArrayLike:
    """scipy's ``logpmf`` or ``pmf``: ``xlogy(k, mu) - gammaln(k + 1) - mu`` at the integers
    ``k - loc >= 0``, ``-inf`` or 0 at other ``k``, nan for ``mu < 0``."""
    k = _float64(k - loc)
    valid = greater_equal(mu, 0)
    mu = where(valid, mu, 1.0)
    counts = logical_and(greater_equal(k, 0), equal(floor(k), k))
    k_in = where(counts, k, 0.0)  # from k alone: a constant k stays constant
    value = xlogy(k_in, mu) - gammaln(k_in + 1) - mu
    value, outside = (value, -np.inf) if in_log else (exp(value), 0.0)
    inside = logical_and(valid, counts)
    return _scalar(where(inside, value, where(logical_and(valid, equal(k, k)), outside, np.nan)))


class poisson_gen:
    """The Poisson distribution with mean ``mu >= 0``, as ``scipy.stats.poisson``:
    ``logpmf(k, mu, loc=0)``, ``pmf``. Differentiable in ``mu`` (the counts ``k`` and the
    integer shift ``loc`` are discrete: no derivative)."""

    @staticmethod
    @op(sst.poisson.logpmf, name="stats.poisson.logpmf", **_POISSON)
    def logpmf(k: ArrayLike, mu: ArrayLike, loc: ArrayLike = 0) -> ArrayLike:
        """``k log mu - gammaln(k + 1) - mu`` for integers ``k >= 0`` (``-inf`` otherwise;
        ``0 log 0 = 0``, so ``logpmf(0, 0) = 0``).

        VJP: ``g (k / mu - 1)`` for ``mu`` (``-g`` where ``k = 0``, ``mu = 0`` included).
        """
        return _poisson(k, mu, loc, True)

    @staticmethod
    @op(sst.poisson.pmf, name="stats.poisson.pmf", **_POISSON)
    def pmf(k: ArrayLike, mu: ArrayLike, loc: ArrayLike = 0) -> ArrayLike:
        """``mu^k e^(-mu) / k!`` for integers ``k >= 0`` (0 otherwise).

        VJP: ``g pmf (k / mu - 1)`` for ``mu``.
        """
        return _poisson(k, mu, loc, False)


poisson = poisson_gen()


# =======================================================================================
# dirichlet


def _sample_dirichlet(draw):
    # sixteenths summing to 1 exactly, in float32 too (scipy checks the sum to 1e-9)
    k = draw.integers(2, 4)
    shape = draw.choice(((k,), (k, draw.integers(1, 3))))
    head = draw.array((k - 1, *shape[1:]), Interval(1, 4, step=1.0)) / 16
    x = np.concatenate([head, 1 - head.sum(axis=0, keepdims=True)])
    if draw.choice((False, True)):  # scipy also takes the first k - 1 components
        x = x[:-1]
    return (x, draw.array((k,), Interval(0.5, 3))), {}


_DIRICHLET = {
    "sample": _sample_dirichlet,
    "argnums": (0, 1),
    "convention": "x is not checked to lie on the simplex (scipy raises ValueError): the "
    "formula is evaluated and differentiated as written, so the gradient in x is the "
    "unconstrained partial derivative",
}


def _dirichlet_logpdf(x: ArrayLike, alpha: ArrayLike) -> ArrayLike:
    """``sum((alpha_i - 1) log x_i) - (sum gammaln(alpha_i) - gammaln(sum alpha_i))`` over
    the first axis of ``x``, which holds ``k`` components or ``k - 1`` (the last is then
    ``1 - sum``); scipy's squeezed result."""
    alpha, x = asarray(alpha), asarray(x)  # scipy keeps float32 here
    if len(shape_of(alpha)) != 1:
        raise ValueError(
            f"tapegrad.scipy.stats.dirichlet: alpha must be a vector, not of shape "
            f"{shape_of(alpha)}"
        )
    k, xs = shape_of(alpha)[0], shape_of(x)
    if len(xs) not in (1, 2) or xs[0] not in (k, k - 1):
        raise ValueError(
            f"tapegrad.scipy.stats.dirichlet: x of shape {xs} must hold {k} or {k - 1} "
            "components on its first axis (one or two dimensions)"
        )
    if xs[0] == k - 1:
        x = concatenate([x, 1.0 - sum(x, axis=0, keepdims=True)], axis=0)
    a = reshape(alpha - 1, (k,) + (1,) * (len(xs) - 1))
    log_b = sum(gammaln(alpha)) - gammaln(sum(alpha))
    out = sum(xlogy(a, x), axis=0) - log_b
    squeezed = tuple(n for n in shape_of(out) if n != 1)  # scipy squeezes axes of length 1
    if not squeezed:
        return reshape(out, (-1,))[0]
    return out if squeezed == shape_of(out) else reshape(out, squeezed)


class dirichlet_gen:
    """The Dirichlet distribution with concentrations ``alpha > 0`` (a vector of ``k``), as
    ``scipy.stats.dirichlet``: ``logpdf(x, alpha)`` and ``pdf``, differentiable in ``x``
    and ``alpha``. ``x`` has its components on the *first* axis, as in scipy."""

    @staticmethod
    @op(sst.dirichlet.logpdf, name="stats.dirichlet.logpdf", **_DIRICHLET)
    def logpdf(x: ArrayLike, alpha: ArrayLike) -> ArrayLike:
        """``sum((alpha_i - 1) log x_i) - log B(alpha)`` with ``log B(alpha) =
        sum gammaln(alpha_i) - gammaln(sum alpha_i)``.

        VJP: ``g (alpha_i - 1) / x_i`` for ``x``, ``g (log x_i - d_i)`` for ``alpha``, with
        ``d_i = digamma(alpha_i) - digamma(sum alpha)``.
        """
        return _dirichlet_logpdf(x, alpha)

    @staticmethod
    @op(sst.dirichlet.pdf, name="stats.dirichlet.pdf", **_DIRICHLET)
    def pdf(x: ArrayLike, alpha: ArrayLike) -> ArrayLike:
        """``prod x_i^(alpha_i - 1) / B(alpha)``. VJP: ``g pdf`` times the derivatives of
        ``logpdf``."""
        return exp(_dirichlet_logpdf(x, alpha))


dirichlet = dirichlet_gen()


# =======================================================================================
# multivariate_normal


def _dimension(mean: ArrayLike | None, cov: ArrayLike) -> int:
    """The dimension scipy infers: the size of ``mean``, else the side of a 2-d ``cov``,
    else 1."""
    if mean is not None:
        return math.prod(shape_of(mean))
    return shape_of(cov)[0] if len(shape_of(cov)) >= 2 else 1


def _parameters(mean: ArrayLike | None, cov: ArrayLike, dim: int) -> tuple[ArrayLike, ArrayLike]:
    """``mean`` as a vector of ``dim`` and ``cov`` as a scalar, a diagonal or a matrix,
    in float64, with scipy's checks."""
    mean = np.zeros(dim) if mean is None else _float64(mean)
    cov = _float64(cov)
    if dim == 1:  # scipy reads a one-dimensional distribution's parameters as (1,), (1, 1)
        mean, cov = reshape(mean, (1,)), reshape(cov, (1, 1))
    if shape_of(mean) != (dim,):
        raise ValueError(f"tg.multivariate_normal.logpdf: mean must be a vector of length {dim}")
    if len(shape_of(cov)) > 2 or shape_of(cov) not in ((), (dim,), (dim, dim)):
        raise ValueError(
            f"tg.multivariate_normal.logpdf: cov of shape {shape_of(cov)} does not fit a "
            f"mean of length {dim} (it must be a scalar, a vector or a ({dim}, {dim}) matrix)"
        )
    return mean, cov


def _quantiles(x: ArrayLike, dim: int) -> ArrayLike:
    """``x`` with the components of each point on its last axis, as scipy reads it."""
    x = _float64(x)
    shape = shape_of(x)
    if len(shape) == 0:
        return reshape(x, (1,))
    if len(shape) == 1:
        return reshape(x, (-1, 1) if dim == 1 else (1, -1))
    return x


def _sample_mvn(draw):
    dim = draw.integers(1, 3)
    x_shape = draw.choice(((dim,), (draw.integers(1, 3), dim), (2, 2, dim)))
    x = draw.array(x_shape, Interval(-2, 2))
    mean = draw.array((dim,), Interval(-1, 1))
    kind = draw.choice(("scalar", "diagonal", "matrix"))
    if kind == "scalar":
        cov = draw.array((), Interval(0.5, 2))
    elif kind == "diagonal":
        cov = draw.array((dim,), Interval(0.5, 2))
    else:
        m = draw.array((dim, dim), Interval(-1, 1))
        cov = m @ m.T + dim * np.eye(dim)  # eigenvalues in [dim, dim + dim^2]
    return (x, mean, cov), {}


class multivariate_normal_gen:
    """The multivariate normal distribution, as ``scipy.stats.multivariate_normal``:
    ``tapegrad.scipy.stats.multivariate_normal.logpdf(x, mean, cov)``."""

    @staticmethod
    @op(
        sst.multivariate_normal.logpdf,
        name="stats.multivariate_normal.logpdf",
        sample=_sample_mvn,
        argnums=(0, 1, 2),
        float32=False,  # scipy computes in float64
        convention="reads the lower triangle of a matrix cov (numpy's cholesky); not "
        "positive definite: LinAlgError",
    )
    def logpdf(
        x: ArrayLike,
        mean: ArrayLike = None,
        cov: ArrayLike = 1,
        allow_singular: bool = False,
    ) -> ArrayLike:
        """``-(d log(2 pi) + log det C + (x - m)^T C^-1 (x - m)) / 2`` for each point of
        ``x`` (the last axis holds its ``d`` components; scipy's shapes, defaults and
        squeezed result). ``cov`` is a matrix, a vector (a diagonal matrix) or a scalar
        (a multiple of the identity).

        With ``C = L L^T`` (tapegrad's ``cholesky``), ``log det C = 2 sum(log diag L)`` and
        the quadratic form is ``|z|^2`` with ``z = L^-1 (x - m)``
        (:func:`~tapegrad.scipy.linalg.solve_triangular`). ``allow_singular=True`` is not
        supported (a singular ``cov`` has no gradient).

        VJP: ``m_bar = -x_bar = a``, ``C_bar = (a a^T - C^-1) / 2`` with ``a = C^-1 (x - m)``.

        (``C_bar`` mapped to the lower triangle that ``cholesky`` reads.)
        """
        if allow_singular:
            raise NotImplementedError(
                "tg.multivariate_normal.logpdf: allow_singular=True is not supported"
            )
        dim = _dimension(mean, cov)
        mean, cov = _parameters(mean, cov, dim)
        x = _quantiles(x, dim)
        if shape_of(x)[-1] != dim:
            raise ValueError(
                f"tg.multivariate_normal.logpdf: x has {shape_of(x)[-1]} components per "
                f"point, the distribution {dim}"
            )
        dev = x - mean
        batch = shape_of(dev)[:-1]
        if len(shape_of(cov)) == 0:
            log_det = log(cov) * dim
            maha = sum(dev * dev, axis=-1) / cov
        elif len(shape_of(cov)) == 1:
            log_det = sum(log(cov))
            maha = sum(dev * dev / cov, axis=-1)
        else:
            factor = cholesky(cov)
            log_det = sum(log(diagonal(factor))) * 2.0
            z = solve_triangular(factor, transpose(reshape(dev, (-1, dim))), lower=True)
            maha = reshape(sum(z * z, axis=0), batch)
        out = (maha + log_det + dim * _LOG_2PI) * -0.5
        squeezed = tuple(n for n in batch if n != 1)  # scipy squeezes every axis of length 1
        if not squeezed:
            return reshape(out, (-1,))[0]
        return out if squeezed == batch else reshape(out, squeezed)

    @staticmethod
    @op(
        sst.multivariate_normal.pdf,
        name="stats.multivariate_normal.pdf",
        sample=_sample_mvn,
        argnums=(0, 1, 2),
        float32=False,
        convention="as logpdf",
    )
    def pdf(
        x: ArrayLike,
        mean: ArrayLike = None,
        cov: ArrayLike = 1,
        allow_singular: bool = False,
    ) -> ArrayLike:
        """``e^logpdf``, the density, with :meth:`logpdf`'s shapes and defaults.

        VJP: ``g pdf`` times the derivatives of :meth:`logpdf`.
        """
        return exp(multivariate_normal_gen.logpdf(x, mean, cov, allow_singular))


multivariate_normal = multivariate_normal_gen()
