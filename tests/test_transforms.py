"""grad / value_and_grad / make_tape: pytrees, argnums, has_aux, dtypes, errors and purity."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from problems import mlp_loss, mlp_problem, run_in_threads

import tapegrad as tg
from tapegrad.tape import current_tape
from tapegrad.testing import arrays, shapes


def quadratic(p):
    return tg.sum(p["w"] ** 2) + 3.0 * p["b"] + tg.sum(p["layers"][0] * p["layers"][1][0])


def make_params(rng, dtype=np.float64):
    return {
        "w": rng.standard_normal((2, 3)).astype(dtype),
        "b": dtype(0.5) if dtype is not float else 0.5,
        "layers": [rng.standard_normal(4).astype(dtype), (rng.standard_normal(4).astype(dtype),)],
    }


def test_gradient_has_the_structure_shapes_and_values_of_the_parameters():
    p = make_params(np.random.default_rng(0))
    g = tg.grad(quadratic)(p)
    assert set(g) == {"w", "b", "layers"} and isinstance(g["layers"], list)
    assert isinstance(g["layers"][1], tuple)
    np.testing.assert_array_equal(g["w"], 2 * p["w"])
    assert g["b"].shape == () and float(g["b"]) == 3.0 and isinstance(g["b"], np.ndarray)
    np.testing.assert_array_equal(g["layers"][0], p["layers"][1][0])
    np.testing.assert_array_equal(g["layers"][1][0], p["layers"][0])


def test_named_tuples_keep_their_type():
    Pair = namedtuple("Pair", "a b")
    g = tg.grad(lambda t: tg.sum(t.a * t.b))(Pair(np.ones(2), np.full(2, 3.0)))
    assert type(g) is Pair and g.a.tolist() == [3.0, 3.0] and g.b.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_dtypes_are_kept_leaf_by_leaf(dtype):
    rng = np.random.default_rng(1)
    p = {"a": rng.standard_normal(3).astype(dtype), "b": rng.standard_normal(3).astype(np.float64)}
    # a float64 constant must not widen a float32 parameter's gradient
    g = tg.grad(lambda q: tg.sum(q["a"] * np.ones(3) + q["b"] * q["a"]))(p)
    assert g["a"].dtype == dtype and g["b"].dtype == np.float64


def test_unused_leaves_get_zeros_not_none():
    g = tg.grad(lambda p: tg.sum(p["used"]))(
        {"used": np.ones(2), "unused": np.ones((2, 2), np.float32)}
    )
    assert g["unused"].dtype == np.float32 and g["unused"].shape == (2, 2) and not g["unused"].any()
    # an output that does not depend on the argument at all
    g = tg.grad(lambda x: 3.0)(np.ones(3))
    assert g.tolist() == [0.0, 0.0, 0.0]


def test_python_float_argument():
    g = tg.grad(lambda x: x * x * x)(2.0)
    assert isinstance(g, np.ndarray) and g.dtype == np.float64 and float(g) == 12.0


def test_argnums_tuple_and_negative():
    f = lambda x, y, z: tg.sum(x * y * z)  # noqa: E731
    x, y, z = np.array(2.0), np.array(3.0), np.array(5.0)
    gx, gz = tg.grad(f, argnums=(0, 2))(x, y, z)
    assert (float(gx), float(gz)) == (15.0, 6.0)
    assert float(tg.grad(f, argnums=-1)(x, y, z)) == 6.0
    (gy,) = tg.grad(f, argnums=(1,))(x, y, z)
    assert float(gy) == 10.0


def test_keyword_arguments_are_passed_and_not_differentiated():
    g = tg.grad(lambda x, scale=1.0: tg.sum(x) * scale)(np.ones(2), scale=4.0)
    assert g.tolist() == [4.0, 4.0]


def test_has_aux_and_value_and_grad():
    def f(w, x):
        pred = x @ w
        return tg.mean(pred**2), {"pred": pred, "n": 3}

    w, x = np.array([1.0, 2.0]), np.array([[1.0, 0.0], [0.0, 1.0]])
    (value, aux), g = tg.value_and_grad(f, has_aux=True)(w, x)
    assert float(value) == 2.5
    assert type(aux["pred"]) is np.ndarray and aux["pred"].tolist() == [1.0, 2.0] and aux["n"] == 3
    np.testing.assert_allclose(g, [1.0, 2.0])
    g2, aux2 = tg.grad(f, has_aux=True)(w, x)
    np.testing.assert_array_equal(g, g2)
    assert aux2["pred"].tolist() == [1.0, 2.0]


def test_non_scalar_output_is_an_error_naming_the_shape():
    with pytest.raises(ValueError, match=r"scalar.*shape \(2, 3\).*tg.sum"):
        tg.grad(lambda x: x * 2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="has_aux=True"):
        tg.grad(lambda x: (tg.sum(x), 1))(np.ones(2))
    with pytest.raises(ValueError, match="pair"):
        tg.grad(lambda x: tg.sum(x), has_aux=True)(np.ones(2))


def test_boolean_and_integer_outputs_are_type_errors():
    # a comparison or a count has no derivative: an error, as in JAX and autograd, not zeros
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="real floating-point scalar, got bool"):
        tg.grad(lambda a: np.allclose(a, a * 3.0 / 3.0))(x)
    with pytest.raises(TypeError, match=r"got int64.*count"):
        tg.grad(lambda a: np.sum(a > 1.5))(x)
    with pytest.raises(TypeError, match="got int64"):
        tg.value_and_grad(lambda a: 3)(x)
    np.testing.assert_array_equal(tg.grad(lambda a: 3.0)(x), [0.0, 0.0])  # a float constant
    assert current_tape() is None


def test_integer_and_boolean_leaves_are_type_errors_naming_the_leaf():
    with pytest.raises(TypeError, match=r"params\['layers'\]\[1\]\['W'\].*int64"):
        tg.grad(lambda params: 0.0)({"layers": [{"W": np.ones(2)}, {"W": np.arange(2)}]})
    with pytest.raises(TypeError, match=r"x.*bool"):
        tg.grad(lambda x: 0.0)(np.array([True]))
    with pytest.raises(TypeError, match="type int"):
        tg.grad(lambda x: 0.0)(3)
    assert current_tape() is None


def test_argnums_errors():
    with pytest.raises(ValueError, match=r"argnums=2 is out of range.*2 positional"):
        tg.grad(lambda x, y: tg.sum(x), argnums=2)(np.ones(1), np.ones(1))
    with pytest.raises(TypeError, match="argnums"):
        tg.grad(lambda x: x, argnums="0")
    with pytest.raises(ValueError, match="repeat"):
        tg.grad(lambda x: x, argnums=(0, 0))


def test_escaped_traced_value_is_reported_plainly():
    kept = []

    def f(x):
        kept.append(x * 2)
        return tg.sum(x)

    tg.grad(f)(np.ones(2))
    with pytest.raises(RuntimeError, match="escaped"):
        tg.sum(kept[0])


def test_traced_values_refuse_silent_conversion():
    def f(x):
        with pytest.raises(TypeError, match="drop its derivative"):
            np.asarray(x)
        with pytest.raises(TypeError, match="drop its derivative"):
            float(x[0])
        with pytest.raises(TypeError, match=r"np\.spacing has no derivative rule"):
            np.spacing(x)  # a ufunc without a rule
        with pytest.raises(TypeError, match="immutable"):
            x[0] = 1.0
        return tg.sum(np.exp(x) + np.ones(2) * x)  # ufuncs with a rule dispatch to tapegrad

    np.testing.assert_allclose(tg.grad(f)(np.zeros(2)), [2.0, 2.0])


def test_traced_value_interface():
    def f(x):
        assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype.kind == "f"
        assert len(x) == 2
        mask = x > 0  # recorded (a replayed tape recomputes it), with no derivative
        assert mask.dtype == bool and np.asarray(mask).all() and bool(mask[0, 0])
        y = (-x).T @ np.ones(2, np.float32)
        z = x.reshape(3, 2).sum(axis=0) + x.mean() + x.max(axis=1).sum() + abs(x).min()
        w = sum(row.sum() for row in x)
        return tg.sum(y) + tg.sum(z) + w + (2 ** x[0, 0]) + (1 / x[1, 2]) - x[0, 1] ** 2

    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3)
    g = tg.grad(f)(x)
    assert g.dtype == np.float32
    tg.testing.check_grads(f, (x,), rtol=1e-5)


# ---------------------------------------------------------------------------------------
# Purity: inputs untouched, no tape left behind, independent gradient arrays


@given(x=arrays(shapes(min_dims=1), low=0.5, high=2))
def test_arguments_are_bit_for_bit_unchanged(x):
    before = x.copy()
    p = {"x": x, "y": [x]}
    tg.grad(lambda q: tg.sum(tg.exp(q["x"]) * q["y"][0]) + tg.sum(q["x"][..., :1] ** 2))(p)
    assert p["x"] is x and np.array_equal(x, before) and x.tobytes() == before.tobytes()


def test_no_tape_is_active_after_grad_returns_or_raises():
    assert current_tape() is None
    tg.grad(lambda x: tg.sum(x))(np.ones(2))
    assert current_tape() is None

    def bad(x):
        assert current_tape() is not None
        raise KeyError("boom")

    with pytest.raises(KeyError):
        tg.grad(bad)(np.ones(2))
    assert current_tape() is None


def test_gradients_never_share_memory():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx, gy = tg.grad(lambda a, b: tg.sum(a + b), argnums=(0, 1))(x, y)
    assert not np.shares_memory(gx, gy)
    for g in (gx, gy):
        assert g.flags.writeable and g.flags.owndata
        assert not np.shares_memory(g, x) and not np.shares_memory(g, y)
    g = tg.grad(lambda a: tg.sum(a.reshape(-1)))(np.ones((2, 2)))
    assert g.flags.owndata and g.flags.writeable


def test_eight_threads_give_the_single_thread_answers():
    problems = [mlp_problem(s) for s in range(8)]
    expected = [tg.value_and_grad(mlp_loss)(*p) for p in problems]
    results: dict[int, list] = {}

    def work(k):
        results[k] = [tg.value_and_grad(mlp_loss)(*problems[k]) for _ in range(30)]

    run_in_threads(work)
    for k in range(8):
        for value, g in results[k]:
            assert value == expected[k][0]
            for name in g:
                np.testing.assert_array_equal(g[name], expected[k][1][name])


def test_asyncio_tasks_do_not_see_each_others_tapes():
    problems = [mlp_problem(s) for s in range(4)]
    expected = [tg.grad(mlp_loss)(*p) for p in problems]

    async def one(k):
        tape_ids = set()

        def loss(params, x, y):
            tape_ids.add(current_tape().id)
            return mlp_loss(params, x, y)

        out = []
        for _ in range(5):
            out.append(tg.grad(loss)(*problems[k]))
            await asyncio.sleep(0)
        return out, tape_ids

    async def main():
        return await asyncio.gather(*(one(k) for k in range(4)))

    all_ids = []
    for k, (grads, ids) in enumerate(asyncio.run(main())):
        all_ids.extend(ids)
        for g in grads:
            np.testing.assert_array_equal(g["W1"], expected[k]["W1"])
    assert len(all_ids) == len(set(all_ids)) == 20


# ---------------------------------------------------------------------------------------
# make_tape


def test_make_tape_records_only_what_depends_on_the_parameters():
    params, x, y = mlp_problem(0)
    x32 = x.astype(np.float32)
    tape = tg.make_tape(mlp_loss)(
        {k: v.astype(np.float32) for k, v in params.items()}, np.exp(x32), y
    )
    assert len(tape) == 4  # affine, tanh, affine, nll: np.exp(x) was a constant
    records = list(tape)
    assert [r.primitive.name for r in records] == ["affine", "tanh", "affine", "nll"]
    with pytest.raises(AttributeError):
        records[0].out = 99  # records are frozen
    text = str(tape)
    lines = text.splitlines()
    assert lines[0] == "v0 = input   # (5, 4) float32  params['W1']"
    assert lines[4] == "v4 = affine(v0, v1, const(6, 4))   # (6, 5) float32"
    assert lines[5] == "v5 = tanh(v4)   # (6, 5) float32"
    assert lines[7].startswith("v7 = nll(v6, const(6,))   # () float32")
    assert lines[-1] == "return v7"
    dot = tape.to_dot()
    assert dot.startswith("digraph tape {") and "v4 -> v5;" in dot and "v0 -> v4;" in dot


@given(n=st.integers(1, 30))
def test_tape_length_counts_primitive_calls(n):
    def chain(x):
        for _ in range(n):
            x = tg.tanh(x)
        return tg.sum(x)

    assert len(tg.make_tape(chain)(np.ones(3))) == n + 1


def test_plain_numpy_call_when_nothing_is_traced():
    a = np.arange(3.0)
    out = tg.exp(a)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, np.exp(a))
    assert current_tape() is None
