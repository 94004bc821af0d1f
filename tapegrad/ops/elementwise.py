"""Elementwise functions: exponentials and logarithms, powers, activations, extrema of two
arrays, and the zero-derivative tests (``sign``, ``isfinite``, ...).

Masks and tie weights in the rules are computed with ops (``x > 0``, ``where``,
``equal``), never read off a value, so an outer tape records them too.
"""

from __future__ import annotations

import numpy as np

from tapegrad.ops.axes import dtype_of
from tapegrad.ops.core import ArrayLike, cast, equal, greater, logical_and, where, zero_vjp
from tapegrad.ops.registry import Interval, elementwise, op, unary
from tapegrad.tape import Primitive, bind

__all__ = [
    "abs",
    "exp",
    "isfinite",
    "isinf",
    "isnan",
    "log",
    "maximum",
    "minimum",
    "power",
    "relu",
    "sigmoid",
    "sign",
    "sqrt",
    "tanh",
]


def _exp_vjp(i, g, ans, x):
    """d e^x/dx = e^x = ans."""
    return g * ans


EXP = Primitive("exp", np.exp, _exp_vjp)


@op(np.exp, sample=unary(-2, 2))
def exp(x: ArrayLike) -> ArrayLike:
    """``e ** x``. VJP: ``g * ans``."""
    return bind(EXP, (x,))


def _log_vjp(i, g, ans, x):
    """d log x/dx = 1 / x."""
    return g / x


LOG = Primitive("log", np.log, _log_vjp)


@op(np.log, sample=unary(0.2, 4))
def log(x: ArrayLike) -> ArrayLike:
    """Natural logarithm. VJP: ``g / x``."""
    return bind(LOG, (x,))


def _sqrt_vjp(i, g, ans, x):
    """d sqrt(x)/dx = 1 / (2 sqrt(x)) = 1 / (2 ans)."""
    return g / (ans * 2)


SQRT = Primitive("sqrt", np.sqrt, _sqrt_vjp)


@op(np.sqrt, sample=unary(0.2, 4), convention="sqrt'(0) = inf")
def sqrt(x: ArrayLike) -> ArrayLike:
    """Square root. VJP: ``g / (2 sqrt(x))``."""
    return bind(SQRT, (x,))


def _tanh_vjp(i, g, ans, x):
    """d tanh(x)/dx = 1 - tanh(x)^2 = 1 - ans^2."""
    return g * (1 - ans * ans)


TANH = Primitive("tanh", np.tanh, _tanh_vjp)


@op(np.tanh, sample=unary(-3, 3))
def tanh(x: ArrayLike) -> ArrayLike:
    """Hyperbolic tangent. VJP: ``g (1 - tanh(x)^2)``."""
    return bind(TANH, (x,))


def _sigmoid_forward(x):
    # 1 / (1 + e^-x) written through tanh: no overflow for large |x|, dtype kept.
    return np.tanh(x * 0.5) * 0.5 + 0.5


def _sigmoid_vjp(i, g, ans, x):
    """d sigmoid(x)/dx = sigmoid(x) (1 - sigmoid(x)) = ans (1 - ans)."""
    return g * ans * (1 - ans)


SIGMOID = Primitive("sigmoid", _sigmoid_forward, _sigmoid_vjp)


@op(sample=unary(-4, 4))
def sigmoid(x: ArrayLike) -> ArrayLike:
    """Logistic function ``1 / (1 + e^-x)``, stable for large ``|x|``. VJP: ``g s (1 - s)``."""
    return bind(SIGMOID, (x,))


def _relu_forward(x):
    return np.maximum(x, 0)


def _relu_vjp(i, g, ans, x):
    """d relu(x)/dx = [x > 0] (0 at the kink x = 0)."""
    return g * greater(x, 0)


RELU = Primitive("relu", _relu_forward, _relu_vjp)


@op(sample=unary(-3, 3, avoid=(0,)), convention="relu'(0) = 0")
def relu(x: ArrayLike) -> ArrayLike:
    """``max(x, 0)``. VJP: ``g [x > 0]``, so ``relu'(0) = 0``."""
    return bind(RELU, (x,))


def _abs_vjp(i, g, ans, x):
    """d |x|/dx = sign(x) (0 at the kink x = 0)."""
    return g * sign(x)


ABS = Primitive("abs", np.abs, _abs_vjp)


