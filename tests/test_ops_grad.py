"""Every primitive's gradient against central finite differences in float64.

Shapes come from hypothesis: 0-d arrays, size-1 axes, broadcasting of either operand,
negative axes and keepdims. Inputs stay away from kinks (relu, abs at 0), ties (max,
maximum) and singularities (log, divide, sqrt at 0), whose conventions are pinned by
exact tests in test_conventions.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad.testing import arrays, broadcastable_shapes, check_grads, shapes

# ---------------------------------------------------------------------------------------
# Elementwise unary ops: (op, lowest value, highest value, smallest |value|)

UNARY = {
    "negative": (tg.negative, -3, 3, 0),
    "exp": (tg.exp, -2, 2, 0),
    "log": (tg.log, 0.2, 4, 0),
    "sqrt": (tg.sqrt, 0.2, 4, 0),
    "tanh": (tg.tanh, -3, 3, 0),
    "sigmoid": (tg.sigmoid, -4, 4, 0),
    "relu": (tg.relu, -3, 3, 0.01),
    "abs": (tg.abs, -3, 3, 0.01),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_gradients(name, data):
    op, low, high, gap = UNARY[name]
    x = data.draw(arrays(shapes(), low=low, high=high, min_magnitude=gap))
    check_grads(op, (x,))


# ---------------------------------------------------------------------------------------
# Elementwise binary ops with broadcasting of both operands


def _separated(x, y, gap=1e-3):
    """No pair of broadcast elements within ``gap``: keeps max/min away from ties."""
    return bool(np.all(np.abs(np.subtract(x, y)) > gap))


BINARY = {
    "add": (tg.add, (-3, 3), (-3, 3), 0),
    "subtract": (tg.subtract, (-3, 3), (-3, 3), 0),
    "multiply": (tg.multiply, (-3, 3), (-3, 3), 0),
    "divide": (tg.divide, (-3, 3), (-3, 3), 0.3),
    "power": (tg.power, (0.3, 3), (-2, 2), 0),
    "maximum": (tg.maximum, (-3, 3), (-3, 3), 0),
    "minimum": (tg.minimum, (-3, 3), (-3, 3), 0),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_gradients_with_broadcasting(name, data):
    op, (xlo, xhi), (ylo, yhi), ygap = BINARY[name]
    xs, ys = data.draw(broadcastable_shapes())
    x = data.draw(arrays(xs, low=xlo, high=xhi))
    y = data.draw(arrays(ys, low=ylo, high=yhi, min_magnitude=ygap))
    if name in ("maximum", "minimum"):
        assume(_separated(x, y))
    out = op(x, y)
    assert np.shape(out) == np.broadcast_shapes(xs, ys)
    check_grads(op, (x, y), argnums=(0, 1))


@given(data=st.data())
def test_where_gradient_flows_to_the_chosen_branch(data):
    xs, ys = data.draw(broadcastable_shapes())
    cond = data.draw(hnp.arrays(bool, np.broadcast_shapes(xs, ys)))
    x, y = data.draw(arrays(xs)), data.draw(arrays(ys))
    check_grads(lambda a, b: tg.where(cond, a, b), (x, y), argnums=(0, 1))


@given(data=st.data())
def test_scalar_operands_in_any_position(data):
    x = data.draw(arrays(shapes(), low=0.5, high=2))
    check_grads(lambda a: 2.0 * a - 1.5 / a + a**2 + 3.0**a + (1.0 - a) * 0.5, (x,))


# ---------------------------------------------------------------------------------------
# Reductions: axis None / int / negative int / tuple, keepdims


@st.composite
def array_and_axis(draw, min_dims=0, distinct=False):
    shape = draw(shapes(min_dims=min_dims))
    x = draw(arrays(shape))
    if distinct:
        assume(
            np.unique(x).size == x.size and (x.size < 2 or np.diff(np.sort(x.ravel())).min() > 1e-3)
        )
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        choices.append(
            st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(
                lambda axes: tuple(a - nd if i % 2 else a for i, a in enumerate(axes))
            )
        )
    axis = draw(st.one_of(*choices))
    return x, axis, draw(st.booleans())


REDUCTIONS = {
    "sum": (tg.sum, np.sum, False),
    "mean": (tg.mean, np.mean, False),
    "max": (tg.max, np.max, True),
    "min": (tg.min, np.min, True),
    "logsumexp": (tg.logsumexp, None, False),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reduction_gradients(name, data):
    op, ref, distinct = REDUCTIONS[name]
    x, axis, keepdims = data.draw(array_and_axis(distinct=distinct))
    out = op(x, axis=axis, keepdims=keepdims)
    expected = (
        ref(x, axis=axis, keepdims=keepdims)
        if ref is not None
        else np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    check_grads(lambda a: op(a, axis=axis, keepdims=keepdims), (x,))


@pytest.mark.parametrize("op", [tg.softmax, tg.log_softmax], ids=["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_family_gradients(op, data):
    x = data.draw(arrays(shapes(min_dims=1)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    sm = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(op(x, axis=axis), sm if op is tg.softmax else np.log(sm), atol=1e-12)
    check_grads(lambda a: op(a, axis=axis), (x,))


# ---------------------------------------------------------------------------------------
# Linear algebra and shapes


@st.composite
def matmul_operands(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(st.sampled_from([(), (2,), (3, 1)]))
    kind = draw(st.sampled_from(["mm", "vm", "mv", "vv", "batched", "broadcast"]))
    xs, ys = {
        "mm": ((n, k), (k, m)),
        "vm": ((k,), (k, m)),
        "mv": ((n, k), (k,)),
        "vv": ((k,), (k,)),
        "batched": ((*batch, n, k), (*batch, k, m)),
        "broadcast": ((n, k), (*batch, k, m)),
    }[kind]
    return draw(arrays(xs)), draw(arrays(ys))


@given(operands=matmul_operands())
def test_matmul_gradients(operands):
    x, y = operands
    np.testing.assert_allclose(tg.matmul(x, y), np.matmul(x, y), atol=1e-12)
    check_grads(tg.matmul, (x, y), argnums=(0, 1))


@given(data=st.data())
def test_reshape_and_transpose_gradients(data):
    x = data.draw(arrays(shapes()))
    perm = data.draw(st.permutations(range(x.ndim)))
    check_grads(lambda a: tg.reshape(a, (-1,)) * np.arange(a.size), (x,))
    check_grads(lambda a: tg.transpose(a, perm), (x,))
    check_grads(lambda a: tg.transpose(a), (x,))
    check_grads(lambda a: a.reshape(tuple(reversed(a.shape))).T, (x,))


@given(data=st.data())
def test_concatenate_and_stack_gradients(data):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = []
    for s in sizes:
        sh = list(shape)
        sh[axis] = s
        parts.append(data.draw(arrays(tuple(sh))))
    out = tg.concatenate(parts, axis=axis)
    np.testing.assert_array_equal(out, np.concatenate(parts, axis=axis))
    check_grads(
        lambda *ps: tg.concatenate(ps, axis=axis), tuple(parts), argnums=tuple(range(len(parts)))
    )
    same = [data.draw(arrays(shape)) for _ in sizes]
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    np.testing.assert_array_equal(tg.stack(same, axis=new_axis), np.stack(same, axis=new_axis))
    check_grads(
        lambda *ps: tg.stack(ps, axis=new_axis), tuple(same), argnums=tuple(range(len(same)))
    )
    check_grads(lambda *ps: tg.concatenate(ps, axis=None), tuple(parts), argnums=(0,))


@given(data=st.data())
def test_indexing_and_take_gradients_accumulate_repeats(data):
    x = data.draw(arrays(shapes(min_dims=1)))
    n = x.shape[0]
    idx = np.asarray(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    check_grads(lambda a: a[idx], (x,))
    check_grads(lambda a: a[1:] if n > 1 else a[0], (x,))
    check_grads(lambda a: tg.take(a, idx, axis=0), (x,))
    flat = np.asarray(data.draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=6)))
    check_grads(lambda a: tg.take(a, flat), (x,))
    # a repeated index sends the cotangent twice
    g = tg.grad(lambda a: tg.sum(a[np.array([0, 0])]))(x)
    assert g.reshape(n, -1)[0].tolist() == [2.0] * (x.size // n)


@given(data=st.data())
def test_broadcast_to_and_cast_gradients(data):
    xs, ys = data.draw(broadcastable_shapes())
    target = np.broadcast_shapes(xs, ys)
    x = data.draw(arrays(xs))
    check_grads(lambda a: tg.broadcast_to(a, target), (x,))
    check_grads(
        lambda a: tg.cast(tg.cast(a, np.float32), np.float64), (x,), rtol=1e-3, atol=1e-3, eps=1e-3
    )


# ---------------------------------------------------------------------------------------
# The layers of tapegrad.nn


@given(data=st.data())
def test_affine_and_nll_gradients(data):
    batch, n_in, n_out = (data.draw(st.integers(1, 4)) for _ in range(3))
    W = data.draw(arrays((n_out, n_in)))
    b = data.draw(arrays((n_out,)))
    x = data.draw(arrays(data.draw(st.sampled_from([(batch, n_in), (n_in,)]))))
    np.testing.assert_allclose(tg.nn.affine(W, b, x), x @ W.T + b, atol=1e-12)
    check_grads(tg.nn.affine, (W, b, x), argnums=(0, 1, 2))
    logits = data.draw(arrays((batch, n_out), low=-5, high=5))
    labels = np.asarray(
        data.draw(st.lists(st.integers(0, n_out - 1), min_size=batch, max_size=batch))
    )
    check_grads(lambda z: tg.nn.nll(z, labels), (logits,))


# ---------------------------------------------------------------------------------------
# dtypes: float32 in, float32 out, float32 gradients

ALL_OPS = {
    **{k: (v[0], 1) for k, v in UNARY.items()},
    **{k: (v[0], 2) for k, v in BINARY.items()},
    **{k: (v[0], 1) for k, v in REDUCTIONS.items()},
    "softmax": (tg.softmax, 1),
    "log_softmax": (tg.log_softmax, 1),
    "matmul": (tg.matmul, 2),
}


@pytest.mark.parametrize("name", sorted(ALL_OPS))
def test_float32_stays_float32(name):
    op, arity = ALL_OPS[name]
    rng = np.random.default_rng(0)
    args = tuple(rng.uniform(0.5, 2.0, size=(3, 3)).astype(np.float32) for _ in range(arity))
    assert np.asarray(op(*args)).dtype == np.float32
    weights = np.arange(1, 10, dtype=np.float32).reshape(3, 3)  # sum(softmax) alone is constant
    grads = tg.grad(lambda *a: tg.sum(op(*a) * weights), argnums=tuple(range(arity)))(*args)
    for g in grads:
        assert g.dtype == np.float32 and g.shape == (3, 3)
        assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_gathers_in_a_loop_accumulate_sparse_cotangents():
    x = np.arange(12.0).reshape(4, 3)

    def f(a):
        return sum(tg.sum(a[i % 4] * (i + 1)) for i in range(10)) + tg.sum(a[np.array([1, 1])])

    g = tg.grad(f)(x)
    weights = [1 + 5 + 9, 2 + 6 + 10 + 2, 3 + 7, 4 + 8]  # i + 1 for i = row, row + 4, ...
    np.testing.assert_array_equal(g, np.repeat(np.array(weights, float)[:, None], 3, axis=1))
    # the rule itself builds no dense array: it returns the values and where they go
    ct = tg.ops.core._getitem_vjp(0, np.ones(3), None, x, index=2)
    assert isinstance(ct, tg.ops.IndexedCotangent) and ct.values.shape == (3,)
    assert ct.shape == (4, 3) and ct.dense()[2].tolist() == [1.0, 1.0, 1.0]
