"""Convolution and pooling (``tapegrad/ops/convolution.py``, ``tg.nn``): values and VJPs
against direct loops over every pixel, over the registry's generated strides, paddings,
dilations and groups; grad of grad; max pooling's tie rule; float32; PyTorch when it
imports; the errors; and the convolution initialisers.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import draw_case

import tapegrad as tg
from tapegrad.ops import REGISTRY, convolution
from tapegrad.testing import check_grads

nn = tg.nn

#: Both ways the convolution multiplies: a batched product per kernel row over views of
#: the column-shifted input (many taps), or one product of packed columns (few taps: the
#: small shapes of the registry's sampler). Tests marked with PATHS run each way.
PATHS = pytest.mark.parametrize("pack_below", [0, 10**9], ids=["kernel-rows", "packed"])


@contextlib.contextmanager
def _packing(pack_below):
    saved = convolution._PACK_BELOW
    convolution._PACK_BELOW = pack_below
    try:
        yield
    finally:
        convolution._PACK_BELOW = saved


# ---------------------------------------------------------------------------------------
# Direct loops: the definitions, one output pixel (or one product term) at a time


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pads(padding, kernel, dilation):
    """((top, bottom), (left, right)) from PyTorch's forms, written out independently."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":  # PyTorch: d (k - 1) in total, the odd pixel after
        return tuple(
            (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
            for k, d in zip(kernel, dilation, strict=True)
        )
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if all(isinstance(p, int) for p in padding):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return tuple(tuple(p) for p in padding)


def _taps(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """Every term of the convolution sum: ``(n, o, i, j, ci, c, p, q, r, s)`` with output
    pixel ``(i, j)``, input channel ``ci`` (kernel channel ``c``), kernel offset ``(p, q)``
    and input pixel ``(r, s)`` inside the image (padding contributes zeros)."""
    n_, _, h, w = x_shape
    o_, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _pads(padding, (kh, kw), (dh, dw))
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    og = o_ // groups
    terms = []
    for n in range(n_):
        for o in range(o_):
            for i in range(ho):
                for j in range(wo):
                    for c in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r, s = i * sh + p * dh - pt, j * sw + q * dw - pl
                                if 0 <= r < h and 0 <= s < w:
                                    terms.append((n, o, i, j, o // og * cg + c, c, p, q, r, s))
    return terms, (n_, o_, ho, wo)


def conv2d_loop(x, w, b=None, **kw):
    terms, out_shape = _taps(x.shape, w.shape, **kw)
    y = np.zeros(out_shape)
    if b is not None:
        y += b[None, :, None, None]
    for n, o, i, j, ci, c, p, q, r, s in terms:
        y[n, o, i, j] += w[o, c, p, q] * x[n, ci, r, s]
    return y


def input_grad_loop(g, w, x_shape, **kw):
    terms, _ = _taps(x_shape, w.shape, **kw)
    dx = np.zeros(x_shape)
    for n, o, i, j, ci, c, p, q, r, s in terms:
        dx[n, ci, r, s] += w[o, c, p, q] * g[n, o, i, j]
    return dx


def weight_grad_loop(x, g, w_shape, **kw):
    terms, _ = _taps(x.shape, w_shape, **kw)
    dw = np.zeros(w_shape)
    for n, o, i, j, ci, c, p, q, r, s in terms:
        dw[o, c, p, q] += g[n, o, i, j] * x[n, ci, r, s]
    return dw


def _pool_windows(x_shape, kernel_size, stride=None, padding=0):
    """For each output pixel ``(n, c, i, j)``: its window's pixels in row-major order, as
    ``(r, s)`` or None for padding."""
    n_, c_, h, w = x_shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = {}
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    cells = []
                    for p in range(kh):
                        for q in range(kw):
                            r, s = i * sh + p - ph, j * sw + q - pw
                            cells.append((r, s) if 0 <= r < h and 0 <= s < w else None)
                    out[n, c, i, j] = cells
    return out, (n_, c_, ho, wo)


def max_pool_loop(x, *args):
    """Values and the VJP matrix: the first maximum of each window (padding is -inf)."""
    windows, shape = _pool_windows(x.shape, *args)
    y, first = np.zeros(shape), {}
    for (n, c, i, j), cells in windows.items():
        vals = [-np.inf if cell is None else x[n, c, cell[0], cell[1]] for cell in cells]
        k = int(np.argmax(vals))  # the first maximum
        y[n, c, i, j], first[n, c, i, j] = vals[k], cells[k]
    return y, first


def avg_pool_loop(x, *args):
    windows, shape = _pool_windows(x.shape, *args)
    y = np.zeros(shape)
    for (n, c, i, j), cells in windows.items():
        y[n, c, i, j] = sum(x[n, c, r, s] for r, s in filter(None, cells)) / len(cells)
    return y


def _vjp(f, x, u):
    return tg.grad(lambda a: tg.sum(f(a) * u))(x)


# ---------------------------------------------------------------------------------------
# Forward and VJPs against the loops, over the registry's generated configurations


@PATHS
@settings(max_examples=40)
@given(data=st.data())
def test_conv2d_and_its_vjps_match_the_loops(pack_below, data):
    with _packing(pack_below):
        (x, w, b), kwargs, _ = draw_case(data, REGISTRY["conv2d"])
        y = nn.conv2d(x, w, b, **kwargs)
        np.testing.assert_allclose(y, conv2d_loop(x, w, b, **kwargs), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            nn.conv2d(x, w, **kwargs), conv2d_loop(x, w, **kwargs), rtol=1e-12, atol=1e-12
        )
        u = np.random.default_rng(0).standard_normal(y.shape)
        dx, dw, db = tg.grad(
            lambda x, w, b: tg.sum(nn.conv2d(x, w, b, **kwargs) * u), argnums=(0, 1, 2)
        )(x, w, b)
        np.testing.assert_allclose(dx, input_grad_loop(u, w, x.shape, **kwargs), atol=1e-12)
        np.testing.assert_allclose(dw, weight_grad_loop(x, u, w.shape, **kwargs), atol=1e-12)
        np.testing.assert_allclose(db, u.sum(axis=(0, 2, 3)), atol=1e-12)


@PATHS
@settings(max_examples=30)
@given(data=st.data())
def test_the_vjp_primitives_match_the_loops(pack_below, data):
    with _packing(pack_below):
        (g, w, x_shape), kwargs, _ = draw_case(data, REGISTRY["conv2d_input_grad"])
        got = nn.conv2d_input_grad(g, w, x_shape, **kwargs)
        np.testing.assert_allclose(got, input_grad_loop(g, w, x_shape, **kwargs), atol=1e-12)
        (x, g, w_shape), kwargs, _ = draw_case(data, REGISTRY["conv2d_weight_grad"])
        got = nn.conv2d_weight_grad(x, g, w_shape, **kwargs)
        np.testing.assert_allclose(got, weight_grad_loop(x, g, w_shape, **kwargs), atol=1e-12)


def test_many_taps_multiply_by_kernel_rows_and_few_taps_packed():
    pads, one = ((2, 2), (2, 2)), (1, 1)
    first = convolution._taps(np.ones((2, 1, 8, 8)), (5, 5), one, pads, one, 1)  # kw C = 5
    second = convolution._taps(np.ones((2, 32, 8, 8)), (5, 5), one, pads, one, 1)  # 160
    assert convolution._packed(first) and not convolution._packed(second)
    assert not second.flags.owndata  # views of the column-shifted copy, no im2col
    rng = np.random.default_rng(8)  # kw C/groups = 36 taps: the kernel rows, as they come
    x, w, b = rng.standard_normal((2, 12, 6, 5)), rng.standard_normal((4, 12, 3, 3)), np.ones(4)
    kwargs = {"stride": (1, 2), "padding": "valid", "dilation": (2, 1)}
    y = nn.conv2d(x, w, b, **kwargs)
    np.testing.assert_allclose(y, conv2d_loop(x, w, b, **kwargs), rtol=1e-12, atol=1e-12)
    u = rng.standard_normal(y.shape)
    dx, dw = tg.grad(lambda x, w: tg.sum(nn.conv2d(x, w, b, **kwargs) * u), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(dx, input_grad_loop(u, w, x.shape, **kwargs), atol=1e-12)
    np.testing.assert_allclose(dw, weight_grad_loop(x, u, w.shape, **kwargs), atol=1e-12)


@settings(max_examples=30)
@given(data=st.data())
def test_conv1d_is_conv2d_on_one_pixel_high_images(data):
    (x, w, b), kwargs, _ = draw_case(data, REGISTRY["conv1d"])
    y = nn.conv1d(x, w, b, **kwargs)
    kw2 = dict(kwargs)
    for key in ("stride", "dilation"):
        kw2[key] = (1, kwargs[key])
    p = kwargs["padding"]
    kw2["padding"] = p if isinstance(p, str) else ((0, 0), (p, p))
    want = conv2d_loop(x[:, :, None], w[:, :, None], b, **kw2)[:, :, 0]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(data=st.data())
def test_pooling_matches_the_loops(data):
    (x, kernel), kwargs, _ = draw_case(data, REGISTRY["max_pool2d"])
    args = (kernel, kwargs["stride"], kwargs["padding"])
    y = nn.max_pool2d(x, *args)
    want, first = max_pool_loop(x, *args)
    np.testing.assert_array_equal(y, want)
    u = np.random.default_rng(0).standard_normal(y.shape)
    dx = np.zeros(x.shape)
    for (n, c, i, j), (r, s) in first.items():
        dx[n, c, r, s] += u[n, c, i, j]
    np.testing.assert_allclose(_vjp(lambda a: nn.max_pool2d(a, *args), x, u), dx, atol=1e-14)

    (x, kernel), kwargs, _ = draw_case(data, REGISTRY["avg_pool2d"])
    args = (kernel, kwargs["stride"], kwargs["padding"])
    np.testing.assert_allclose(nn.avg_pool2d(x, *args), avg_pool_loop(x, *args), atol=1e-14)


# ---------------------------------------------------------------------------------------
# Max pooling at ties: the first maximum of the window (row-major) takes the cotangent


def test_max_pool_gives_a_tied_window_to_its_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 5.0, 5.0]]]])  # (1, 1, 2, 4)
    u = np.array([[[[10.0, 100.0]]]])
    g = _vjp(lambda a: nn.max_pool2d(a, 2), x, u)
    # window 0 holds 3 at (0, 1) and (1, 0): row-major first is (0, 1); window 1 holds 5
    # at (1, 2) and (1, 3): the first is (1, 2)
    assert g.tolist() == [[[[0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0]]]]
    flat = np.zeros((1, 1, 3, 3))  # every window constant: its top-left pixel takes it all
    g = _vjp(lambda a: nn.max_pool2d(a, 2, stride=1), flat, np.ones((1, 1, 2, 2)))
    assert g[0, 0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_max_pool_overlapping_windows_add_up_and_padding_is_minus_infinity():
    x = np.array([[[[-5.0, -1.0, -7.0], [-6.0, -8.0, -9.0], [-4.0, -3.0, -2.0]]]])
    y = nn.max_pool2d(x, 3, stride=1, padding=1)  # all negative: the padding never wins
    assert y[0, 0].tolist() == [[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-3.0, -2.0, -2.0]]
    g = _vjp(lambda a: nn.max_pool2d(a, 3, stride=1, padding=1), x, np.ones(y.shape))
    assert g[0, 0].tolist() == [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 2.0]]
    assert g.sum() == y.size  # every window passes on exactly its cotangent


