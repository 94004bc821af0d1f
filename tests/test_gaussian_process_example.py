"""examples/gaussian_process.py: GP hyperparameters fitted with tapegrad's gradient.

The example is loaded when the first test runs, not when this file is collected: it imports
``tapegrad.scipy``, whose ops would otherwise join the registry before the shared registry
tests are parametrized.

Measured on the default data (40 points, seed 0): from log p(y) = -2.19 both optimisers
reach 10.096172 (length scale 0.692, signal variance 0.0964, noise variance 0.0145);
L-BFGS-B with the gradient takes 11 value+gradient evaluations, Nelder-Mead 201 values,
Newton-CG 8 value+gradient evaluations and 13 Hessian-vector products.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.testing import check_grads

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gaussian_process.py"
LINE = re.compile(
    r"^(length_scale|signal_variance|noise_variance|log_marginal_likelihood) (\S+)$", re.M
)


@pytest.fixture(scope="module")
def gp():
    pytest.importorskip("scipy")
    sys.path.insert(0, str(EXAMPLE.parent))  # the examples import their shared _cli module
    spec = importlib.util.spec_from_file_location("gaussian_process", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gaussian_process", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(gp):
    return gp.main(["--quiet"])


def test_prints_each_fitted_value_on_its_own_line(gp, capsys):
    result = gp.main([])
    printed = dict(LINE.findall(capsys.readouterr().out))
    assert list(printed) == [*gp.NAMES, "log_marginal_likelihood"]
    for name in gp.NAMES:
        np.testing.assert_allclose(float(printed[name]), result["hyperparameters"][name], rtol=1e-5)
    np.testing.assert_allclose(
        float(printed["log_marginal_likelihood"]), result["log_marginal_likelihood"], rtol=1e-6
    )


def test_the_gradient_and_hessian_match_finite_differences(gp):
    t, y = gp.make_data()
    for theta in (gp.start_point(y), np.log([0.5, 0.2, 0.05])):
        check_grads(gp.log_marginal_likelihood, (theta, t, y), order=2)
    objective = gp.Objective(t, y)
    theta, v = gp.start_point(y), np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(
        objective.hvp(theta, v), tg.hessian(objective)(theta) @ v, rtol=1e-10
    )


def test_the_likelihood_is_the_gaussian_density_of_the_data(gp):
    # log p(y) = log N(y; 0, K): compare with scipy's multivariate normal density
    import scipy.stats

    t, y = gp.make_data(points=12, seed=3)
    theta = np.log([0.8, 0.3, 0.02])
    ell, s2, n2 = np.exp(theta)
    k = s2 * np.exp(-((t[:, None] - t[None, :]) ** 2) / (2 * ell**2)) + n2 * np.eye(12)
    np.testing.assert_allclose(
        gp.log_marginal_likelihood(theta, t, y),
        scipy.stats.multivariate_normal.logpdf(y, cov=k),
        rtol=1e-12,
    )


def test_the_fit_beats_the_start_with_fewer_evaluations_than_nelder_mead(run):
    assert run["success"] and run["method"] == "L-BFGS-B"
    assert run["log_marginal_likelihood"] > run["log_marginal_likelihood_start"] + 10
    free = run["derivative_free"]
    assert free["method"] == "Nelder-Mead"
    np.testing.assert_allclose(
        free["log_marginal_likelihood"], run["log_marginal_likelihood"], atol=1e-4
    )
    np.testing.assert_allclose(free["theta"], run["theta"], atol=1e-2)
    evaluations = run["evaluations"]
    assert evaluations["hessian_products"] == 0 and evaluations["gradients"] > 0
    assert evaluations["values"] + evaluations["gradients"] < free["evaluations"] / 5
    hyper = run["hyperparameters"]
    assert 0.5 < hyper["length_scale"] < 1 and 0.005 < hyper["noise_variance"] < 0.03


def test_newton_cg_with_hessian_vector_products_reaches_the_same_optimum(gp, run):
    newton = gp.main(["--newton", "--derivative-free", "Powell", "--quiet"])
    assert newton["success"] and newton["method"] == "Newton-CG"
    assert newton["evaluations"]["hessian_products"] > 0
    np.testing.assert_allclose(newton["theta"], run["theta"], atol=1e-4)
    assert newton["derivative_free"]["method"] == "Powell"
    assert (
        newton["derivative_free"]["log_marginal_likelihood"] > run["log_marginal_likelihood"] - 1e-3
    )


def test_posterior_and_plot(gp, run, tmp_path):
    t, y = gp.make_data()
    mean, sd = gp.posterior(t, y, t, run["theta"])
    noise_sd = np.sqrt(run["hyperparameters"]["noise_variance"])
    assert np.sqrt(np.mean((mean - y) ** 2)) < 1.5 * noise_sd  # fits the data to its noise
    assert np.all(sd > 0) and np.all(sd < noise_sd * 3)
    far, far_sd = gp.posterior(t, y, np.array([100.0]), run["theta"])
    np.testing.assert_allclose(
        [far[0], far_sd[0] ** 2], [0.0, run["hyperparameters"]["signal_variance"]], atol=1e-12
    )
    pytest.importorskip("matplotlib")
    path = tmp_path / "gp.png"
    gp.main(["--plot", str(path), "--quiet"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_as_a_script_in_seconds():
    pytest.importorskip("scipy")
    root = EXAMPLE.parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start < 60
    assert len(LINE.findall(result.stdout)) == 4
    assert re.search(r"^L-BFGS-B \(derivatives\) +\d+ value\+gradient ", result.stdout, re.M)
    assert re.search(r"^Nelder-Mead \(no derivatives\) +\d+ values ", result.stdout, re.M)
