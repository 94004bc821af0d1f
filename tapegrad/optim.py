"""Functional optimizers: pure update rules over pytrees.

An optimizer is a pair of pure functions: ``state = opt.init(params)`` and
``params, state = opt.update(params, grads, state)``. Nothing passed in is mutated; the
state is an immutable named tuple (a pytree, so it can be checkpointed) that counts steps.

The rules, as in the lab report (``t`` the step, ``lr_t`` the learning rate at step ``t``):

- SGD:       ``theta <- theta - lr_t g``
- momentum:  ``v <- mu v + g;  theta <- theta - lr_t v``   (``v`` starts at zero)

``lr`` is a number or a schedule ``step -> lr`` called with the number of updates made so
far (0 for the first). Parameter dtypes are kept: float32 parameters stay float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import numpy as np

from tapegrad.pytree import leaf_paths, tree_leaves, tree_map

__all__ = ["MomentumState", "Optimizer", "SGDState", "momentum", "sgd"]

Schedule = Callable[[int], float]


class SGDState(NamedTuple):
    """State of :func:`sgd`: the number of updates made."""

    step: int


class MomentumState(NamedTuple):
    """State of :func:`momentum`: the number of updates made and the velocity tree."""

    step: int
    velocity: Any


@attrs.frozen
class Optimizer:
    """An ``init``/``update`` pair of pure functions (see the module docstring)."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


def _learning_rate(lr: float | Schedule, step: int) -> float:
    value = lr(step) if callable(lr) else lr
    value = float(value)  # a Python float never widens float32 parameters
    if not np.isfinite(value):
        raise ValueError(f"learning rate at step {step} is {value}")
    return value


def _check_lr(lr: float | Schedule) -> None:
    number = isinstance(lr, (int, float, np.number)) and not isinstance(lr, (bool, np.bool_))
    if not callable(lr) and not (number and lr > 0):
        raise ValueError(f"lr must be a positive number or a callable step -> lr, got {lr!r}")


def _shape_error(params: Any, grads: Any) -> ValueError:
    """The first leaf whose gradient's shape differs from the parameter's, as an error."""
    for path, p, g in zip(
        leaf_paths(params, "params"), tree_leaves(params), tree_leaves(grads), strict=True
    ):
        if np.shape(p) != np.shape(g):
            return ValueError(
                f"update: the gradient of {path} has shape {np.shape(g)}, "
                f"the parameter has shape {np.shape(p)}"
            )
    return ValueError("update: gradient and parameter shapes differ")


class _ShapeMismatch(Exception):
    pass


def _checked(p: Any, g: Any) -> tuple[np.ndarray, np.ndarray]:
    if type(p) is not np.ndarray or type(g) is not np.ndarray:
        p, g = np.asarray(p), np.asarray(g)
    if p.shape != g.shape:  # broadcasting would silently hide a bug
        raise _ShapeMismatch
    return p, g


def _map_checked(fn: Callable[..., Any], params: Any, grads: Any, *rest: Any) -> Any:
    """``tree_map(fn, params, grads, *rest)``; a leaf shape mismatch names the leaf's path."""
    try:
        return tree_map(fn, params, grads, *rest)
    except _ShapeMismatch:
        raise _shape_error(params, grads) from None


def _descend(p: Any, d: Any, lr: float) -> np.ndarray:
    """``p - lr * d`` as one new array of ``p``'s dtype."""
    p, d = _checked(p, d)
    out = d * -lr
    if out.dtype != p.dtype:
        out = out.astype(p.dtype)
    out += p
    return out


def _accumulate(v: Any, g: Any, mu: float) -> np.ndarray:
    """``mu * v + g`` as one new array of ``v``'s dtype."""
    v, g = _checked(v, g)
    out = v * mu
    out += g
    return out


def sgd(lr: float | Schedule) -> Optimizer:
    """Plain stochastic gradient descent: ``theta <- theta - lr_t g``."""
    _check_lr(lr)

    def init(params: Any) -> SGDState:
        return SGDState(step=0)

    def update(params: Any, grads: Any, state: SGDState) -> tuple[Any, SGDState]:
        step = int(state.step)
        rate = _learning_rate(lr, step)
        new = _map_checked(lambda p, g: _descend(p, g, rate), params, grads)
        return new, SGDState(step=step + 1)

    return Optimizer(init, update)


def momentum(lr: float | Schedule, mu: float = 0.9) -> Optimizer:
    """SGD with momentum: ``v <- mu v + g;  theta <- theta - lr_t v``."""
    _check_lr(lr)
    if not 0 <= mu < 1:
        raise ValueError(f"momentum: mu must lie in [0, 1), got {mu}")
    mu = float(mu)

    def init(params: Any) -> MomentumState:
        return MomentumState(step=0, velocity=tree_map(np.zeros_like, params))

    def update(params: Any, grads: Any, state: MomentumState) -> tuple[Any, MomentumState]:
        step = int(state.step)
        rate = _learning_rate(lr, step)
        velocity = _map_checked(lambda v, g: _accumulate(v, g, mu), state.velocity, grads)
        new = _map_checked(lambda p, v: _descend(p, v, rate), params, velocity)
        return new, MomentumState(step=step + 1, velocity=velocity)

    return Optimizer(init, update)
