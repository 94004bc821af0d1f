"""Functional optimizers: pure update rules over pytrees, composable as transformations.

An **optimizer** is a pair of pure functions: ``state = opt.init(params)`` and
``params, state = opt.update(params, grads, state)``. Nothing passed in is mutated; the
state is an immutable named tuple (a pytree, so it can be checkpointed) that counts steps.

Composition follows optax. A :class:`Transformation` is an ``init``/``update`` pair that
turns gradients into *updates*: ``updates, state = t.update(updates, state, params)``.
Every optimizer here is one transformation (gradients in, ``-lr_t`` times a direction out)
followed by ``theta <- theta + update``; :func:`chain` runs transformations one after the
other, ending with an optimizer, and gives an optimizer again::

    opt = chain(clip_by_global_norm(1.0), adamw(3e-4, mask=matrices_only))
    state = opt.init(params)                       # (clip's state, adamw's state)
    params, state = opt.update(params, grads, state)

The rules (``t`` the step, counted from 1 in the formulas, ``lr_t`` the learning rate,
``g`` the gradient, ``theta`` a parameter; the moment buffers start at zero). They are
PyTorch's (``torch.optim``), with its defaults:

- :func:`sgd`:       ``theta <- theta - lr_t g``
- :func:`momentum`:  ``v <- mu v + g;  theta <- theta - lr_t v``
- :func:`nesterov`:  ``v <- mu v + g;  theta <- theta - lr_t (g + mu v)``
- :func:`adam`:      ``m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;``
  ``theta <- theta - lr_t m_hat / (sqrt(s_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
  ``s_hat = s / (1 - b2^t)`` (eps outside the square root)
- :func:`adamw`:     Adam's step and, decoupled from the moments,
  ``theta <- theta - lr_t wd theta``
- :func:`rmsprop`:   ``s <- alpha s + (1 - alpha) g^2;  theta <- theta - lr_t g / (sqrt(s) + eps)``;
  centered: ``a <- alpha a + (1 - alpha) g`` and ``s - a^2`` in place of ``s``; with
  momentum: ``b <- mu b + g / (sqrt(.) + eps);  theta <- theta - lr_t b``
- :func:`adagrad`:   ``s <- s + g^2;  theta <- theta - lr'_t g / (sqrt(s) + eps)`` with
  ``lr'_t = lr_t / (1 + (t - 1) lr_decay)``

``weight_decay`` on every optimizer but :func:`adamw` is PyTorch's L2 form,
``g <- g + wd theta`` before the rule; ``mask`` (a pytree of bools shaped like the
parameters, or a function of the parameters returning one, such as :func:`matrices_only`)
says which leaves decay.

``lr`` is a number or a schedule ``step -> lr`` called with the number of updates made so
far (0 for the first), a numpy integer: :func:`constant`, :func:`cosine_decay`,
:func:`warmup_cosine`. Parameter dtypes are kept: hyperparameters are Python floats, and
the arrays computed from the step (a schedule's rate, Adam's bias corrections) are cast to
each leaf's dtype, so float32 parameters and moments stay float32. The updates are written
with tapegrad's ops, so a whole training step (gradient and update) compiles with
``tg.jit``: the step count is then an input of the program, and a schedule computes with
ops on it (``tg.cos``, ``tg.minimum``), not with ``math``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import numpy as np

from tapegrad import ops
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.pytree import leaf_paths, tree_leaves, tree_map, tree_unflatten
from tapegrad.tape import Traced

__all__ = [
    "AdagradState",
    "AdamState",
    "EmptyState",
    "MomentumState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "Transformation",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "chain",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "matrices_only",
    "momentum",
    "nesterov",
    "rmsprop",
    "sgd",
    "warmup_cosine",
]

Schedule = Callable[[Any], Any]
Mask = Any  # a pytree of bools shaped like the parameters, or params -> such a tree


# =======================================================================================
# States


class SGDState(NamedTuple):
    """State of :func:`sgd`: the number of updates made (a numpy integer)."""

    step: Any


class MomentumState(NamedTuple):
    """State of :func:`momentum` and :func:`nesterov`: the step and the velocity tree."""

    step: Any
    velocity: Any


class AdamState(NamedTuple):
    """State of :func:`adam` and :func:`adamw`: the step and the two moment trees."""

    step: Any
    mu: Any  # m, the moving average of the gradient
    nu: Any  # s, the moving average of its square


class RMSpropState(NamedTuple):
    """State of :func:`rmsprop`: the step, the mean square, and (``()`` when unused) the
    mean gradient of the centered form and the momentum buffer."""

    step: Any
    square_avg: Any
    grad_avg: Any
    momentum: Any


class AdagradState(NamedTuple):
    """State of :func:`adagrad`: the step and the sums of squared gradients."""

    step: Any
    sum_of_squares: Any


class EmptyState(NamedTuple):
    """State of a transformation that keeps none (:func:`clip_by_global_norm`, ...)."""


# =======================================================================================
# Transformations and optimizers


@attrs.frozen
class Transformation:
    """Gradients to updates: ``init(params) -> state`` and
    ``update(updates, state, params) -> (updates, state)``, both pure."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]


