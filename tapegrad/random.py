"""Explicit random keys: every draw is a pure function of a key, as in JAX.

There is no global random state. A *key* is a ``uint64`` array of shape ``(2,)``: the
128-bit key of numpy's counter-based bit generator :class:`numpy.random.Philox`. A draw
runs Philox under that key from a fixed counter, so the same key gives the same numbers
in every process, in every thread and under ``tg.jit``; two keys give independent
streams. To get several independent draws, :func:`split` the key first::

    key = tg.random.key(0)
    key, sub = tg.random.split(key)          # keep ``key`` for later, spend ``sub``
    w = tg.random.normal(sub, (3, 4), np.float32)

Reusing a key repeats its numbers (``uniform(k, (2,))`` twice gives the same pair).

How a key's counter space is used (Philox's counter is four 64-bit words; numpy advances
the lowest one block by block):

- draws (:func:`uniform`, :func:`normal`, ...) start at counter ``(0, 0, 0, 0)``, where
  ``numpy.random.Philox`` starts: ``uniform(key(s), shape)`` is exactly
  ``numpy.random.Generator(numpy.random.Philox(s)).random(shape)``;
- :func:`split` reads ``2 n`` words of the key's stream at counter ``(0, 0, 0, 1)``: the
  ``n`` child keys are a pure function of the parent, and they are not the words a draw
  from the parent sees;
- :func:`fold_in` reads two words at counter ``(0, 0, data, 2)``.

The top counter word keeps the three apart: a draw would need ``2**192`` blocks to reach
the next region.

Under ``tg.jit`` every function here is a recorded primitive whose *argument* is the key
(and shapes and dtypes are parameters of the record), so the compiled program draws from
the key it is called with: a key passed in as an argument gives fresh numbers on every
call, the numbers the uncompiled function would give. No function reads a key's value
while tracing. The draws have no derivative with respect to the key; :func:`uniform`'s
``minval``/``maxval`` and :func:`permutation`'s array are differentiable.

The numbers are fixed by the key and numpy's algorithms: Philox's words never change,
and ``numpy.random.Generator``'s transformations (floats, normals, integers) are stable
within a numpy version (numpy's policy allows them to change between versions).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad import ops
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import ArrayLike, zero_vjp
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "bernoulli",
    "fold_in",
    "key",
    "normal",
    "permutation",
    "randint",
    "split",
    "uniform",
]

KEY_SHAPE = (2,)
KEY_DTYPE = np.dtype(np.uint64)

# The top word of Philox's counter: which use of a key's stream a block belongs to.
_DRAW, _SPLIT, _FOLD_IN = 0, 1, 2

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _generator(key: np.ndarray, counter: Sequence[int] = (0, 0, 0, 0)) -> np.random.Generator:
    """numpy's generator over Philox with ``key``, starting at ``counter``."""
    return np.random.Generator(np.random.Philox(key=key, counter=np.array(counter, np.uint64)))


def _check_key(k: Any, fn: str) -> None:
    """A key is a ``uint64`` array of shape ``(2,)`` (checked on metadata only)."""
    if shape_of(k) != KEY_SHAPE or dtype_of(k) != KEY_DTYPE:
        raise TypeError(
            f"tg.random.{fn}: a key is a uint64 array of shape (2,) (tg.random.key(seed), "
            f"or one row of tg.random.split(key, n)); got shape {shape_of(k)}, {dtype_of(k)}"
        )


def _shape(shape: Any, fn: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints (an int is a 1-d shape)."""
    try:
        dims = (operator.index(shape),) if not isinstance(shape, Sequence) else shape
        dims = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise TypeError(
            f"tg.random.{fn}: shape must be an int or a sequence of ints, got {shape!r}"
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"tg.random.{fn}: negative dimension in shape {dims}")
    return dims


def _float_dtype(dtype: Any, fn: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise TypeError(f"tg.random.{fn}: dtype must be float32 or float64, got {dt}")
    return dt


def _broadcasts_to(shape: tuple[int, ...], *values: Any) -> bool:
    """Whether every value's shape broadcasts to ``shape`` (without growing it)."""
    try:
        return np.broadcast_shapes(shape, *(shape_of(v) for v in values)) == shape
    except ValueError:
        return False


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# =======================================================================================
# Keys


def _key_forward(seed):
    return np.random.SeedSequence(int(seed)).generate_state(2, np.uint64)


KEY = Primitive("random_key", _key_forward, zero_vjp)


def key(seed: int | ArrayLike) -> ArrayLike:
    """A key from a non-negative integer seed: a ``uint64`` array of shape ``(2,)``.

    The key is the one ``numpy.random.Philox(seed)`` uses (numpy's ``SeedSequence``
    hashes the seed), so nearby seeds give unrelated keys. Under ``tg.jit`` a numpy
    integer seed is an input of the program: a new seed makes a new key.

    >>> import numpy as np
    >>> import tapegrad.random as tgr
    >>> k = tgr.key(0)
    >>> k.dtype, k.shape
    (dtype('uint64'), (2,))
    >>> bool(np.all(tgr.uniform(k, 3) == np.random.Generator(np.random.Philox(0)).random(3)))
    True
    """
    if type(seed) is not Traced:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"tg.random.key: the seed must be an integer, got {seed!r}")
        if seed < 0:
            raise ValueError(f"tg.random.key: the seed must be non-negative, got {seed}")
    elif shape_of(seed) != () or dtype_of(seed).kind not in "iu":
        raise TypeError(
            f"tg.random.key: the seed must be a 0-d integer, got shape {shape_of(seed)}, "
            f"{dtype_of(seed)}"
        )
    return bind(KEY, (seed,))


