"""Convolutions and pooling over images ``(N, C, H, W)`` and sequences ``(N, C, L)``, in
PyTorch's layout and meaning: ``conv2d``, ``conv1d``, ``max_pool2d``, ``avg_pool2d``.

The convolution is one primitive built on ``numpy.lib.stride_tricks.sliding_window_view``
and matrix products. The padded input is copied once into ``kw`` column-shifted planes,
laid out so that the taps (kernel row, kernel column, channel) of output row ``i`` over
the ``N Wo`` pixels of that row in every image are one block of consecutive rows, a view:
the output is one product ``W taps_i`` per output row, batched ``np.matmul`` over (group,
output row), with ``W (groups, O/groups, kh kw C/groups)`` (the kernel rows that would
only read zero padding rows are left out of the border rows' products). When a kernel
row has few taps (a CNN's first layer) each image's windows are copied instead (im2col)
and multiplied image by image, straight into the ``(N, O, Ho, Wo)`` layout. Its two VJPs
are products of the same sizes:

- for the weight, a correlation of the input with the cotangent: ``dW = sum_i g_i
  taps_i^T`` (the forward's taps, a product per output row, summed);
- for the input, a transposed (strided, dilated) convolution of the cotangent with the
  kernel, computed as a correlation of the (zero-padded) cotangent with the flipped
  kernel: one product per input row over the cotangent's rows (a view, like the taps),
  reducing over kernel rows and output channels, then ``kw`` shifted adds of the kernel
  columns onto the image.

Each VJP is itself a primitive (:func:`conv2d_input_grad`, :func:`conv2d_weight_grad`)
whose own VJPs are the other two of the three, so derivatives of every order are products
of the same kind::

    y  = conv2d(x, w)               dx = input_grad(g, w)        dw = weight_grad(x, g)
    input_grad(g, w):     d/dg = conv2d(gg, w)          d/dw = weight_grad(gg, g)
    weight_grad(x, g):    d/dx = input_grad(g, gg)      d/dg = conv2d(x, gg)

(all from one identity, ``<gg, input_grad(g, w)> = <conv2d(gg, w), g> = <w,
weight_grad(gg, g)>``). Pooling reads one strided view of the padded input per kernel
offset: ``max_pool2d`` passes its cotangent to a recorded argmax of each window
(PyTorch's tie rule: the first maximum in row-major order), ``avg_pool2d`` spreads it
evenly over each window.

Parameters follow PyTorch: ``stride`` and ``dilation`` are an int or a pair; a convolution's
``padding`` is an int, a pair (the same on both sides of each axis), ``"valid"`` (none),
``"same"`` (stride 1 only: ``dilation * (k - 1)`` in total, the odd one on the bottom/right,
as PyTorch pads) or a pair of pairs ``((top, bottom), (left, right))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tapegrad.ops.axes import shape_of
from tapegrad.ops.core import ArrayLike, reshape, sum
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Primitive, Traced, bind

__all__ = [
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "max_pool2d",
]

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]


# =======================================================================================
# Parameters: PyTorch's forms to one normal form, ((top, bottom), (left, right)) paddings


def _pair(name: str, what: str, value: Any, least: int) -> Pair:
    """``value`` (an int or two ints) as a pair of ints, each at least ``least``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ValueError(f"tg.{name}: {what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < least:
        raise ValueError(f"tg.{name}: {what} must be >= {least}, got {value!r}")
    return pair


def _conv_padding(name: str, padding: Any, kernel: Pair, dilation: Pair, stride: Pair) -> Padding:
    """A convolution's ``padding`` as ``((top, bottom), (left, right))``."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"tg.{name}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}"
                )
            # PyTorch: d (k - 1) in total, half of it before, the odd one after
            total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            return tuple((t // 2, t - t // 2) for t in total)  # type: ignore[return-value]
        raise ValueError(
            f"tg.{name}: padding must be 'valid' or 'same' as a string, got {padding!r}"
        )
    if not isinstance(padding, (int, np.integer)):
        parts = tuple(padding)
        if len(parts) == 2 and all(not isinstance(p, (int, np.integer)) for p in parts):
            pads = tuple(_pair(name, "each side's padding", p, 0) for p in parts)
            return pads  # type: ignore[return-value]
    ph, pw = _pair(name, "padding", padding, 0)
    return ((ph, ph), (pw, pw))


def _out_size(size: int, k: int, stride: int, pads: Pair, dilation: int) -> int:
    """PyTorch's output length: ``floor((size + pads - d (k - 1) - 1) / stride) + 1``."""
    return (size + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1


def _output_hw(x_shape, kernel, stride: Pair, padding: Padding, dilation: Pair) -> Pair:
    """``(Ho, Wo)`` of windows ``kernel`` over the last two axes of ``x_shape``."""
    h, w = x_shape[-2:]
    return (
        _out_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        _out_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    )


def _conv_params(
    name: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> dict:
    """Check the shapes of a convolution and return its record parameters."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(
            f"tg.{name}: expected x (N, C, H, W) and w (O, C // groups, kh, kw), got x "
            f"{x_shape} and w {w_shape}"
        )
    groups = int(groups)
    c, o = x_shape[1], w_shape[0]
    if groups < 1 or c % groups or o % groups or w_shape[1] * groups != c:
        raise ValueError(
            f"tg.{name}: x {x_shape} has {c} channels and w {w_shape} needs "
            f"{w_shape[1]} * groups = {w_shape[1] * groups} with {o} output channels "
            f"divisible by groups = {groups}"
        )
    stride = _pair(name, "stride", stride, 1)
    dilation = _pair(name, "dilation", dilation, 1)
    kernel = (w_shape[2], w_shape[3])
    if min(kernel) < 1:
        raise ValueError(f"tg.{name}: empty kernel, w {w_shape}")
    pads = _conv_padding(name, padding, kernel, dilation, stride)
    if min(_output_hw(x_shape, kernel, stride, pads, dilation)) < 1:
        raise ValueError(
            f"tg.{name}: the kernel {kernel} (dilation {dilation}) is larger than the padded "
            f"input: x {x_shape}, padding {pads}"
        )
    return {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}


# =======================================================================================
# Padding, taps and their transpose (plain numpy, shared by the forwards)


def _pad(x: np.ndarray, pads: Padding, value: float = 0) -> np.ndarray:
    """``x (N, C, H, W)`` with ``value`` around ``H`` and ``W``."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def _crop(xp: np.ndarray, pads: Padding, size: Pair) -> np.ndarray:
    """The inverse of :func:`_pad`: the ``size`` pixels inside the padding."""
    (top, _), (left, _) = pads
    return xp[..., top : top + size[0], left : left + size[1]]


# The matrices of a convolution. A *tap* is one (kernel row, kernel column, channel)
# triple of a group, ``K = kh * kw * C/groups`` of them, in that order. The taps of every
# output pixel are gathered in one of two layouts, both multiplied by the weights as
# ``W (groups, O/groups, K)`` in batched ``np.matmul`` calls (no sum over kernel rows):
#
# - *rows* (the default): ``(groups, Ho, K, N Wo)``, the taps of output row ``i`` for the
#   ``N Wo`` pixels of that row in every image. The padded input is copied once into
#   ``kw`` column-shifted planes laid out ``(groups, Hp, kw, C/groups, N, Wo)``: input row
#   ``r`` holds ``kw C/groups`` consecutive matrix rows of ``N Wo`` floats, so the taps of
#   output row ``i`` (input rows ``i .. i + kh - 1``) are ``K`` consecutive matrix rows, a
#   view (a kernel dilated vertically has them copied). One product per output row with
#   the whole kernel (``K`` = 400 for a 16-channel 5x5 layer), batched over runs of rows
#   (:func:`_row_runs`: the border rows leave out the kernel rows over the padding).
# - *packed* (few taps per kernel row, ``kw C/groups < _PACK_BELOW``: a CNN's first layer):
#   ``(N, groups, K, Ho, Wo)``, a copy of each image's windows (im2col), one product per
#   image. Its output is already ``(N, O, Ho Wo)`` and the cotangent needs no transposing
#   copy; with few channels that saves more than the bigger copy costs.

_PACK_BELOW = 32


def _taps(x: np.ndarray, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair, groups: int):
    """The windows of the padded ``x (N, C, H, W)``: ``(groups, Ho, K, N Wo)`` (a view of
    ``kw`` column-shifted copies of the input), or with few taps ``(N, groups, K, Ho, Wo)``
    (packed, a copy)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = _pad(x, padding)
    n, c, hp, _ = xp.shape
    cg = c // groups
    ho, wo = _output_hw(xp.shape, kernel, stride, ((0, 0), (0, 0)), dilation)
    if kw * cg < _PACK_BELOW:
        win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw].reshape(n, groups, cg, ho, wo, kh, kw)
        packed = np.empty((n, groups, kh, kw, cg, ho, wo), xp.dtype)
        np.copyto(packed, win.transpose(0, 1, 5, 6, 2, 3, 4))
        return packed.reshape(n, groups, kh * kw * cg, ho, wo)
    across = sliding_window_view(xp, (kw - 1) * dw + 1, axis=3)[..., ::sw, ::dw]
    across = across.reshape(n, groups, cg, hp, wo, kw).transpose(1, 3, 5, 2, 0, 4)
    shifted = np.empty(across.shape, xp.dtype)  # [g, r, b, c, n, j] = xp[n, g c, r, d b + s j]
    np.copyto(shifted, across)
    down = sliding_window_view(shifted, (kh - 1) * dh + 1, axis=1)[:, ::sh, ..., ::dh]
    down = down.transpose(0, 1, 6, 2, 3, 4, 5)  # (groups, Ho, kh, kw, cg, N, Wo)
    return down.reshape(groups, ho, kh * kw * cg, n * wo)  # a view when dh == 1


def _packed(taps: np.ndarray) -> bool:
    """Whether ``taps`` is the packed ``(N, groups, K, Ho, Wo)``, not the rows."""
    return taps.ndim == 5


def _weight_matrix(w: np.ndarray, groups: int) -> np.ndarray:
    """``w (O, C/groups, kh, kw)`` as ``(groups, 1, O/groups, K)``, taps in order."""
    o, cg, kh, kw = w.shape
    w = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 1, 3, 4, 2)
    return w.reshape(groups, 1, o // groups, kh * kw * cg)


def _output_rows(g: np.ndarray, groups: int) -> np.ndarray:
    """An output (or its cotangent) ``(N, O, Ho, Wo)`` as ``(groups, Ho, O/groups, N Wo)``:
    the layout of the products with the rows."""
    n, o, ho, wo = g.shape
    rows = np.empty((groups, ho, o // groups, n, wo), g.dtype)
    np.copyto(rows, g.reshape(n, groups, o // groups, ho, wo).transpose(1, 3, 2, 0, 4))
    return rows.reshape(groups, ho, o // groups, n * wo)


def _inside(first: int, step: int, count: int, size: int) -> Pair:
    """``(a0, a1)``: the ``a`` in ``range(count)`` with ``0 <= first + step a < size``."""
    a0 = max(0, -(first // step))
    return a0, max(a0, min(count, -((first - size) // step)))


def _row_runs(x_shape, kernel: Pair, stride: Pair, padding: Padding, dilation: Pair) -> list:
    """The output rows as runs ``(i0, i1, a0, a1)``: rows ``i0 <= i < i1`` read the image
    with kernel rows ``a0 <= a < a1`` only, the others read zero padding. The products
    with the rows skip those taps: 6 of the 70 (output row, kernel row) pairs of a 5x5
    kernel padded by 2 on 14 rows, as much of the products' work. (So a zero row of
    padding never meets the weights, as in PyTorch, where an infinite weight gives no
    ``0 * inf = NaN`` in the padding; the padding columns still do meet them.)"""
    (top, _), _ = padding
    ho, _ = _output_hw(x_shape, kernel, stride, padding, dilation)
    runs: list[list[int]] = []
    for i in range(ho):
        a0, a1 = _inside(stride[0] * i - top, dilation[0], kernel[0], x_shape[2])
        if runs and runs[-1][2:] == [a0, a1]:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, a0, a1])
    return [tuple(run) for run in runs]


def _apply(w: np.ndarray, taps: np.ndarray, groups: int, runs: list) -> np.ndarray:
    """``W taps``: the convolution as ``(N, O, Ho, Wo)`` (a fresh array) or, from the
    rows, ``(groups, Ho, O/groups, N Wo)``, one product per run of :func:`_row_runs`."""
    wm = _weight_matrix(w, groups)
    if _packed(taps):
        n, _, k, ho, wo = taps.shape
        y = np.matmul(wm[:, 0], taps.reshape(n, groups, k, ho * wo))
        return y.reshape(n, w.shape[0], ho, wo)
    _, ho, k, nwo = taps.shape
    per_row = k // w.shape[2]  # taps of one kernel row
    y = np.empty((groups, ho, wm.shape[2], nwo), np.result_type(wm, taps))
    for i0, i1, a0, a1 in runs:
        ks = slice(a0 * per_row, a1 * per_row)
        if a0 < a1:
            np.matmul(wm[..., ks], taps[:, i0:i1, ks], out=y[:, i0:i1])
        else:
            y[:, i0:i1] = 0
    return y


def _weight_grad_from_taps(taps: np.ndarray, g: np.ndarray, w_shape, groups: int, runs: list):
    """``dW = sum g taps^T`` over the products (output rows, or images), as ``(O, C/groups,
    kh, kw)``; from the rows, the runs of :func:`_row_runs` give the kernel rows of each."""
    o, cg, kh, kw = w_shape
    g = np.asarray(g)
    if _packed(taps):
        n, _, k, ho, wo = taps.shape
        gt = g.reshape(n, groups, o // groups, ho * wo).transpose(0, 1, 3, 2)
        dw = np.matmul(taps.reshape(n, groups, k, ho * wo), gt).sum(axis=0)
    else:
        k = taps.shape[2]
        gt = _output_rows(g, groups).transpose(0, 1, 3, 2)  # (groups, Ho, N Wo, O/groups)
        dw = np.zeros((groups, k, o // groups), np.result_type(taps, gt))
        for i0, i1, a0, a1 in runs:
            ks = slice(a0 * (k // kh), a1 * (k // kh))
            if a0 < a1:
                dw[:, ks] += np.matmul(taps[:, i0:i1, ks], gt[:, i0:i1]).sum(axis=1)
    dw = dw.reshape(groups, kh, kw, cg, o // groups).transpose(0, 4, 3, 1, 2)
    return dw.reshape(w_shape)


def _input_grad(g: np.ndarray, w: np.ndarray, x_shape, stride, padding, dilation, groups):
    """The transposed convolution as a correlation of the cotangent with the flipped
    kernel, by input row: ``dx`` row ``y`` meets the cotangent's rows ``(y + top - d a) /
    s``, which are ``kh O/groups`` consecutive matrix rows of the cotangent laid out
    ``(groups, rows, O/groups, Wo, N)`` (for a stride ``s > 1`` with ``s - 1`` zero rows
    between two rows: the products then spend ``s`` times the floats). One product per
    input row reduces over the kernel rows (those meeting a row of ``g``) and output
    channels, ``(kw C/groups, kh O/groups) @ (kh O/groups, Wo N)``; the ``kw`` kernel
    columns are then added onto the image, shifted (``kw`` vectorised adds, each of the
    columns that land inside the image). The images are the last axis here (unlike the
    taps): the shifted adds are then runs of ``Wo N`` floats, not of ``Wo``, and that
    saves more than the final transposing copy costs."""
    o, cg, kh, kw = w.shape
    n, _, h, wd = x_shape
    og = o // groups
    (top, _), (left, _) = padding
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = g.shape[2:]
    # gq[:, s i] = g[:, :, i]: input row y meets gq[top + y - d a] = gq[first + d a'] with
    # first = top + y - d (kh - 1), a' = kh - 1 - a (the flipped kernel)
    size = sh * (ho - 1) + 1
    gq = (np.zeros if sh > 1 else np.empty)((groups, size, og, wo, n), g.dtype)
    gq[:, ::sh] = g.reshape(n, groups, og, ho, wo).transpose(1, 3, 2, 4, 0)
    wt = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1].transpose(0, 4, 2, 3, 1)
    wt = np.ascontiguousarray(wt.reshape(groups, kw * cg, kh * og))  # [g, (b, c), (a', o)]
    out = np.zeros((groups, h, cg, wd, n), np.result_type(wt, gq))
    # the output columns [j0, j1) that kernel column b adds inside the image
    inside = [_inside(b * dw - left, sw, wo, wd) for b in range(kw)]
    # Row by row into one small buffer (L2-sized for a CNN's layers), added while hot
    z = np.empty((groups, kw * cg, wo * n), out.dtype)
    columns = z.reshape(groups, kw, cg, wo, n)
    for y in range(h):
        first = top + y - dh * (kh - 1)
        a0, a1 = _inside(first, dh, kh, size)
        if a0 == a1:
            continue
        start = first + dh * a0
        rows = gq[:, start : start + dh * (a1 - a0 - 1) + 1 : dh]
        rows = rows.reshape(groups, (a1 - a0) * og, wo * n)  # a view if d = 1
        np.matmul(wt[..., a0 * og : a1 * og], rows, out=z)
        for b, (j0, j1) in enumerate(inside):
            if j0 < j1:
                x0 = b * dw + j0 * sw - left
                out[:, y, :, x0 : x0 + sw * (j1 - j0 - 1) + 1 : sw] += columns[:, b, :, j0:j1]
    out = out.transpose(4, 0, 2, 1, 3)  # (N, groups, C/groups, H, W)
    return np.ascontiguousarray(out).reshape(x_shape)


# =======================================================================================
# conv2d and the two primitives of its VJP


def _conv2d_forward(x, w, b=None, *, stride, padding, dilation, groups):
    x, w = np.asarray(x), np.asarray(w)
    o, _, kh, kw = w.shape
    n = x.shape[0]
    taps = _taps(x, (kh, kw), stride, padding, dilation, groups)
    y = _apply(w, taps, groups, _row_runs(x.shape, (kh, kw), stride, padding, dilation))
    if _packed(taps):  # already (N, O, Ho, Wo), a fresh array
        if b is None:
            return y, taps
        b = np.asarray(b).reshape(o, 1, 1)
        if np.result_type(y, b) == y.dtype:
            y += b
            return y, taps
        return y + b, taps
    ho, nwo = y.shape[1], y.shape[3]
    y = y.reshape(groups, ho, o // groups, n, nwo // n).transpose(3, 0, 2, 1, 4)
    y = y.reshape(n, o, ho, nwo // n)  # (N, O, Ho, Wo), a view (groups joined)
    if b is None:
        return np.ascontiguousarray(y), taps
    b = np.asarray(b)
    out = np.empty(y.shape, np.result_type(y, b))
    np.add(y, b.reshape(o, 1, 1), out=out)  # the bias added while copying to (N, O, Ho, Wo)
    return out, taps


def _conv2d_vjp(i, g, ans, x, w, b=None, *, stride, padding, dilation, groups, saved=None):
    """d/dx: the transposed convolution ``conv2d_input_grad(g, w)``; d/dw: the correlation
    ``conv2d_weight_grad(x, g)``; d/db: ``sum(g)`` over images and pixels.

    The forward keeps its taps (``saved``, present only when ``x`` and ``w`` are not
    traced by an outer transform): with a concrete cotangent ``dW`` is then a product,
    the same floats :func:`conv2d_weight_grad` computes from ``x``.
    """
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if i == 0:
        return bind(CONV2D_INPUT_GRAD, (g, w), {"x_shape": shape_of(x), **params})
    if i == 1:
        if saved is not None and type(g) is not Traced:
            runs = _row_runs(shape_of(x), shape_of(w)[2:], stride, padding, dilation)
            return _weight_grad_from_taps(saved, g, shape_of(w), groups, runs)
        return bind(CONV2D_WEIGHT_GRAD, (x, g), {"w_shape": shape_of(w), **params})
    return sum(g, axis=(0, 2, 3))


CONV2D = Primitive("conv2d", _conv2d_forward, _conv2d_vjp, saves=True)


def _conv2d_input_grad_forward(g, w, *, x_shape, stride, padding, dilation, groups):
    g, w = np.asarray(g), np.asarray(w)
    return _input_grad(g, w, x_shape, stride, padding, dilation, groups)


def _conv2d_input_grad_vjp(i, gg, ans, g, w, *, x_shape, stride, padding, dilation, groups):
    """Linear in ``g`` with transpose ``conv2d(gg, w)``; d/dw: ``conv2d_weight_grad(gg, g)``."""
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if i == 0:
        return bind(CONV2D, (gg, w), params)
    return bind(CONV2D_WEIGHT_GRAD, (gg, g), {"w_shape": shape_of(w), **params})


CONV2D_INPUT_GRAD = Primitive(
    "conv2d_input_grad", _conv2d_input_grad_forward, _conv2d_input_grad_vjp
)


def _conv2d_weight_grad_forward(x, g, *, w_shape, stride, padding, dilation, groups):
    x = np.asarray(x)
    kernel = tuple(w_shape[2:])
    taps = _taps(x, kernel, stride, padding, dilation, groups)
    runs = _row_runs(x.shape, kernel, stride, padding, dilation)
    return _weight_grad_from_taps(taps, g, w_shape, groups, runs)


def _conv2d_weight_grad_vjp(i, gg, ans, x, g, *, w_shape, stride, padding, dilation, groups):
    """d/dx: ``conv2d_input_grad(g, gg)``; linear in ``g`` with transpose ``conv2d(x, gg)``."""
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if i == 0:
        return bind(CONV2D_INPUT_GRAD, (g, gg), {"x_shape": shape_of(x), **params})
    return bind(CONV2D, (x, gg), params)


CONV2D_WEIGHT_GRAD = Primitive(
    "conv2d_weight_grad", _conv2d_weight_grad_forward, _conv2d_weight_grad_vjp
)


def _draw_conv(draw) -> tuple[tuple, tuple, dict]:
    """``(x_shape, w_shape, kwargs)`` of a small convolution: every padding form, strides,
    dilations and groups."""
    groups = draw.choice((1, 1, 2, 3))
    c_per = 1 if groups > 1 else draw.integers(1, 3)
    o_per = draw.integers(1, 2) if groups < 3 else 1
    kh, kw = draw.integers(1, 3), draw.integers(1, 3)
    stride = draw.choice((1, 1, 2, (1, 2), (2, 1)))
    dilation = draw.choice((1, 1, 2, (2, 1)))
    paddings = [0, 1, (1, 0), "valid", ((0, 1), (2, 0))]
    if stride == 1:
        paddings.append("same")
    padding = draw.choice(paddings)
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pads = _conv_padding("conv2d", padding, (kh, kw), d, (1, 1))
    lows = [
        max(1, d[k] * (size - 1) + 1 - pads[k][0] - pads[k][1]) for k, size in enumerate((kh, kw))
    ]
    shape = (
        draw.integers(1, 2),
        groups * c_per,
        draw.integers(lows[0], 5),
        draw.integers(lows[1], 5),
    )
    w_shape = (groups * o_per, c_per, kh, kw)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return shape, w_shape, kwargs


def _out_shape(x_shape, w_shape, kwargs) -> tuple[int, ...]:
    p = _conv_params("conv2d", x_shape, w_shape, **kwargs)
    hw = _output_hw(x_shape, w_shape[2:], p["stride"], p["padding"], p["dilation"])
    return (x_shape[0], w_shape[0], *hw)


def _sample_conv2d(draw):
    x_shape, w_shape, kwargs = _draw_conv(draw)
    args = (
        draw.array(x_shape, Interval()),
        draw.array(w_shape, Interval()),
        draw.array((w_shape[0],), Interval()),
    )
    return args, kwargs


@op(sample=_sample_conv2d, argnums=(0, 1, 2))
def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[Any] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ArrayLike:
    """2-D cross-correlation, PyTorch's ``conv2d``: ``x (N, C, H, W)``, ``w (O, C // groups,
    kh, kw)``, ``b (O,)`` or None; returns ``(N, O, Ho, Wo)`` in the promoted dtype.

    ``y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] xp[n, g c, s i + d p, s j + d q]``
    with ``xp`` the zero-padded input and ``g c`` the channel ``c`` of ``o``'s group, ``Ho =
    floor((H + pads - d (kh - 1) - 1) / s) + 1``. ``stride``/``dilation``: an int or a pair;
    ``padding``: an int, a pair, ``"valid"``, ``"same"`` (stride 1; the odd pixel of padding
    on the bottom/right, as PyTorch) or ``((top, bottom), (left, right))``.

    VJP: ``dx`` the transposed convolution of ``g`` with the kernel (``conv2d_input_grad``),
    ``dw`` the correlation of ``x`` with ``g`` (``conv2d_weight_grad``), ``db = sum(g)``
    over images and pixels; each a matrix product over the windows.
    """
    params = _conv_params("conv2d", shape_of(x), shape_of(w), stride, padding, dilation, groups)
    if b is None:
        return bind(CONV2D, (x, w), params)
    if shape_of(b) != (shape_of(w)[0],):
        raise ValueError(f"tg.conv2d: expected b of shape ({shape_of(w)[0]},), got {shape_of(b)}")
    return bind(CONV2D, (x, w, b), params)


def _sample_input_grad(draw):
    x_shape, w_shape, kwargs = _draw_conv(draw)
    g = draw.array(_out_shape(x_shape, w_shape, kwargs), Interval())
    return (g, draw.array(w_shape, Interval()), x_shape), kwargs


@op(sample=_sample_input_grad, argnums=(0, 1))
def conv2d_input_grad(
    g: ArrayLike,
    w: ArrayLike,
    x_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[Any] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ArrayLike:
    """The cotangent of ``conv2d``'s input (PyTorch's ``torch.nn.grad.conv2d_input``): the
    transposed convolution of ``g (N, O, Ho, Wo)`` with ``w``, of shape ``x_shape``.

    ``dx[n, g c, s i + d p - top, s j + d q - left] += sum_o w[o, c, p, q] g[n, o, i, j]``:
    the convolution of ``g``, dilated by the stride, with the flipped kernel. Computed so:
    one product per input row over the cotangent's rows (kernel rows and output channels
    reduced in the product), then ``kw`` shifted adds of the kernel columns.

    VJP: linear in ``g``, its transpose is ``conv2d(gg, w)``; d/dw is
    ``conv2d_weight_grad(gg, g)``.
    """
    x_shape = tuple(int(s) for s in x_shape)
    params = _conv_params(
        "conv2d_input_grad", x_shape, shape_of(w), stride, padding, dilation, groups
    )
    _check_cotangent("conv2d_input_grad", shape_of(g), x_shape, shape_of(w), params)
    return bind(CONV2D_INPUT_GRAD, (g, w), {"x_shape": x_shape, **params})


def _sample_weight_grad(draw):
    x_shape, w_shape, kwargs = _draw_conv(draw)
    g = draw.array(_out_shape(x_shape, w_shape, kwargs), Interval())
    return (draw.array(x_shape, Interval()), g, w_shape), kwargs


@op(sample=_sample_weight_grad, argnums=(0, 1))
def conv2d_weight_grad(
    x: ArrayLike,
    g: ArrayLike,
    w_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[Any] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ArrayLike:
    """The cotangent of ``conv2d``'s weight (PyTorch's ``torch.nn.grad.conv2d_weight``): the
    correlation of ``x (N, C, H, W)`` with ``g (N, O, Ho, Wo)``, of shape ``w_shape``.

    ``dw[o, c, p, q] = sum_{n, i, j} g[n, o, i, j] xp[n, g c, s i + d p, s j + d q]``,
    the products ``g_i taps_i^T`` of each output row (or image) and group, summed.

    VJP: d/dx is ``conv2d_input_grad(g, gg)``; linear in ``g``, its transpose is
    ``conv2d(x, gg)``.
    """
    w_shape = tuple(int(s) for s in w_shape)
    params = _conv_params(
        "conv2d_weight_grad", shape_of(x), w_shape, stride, padding, dilation, groups
    )
    _check_cotangent("conv2d_weight_grad", shape_of(g), shape_of(x), w_shape, params)
    return bind(CONV2D_WEIGHT_GRAD, (x, g), {"w_shape": w_shape, **params})


def _check_cotangent(name: str, g_shape, x_shape, w_shape, params: dict) -> None:
    hw = _output_hw(x_shape, w_shape[2:], params["stride"], params["padding"], params["dilation"])
    want = (x_shape[0], w_shape[0], *hw)
    if tuple(g_shape) != want:
        raise ValueError(
            f"tg.{name}: expected g of shape {want} (the output of x {tuple(x_shape)} and w "
            f"{tuple(w_shape)}), got {tuple(g_shape)}"
        )


# =======================================================================================
# conv1d: conv2d on images one pixel high


def _sample_conv1d(draw):
    x_shape, w_shape, kwargs = _draw_conv(draw)
    kwargs = {
        "stride": draw.choice((1, 2)),
        "padding": draw.choice((0, 1, "valid", "same")),
        "dilation": draw.choice((1, 2)),
        "groups": kwargs["groups"],
    }
    if kwargs["padding"] == "same":
        kwargs["stride"] = 1
    k = w_shape[3]
    low = max(1, kwargs["dilation"] * (k - 1) + 1 - 2 * (kwargs["padding"] == 1))
    x_shape = (x_shape[0], x_shape[1], draw.integers(low, 6))
    w_shape = (w_shape[0], w_shape[1], k)
    args = (
        draw.array(x_shape, Interval()),
        draw.array(w_shape, Interval()),
        draw.array((w_shape[0],), Interval()),
    )
    return args, kwargs


@op(sample=_sample_conv1d, argnums=(0, 1, 2))
def conv1d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: int = 1,
    padding: int | str | Sequence[int] = 0,
    dilation: int = 1,
    groups: int = 1,
) -> ArrayLike:
    """1-D cross-correlation, PyTorch's ``conv1d``: ``x (N, C, L)``, ``w (O, C // groups, k)``,
    ``b (O,)`` or None; returns ``(N, O, Lo)``. ``padding``: an int, ``"valid"``, ``"same"``
    or ``(left, right)``.

    ``conv2d`` on ``(N, C, 1, L)`` with a ``(O, C // groups, 1, k)`` kernel; VJP: conv2d's.
    """
    x_shape, w_shape = shape_of(x), shape_of(w)
    if len(x_shape) != 3 or len(w_shape) != 3:
        raise ValueError(
            f"tg.conv1d: expected x (N, C, L) and w (O, C // groups, k), got x {x_shape} "
            f"and w {w_shape}"
        )
    if isinstance(padding, str):
        pads = padding
    elif isinstance(padding, (int, np.integer)):
        pads = ((0, 0), (int(padding), int(padding)))
    else:
        pads = ((0, 0), _pair("conv1d", "padding", padding, 0))
    y = conv2d(
        reshape(x, (x_shape[0], x_shape[1], 1, x_shape[2])),
        reshape(w, (w_shape[0], w_shape[1], 1, w_shape[2])),
        b,
        stride=(1, _pair("conv1d", "stride", stride, 1)[0]),
        padding=pads,
        dilation=(1, _pair("conv1d", "dilation", dilation, 1)[0]),
        groups=groups,
    )
    n, o, _, lo = shape_of(y)
    return reshape(y, (n, o, lo))


# =======================================================================================
# Pooling: windows of the padded input, PyTorch's floor mode


def _pool_params(name: str, x_shape, kernel_size, stride, padding) -> dict:
    if len(x_shape) != 4:
        raise ValueError(f"tg.{name}: expected x (N, C, H, W), got {x_shape}")
    kernel = _pair(name, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _pair(name, "stride", stride, 1)
    ph, pw = _pair(name, "padding", padding, 0)
    if 2 * ph > kernel[0] or 2 * pw > kernel[1]:
        raise ValueError(
            f"tg.{name}: padding ({ph}, {pw}) must be at most half of kernel_size {kernel} "
            "(PyTorch's rule)"
        )
    pads = ((ph, ph), (pw, pw))
    if min(_output_hw(x_shape, kernel, stride, pads, (1, 1))) < 1:
        raise ValueError(f"tg.{name}: kernel {kernel} larger than the padded input {x_shape}")
    return {"kernel": kernel, "stride": stride, "padding": pads}


def _sample_pool(interval: Interval):
    def sample(draw):
        kernel = draw.choice((1, 2, 3, (2, 3), (3, 1)))
        kh, kw = _pair("", "", kernel, 1)
        stride = draw.choice((None, 1, 2, (1, 2)))
        ph, pw = draw.integers(0, kh // 2), draw.integers(0, kw // 2)
        padding = ph if ph == pw else (ph, pw)
        shape = (
            draw.integers(1, 2),
            draw.integers(1, 2),
            draw.integers(max(1, kh - 2 * ph), 6),
            draw.integers(max(1, kw - 2 * pw), 6),
        )
        kwargs = {"stride": stride, "padding": padding}
        return (draw.array(shape, interval), kernel), kwargs

    return sample


def _offsets(kernel: Pair, stride: Pair, size: Pair) -> list[tuple]:
    """For each kernel offset ``(a, b)``, row-major: the index of the pixels it reads from
    the padded input, ``[..., a + s i, b + s j]`` over the ``size = (Ho, Wo)`` outputs."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, size
    return [
        (Ellipsis, slice(a, a + sh * (ho - 1) + 1, sh), slice(b, b + sw * (wo - 1) + 1, sw))
        for a in range(kh)
        for b in range(kw)
    ]


def _add_windows(out: np.ndarray, pieces, kernel: Pair, stride: Pair, size: Pair) -> None:
    """``out[pixels of kernel offset k] += pieces(k)`` for every offset ``k``: the transpose
    of reading the windows, one vectorised add per kernel offset. ``out (N, C, Hp, Wp)``,
    ``pieces(k) (N, C, Ho, Wo)``."""
    for k, index in enumerate(_offsets(kernel, stride, size)):
        out[index] += pieces(k)


def _pool_views(x, kernel, stride, padding, value=0) -> list[np.ndarray]:
    """The ``(N, C, Ho, Wo)`` strided views of the padded ``x``, one per kernel offset."""
    x = np.asarray(x)
    size = _output_hw(x.shape, kernel, stride, padding, (1, 1))
    xp = _pad(x, padding, value)
    return [xp[index] for index in _offsets(kernel, stride, size)]


def _lowest(dtype: np.dtype) -> Any:
    """What max pooling pads with: ``-inf``, or the smallest integer."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _max_pool2d_forward(x, *, kernel, stride, padding):
    x = np.asarray(x)
    views = _pool_views(x, kernel, stride, padding, _lowest(x.dtype))
    out = views[0].copy()
    for view in views[1:]:
        np.maximum(out, view, out=out)  # NaN propagates, as in PyTorch
    return out


def _max_pool2d_vjp(i, g, ans, x, *, kernel, stride, padding):
    """d max/dx is 1 at the first maximum of each window (row-major), 0 elsewhere: ``g``
    scattered to a recorded argmax (windows that overlap add up)."""
    params = {"kernel": kernel, "stride": stride, "padding": padding}
    index = bind(MAX_POOL2D_ARGMAX, (x, ans), params)
    return bind(MAX_POOL2D_SCATTER, (g, index), {"x_shape": shape_of(x), **params})


MAX_POOL2D = Primitive("max_pool2d", _max_pool2d_forward, _max_pool2d_vjp)


def _argmax_forward(x, maxima, *, kernel, stride, padding):
    x, maxima = np.asarray(x), np.asarray(maxima)
    views = _pool_views(x, kernel, stride, padding, _lowest(x.dtype))
    index = np.zeros(maxima.shape, np.min_scalar_type(len(views) - 1))
    kind = index.dtype.type
    # Going backwards the last hit wins, so each window ends at its first maximum.
    # index += (k - index) [hit] sets index to k where hit: exact in unsigned arithmetic,
    # and three times faster than a masked copy.
    for k in range(len(views) - 1, -1, -1):
        index += (kind(k) - index) * (views[k] == maxima)
    if maxima.dtype.kind == "f" and np.isnan(maxima).any():
        # PyTorch's scan takes every NaN it meets (val > max || isnan(val)): the last NaN
        for k in range(len(views)):
            index += (kind(k) - index) * np.isnan(views[k])
    return index


def _zero_vjp(i, g, ans, *args, **params):
    """An index: no derivative."""
    return None


#: The offset ``a * kw + b`` of each window's first maximum, given ``x`` and the window
#: maxima (an unsigned integer array, no derivative).
MAX_POOL2D_ARGMAX = Primitive("max_pool2d_argmax", _argmax_forward, _zero_vjp)


def _scatter_forward(g, index, *, x_shape, kernel, stride, padding):
    g = np.asarray(g)
    n, c, h, w = x_shape
    (top, bottom), (left, right) = padding
    out = np.zeros((n, c, h + top + bottom, w + left + right), g.dtype)
    _add_windows(out, lambda k: np.where(index == k, g, 0), kernel, stride, g.shape[2:])
    return np.ascontiguousarray(_crop(out, padding, (h, w)))


def _scatter_vjp(i, gg, ans, g, index, *, x_shape, kernel, stride, padding):
    """Linear in ``g``: its transpose reads ``gg`` at each window's recorded index."""
    if i:
        return None
    return bind(
        MAX_POOL2D_GATHER, (gg, index), {"kernel": kernel, "stride": stride, "padding": padding}
    )


#: ``g`` added at each window's index into zeros of ``x_shape``: max_pool2d's VJP.
MAX_POOL2D_SCATTER = Primitive("max_pool2d_scatter", _scatter_forward, _scatter_vjp)


def _gather_forward(y, index, *, kernel, stride, padding):
    views = _pool_views(y, kernel, stride, padding)
    out = np.zeros(index.shape, views[0].dtype)
    for k, view in enumerate(views):
        np.copyto(out, view, where=index == k)
    return out


def _gather_vjp(i, gg, ans, y, index, *, kernel, stride, padding):
    """Linear in ``y``: its transpose scatters ``gg`` back to the indices."""
    if i:
        return None
    params = {"x_shape": shape_of(y), "kernel": kernel, "stride": stride, "padding": padding}
    return bind(MAX_POOL2D_SCATTER, (gg, index), params)


#: ``y`` read at each window's index: the transpose of the scatter.
MAX_POOL2D_GATHER = Primitive("max_pool2d_gather", _gather_forward, _gather_vjp)

_FIRST_MAX = (
    "the first maximum of a window (row-major) takes its cotangent; in a window holding NaN, "
    "the last NaN (as PyTorch)"
)


@op(sample=_sample_pool(Interval(-3, 3, step=0.01, distinct=True)), convention=_FIRST_MAX)
def max_pool2d(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> ArrayLike:
    """The maximum of each ``kernel_size`` window of ``x (N, C, H, W)``, PyTorch's
    ``max_pool2d`` (floor mode): ``stride`` defaults to ``kernel_size``; ``padding`` (at most
    half the kernel) counts as ``-inf``; a NaN in a window is its maximum. Returns
    ``(N, C, Ho, Wo)``.

    VJP: ``g`` goes to the first maximum of each window in row-major order (a recorded
    argmax; PyTorch's rule, which gives a window holding NaN to its last NaN), added up
    where windows overlap.
    """
    params = _pool_params("max_pool2d", shape_of(x), kernel_size, stride, padding)
    return bind(MAX_POOL2D, (x,), params)


def _avg_pool2d_forward(x, *, kernel, stride, padding):
    views = _pool_views(x, kernel, stride, padding)
    total = views[0].copy()
    for view in views[1:]:
        total += view
    return total / (kernel[0] * kernel[1])


def _avg_pool2d_vjp(i, g, ans, x, *, kernel, stride, padding):
    """d mean/dx = 1 / (kh kw) on every pixel of the window (padding included)."""
    params = {"x_shape": shape_of(x), "kernel": kernel, "stride": stride, "padding": padding}
    return bind(AVG_POOL2D_TRANSPOSE, (g,), params)


AVG_POOL2D = Primitive("avg_pool2d", _avg_pool2d_forward, _avg_pool2d_vjp)


def _avg_transpose_forward(g, *, x_shape, kernel, stride, padding):
    g = np.asarray(g)
    share = g / (kernel[0] * kernel[1])
    n, c, h, w = x_shape
    (top, bottom), (left, right) = padding
    out = np.zeros((n, c, h + top + bottom, w + left + right), share.dtype)
    _add_windows(out, lambda k: share, kernel, stride, g.shape[2:])
    return np.ascontiguousarray(_crop(out, padding, (h, w)))


def _avg_transpose_vjp(i, gg, ans, g, *, x_shape, kernel, stride, padding):
    """Linear in ``g``: its transpose is ``avg_pool2d(gg)``."""
    return bind(AVG_POOL2D, (gg,), {"kernel": kernel, "stride": stride, "padding": padding})


#: ``g / (kh kw)`` spread over each window: avg_pool2d's VJP.
AVG_POOL2D_TRANSPOSE = Primitive("avg_pool2d_transpose", _avg_transpose_forward, _avg_transpose_vjp)


@op(sample=_sample_pool(Interval()))
def avg_pool2d(
    x: ArrayLike,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> ArrayLike:
    """The mean of each ``kernel_size`` window of ``x (N, C, H, W)``, PyTorch's
    ``avg_pool2d`` (floor mode, ``count_include_pad=True``: zero padding counts, every
    window is divided by ``kh * kw``). Returns ``(N, C, Ho, Wo)``.

    VJP: ``g / (kh kw)`` spread over each window, added up where windows overlap.
    """
    params = _pool_params("avg_pool2d", shape_of(x), kernel_size, stride, padding)
    return bind(AVG_POOL2D, (x,), params)
