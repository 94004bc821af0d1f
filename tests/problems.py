"""Small problems and helpers shared by the test modules."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

import tapegrad as tg


def mlp_loss(params, x, y):
    """A one-hidden-layer tanh MLP's mean negative log-likelihood."""
    h = tg.tanh(tg.nn.affine(params["W1"], params["b1"], x))
    return tg.nn.nll(tg.nn.affine(params["W2"], params["b2"], h), y)


def mlp_problem(seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """float64 parameters of a 4-5-3 MLP, a batch of 6 inputs and their labels."""
    rng = np.random.default_rng(seed)
    params = {
        "W1": rng.standard_normal((5, 4)),
        "b1": rng.standard_normal(5),
        "W2": rng.standard_normal((3, 5)),
        "b2": rng.standard_normal(3),
    }
    return params, rng.standard_normal((6, 4)), rng.integers(0, 3, 6)


def run_in_threads(work: Callable[[int], None], n: int = 8) -> None:
    """Run ``work(0) ... work(n - 1)`` in ``n`` threads at once and wait for all."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