def test_max_pool_propagates_nan_and_gives_its_cotangent_to_the_last_nan_as_pytorch():
    x = np.array([[[[1.0, np.nan, 3.0, 7.0], [np.nan, 0.0, 5.0, 5.0]]]])
    y = nn.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 7.0
    g = _vjp(lambda a: nn.max_pool2d(a, 2), x, np.array([[[[10.0, 100.0]]]]))
    # PyTorch's scan (val > max or isnan(val)) keeps the last NaN of a window
    assert g[0, 0].tolist() == [[0.0, 0.0, 0.0, 100.0], [10.0, 0.0, 0.0, 0.0]]


def test_max_pool_ties_under_grad_of_grad_and_a_replayed_tape():
    x = np.array([[[[2.0, 2.0], [2.0, 1.0]]]])
    # f = max^2 of the one window: its Hessian is 2 at the winner (the first of the three 2s)
    # and 0 elsewhere, so H x = (4, 0, 0, 0): the recorded argmax keeps the second-order term
    # on the same first maximum
    h = tg.grad(lambda a: tg.sum(tg.grad(lambda b: tg.sum(nn.max_pool2d(b, 2) ** 2))(a) * x))(x)
    assert h[0, 0].tolist() == [[4.0, 0.0], [0.0, 0.0]]
    tape = tg.make_tape(tg.grad(lambda a: tg.sum(nn.max_pool2d(a, 2) * 3.0)))(x)
    assert "max_pool2d_argmax" in {r.primitive.name for r in tape}