@attrs.frozen
class Optimizer:
    """An ``init``/``update`` pair of pure functions (see the module docstring).

    ``update(params, grads, state) -> (params, state)``. ``transformation`` is the same
    rule as a :class:`Transformation` (what :func:`chain` composes), or ``None``.
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]
    transformation: Transformation | None = attrs.field(default=None, repr=False)


def _apply(p: Any, u: Any) -> Any:
    """``p + u`` in ``p``'s dtype; ``u`` is an update the rule has just made."""
    if _fits_into(u, p):  # _add_to_fresh's in-place case, tested first: eager leaves take it
        return np.add(u, p, out=u)
    if dtype_of(u) != dtype_of(p):
        u = ops.cast(u, dtype_of(p))
    return _add_to_fresh(u, p)


def _add_to_fresh(fresh: Any, other: Any) -> Any:
    """``fresh + other``, where ``fresh`` is an array the caller has just made.

    On plain arrays of one shape and dtype the sum is written into ``fresh``: an eager
    update then allocates one array a leaf, not two (a compiled step gets the same from
    the compiler's ``out=``). The floats are those of ``ops.add``: addition commutes.
    """
    if _fits_into(fresh, other):
        return np.add(fresh, other, out=fresh)
    return ops.add(fresh, other)


def _fits_into(fresh: Any, other: Any) -> bool:
    """Can ``fresh + other`` be written into ``fresh``: plain arrays of one shape and dtype
    (not 0-d, which numpy returns as scalars)?"""
    return (
        type(fresh) is np.ndarray
        and type(other) is np.ndarray
        and fresh.dtype == other.dtype
        and fresh.shape == other.shape
        and fresh.ndim > 0
    )


def _optimizer(init: Callable[[Any], Any], step: Callable[..., tuple[Any, Any]]) -> Optimizer:
    """An optimizer and its transformation from one rule.

    ``step(grads, state, params, apply)`` returns ``(updates, state)``, or with ``apply``
    ``(params + updates, state)``: computed leaf by leaf in the same pass, so that a plain
    optimizer walks the trees once.
    """

    def transform(updates: Any, state: Any, params: Any) -> tuple[Any, Any]:
        return step(updates, state, params, False)

    def update(params: Any, grads: Any, state: Any) -> tuple[Any, Any]:
        return step(grads, state, params, True)

    return Optimizer(init, update, Transformation(init, transform))


