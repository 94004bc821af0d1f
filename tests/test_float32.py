"""A float32 model stays float32 end to end: forward records, every cotangent, gradients."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

import tapegrad as tg
from tapegrad.interpreter import backward
from tapegrad.pytree import tree_leaves


@pytest.fixture(params=["relu", "tanh"])
def problem(request):
    rng = np.random.default_rng(0)
    params = tg.nn.init_mlp(rng, [12, 8, 8, 4], activation=request.param)
    x = rng.random((5, 12), dtype=np.float32)
    y = rng.integers(0, 4, 5)

    def loss(p, x, y):
        logits = tg.nn.mlp(p, x, activation=request.param)
        return tg.nn.nll(logits, y) + 1e-3 * tg.mean(tg.log_softmax(logits) ** 2)

    return loss, params, x, y


def test_every_forward_record_and_every_cotangent_is_float32(problem):
    loss, params, x, y = problem
    tape = tg.make_tape(loss)(params, x, y)
    assert all(np.asarray(r.ans).dtype == np.float32 for r in tape)

    seen = []

    def watch(prim):
        def vjp(i, g, ans, *args, **kw):
            ct = prim.vjp(i, g, ans, *args, **kw)
            seen.append((prim.name, np.asarray(g).dtype, np.asarray(ct).dtype))
            return ct

        return attrs.evolve(prim, vjp=vjp)

    tape.records[:] = [attrs.evolve(r, primitive=watch(r.primitive)) for r in tape]
    cts = backward(tape, {tape.output_node: np.ones((), np.float32)})
    assert len(seen) >= len(tape)
    assert all(g == np.float32 and c == np.float32 for _, g, c in seen), seen
    assert all(np.asarray(c).dtype == np.float32 for c in cts.values())


def test_the_backward_pass_traced_by_an_outer_tape_creates_only_float32_arrays(problem):
    # grad's own backward pass, recorded op by op on an outer tape
    loss, params, x, y = problem
    outer = tg.make_tape(lambda p: tree_leaves(tg.grad(loss)(p, x, y)))(params)
    names = {r.primitive.name for r in outer}
    assert {"matmul", "multiply", "softmax"} <= names  # the VJP rules themselves
    # masks (relu's x > 0) are recorded too, as booleans; every float is float32
    bad = [
        (r.primitive.name, r.ans.dtype)
        for r in outer
        if r.ans.dtype != np.float32 and r.ans.dtype.kind != "b"
    ]
    assert not bad


def test_gradients_and_updates_keep_float32(problem):
    loss, params, x, y = problem
    grads = tg.grad(loss)(params, x, y)
    assert all(g.dtype == np.float32 for g in tree_leaves(grads))
    for opt in (tg.optim.sgd(0.1), tg.optim.momentum(np.float64(0.1))):
        new, state = opt.update(params, grads, opt.init(params))
        assert all(p.dtype == np.float32 for p in tree_leaves(new))
        # the step count is a numpy integer (an input of a compiled step); floats stay float32
        floats = [p for p in tree_leaves(state) if np.asarray(p).dtype.kind == "f"]
        assert all(p.dtype == np.float32 for p in floats)