# ---------------------------------------------------------------------------------------
# Second order: grad of grad, Hessian-vector products, forward mode


@PATHS
@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride": 1, "padding": "same"},
        {"stride": (2, 1), "padding": ((0, 1), (2, 0)), "dilation": (1, 2)},
        {"stride": 2, "padding": 1, "groups": 2},
    ],
)
def test_conv2d_second_derivatives_match_finite_differences(pack_below, kwargs):
    with _packing(pack_below):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((2, 2, 5, 4))
        w = rng.standard_normal((2, 2 // kwargs.get("groups", 1), 3, 2))
        b = rng.standard_normal(2)

        def f(x, w, b):
            y = nn.conv2d(x, w, b, **kwargs)
            return tg.sum(tg.tanh(y) * y)  # not quadratic: every second derivative is traced

        check_grads(f, (x, w, b), argnums=(0, 1, 2), order=2)
        # the constant-input case of a CNN's first layer: x data, w differentiated twice
        check_grads(lambda w: f(x, w, b), (w,), order=2)


@PATHS
def test_grad_of_grad_of_the_vjp_primitives(pack_below):
    with _packing(pack_below):
        rng = np.random.default_rng(2)
        kw = {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}
        g, w = rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 3, 2, 2))
        x = rng.standard_normal((1, 3, 5, 5))
        check_grads(
            lambda g, w: tg.sum(tg.sin(nn.conv2d_input_grad(g, w, x.shape, **kw))),
            (g, w),
            (0, 1),
            2,
        )
        check_grads(
            lambda x, g: tg.sum(tg.sin(nn.conv2d_weight_grad(x, g, w.shape, **kw))),
            (x, g),
            (0, 1),
            2,
        )