def chain(*parts: Transformation | Optimizer) -> Optimizer:
    """Run transformations one after the other, then an optimizer's rule: an optimizer.

    ``chain(t1, ..., tk, opt)``: the gradients go through ``t1`` ... ``tk`` (clipping,
    weight decay) and then through ``opt``'s rule, and the parameters move by the result.
    The state is the tuple of the parts' states. The last part must be an optimizer
    (:func:`sgd`, :func:`adam`, another chain, ...), since only an optimizer's rule turns
    gradients into steps downhill; the others must be transformations.

    Example::

        opt = chain(clip_by_global_norm(1.0), add_decayed_weights(5e-4), momentum(0.1))
    """
    if not parts or not isinstance(parts[-1], Optimizer):
        raise TypeError(
            "chain: the last part must be an optimizer (sgd, adam, ...) that turns the "
            f"gradients into steps; got {parts[-1] if parts else 'nothing'!r}"
        )
    for part in parts[:-1]:
        if not isinstance(part, Transformation):
            raise TypeError(
                f"chain: only the last part may be an optimizer; got {part!r} before it "
                "(the parts before it are transformations: clip_by_global_norm, ...)"
            )
    before, last = parts[:-1], parts[-1]
    if last.transformation is None:
        raise TypeError(f"chain: {last!r} has no transformation form to chain")

    def init(params: Any) -> tuple:
        return (*(t.init(params) for t in before), last.init(params))

    def step(grads: Any, state: tuple, params: Any, apply: bool) -> tuple[Any, tuple]:
        if not isinstance(state, tuple) or len(state) != len(parts):
            raise ValueError(f"chain: expected a tuple of {len(parts)} states, got {state!r}")
        new = []
        for t, s in zip(before, state[:-1], strict=True):
            grads, s = t.update(grads, s, params)
            new.append(s)
        if apply:  # the optimizer's own update on the transformed gradients
            out, s = last.update(params, grads, state[-1])
        else:
            out, s = last.transformation.update(grads, state[-1], params)
        return out, (*new, s)

    return _optimizer(init, step)


# =======================================================================================
# Shared pieces


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
    if type(rate) is float or dtype_of(rate) == dtype_of(like):
        return rate
    return ops.cast(rate, dtype_of(like))


def _check_lr(lr: float | Schedule) -> None:
    number = isinstance(lr, (int, float, np.number)) and not isinstance(lr, (bool, np.bool_))
    if not callable(lr) and not (number and lr > 0):
        raise ValueError(f"lr must be a positive number or a callable step -> lr, got {lr!r}")


def _hyper(name: str, value: float, low: float, high: float = math.inf, *, open_high=True) -> float:
    """``value`` as a Python float (weak in numpy's promotion), checked to lie in range."""
    value = float(value)
    inside = low <= value < high if open_high else low <= value <= high
    if not inside:
        bounds = f"[{low}, {high})" if open_high else f"[{low}, {high}]"
        raise ValueError(f"{name} must lie in {bounds}, got {value}")
    return value


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


def _differ(p: Any, g: Any) -> bool:
    return shape_of(p) != shape_of(g)


def _per_leaf(
    n: int, fn: Callable[..., Any], params: Any, grads: Any, *states: Any, decay: Any
) -> Any:
    """``fn(p, g, *state_leaves, d)`` leaf by leaf: ``n`` trees shaped like ``params`` (one
    tree when ``n == 1``). ``decay`` is a tree of bools or one bool for every leaf (``d``).

    Shapes must match exactly (broadcasting a gradient would silently hide a bug): a
    mismatch names the leaf's path.
    """
    if type(decay) is bool:
        extra: tuple = (decay,)  # one flag for every leaf
    else:
        states, extra = (*states, decay), ()  # a tree of flags, walked with the others

    def call(p: Any, g: Any, *more: Any) -> Any:
        if (p.shape != g.shape) if type(p) is type(g) is np.ndarray else _differ(p, g):
            raise _ShapeMismatch
        return fn(p, g, *more, *extra)

    if n == 1:
        body = call
    else:  # tree_map walks params' leaves in tree_leaves order, which tree_unflatten fills
        columns: list[list] = [[] for _ in range(n)]
        appends = [c.append for c in columns]

        def body(*leaves: Any) -> None:
            for append, value in zip(appends, call(*leaves), strict=True):
                append(value)

    try:
        out = tree_map(body, params, grads, *states)
    except _ShapeMismatch:
        raise _shape_error(params, grads) from None
    return out if n == 1 else tuple(tree_unflatten(params, c) for c in columns)


