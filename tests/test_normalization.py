"""Normalisation and regularisation in ``tg.nn``: ``layer_norm``, ``batch_norm`` (values
against the textbook formulas, PyTorch's running statistics, gradients against finite
differences at first and second order, a replayed tape, ``tg.jit``, float32) and
``dropout`` (inverted scaling, keys, its gradient, float32, under ``tg.jit``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg
from tapegrad.testing import check_grads

nn = tg.nn


def _batch_norm_reference(x, scale, offset, rm, rv, training, momentum=0.1, eps=1e-5):
    """PyTorch's documented equations, in float64 numpy."""
    axes = (0, *range(2, x.ndim))
    column = (-1,) + (1,) * (x.ndim - 2)
    if training:
        m, v = x.mean(axis=axes), x.var(axis=axes)
        n = x.size // x.shape[1]
        new_m = (1 - momentum) * rm + momentum * m
        new_v = (1 - momentum) * rv + momentum * v * n / (n - 1)
    else:
        m, v, new_m, new_v = rm, rv, rm, rv
    y = (x - m.reshape(column)) / np.sqrt(v.reshape(column) + eps)
    return y * scale.reshape(column) + offset.reshape(column), new_m, new_v


def _params(rng, c, dtype=np.float64):
    scale, offset = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    return tuple(a.astype(dtype) for a in (scale, offset, rm, rv))


# ---------------------------------------------------------------------------------------
# batch_norm


shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=5),
    hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=4).filter(
        lambda s: s[0] * s[2] * s[3] > 1
    ),
)


@settings(max_examples=30)
@given(shape=shapes, training=st.booleans(), momentum=st.sampled_from([0.1, 0.5, 1.0]))
def test_batch_norm_matches_the_formulas(shape, training, momentum):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 3 + 1
    params = _params(rng, shape[1])
    got = nn.batch_norm(x, *params, training=training, momentum=momentum)
    want = _batch_norm_reference(x, *params, training, momentum)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if training:  # each channel of y: mean offset, variance scale^2 (biased, up to eps)
        axes = (0, *range(2, len(shape)))
        y = (got[0] - params[1].reshape((-1,) + (1,) * (len(shape) - 2))).mean(axis=axes)
        np.testing.assert_allclose(y, 0, atol=1e-12)
    else:
        assert got[1] is params[2] and got[2] is params[3]


def test_running_statistics_follow_pytorchs_convention_over_steps():
    rng = np.random.default_rng(0)
    scale, offset = np.ones(3), np.zeros(3)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) + step
        _, rm_new, rv_new = nn.batch_norm(x, scale, offset, rm, rv, training=True)
        batch = x.transpose(1, 0, 2, 3).reshape(3, -1)
        np.testing.assert_allclose(rm_new, 0.9 * rm + 0.1 * batch.mean(axis=1), rtol=1e-14)
        # the unbiased variance (ddof=1) in the running statistic
        np.testing.assert_allclose(rv_new, 0.9 * rv + 0.1 * batch.var(axis=1, ddof=1), rtol=1e-14)
        rm, rv = rm_new, rv_new


def test_running_statistics_carry_no_derivative():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2))
    params = _params(rng, 2)
    # only the running statistics' inputs reach new_mean: x does not
    g = tg.grad(lambda x: tg.sum(nn.batch_norm(x, *params, training=True)[1]))(x)
    assert g.tolist() == np.zeros((5, 2)).tolist()
    g = tg.grad(lambda rm: tg.sum(nn.batch_norm(x, *params[:2], rm, params[3], training=True)[1]))(
        params[2]
    )
    np.testing.assert_allclose(g, 0.9)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 3, 2)])
def test_batch_norm_gradients_match_finite_differences(shape, training):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    scale, offset, rm, rv = _params(rng, shape[1])
    u = rng.standard_normal(shape)

    def f(x, scale, offset):
        y = nn.batch_norm(x, scale, offset, rm, rv, training=training, momentum=0.3)[0]
        return tg.sum(tg.tanh(y) * u)  # nonlinear: every rule is traced at second order

    check_grads(f, (x, scale, offset), argnums=(0, 1, 2), order=2)

    def stats(rm, rv):  # the running statistics: derivatives with respect to themselves only
        _, m, v = nn.batch_norm(x, scale, offset, rm, rv, training=training, momentum=0.3)
        return tg.sum(m * v)

    check_grads(stats, (rm, rv), argnums=(0, 1), order=2)


