"""Elementwise functions: exponentials and logarithms, powers, activations, extrema of two
arrays, trigonometric and hyperbolic functions, clipping, remainders, the
zero-derivative functions and tests (``sign``, ``floor``, ``round``, ``isfinite``, ...), and
the parts of numbers (``real``, ``imag``, ``conjugate``, ``angle``) on real inputs.

Masks and tie weights in the rules are computed with ops (``x > 0``, ``where``,
``equal``), never read off a value, so an outer tape records them too. Constants in the
rules are Python floats, so a float32 input keeps float32 throughout.
"""

from __future__ import annotations

import math

import numpy as np

from tapegrad.ops.axes import dtype_of
from tapegrad.ops.core import (
    ArrayLike,
    cast,
    equal,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_or,
    where,
    zero_vjp,
)
from tapegrad.ops.registry import Interval, elementwise, op, unary
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "abs",
    "angle",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "around",
    "cbrt",
    "ceil",
    "clip",
    "conj",
    "conjugate",
    "cos",
    "cosh",
    "deg2rad",
    "degrees",
    "exp",
    "exp2",
    "expm1",
    "fabs",
    "float_power",
    "floor",
    "floor_divide",
    "fmax",
    "fmin",
    "fmod",
    "heaviside",
    "hypot",
    "imag",
    "iscomplex",
    "isfinite",
    "isinf",
    "isnan",
    "isreal",
    "log",
    "log1p",
    "log2",
    "log10",
    "logaddexp",
    "logaddexp2",
    "maximum",
    "minimum",
    "mod",
    "nan_to_num",
    "positive",
    "power",
    "rad2deg",
    "radians",
    "real",
    "real_if_close",
    "reciprocal",
    "relu",
    "remainder",
    "rint",
    "round",
    "sigmoid",
    "sign",
    "sin",
    "sinc",
    "sinh",
    "sqrt",
    "square",
    "tan",
    "tanh",
    "trunc",
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


def _relu_forward(x, out=None):
    return np.maximum(x, 0, out=out)


def _relu_vjp(i, g, ans, x):
    """d relu(x)/dx = [x > 0] (0 at the kink x = 0).

    The mask is read off the output (``relu(x) > 0`` exactly where ``x > 0``, NaN
    included), so a compiled step need not keep ``x``: relu can overwrite it.
    """
    return relu_backward(g, ans)


RELU = Primitive("relu", _relu_forward, _relu_vjp, fresh=True, out=True)


def _relu_backward_forward(g, y, out=None):
    return np.multiply(g, y > 0, out=out)  # the floats of g * greater(y, 0)


def _relu_backward_vjp(i, gg, ans, g, y):
    """``g [y > 0]`` is linear in ``g`` (the same mask) and piecewise constant in ``y``."""
    return relu_backward(gg, y) if i == 0 else None


RELU_BACKWARD = Primitive(
    "relu_backward", _relu_backward_forward, _relu_backward_vjp, fresh=True, out=True
)


def relu_backward(g: ArrayLike, y: ArrayLike) -> ArrayLike:
    """relu's VJP as one op: ``g [y > 0]`` for the cotangent ``g`` of ``y = relu(x)``
    (the mask computed inside the op, from the recorded ``y``)."""
    return bind(RELU_BACKWARD, (g, y))


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
# Trigonometric functions, angles and sinc


def _sin_vjp(i, g, ans, x):
    """d sin(x)/dx = cos(x)."""
    return g * cos(x)


SIN = Primitive("sin", np.sin, _sin_vjp)


@op(np.sin, sample=unary(-3, 3))
def sin(x: ArrayLike) -> ArrayLike:
    """Sine, elementwise. VJP: ``g cos(x)``."""
    return bind(SIN, (x,))


def _cos_vjp(i, g, ans, x):
    """d cos(x)/dx = -sin(x)."""
    return -(g * sin(x))


COS = Primitive("cos", np.cos, _cos_vjp)


@op(np.cos, sample=unary(-3, 3))
def cos(x: ArrayLike) -> ArrayLike:
    """Cosine, elementwise. VJP: ``-g sin(x)``."""
    return bind(COS, (x,))


def _tan_vjp(i, g, ans, x):
    """d tan(x)/dx = 1 + tan(x)^2 = 1 + ans^2."""
    return g * (ans * ans + 1)


TAN = Primitive("tan", np.tan, _tan_vjp)


@op(np.tan, sample=unary(-3, 3, avoid=(-math.pi / 2, math.pi / 2), gap=0.3))
def tan(x: ArrayLike) -> ArrayLike:
    """Tangent, elementwise. VJP: ``g (1 + tan(x)^2)``."""
    return bind(TAN, (x,))


def _arcsin_vjp(i, g, ans, x):
    """d arcsin(x)/dx = 1 / sqrt(1 - x^2)."""
    return g / sqrt(1 - x * x)


ARCSIN = Primitive("arcsin", np.arcsin, _arcsin_vjp)


@op(np.arcsin, sample=unary(-0.9, 0.9), convention="arcsin'(+-1) = inf")
def arcsin(x: ArrayLike) -> ArrayLike:
    """Inverse sine, in ``[-pi/2, pi/2]``. VJP: ``g / sqrt(1 - x^2)``."""
    return bind(ARCSIN, (x,))


