"""Shapes, dtypes and axes of op arguments, read without unboxing a traced value.

Every op file uses these; they look only at metadata (``shape``, ``dtype``), which a
traced value exposes without its concrete contents, so using them never freezes a value
into a tape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["dtype_of", "kept_shape", "normalize_axes", "shape_of"]


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array, a numpy or Python scalar, or a traced value."""
    try:
        return x.shape
    except AttributeError:
        return np.shape(x)


def dtype_of(x: Any) -> np.dtype:
    """The dtype numpy gives ``x`` (a Python float is float64, a Python int int64)."""
    try:
        return x.dtype
    except AttributeError:
        return np.result_type(x)


def normalize_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes (all axes for ``None``).

    Rules call it after the forward has accepted ``axis``, so it does not validate.
    """
    if axis is None or ndim == 0:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    return tuple(sorted(int(a) % ndim for a in axes))


def kept_shape(shape: tuple[int, ...], axis: int | Sequence[int] | None) -> tuple[int, ...]:
    """The shape a reduction of ``shape`` over ``axis`` gives with ``keepdims=True``."""
    axes = normalize_axes(axis, len(shape))
    return tuple(1 if i in axes else s for i, s in enumerate(shape))
