"""Arrays of examples cut into minibatches and a validation set.

:func:`batches` iterates over one epoch of minibatches, :func:`num_batches` counts them and
:func:`split_validation` holds examples out. Reading MNIST from disk is
:mod:`tapegrad.mnist`'s job; :func:`~tapegrad.mnist.load_mnist` and that module's other
names from before the split are re-exported here, so ``tg.datasets.load_mnist()`` still
works (but change the mirrors in ``tapegrad.mnist.MIRRORS``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator

import numpy as np

# Re-exported (the redundant aliases say so) for code written before tapegrad.mnist existed;
# documented there.
from tapegrad.mnist import IDX_DTYPES as IDX_DTYPES
from tapegrad.mnist import MIRRORS as MIRRORS
from tapegrad.mnist import MNIST_FILES as MNIST_FILES
from tapegrad.mnist import SHA256 as SHA256
from tapegrad.mnist import DownloadError as DownloadError
from tapegrad.mnist import default_data_dir as default_data_dir
from tapegrad.mnist import load_mnist as load_mnist
from tapegrad.mnist import parse_idx as parse_idx
from tapegrad.mnist import read_idx as read_idx
from tapegrad.mnist import write_idx as write_idx

__all__ = ["batches", "num_batches", "split_validation"]


def _count(value: int, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int (a bool is refused), checked to lie in ``[low, high)``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    value = operator.index(value)
    if value < low or (high is not None and value >= high):
        bounds = f"be >= {low}" if high is None else f"satisfy {low} <= {name} < {high}"
        raise ValueError(f"{name} must {bounds}, got {value}")
    return value


def _check_pair(x: np.ndarray, y: np.ndarray) -> int:
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    return len(x)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}"
        )
    return rng


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of minibatches :func:`batches` yields for ``n`` examples."""
    n, batch_size = _count(n, "n", 0), _count(batch_size, "batch_size", 1)
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over one epoch of minibatches ``(xb, yb)``.

    Args:
        x: examples, shape ``(N, ...)``.
        y: targets, shape ``(N, ...)``.
        batch_size: examples per batch (>= 1); the last batch is smaller unless
            ``drop_last``, which drops it when incomplete.
        rng: the ``numpy.random.Generator`` drawing the order (``rng.permutation(N)``);
            required when ``shuffle``, ignored otherwise.
        shuffle: visit the examples in a random order (else in order).

    Yields:
        ``xb`` of shape ``(B, ...)`` and ``yb`` of shape ``(B, ...)``, ``B <= batch_size``;
        every example appears exactly once per epoch (at most once with ``drop_last``).
        Shuffled batches are copies; unshuffled batches are views of ``x`` and ``y``.

    Arguments are checked when ``batches`` is called, not at the first ``next``.
    """
    n = _check_pair(x, y)
    batch_size = _count(batch_size, "batch_size", 1)
    order = None
    if shuffle:
        if rng is None:
            raise ValueError(
                "batches(shuffle=True) needs rng=np.random.default_rng(seed) for a "
                "reproducible order (or pass shuffle=False)"
            )
        order = _check_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return _iter_batches(x, y, batch_size, order, stop)


def _iter_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None, stop: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end]
            yield x[idx], y[idx]


def split_validation(
    x: np.ndarray, y: np.ndarray, val_size: int, rng: np.random.Generator | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split examples into ``(x_tr, y_tr), (x_val, y_val)``.

    Args:
        x: examples, shape ``(N, ...)``.
        y: targets, shape ``(N, ...)``.
        val_size: number of validation examples, ``0 <= val_size < N``.
        rng: ``None`` takes the LAST ``val_size`` examples (deterministic; the returned
            arrays are views); a ``numpy.random.Generator`` draws a random subset (copies,
            each part kept in the original order).

    Returns:
        ``x_tr`` ``(N - val_size, ...)``, ``y_tr``, ``x_val`` ``(val_size, ...)``, ``y_val``.
    """
    n = _check_pair(x, y)
    cut = n - _count(val_size, "val_size", 0, n)
    if rng is None:
        return (x[:cut], y[:cut]), (x[cut:], y[cut:])
    perm = _check_rng(rng).permutation(n)
    tr, val = np.sort(perm[:cut]), np.sort(perm[cut:])
    return (x[tr], y[tr]), (x[val], y[val])