def _arccos_vjp(i, g, ans, x):
    """d arccos(x)/dx = -1 / sqrt(1 - x^2)."""
    return -(g / sqrt(1 - x * x))


ARCCOS = Primitive("arccos", np.arccos, _arccos_vjp)


@op(np.arccos, sample=unary(-0.9, 0.9), convention="arccos'(+-1) = -inf")
def arccos(x: ArrayLike) -> ArrayLike:
    """Inverse cosine, in ``[0, pi]``. VJP: ``-g / sqrt(1 - x^2)``."""
    return bind(ARCCOS, (x,))


def _arctan_vjp(i, g, ans, x):
    """d arctan(x)/dx = 1 / (1 + x^2)."""
    return g / (x * x + 1)


ARCTAN = Primitive("arctan", np.arctan, _arctan_vjp)


@op(np.arctan, sample=unary(-3, 3))
def arctan(x: ArrayLike) -> ArrayLike:
    """Inverse tangent, in ``(-pi/2, pi/2)``. VJP: ``g / (1 + x^2)``."""
    return bind(ARCTAN, (x,))


def _arctan2_vjp(i, g, ans, y, x):
    """d arctan2(y, x)/dy = x / (x^2 + y^2),  d/dx = -y / (x^2 + y^2) (both 0 at the origin)."""
    r2 = x * x + y * y
    # At the origin the numerator is 0 too: dividing by 1 there gives 0, and no 0/0
    # reaches g (or a second derivative).
    r2 = where(equal(r2, 0), 1, r2)
    return g * x / r2 if i == 0 else -(g * y) / r2


ARCTAN2 = Primitive("arctan2", np.arctan2, _arctan2_vjp)


@op(
    np.arctan2,
    # y kept off 0: the angle jumps by 2 pi across the negative x axis
    sample=elementwise(Interval(-3, 3, avoid=(0,), gap=0.2), Interval(-3, 3)),
    argnums=(0, 1),
    convention="gradient 0 at the origin (where the angle is undefined)",
)
def arctan2(y: ArrayLike, x: ArrayLike) -> ArrayLike:
    """The angle of the point ``(x, y)``, in ``[-pi, pi]`` (numpy's ``arctan2(x1, x2)`` with
    ``x1 = y``, ``x2 = x``), broadcasting. VJP: ``(g x / r^2, -g y / r^2)``, ``r^2 = x^2 + y^2``.
    """
    return bind(ARCTAN2, (y, x))


def _hypot_vjp(i, g, ans, x, y):
    """d hypot(x, y)/dx = x / hypot(x, y),  d/dy = y / hypot(x, y) (both 0 at the origin)."""
    # At the origin the numerator is 0 too: dividing by 1 there gives 0, as abs'(0) = 0.
    r = where(equal(ans, 0), 1, ans)
    return g * x / r if i == 0 else g * y / r


HYPOT = Primitive("hypot", np.hypot, _hypot_vjp)


