"""Logistic regression on two MNIST digits, fitted by Newton's method with tapegrad.

Two digits (``--digits 3 8``: label 0 for the first, 1 for the second) are separated by a
linear model ``z = x . w + b`` on the 784 pixels scaled to [0, 1] (float64). The parameters
live in one flat vector ``theta = [w (784), b]`` of 785 entries, so the Hessian is a
785 x 785 matrix. The objective is the mean binary cross-entropy plus an L2 penalty on
``w`` (the bias is not penalised)::

    L(theta) = mean_i [ softplus(z_i) - y_i z_i ] + (l2 / 2) |w|^2,   softplus(z) = log(1 + e^z)

It is fitted twice, and the two fits are compared on the test images of the two digits:
by Newton's method (second order, full batch) and by SGD with momentum
(``tg.optim.momentum``, first order, minibatches).

Newton's method
---------------
Near ``theta`` the loss is approximately quadratic,
``L(theta + p) ~ L + g.p + p.H p / 2`` with ``g`` the gradient and ``H`` the Hessian; the
step minimising that model solves ``H p = -g``. When ``H`` is positive definite (it is
here: the loss is convex and the L2 term adds ``l2`` to every eigenvalue of the ``w``
block) ``p`` is a descent direction, and a backtracking line search (halve ``t`` from 1
until ``L(theta + t p) <= L(theta) + 1e-4 t g.p``, Armijo's condition) makes every
iteration decrease the loss even far from the optimum, where the quadratic model is poor.
Close to the optimum the full step is accepted and convergence is quadratic: the
gradient norm roughly squares from one iteration to the next.

Two ways of solving ``H p = -g`` (``--method``):

- ``hessian``: form ``H`` with ``tg.hessian`` and solve with a Cholesky factorisation.
  ``tg.hessian`` is ``tg.jacobian(tg.grad(loss))``: the gradient is computed on a tape
  that is itself recorded, then that recorded gradient computation is pulled back once per
  entry of ``theta``, 785 reverse passes over the whole training set. On the ~12,000
  training images of 3 and 8 that took about 5 s per Newton iteration on an idle 2-core
  machine (16 s with other jobs competing for the cores), against 0.1 to 2 s for a whole
  Newton-CG step; ``--hessian-subsample N`` forms it on the first N examples only
  ("subsampled Newton"; the gradient and the line search still use all of them).
- ``cg`` (the default): Newton-CG, i.e. truncated Newton. Conjugate gradients solve
  ``H p = -g`` touching ``H`` only through products ``H v``, each from ``tg.hvp``:
  ``H v = grad_theta <grad L(theta), v>``, about the cost of two gradients and no
  785 x 785 matrix. CG stops after ``--cg-maxiter`` products or once the residual is below
  ``eta |g|`` with ``eta = min(--cg-tol, sqrt(|g|))``, the forcing term that keeps Newton's
  fast local convergence (Nocedal and Wright, Numerical Optimization, ch. 7). Started from
  ``p = 0``, every CG iterate is a descent direction, so a truncated solve is still usable.

Why second derivatives come from reverse over reverse
-----------------------------------------------------
tapegrad has a single, reverse-mode interpreter, and its VJP rules are written with
tapegrad's own ops. So when ``tg.grad`` runs *inside* another transform, the reverse pass
that computes ``g(theta)`` is itself recorded on the outer tape, as an ordinary function of
``theta``, and can be differentiated again in reverse mode. ``tg.hessian`` pulls back each
basis vector through that recorded gradient (one row of ``H`` per pass); ``tg.hvp``
differentiates the scalar ``<g(theta), v>`` once, which gives ``H v`` in a single extra
reverse pass (``H`` is symmetric, so the row vector ``v^T H`` is ``H v``).

Choices made here (and why)
---------------------------
- **L2 penalty, default ``--l2 1e-3``.** Without it Newton's method is badly posed on this
  data. Pixels that are zero in every training image (the image borders) give zero rows
  and columns in ``H = X^T D X / n``, so ``H`` is singular and ``H p = -g`` has no unique
  solution; and with 784 features 3s and 8s are close to linearly separable, so the
  unpenalised loss keeps falling as ``|w|`` grows and the curvature ``D = s(z)(1 - s(z))``
  vanishes on the confidently classified images. ``l2`` bounds the smallest eigenvalue of
  ``H`` below by ``l2`` and gives a finite minimiser. 1e-3 is small next to the data
  term (at ``theta = 0`` the largest eigenvalue of ``H`` is about 13; on 3 vs 8, 161 of
  the 784 pixels are zero in every training image) so it barely costs accuracy, yet it
  keeps ``H``'s condition number near 1e4, which Cholesky handles exactly and CG well
  enough in 50 products. Larger values (1e-2) converge faster and regularise more;
  much smaller ones (1e-6) make CG truncate long before it converges.
- **A stable softplus.** ``softplus(z)`` is ``tg.logsumexp`` over the stacked pair
  ``[0, z]``: no overflow for large ``|z|``, and smooth, so its second derivative is right
  everywhere. The textbook alternative ``relu(z) + log(1 + exp(-|z|))`` is stable too but
  goes through two kinks; at ``z = 0``, where every example sits when ``theta = 0``,
  tapegrad (like JAX) takes ``relu'(0) = abs'(0) = 0``, which gives ``softplus'(0) = 0``
  instead of 1/2 and ``softplus''(0) = 0`` instead of 1/4: a wrong first Newton step.
- **Start and data.** Both optimisers start from ``theta = 0`` (loss ``log 2``).
  ``--limit-train N`` keeps the first N training images of the two digits (in MNIST's
  order); the test set is every test image of the two digits. The SGD baseline uses
  ``--epochs`` passes over shuffled minibatches of ``--batch-size`` with a constant
  ``--lr`` and ``--mu``; its loss is reported on the full training set after each epoch.

Run it (``--data-dir``, else ``$TAPEGRAD_DATA_DIR``, else ``~/.cache/tapegrad/mnist``)::

    python examples/newton_logreg.py --data-dir /path/to/mnist          # Newton-CG, 3 vs 8
    python examples/newton_logreg.py --method hessian                   # full 785 x 785 H
    python examples/newton_logreg.py --method hessian --hessian-subsample 2000
    python examples/newton_logreg.py --digits 4 9 --l2 1e-2 --iters 15
    python examples/newton_logreg.py --limit-train 1000 --iters 5 --epochs 2   # quick
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from _cli import (
    load_mnist_or_exit,
    momentum_coefficient,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

import tapegrad as tg

N_PIXELS = 28 * 28
ARMIJO_C = 1e-4
MAX_HALVINGS = 30


# ----------------------------------------------------------------------------- the model


def unpack(theta: Any) -> dict:
    """The flat parameter vector ``[w (784), b]`` as the params dict ``{"w": ..., "b": ...}``."""
    return {"w": theta[:-1], "b": theta[-1]}


def logits(theta: Any, x: Any) -> Any:
    """``z = x w + b`` for inputs ``x`` of shape ``(n, 784)``."""
    params = unpack(theta)
    return x @ params["w"] + params["b"]


def softplus(z: Any) -> Any:
    """``log(1 + e^z)`` as ``logsumexp([0, z])``: stable, and smooth (see the docstring)."""
    return tg.logsumexp(tg.stack([np.zeros(np.shape(z)), z], axis=0), axis=0)


def loss(theta: Any, x: Any, y: Any, l2: float) -> Any:
    """Mean binary cross-entropy of the logits ``z`` against labels ``y`` in {0, 1}, plus L2.

    ``-[y log s(z) + (1 - y) log(1 - s(z))] = softplus(z) - y z``.
    """
    z = logits(theta, x)
    w = unpack(theta)["w"]
    return tg.mean(softplus(z) - y * z) + (0.5 * l2) * tg.sum(w * w)


def accuracy(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of examples whose predicted class ``[z > 0]`` is the label."""
    return float(np.mean((logits(theta, x) > 0) == (y > 0.5)))


