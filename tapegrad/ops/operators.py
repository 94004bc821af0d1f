"""Python operators, ndarray methods and numpy's own functions on traced values.

A traced value behaves like a read-only numpy array: ``x + y``, ``x @ W``, ``x[1:]``,
``x.sum(axis=0)``, ``np.exp(x)`` and ``np.sum(x)`` all run tapegrad's ops. numpy's functions
reach them through numpy's two protocols: ``__array_ufunc__`` for ufuncs (``np.exp``,
``np.add``) and ``__array_function__`` for the rest (``np.sum``, ``np.concatenate``). Both
look the function up in the registry (:data:`~tapegrad.ops.registry.REGISTRY`, by its
``numpy`` counterpart); a function with no rule raises a :class:`TypeError` naming it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

# Every op file, so that the registry is complete when the dispatch tables are built.
from tapegrad.ops import (  # noqa: F401
    arranging,
    convolution,
    core,
    elementwise,
    layers,
    linalg,
    products,
    reductions,
    shaping,
)
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import cast, getitem, reshape, transpose
from tapegrad.ops.products import matmul
from tapegrad.ops.registry import BY_NUMPY, REGISTRY
from tapegrad.tape import Primitive, Traced, _compiling_tape, _concrete, bind

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


def _no_rule(name: str, detail: str = "", ufunc: Any = None) -> TypeError:
    special = sys.modules.get("scipy.special")
    if ufunc is not None and special is not None and getattr(special, name, None) is ufunc:
        if "tapegrad.scipy" not in sys.modules:  # scipy's rules are registered by that import
            return TypeError(
                f"scipy.special.{name}{detail} on a traced value: import tapegrad.scipy, "
                "which registers scipy's functions with their derivatives (or call "
                f"tapegrad.scipy.special.{name})"
            )
        return TypeError(f"scipy.special.{name}{detail} has no derivative rule in tapegrad")
    return TypeError(
        f"np.{name}{detail} has no derivative rule in tapegrad; use a tapegrad op "
        "(tg.exp, tg.sum, ...), or declare it as a primitive with its VJP (tg.primitive)"
    )


# numpy's ufuncs and functions with a tapegrad rule: the registry's numpy counterparts, plus
# the comparisons and tests, which have no derivative.
_NO_DERIVATIVE_UFUNCS = {
    np.equal: core.equal,
    np.not_equal: core.not_equal,
    np.less: core.less,
    np.less_equal: core.less_equal,
    np.greater: core.greater,
    np.greater_equal: core.greater_equal,
    np.logical_and: core.logical_and,
    np.logical_or: core.logical_or,
    np.logical_not: core.logical_not,
}
BY_NUMPY.update({f: op for f, op in _NO_DERIVATIVE_UFUNCS.items() if f not in BY_NUMPY})
# ndarray.clip(traced bounds) calls numpy's internal clip ufunc
_CLIP_UFUNC = getattr(getattr(np, "_core", None), "umath", None)
if _CLIP_UFUNC is not None and hasattr(_CLIP_UFUNC, "clip"):
    BY_NUMPY.setdefault(_CLIP_UFUNC.clip, elementwise.clip)


# ufunc methods with a tapegrad counterpart, by the counterpart's registry name (numpy's
# default axis for both is 0).
_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min"}
_ACCUMULATE = {np.add: "cumsum", np.multiply: "cumprod"}


def _traced_array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if "out" in kwargs:
        raise TypeError(
            f"np.{ufunc.__name__}: a traced value cannot be written into out=; results are "
            "new values (use the returned array)"
        )
    if method == "__call__" and ufunc in BY_NUMPY:
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(
                f"np.{ufunc.__name__} on a traced value takes no keyword arguments but dtype "
                f"(got {', '.join(kwargs)})"
            )
        out = BY_NUMPY[ufunc](*inputs)
        return out if dtype is None else cast(out, dtype)
    table = {"reduce": _REDUCE, "accumulate": _ACCUMULATE}.get(method, {})
    if ufunc in table and table[ufunc] in REGISTRY:
        (x,) = inputs
        axis = kwargs.pop("axis", 0)
        if kwargs.pop("dtype", None) is not None or (kwargs and set(kwargs) != {"keepdims"}):
            raise TypeError(f"np.{ufunc.__name__}.{method} on a traced value takes axis only")
        return REGISTRY[table[ufunc]].function(x, axis=axis, **kwargs)
    raise _no_rule(ufunc.__name__, "" if method == "__call__" else f".{method}", ufunc)


def _like(func):
    """``np.zeros_like`` and its kin: the result depends on the shape and dtype only."""

    def like(a, *args, **kwargs):
        return func(np.broadcast_to(np.zeros((), dtype_of(a)), shape_of(a)), *args, **kwargs)

    return like


# Functions that only read metadata, answered without touching values.
_METADATA = {
    np.shape: shape_of,
    np.ndim: lambda x: len(shape_of(x)),
    np.size: lambda x, axis=None: math.prod(shape_of(x)) if axis is None else shape_of(x)[axis],
    np.result_type: lambda *xs: np.result_type(*(dtype_of(x) for x in xs)),
    np.iscomplexobj: lambda x: dtype_of(x).kind == "c",
    np.isrealobj: lambda x: dtype_of(x).kind != "c",
    **{f: _like(f) for f in (np.zeros_like, np.ones_like, np.empty_like, np.full_like)},
}

# Functions whose results are integers or booleans: no derivative. Each is recorded as a
# primitive with a zero derivative, so a replayed tape recomputes it; its result behaves
# like the numpy value (it converts to an array, an int or a bool).
_NONDIFFERENTIABLE = (
    np.argmax,
    np.argmin,
    np.argsort,
    np.argpartition,
    np.argwhere,
    np.flatnonzero,
    np.count_nonzero,
    np.isclose,
    np.allclose,
    np.array_equal,
    np.array_equiv,
    np.searchsorted,
    np.digitize,
)
_ZERO_DERIVATIVE = {f: Primitive(f.__name__, f, core.zero_vjp) for f in _NONDIFFERENTIABLE}

# Functions that return several arrays of data-dependent shapes: computed on the values
# (there is nothing to differentiate); a compiled program cannot replay them.
_ON_VALUES = (np.nonzero, np.unique)


def _on_values(func):
    def run(*args, **kwargs):
        for a in args:
            if _compiling_tape(a) is not None:  # the values of one call would be frozen
                raise TypeError(
                    f"np.{func.__name__} of a traced value inside tg.jit: its result's shape "
                    "depends on the values, so a compiled program cannot compute it; use "
                    "tg.where with a mask instead, or call it outside the jitted function"
                )
        return func(*(_concrete(a) for a in args), **kwargs)

    return run


def _frozen(kwargs: dict) -> dict:
    """Keyword arguments as immutable record parameters (lists become tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def _traced_array_function(self, func, types, args, kwargs):
    if func is np.where and len(args) + len(kwargs) == 1:  # where(condition) is nonzero
        return _on_values(np.nonzero)(*args, **kwargs)
    fn = BY_NUMPY.get(func) or _METADATA.get(func)
    if fn is not None:
        return fn(*args, **kwargs)
    if func in _ZERO_DERIVATIVE:
        return bind(_ZERO_DERIVATIVE[func], args, _frozen(kwargs))
    if func in _ON_VALUES:
        return _on_values(func)(*args, **kwargs)
    raise _no_rule(func.__name__)


for _name, _fn in {
    "__add__": core.add,
    "__sub__": core.subtract,
    "__mul__": core.multiply,
    "__truediv__": core.divide,
    "__pow__": elementwise.power,
    "__mod__": elementwise.mod,
    "__floordiv__": elementwise.floor_divide,
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


def _traced_hash(self):
    """Like numpy: a 0-d integer or boolean value hashes as its value; arrays do not hash."""
    if self.shape == () and dtype_of(self).kind in "biu":
        return hash(np.asarray(self._concrete_for("hash()")).item())
    raise TypeError(f"unhashable traced value (shape {self.shape}, {self.dtype})")


Traced.__hash__ = _traced_hash  # __eq__ is elementwise, as in numpy


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
Traced.__round__ = lambda self, ndigits=None: elementwise.round(self, ndigits or 0)
Traced.__getitem__ = getitem
Traced.__iter__ = _traced_iter
Traced.__array_ufunc__ = _traced_array_ufunc
Traced.__array_function__ = _traced_array_function
Traced.T = property(transpose)
Traced.real = property(elementwise.real)
Traced.imag = property(elementwise.imag)
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
Traced.conj = Traced.conjugate  # ndarray has both names


def _traced_partition(self, *args, **kwargs):
    """ndarray.partition works in place, which a traced value (immutable) cannot."""
    raise TypeError(
        "x.partition(kth) partitions x in place, and a traced value is never written into; "
        "use y = np.partition(x, kth) (or tg.partition), which returns the partitioned copy"
    )


Traced.partition = _traced_partition
