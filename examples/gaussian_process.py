"""Gaussian-process regression whose hyperparameters are fitted by gradient, with tapegrad.

The data
--------
``--points`` noisy measurements (40 by default) of a damped oscillation, the displacement
of an underdamped spring released from rest at its equilibrium with unit velocity
(damping rate 1/4, angular frequency 2)::

    f(t) = exp(-t / 4) sin(2 t),    y_i = f(t_i) + eps_i,    eps_i ~ N(0, noise^2)

at times ``t_i`` drawn uniformly in [0, 10] (sorted), with ``--noise 0.1`` and the fixed
``--seed 0``, so every run sees the same data.

The model
---------
A zero-mean Gaussian process with the squared-exponential (RBF) kernel, plus independent
Gaussian noise::

    k(t, t') = s2 exp(-(t - t')^2 / (2 l^2)),    K = k(T, T) + n2 I

with three hyperparameters: the length scale ``l``, the signal variance ``s2`` and the
noise variance ``n2``. They are fitted on a log scale, ``theta = log([l, s2, n2])``, so
every value of ``theta`` is valid and the optimiser needs no bounds. The fit maximises the
log marginal likelihood of the data (Rasmussen and Williams, Gaussian Processes for
Machine Learning, eq. 2.30), written with a Cholesky factor ``K = L L^T``::

    log p(y | theta) = -|z|^2 / 2 - sum(log diag L) - (n / 2) log(2 pi),    z = L^-1 y

``L`` comes from ``tapegrad.numpy.linalg.cholesky`` and ``z`` from
``tapegrad.scipy.linalg.solve_triangular``, so ``tg.value_and_grad`` gives the gradient
in one reverse pass, and ``tg.hvp`` Hessian-vector products (reverse over reverse).

The fits
--------
All start from ``l = 1`` (a tenth of the time range), ``s2 = var(y)`` and
``n2 = var(y) / 10`` and minimise ``-log p`` with ``scipy.optimize.minimize``:

- L-BFGS-B with ``jac=True``: the objective returns the value and tapegrad's gradient;
- with ``--newton``, Newton-CG instead, with ``hessp=`` the Hessian-vector product
  ``tg.hvp`` (no 3 x 3 Hessian is formed; a truncated-Newton method needs only products);
- a derivative-free optimiser for comparison (``--derivative-free``, Nelder-Mead by
  default, or Powell), on the same objective evaluated with plain numpy.

It prints the fitted length scale, signal variance, noise variance and log marginal
likelihood (one per line, with their names), then how many evaluations and how long each
optimiser took. ``--plot PATH`` draws the posterior mean and a band of two posterior
standard deviations of ``f`` (matplotlib, the ``examples`` extra).

Run it::

    python examples/gaussian_process.py
    python examples/gaussian_process.py --newton
    python examples/gaussian_process.py --derivative-free Powell --points 80
    python examples/gaussian_process.py --plot gp.png
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.optimize
from _cli import nonnegative_int, positive_float, positive_int

import tapegrad as tg
import tapegrad.numpy as tnp
from tapegrad.scipy.linalg import cho_factor, cho_solve, solve_triangular

NAMES = ("length_scale", "signal_variance", "noise_variance")
T_MAX = 10.0


# ----------------------------------------------------------------------------- data


def true_function(t: np.ndarray) -> np.ndarray:
    """The damped oscillation ``exp(-t / 4) sin(2 t)``."""
    return np.exp(-t / 4) * np.sin(2 * t)


def make_data(points: int = 40, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(t, y)``: ``points`` sorted times in [0, 10] and noisy values of the oscillation."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, T_MAX, points))
    return t, true_function(t) + noise * rng.standard_normal(points)


# ----------------------------------------------------------------------------- the model


def kernel(ta: Any, tb: Any, length_scale: Any, signal_variance: Any) -> Any:
    """The RBF kernel matrix ``s2 exp(-(ta_i - tb_j)^2 / (2 l^2))``, ``(len(ta), len(tb))``."""
    squared = (ta[:, None] - tb[None, :]) ** 2
    return signal_variance * tnp.exp(squared / (-2.0 * length_scale**2))


def log_marginal_likelihood(theta: Any, t: np.ndarray, y: np.ndarray) -> Any:
    """``log p(y | theta)`` for ``theta = log([l, s2, n2])``, through ``K = L L^T``."""
    length_scale, signal_variance, noise_variance = (
        tnp.exp(theta[0]),
        tnp.exp(theta[1]),
        tnp.exp(theta[2]),
    )
    n = len(t)
    k = kernel(t, t, length_scale, signal_variance) + noise_variance * np.eye(n)
    lower = tnp.linalg.cholesky(k)
    z = solve_triangular(lower, y, lower=True)
    return -0.5 * (z @ z) - tnp.sum(tnp.log(tnp.diagonal(lower))) - 0.5 * n * math.log(2 * math.pi)


class Objective:
    """``-log p(y | theta)`` for scipy's minimisers, counting what each call computed."""

    def __init__(self, t: np.ndarray, y: np.ndarray) -> None:
        self.t, self.y = t, y
        self.values = self.gradients = self.hessian_products = 0
        self._value_and_grad = tg.value_and_grad(self.__call__)

    def __call__(self, theta: Any) -> Any:
        """The value only (plain numpy when ``theta`` is not traced)."""
        if type(theta) is not tg.Traced:
            self.values += 1
        return -log_marginal_likelihood(theta, self.t, self.y)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``(value, gradient)`` from one forward and one reverse pass (``jac=True``)."""
        self.gradients += 1
        value, grad = self._value_and_grad(theta)
        return float(value), grad

    def hvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``H(theta) v`` by reverse over reverse (Newton-CG's ``hessp``)."""
        self.hessian_products += 1
        (hv,) = tg.hvp(self.__call__, (theta,), (v,))
        return hv

    def evaluations(self) -> str:
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.values, "values"),
                (self.gradients, "value+gradient"),
                (self.hessian_products, "Hessian-vector products"),
            )
            if count
        ]
        return ", ".join(parts)


