"""Exact conventions at kinks and ties, and numerical stability for large inputs."""

from __future__ import annotations

import numpy as np

import tapegrad as tg


def test_relu_and_abs_have_zero_derivative_at_zero():
    x = np.array([-1.0, 0.0, 2.0])
    assert tg.grad(lambda a: tg.sum(tg.relu(a)))(x).tolist() == [0.0, 0.0, 1.0]
    assert tg.grad(lambda a: tg.sum(tg.abs(a)))(x).tolist() == [-1.0, 0.0, 1.0]


def test_max_and_min_share_the_cotangent_among_ties():
    x = np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    g = tg.grad(lambda a: tg.sum(tg.max(a, axis=1) * np.array([1.0, 3.0])))(x)
    np.testing.assert_array_equal(g, [[0.5, 0.0, 0.5], [1.0, 1.0, 1.0]])
    g = tg.grad(lambda a: tg.min(a))(np.array([1.0, 1.0, 1.0, 5.0]))
    np.testing.assert_array_equal(g, [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_maximum_and_minimum_split_ties_equally():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    gx, gy = tg.grad(lambda a, b: tg.sum(tg.maximum(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.5, 0.0, 1.0])
    gx, gy = tg.grad(lambda a, b: tg.sum(tg.minimum(a, b)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.5, 1.0, 0.0])


def test_maximum_with_a_broadcast_scalar_sums_its_share():
    g = tg.grad(lambda c: tg.sum(tg.maximum(np.array([0.0, 1.0, 2.0]), c)))(1.0)
    assert float(g) == 1.5  # wins at 0, ties at 1 (half), loses at 2


def test_softmax_family_is_stable_for_large_inputs():
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]], dtype=np.float32)
    lse = tg.logsumexp(x, axis=1)
    np.testing.assert_allclose(lse, [1e4 + np.log1p(np.exp(-1.0)), -1e4 + np.log(3)], rtol=1e-6)
    for op in (tg.softmax, tg.log_softmax):
        out = op(x, axis=1)
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        g = tg.grad(lambda a, op=op: tg.sum(op(a, axis=1) * np.arange(3.0, dtype=np.float32)))(x)
        assert np.all(np.isfinite(g))
    np.testing.assert_allclose(tg.softmax(x, axis=1).sum(axis=1), [1.0, 1.0], rtol=1e-6)
    g = tg.grad(lambda a: tg.logsumexp(a))(np.array([1000.0, 1000.0]))
    np.testing.assert_allclose(g, [0.5, 0.5])


def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    assert tg.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


def test_nll_is_stable_and_matches_the_definition():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1.0, 2.0]])
    labels = np.array([1, 2])
    loss = tg.nn.nll(logits, labels)
    expected = np.mean([1e4 - 0.0, np.log(np.exp(-2) + np.exp(-1) + 1)])
    np.testing.assert_allclose(loss, expected)
    g = tg.grad(lambda z: tg.nn.nll(z, labels))(logits)
    sm = np.exp(logits - logits.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(g, (sm - onehot) / 2, atol=1e-15)


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-800.0, 0.0, 800.0])
    np.testing.assert_array_equal(tg.sigmoid(x), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tg.grad(lambda a: tg.sum(tg.sigmoid(a)))(x), [0.0, 0.25, 0.0])
