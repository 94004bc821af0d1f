"""``scipy.stats``' normal distributions with derivatives in every argument.

- ``norm.pdf``, ``norm.logpdf``, ``norm.cdf``, ``norm.logcdf`` with ``loc`` and ``scale``
  (differentiable, broadcasting against ``x``);
- ``multivariate_normal.logpdf(x, mean=None, cov=1)``, written with tapegrad's
  ``cholesky`` and :func:`tapegrad.scipy.linalg.solve_triangular`.

They are composites of tapegrad's ops (no new primitive), following scipy's arithmetic:
``z = (x - loc) / scale`` in the inputs' dtype, then float64, as scipy computes every
density in float64 (float32 inputs give float64 results, so their specs say
``float32=False``). A ``scale`` that is not positive gives nan, as in scipy.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as sst

from tapegrad.numpy.building import asarray
from tapegrad.ops.arranging import diagonal
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import ArrayLike, cast, greater, reshape, sum, transpose, where
from tapegrad.ops.elementwise import exp, log
from tapegrad.ops.linalg import cholesky
from tapegrad.ops.registry import Interval, op
from tapegrad.scipy.linalg import solve_triangular
from tapegrad.scipy.special import log_ndtr, ndtr

__all__ = ["multivariate_normal", "norm"]

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2PI = math.log(2 * math.pi)
_SQRT_2PI = math.sqrt(2 * math.pi)


def _float64(x: ArrayLike) -> ArrayLike:
    """``x`` (an array, a number or nested lists) in scipy's result dtype: float64 for
    anything up to float64."""
    x = asarray(x)
    dtype = np.promote_types(dtype_of(x), np.float64)
    return x if dtype_of(x) == dtype else cast(x, dtype)


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


norm = norm_gen()


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


multivariate_normal = multivariate_normal_gen()
