"""The foundation: regression tests for the bugs a peer's test suite found, immutable records,
rules that read no concrete values (a recorded backward pass replays correctly on new
inputs), NaN hunting that names the rule, and modules that import only downward."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import draw_case, per_op, redraw

import tapegrad as tg
from tapegrad.derivatives import tree_vdot
from tapegrad.ops import REGISTRY
from tapegrad.pytree import tree_flatten, tree_leaves, tree_map
from tapegrad.testing import check_grads

# ---------------------------------------------------------------------------------------
# Bugs 1-3: transforms inside transforms, scalar cotangents


def test_jvp_inside_grad():
    g = tg.grad(lambda x: tg.sum(tg.jvp(tg.exp, (x,), (np.ones(2),))[1]))(np.array([0.0, 1.0]))
    np.testing.assert_allclose(g, [1.0, math.e])


def _f(x):
    return tg.tanh(x) * x


def test_jacobian_of_jacobian_matches_finite_differences():
    x = np.array([0.3, -0.7])
    jj = tg.jacobian(tg.jacobian(_f))(x)
    assert jj.shape == (2, 2, 2)
    eps = 1e-6
    for k in range(2):
        e = np.zeros(2)
        e[k] = eps
        fd = (tg.jacobian(_f)(x + e) - tg.jacobian(_f)(x - e)) / (2 * eps)
        np.testing.assert_allclose(jj[:, :, k], fd, rtol=1e-6, atol=1e-8)


def test_grad_of_a_hessian():
    x = np.array([0.3, -0.7])
    check_grads(lambda y: tg.sum(tg.hessian(lambda z: tg.sum(_f(z)))(y)), (x,))


@pytest.mark.parametrize("cotangent", [1, 1.0, np.float32(1.0), np.array(1.0)])
def test_vjp_pullback_takes_a_python_scalar_for_a_0d_output(cotangent):
    out, pullback = tg.vjp(lambda x: x * 3.0, np.array(2.0))
    (ct,) = pullback(cotangent)
    assert float(out) == 6.0 and float(ct) == 3.0 and ct.dtype == np.float64


# ---------------------------------------------------------------------------------------
# Bug 4: complex values are refused where they are made


@pytest.mark.parametrize(
    "fun", [lambda x: tg.abs(x * (1 + 1j)), lambda x: x * (1 + 0.2j)], ids=["abs", "scale"]
)
def test_a_complex_result_of_a_traced_input_is_refused(fun):
    with pytest.raises(TypeError, match=r"tg\.multiply.*complex values are not supported"):
        tg.grad(fun)(1.0)


# ---------------------------------------------------------------------------------------
# Bug 5: records are immutable all the way down


def test_record_params_are_read_only_and_shared_by_no_one():
    tape = tg.make_tape(lambda x: tg.sum(tg.exp(x)))(np.ones(2))
    exp_rec, sum_rec = tape
    for params in (exp_rec.params, sum_rec.params):
        with pytest.raises(TypeError, match="read-only"):
            params["axis"] = 5
        with pytest.raises(TypeError, match="read-only"):
            params.update(axis=5)
    with pytest.raises(AttributeError):
        exp_rec.params = {}  # the record itself is frozen
    assert dict(sum_rec.params) == {"axis": None, "keepdims": False}
    assert dict(exp_rec.params) == {}
    np.testing.assert_allclose(tg.exp(np.ones(2)), np.e)  # nothing leaked into later calls
    g = tg.grad(lambda x: tg.sum(tg.exp(x)))(np.zeros(2))
    assert g.tolist() == [1.0, 1.0]


def test_index_arrays_are_record_arguments_not_parameters():
    idx = np.array([2, 0, 2])
    tape = tg.make_tape(lambda x: tg.sum(x[idx]))(np.arange(3.0))
    rec = tape[0]
    assert rec.primitive.name == "getitem" and rec.args[1] is idx and rec.parents[1] is None
    idx[0] = 1  # the caller's array is theirs: the gradient was already computed from it
    assert tg.grad(lambda x: tg.sum(x[np.array([2, 0, 2])]))(np.arange(3.0)).tolist() == [
        1.0,
        0.0,
        2.0,
    ]


def test_one_cotangent_returned_for_two_parents_is_added_twice():
    # add's rule returns g itself for both of x + x: accumulation must not take the second
    # arrival of the same object for the first
    for f, want in ((lambda x: x + x, 2.0), (lambda x: x - (-x), 2.0), (lambda x: x * x, 2.0)):
        assert tg.grad(lambda x, f=f: tg.sum(f(x)))(np.ones(3)).tolist() == [want] * 3


# ---------------------------------------------------------------------------------------
# NaN hunting names the rule


def test_debug_nans_names_the_rule_its_record_and_its_inputs():
    with tg.debug_nans(), pytest.raises(FloatingPointError) as info, np.errstate(divide="ignore"):
        tg.grad(lambda x: tg.sum(tg.sqrt(x)))(np.array([0.0, 1.0]))
    assert str(info.value).startswith("tg.sqrt (record 0, v1): its VJP rule returned")
    assert "inputs v0: (2,) float64" in str(info.value)


def test_numpy_reductions_on_traced_values():
    g = tg.grad(lambda x: np.sum(x * x) + np.mean(x))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [2.5, 4.5])


# ---------------------------------------------------------------------------------------
# Rules read no concrete values: a recorded backward pass, replayed on new inputs, gives
# the gradient at the new inputs (a mask read at trace time would be frozen)


def replay(tape: tg.Tape, leaves: list) -> object:
    """Evaluate ``tape``'s records on new input leaves (in the order of ``tape.inputs``)."""
    env = {node: leaf for (node, _, _), leaf in zip(tape.inputs, leaves, strict=True)}
    for rec in tape:
        args = [a if p is None else env[p] for a, p in zip(rec.args, rec.parents, strict=True)]
        ans = rec.primitive.forward(*args, **rec.params)
        env[rec.out] = ans[0] if rec.primitive.saves else ans
    if tape.output_node is None:  # the output does not depend on the inputs
        return tape.output
    return env[tape.output_node]


