"""Functional optimizers: pure update rules over pytrees.

An optimizer is a pair of pure functions: ``state = opt.init(params)`` and
``params, state = opt.update(params, grads, state)``. Nothing passed in is mutated; the
state is an immutable named tuple (a pytree, so it can be checkpointed) that counts steps.

The rules, as in the lab report (``t`` the step, ``lr_t`` the learning rate at step ``t``):

- SGD:       ``theta <- theta - lr_t g``
- momentum:  ``v <- mu v + g;  theta <- theta - lr_t v``   (``v`` starts at zero)

``lr`` is a number or a schedule ``step -> lr`` called with the number of updates made so
far (0 for the first), a numpy integer. Parameter dtypes are kept: float32 parameters stay
float32. The updates are written with tapegrad's ops, so a whole training step (gradient
and update) compiles with ``tg.jit``: the step count is then an input of the program, and
a schedule must compute with ops on it (``tg.cos``, ``tg.minimum``), not with ``math``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import numpy as np

from tapegrad import ops
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.pytree import leaf_paths, tree_leaves, tree_map
from tapegrad.tape import Traced

__all__ = ["MomentumState", "Optimizer", "SGDState", "momentum", "sgd"]

Schedule = Callable[[int], float]


class SGDState(NamedTuple):
    """State of :func:`sgd`: the number of updates made (a numpy integer)."""

    step: Any


class MomentumState(NamedTuple):
    """State of :func:`momentum`: the number of updates made and the velocity tree."""

    step: Any
    velocity: Any


@attrs.frozen
class Optimizer:
    """An ``init``/``update`` pair of pure functions (see the module docstring)."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


def _negative_rate(lr: float | Schedule, step: Any) -> Any:
    """``-lr_t``: a Python float, or an array (a schedule's result) cast leaf by leaf later."""
    value = lr(step) if callable(lr) else lr
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"learning rate at step {step} is {value}")
        return -value
    if type(value) is not Traced and not np.all(np.isfinite(value)):
        raise ValueError(f"learning rate at step {step} is {value}")
    return ops.negative(value)


def _in_dtype(rate: Any, like: Any) -> Any:
    """``rate`` in ``like``'s dtype: a numpy float64 rate never widens float32 parameters."""
    return rate if type(rate) is float else ops.cast(rate, dtype_of(like))


def _check_lr(lr: float | Schedule) -> None:
    number = isinstance(lr, (int, float, np.number)) and not isinstance(lr, (bool, np.bool_))
    if not callable(lr) and not (number and lr > 0):
        raise ValueError(f"lr must be a positive number or a callable step -> lr, got {lr!r}")


def _shape_error(params: Any, grads: Any) -> ValueError:
    """The first leaf whose gradient's shape differs from the parameter's, as an error."""
    for path, p, g in zip(
        leaf_paths(params, "params"), tree_leaves(params), tree_leaves(grads), strict=True
    ):
        if shape_of(p) != shape_of(g):
            return ValueError(
                f"update: the gradient of {path} has shape {shape_of(g)}, "
                f"the parameter has shape {shape_of(p)}"
            )
    return ValueError("update: gradient and parameter shapes differ")


class _ShapeMismatch(Exception):
    pass


def _map_checked(fn: Callable[..., Any], params: Any, grads: Any, *rest: Any) -> Any:
    """``tree_map(fn, params, grads, *rest)``; a leaf shape mismatch names the leaf's path.

    Shapes must match exactly: broadcasting a gradient would silently hide a bug.
    """

    def checked(p: Any, g: Any, *more: Any) -> Any:
        if shape_of(p) != shape_of(g):
            raise _ShapeMismatch
        return fn(p, g, *more)

    try:
        return tree_map(checked, params, grads, *rest)
    except _ShapeMismatch:
        raise _shape_error(params, grads) from None


def _descend(p: Any, d: Any, negative_rate: Any) -> Any:
    """``p - lr d``, in ``p``'s dtype."""
    return ops.add(p, ops.multiply(d, _in_dtype(negative_rate, p)))


def _accumulate(v: Any, g: Any, mu: float) -> Any:
    """``mu v + g``, in ``v``'s dtype."""
    return ops.add(ops.multiply(v, mu), g)


def _next(step: Any) -> Any:
    """The step count plus one, a numpy integer (an input of a compiled step, not a constant)."""
    return ops.add(step, np.int64(1))


def sgd(lr: float | Schedule) -> Optimizer:
    """Plain stochastic gradient descent: ``theta <- theta - lr_t g``."""
    _check_lr(lr)

    def init(params: Any) -> SGDState:
        return SGDState(step=np.int64(0))

    def update(params: Any, grads: Any, state: SGDState) -> tuple[Any, SGDState]:
        rate = _negative_rate(lr, state.step)
        new = _map_checked(lambda p, g: _descend(p, g, rate), params, grads)
        return new, SGDState(step=_next(state.step))

    return Optimizer(init, update)


def momentum(lr: float | Schedule, mu: float = 0.9) -> Optimizer:
    """SGD with momentum: ``v <- mu v + g;  theta <- theta - lr_t v``."""
    _check_lr(lr)
    if not 0 <= mu < 1:
        raise ValueError(f"momentum: mu must lie in [0, 1), got {mu}")
    mu = float(mu)

    def init(params: Any) -> MomentumState:
        return MomentumState(step=np.int64(0), velocity=tree_map(np.zeros_like, params))

    def update(params: Any, grads: Any, state: MomentumState) -> tuple[Any, MomentumState]:
        rate = _negative_rate(lr, state.step)
        velocity = _map_checked(lambda v, g: _accumulate(v, g, mu), state.velocity, grads)
        new = _map_checked(lambda p, v: _descend(p, v, rate), params, velocity)
        return new, MomentumState(step=_next(state.step), velocity=velocity)

    return Optimizer(init, update)