def make_hvp(x: np.ndarray, y: np.ndarray, l2: float) -> Callable[[np.ndarray, np.ndarray], Any]:
    """``(theta, v) -> H(theta) v`` for :func:`loss` on ``(x, y)``, via ``tg.hvp``.

    ``tg.hvp`` differentiates every primal it is given, so the data are closed over by the
    objective rather than passed to it: only ``theta`` is differentiated. The product is
    compiled with ``tg.jit`` (the data are inputs of the program): the first call records
    the forward pass, the gradient and its derivative once, and every later product of the
    conjugate-gradient loop runs that program.
    """

    @tg.jit
    def hessian_vector_product(theta: Any, v: Any, x: Any, y: Any) -> Any:
        (hv,) = tg.hvp(lambda t: loss(t, x, y, l2), (theta,), (v,))
        return hv

    def hvp(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        return hessian_vector_product(theta, v, x, y)

    return hvp


# ----------------------------------------------------------------------------- Newton


def conjugate_gradient(
    matvec: Callable[[np.ndarray], np.ndarray], b: np.ndarray, maxiter: int, rtol: float
) -> tuple[np.ndarray, int]:
    """Approximately solve ``A p = b`` for symmetric positive definite ``A``, from ``p = 0``.

    Stops when ``|b - A p| <= rtol |b|`` or after ``maxiter`` products ``A v``; returns
    ``(p, number of products)``. Should a direction of non-positive curvature appear (it
    cannot for this convex loss) the iterate reached so far is returned, or ``b`` itself
    if there is none yet: both are descent directions when ``b = -g``.
    """
    p = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr = float(r @ r)
    stop = rtol * math.sqrt(rr)
    for k in range(maxiter):
        if math.sqrt(rr) <= stop:
            return p, k
        ad = matvec(d)
        curvature = float(d @ ad)
        if curvature <= 0:
            return (p if k else b.copy()), k + 1
        alpha = rr / curvature
        p += alpha * d
        r -= alpha * ad
        rr_new = float(r @ r)
        d = r + (rr_new / rr) * d
        rr = rr_new
    return p, maxiter


def newton(
    x: np.ndarray,
    y: np.ndarray,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> tuple[np.ndarray, dict]:
    """Minimise :func:`loss` from ``theta = 0`` by damped Newton; ``(theta, history)``.

    ``history`` lists, per iterate (0 is the start), the loss, the gradient norm and the
    cumulative seconds; and per step taken (one fewer), the CG products it used (0 for
    ``--method hessian``) and the step size the line search accepted.
    """
    l2 = args.l2
    theta = np.zeros(x.shape[1] + 1)
    value_and_grad = tg.value_and_grad(loss)
    hvp = make_hvp(x, y, l2)
    hessian = tg.hessian(loss)
    nh = args.hessian_subsample
    xh, yh = (x[:nh], y[:nh]) if nh is not None else (x, y)

    history: dict[str, list] = {
        "loss": [],
        "grad_norm": [],
        "cg_iters": [],
        "step": [],
        "seconds": [],
    }
    start = time.perf_counter()
    value, g = value_and_grad(theta, x, y, l2)
    cg_col = " CG" if args.method == "cg" else ""
    log(f"{'iter':>4} {'loss':>12} {'|grad|':>10}{cg_col:>5} {'step':>8} {'seconds':>8}")

    for it in range(args.iters + 1):
        gnorm = float(np.linalg.norm(g))
        history["loss"].append(float(value))
        history["grad_norm"].append(gnorm)
        history["seconds"].append(time.perf_counter() - start)
        if it == args.iters or gnorm <= args.gtol:
            log(_newton_row(it, history, args.method))
            break

        # The Newton direction: H p = -g.
        if args.method == "hessian":
            h = hessian(theta, xh, yh, l2)
            p = -_cho_solve(h, g)
            used = 0
        else:
            rtol = min(args.cg_tol, math.sqrt(gnorm))
            p, used = conjugate_gradient(functools.partial(hvp, theta), -g, args.cg_maxiter, rtol)

        # Backtracking (Armijo) line search on the full training loss.
        slope = float(g @ p)
        t = 1.0
        for _ in range(MAX_HALVINGS):
            candidate = theta + t * p
            new_value = float(loss(candidate, x, y, l2))
            if new_value <= value + ARMIJO_C * t * slope:
                break
            t *= 0.5
        else:
            log(_newton_row(it, history, args.method))
            log("line search failed: no decrease along the Newton direction; stopping")
            break
        history["cg_iters"].append(used)
        history["step"].append(t)
        log(_newton_row(it, history, args.method))
        theta = candidate
        value, g = value_and_grad(theta, x, y, l2)
    return theta, history


def _cho_solve(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``H^-1 g`` through the Cholesky factor ``H = L L^T`` (``H`` must be positive definite)."""
    lower = np.linalg.cholesky(h)
    return np.linalg.solve(lower.T, np.linalg.solve(lower, g))


def _newton_row(it: int, history: dict, method: str) -> str:
    """One printed line; the CG and step columns are blank for an iterate no step left."""
    stepped = it < len(history["step"])
    cg = ""
    if method == "cg":
        cg = f" {history['cg_iters'][it]:>4d}" if stepped else f" {'-':>4}"
    step = f"{history['step'][it]:>8.4g}" if stepped else f"{'-':>8}"
    return (
        f"{it:>4d} {history['loss'][it]:>12.8f} {history['grad_norm'][it]:>10.3e}{cg}"
        f" {step} {history['seconds'][it]:>8.2f}"
    )


# ----------------------------------------------------------------------------- SGD baseline


def momentum_sgd(
    x: np.ndarray,
    y: np.ndarray,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> tuple[np.ndarray, dict]:
    """Minimise the same loss with ``tg.optim.momentum`` on shuffled minibatches."""
    l2 = args.l2
    theta = np.zeros(x.shape[1] + 1)
    opt = tg.optim.momentum(args.lr, mu=args.mu)
    state = opt.init(theta)
    step = tg.grad(loss)
    rng = np.random.default_rng(args.seed)
    history: dict[str, list] = {"loss": [float(loss(theta, x, y, l2))], "seconds": [0.0]}
    log(f"{'epoch':>5} {'loss':>12} {'seconds':>8}")
    log(f"{0:>5d} {history['loss'][0]:>12.8f} {0.0:>8.2f}")
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for xb, yb in tg.datasets.batches(x, y, args.batch_size, rng=rng):
            theta, state = opt.update(theta, step(theta, xb, yb, l2), state)
        history["loss"].append(float(loss(theta, x, y, l2)))
        history["seconds"].append(time.perf_counter() - start)
        log(f"{epoch:>5d} {history['loss'][-1]:>12.8f} {history['seconds'][-1]:>8.2f}")
    return theta, history


# ----------------------------------------------------------------------------- data


def resolve_data_dir(flag: str | None) -> str | None:
    """``--data-dir``, else ``$TAPEGRAD_DATA_DIR``, else ``None`` (the loader's default)."""
    return flag or os.environ.get("TAPEGRAD_DATA_DIR") or None


def load_digits(
    data_dir: str | None, digits: Sequence[int], limit_train: int | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Images of the two ``digits`` as float64 ``(n, 784)`` in [0, 1]; labels 0.0 / 1.0."""
    (x_train, y_train), (x_test, y_test) = load_mnist_or_exit("newton_logreg.py", data_dir)

    def select(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple:
        keep = np.flatnonzero(np.isin(labels, digits))[:limit]
        x = images[keep].reshape(len(keep), N_PIXELS).astype(np.float64) / 255.0
        return x, (labels[keep] == digits[1]).astype(np.float64)

    return select(x_train, y_train, limit_train), select(x_test, y_test, None)


# ----------------------------------------------------------------------------- command line


def _digit(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"must be a digit 0-9, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newton_logreg.py",
        description="Logistic regression on two MNIST digits: Newton's method (tg.hessian / "
        "tg.hvp) against SGD with momentum.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data and model")
    data.add_argument(
        "--data-dir",
        default=None,
        help="directory of the MNIST IDX files (default: $TAPEGRAD_DATA_DIR, else "
        "~/.cache/tapegrad/mnist)",
    )
    data.add_argument(
        "--digits",
        type=_digit,
        nargs=2,
        default=[3, 8],
        metavar=("NEG", "POS"),
        help="the two digits to separate (label 0, label 1)",
    )
    data.add_argument(
        "--limit-train",
        type=positive_int,
        default=None,
        metavar="N",
        help="use only the first N training images of the two digits",
    )
    data.add_argument("--l2", type=nonnegative_float, default=1e-3, help="L2 penalty on w")
    newt = parser.add_argument_group("Newton")
    newt.add_argument("--method", choices=["cg", "hessian"], default="cg")
    newt.add_argument("--iters", type=nonnegative_int, default=10, help="Newton iterations")
    newt.add_argument("--cg-maxiter", type=positive_int, default=50, help="H v products / step")
    newt.add_argument(
        "--cg-tol",
        type=positive_float,
        default=0.1,
        help="largest relative CG residual (the forcing term is min(this, sqrt|g|))",
    )
    newt.add_argument(
        "--gtol",
        type=nonnegative_float,
        default=1e-10,
        help="stop once the gradient norm is this small",
    )
    newt.add_argument(
        "--hessian-subsample",
        type=positive_int,
        default=None,
        metavar="N",
        help="--method hessian: form H on the first N training examples only",
    )
    sgd = parser.add_argument_group("momentum SGD baseline")
    sgd.add_argument("--epochs", type=nonnegative_int, default=5)
    sgd.add_argument("--lr", type=positive_float, default=0.1)
    sgd.add_argument("--mu", type=momentum_coefficient, default=0.9)
    sgd.add_argument("--batch-size", type=positive_int, default=128)
    sgd.add_argument("--seed", type=nonnegative_int, default=0, help="shuffling seed")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the comparison; returns the metrics (also printed unless ``--quiet``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.digits[0] == args.digits[1]:
        parser.error(f"--digits needs two different digits, got {args.digits}")

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    data_dir = resolve_data_dir(args.data_dir)
    (x, y), (x_test, y_test) = load_digits(data_dir, args.digits, args.limit_train)
    neg, pos = args.digits
    log(
        f"digits {neg} (y=0) vs {pos} (y=1): {len(x)} training images "
        f"({int(y.sum())} of {pos}), {len(x_test)} test images; l2={args.l2:g}"
    )

    name = "Newton-CG" if args.method == "cg" else "Newton (full Hessian)"
    if args.method == "cg":
        detail = f"at most {args.cg_maxiter} H v products per step (tg.hvp)"
    else:
        n_hessian = min(len(x), args.hessian_subsample or len(x))
        detail = f"tg.hessian on {n_hessian} examples, Cholesky solve"
    log(f"\n{name}, {detail}:")
    theta_newton, newton_hist = newton(x, y, args, log)
    newton_acc = accuracy(theta_newton, x_test, y_test)
    newton_train_acc = accuracy(theta_newton, x, y)
    log(f"{name}: train accuracy {newton_train_acc:.4f}, test accuracy {newton_acc:.4f}")

    log(
        f"\nmomentum SGD (lr={args.lr:g}, mu={args.mu:g}, batch {args.batch_size}, "
        f"{args.epochs} epochs):"
    )
    theta_sgd, sgd_hist = momentum_sgd(x, y, args, log)
    sgd_acc = accuracy(theta_sgd, x_test, y_test)
    sgd_train_acc = accuracy(theta_sgd, x, y)
    log(f"momentum SGD: train accuracy {sgd_train_acc:.4f}, test accuracy {sgd_acc:.4f}")

    log(
        f"\ncomparison: {name} loss {newton_hist['loss'][-1]:.6f}, test accuracy "
        f"{newton_acc:.4f} in {len(newton_hist['loss']) - 1} iterations "
        f"({newton_hist['seconds'][-1]:.1f} s) | momentum SGD loss {sgd_hist['loss'][-1]:.6f}, "
        f"test accuracy {sgd_acc:.4f} in {args.epochs} epochs ({sgd_hist['seconds'][-1]:.1f} s)"
    )
    return {
        "config": vars(args) | {"data_dir": data_dir},
        "n_train": len(x),
        "n_test": len(x_test),
        "newton": {
            "method": args.method,
            **newton_hist,
            "train_accuracy": newton_train_acc,
            "test_accuracy": newton_acc,
        },
        "sgd": {**sgd_hist, "train_accuracy": sgd_train_acc, "test_accuracy": sgd_acc},
    }


if __name__ == "__main__":
    main()
