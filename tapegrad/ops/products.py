"""Products of arrays: ``matmul``, ``dot``, ``vdot``, ``inner``, ``outer``, ``tensordot``,
``einsum``, ``kron`` and ``cross``.

Three primitives carry them: ``matmul`` (one BLAS call, which ``dot``, ``inner``, ``vdot`` and
``tensordot`` reduce to), ``einsum`` and ``cross``. Each is linear in every operand, so each
rule is the same product of the cotangent with the other operands, mapped back to the
operand's axes.
"""

from __future__ import annotations

import functools
import itertools
import math
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import (
    ArrayLike,
    broadcast_to,
    getitem,
    multiply,
    reshape,
    scatter_add,
    sum,
    transpose,
    unbroadcast,
)
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "cross",
    "dot",
    "einsum",
    "inner",
    "kron",
    "matmul",
    "matrix_transpose",
    "outer",
    "tensordot",
    "vdot",
]


def matrix_transpose(a: ArrayLike) -> ArrayLike:
    """Swap the last two axes of ``a`` (a stack of matrices)."""
    nd = len(shape_of(a))
    return transpose(a) if nd == 2 else transpose(a, (*range(nd - 2), nd - 1, nd - 2))


def _insert_axis(a: ArrayLike, axis: int) -> ArrayLike:
    shape = list(shape_of(a))
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(a, tuple(shape))


def _array(x: Any) -> Any:
    """``x`` as numpy's products take it: a Python scalar becomes an array (so it promotes
    float32 as numpy's ``dot`` does: ``np.dot(float32, 2.0)`` is float64)."""
    return x if type(x) is Traced or isinstance(x, np.ndarray) else np.asarray(x)


# =======================================================================================
# matmul


def _matmul_vjp(i, g, ans, x, y):
    """For ``x (..., n, k) @ y (..., k, m)``: dx = g y^T, dy = x^T g (1-d operands promoted)."""
    xd, yd = len(shape_of(x)), len(shape_of(y))
    if xd == 1 and yd == 1:  # inner product
        return g * y if i == 0 else g * x
    x2 = reshape(x, (1, -1)) if xd == 1 else x
    y2 = reshape(y, (-1, 1)) if yd == 1 else y
    g2 = _insert_axis(g, -2) if xd == 1 else g
    g2 = _insert_axis(g2, -1) if yd == 1 else g2
    if i == 0:
        d = g2 @ matrix_transpose(y2)
        return sum(reshape(d, (-1, shape_of(x)[0])), axis=0) if xd == 1 else d
    d = matrix_transpose(x2) @ g2
    return sum(reshape(d, (-1, shape_of(y)[0])), axis=0) if yd == 1 else d


MATMUL = Primitive("matmul", np.matmul, _matmul_vjp)


def _sample_matmul(draw):
    n, k, m = (draw.integers(1, 3) for _ in range(3))
    batch = draw.shape(max_dims=2, max_side=2)
    xs = draw.choice(((k,), (*batch, n, k), (n, k)))
    ys = draw.choice(((k,), (*batch, k, m), (k, m)))
    return (draw.array(xs, Interval()), draw.array(ys, Interval())), {}


@op(np.matmul, sample=_sample_matmul, argnums=(0, 1))
def matmul(x: ArrayLike, y: ArrayLike) -> ArrayLike:
    """``x @ y`` with numpy's rules (1-d operands, batch broadcasting).

    VJP for 2-d operands: ``(g @ y.T, x.T @ g)``.
    """
    return bind(MATMUL, (x, y))


# =======================================================================================
# Products that are matmul after moving axes: dot, vdot, inner, outer, tensordot


def _sample_dot(draw):
    n, k, m, p, q = (draw.integers(1, 3) for _ in range(5))
    shapes = draw.choice(
        (
            ((), (k,)),
            ((n, k), ()),
            ((k,), (k,)),
            ((n, k), (k,)),
            ((k,), (k, m)),
            ((n, k), (k, m)),
            ((p, n, k), (k,)),
            ((k,), (q, k, m)),
            ((p, n, k), (k, m)),
            ((n, k), (q, k, m)),
            ((p, n, k), (q, k, m)),
        )
    )
    return tuple(draw.array(s, Interval()) for s in shapes), {}