def matrices_only(params: Any) -> Any:
    """The usual weight-decay mask: ``True`` on leaves of two or more dimensions (weight
    matrices, convolution kernels), ``False`` on vectors and scalars (biases,
    normalisation scales and offsets). Pass it as ``mask=``."""
    return tree_map(lambda p: len(shape_of(p)) >= 2, params)


def _decay_mask(params: Any, weight_decay: float, mask: Mask) -> Any:
    """Where weight decay applies: a tree of bools shaped like ``params``, or one bool for
    every leaf (no tree to walk when there is no decay or no mask)."""
    if not weight_decay or mask is None:
        return bool(weight_decay)
    tree = mask(params) if callable(mask) else mask
    return tree_map(lambda p, m: bool(m), params, tree)


def _l2(g: Any, p: Any, decays: bool, weight_decay: float) -> Any:
    """``g + wd theta`` where the mask says so (PyTorch's ``weight_decay``)."""
    return ops.add(g, ops.multiply(p, weight_decay)) if decays else g


def _zeros(params: Any) -> Any:
    return tree_map(np.zeros_like, params)


def _next(step: Any) -> Any:
    """The step count plus one, a numpy integer (an input of a compiled step, not a constant)."""
    return ops.add(step, np.int64(1))


# =======================================================================================
# Transformations


def clip_by_global_norm(max_norm: float) -> Transformation:
    """Scale the whole gradient tree down so that its global norm is at most ``max_norm``.

    ``norm = sqrt(sum over leaves of sum(g^2))``; every leaf is multiplied by
    ``min(1, max_norm / (norm + 1e-6))``, PyTorch's ``clip_grad_norm_`` (the direction is
    kept; gradients already short enough are multiplied by exactly 1). Each leaf's squares
    are summed in its dtype, the total in float64, and the factor cast to each leaf's dtype.
    """
    max_norm = _hyper("clip_by_global_norm: max_norm", max_norm, 0.0)
    if max_norm == 0:
        raise ValueError("clip_by_global_norm: max_norm must be positive")

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: EmptyState, params: Any = None) -> tuple[Any, EmptyState]:
        leaves = tree_leaves(updates)
        if not leaves:
            return updates, state
        total = None
        for g in leaves:
            square = ops.cast(ops.sum(ops.square(g)), np.float64)
            total = square if total is None else ops.add(total, square)
        factor = ops.minimum(ops.divide(max_norm, ops.add(ops.sqrt(total), 1e-6)), 1.0)
        return tree_map(lambda g: ops.multiply(g, _in_dtype(factor, g)), updates), state

    return Transformation(init, update)


def add_decayed_weights(weight_decay: float, mask: Mask = None) -> Transformation:
    """``g <- g + wd theta`` on the leaves ``mask`` selects (all when ``mask`` is None).

    The L2 penalty ``wd / 2 |theta|^2`` added to the loss, as a transformation to put before
    an optimizer in :func:`chain` (PyTorch's ``weight_decay`` does the same inside).
    """
    wd = _hyper("add_decayed_weights: weight_decay", weight_decay, 0.0)

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: EmptyState, params: Any) -> tuple[Any, EmptyState]:
        if params is None:
            raise ValueError("add_decayed_weights: update needs the parameters")
        decay = _decay_mask(params, wd, mask)
        new = _per_leaf(1, lambda p, g, d: _l2(g, p, d, wd), params, updates, decay=decay)
        return new, state

    return Transformation(init, update)


