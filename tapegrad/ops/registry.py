"""The registry: one :class:`OpSpec` per public op, which drives its tests and its docs.

Each op file declares its public functions with the :func:`op` decorator::

    @op(np.exp, sample=unary(-2, 2))
    def exp(x):
        '''``e ** x``.'''
        return bind(EXP, (x,))

The spec records what a reader and a test need to know about the function: numpy's
counterpart (for value parity, and for the dispatch of numpy's own functions), the ndarray
method of the same name, how to draw valid inputs (its *domain*: shapes, value ranges away
from poles and kinks, axes), which arguments are differentiated, to which order the
tests check derivatives, and the convention at kinks and ties. ``tests/test_registry.py``
turns every spec into property tests; the API docs list the registry by family.

A *sampler* is a plain function ``sample(draw) -> (args, kwargs)`` written against the small
:class:`Draw` interface below, so this module needs no test library: the tests implement
``Draw`` with hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import numpy as np

__all__ = [
    "BY_NUMPY",
    "DISTINCT",
    "REGISTRY",
    "Draw",
    "Interval",
    "OpSpec",
    "elementwise",
    "op",
    "reduction",
    "unary",
]


class Draw(Protocol):
    """What a sampler may ask for. The tests implement it with hypothesis."""

    def shape(self, min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
        """A shape with ``min_dims..max_dims`` axes of ``min_side..max_side`` each."""

    def broadcastable_shapes(self, n: int, min_dims: int = 0, max_dims: int = 3):
        """``n`` shapes that broadcast together (either side may be the smaller)."""

    def array(self, shape: Sequence[int], interval: Interval, dtype: Any = np.float64):
        """A float array of ``shape`` with values in ``interval``."""

    def axis(self, ndim: int, tuples: bool = True, none: bool = True):
        """An axis of an ``ndim`` array: ``None``, an int (maybe negative) or a tuple."""

    def integers(self, low: int, high: int) -> int:
        """An int in ``[low, high]``."""

    def choice(self, options: Sequence[Any]) -> Any:
        """One of ``options``."""


@attrs.frozen
class Interval:
    """Where a test draws an argument's values: ``[low, high]``, keeping at least ``gap``
    away from each point of ``avoid`` (kinks, poles). With ``step`` the values are
    multiples of ``step`` (``step = 0.5`` for one operand of ``maximum`` and a shift of
    0.25 for the other keeps them apart); ``distinct`` makes the values of one array
    unique (no ties for ``max``, ``sort``, ...)."""

    low: float = -2.0
    high: float = 2.0
    avoid: tuple[float, ...] = ()
    gap: float = 0.05
    step: float = 0.0
    distinct: bool = False


@attrs.frozen
class OpSpec:
    """Everything the tests and the docs need to know about one public op."""

    name: str
    function: Callable[..., Any]
    family: str
    sample: Callable[[Draw], tuple[tuple, dict]]
    numpy: Callable[..., Any] | None = None
    method: str | None = None
    argnums: tuple[int, ...] = (0,)
    order: int = 2
    convention: str = ""
    float32: bool = True
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def derivative(self) -> str:
        """The first line of the function's docstring that states its derivative."""
        for line in (self.function.__doc__ or "").splitlines():
            if "VJP" in line or "derivative" in line.lower():
                return line.strip()
        return ""


#: Every public op, by name, in the order the op files declare them.
REGISTRY: dict[str, OpSpec] = {}

#: numpy's (or scipy's) function -> tapegrad's op: what numpy's dispatch protocols call.
#: Filled by :func:`op`, so an op registered later (``tapegrad.scipy``) dispatches too.
BY_NUMPY: dict[Callable[..., Any], Callable[..., Any]] = {}


def op(
    numpy: Callable[..., Any] | None = None,
    *,
    sample: Callable[[Draw], tuple[tuple, dict]],
    name: str | None = None,
    method: str | None = None,
    argnums: Sequence[int] = (0,),
    order: int = 2,
    convention: str = "",
    float32: bool = True,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the public op it decorates (returned unchanged) in :data:`REGISTRY`.

    The family is the name of the op file (``elementwise``, ``reductions``, ...; the ops
    of :mod:`tapegrad.scipy` are ``scipy.special``, ...).
    """

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        key = name or function.__name__
        if key in REGISTRY:
            raise ValueError(f"op {key!r} is registered twice")
        REGISTRY[key] = OpSpec(
            name=key,
            function=function,
            family=function.__module__.removeprefix("tapegrad.ops.").removeprefix("tapegrad."),
            sample=sample,
            numpy=numpy,
            method=method,
            argnums=tuple(argnums),
            order=order,
            convention=convention,
            float32=float32,
            rtol=rtol,
            atol=atol,
        )
        if numpy is not None:
            BY_NUMPY.setdefault(numpy, function)
        return function

    return register


# ---------------------------------------------------------------------------------------
# Samplers for the common signatures


def elementwise(*intervals: Interval) -> Callable[[Draw], tuple[tuple, dict]]:
    """Arrays of mutually broadcastable shapes, one per interval."""

    def sample(draw: Draw) -> tuple[tuple, dict]:
        shapes = draw.broadcastable_shapes(len(intervals))
        return tuple(draw.array(s, i) for s, i in zip(shapes, intervals, strict=True)), {}

    return sample


def unary(
    low: float = -2.0, high: float = 2.0, avoid: tuple[float, ...] = (), gap: float = 0.05
) -> Callable[[Draw], tuple[tuple, dict]]:
    """One array of any shape (0-d included) with values in ``[low, high]``."""
    return elementwise(Interval(low, high, avoid, gap))


#: Unique values 0.05 apart: no ties among up to 81 elements.
DISTINCT = Interval(step=0.05, distinct=True)


def reduction(
    interval: Interval = Interval(),
    tuples: bool = True,
    keepdims: bool = True,
    min_dims: int = 0,
    **extra: Sequence[Any],
) -> Callable[[Draw], tuple[tuple, dict]]:
    """One array with an ``axis`` (None, an int or a tuple), ``keepdims`` and any ``extra``
    keyword drawn from its options (``ddof=(0, 1)``)."""

    def sample(draw: Draw) -> tuple[tuple, dict]:
        shape = draw.shape(min_dims=min_dims)
        kwargs = {"axis": draw.axis(len(shape), tuples=tuples)}
        if keepdims:
            kwargs["keepdims"] = draw.choice((False, True))
        for key, options in extra.items():
            kwargs[key] = draw.choice(options)
        return (draw.array(shape, interval),), kwargs

    return sample