def _split_forward(key, n):
    return _generator(key, (0, 0, 0, _SPLIT)).bit_generator.random_raw(2 * n).reshape(n, 2)


SPLIT = Primitive("random_split", _split_forward, zero_vjp)


def split(key: ArrayLike, n: int = 2) -> ArrayLike:
    """``n`` new keys from ``key``: a ``uint64`` array of shape ``(n, 2)``, a key a row.

    The children are ``2 n`` words of ``key``'s Philox stream (in a region of its counter
    space that draws never use), so they are a pure function of ``key`` and independent of
    each other and of the numbers drawn from ``key``. Unpack them
    (``key, sub = split(key)``) or index them (``keys[i]``).
    """
    _check_key(key, "split")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"tg.random.split: n must be at least 1, got {n}")
    return bind(SPLIT, (key,), {"n": n})


def _fold_in_forward(key, data):
    word = int(data) % 2**64  # negative data wraps, as numpy's uint64 cast does
    return _generator(key, (0, 0, word, _FOLD_IN)).bit_generator.random_raw(2)


FOLD_IN = Primitive("random_fold_in", _fold_in_forward, zero_vjp)


def fold_in(key: ArrayLike, data: int | ArrayLike) -> ArrayLike:
    """A new key from ``key`` and an integer ``data`` (a step, a layer's index, a rank).

    ``fold_in(key, i)`` for ``i = 0, 1, 2, ...`` gives independent keys without carrying
    split keys around. ``data`` is taken modulo ``2**64``. Under ``tg.jit`` pass a numpy
    integer (``np.int64(step)``): it is an input of the program, whereas a Python int is
    part of the signature and each new value compiles a new program.
    """
    _check_key(key, "fold_in")
    if type(data) is Traced or isinstance(data, (np.ndarray, np.generic)):
        if shape_of(data) != () or dtype_of(data).kind not in "iu":
            raise TypeError(
                f"tg.random.fold_in: data must be a 0-d integer, got shape {shape_of(data)}, "
                f"{dtype_of(data)}"
            )
    elif isinstance(data, bool) or not isinstance(data, int):
        raise TypeError(f"tg.random.fold_in: data must be an integer, got {data!r}")
    return bind(FOLD_IN, (key, data))


# =======================================================================================
# Draws


def _uniform_forward(key, shape, dtype):
    return _generator(key).random(shape, dtype=dtype)


UNIFORM = Primitive("random_uniform", _uniform_forward, zero_vjp)


def uniform(
    key: ArrayLike,
    shape: int | Sequence[int] = (),
    dtype: Any = np.float64,
    minval: float | ArrayLike = 0.0,
    maxval: float | ArrayLike = 1.0,
) -> ArrayLike:
    """Uniform floats in ``[minval, maxval)``, of ``shape`` and ``dtype`` (float32 or float64).

    With the default bounds the result is numpy's ``Generator.random(shape, dtype)`` on
    ``key``'s stream (53 random bits per float64, 24 per float32). Other bounds give
    ``minval + (maxval - minval) u`` in ``dtype`` (rounding may reach ``maxval``);
    ``minval`` and ``maxval`` broadcast to ``shape`` and are differentiable.
    """
    _check_key(key, "uniform")
    shape = _shape(shape, "uniform")
    dtype = _float_dtype(dtype, "uniform")
    u = bind(UNIFORM, (key,), {"shape": shape, "dtype": dtype})
    if _is_number(minval) and _is_number(maxval) and (minval, maxval) == (0, 1):
        return u
    if not _broadcasts_to(shape, minval, maxval):
        raise ValueError(
            f"tg.random.uniform: minval {shape_of(minval)} and maxval {shape_of(maxval)} "
            f"must broadcast to shape {shape}"
        )
    # Python numbers stay Python floats (weak: float32 stays float32); arrays take dtype.
    lo, hi = (float(b) if _is_number(b) else ops.cast(b, dtype) for b in (minval, maxval))
    span = hi - lo if _is_number(lo) and _is_number(hi) else ops.subtract(hi, lo)
    return ops.add(ops.multiply(span, u), lo)