@PATHS
def test_forward_mode_and_hvp_through_conv2d(pack_below):
    with _packing(pack_below):
        rng = np.random.default_rng(3)
        x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))
        tx, tw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        _, ty = tg.jvp(lambda x, w: nn.conv2d(x, w, padding=1), (x, w), (tx, tw))
        # bilinear: the tangent is conv(tx, w) + conv(x, tw)
        want = conv2d_loop(tx, w, padding=1) + conv2d_loop(x, tw, padding=1)
        np.testing.assert_allclose(ty, want, atol=1e-12)

        def f(w):
            return tg.sum(nn.conv2d(x, w, padding=1) ** 3)

        hv = tg.hvp(f, (w,), (tw,))[0]
        eps = 1e-6
        fd = (tg.grad(f)(w + eps * tw) - tg.grad(f)(w - eps * tw)) / (2 * eps)
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6)


@PATHS
def test_a_constant_input_keeps_the_taps_and_gives_the_same_floats_as_the_op(pack_below):
    with _packing(pack_below):
        rng = np.random.default_rng(4)
        x = rng.standard_normal((3, 4, 6, 6)).astype(np.float32)
        w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
        u = rng.standard_normal((3, 5, 6, 6)).astype(np.float32)
        # grad: the forward's taps give dW; jit: the recorded conv2d_weight_grad recomputes them
        step = tg.grad(lambda w: tg.sum(nn.conv2d(x, w, padding=1) * u))
        np.testing.assert_array_equal(step(w), tg.jit(step)(w))
        np.testing.assert_array_equal(step(w), nn.conv2d_weight_grad(x, u, w.shape, padding=1))


