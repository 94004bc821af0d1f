"""examples/newton_logreg.py: Newton's method (tg.hvp / tg.hessian) against momentum SGD.

The MNIST test runs a small version of the example in-process (the first 1000 training
images of 3 and 8, 6 Newton-CG iterations, 3 SGD epochs) and is skipped when the MNIST
files are not found (``$TAPEGRAD_DATA_DIR``, else ``../shared/data/mnist`` beside the
repository). The synthetic tests need no data.

Measured on the small run (l2 = 1e-3): Newton-CG reaches loss 0.0521 and test accuracy
0.953 (1984 test images); SGD with momentum reaches loss 0.123 and 0.951 after 3 epochs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "newton_logreg.py"
TEST_ACCURACY_FLOOR = 0.93  # measured 0.953 for Newton-CG, 0.951 for SGD


def _load_example():
    sys.path.insert(0, str(EXAMPLE.parent))  # the examples import their shared _cli module
    spec = importlib.util.spec_from_file_location("newton_logreg", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("newton_logreg", module)
    spec.loader.exec_module(module)
    return module


nl = _load_example()


# ----------------------------------------------------------------------------- synthetic


def _tiny_problem(n: int = 40, d: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (rng.uniform(size=n) < 0.5).astype(np.float64)
    theta = rng.normal(size=d + 1)
    v = rng.normal(size=d + 1)
    return x, y, theta, v


def _analytic_hessian(theta, x, y, l2):
    """``[X 1]^T diag(s (1 - s)) [X 1] / n + l2 on the w block``."""
    z = x @ theta[:-1] + theta[-1]
    s = 1 / (1 + np.exp(-z))
    xa = np.hstack([x, np.ones((len(x), 1))])
    h = (xa.T * (s * (1 - s))) @ xa / len(x)
    h[:-1, :-1] += l2 * np.eye(x.shape[1])
    return h


@pytest.mark.parametrize("l2", [0.0, 1e-3, 0.5])
def test_cg_hvp_equals_hessian_times_v(l2):
    x, y, theta, v = _tiny_problem()
    hv = nl.make_hvp(x, y, l2)(theta, v)  # exactly what the CG step calls
    h = tg.hessian(nl.loss)(theta, x, y, l2)
    assert h.shape == (6, 6)
    np.testing.assert_allclose(hv, h @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, _analytic_hessian(theta, x, y, l2), rtol=1e-12, atol=1e-14)


def test_loss_is_stable_and_smooth_at_zero():
    # softplus through logsumexp: no overflow at |z| = 800, and softplus'(0) = 1/2 (the
    # relu + log1p(exp(-|z|)) form would give 0 there under tapegrad's kink conventions).
    z = np.array([0.0, 800.0, -800.0])
    np.testing.assert_allclose(nl.softplus(z), [np.log(2.0), 800.0, 0.0])
    np.testing.assert_allclose(tg.grad(lambda a: tg.sum(nl.softplus(a)))(z), [0.5, 1.0, 0.0])
    x, y, _, _ = _tiny_problem()
    g = tg.grad(nl.loss)(np.zeros(6), x, y, 1e-3)
    np.testing.assert_allclose(g[:-1], x.T @ (0.5 - y) / len(x), rtol=1e-12, atol=1e-15)


def test_conjugate_gradient_solves_the_newton_system():
    x, y, theta, _ = _tiny_problem()
    h = _analytic_hessian(theta, x, y, 1e-3)
    g = tg.grad(nl.loss)(theta, x, y, 1e-3)
    hvp = nl.make_hvp(x, y, 1e-3)
    p, used = nl.conjugate_gradient(lambda u: hvp(theta, u), -g, maxiter=50, rtol=1e-10)
    assert used <= 12  # 6 unknowns: exact in 6 steps in exact arithmetic
    np.testing.assert_allclose(h @ p, -g, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def small_run(mnist_path):
    argv = ["--data-dir", str(mnist_path), "--limit-train", "1000", "--iters", "6"]
    return nl.main([*argv, "--epochs", "3", "--quiet"])


def test_newton_loss_decreases_monotonically(small_run):
    newton = small_run["newton"]
    losses = np.array(newton["loss"])
    assert small_run["n_train"] == 1000 and small_run["n_test"] == 1984
    assert len(losses) == 7  # the start and 6 Newton iterations
    np.testing.assert_allclose(losses[0], np.log(2.0))  # theta = 0
    assert np.all(np.diff(losses) < 0), losses
    assert newton["grad_norm"][-1] < 1e-2 * newton["grad_norm"][0]
    assert all(1 <= k <= 50 for k in newton["cg_iters"])


def test_newton_beats_a_few_sgd_epochs(small_run):
    newton, sgd = small_run["newton"], small_run["sgd"]
    assert len(sgd["loss"]) == 4  # the start and 3 epochs
    assert newton["loss"][-1] < 0.07 < sgd["loss"][-1]  # measured 0.0521 and 0.123
    assert newton["test_accuracy"] > TEST_ACCURACY_FLOOR
    assert sgd["test_accuracy"] > TEST_ACCURACY_FLOOR


def test_full_hessian_newton_matches_exact_newton_cg():
    # tg.hessian (785 reverse passes) and CG run to convergence on tg.hvp products must
    # take the same Newton steps, so the iterates' losses agree. Random "images" of
    # MNIST's size keep the 785 x 785 Hessian without needing the data.
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(200, 784)) * (rng.uniform(size=784) < 0.8)  # some dead pixels
    y = (x @ rng.normal(size=784) + rng.normal(size=200) > 0).astype(np.float64)
    parser = nl.build_parser()
    argv = ["--iters", "2"]
    full = nl.newton(x, y, parser.parse_args([*argv, "--method", "hessian"]), print)[1]
    cg_argv = [*argv, "--method", "cg", "--cg-tol", "1e-12", "--cg-maxiter", "785"]
    exact_cg = nl.newton(x, y, parser.parse_args(cg_argv), print)[1]
    assert full["cg_iters"] == [0, 0] and len(full["loss"]) == 3
    assert np.all(np.diff(full["loss"]) < 0)
    np.testing.assert_allclose(full["loss"], exact_cg["loss"], rtol=1e-9)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("TAPEGRAD_DATA_DIR", str(tmp_path))
    assert nl.resolve_data_dir("/flag") == "/flag"
    assert nl.resolve_data_dir(None) == str(tmp_path)
    monkeypatch.delenv("TAPEGRAD_DATA_DIR")
    assert nl.resolve_data_dir(None) is None  # load_mnist's own default
