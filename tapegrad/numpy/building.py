"""Building arrays out of values that may be traced: ``array``, ``asarray``, ``r_``, ``c_``.

numpy's own ``np.array([a, b])`` cannot hold traced values: it would need their concrete
contents (dropping the derivative), and numpy gives ``np.array`` no dispatch protocol. These
build the same array, with numpy's shape and dtype rules, out of tapegrad's ops (``stack``,
``reshape``, ``cast``, ``concatenate``), so the derivative flows back to every traced
element. With no traced value inside they are numpy's own functions.

numpy's rules come from numpy itself: each traced value is replaced by a stand-in array of
its shape and dtype, and ``np.array`` of that *skeleton* gives the result's shape and dtype,
or numpy's error (an inhomogeneous list, say).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import cast, reshape, transpose
from tapegrad.ops.shaping import concatenate, stack
from tapegrad.tape import Traced

__all__ = ["array", "asarray", "c_", "r_"]


def _has_traced(obj: Any) -> bool:
    """Whether ``obj`` is traced or a (nested) list or tuple holding a traced value."""
    if type(obj) is Traced:
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_traced(o) for o in obj)
    return False


def _skeleton(obj: Any) -> Any:
    """``obj`` with each traced value replaced by a stand-in of its shape and dtype."""
    if type(obj) is Traced:
        return np.broadcast_to(np.zeros((), obj.dtype), obj.shape)
    if isinstance(obj, (list, tuple)):
        return [_skeleton(o) for o in obj]
    return obj


def _leaves(obj: Any, depth: int, out: list) -> None:
    """Append ``(depth, leaf)`` for each non-sequence in the nested lists ``obj``."""
    if isinstance(obj, (list, tuple)):
        for o in obj:
            _leaves(o, depth + 1, out)
    else:
        out.append((depth, obj))


def _nested(obj: Any, dtype: np.dtype) -> Any:
    """The nested lists ``obj`` as one array: a stack per list that holds a traced value."""
    if not isinstance(obj, (list, tuple)):
        return obj
    if not _has_traced(obj):
        return np.asarray(obj, dtype)  # a constant block
    return stack([_nested(o, dtype) for o in obj])


def _copy_error() -> ValueError:
    return ValueError("Unable to avoid copy while creating an array as requested.")


def _built(obj: list | tuple, dtype: Any, ndmin: int) -> Any:
    """The array numpy's ``np.array(obj, dtype, ndmin=ndmin)`` would give, from tapegrad's ops."""
    skeleton = np.array(_skeleton(obj), dtype=dtype, ndmin=ndmin)  # numpy's shape and dtype
    if skeleton.dtype.kind not in "biuf":
        raise TypeError(
            f"tg.array: cannot build a {skeleton.dtype} array holding traced values (only "
            "booleans, integers and floats)"
        )
    leaves: list = []
    _leaves(obj, 0, leaves)
    depths = {d for d, _ in leaves}
    if len(depths) == 1 and len({shape_of(v) for _, v in leaves}) == 1:
        out = stack([v for _, v in leaves])  # one record for any nesting
    else:  # traced arrays next to lists of numbers: stack level by level
        out = _nested(obj, skeleton.dtype)
    if shape_of(out) != skeleton.shape:
        out = reshape(out, skeleton.shape)
    if dtype_of(out) != skeleton.dtype:
        out = cast(out, skeleton.dtype)
    return out


def _with_ndmin(x: Any, ndmin: int) -> Any:
    shape = shape_of(x)
    return x if len(shape) >= ndmin else reshape(x, (1,) * (ndmin - len(shape)) + shape)


def array(
    object: Any,
    dtype: Any = None,
    *,
    copy: bool | None = True,
    order: str | None = "K",
    subok: bool = False,
    ndmin: int = 0,
    like: Any = None,
) -> Any:
    """``np.array`` that also takes traced values, alone or in nested lists and tuples
    (mixed with numbers and arrays), with numpy's shape and dtype rules: a list of 0-d
    values is 1-d, ``[[a, b], [c, d]]`` is 2-d, a Python float next to a float32 traced
    value makes float64 (as in numpy), ``dtype=`` casts, ``ndmin`` prepends axes.

    A traced value gives a new traced value (its copy). ``order`` and ``subok`` only matter
    for plain arrays (a traced value has no memory layout); ``copy=False`` raises, as in
    numpy 2, where building needs a new array.

    Derivative: each traced element gets its part of the cotangent (cast back to its dtype).
    """
    if not _has_traced(object):
        return np.array(object, dtype, copy=copy, order=order, subok=subok, ndmin=ndmin, like=like)
    if type(object) is not Traced:
        if copy is False:
            raise _copy_error()
        return _built(object, dtype, ndmin)
    out = object
    if dtype is not None and np.dtype(dtype) != object.dtype:
        if copy is False:
            raise _copy_error()
        out = cast(object, dtype)
    out = _with_ndmin(out, ndmin)
    if out is object and copy:
        out = cast(object, object.dtype)  # a new value: a copy, as numpy's array() makes
    return out


def asarray(
    a: Any,
    dtype: Any = None,
    order: str | None = None,
    *,
    device: Any = None,
    copy: bool | None = None,
    like: Any = None,
) -> Any:
    """``np.asarray`` that also takes traced values: a traced value is returned as it is
    (cast if ``dtype`` differs, copied if ``copy=True``); nested lists and tuples holding
    traced values are built as :func:`array` builds them.

    Derivative: as :func:`array`.
    """
    if not _has_traced(a):
        extra = {k: v for k, v in (("device", device), ("copy", copy)) if v is not None}
        return np.asarray(a, dtype, order, like=like, **extra)
    if type(a) is not Traced:
        return array(a, dtype, copy=True if copy is None else copy)
    if dtype is not None and np.dtype(dtype) != a.dtype:
        if copy is False:
            raise _copy_error()
        return cast(a, dtype)
    return cast(a, a.dtype) if copy else a


class _Concatenator:
    """numpy's ``r_``/``c_`` (its ``AxisConcatenator``) taking traced values too.

    Without a traced value in the index it is numpy's own object. With one, the items are
    read as numpy reads them: slices are ranges (``0:3``, ``0:1:5j``), scalars and arrays
    (traced ones included, and lists of them) are joined along ``axis`` after being given
    at least ``ndmin`` axes; a first string ``"axis,ndmin,trans1d"`` changes those settings.
    The matrix directives ``"r"`` and ``"c"`` are refused with traced values.
    """

    __slots__ = ("axis", "ndmin", "numpy", "trans1d")

    def __init__(self, numpy: Any, axis: int, ndmin: int, trans1d: int) -> None:
        self.numpy, self.axis, self.ndmin, self.trans1d = numpy, axis, ndmin, trans1d

    def __len__(self) -> int:
        return 0

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):  # numpy's matrix builder reads the caller's variables
            frame = sys._getframe(1)
            return np.bmat(key, frame.f_globals, frame.f_locals)
        if not _has_traced(key):
            return self.numpy[key]
        items = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        objs, kinds = [], []  # kinds: dtypes, or Python scalars (weak in result_type)
        for k, item in enumerate(items):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError("special directives must be the first entry.")
                axis, ndmin, trans1d = _directive(item, axis, ndmin, trans1d)
                continue
            if isinstance(item, slice):
                obj = _range(item, ndmin, trans1d)
            elif type(item) in np.ScalarType:
                objs.append(item)
                kinds.append(item)
                continue
            else:
                obj = asarray(item)
                item_ndim = len(shape_of(obj))
                obj = _with_ndmin(obj, ndmin)
                if trans1d != -1 and item_ndim < ndmin:
                    k2, k1 = ndmin - item_ndim, trans1d
                    if k1 < 0:
                        k1 += k2 + 1
                    axes = list(range(ndmin))
                    obj = transpose(obj, axes[:k1] + axes[k2:] + axes[k1:k2])
            objs.append(obj)
            kinds.append(dtype_of(obj))
        final = np.result_type(*kinds)
        objs = [_with_ndmin(asarray(o, final), ndmin) for o in objs]
        return concatenate(objs, axis)


def _directive(item: str, axis: int, ndmin: int, trans1d: int) -> tuple[int, int, int]:
    """numpy's string directive: ``"axis"`` or ``"axis,ndmin[,trans1d]"``."""
    if item in ("r", "c"):
        raise ValueError(
            "tg r_/c_: the matrix directives 'r' and 'c' build an np.matrix, which cannot hold "
            "traced values; build the array with tapegrad.numpy.r_/c_ and reshape it instead"
        )
    try:
        parts = [int(p) for p in item.split(",")]
    except ValueError as e:
        raise ValueError(f"unknown special directive {item!r}") from e
    if len(parts) == 1:
        return parts[0], ndmin, trans1d
    if len(parts) in (2, 3):
        return parts[0], parts[1], parts[2] if len(parts) == 3 else trans1d
    raise ValueError(f"unknown special directive {item!r}")


def _range(item: slice, ndmin: int, trans1d: int) -> np.ndarray:
    """numpy's reading of a slice in ``r_``: ``arange``, or ``linspace`` for a complex step."""
    start = 0 if item.start is None else item.start
    step = 1 if item.step is None else item.step
    if isinstance(step, (complex, np.complexfloating)):
        obj = np.linspace(start, item.stop, num=int(abs(step)))
    else:
        obj = np.arange(start, item.stop, step)
    if ndmin > 1:
        obj = np.array(obj, ndmin=ndmin)
        if trans1d != -1:
            obj = obj.swapaxes(-1, trans1d)
    return obj


#: ``r_[a, b, 1.0, 0:3]``: join along the first axis (numpy's ``np.r_``, taking traced values).
r_ = _Concatenator(np.r_, axis=0, ndmin=1, trans1d=-1)
#: ``c_[a, b]``: 1-d values as columns, joined along the last axis (numpy's ``np.c_``).
c_ = _Concatenator(np.c_, axis=-1, ndmin=2, trans1d=0)