def test_batch_norm_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for shape in ((6, 4), (3, 4, 5, 2)):
        x = rng.standard_normal(shape)
        scale, offset, rm, rv = _params(rng, 4)
        u = rng.standard_normal(shape)
        for training in (True, False):
            xt, st_, ot = (torch.tensor(a, requires_grad=True) for a in (x, scale, offset))
            rmt, rvt = torch.tensor(rm), torch.tensor(rv)  # updated in place by PyTorch
            yt = torch.nn.functional.batch_norm(
                xt, rmt, rvt, st_, ot, training=training, momentum=0.2, eps=1e-3
            )
            yt.backward(torch.tensor(u))
            y, new_m, new_v = nn.batch_norm(
                x, scale, offset, rm, rv, training=training, momentum=0.2, eps=1e-3
            )
            np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
            np.testing.assert_allclose(new_m, rmt.numpy(), atol=1e-14)
            np.testing.assert_allclose(new_v, rvt.numpy(), atol=1e-14)

            def loss(x, s, o, rm=rm, rv=rv, u=u, training=training):
                y = nn.batch_norm(x, s, o, rm, rv, training=training, momentum=0.2, eps=1e-3)[0]
                return tg.sum(y * u)

            grads = tg.grad(loss, argnums=(0, 1, 2))(x, scale, offset)
            for a, t in zip(grads, (xt, st_, ot), strict=True):
                np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-11)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_keeps_float32(training):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    params = _params(rng, 3, np.float32)
    out = nn.batch_norm(x, *params, training=training)
    assert [a.dtype for a in out] == [np.float32] * 3
    want = _batch_norm_reference(
        x.astype(np.float64), *(p.astype(np.float64) for p in params), training
    )
    for a, b in zip(out, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    grads = tg.grad(
        lambda x, s, o: tg.sum(nn.batch_norm(x, s, o, *params[2:], training=training)[0] ** 2),
        argnums=(0, 1, 2),
    )(x, *params[:2])
    assert [g.dtype for g in grads] == [np.float32] * 3


def test_batch_norm_errors():
    x = np.ones((1, 3, 1, 1))
    params = _params(np.random.default_rng(5), 3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.batch_norm(x, *params, training=True)
    nn.batch_norm(x, *params, training=False)  # evaluation needs no batch statistics
    with pytest.raises(ValueError, match=r"expected scale of shape \(2,\)"):
        nn.batch_norm(np.ones((4, 2)), *params, training=True)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        nn.batch_norm(np.ones(3), *params, training=True)


# ---------------------------------------------------------------------------------------
# layer_norm


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 6)])
def test_layer_norm_values_and_gradients(shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 2 - 1
    scale, offset = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    m, v = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    want = (x - m) / np.sqrt(v + 1e-3) * scale + offset
    np.testing.assert_allclose(nn.layer_norm(x, scale, offset, eps=1e-3), want, rtol=1e-12)
    u = rng.standard_normal(shape)
    check_grads(
        lambda x, s, o: tg.sum(tg.sin(nn.layer_norm(x, s, o)) * u),
        (x, scale, offset),
        argnums=(0, 1, 2),
        order=2,
    )


def test_layer_norm_against_pytorch_and_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 8))
    scale, offset, u = rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal(x.shape)
    xt, st_, ot = (torch.tensor(a, requires_grad=True) for a in (x, scale, offset))
    yt = torch.nn.functional.layer_norm(xt, (8,), st_, ot)
    yt.backward(torch.tensor(u))
    np.testing.assert_allclose(nn.layer_norm(x, scale, offset), yt.detach().numpy(), atol=1e-12)
    grads = tg.grad(lambda x, s, o: tg.sum(nn.layer_norm(x, s, o) * u), argnums=(0, 1, 2))(
        x, scale, offset
    )
    for a, t in zip(grads, (xt, st_, ot), strict=True):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-11)
    f32 = [a.astype(np.float32) for a in (x, scale, offset)]
    assert nn.layer_norm(*f32).dtype == np.float32
    grads = tg.grad(lambda *a: tg.sum(nn.layer_norm(*a) ** 2), argnums=(0, 1, 2))(*f32)
    assert [g.dtype for g in grads] == [np.float32] * 3