# =======================================================================================
# Optimizers


def sgd(lr: float | Schedule, *, weight_decay: float = 0.0, mask: Mask = None) -> Optimizer:
    """Plain stochastic gradient descent: ``theta <- theta - lr_t g``.

    ``weight_decay`` adds ``wd theta`` to the gradient first, on the leaves ``mask`` selects.
    """
    _check_lr(lr)
    wd = _hyper("sgd: weight_decay", weight_decay, 0.0)

    def init(params: Any) -> SGDState:
        return SGDState(step=np.int64(0))

    def step(grads: Any, state: SGDState, params: Any, apply: bool) -> tuple[Any, SGDState]:
        rate = _negative_rate(lr, state.step)

        def leaf(p: Any, g: Any, d: bool) -> Any:
            if d:
                g = _l2(g, p, d, wd)
            # an operator: numpy's multiply on a plain gradient, tapegrad's on a traced one
            u = g * (rate if type(rate) is float else _in_dtype(rate, p))
            return _apply(p, u) if apply else u

        out = _per_leaf(1, leaf, params, grads, decay=_decay_mask(params, wd, mask))
        return out, SGDState(step=_next(state.step))

    return _optimizer(init, step)


def _heavy_ball(
    name: str, lr: float | Schedule, mu: float, weight_decay: float, mask: Mask, nesterov: bool
) -> Optimizer:
    """:func:`momentum` and :func:`nesterov`: ``v <- mu v + g``, then a step along ``v``
    or, looking ahead, along ``g + mu v``."""
    _check_lr(lr)
    if not 0 <= mu < 1:
        raise ValueError(f"{name}: mu must lie in [0, 1), got {mu}")
    mu = float(mu)
    wd = _hyper(f"{name}: weight_decay", weight_decay, 0.0)

    def init(params: Any) -> MomentumState:
        return MomentumState(step=np.int64(0), velocity=_zeros(params))

    def step(grads: Any, state: MomentumState, params: Any, apply: bool) -> tuple:
        rate = _negative_rate(lr, state.step)

        def leaf(p: Any, g: Any, v: Any, d: bool) -> tuple:
            g = _l2(g, p, d, wd)
            v = _add_to_fresh(ops.multiply(v, mu), g)
            direction = ops.add(g, ops.multiply(v, mu)) if nesterov else v
            u = ops.multiply(direction, _in_dtype(rate, p))
            return (_apply(p, u) if apply else u), v

        decay = _decay_mask(params, wd, mask)
        out, velocity = _per_leaf(2, leaf, params, grads, state.velocity, decay=decay)
        return out, MomentumState(step=_next(state.step), velocity=velocity)

    return _optimizer(init, step)


def momentum(
    lr: float | Schedule, mu: float = 0.9, *, weight_decay: float = 0.0, mask: Mask = None
) -> Optimizer:
    """SGD with momentum: ``v <- mu v + g;  theta <- theta - lr_t v`` (``v`` starts at zero).

    PyTorch's ``SGD(momentum=mu)`` (no dampening); ``weight_decay`` adds ``wd theta`` to
    ``g`` first, on the leaves ``mask`` selects.
    """
    return _heavy_ball("momentum", lr, mu, weight_decay, mask, nesterov=False)


def nesterov(
    lr: float | Schedule, mu: float = 0.9, *, weight_decay: float = 0.0, mask: Mask = None
) -> Optimizer:
    """Nesterov momentum: ``v <- mu v + g;  theta <- theta - lr_t (g + mu v)``.

    PyTorch's ``SGD(momentum=mu, nesterov=True)``; ``weight_decay`` as in :func:`momentum`.
    """
    return _heavy_ball("nesterov", lr, mu, weight_decay, mask, nesterov=True)