# ---------------------------------------------------------------------------------------
# dtypes, records, shapes


@PATHS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_by_every_op_and_gradient(pack_below, dtype):
    with _packing(pack_below):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
        w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
        b = rng.standard_normal(3).astype(dtype)
        x1, w1 = x[:, :, 0], w[:, :, 0]

        def loss(x, w, b, x1, w1):
            y = nn.max_pool2d(nn.conv2d(x, w, b, padding="same"), 2)
            z = nn.avg_pool2d(y, 2, stride=1, padding=1)
            return tg.sum(nn.flatten(z)) + tg.sum(nn.conv1d(x1, w1, b, padding=1))

        assert nn.conv2d(x, w, b).dtype == dtype
        assert nn.conv1d(x1, w1, b).dtype == dtype
        assert nn.max_pool2d(x, 2).dtype == dtype and nn.avg_pool2d(x, 3, 1, 1).dtype == dtype
        grads = tg.grad(loss, argnums=(0, 1, 2, 3, 4))(x, w, b, x1, w1)
        assert [g.dtype for g in grads] == [np.dtype(dtype)] * 5
        assert nn.conv2d_input_grad(np.ones((2, 3, 4, 4), dtype), w, x.shape).dtype == dtype
        assert nn.conv2d_weight_grad(x, np.ones((2, 3, 4, 4), dtype), w.shape).dtype == dtype


def test_one_record_per_convolution_and_flatten_shapes():
    x, w, b = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), np.zeros(4)
    tape = tg.make_tape(lambda w, b: nn.conv2d(x, w, b))(w, b)
    assert [r.primitive.name for r in tape] == ["conv2d"]
    assert nn.flatten(np.ones((2, 3, 4, 5))).shape == (2, 60)
    assert nn.flatten(np.ones((7,))).shape == (7, 1)
    g = tg.grad(lambda a: tg.sum(nn.flatten(a) * np.arange(60.0)))(np.ones((1, 3, 4, 5)))
    assert g.shape == (1, 3, 4, 5) and g.ravel().tolist() == list(range(60))


@pytest.mark.parametrize(
    ("kwargs", "hw"),
    [
        ({"padding": "valid"}, (4, 3)),
        ({"padding": "same"}, (6, 5)),
        ({"padding": "same", "dilation": 2}, (6, 5)),
        ({"padding": (1, 0), "stride": 2}, (3, 2)),
        ({"padding": ((2, 0), (0, 1)), "dilation": (1, 2)}, (6, 2)),
    ],
)
def test_padding_forms_give_pytorchs_output_sizes(kwargs, hw):
    y = nn.conv2d(np.ones((1, 1, 6, 5)), np.ones((1, 1, 3, 3)), **kwargs)
    assert y.shape[2:] == hw