def start_point(y: np.ndarray) -> np.ndarray:
    """``log([1, var(y), var(y) / 10])``: a length scale a tenth of the range of ``t``,
    the data's variance as signal, a tenth of it as noise."""
    return np.log([1.0, np.var(y), np.var(y) / 10])


def fit(
    t: np.ndarray, y: np.ndarray, theta0: np.ndarray, method: str
) -> tuple[scipy.optimize.OptimizeResult, Objective, float]:
    """Minimise ``-log p`` from ``theta0`` with ``method``: ``(result, counts, seconds)``.

    L-BFGS-B gets tapegrad's gradient, Newton-CG the gradient and ``tg.hvp``, and a
    derivative-free method (Nelder-Mead, Powell) the value only.
    """
    objective = Objective(t, y)
    kwargs: dict[str, Any] = {}
    fun: Callable = objective
    if method in ("L-BFGS-B", "BFGS", "Newton-CG"):
        fun, kwargs["jac"] = objective.value_and_grad, True
    if method == "Newton-CG":
        kwargs["hessp"] = objective.hvp
    start = time.perf_counter()
    result = scipy.optimize.minimize(fun, theta0, method=method, **kwargs)
    return result, objective, time.perf_counter() - start


def hyperparameters(theta: np.ndarray) -> dict[str, float]:
    return dict(zip(NAMES, np.exp(theta).tolist(), strict=True))


