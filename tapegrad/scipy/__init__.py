"""``tapegrad.scipy``: scipy's special functions, distributions and triangular solves, with
derivatives (the optional ``scipy`` extra: ``pip install 'tapegrad[scipy]'``).

Three modules mirror scipy's names and keywords:

- :mod:`tapegrad.scipy.special`: ``erf erfc erfinv erfcinv ndtr ndtri log_ndtr gamma
  rgamma gammasgn gammaln digamma polygamma beta betaln poch gammainc gammaincc betainc
  stdtr j0 j1 jv jn y0 y1 yv yn i0 i1 iv ive expit logit xlogy xlog1py logsumexp softmax
  log_softmax``;
- :mod:`tapegrad.scipy.stats`: ``norm`` (``pdf logpdf cdf logcdf sf logsf ppf isf``,
  ``loc`` and ``scale`` differentiable), ``t`` (``pdf logpdf cdf``), ``chi2``, ``gamma``,
  ``beta`` (``pdf logpdf``), ``poisson`` (``pmf logpmf``), ``dirichlet`` (``pdf
  logpdf``) and ``multivariate_normal`` (``pdf logpdf``);
- :mod:`tapegrad.scipy.linalg`: ``solve_triangular cho_factor cho_solve``.

Importing this package registers their ops, so scipy's own ufuncs dispatch to them on
traced values (``scipy.special.erf(x)`` inside ``tg.grad``). :mod:`tapegrad.numpy` and
the rest of tapegrad never import scipy.
"""

from __future__ import annotations

try:
    import scipy  # noqa: F401
except ImportError as e:  # scipy is an optional dependency
    raise ImportError(
        "tapegrad.scipy needs scipy, which is not installed: pip install 'tapegrad[scipy]'"
    ) from e

from tapegrad.scipy import linalg, special, stats

__all__ = ["linalg", "special", "stats"]