def test_same_padding_puts_the_odd_pixel_after():
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    w = np.array([[[[1.0, 10.0]]]])  # kernel 2: one pixel of padding, on the right
    assert nn.conv2d(x, w, padding="same")[0, 0, 0].tolist() == [10.0, 21.0, 32.0, 43.0, 4.0]
    x1 = np.arange(5.0).reshape(1, 1, 5)
    w1 = np.array([[[1.0, 0.0, 0.0, 10.0]]])  # kernel 4: one before, two after
    assert nn.conv1d(x1, w1, padding="same")[0, 0].tolist() == [20.0, 30.0, 41.0, 2.0, 3.0]


# ---------------------------------------------------------------------------------------
# Errors name the op and the shapes


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: nn.conv2d(np.ones((1, 3, 4, 4)), np.ones((2, 2, 3, 3))),
            r"tg\.conv2d: .*channels",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 4, 4, 4)), np.ones((3, 2, 3, 3)), groups=2),
            r"tg\.conv2d: .*divisible by groups",
        ),
        (
            lambda: nn.conv2d(
                np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), stride=2, padding="same"
            ),
            r"tg\.conv2d: padding='same' needs stride 1",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))),
            r"tg\.conv2d: the kernel",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 4, 4)), np.ones((1, 1, 3, 3))),
            r"tg\.conv2d: expected x \(N",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.ones(3)),
            r"tg\.conv2d: expected b of shape \(2,\)",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), stride=0),
            "stride must be >= 1",
        ),
        (
            lambda: nn.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding="full"),
            "'valid' or 'same'",
        ),
        (
            lambda: nn.conv2d_input_grad(
                np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), (1, 1, 4, 4)
            ),
            r"tg\.conv2d_input_grad: expected g of shape \(1, 1, 2, 2\)",
        ),
        (lambda: nn.max_pool2d(np.ones((1, 1, 4, 4)), 2, padding=2), r"tg\.max_pool2d: padding"),
        (lambda: nn.avg_pool2d(np.ones((1, 1, 1, 1)), 3), r"tg\.avg_pool2d: kernel"),
        (lambda: nn.conv1d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3))), r"tg\.conv1d: expected x"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------
# Against PyTorch, when it imports (never a dependency)


@PATHS
def test_conv2d_against_pytorch_over_random_configurations(pack_below):
    with _packing(pack_below):
        torch = pytest.importorskip("torch")
        functional = torch.nn.functional
        rng = np.random.default_rng(6)

        def leaf(a):
            return torch.tensor(a, requires_grad=True)

        for _ in range(30):
            groups = int(rng.choice([1, 2, 3]))
            cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 3))
            kh, kw = (int(k) for k in rng.integers(1, 5, 2))
            dil = tuple(int(d) for d in rng.integers(1, 3, 2))
            stride = tuple(int(s) for s in rng.integers(1, 3, 2))
            padding = [0, 1, (1, 2), "valid", "same"][int(rng.integers(0, 5))]
            if padding == "same":
                stride = (1, 1)
            h, w_ = (
                int(rng.integers(dil[0] * (kh - 1) + 1, 9)),
                int(rng.integers(dil[1] * (kw - 1) + 1, 9)),
            )
            x = rng.standard_normal((2, groups * cg, h, w_))
            w = rng.standard_normal((groups * og, cg, kh, kw))
            b = rng.standard_normal(groups * og)
            kwargs = {"stride": stride, "padding": padding, "dilation": dil, "groups": groups}
            y = nn.conv2d(x, w, b, **kwargs)
            xt, wt, bt = leaf(x), leaf(w), leaf(b)
            with warnings.catch_warnings():  # PyTorch's note that 'same' with an even kernel copies
                warnings.simplefilter("ignore", UserWarning)
                yt = functional.conv2d(xt, wt, bt, **kwargs)
            np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
            u = rng.standard_normal(y.shape)
            yt.backward(torch.tensor(u))
            got = tg.grad(
                lambda x, w, b, kw=kwargs, u=u: tg.sum(nn.conv2d(x, w, b, **kw) * u),
                argnums=(0, 1, 2),
            )(x, w, b)
            for a, t in zip(got, (xt, wt, bt), strict=True):
                np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-12)


