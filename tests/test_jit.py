"""tg.jit: the compiled program gives the uncompiled call's results bit for bit, compiles
once per signature, refuses values turned into Python objects, and keeps no reference to
the caller's arrays."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import draw_case, per_op
from test_foundation import _gradient_vector

import tapegrad as tg
from tapegrad import compiler
from tapegrad.ops import REGISTRY
from tapegrad.pytree import tree_leaves, tree_map


def assert_bitwise_equal(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True), (x, y)


def mlp_problem(batch, seed=0):
    rng = np.random.default_rng(seed)
    params = tg.nn.init_mlp(rng, [30, 16, 16, 10])
    x = rng.random((batch, 30), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return params, x, y


def loss(params, x, y):
    return tg.nn.nll(tg.nn.mlp(params, x), y)


@pytest.mark.parametrize("make_opt", [lambda: tg.optim.sgd(0.1), lambda: tg.optim.momentum(0.05)])
@pytest.mark.parametrize("batch", [1, 7, 32])
def test_a_training_step_is_bitwise_the_uncompiled_step(make_opt, batch):
    opt = make_opt()

    def step(params, state, x, y):
        value, grads = tg.value_and_grad(loss)(params, x, y)
        params, state = opt.update(params, grads, state)
        return params, state, value

    params, x, y = mlp_problem(batch)
    state = opt.init(params)
    fast = tg.jit(step)
    slow_p, slow_s = params, state
    for k in range(4):  # the step count and the parameters change: one program serves all
        params, state, value = fast(params, state, x, y)
        slow_p, slow_s, slow_v = step(slow_p, slow_s, x, y)
        assert_bitwise_equal((params, state, value), (slow_p, slow_s, slow_v))
        assert int(state.step) == k + 1
    assert fast.compiled == 1
    assert all(p.dtype == np.float32 for p in tree_leaves(params))


def test_grad_of_grad_under_jit():
    def f(x):
        return tg.sum(tg.tanh(x) ** 3 * x)

    hvp = tg.jit(lambda x, v: tg.hvp(f, (x,), (v,))[0])
    x, v = np.linspace(-1, 1, 5), np.arange(5.0)
    for scale in (1.0, 2.0):
        assert_bitwise_equal(hvp(x * scale, v), tg.hvp(f, (x * scale,), (v,))[0])
    assert hvp.compiled == 1


@pytest.mark.parametrize("name", sorted(REGISTRY))
@per_op(4)
@given(data=st.data())
def test_every_registered_op_and_its_gradient_compile_bitwise(name, data):
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    rng = np.random.default_rng(0)
    u = tree_map(lambda o: rng.standard_normal(np.shape(o)), spec.function(*args, **kwargs))
    diff = [args[k] for k in spec.argnums]
    vector = _gradient_vector(spec, args, kwargs, u)
    assert_bitwise_equal(tg.jit(vector)(*diff), vector(*diff))

    def forward(*d):
        full = list(args)
        for k, a in zip(spec.argnums, d, strict=True):
            full[k] = a
        return spec.function(*full, **kwargs)

    assert_bitwise_equal(tg.jit(forward)(*diff), forward(*diff))


# ---------------------------------------------------------------------------------------
# Signatures and the cache


def test_what_compiles_again_and_what_does_not():
    calls = []

    def f(x, scale, n):
        calls.append(1)
        return tg.sum(x * scale) * n

    jf = tg.jit(f)
    assert float(jf(np.ones(3), 2.0, 1)) == 6.0
    assert float(jf(np.ones(3), 3.0, 1)) == 9.0  # a Python float is an input
    assert float(jf(np.full(3, 2.0), 3.0, 1)) == 18.0  # new values, same shape
    assert len(calls) == 1 and jf.compiled == 1
    assert float(jf(np.ones(3), 3.0, 2)) == 18.0  # a Python int is part of the signature
    assert float(jf(np.ones(4), 3.0, 2)) == 24.0  # a new shape
    jf(np.ones(4, np.float32), 3.0, 2)  # a new dtype
    assert len(calls) == 4 and jf.compiled == 4


def _tree_total(tree, mode="sum"):
    """A function of every leaf of a tree (static leaves change what it computes)."""
    total = 0.0
    for leaf in tree_leaves(tree):
        if isinstance(leaf, str):
            total = total * 2 if leaf == "double" else total
        elif leaf is not None and not isinstance(leaf, (bool, int)):
            total = total + tg.sum(tg.sin(leaf))
        elif isinstance(leaf, int):
            total = total + leaf
    return total


_BASE = {
    "a": [np.ones((2, 3)), (np.float32(0.5), 1.5)],
    "b": {"c": np.arange(4.0), "d": 3, "e": "plain", "f": None},
}

# each variant differs from _BASE in one place the signature describes
_VARIANTS = {
    "shape": lambda t: {**t, "a": [np.ones((3, 2)), t["a"][1]]},
    "dtype": lambda t: {**t, "a": [np.ones((2, 3), np.float32), t["a"][1]]},
    "0-d array for a numpy scalar": lambda t: {**t, "a": [t["a"][0], (np.array(0.5), 1.5)]},
    "float for an array": lambda t: {**t, "a": [t["a"][0], (0.5, 1.5)]},
    "list for a tuple": lambda t: {**t, "a": [t["a"][0], [np.float32(0.5), 1.5]]},
    "longer list": lambda t: {**t, "a": [*t["a"], np.ones(2)]},
    "key order": lambda t: {"b": t["b"], "a": t["a"]},
    "another key": lambda t: {**t, "b": {**t["b"], "g": np.ones(1)}},
    "int value": lambda t: {**t, "b": {**t["b"], "d": 4}},
    "bool for an int": lambda t: {**t, "b": {**t["b"], "d": True}},
    "string value": lambda t: {**t, "b": {**t["b"], "e": "double"}},
    "None for a string": lambda t: {**t, "b": {**t["b"], "e": None}},
}


@pytest.mark.parametrize("change", list(_VARIANTS))
def test_a_call_with_another_signature_never_runs_the_last_program(change):
    """The last program's guard (the fast path) must miss on any change the signature sees,
    and both programs must then keep giving the uncompiled function's values."""
    jf = tg.jit(_tree_total)
    other = _VARIANTS[change](_BASE)
    for tree, compiled in ((_BASE, 1), (_BASE, 1), (other, 2), (other, 2), (_BASE, 2)):
        assert_bitwise_equal(jf(tree), _tree_total(tree))
        assert jf.compiled == compiled