def _adam(
    name: str,
    lr: float | Schedule,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float,
    mask: Mask,
    decoupled: bool,
) -> Optimizer:
    """:func:`adam` (``weight_decay`` into the gradient) and :func:`adamw` (decoupled)."""
    _check_lr(lr)
    b1 = _hyper(f"{name}: b1", b1, 0.0, 1.0)
    b2 = _hyper(f"{name}: b2", b2, 0.0, 1.0)
    eps = _hyper(f"{name}: eps", eps, 0.0)
    wd = _hyper(f"{name}: weight_decay", weight_decay, 0.0)

    def init(params: Any) -> AdamState:
        return AdamState(step=np.int64(0), mu=_zeros(params), nu=_zeros(params))

    def step(grads: Any, state: AdamState, params: Any, apply: bool) -> tuple[Any, AdamState]:
        rate = _negative_rate(lr, state.step)
        t = _next(state.step)
        # PyTorch's arithmetic: denom = sqrt(s) / sqrt(1 - b2^t) + eps, and the step
        # -lr_t / (1 - b1^t) times m / denom.
        scale = ops.divide(rate, ops.subtract(1.0, ops.power(b1, t)))
        root = ops.sqrt(ops.subtract(1.0, ops.power(b2, t)))
        shrink = ops.multiply(rate, wd) if decoupled else None

        def leaf(p: Any, g: Any, m: Any, s: Any, d: bool) -> tuple:
            if not decoupled:
                g = _l2(g, p, d, wd)
            m = _add_to_fresh(ops.multiply(m, b1), ops.multiply(g, 1.0 - b1))
            s = _add_to_fresh(ops.multiply(s, b2), ops.multiply(ops.multiply(g, g), 1.0 - b2))
            denom = ops.add(ops.divide(ops.sqrt(s), _in_dtype(root, p)), eps)
            u = ops.multiply(ops.divide(m, denom), _in_dtype(scale, p))
            if decoupled and d:
                u = ops.add(u, ops.multiply(p, _in_dtype(shrink, p)))
            return (_apply(p, u) if apply else u), m, s

        decay = _decay_mask(params, wd, mask)
        out, m, s = _per_leaf(3, leaf, params, grads, state.mu, state.nu, decay=decay)
        return out, AdamState(step=t, mu=m, nu=s)

    return _optimizer(init, step)


def adam(
    lr: float | Schedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    mask: Mask = None,
) -> Optimizer:
    """Adam (Kingma and Ba), PyTorch's ``Adam`` with its defaults.

    ``m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;``
    ``theta <- theta - lr_t (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)``, ``t`` counting
    from 1. ``weight_decay`` adds ``wd theta`` to ``g`` before the moments (the L2 form;
    :func:`adamw` decouples it), on the leaves ``mask`` selects.

    The first step moves each entry by about ``lr`` against its gradient's sign:

    >>> import numpy as np
    >>> from tapegrad import optim
    >>> opt = optim.adam(0.1)
    >>> params = {"w": np.array([1.0, -1.0])}
    >>> state = opt.init(params)
    >>> params, state = opt.update(params, {"w": np.array([0.5, -2.0])}, state)
    >>> params["w"], state.step
    (array([ 0.9, -0.9]), np.int64(1))
    """
    return _adam("adam", lr, b1, b2, eps, weight_decay, mask, decoupled=False)


def adamw(
    lr: float | Schedule = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    *,
    mask: Mask = None,
) -> Optimizer:
    """AdamW (Loshchilov and Hutter), PyTorch's ``AdamW`` with its defaults.

    Adam's step on the raw gradient, plus the decoupled decay ``theta <- theta - lr_t wd
    theta`` (scaled by the scheduled rate, as PyTorch does) on the leaves ``mask`` selects:
    pass ``mask=matrices_only`` to leave biases and normalisation parameters alone.
    """
    return _adam("adamw", lr, b1, b2, eps, weight_decay, mask, decoupled=True)