def posterior(
    t: np.ndarray, y: np.ndarray, t_new: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mean and standard deviation of ``f`` at ``t_new`` (R&W, eq. 2.25-26):
    ``K*^T K^-1 y`` and ``sqrt(k** - K*^T K^-1 K*)``."""
    length_scale, signal_variance, noise_variance = np.exp(theta)
    factor = cho_factor(
        kernel(t, t, length_scale, signal_variance) + noise_variance * np.eye(len(t))
    )
    k_star = kernel(t, t_new, length_scale, signal_variance)
    mean = k_star.T @ cho_solve(factor, y)
    variance = signal_variance - np.sum(k_star * cho_solve(factor, k_star), axis=0)
    return mean, np.sqrt(np.maximum(variance, 0.0))


def plot(path: str, t: np.ndarray, y: np.ndarray, theta: np.ndarray, title: str) -> None:
    """The data, the true function and the posterior mean with a 2-sigma band, to ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "gaussian_process.py: error: --plot needs matplotlib: pip install 'tapegrad[examples]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, T_MAX, 400)
    mean, sd = posterior(t, y, grid, theta)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.fill_between(grid, mean - 2 * sd, mean + 2 * sd, alpha=0.25, label="posterior mean +- 2 sd")
    ax.plot(grid, mean, label="posterior mean")
    ax.plot(grid, true_function(grid), "k--", lw=1, label="exp(-t/4) sin(2t)")
    ax.plot(t, y, "o", ms=4, label="data")
    ax.set(xlabel="t", ylabel="y", title=title)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaussian_process.py",
        description="Fit a Gaussian process's hyperparameters by maximising the log marginal "
        "likelihood with tapegrad's gradient, against a derivative-free optimiser.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--points", type=positive_int, default=40, help="number of data points")
    parser.add_argument("--noise", type=positive_float, default=0.1, help="noise sd of the data")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the data")
    parser.add_argument(
        "--newton", action="store_true", help="Newton-CG with tg.hvp instead of L-BFGS-B"
    )
    parser.add_argument(
        "--derivative-free", choices=["Nelder-Mead", "Powell"], default="Nelder-Mead"
    )
    parser.add_argument("--plot", metavar="PATH", help="save the posterior plot to PATH")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Fit, compare, print; returns the results (also printed unless ``--quiet``)."""
    args = build_parser().parse_args(argv)

    def log(line: str = "") -> None:
        if not args.quiet:
            print(line, flush=True)

    t, y = make_data(args.points, args.noise, args.seed)
    theta0 = start_point(y)
    log(
        f"data: {args.points} points, y = exp(-t/4) sin(2t) + noise (sd {args.noise:g}), "
        f"t uniform in [0, {T_MAX:g}], seed {args.seed}"
    )
    start = ", ".join(f"{k} {v:.4g}" for k, v in hyperparameters(theta0).items())
    lml0 = float(log_marginal_likelihood(theta0, t, y))
    log(f"start: {start}; log marginal likelihood {lml0:.4f}")

    method = "Newton-CG" if args.newton else "L-BFGS-B"
    how = "tg.value_and_grad and tg.hvp" if args.newton else "tg.value_and_grad"
    result, counts, seconds = fit(t, y, theta0, method)
    lml = -float(result.fun)
    log(f"\n{method} with tapegrad's derivatives ({how}):")
    for name, value in hyperparameters(result.x).items():
        log(f"{name} {value:.6g}")
    log(f"log_marginal_likelihood {lml:.6f}")

    free, free_counts, free_seconds = fit(t, y, theta0, args.derivative_free)
    rows = [
        (f"{method} (derivatives)", counts.evaluations(), seconds, lml),
        (
            f"{args.derivative_free} (no derivatives)",
            free_counts.evaluations(),
            free_seconds,
            -float(free.fun),
        ),
    ]
    log("\ncomparison from the same start:")
    width = [max(len(r[k]) for r in rows) + 2 for k in (0, 1)]
    log(f"{'optimiser':{width[0]}}{'evaluations':{width[1]}}{'seconds':>7} {'log p(y)':>11}")
    for name, evaluations, secs, value in rows:
        log(f"{name:{width[0]}}{evaluations:{width[1]}}{secs:7.3f} {value:11.6f}")

    if args.plot:
        plot(args.plot, t, y, result.x, f"GP posterior, {method}: log p(y) = {lml:.3f}")
        log(f"\nplot saved to {args.plot}")
    return {
        "method": method,
        "theta0": theta0,
        "log_marginal_likelihood_start": lml0,
        "theta": result.x,
        "hyperparameters": hyperparameters(result.x),
        "log_marginal_likelihood": lml,
        "success": bool(result.success),
        "evaluations": {
            "values": counts.values,
            "gradients": counts.gradients,
            "hessian_products": counts.hessian_products,
        },
        "seconds": seconds,
        "derivative_free": {
            "method": args.derivative_free,
            "theta": free.x,
            "log_marginal_likelihood": -float(free.fun),
            "evaluations": free_counts.values,
            "seconds": free_seconds,
        },
    }


if __name__ == "__main__":
    main()