def test_python_float_inputs_keep_float32_float32():
    jf = tg.jit(lambda w, lr: w - lr * w)
    out = jf(np.ones(2, np.float32), 0.25)
    assert out.dtype == np.float32 and out.tolist() == [0.75, 0.75]
    assert jf(np.ones(2, np.float32), 0.5).tolist() == [0.5, 0.5]


def test_static_arguments():
    jf = tg.jit(lambda x, mode: tg.sum(x) if mode == "sum" else tg.mean(x), static_argnums=1)
    assert float(jf(np.arange(4.0), "sum")) == 6.0
    assert float(jf(np.arange(4.0), "mean")) == 1.5
    assert jf.compiled == 2
    jk = tg.jit(lambda x, *, axis: tg.sum(x, axis=axis), static_argnames="axis")
    assert jk(np.ones((2, 3)), axis=0).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(TypeError, match="hashable"):
        tg.jit(lambda x, s: x, static_argnums=1)(np.ones(1), [1, 2])


def test_a_function_that_keeps_recompiling_warns():
    jf = tg.jit(lambda x: tg.sum(x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 9):
            jf(np.ones(n))
    assert jf.compiled == 8
    assert any("compiled for 8 different" in str(w.message) for w in caught)


def test_the_cache_is_safe_under_threads():
    traced = []

    def f(x):
        traced.append(1)
        return tg.sum(tg.exp(x))

    jf = tg.jit(f)
    results = []

    def work(k):
        results.append((k, float(jf(np.full(3, float(k))))))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(traced) == 1 and jf.compiled == 1
    for k, value in results:
        assert value == float(np.sum(np.exp(np.full(3, float(k)))))


def test_the_program_keeps_no_reference_to_the_callers_arrays():
    x = np.ones(1000)
    ref = weakref.ref(x)
    jf = tg.jit(lambda a: tg.sum(a * a))
    jf(x)
    del x
    gc.collect()
    assert ref() is None


def test_under_another_transform_jit_calls_the_function():
    jf = tg.jit(lambda x: tg.sum(tg.sin(x) if hasattr(tg, "sin") else tg.tanh(x)))
    g = tg.grad(jf)(np.zeros(3))
    assert g.tolist() == [1.0, 1.0, 1.0] and jf.compiled == 0


# ---------------------------------------------------------------------------------------
# Values turned into Python objects


def test_bool_of_a_traced_value_inside_jit_names_the_op():
    def f(x):
        if tg.sum(x) > 0:
            return x
        return -x

    with pytest.raises(TypeError, match=r"bool\(\) of a traced value inside tg\.jit.*tg\.greater"):
        tg.jit(f)(np.ones(2))
    assert tg.grad(lambda x: tg.sum(f(x)))(np.ones(2)).tolist() == [1.0, 1.0]  # fine in grad


def test_float_of_the_loss_inside_jit_says_what_to_do():
    def f(x):
        value = tg.sum(x * x)
        print(float(value))
        return value

    with pytest.raises(TypeError, match=r"float\(\).*tg\.sum.*static argument"):
        tg.jit(f)(np.ones(2))


def test_an_argmax_inside_jit_is_recomputed_not_frozen():
    jf = tg.jit(lambda x: x[np.argmax(x)] * 2.0)
    assert float(jf(np.array([1.0, 5.0, 2.0]))) == 10.0
    assert float(jf(np.array([7.0, 5.0, 2.0]))) == 14.0


def test_value_dependent_shapes_are_refused_inside_jit():
    with pytest.raises(TypeError, match=r"np\.nonzero of a traced value inside tg\.jit"):
        tg.jit(lambda x: x[np.nonzero(x > 0)])(np.array([1.0, -1.0]))
    with pytest.raises(TypeError, match=r"hash\(\) of a traced value inside tg\.jit"):
        tg.jit(lambda i: {0: 1.0}.get(np.argmax(i), 2.0) * i)(np.array([1.0, 2.0]))
    g = tg.grad(lambda x: tg.sum(x[np.nonzero(x > 0)]))(np.array([1.0, -1.0]))
    assert g.tolist() == [1.0, 0.0]  # inside grad, computed on the values


def test_labels_are_inputs_not_constants():
    params, x, y = mlp_problem(5)
    jl = tg.jit(loss)
    assert_bitwise_equal(jl(params, x, y), loss(params, x, y))
    y2 = (y + 1) % 10
    assert_bitwise_equal(jl(params, x, y2), loss(params, x, y2))


# ---------------------------------------------------------------------------------------
# The compiler's passes and the generated code


def test_generated_code_reads_like_the_tape():
    params, x, y = mlp_problem(4)
    step = tg.jit(lambda p: tg.grad(loss)(p, x, y))
    source = step.lower(params).source
    assert source.startswith("def program(v0, v1, v2, v3, v4, v5):")
    assert "affine(" in source and "nll_backward(" in source and "del " in source
    assert "out=" in source  # an elementwise op writes into a dying buffer


def test_common_subexpressions_and_dead_code_are_removed():
    def f(x):
        unused = tg.exp(x) * 3.0  # noqa: F841  (dead)
        return tg.tanh(x) + tg.tanh(x)

    lowered = tg.jit(f).lower(np.ones(3))
    assert lowered.records == 5 and lowered.lines == 2  # exp, multiply, tanh twice, add
    assert lowered.source.count("tanh(") == 1


def test_constant_folding_computes_records_that_read_no_input():
    tape = tg.make_tape(lambda x: tg.exp(x) + 1.0)(np.zeros(2))
    program = compiler.from_tape(tape, [tape.output_node])
    first = program.records[0]
    as_constant = tg.Record(
        first.primitive, first.args, first.params, (None,), first.out, first.ans
    )
    folded = compiler.fold_constants(
        compiler.Program(program.inputs, (as_constant, *program.records[1:]), program.outputs)
    )
    # exp now reads a constant, so it is computed, and then so is the add that reads it
    assert len(folded) == 0 and isinstance(folded.outputs[0], compiler.Const)
    function, source = compiler.compile_program(folded)
    assert function(np.zeros(2))[0].tolist() == [2.0, 2.0] and "return (c" in source


@given(
    batch=st.integers(1, 5),
    classes=st.integers(2, 6),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_nll_saves_exactly_the_softmax_it_declares(batch, classes, dtype, seed):
    """share_residuals replaces softmax(logits, axis=1) by nll's saved array: bit for bit."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, classes)) * 10).astype(dtype)
    labels = rng.integers(0, classes, batch)
    prim, positions, params = tg.ops.layers.NLL.residual
    _loss, saved = tg.ops.layers.NLL.forward(logits, labels)
    args = (logits, labels)
    assert_bitwise_equal(saved, prim.forward(*(args[i] for i in positions), **params))


def test_a_step_that_returns_the_loss_computes_the_softmax_once():
    def step(params, x, y):
        value, grads = tg.value_and_grad(loss)(params, x, y)
        return grads, value

    params, x, y = mlp_problem(8)
    lowered = tg.jit(step).lower(params, x, y)
    assert "softmax(" not in lowered.source  # nll's saved softmax, not a second one
    assert ", v" in lowered.source.split("nll(")[0].splitlines()[-1]  # v, probs = nll(..)
    assert_bitwise_equal(tg.jit(step)(params, x, y), step(params, x, y))