def rmsprop(
    lr: float | Schedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    *,
    weight_decay: float = 0.0,
    mu: float = 0.0,
    centered: bool = False,
    mask: Mask = None,
) -> Optimizer:
    """RMSprop (Hinton), PyTorch's ``RMSprop`` with its defaults (``mu`` is its ``momentum``).

    ``s <- alpha s + (1 - alpha) g^2;  theta <- theta - lr_t g / (sqrt(s) + eps)`` (eps
    outside the root). ``centered`` keeps ``a <- alpha a + (1 - alpha) g`` and divides by
    ``sqrt(s - a^2) + eps``; ``mu > 0`` keeps ``b <- mu b + g / (sqrt(.) + eps)`` and steps
    ``-lr_t b``. ``weight_decay`` adds ``wd theta`` to ``g`` first.
    """
    _check_lr(lr)
    alpha = _hyper("rmsprop: alpha", alpha, 0.0, 1.0, open_high=False)
    eps = _hyper("rmsprop: eps", eps, 0.0)
    wd = _hyper("rmsprop: weight_decay", weight_decay, 0.0)
    mu = _hyper("rmsprop: mu", mu, 0.0, 1.0)
    centered = bool(centered)

    def init(params: Any) -> RMSpropState:
        return RMSpropState(
            step=np.int64(0),
            square_avg=_zeros(params),
            grad_avg=_zeros(params) if centered else (),
            momentum=_zeros(params) if mu else (),
        )

    def step(grads: Any, state: RMSpropState, params: Any, apply: bool) -> tuple:
        rate = _negative_rate(lr, state.step)

        def leaf(p: Any, g: Any, s: Any, *more: Any) -> tuple:
            *extra, d = more
            a, b = (extra[0] if centered else None), (extra[-1] if mu else None)
            g = _l2(g, p, d, wd)
            s = ops.add(ops.multiply(s, alpha), ops.multiply(ops.multiply(g, g), 1.0 - alpha))
            if centered:
                a = ops.add(ops.multiply(a, alpha), ops.multiply(g, 1.0 - alpha))
                avg = ops.sqrt(ops.subtract(s, ops.multiply(a, a)))
            else:
                avg = ops.sqrt(s)
            direction = ops.divide(g, ops.add(avg, eps))
            if mu:
                b = ops.add(ops.multiply(b, mu), direction)
                direction = b
            u = ops.multiply(direction, _in_dtype(rate, p))
            out = (_apply(p, u) if apply else u), s
            return out + ((a,) if centered else ()) + ((b,) if mu else ())

        extra = ((state.grad_avg,) if centered else ()) + ((state.momentum,) if mu else ())
        decay = _decay_mask(params, wd, mask)
        out, square_avg, *rest = _per_leaf(
            2 + len(extra), leaf, params, grads, state.square_avg, *extra, decay=decay
        )
        grad_avg = rest.pop(0) if centered else ()
        buffer = rest.pop(0) if mu else ()
        return out, RMSpropState(_next(state.step), square_avg, grad_avg, buffer)

    return _optimizer(init, step)