def test_pooling_against_pytorch_with_ties():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(9)

    def leaf(a):
        return torch.tensor(a, requires_grad=True)

    for _ in range(40):
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        stride = [None, 1, 2, (1, 2)][int(rng.integers(0, 4))]
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = (2, 2, int(rng.integers(max(1, kernel[0] - 2 * padding[0]), 8)), 7)
        x = rng.integers(-2, 3, shape).astype(float)  # many ties
        for ours, theirs in (
            (nn.max_pool2d, functional.max_pool2d),
            (nn.avg_pool2d, functional.avg_pool2d),
        ):
            y = ours(x, kernel, stride, padding)
            xt = leaf(x)
            yt = theirs(xt, kernel, stride, padding)
            np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-14)
            u = rng.standard_normal(y.shape)
            yt.backward(torch.tensor(u))
            np.testing.assert_allclose(
                _vjp(lambda a, f=ours, args=(kernel, stride, padding): f(a, *args), x, u),
                xt.grad.numpy(),
                atol=1e-12,
            )


@PATHS
def test_conv1d_against_pytorch(pack_below):
    with _packing(pack_below):
        torch = pytest.importorskip("torch")
        rng = np.random.default_rng(7)
        x, b = rng.standard_normal((2, 4, 9)), rng.standard_normal(6)
        for kwargs in (
            {"stride": 2, "padding": 1, "dilation": 2, "groups": 2},
            {"padding": "same"},
        ):
            w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 4))
            xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            yt = torch.nn.functional.conv1d(xt, wt, bt, **kwargs)
            y = nn.conv1d(x, w, b, **kwargs)
            np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
            u = rng.standard_normal(y.shape)
            yt.backward(torch.tensor(u))
            got = tg.grad(
                lambda x, w, b, kw=kwargs, u=u: tg.sum(nn.conv1d(x, w, b, **kw) * u),
                argnums=(0, 1, 2),
            )(x, w, b)
            for a, t in zip(got, (xt, wt, bt), strict=True):
                np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-12)


# ---------------------------------------------------------------------------------------
# Initialisers: a convolution's weight shape (O, C, kh, kw)


@pytest.mark.parametrize(
    ("init", "bound"),
    [
        (nn.kaiming_uniform, lambda fan_out, fan_in: math.sqrt(6 / fan_in)),
        (nn.glorot_uniform, lambda fan_out, fan_in: math.sqrt(6 / (fan_in + fan_out))),
    ],
)
def test_initialisers_take_a_convolution_weight_shape(init, bound):
    shape = (64, 32, 5, 5)
    w = init(np.random.default_rng(0), shape)
    a = bound(64 * 25, 32 * 25)  # fan_out = O kh kw, fan_in = C kh kw
    assert w.shape == shape and w.dtype == np.float32
    assert np.abs(w).max() <= np.float32(a) and np.abs(w).max() > 0.999 * a
    np.testing.assert_allclose(w.astype(np.float64).var(), a**2 / 3, rtol=0.02)
    # the dense forms: (rng, fan_out, fan_in) as before, and a shape (fan_out, fan_in)
    dense = init(np.random.default_rng(1), 30, 20, np.float64)
    assert dense.dtype == np.float64
    np.testing.assert_array_equal(dense, init(np.random.default_rng(1), (30, 20), dtype=np.float64))
    np.testing.assert_array_equal(
        init(np.random.default_rng(2), (8, 3, 5)), init(np.random.default_rng(2), (8, 3, 5), None)
    )
    assert np.abs(init(np.random.default_rng(2), (8, 3, 5))).max() <= bound(40, 15)
    with pytest.raises(ValueError, match="fan"):
        init(np.random.default_rng(0), (0, 3, 3, 3))
    with pytest.raises(ValueError, match="at least"):
        init(np.random.default_rng(0), (5,))
    with pytest.raises(TypeError, match="weight shape"):
        init(np.random.default_rng(0), 5)