@op(np.absolute, sample=unary(-3, 3, avoid=(0,)), convention="abs'(0) = 0")
def abs(x: ArrayLike) -> ArrayLike:
    """``|x|``. VJP: ``g sign(x)``, so ``abs'(0) = 0``."""
    return bind(ABS, (x,))


def _power_vjp(i, g, ans, x, y):
    """d(x^y)/dx = y x^(y-1) (0 where y = 0);  d(x^y)/dy = x^y log x (0 where x = 0)."""
    if i == 0:
        if isinstance(y, (int, float)):  # a literal exponent, the usual case: x ** 2
            return g * 0 if y == 0 else g * y * x ** (y - 1)
        # At x = y = 0, y x^(y-1) is 0 (x^0 = 1 for every x) but x^(y-1) is infinite: take
        # that one point out on both sides of the product, so no 0 * inf reaches g.
        both = logical_and(equal(x, 0), equal(y, 0))
        return g * where(both, 0, y * where(both, 1, x) ** (y - 1))
    return g * ans * log(where(equal(x, 0), 1, x))


POWER = Primitive("power", np.power, _power_vjp)


@op(
    np.power,
    sample=elementwise(Interval(0.3, 3), Interval(-2, 2)),
    argnums=(0, 1),
    convention="d/dy x^y = 0 where x = 0; d/dx x^0 = 0",
)
def power(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x ** y``, broadcasting. VJP: ``(g y x^(y-1), g x^y log x)``."""
    return bind(POWER, (x, y))


def _tie_weights(a: ArrayLike, b: ArrayLike, dtype: np.dtype) -> ArrayLike:
    """1 where a wins, 1/2 on a tie, 0 where b wins: the share of the cotangent a gets."""
    return cast(where(greater(a, b), 1.0, where(equal(a, b), 0.5, 0.0)), dtype)


def _maximum_vjp(i, g, ans, x, y):
    """d max(x, y)/dx = [x > y] + [x = y] / 2 (ties share the cotangent equally)."""
    a, b = (x, y) if i == 0 else (y, x)
    return g * _tie_weights(a, b, dtype_of(ans))


def _minimum_vjp(i, g, ans, x, y):
    """d min(x, y)/dx = [x < y] + [x = y] / 2 (ties share the cotangent equally)."""
    a, b = (y, x) if i == 0 else (x, y)
    return g * _tie_weights(a, b, dtype_of(ans))


MAXIMUM = Primitive("maximum", np.maximum, _maximum_vjp)
MINIMUM = Primitive("minimum", np.minimum, _minimum_vjp)


def _sample_apart(draw):
    """Two arrays whose elements never tie: multiples of 0.5, and multiples plus 0.25."""
    xs, ys = draw.broadcastable_shapes(2)
    grid = Interval(-3, 3, step=0.5)
    return (draw.array(xs, grid), draw.array(ys, grid) + 0.25), {}


@op(np.maximum, sample=_sample_apart, argnums=(0, 1), convention="ties share the cotangent equally")
def maximum(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise maximum, broadcasting. VJP: ``g`` to the larger input (half each on a tie)."""
    return bind(MAXIMUM, (x, y))


@op(np.minimum, sample=_sample_apart, argnums=(0, 1), convention="ties share the cotangent equally")
def minimum(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise minimum, broadcasting. VJP: ``g`` to the smaller input (half each on a tie)."""
    return bind(MINIMUM, (x, y))


# =======================================================================================
# Zero derivative: piecewise-constant functions and tests, recorded so a replay recomputes
# them

SIGN = Primitive("sign", np.sign, zero_vjp)
ISFINITE = Primitive("isfinite", np.isfinite, zero_vjp)
ISNAN = Primitive("isnan", np.isnan, zero_vjp)
ISINF = Primitive("isinf", np.isinf, zero_vjp)


def sign(x: ArrayLike) -> ArrayLike:
    """-1, 0 or 1 by the sign of ``x``. Derivative: zero."""
    return bind(SIGN, (x,))


def isfinite(x: ArrayLike) -> ArrayLike:
    """Whether each element is finite (a boolean array, no derivative)."""
    return bind(ISFINITE, (x,))


def isnan(x: ArrayLike) -> ArrayLike:
    """Whether each element is NaN (a boolean array, no derivative)."""
    return bind(ISNAN, (x,))


def isinf(x: ArrayLike) -> ArrayLike:
    """Whether each element is infinite (a boolean array, no derivative)."""
    return bind(ISINF, (x,))