def adagrad(
    lr: float | Schedule = 1e-2,
    lr_decay: float = 0.0,
    *,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    mask: Mask = None,
) -> Optimizer:
    """Adagrad (Duchi et al.), PyTorch's ``Adagrad`` with its defaults.

    ``s <- s + g^2;  theta <- theta - lr_t / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)``,
    ``s`` starting at ``initial_accumulator_value`` (0), ``t`` counting from 1.
    ``weight_decay`` adds ``wd theta`` to ``g`` first.
    """
    _check_lr(lr)
    lr_decay = _hyper("adagrad: lr_decay", lr_decay, 0.0)
    wd = _hyper("adagrad: weight_decay", weight_decay, 0.0)
    start = _hyper("adagrad: initial_accumulator_value", initial_accumulator_value, 0.0)
    eps = _hyper("adagrad: eps", eps, 0.0)

    def init(params: Any) -> AdagradState:
        return AdagradState(
            step=np.int64(0), sum_of_squares=tree_map(lambda p: np.full_like(p, start), params)
        )

    def step(grads: Any, state: AdagradState, params: Any, apply: bool) -> tuple:
        rate = _negative_rate(lr, state.step)
        if lr_decay:
            rate = ops.divide(rate, ops.add(ops.multiply(state.step, lr_decay), 1.0))

        def leaf(p: Any, g: Any, s: Any, d: bool) -> tuple:
            g = _l2(g, p, d, wd)
            s = ops.add(s, ops.multiply(g, g))
            direction = ops.divide(g, ops.add(ops.sqrt(s), eps))
            u = ops.multiply(direction, _in_dtype(rate, p))
            return (_apply(p, u) if apply else u), s

        decay = _decay_mask(params, wd, mask)
        out, sums = _per_leaf(2, leaf, params, grads, state.sum_of_squares, decay=decay)
        return out, AdagradState(step=_next(state.step), sum_of_squares=sums)

    return _optimizer(init, step)


# =======================================================================================
# Schedules: step -> learning rate, computed with ops so that they compile under tg.jit


def _check_schedule(name: str, lr: float, steps: int, final: float) -> tuple[float, int, float]:
    lr, final = float(lr), float(final)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"{name}: lr must be a positive number, got {lr}")
    if not 0 <= final <= lr:
        raise ValueError(f"{name}: final must lie in [0, lr], got {final}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{name}: steps must be a positive integer, got {steps!r}")
    return lr, int(steps), final


def constant(lr: float) -> Schedule:
    """``lr`` at every step (the same as passing the number itself)."""
    value = float(lr)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"constant: lr must be a positive number, got {lr}")
    return lambda step: value


def _half_cosine(lr: float, final: float, done: Any, length: int) -> Any:
    """``final + (lr - final) (1 + cos(pi done / length)) / 2``: ``lr`` at ``done = 0``,
    ``final`` at ``done = length`` (``done`` an integer array, clipped by the caller)."""
    wave = ops.add(1.0, ops.cos(ops.divide(ops.multiply(math.pi, done), length)))
    decayed = ops.multiply(0.5 * (lr - final), wave)
    return ops.add(decayed, final) if final else decayed


def cosine_decay(lr: float, steps: int, final: float = 0.0) -> Schedule:
    """``final + (lr - final) (1 + cos(pi min(t, steps) / steps)) / 2`` at step ``t``.

    From ``lr`` at step 0 down to ``final`` at step ``steps`` along half a cosine, then
    ``final``. Computed with ops on the step, a float64 scalar.
    """
    lr, steps, final = _check_schedule("cosine_decay", lr, steps, final)

    def schedule(step: Any) -> Any:
        return _half_cosine(lr, final, ops.minimum(step, steps), steps)

    return schedule


def warmup_cosine(lr: float, warmup: int, steps: int, final: float = 0.0) -> Schedule:
    """A linear warm-up, then :func:`cosine_decay`, over ``steps`` steps in all.

    ``lr t / warmup`` for ``t < warmup`` (0 at the first step), then from ``lr`` at step
    ``warmup`` down to ``final`` at step ``steps`` along half a cosine, then ``final``.
    """
    lr, steps, final = _check_schedule("warmup_cosine", lr, steps, final)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)):
        raise ValueError(f"warmup_cosine: warmup must be an integer, got {warmup!r}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup_cosine: warmup must lie in [0, steps), got {warmup}")
    warmup = int(warmup)
    decay = steps - warmup

    def schedule(step: Any) -> Any:
        done = ops.minimum(ops.maximum(ops.subtract(step, warmup), 0), decay)
        cosine = _half_cosine(lr, final, done, decay)
        if not warmup:
            return cosine
        ramp = ops.divide(ops.multiply(lr, step), warmup)
        return ops.where(ops.less(step, warmup), ramp, cosine)

    return schedule