@op(
    np.hypot,
    sample=elementwise(Interval(-3, 3), Interval(-3, 3, avoid=(0,), gap=0.2)),
    argnums=(0, 1),
    convention="gradient 0 at the origin, as abs'(0) = 0",
)
def hypot(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``sqrt(x^2 + y^2)`` without overflow, broadcasting. VJP: ``(g x / ans, g y / ans)``."""
    return bind(HYPOT, (x, y))


_RADIANS_PER_DEGREE = math.pi / 180  # Python floats: a float32 array stays float32
_DEGREES_PER_RADIAN = 180 / math.pi


def _deg2rad_vjp(i, g, ans, x):
    """d deg2rad(x)/dx = pi / 180."""
    return g * _RADIANS_PER_DEGREE


def _rad2deg_vjp(i, g, ans, x):
    """d rad2deg(x)/dx = 180 / pi."""
    return g * _DEGREES_PER_RADIAN


# deg2rad and radians (rad2deg and degrees) are separate numpy ufuncs with the same values.
DEG2RAD = Primitive("deg2rad", np.deg2rad, _deg2rad_vjp)
RAD2DEG = Primitive("rad2deg", np.rad2deg, _rad2deg_vjp)


@op(np.deg2rad, sample=unary(-180, 180))
def deg2rad(x: ArrayLike) -> ArrayLike:
    """Degrees to radians, ``x pi / 180``. VJP: ``g pi / 180``."""
    return bind(DEG2RAD, (x,))


@op(np.radians, sample=unary(-180, 180))
def radians(x: ArrayLike) -> ArrayLike:
    """Degrees to radians (numpy's other name for :func:`deg2rad`). VJP: ``g pi / 180``."""
    return bind(DEG2RAD, (x,))


@op(np.rad2deg, sample=unary(-3, 3))
def rad2deg(x: ArrayLike) -> ArrayLike:
    """Radians to degrees, ``x 180 / pi``. VJP: ``g 180 / pi``."""
    return bind(RAD2DEG, (x,))


@op(np.degrees, sample=unary(-3, 3))
def degrees(x: ArrayLike) -> ArrayLike:
    """Radians to degrees (numpy's other name for :func:`rad2deg`). VJP: ``g 180 / pi``."""
    return bind(RAD2DEG, (x,))


# sinc'(x) = x P(x^2) near 0, from sinc(x) = sum_k (-1)^k (pi x)^(2k) / (2k + 1)!: the
# coefficients of P, (-1)^k 2k pi^(2k) / (2k + 1)! for k = 1..6. Below |x| = 0.1 the
# seventh term is under 1e-16 of sinc'(x), and so is its derivative of sinc''(x).
_SINC_SERIES = tuple(
    (-1) ** k * 2 * k * math.pi ** (2 * k) / math.factorial(2 * k + 1) for k in range(1, 7)
)
_SINC_SMALL = 0.1


def _sinc_vjp(i, g, ans, x):
    """d sinc(x)/dx = (cos(pi x) - sinc(x)) / x, 0 at x = 0 (sinc''(0) = -pi^2 / 3)."""
    # The quotient cancels near 0 (both terms tend to 1), so for |x| < 0.1 its Taylor
    # polynomial stands in. Each branch of the where sees only safe inputs (the quotient
    # divides by 1 near 0), so no 0/0 or 0 * inf reaches g or a second derivative.
    small = less(abs(x), _SINC_SMALL)
    t = x * x
    poly = _SINC_SERIES[-1]
    for c in _SINC_SERIES[-2::-1]:
        poly = poly * t + c
    safe = where(small, 1, x)
    quotient = (cos(safe * math.pi) - ans) / safe
    return g * where(small, x * poly, quotient)


SINC = Primitive("sinc", np.sinc, _sinc_vjp)


@op(np.sinc, sample=unary(-3, 3), convention="sinc'(0) = 0, sinc''(0) = -pi^2/3")
def sinc(x: ArrayLike) -> ArrayLike:
    """Normalized sinc, ``sin(pi x) / (pi x)`` and 1 at ``x = 0``.
    VJP: ``g (cos(pi x) - sinc(x)) / x`` (a Taylor polynomial near 0)."""
    return bind(SINC, (x,))


# =======================================================================================
# Hyperbolic functions


def _sinh_vjp(i, g, ans, x):
    """d sinh(x)/dx = cosh(x)."""
    return g * cosh(x)


SINH = Primitive("sinh", np.sinh, _sinh_vjp)


@op(np.sinh, sample=unary(-3, 3))
def sinh(x: ArrayLike) -> ArrayLike:
    """Hyperbolic sine. VJP: ``g cosh(x)``."""
    return bind(SINH, (x,))


def _cosh_vjp(i, g, ans, x):
    """d cosh(x)/dx = sinh(x)."""
    return g * sinh(x)


COSH = Primitive("cosh", np.cosh, _cosh_vjp)


@op(np.cosh, sample=unary(-3, 3))
def cosh(x: ArrayLike) -> ArrayLike:
    """Hyperbolic cosine. VJP: ``g sinh(x)``."""
    return bind(COSH, (x,))


def _arcsinh_vjp(i, g, ans, x):
    """d arcsinh(x)/dx = 1 / sqrt(x^2 + 1)."""
    return g / sqrt(x * x + 1)


ARCSINH = Primitive("arcsinh", np.arcsinh, _arcsinh_vjp)


@op(np.arcsinh, sample=unary(-3, 3))
def arcsinh(x: ArrayLike) -> ArrayLike:
    """Inverse hyperbolic sine. VJP: ``g / sqrt(x^2 + 1)``."""
    return bind(ARCSINH, (x,))


def _arccosh_vjp(i, g, ans, x):
    """d arccosh(x)/dx = 1 / sqrt(x^2 - 1)."""
    return g / sqrt((x - 1) * (x + 1))  # no cancellation in x^2 - 1 near x = 1


ARCCOSH = Primitive("arccosh", np.arccosh, _arccosh_vjp)


@op(np.arccosh, sample=unary(1.1, 4), convention="arccosh'(1) = inf")
def arccosh(x: ArrayLike) -> ArrayLike:
    """Inverse hyperbolic cosine, for ``x >= 1``. VJP: ``g / sqrt(x^2 - 1)``."""
    return bind(ARCCOSH, (x,))


def _arctanh_vjp(i, g, ans, x):
    """d arctanh(x)/dx = 1 / (1 - x^2)."""
    return g / (1 - x * x)


ARCTANH = Primitive("arctanh", np.arctanh, _arctanh_vjp)


@op(np.arctanh, sample=unary(-0.9, 0.9))
def arctanh(x: ArrayLike) -> ArrayLike:
    """Inverse hyperbolic tangent, for ``|x| < 1``. VJP: ``g / (1 - x^2)``."""
    return bind(ARCTANH, (x,))


# =======================================================================================
# More exponentials and logarithms

_LN2 = math.log(2.0)  # Python floats: a float32 array stays float32
_LN10 = math.log(10.0)


def _exp2_vjp(i, g, ans, x):
    """d 2^x/dx = 2^x ln 2 = ans ln 2."""
    return g * ans * _LN2


EXP2 = Primitive("exp2", np.exp2, _exp2_vjp)


@op(np.exp2, sample=unary(-3, 3))
def exp2(x: ArrayLike) -> ArrayLike:
    """``2 ** x``. VJP: ``g ans ln 2``."""
    return bind(EXP2, (x,))


def _expm1_vjp(i, g, ans, x):
    """d (e^x - 1)/dx = e^x = ans + 1."""
    return g * (ans + 1)


EXPM1 = Primitive("expm1", np.expm1, _expm1_vjp)


@op(np.expm1, sample=unary(-3, 3))
def expm1(x: ArrayLike) -> ArrayLike:
    """``e ** x - 1``, accurate for small ``x``. VJP: ``g (ans + 1)``."""
    return bind(EXPM1, (x,))


def _log2_vjp(i, g, ans, x):
    """d log2(x)/dx = 1 / (x ln 2)."""
    return g / (x * _LN2)


LOG2 = Primitive("log2", np.log2, _log2_vjp)


@op(np.log2, sample=unary(0.2, 4))
def log2(x: ArrayLike) -> ArrayLike:
    """Base-2 logarithm. VJP: ``g / (x ln 2)``."""
    return bind(LOG2, (x,))


def _log10_vjp(i, g, ans, x):
    """d log10(x)/dx = 1 / (x ln 10)."""
    return g / (x * _LN10)


LOG10 = Primitive("log10", np.log10, _log10_vjp)


@op(np.log10, sample=unary(0.2, 4))
def log10(x: ArrayLike) -> ArrayLike:
    """Base-10 logarithm. VJP: ``g / (x ln 10)``."""
    return bind(LOG10, (x,))


def _log1p_vjp(i, g, ans, x):
    """d log(1 + x)/dx = 1 / (1 + x)."""
    return g / (x + 1)


LOG1P = Primitive("log1p", np.log1p, _log1p_vjp)


@op(np.log1p, sample=unary(-0.8, 3))
def log1p(x: ArrayLike) -> ArrayLike:
    """``log(1 + x)``, accurate for small ``x``. VJP: ``g / (1 + x)``."""
    return bind(LOG1P, (x,))


def _logaddexp_vjp(i, g, ans, x, y):
    """d log(e^x + e^y)/dx = e^x / (e^x + e^y) = e^(x - ans) (and likewise for y)."""
    return g * exp((x if i == 0 else y) - ans)


LOGADDEXP = Primitive("logaddexp", np.logaddexp, _logaddexp_vjp)


@op(np.logaddexp, sample=elementwise(Interval(-3, 3), Interval(-3, 3)), argnums=(0, 1))
def logaddexp(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``log(e^x + e^y)`` without overflow, broadcasting.
    VJP: ``(g e^(x - ans), g e^(y - ans))``."""
    return bind(LOGADDEXP, (x, y))


def _logaddexp2_vjp(i, g, ans, x, y):
    """d log2(2^x + 2^y)/dx = 2^x / (2^x + 2^y) = 2^(x - ans) (and likewise for y)."""
    return g * exp2((x if i == 0 else y) - ans)


LOGADDEXP2 = Primitive("logaddexp2", np.logaddexp2, _logaddexp2_vjp)


@op(np.logaddexp2, sample=elementwise(Interval(-3, 3), Interval(-3, 3)), argnums=(0, 1))
def logaddexp2(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``log2(2^x + 2^y)`` without overflow, broadcasting.
    VJP: ``(g 2^(x - ans), g 2^(y - ans))``."""
    return bind(LOGADDEXP2, (x, y))


# =======================================================================================
# More powers


def _cbrt_vjp(i, g, ans, x):
    """d cbrt(x)/dx = 1 / (3 cbrt(x)^2) = 1 / (3 ans^2) (inf at x = 0)."""
    return g / (ans * ans * 3)


CBRT = Primitive("cbrt", np.cbrt, _cbrt_vjp)


@op(np.cbrt, sample=unary(-3, 3, avoid=(0,), gap=0.2), convention="cbrt'(0) = inf")
def cbrt(x: ArrayLike) -> ArrayLike:
    """Real cube root (negative for negative ``x``). VJP: ``g / (3 ans^2)``."""
    return bind(CBRT, (x,))


def _square_vjp(i, g, ans, x):
    """d x^2/dx = 2 x."""
    return g * (x * 2)


SQUARE = Primitive("square", np.square, _square_vjp)


@op(np.square, sample=unary(-3, 3))
def square(x: ArrayLike) -> ArrayLike:
    """``x * x``. VJP: ``2 g x``."""
    return bind(SQUARE, (x,))


def _reciprocal_vjp(i, g, ans, x):
    """d (1/x)/dx = -1 / x^2 = -ans^2."""
    return -(g * (ans * ans))


RECIPROCAL = Primitive("reciprocal", np.reciprocal, _reciprocal_vjp)


@op(np.reciprocal, sample=unary(-3, 3, avoid=(0,), gap=0.3))
def reciprocal(x: ArrayLike) -> ArrayLike:
    """``1 / x`` (integer division for integer ``x``, as numpy). VJP: ``-g ans^2``."""
    return bind(RECIPROCAL, (x,))


def _float_power_vjp(i, g, ans, x, y):
    """d(x^y)/dx = y x^(y-1) (0 where y = 0);  d(x^y)/dy = x^y log x (0 where x = 0),
    computed in float64 like the forward."""
    if i == 0:
        if isinstance(y, (int, float)):  # a literal exponent
            return g * 0 if y == 0 else g * y * float_power(x, y - 1)
        # As in power: take the point x = y = 0 out on both sides of the product.
        both = logical_and(equal(x, 0), equal(y, 0))
        return g * where(both, 0, y * float_power(where(both, 1, x), y - 1))
    return g * ans * log(where(equal(x, 0), 1, x))


FLOAT_POWER = Primitive("float_power", np.float_power, _float_power_vjp)


@op(
    np.float_power,
    sample=elementwise(Interval(0.3, 3), Interval(-2, 2)),
    argnums=(0, 1),
    convention="d/dy x^y = 0 where x = 0; d/dx x^0 = 0",
    float32=False,  # numpy computes float_power in float64 whatever the input dtype
)
def float_power(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x ** y`` computed in float64 (at least), broadcasting.
    VJP: ``(g y x^(y-1), g x^y log x)``; the gradient has the input's dtype."""
    return bind(FLOAT_POWER, (x, y))


# =======================================================================================
# Identity-like, magnitude, clipping and NaN-ignoring extrema


def _identity_vjp(i, g, ans, x):
    """d(+x)/dx = 1 (and d re(x)/dx = d conj(x)/dx = 1 for real x)."""
    return g


POSITIVE = Primitive("positive", np.positive, _identity_vjp)


@op(np.positive, sample=unary())
def positive(x: ArrayLike) -> ArrayLike:
    """``+x`` (a copy). VJP: ``g``."""
    return bind(POSITIVE, (x,))


FABS = Primitive("fabs", np.fabs, _abs_vjp)


@op(np.fabs, sample=unary(-3, 3, avoid=(0,)), convention="fabs'(0) = 0")
def fabs(x: ArrayLike) -> ArrayLike:
    """``|x|`` as a float (numpy's ``fabs``: integers become float64). VJP: ``g sign(x)``."""
    return bind(FABS, (x,))


def _clip_vjp(i, g, ans, a, a_min, a_max):
    """d clip(a, lo, hi)/da = [lo <= a <= hi];  d/dlo = [a < lo and lo < hi];
    d/dhi = [a > hi or hi < lo] (PyTorch's clamp: a keeps g when it equals a bound, and
    hi wins when the bounds cross, as in the forward)."""
    if i == 0:
        if a_min is None:
            mask = less_equal(a, a_max)
        elif a_max is None:
            mask = greater_equal(a, a_min)
        else:
            mask = logical_and(greater_equal(a, a_min), less_equal(a, a_max))
    elif i == 1:
        mask = less(a, a_min)
        if a_max is not None:
            mask = logical_and(mask, less(a_min, a_max))
    else:
        mask = greater(a, a_max)
        if a_min is not None:
            mask = logical_or(mask, less(a_max, a_min))
    return where(mask, g, 0)


CLIP = Primitive("clip", np.clip, _clip_vjp)


class _NoValue:
    """The default of an argument that was not passed (``None`` means "no bound")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_NO_VALUE = _NoValue()


def _sample_clip(draw):
    """``a`` on multiples of 0.5, the bounds on multiples shifted by 0.25 and 0.125: no ties
    between ``a`` and a bound or between the bounds (the bounds may cross)."""
    sa, slo, shi = draw.broadcastable_shapes(3)
    a = draw.array(sa, Interval(-3, 3, step=0.5))
    lo = draw.array(slo, Interval(-2, 0.5, step=0.5)) + 0.25
    hi = draw.array(shi, Interval(-1, 2, step=0.5)) + 0.125
    return (a, lo, hi), {}


@op(
    np.clip,
    sample=_sample_clip,
    method="clip",
    argnums=(0, 1, 2),
    convention="a keeps the gradient where it equals a bound; a_max wins where the bounds cross",
)
def clip(
    a: ArrayLike,
    a_min: ArrayLike = _NO_VALUE,
    a_max: ArrayLike = _NO_VALUE,
    *,
    min: ArrayLike = _NO_VALUE,
    max: ArrayLike = _NO_VALUE,
) -> ArrayLike:
    """``a`` limited to ``[a_min, a_max]``, broadcasting; ``minimum(maximum(a, a_min), a_max)``,
    so ``a_max`` wins where ``a_min > a_max``. Either bound may be ``None`` (no limit on that
    side); ``min``/``max`` are the keyword spellings (numpy 2.1), for when ``a_min`` and
    ``a_max`` are both left out.

    VJP: ``g`` to ``a`` where ``a_min <= a <= a_max`` (a value at a bound keeps its
    gradient, as PyTorch's ``clamp``), to ``a_min`` where it clips, to ``a_max`` where it
    clips or the bounds cross.
    """
    if a_min is _NO_VALUE and a_max is _NO_VALUE:
        a_min = None if min is _NO_VALUE else min
        a_max = None if max is _NO_VALUE else max
    elif a_min is _NO_VALUE or a_max is _NO_VALUE:
        missing = "a_min" if a_min is _NO_VALUE else "a_max"
        raise TypeError(f"tg.clip: missing the argument {missing!r} (give both bounds or none)")
    elif min is not _NO_VALUE or max is not _NO_VALUE:
        raise ValueError("tg.clip: pass the bounds as a_min/a_max or as min/max, not both")
    return bind(CLIP, (a, a_min, a_max))


def _fmax_vjp(i, g, ans, x, y):
    """d fmax(x, y)/dx = [x > y or y is NaN] + [x = y] / 2; y gets the rest of g."""
    share = where(isnan(y), 1.0, _tie_weights(x, y, dtype_of(ans)))
    return g * share if i == 0 else g * (1 - share)


def _fmin_vjp(i, g, ans, x, y):
    """d fmin(x, y)/dx = [x < y or y is NaN] + [x = y] / 2; y gets the rest of g."""
    share = where(isnan(y), 1.0, _tie_weights(y, x, dtype_of(ans)))
    return g * share if i == 0 else g * (1 - share)


FMAX = Primitive("fmax", np.fmax, _fmax_vjp)
FMIN = Primitive("fmin", np.fmin, _fmin_vjp)


@op(
    np.fmax,
    sample=_sample_apart,
    argnums=(0, 1),
    convention="ties share the cotangent equally; a NaN input gets none (x gets it if both are)",
)
def fmax(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise maximum that ignores NaN (the other input wins), broadcasting.
    VJP: ``g`` to the larger input or the non-NaN one (half each on a tie)."""
    return bind(FMAX, (x, y))


@op(
    np.fmin,
    sample=_sample_apart,
    argnums=(0, 1),
    convention="ties share the cotangent equally; a NaN input gets none (x gets it if both are)",
)
def fmin(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """Elementwise minimum that ignores NaN (the other input wins), broadcasting.
    VJP: ``g`` to the smaller input or the non-NaN one (half each on a tie)."""
    return bind(FMIN, (x, y))


def _nan_to_num_vjp(i, g, ans, x, copy, nan, posinf, neginf):
    """d nan_to_num(x)/dx = [x is finite]: replaced values are constants."""
    return g * isfinite(x)


NAN_TO_NUM = Primitive("nan_to_num", np.nan_to_num, _nan_to_num_vjp)


@op(np.nan_to_num, sample=unary(-3, 3), convention="gradient 0 where x is NaN or infinite")
def nan_to_num(
    x: ArrayLike,
    copy: bool = True,
    nan: float = 0.0,
    posinf: float | None = None,
    neginf: float | None = None,
) -> ArrayLike:
    """``x`` with NaN replaced by ``nan`` and infinities by ``posinf``/``neginf`` (the
    largest finite values of the dtype by default). ``copy=False`` replaces in place, on
    plain arrays only: a traced value is never changed. VJP: ``g [x is finite]``."""
    copy = bool(copy) or type(x) is Traced
    params = {"copy": copy, "nan": nan, "posinf": posinf, "neginf": neginf}
    return bind(NAN_TO_NUM, (x,), params)


# =======================================================================================
# Remainders (floor_divide, their zero-derivative partner, is below)


def _remainder_vjp(i, g, ans, x, y):
    """remainder(x, y) = x - floor(x / y) y:  d/dx = 1,  d/dy = -floor(x / y)
    (away from the jumps where x / y is an integer)."""
    return g if i == 0 else -g * floor_divide(x, y)


REMAINDER = Primitive("remainder", np.remainder, _remainder_vjp)


def _fmod_vjp(i, g, ans, x, y):
    """fmod(x, y) = x - trunc(x / y) y:  d/dx = 1,  d/dy = -trunc(x / y)
    (away from the jumps where x / y is an integer)."""
    return g if i == 0 else -g * trunc(x / y)


FMOD = Primitive("fmod", np.fmod, _fmod_vjp)

#: Multiples of 1/2 in [-3, 3]: x stays away from them in the quotient sampler.
_HALVES = tuple(k / 2 for k in range(-6, 7))


def _sample_quotients(draw):
    """``x`` and ``y`` with ``x / y`` at least 0.025 from every integer (the jumps of
    remainder, fmod and floor_divide): ``y`` is a nonzero multiple of 1/2 and ``x`` stays
    0.05 away from the multiples of 1/2."""
    xs, ys = draw.broadcastable_shapes(2)
    x = draw.array(xs, Interval(-3, 3, avoid=_HALVES, gap=0.05))
    y = draw.array(ys, Interval(-2, 2, avoid=(0,), step=0.5))
    return (x, y), {}


@op(
    np.remainder,
    sample=_sample_quotients,
    argnums=(0, 1),
    convention="the one-sided derivatives away from the jumps (x / y an integer)",
)
def remainder(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x mod y`` with the sign of ``y`` (Python's ``%``), broadcasting.
    VJP: ``(g, -g floor(x / y))``."""
    return bind(REMAINDER, (x, y))


mod = remainder  # numpy's np.mod is np.remainder


@op(
    np.fmod,
    sample=_sample_quotients,
    argnums=(0, 1),
    convention="the one-sided derivatives away from the jumps (x / y an integer)",
)
def fmod(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """C's remainder, with the sign of ``x``, broadcasting. VJP: ``(g, -g trunc(x / y))``."""
    return bind(FMOD, (x, y))


# =======================================================================================
# Zero derivative: piecewise-constant functions and tests, recorded so a replay recomputes
# them

SIGN = Primitive("sign", np.sign, zero_vjp)
FLOOR = Primitive("floor", np.floor, zero_vjp)
CEIL = Primitive("ceil", np.ceil, zero_vjp)
RINT = Primitive("rint", np.rint, zero_vjp)
TRUNC = Primitive("trunc", np.trunc, zero_vjp)
ROUND = Primitive("round", np.round, zero_vjp)
FLOOR_DIVIDE = Primitive("floor_divide", np.floor_divide, zero_vjp)
ISFINITE = Primitive("isfinite", np.isfinite, zero_vjp)
ISNAN = Primitive("isnan", np.isnan, zero_vjp)
ISINF = Primitive("isinf", np.isinf, zero_vjp)

# Test domains stay 0.05 away from the jumps: integers, or the halfway points of rounding.
_AWAY_FROM_INTEGERS = unary(-3, 3, avoid=tuple(range(-3, 4)))
_AWAY_FROM_HALVES = unary(-3, 3, avoid=tuple(k + 0.5 for k in range(-4, 3)))


@op(np.sign, sample=unary(-3, 3, avoid=(0,)), convention="derivative 0, at x = 0 too")
def sign(x: ArrayLike) -> ArrayLike:
    """-1, 0 or 1 by the sign of ``x``. Derivative: zero."""
    return bind(SIGN, (x,))


@op(np.floor, sample=_AWAY_FROM_INTEGERS, convention="derivative 0, at the jumps too")
def floor(x: ArrayLike) -> ArrayLike:
    """The largest integer ``<= x`` (as a float for float ``x``). Derivative: zero."""
    return bind(FLOOR, (x,))


@op(np.ceil, sample=_AWAY_FROM_INTEGERS, convention="derivative 0, at the jumps too")
def ceil(x: ArrayLike) -> ArrayLike:
    """The smallest integer ``>= x`` (as a float for float ``x``). Derivative: zero."""
    return bind(CEIL, (x,))


@op(np.trunc, sample=_AWAY_FROM_INTEGERS, convention="derivative 0, at the jumps too")
def trunc(x: ArrayLike) -> ArrayLike:
    """``x`` rounded towards zero. Derivative: zero."""
    return bind(TRUNC, (x,))


@op(np.rint, sample=_AWAY_FROM_HALVES, convention="derivative 0, at the jumps too")
def rint(x: ArrayLike) -> ArrayLike:
    """``x`` rounded to the nearest integer, halves to even. Derivative: zero."""
    return bind(RINT, (x,))


#: The halfway points of rounding to 1 decimal (k / 10 + 0.05) and to 0 (k + 0.5) in [-3, 3].
_ROUNDING_JUMPS = tuple(k / 10 + 0.05 for k in range(-31, 30)) + tuple(
    k + 0.5 for k in range(-4, 3)
)


def _sample_round(draw):
    """``decimals`` 0 or 1; values 0.01 away from every halfway point of either."""
    decimals = draw.choice((0, 1))
    x = draw.array(draw.shape(), Interval(-3, 3, avoid=_ROUNDING_JUMPS, gap=0.01))
    return (x,), {"decimals": decimals}


@op(np.round, sample=_sample_round, method="round", convention="derivative 0, at the jumps too")
def round(a: ArrayLike, decimals: int = 0) -> ArrayLike:
    """``a`` rounded to ``decimals`` decimals (negative: to tens, hundreds...), halves to even.
    Derivative: zero."""
    return bind(ROUND, (a,), {"decimals": int(decimals)})


@op(np.around, sample=_sample_round, convention="derivative 0, at the jumps too")
def around(a: ArrayLike, decimals: int = 0) -> ArrayLike:
    """numpy's other name for :func:`round`. Derivative: zero."""
    return bind(ROUND, (a,), {"decimals": int(decimals)})


@op(
    np.floor_divide,
    sample=_sample_quotients,
    argnums=(0, 1),
    convention="derivative 0, at the jumps too",
)
def floor_divide(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``floor(x / y)`` (Python's ``//``), broadcasting. Derivative: zero in both."""
    return bind(FLOOR_DIVIDE, (x, y))


def _heaviside_vjp(i, g, ans, x, h0):
    """d heaviside(x, h0)/dx = 0 (the jump at 0 included);  d/dh0 = [x = 0]."""
    return None if i == 0 else g * equal(x, 0)


HEAVISIDE = Primitive("heaviside", np.heaviside, _heaviside_vjp)


@op(
    np.heaviside,
    sample=elementwise(Interval(-3, 3, avoid=(0,)), Interval(0, 1)),
    argnums=(0, 1),
    convention="d/dx = 0, at x = 0 too; d/dh0 = [x = 0]",
)
def heaviside(x: ArrayLike, h0: ArrayLike) -> ArrayLike:
    """The step function: 0 where ``x < 0``, ``h0`` where ``x = 0``, 1 where ``x > 0``,
    broadcasting. VJP: none to ``x``; ``g [x = 0]`` to ``h0``."""
    return bind(HEAVISIDE, (x, h0))


@op(np.isfinite, sample=unary(), float32=False)
def isfinite(x: ArrayLike) -> ArrayLike:
    """Whether each element is finite: a boolean array of ``x``'s shape.

    Derivative: none (a boolean result).
    """
    return bind(ISFINITE, (x,))


@op(np.isnan, sample=unary(), float32=False)
def isnan(x: ArrayLike) -> ArrayLike:
    """Whether each element is NaN: a boolean array of ``x``'s shape.

    Derivative: none (a boolean result).
    """
    return bind(ISNAN, (x,))


@op(np.isinf, sample=unary(), float32=False)
def isinf(x: ArrayLike) -> ArrayLike:
    """Whether each element is infinite: a boolean array of ``x``'s shape.

    Derivative: none (a boolean result).
    """
    return bind(ISINF, (x,))


ISCOMPLEX = Primitive("iscomplex", np.iscomplex, zero_vjp)
ISREAL = Primitive("isreal", np.isreal, zero_vjp)


@op(np.iscomplex, sample=unary(), float32=False)
def iscomplex(x: ArrayLike) -> ArrayLike:
    """Whether each element has a nonzero imaginary part: a boolean array of ``x``'s shape
    (a numpy bool for 0-d ``x``), all False for real ``x``.

    Derivative: none (a boolean result).
    """
    return bind(ISCOMPLEX, (x,))


@op(np.isreal, sample=unary(), float32=False)
def isreal(x: ArrayLike) -> ArrayLike:
    """Whether each element has a zero imaginary part: a boolean array of ``x``'s shape (a
    numpy bool for 0-d ``x``), all True for real ``x``.

    Derivative: none (a boolean result).
    """
    return bind(ISREAL, (x,))


# =======================================================================================
# The parts of a number, on real inputs: numpy code written for complex values runs on real
# ones. A real x is the complex number x + 0i, so its real part and its conjugate are x
# and its imaginary part is 0. Complex values themselves are not differentiated: grad
# refuses complex inputs, and an op that would give a complex result from a traced value
# raises.


REAL = Primitive("real", np.real, _identity_vjp)


@op(np.real, sample=unary())
def real(val: ArrayLike) -> ArrayLike:
    """The real part: for real ``val``, ``val`` itself (numpy returns its argument).

    VJP: ``g``.
    """
    return bind(REAL, (val,))


IMAG = Primitive("imag", np.imag, zero_vjp)


@op(np.imag, sample=unary())
def imag(val: ArrayLike) -> ArrayLike:
    """The imaginary part: for real ``val``, zeros of its shape and dtype (numpy returns a
    read-only array).

    Derivative: zero (the result is 0 whatever ``val``).
    """
    return bind(IMAG, (val,))


CONJUGATE = Primitive("conjugate", np.conjugate, _identity_vjp)


@op(np.conjugate, sample=unary(), method="conjugate")
def conjugate(x: ArrayLike) -> ArrayLike:
    """The complex conjugate: for real ``x``, a copy of ``x`` (shape and dtype kept).

    VJP: ``g``.
    """
    return bind(CONJUGATE, (x,))


conj = conjugate  # numpy's np.conj is np.conjugate


ANGLE = Primitive("angle", np.angle, zero_vjp)


def _sample_angle(draw):
    """Values away from the jump at 0, in radians or degrees."""
    x = draw.array(draw.shape(), Interval(-3, 3, avoid=(0,)))
    return (x,), {"deg": draw.choice((False, True))}


@op(
    np.angle,
    sample=_sample_angle,
    convention="derivative 0, at x = 0 too; angle(0.0) = 0 and angle(-0.0) = pi, as numpy",
)
def angle(z: ArrayLike, deg: bool = False) -> ArrayLike:
    """The argument of ``z`` as a complex number, ``arctan2(0, z)`` for real ``z``: 0 where
    ``z > 0`` and at ``+0.0``, pi where ``z < 0`` and at ``-0.0`` (180 with ``deg=True``),
    NaN at NaN; ``z``'s shape, float64 for integers, float32 kept.

    Derivative: zero (piecewise constant; at the jump too).
    """
    return bind(ANGLE, (z,), {"deg": bool(deg)})


@op(np.real_if_close, sample=unary())
def real_if_close(a: ArrayLike, tol: float = 100) -> ArrayLike:
    """``a`` itself if it is real (numpy returns its argument); a complex ``a`` is given
    to numpy's function, which drops imaginary parts all within ``tol`` machine epsilons
    of 0 (a complex traced value is refused: the result's dtype would depend on values).

    VJP: ``g`` (the identity on real ``a``).
    """
    if dtype_of(a).kind != "c":
        return a if type(a) is Traced else np.real_if_close(a, tol)
    if type(a) is Traced:
        raise TypeError(
            f"tg.real_if_close of a complex traced value ({dtype_of(a)}): whether the result "
            "is real depends on the values, and complex values are not differentiated; use "
            "np.real(z) for the real part"
        )
    return np.real_if_close(a, tol)