def test_layer_norm_is_one_record_and_checks_shapes():
    x = np.random.default_rng(8).standard_normal((2, 4))
    tape = tg.make_tape(lambda x: nn.layer_norm(x, np.ones(4), np.zeros(4)))(x)
    assert [r.primitive.name for r in tape] == ["normalize"]
    with pytest.raises(ValueError, match=r"expected offset of shape \(4,\)"):
        nn.layer_norm(x, np.ones(4), np.zeros(3))


def _replay(tape, leaves):
    """Evaluate ``tape``'s records on new input leaves (in the order of ``tape.inputs``)."""
    env = {node: leaf for (node, _, _), leaf in zip(tape.inputs, leaves, strict=True)}
    for rec in tape:
        args = [a if p is None else env[p] for a, p in zip(rec.args, rec.parents, strict=True)]
        ans = rec.primitive.forward(*args, **rec.params)
        env[rec.out] = ans[0] if rec.primitive.saves else ans
    return env[tape.output_node]


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_a_recorded_gradient_replays_on_new_inputs_and_compiles_bitwise(norm):
    rng = np.random.default_rng(9)
    shape = (3, 4) if norm == "layer" else (3, 4, 2, 2)
    params = _params(rng, 4)
    u = rng.standard_normal(shape)

    def loss(x, s):
        if norm == "layer":
            y = nn.layer_norm(x, s, params[1])
        else:
            y = nn.batch_norm(x, s, *params[1:], training=True)[0]
        return tg.sum(y * y * u)

    grad = tg.grad(loss, argnums=(0, 1))

    def vector(x, s):
        return tg.concatenate([tg.reshape(g, (-1,)) for g in grad(x, s)])

    x, x_new = rng.standard_normal(shape), rng.standard_normal(shape) * 2
    tape = tg.make_tape(vector, argnums=(0, 1))(x, params[0])
    np.testing.assert_allclose(
        _replay(tape, [x_new, params[0] + 1]), vector(x_new, params[0] + 1), rtol=1e-12
    )
    # under jit the rule recomputes the statistics with ops: the same floats as the saved ones
    x32 = x.astype(np.float32)
    s32 = params[0].astype(np.float32)
    np.testing.assert_array_equal(tg.jit(vector)(x32, s32), vector(x32, s32))


# ---------------------------------------------------------------------------------------
# dropout


def test_dropout_zeroes_a_fraction_and_scales_the_rest():
    x = np.ones((200, 500), np.float32)
    key = tg.random.key(0)
    y = nn.dropout(key, x, 0.3)
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.float32(1 / 0.7))
    # 100,000 Bernoulli(0.7) draws: the kept fraction is 0.7 +- 0.0015 (one standard error)
    assert abs(kept.mean() - 0.7) < 0.006
    np.testing.assert_allclose(y.mean(), 1.0, atol=0.01)  # the expectation is x
    np.testing.assert_array_equal(nn.dropout(key, x, 0.3), y)  # a pure function of the key
    assert (nn.dropout(tg.random.split(key)[0], x, 0.3) != y).any()
    # the mask is bernoulli(key, 1 - rate) on float32 draws for float32 activations
    mask = tg.random.bernoulli(key, np.float32(0.7), x.shape)
    np.testing.assert_array_equal(kept, mask)


def test_dropout_gradient_is_the_same_mask_and_scale():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((6, 7))
    key = tg.random.key(3)
    y = nn.dropout(key, x, 0.5)
    g = tg.grad(lambda a: tg.sum(nn.dropout(key, a, 0.5) * 3.0))(x)
    np.testing.assert_array_equal(g, np.where(y != 0, 6.0, 0.0))
    check_grads(lambda a: tg.sum(tg.tanh(nn.dropout(key, a, 0.5))), (x,), order=2)


def test_dropout_edge_rates_and_errors():
    x = np.arange(6.0).reshape(2, 3)
    key = tg.random.key(1)
    assert nn.dropout(key, x, 0.0) is x
    assert nn.dropout(key, x, 1.0).tolist() == np.zeros((2, 3)).tolist()
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match="rate"):
            nn.dropout(key, x, rate)


def test_dropout_under_jit_draws_from_the_key_it_is_called_with():
    x = np.ones((4, 8), np.float32)
    step = tg.jit(lambda key, x: nn.dropout(key, x, 0.5))
    keys = tg.random.split(tg.random.key(2), 3)
    masks = [step(k, x) for k in keys]
    for k, m in zip(keys, masks, strict=True):
        np.testing.assert_array_equal(m, nn.dropout(k, x, 0.5))
    assert (masks[0] != masks[1]).any() and step.compiled == 1