def _gradient_vector(spec, args, kwargs, u):
    """The gradient of ``<op(*args), u>`` w.r.t. the spec's argnums, as one flat vector."""

    def loss(*diff):
        full = list(args)
        for k, d in zip(spec.argnums, diff, strict=True):
            full[k] = d
        return tree_vdot(spec.function(*full, **kwargs), u)

    grads = tg.grad(loss, argnums=tuple(range(len(spec.argnums))))
    return lambda *diff: tg.concatenate([tg.reshape(g, (-1,)) for g in tree_leaves(grads(*diff))])


@pytest.mark.parametrize("name", sorted(REGISTRY))
@per_op(8)
@given(data=st.data())
def test_a_recorded_backward_pass_replays_on_new_inputs(name, data):
    spec = REGISTRY[name]
    args, kwargs, first = draw_case(data, spec)
    new_args, _ = redraw(data, spec, first)
    rng = np.random.default_rng(0)
    u = tree_map(lambda o: rng.standard_normal(np.shape(o)), spec.function(*args, **kwargs))
    vector = _gradient_vector(spec, args, kwargs, u)
    diff = [args[k] for k in spec.argnums]
    tape = tg.make_tape(vector, argnums=tuple(range(len(diff))))(*diff)
    new_diff = [new_args[k] for k in spec.argnums]
    replayed = replay(tape, [leaf for d in new_diff for leaf in tree_flatten(d)[0]])
    np.testing.assert_allclose(replayed, vector(*new_diff), rtol=1e-12, atol=1e-12)


def test_replaying_relu_recomputes_its_mask():
    tape = tg.make_tape(tg.grad(lambda x: tg.sum(tg.relu(x))))(np.array([1.0, -1.0]))
    made = {r.primitive.name: r.out for r in tape}
    # the mask is computed inside the recorded relu_backward, from relu's recorded output
    (backward,) = [r for r in tape if r.primitive.name == "relu_backward"]
    assert made["relu"] in backward.parents
    assert replay(tape, [np.array([-1.0, 1.0])]).tolist() == [0.0, 1.0]


# ---------------------------------------------------------------------------------------
# Modules import only downward

ORDER = [
    "pytree",
    "tape",
    "ops",
    "debug",
    "interpreter",
    "transforms",
    "custom",
    "derivatives",
    "compiler",
    "jit",
    "testing",
    "random",
    "nn",
    "optim",
    "mnist",
    "datasets",
    "checkpoint",
    "distributed",
]


def _tapegrad_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tapegrad"):
            parts = node.module.split(".")
            names.add(parts[1] if len(parts) > 1 else node.names[0].name)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tapegrad."))
    return names


def test_modules_import_only_downward():
    package = Path(tg.__file__).parent
    for path in sorted(package.glob("*.py")):
        if path.stem == "__init__" or path.stem not in ORDER:
            continue
        rank = ORDER.index(path.stem)
        for name in _tapegrad_imports(path):
            assert name in ORDER and ORDER.index(name) < rank, (
                f"tapegrad/{path.name} imports tapegrad.{name}, which is not below it"
            )
    # inside the op table, each file imports only files listed above it
    table = ["axes", "registry", "core", "elementwise", "reductions", "shaping", "arranging"]
    table += ["products", "linalg", "convolution"]
    table += ["layers", "operators"]
    for path in sorted((package / "ops").glob("*.py")):
        if path.stem == "__init__":
            continue
        rank = table.index(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tapegrad.ops"):
                parts = node.module.split(".")
                used = [parts[2]] if len(parts) > 2 else [a.name for a in node.names]
                for name in used:
                    assert table.index(name) < rank, f"ops/{path.name} imports ops.{name}"
