"""Python operators, ndarray methods and numpy's own functions on traced values.

A traced value behaves like a read-only numpy array: ``x + y``, ``x @ W``, ``x[1:]``,
``x.sum(axis=0)``, ``np.exp(x)`` and ``np.sum(x)`` all run tapegrad's ops. numpy's functions
reach them through numpy's two protocols: ``__array_ufunc__`` for ufuncs (``np.exp``,
``np.add``) and ``__array_function__`` for the rest (``np.sum``, ``np.concatenate``). Both
look the function up in the registry (:data:`~tapegrad.ops.registry.REGISTRY`, by its
``numpy`` counterpart); a function with no rule raises a :class:`TypeError` naming it.
"""

from __future__ import annotations

import numpy as np

# Every op file, so that the registry is complete when the dispatch tables are built.
from tapegrad.ops import (  # noqa: F401
    arranging,
    core,
    elementwise,
    layers,
    products,
    reductions,
    shaping,
)
from tapegrad.ops.axes import dtype_of
from tapegrad.ops.core import cast, getitem, reshape, transpose
from tapegrad.ops.products import matmul
from tapegrad.ops.registry import REGISTRY
from tapegrad.tape import Traced

__all__: list[str] = []


def _swap(op):
    def reflected(self, other):
        return op(other, self)

    reflected.__name__ = f"r{op.__name__}"
    return reflected


def _traced_iter(self):
    return (getitem(self, k) for k in range(len(self)))


def _traced_reshape(self, *shape):
    return reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)


def _traced_transpose(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return transpose(self, axes or None)


def _no_rule(name: str, detail: str = "") -> TypeError:
    return TypeError(
        f"np.{name}{detail} has no derivative rule in tapegrad; use a tapegrad op "
        "(tg.exp, tg.sum, ...), or declare it as a primitive with its VJP (tg.primitive)"
    )


# numpy's ufuncs and functions with a tapegrad rule: the registry's numpy counterparts, plus
# the comparisons and tests, which have no derivative.
_UFUNCS = {s.numpy: s.function for s in REGISTRY.values() if isinstance(s.numpy, np.ufunc)}
_UFUNCS.update(
    {
        np.equal: core.equal,
        np.not_equal: core.not_equal,
        np.less: core.less,
        np.less_equal: core.less_equal,
        np.greater: core.greater,
        np.greater_equal: core.greater_equal,
        np.logical_and: core.logical_and,
        np.logical_or: core.logical_or,
        np.logical_not: core.logical_not,
        np.sign: elementwise.sign,
        np.isfinite: elementwise.isfinite,
        np.isnan: elementwise.isnan,
        np.isinf: elementwise.isinf,
    }
)
_FUNCTIONS = {
    s.numpy: s.function
    for s in REGISTRY.values()
    if s.numpy is not None and not isinstance(s.numpy, np.ufunc)
}


def _traced_array_ufunc(self, ufunc, method, *inputs, **kwargs):
    fn = _UFUNCS.get(ufunc)
    if method != "__call__" or fn is None:
        raise _no_rule(ufunc.__name__, f".{method}" if method != "__call__" else "")
    if kwargs:
        raise TypeError(
            f"np.{ufunc.__name__} on a traced value takes no keyword arguments "
            f"(got {', '.join(kwargs)}): results are new values, never written into out="
        )
    return fn(*inputs)


# Functions that only read metadata, answered without touching values.
_METADATA = {
    np.shape: lambda x: x.shape,
    np.ndim: lambda x: x.ndim,
    np.size: lambda x, axis=None: x.size if axis is None else x.shape[axis],
}


def _traced_array_function(self, func, types, args, kwargs):
    fn = _FUNCTIONS.get(func) or _METADATA.get(func)
    if fn is None:
        raise _no_rule(func.__name__)
    return fn(*args, **kwargs)


for _name, _fn in {
    "__add__": core.add,
    "__sub__": core.subtract,
    "__mul__": core.multiply,
    "__truediv__": core.divide,
    "__pow__": elementwise.power,
    "__matmul__": matmul,
}.items():
    setattr(Traced, _name, _fn)
    setattr(Traced, "__r" + _name[2:], _swap(_fn))
for _name, _fn in {
    "__lt__": core.less,
    "__le__": core.less_equal,
    "__gt__": core.greater,
    "__ge__": core.greater_equal,
    "__eq__": core.equal,
    "__ne__": core.not_equal,
}.items():
    setattr(Traced, _name, _fn)
Traced.__hash__ = None  # __eq__ is elementwise, as in numpy


def _mask_op(op):
    """``&``, ``|`` and ``~`` on traced boolean masks (bitwise ops on integers are refused)."""

    def method(self, *other):
        for a in (self, *other):
            if dtype_of(a) != np.bool_:
                raise TypeError(f"{op.__name__}: tapegrad supports &, | and ~ on booleans only")
        return op(self, *other)

    method.__name__ = op.__name__
    return method


Traced.__and__ = Traced.__rand__ = _mask_op(core.logical_and)
Traced.__or__ = Traced.__ror__ = _mask_op(core.logical_or)
Traced.__invert__ = _mask_op(core.logical_not)
Traced.__neg__ = core.negative
Traced.__pos__ = lambda self: self
Traced.__abs__ = elementwise.abs
Traced.__getitem__ = getitem
Traced.__iter__ = _traced_iter
Traced.__array_ufunc__ = _traced_array_ufunc
Traced.__array_function__ = _traced_array_function
Traced.T = property(transpose)
Traced.reshape = _traced_reshape
Traced.transpose = _traced_transpose
Traced.astype = cast


def _method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


# ndarray methods: every registered op that declares one (x.sum(axis=0), x.clip(0, 1), ...)
for _spec in REGISTRY.values():
    if _spec.method is not None:
        setattr(Traced, _spec.method, _method(_spec.function))