def _normal_forward(key, shape, dtype):
    return _generator(key).standard_normal(shape, dtype=dtype)


NORMAL = Primitive("random_normal", _normal_forward, zero_vjp)


def normal(key: ArrayLike, shape: int | Sequence[int] = (), dtype: Any = np.float64) -> ArrayLike:
    """Standard normal floats of ``shape`` and ``dtype`` (float32 or float64).

    numpy's ``Generator.standard_normal(shape, dtype=dtype)`` (the ziggurat method) on
    ``key``'s stream. For mean ``m`` and deviation ``s``, write ``m + s * normal(...)``.
    """
    _check_key(key, "normal")
    shape = _shape(shape, "normal")
    dtype = _float_dtype(dtype, "normal")
    return bind(NORMAL, (key,), {"shape": shape, "dtype": dtype})


def bernoulli(
    key: ArrayLike, p: float | ArrayLike = 0.5, shape: int | Sequence[int] | None = None
) -> ArrayLike:
    """A boolean array, ``True`` with probability ``p``: ``uniform(key, shape) < p``.

    ``shape`` defaults to ``p``'s shape; ``p`` (a number or an array) broadcasts to it.
    The uniform draw is in ``p``'s dtype when ``p`` is a float32 array (half the random
    bits: what dropout on float32 activations wants), in float64 otherwise.
    """
    _check_key(key, "bernoulli")
    if _is_number(p):
        if not 0 <= p <= 1:
            raise ValueError(f"tg.random.bernoulli: p must lie in [0, 1], got {p}")
        dtype = np.dtype(np.float64)
    else:
        kind = dtype_of(p)
        dtype = kind if kind in _FLOATS else np.dtype(np.float64)
    shape = shape_of(p) if shape is None else _shape(shape, "bernoulli")
    if not _broadcasts_to(shape, p):
        raise ValueError(f"tg.random.bernoulli: p {shape_of(p)} must broadcast to shape {shape}")
    return ops.less(uniform(key, shape, dtype), p)


def _permutation_forward(key, n):
    return _generator(key).permutation(n)


PERMUTATION = Primitive("random_permutation", _permutation_forward, zero_vjp)


def permutation(key: ArrayLike, x: int | ArrayLike, axis: int = 0) -> ArrayLike:
    """A random permutation of ``range(x)`` (int64), or of ``x``'s entries along ``axis``.

    ``permutation(key, n)`` is numpy's ``Generator.permutation(n)`` on ``key``'s stream;
    ``n`` must be a Python or numpy integer (it fixes the result's shape, so it cannot be a
    traced value). An array is gathered with that permutation of its ``axis``
    (differentiable: the cotangent goes back to the picked places).
    """
    _check_key(key, "permutation")
    if type(x) is not Traced and np.ndim(x) == 0:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"tg.random.permutation: x must be an integer or an array, got {x!r}")
        if x < 0:
            raise ValueError(f"tg.random.permutation: n must be non-negative, got {x}")
        return bind(PERMUTATION, (key,), {"n": int(x)})
    shape = shape_of(x)
    if not shape:
        raise TypeError(
            "tg.random.permutation: x is a 0-d traced value; pass n as a Python int (the "
            "result's shape depends on it)"
        )
    axis = operator.index(axis)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"tg.random.permutation: axis {axis} out of range for shape {shape}")
    order = bind(PERMUTATION, (key,), {"n": shape[axis]})
    return ops.take(x, order, axis=axis)


def _randint_forward(key, minval, maxval, shape, dtype):
    return _generator(key).integers(minval, maxval, size=shape, dtype=dtype)


RANDINT = Primitive("random_randint", _randint_forward, zero_vjp)


def randint(
    key: ArrayLike,
    shape: int | Sequence[int],
    minval: int | ArrayLike,
    maxval: int | ArrayLike,
    dtype: Any = np.int64,
) -> ArrayLike:
    """Integers drawn uniformly from ``[minval, maxval)``, of ``shape`` and integer ``dtype``.

    numpy's ``Generator.integers(minval, maxval, size=shape, dtype=dtype)`` on ``key``'s
    stream; the bounds are ints or integer arrays broadcasting to ``shape``.
    """
    _check_key(key, "randint")
    shape = _shape(shape, "randint")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"tg.random.randint: dtype must be an integer dtype, got {dtype}")
    for name, b in (("minval", minval), ("maxval", maxval)):
        if isinstance(b, (bool, np.bool_)) or dtype_of(b).kind not in "iu":
            raise TypeError(f"tg.random.randint: {name} must be integers, got {dtype_of(b)}")
    if not _broadcasts_to(shape, minval, maxval):
        raise ValueError(
            f"tg.random.randint: minval {shape_of(minval)} and maxval {shape_of(maxval)} "
            f"must broadcast to shape {shape}"
        )
    return bind(RANDINT, (key, minval, maxval), {"shape": shape, "dtype": dtype})