@op(np.dot, sample=_sample_dot, method="dot", argnums=(0, 1))
def dot(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """numpy's ``dot``: ``a * b`` if either is 0-d, ``a @ b`` for 1-d and 2-d operands, and
    for N-d operands the sum over the last axis of ``a`` and the second-to-last of ``b``
    (shape ``a.shape[:-1] + b.shape[:-2] + b.shape[-1:]``; no batch broadcasting).

    VJP: that of the ``multiply``, ``matmul`` or ``tensordot`` it is.
    """
    a, b = _array(a), _array(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    k = -2 if len(sb) > 1 else -1
    if sa[-1] != sb[k]:
        raise ValueError(
            f"tg.dot: shapes {sa} and {sb} not aligned: "
            f"{sa[-1]} (dim {len(sa) - 1}) != {sb[k]} (dim {len(sb) + k})"
        )
    if len(sa) == 1 or len(sb) == 1 or (len(sa) == 2 and len(sb) == 2):
        return matmul(a, b)
    return tensordot(a, b, ((len(sa) - 1,), (len(sb) - 2,)))


def _sample_vdot(draw):
    shapes = draw.choice(
        (((), ()), ((3,), (3,)), ((2, 3), (3, 2)), ((2, 3), (6,)), ((2, 2, 1), (4,)))
    )
    return tuple(draw.array(s, Interval()) for s in shapes), {}


@op(np.vdot, sample=_sample_vdot, argnums=(0, 1))
def vdot(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """The dot product of ``a`` and ``b`` flattened (same size, any shapes): a scalar.

    VJP: ``(g b, g a)``, each reshaped to its operand's shape.
    """
    a, b = _array(a), _array(b)
    if math.prod(shape_of(a)) != math.prod(shape_of(b)):
        raise ValueError(f"tg.vdot: a {shape_of(a)} and b {shape_of(b)} have different sizes")
    a = a if len(shape_of(a)) == 1 else reshape(a, (-1,))
    b = b if len(shape_of(b)) == 1 else reshape(b, (-1,))
    return matmul(a, b)


def _sample_inner(draw):
    k = draw.integers(1, 3)
    sa = (*draw.shape(max_dims=2, max_side=3), k)
    sb = (*draw.shape(max_dims=2, max_side=3), k)
    sa, sb = draw.choice(((sa, sb), ((), sb), (sa, ())))
    return (draw.array(sa, Interval()), draw.array(sb, Interval())), {}


@op(np.inner, sample=_sample_inner, argnums=(0, 1))
def inner(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """The sum over the last axes of ``a`` and ``b``: shape ``a.shape[:-1] + b.shape[:-1]``
    (``a * b`` if either is 0-d).

    VJP: that of the ``matmul`` or ``tensordot`` it is.
    """
    a, b = _array(a), _array(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError(f"tg.inner: shapes {sa} and {sb}: last dimensions differ")
    if len(sb) == 1:
        return matmul(a, b)
    if len(sa) == 1:
        return matmul(b, a)
    return tensordot(a, b, ((len(sa) - 1,), (len(sb) - 1,)))


def _sample_outer(draw):
    sa = draw.shape(max_dims=2, max_side=3)
    sb = draw.shape(max_dims=2, max_side=3)
    return (draw.array(sa, Interval()), draw.array(sb, Interval())), {}


@op(np.outer, sample=_sample_outer, argnums=(0, 1))
def outer(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """The outer product of ``a`` and ``b`` flattened: ``a.ravel()[:, None] * b.ravel()``.

    VJP: ``(g @ b.ravel(), g.T @ a.ravel())``, each reshaped to its operand's shape.
    """
    return multiply(reshape(_array(a), (-1, 1)), reshape(_array(b), (1, -1)))


def _tensordot_axes(axes: Any) -> tuple[list[int], list[int]]:
    """numpy's ``axes`` argument (an int, or a pair of ints or of sequences) as two lists."""
    try:
        iter(axes)
    except TypeError:
        return list(range(-axes, 0)), list(range(axes))
    axes_a, axes_b = axes
    return _int_list(axes_a), _int_list(axes_b)


def _int_list(axes: Any) -> list[int]:
    try:
        return [int(k) for k in axes]
    except TypeError:  # one axis
        return [int(axes)]


def _sample_tensordot(draw):
    sa = draw.shape(max_dims=3, max_side=3)
    form = draw.choice(("int", "lists", "ints"))
    if form == "ints" and not sa:
        form = "int"
    if form == "int":
        n = draw.integers(0, min(2, len(sa)))
        sb = (*sa[len(sa) - n :], *draw.shape(max_dims=2, max_side=3))
        axes = n
    else:
        n = 1 if form == "ints" else draw.integers(0, min(2, len(sa)))
        axes_a = draw.choice(list(itertools.permutations(range(len(sa)), n)))
        ndb = n + draw.integers(0, 2)
        axes_b = draw.choice(list(itertools.permutations(range(ndb), n)))
        sb = [draw.integers(1, 3) for _ in range(ndb)]
        for ka, kb in zip(axes_a, axes_b, strict=True):
            sb[kb] = sa[ka]
        if draw.choice((False, True)):  # negative axes
            axes_a = tuple(k - len(sa) for k in axes_a)
            axes_b = tuple(k - ndb for k in axes_b)
        axes = (axes_a[0], axes_b[0]) if form == "ints" else (list(axes_a), list(axes_b))
    return (draw.array(sa, Interval()), draw.array(tuple(sb), Interval())), {"axes": axes}


@op(np.tensordot, sample=_sample_tensordot, argnums=(0, 1))
def tensordot(a: ArrayLike, b: ArrayLike, axes: int | Sequence = 2) -> ArrayLike:
    """The sum over ``axes`` of ``a`` and ``b``: with an int ``N``, the last ``N`` axes of ``a``
    against the first ``N`` of ``b``; with a pair, ``axes[0]`` of ``a`` against ``axes[1]`` of
    ``b``. The result has ``a``'s other axes, then ``b``'s.

    Computed as numpy does: both operands transposed and reshaped to matrices, then one
    ``matmul`` (one BLAS call).

    VJP: that of the ``matmul``, moved back through the reshapes and transposes.
    """
    a, b = _array(a), _array(b)
    sa, sb = shape_of(a), shape_of(b)
    given_a, given_b = _tensordot_axes(axes)
    axes_a, axes_b = _in_range(given_a, len(sa)), _in_range(given_b, len(sb))
    if len(set(axes_a)) != len(axes_a) or len(set(axes_b)) != len(axes_b):
        raise ValueError(f"tg.tensordot: duplicate axes {given_a}, {given_b}")
    if len(axes_a) != len(axes_b) or any(
        sa[ka] != sb[kb] for ka, kb in zip(axes_a, axes_b, strict=True)
    ):
        raise ValueError(
            f"tg.tensordot: shape-mismatch for sum: a {sa} axes {given_a}, b {sb} axes {given_b}"
        )
    free_a = [k for k in range(len(sa)) if k not in axes_a]
    free_b = [k for k in range(len(sb)) if k not in axes_b]
    n = math.prod(sa[k] for k in axes_a)
    at = _as_matrix(a, free_a + axes_a, (math.prod(sa[k] for k in free_a), n))
    bt = _as_matrix(b, axes_b + free_b, (n, math.prod(sb[k] for k in free_b)))
    out = matmul(at, bt)
    shape = tuple(sa[k] for k in free_a) + tuple(sb[k] for k in free_b)
    return out if shape_of(out) == shape else reshape(out, shape)


def _in_range(axes: list[int], nd: int) -> list[int]:
    for k in axes:
        if not -nd <= k < nd:
            raise np.exceptions.AxisError(k, nd, "tg.tensordot")
    return [k % nd for k in axes]


def _as_matrix(x: ArrayLike, axes: list[int], shape: tuple[int, int]) -> ArrayLike:
    """``x.transpose(axes).reshape(shape)``, skipping either step when it changes nothing."""
    if axes != sorted(axes):
        x = transpose(x, tuple(axes))
    return x if shape_of(x) == shape else reshape(x, shape)


# =======================================================================================
# einsum

# numpy's labels: in the interleaved form label k < 26 is 'A' + k, else 'a' + k - 26.
_LABELS = string.ascii_uppercase + string.ascii_lowercase


@functools.lru_cache(maxsize=512)
def _einsum_labels(subscripts: str, ndims: tuple[int, ...]) -> tuple[tuple[str, ...], str]:
    """One label per axis for each operand, and the output's, ``...`` spelled out.

    The axes an ellipsis covers get fresh labels, right-aligned across operands as numpy
    broadcasts them; without ``->`` the output is numpy's implicit one: the ellipsis axes,
    then the labels that occur once, in alphabetical (ASCII) order. The forward has already
    validated ``subscripts``.
    """
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    dots = [nd - len(t) + 3 if "..." in t else 0 for t, nd in zip(terms, ndims, strict=True)]
    fresh = [c for c in _LABELS if c not in spec]
    width = max(dots, default=0)
    if width > len(fresh):
        raise ValueError(f"tg.einsum: too many axes for the 52 labels in {subscripts!r}")
    ellipsis = "".join(fresh[:width])
    labels = tuple(
        t.replace("...", ellipsis[width - d :]) for t, d in zip(terms, dots, strict=True)
    )
    if arrow:
        return labels, output.replace("...", ellipsis)
    counts = Counter(c for c in inputs if c in _LABELS)
    return labels, ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1))


@functools.lru_cache(maxsize=128)
def _diagonal_mask(labels: str, shape: tuple[int, ...]) -> np.ndarray:
    """True where the axes of each repeated label have equal indices (``labels = 'ii'``:
    the identity), as a constant bool array of ``shape``."""
    mask = np.ones(shape, bool)
    first: dict[str, int] = {}
    for p, c in enumerate(labels):
        if c not in first:
            first[c] = p
            continue
        q = first[c]
        index = np.arange(shape[p])
        mask &= np.equal(
            index.reshape([-1 if k == q else 1 for k in range(len(shape))]),
            index.reshape([-1 if k == p else 1 for k in range(len(shape))]),
        )
    mask.flags.writeable = False
    return mask


def _einsum_vjp(i, g, ans, *operands, subscripts, optimize):
    """einsum is linear in each operand: ``d <g, einsum(x_0, ..., x_n)> / dx_i`` is the
    einsum of ``g`` (the output's labels) with the other operands, to ``x_i``'s labels.

    Labels of ``x_i`` found nowhere else were summed away: the cotangent is broadcast over
    them. A label repeated in ``x_i`` read its diagonal: the cotangent is put back on the
    diagonal (zeros elsewhere). An axis of size 1 in ``x_i`` that the others broadcast is
    summed.
    """
    labels, output = _einsum_labels(subscripts, tuple(len(shape_of(x)) for x in operands))
    mine, shape = labels[i], shape_of(operands[i])
    size = dict(zip(mine, shape, strict=True))
    terms = [output] + [t for k, t in enumerate(labels) if k != i]
    args = [g] + [x for k, x in enumerate(operands) if k != i]
    unique = "".join(dict.fromkeys(mine))
    elsewhere = set("".join(terms))
    kept = "".join(c for c in unique if c in elsewhere)
    if terms == [kept]:
        h = g
    else:
        path = True if isinstance(optimize, tuple) else optimize  # a path fits the forward only
        h = einsum(",".join(terms) + "->" + kept, *args, optimize=path)
    hshape = shape_of(h)
    wide = tuple(p for p, c in enumerate(kept) if size[c] == 1 and hshape[p] != 1)
    if wide:
        h = sum(h, axis=wide, keepdims=True)
    hsize = dict(zip(kept, shape_of(h), strict=True))
    # One axis per axis of x_i: a kept label's first occurrence has its axis of h, every
    # other axis (summed away, or a repeat) has size 1 and is filled by broadcasting.
    placed = tuple(hsize[c] if c in hsize and mine.index(c) == p else 1 for p, c in enumerate(mine))
    if placed != shape_of(h):
        h = reshape(h, placed)
    if len(unique) < len(mine):
        h = h * _diagonal_mask(mine, shape)
    return h if shape_of(h) == shape else broadcast_to(h, shape)


def _einsum_forward(*operands, subscripts, optimize):
    path = list(optimize) if isinstance(optimize, tuple) else optimize
    return np.einsum(subscripts, *operands, optimize=path)


EINSUM = Primitive("einsum", _einsum_forward, _einsum_vjp)


# Three operands each (the registry differentiates a fixed set of positions): each pattern
# with the shapes of its operands, one letter per axis; a letter's size is drawn once, '1'
# is an axis of size 1 (broadcast).
_EINSUM_PATTERNS = (
    ("ij,jk,->ik", ("ij", "jk", "")),  # matrix product, a scalar operand
    ("ij,jk,kl->il", ("ij", "jk", "kl")),  # a chain of three
    ("bij,bjk,->bik", ("bij", "bjk", "")),  # batch matmul
    ("ij,jk,->ki", ("ij", "jk", "")),  # output transposed
    ("ii,j,j->", ("ii", "j", "j")),  # trace
    ("ii,i,->i", ("ii", "i", "")),  # diagonal
    ("iji,j,->i", ("iji", "j", "")),  # diagonal of non-adjacent axes
    ("iij,jk,->ik", ("iij", "jk", "")),  # diagonal inside a product
    ("i,j,->ij", ("i", "j", "")),  # outer product
    ("ij,ik,->ijk", ("ij", "ik", "")),  # batched outer product
    ("ij,k,->i", ("ij", "k", "")),  # indices summed away
    ("ij,jk,k", ("ij", "jk", "k")),  # implicit output: 'i'
    ("ba,b,c", ("ba", "b", "c")),  # implicit output: 'ac'
    ("Ab,b,->A", ("Ab", "b", "")),  # upper-case labels
    ("...ij,...jk,...->...ik", ("P1ij", "Qjk", "1")),  # ellipsis, broadcasting
    ("i...,...i,->...", ("iP1", "Qi", "")),  # ellipsis at the end and at the start
    ("...,...,...", ("P1", "Q", "")),  # implicit output '...': a broadcast product
    (",ij,j->i", ("", "ij", "j")),  # a scalar first
)


def _sample_einsum(draw):
    subscripts, templates = draw.choice(_EINSUM_PATTERNS)
    size = {"1": 1}
    for c in "".join(templates):
        if c not in size:
            size[c] = draw.integers(1, 3)
    operands = tuple(draw.array(tuple(size[c] for c in t), Interval()) for t in templates)
    return (subscripts, *operands), {"optimize": draw.choice((False, True))}


def _from_sublists(args: tuple) -> tuple[str, tuple]:
    """numpy's interleaved form ``(op0, sublist0, op1, sublist1, ..., [sublistout])`` as a
    subscripts string and the operands."""

    def term(sublist: Any) -> str:
        try:
            return "".join(_label(s) for s in sublist)
        except TypeError:
            raise TypeError(
                f"tg.einsum: expected a subscripts string or (operand, sublist) pairs, got "
                f"sublist {sublist!r}"
            ) from None

    n = len(args) // 2
    spec = ",".join(term(s) for s in args[1 : 2 * n : 2])
    if len(args) % 2:
        spec += "->" + term(args[-1])
    return spec, args[0 : 2 * n : 2]


def _label(s: Any) -> str:
    if s is Ellipsis:
        return "..."
    if isinstance(s, (int, np.integer)) and 0 <= s < len(_LABELS):
        return _LABELS[s]
    raise ValueError(f"tg.einsum: subscript {s!r} is not within the valid range [0, 52)")


@op(np.einsum, sample=_sample_einsum, argnums=(1, 2, 3))
def einsum(
    subscripts: str | ArrayLike, *operands: ArrayLike, optimize: bool | str | list = False
) -> ArrayLike:
    """Einstein summation, as ``np.einsum``: explicit (``'ij,jk->ik'``) or implicit
    (``'ij,jk'``) output, ``...`` broadcasting, repeated labels (``'ii->'`` a trace,
    ``'ii->i'`` a diagonal), scalars, and the interleaved form ``einsum(x, [0, 1], y, [1, 2])``.
    ``optimize`` is passed to numpy.

    VJP for operand ``i``: ``einsum`` of ``g`` and the other operands to ``i``'s labels.

    (Labels only operand ``i`` has were summed: the cotangent is broadcast over them; a
    label repeated in operand ``i`` read a diagonal: the cotangent goes back on it.)
    """
    if not isinstance(subscripts, str):
        subscripts, operands = _from_sublists((subscripts, *operands))
    if isinstance(optimize, list):
        optimize = tuple(tuple(p) if isinstance(p, list) else p for p in optimize)
    return bind(EINSUM, operands, {"subscripts": subscripts, "optimize": optimize})


# =======================================================================================
# kron


def _sample_kron(draw):
    sa = draw.shape(max_dims=2, max_side=3)
    sb = draw.shape(max_dims=3, max_side=2)
    return (draw.array(sa, Interval()), draw.array(sb, Interval())), {}


@op(np.kron, sample=_sample_kron, argnums=(0, 1))
def kron(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """The Kronecker product: blocks ``a[i, j] * b``; the shorter shape is padded with leading
    1s, the result's shape is the elementwise product of the two.

    Computed as numpy does: ``a`` and ``b`` with their axes interleaved (``(a0, 1, a1, 1)``
    and ``(1, b0, 1, b1)``), multiplied and reshaped.

    VJP: that of the broadcast ``multiply``: block sums of ``g`` times the other operand.
    """
    a, b = _array(a), _array(b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    wide_a = tuple(s for n in sa for s in (n, 1))
    wide_b = tuple(s for n in sb for s in (1, n))
    out = multiply(reshape(a, wide_a), reshape(b, wide_b))
    return reshape(out, tuple(x * y for x, y in zip(sa, sb, strict=True)))


# =======================================================================================
# cross


def _vectors_last(x: ArrayLike, axis: int) -> ArrayLike:
    """``x`` with its axis ``axis`` (of vector components) moved to the end."""
    nd = len(shape_of(x))
    axis %= nd
    if axis == nd - 1:
        return x
    return transpose(x, (*(k for k in range(nd) if k != axis), axis))


def _as_3_vectors(x: ArrayLike) -> ArrayLike:
    """Vectors along the last axis with 2 components padded with a zero third."""
    shape = shape_of(x)
    if shape[-1] == 3:
        return x
    return scatter_add(x, (*shape[:-1], 3), dtype_of(x), (Ellipsis, slice(0, 2)))


def _cross_vjp(i, g, ans, a, b, axisa, axisb, axisc):
    """``<g, a x b> = <a, b x g> = <b, g x a>``: da = b x g, db = g x a (vectors of 2
    components padded with a zero third; the padded cotangent is then cut back)."""
    x, axis = (a, axisa) if i == 0 else (b, axisb)
    va = _as_3_vectors(_vectors_last(a, axisa))
    vb = _as_3_vectors(_vectors_last(b, axisb))
    if shape_of(a)[axisa] == 2 and shape_of(b)[axisb] == 2:  # g holds the third components
        vg = scatter_add(g, (*shape_of(g), 3), dtype_of(g), (Ellipsis, 2))
    else:
        vg = _vectors_last(g, axisc)
    d = cross(vb, vg) if i == 0 else cross(vg, va)
    shape = shape_of(x)
    n = shape[axis]
    if n == 2:
        d = getitem(d, (Ellipsis, slice(0, 2)))
    axis %= len(shape)
    d = unbroadcast(d, (*shape[:axis], *shape[axis + 1 :], n))
    if axis == len(shape) - 1:
        return d
    nd = len(shape)
    return transpose(d, (*range(axis), nd - 1, *range(axis, nd - 1)))


def _cross_forward(a, b, axisa, axisb, axisc):
    return np.cross(a, b, axisa=axisa, axisb=axisb, axisc=axisc)


CROSS = Primitive("cross", _cross_forward, _cross_vjp)


def _sample_cross(draw):
    sa, sb = draw.broadcastable_shapes(2, max_dims=2)
    form = draw.choice(("last", "axis", "each"))
    if form == "last":
        axisa = axisb = axisc = -1
        kwargs = {}
    elif form == "axis":
        m = min(len(sa), len(sb)) + 1
        axisa = axisb = axisc = draw.integers(-m, m - 1)
        kwargs = {"axis": axisa}
    else:
        nc = max(len(sa), len(sb)) + 1
        axisa = draw.integers(-len(sa) - 1, len(sa))
        axisb = draw.integers(-len(sb) - 1, len(sb))
        axisc = draw.integers(-nc, nc - 1)
        kwargs = {"axisa": axisa, "axisb": axisb, "axisc": axisc}
    sa, sb = list(sa), list(sb)
    sa.insert(axisa % (len(sa) + 1), 3)
    sb.insert(axisb % (len(sb) + 1), 3)
    return (draw.array(sa, Interval()), draw.array(sb, Interval())), kwargs


@op(np.cross, sample=_sample_cross, argnums=(0, 1))
def cross(
    a: ArrayLike,
    b: ArrayLike,
    axisa: int = -1,
    axisb: int = -1,
    axisc: int = -1,
    axis: int | None = None,
) -> ArrayLike:
    """The cross product of the vectors along ``axisa`` of ``a`` and ``axisb`` of ``b``
    (3 components, or 2 taken as a zero third; numpy deprecates 2), broadcasting the other
    axes; the result's vectors lie along ``axisc``. ``axis`` sets all three.

    VJP: ``(b x g, g x a)``.
    """
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _array(a), _array(b)
    return bind(CROSS, (a, b), {"axisa": int(axisa), "axisb": int(axisb), "axisc": int(axisc)})
