"""Every op of the registry, checked the same way from its spec.

For each :class:`~tapegrad.ops.registry.OpSpec` the sampler draws valid inputs (shapes,
values away from poles and kinks, axes), and these properties must hold:

- the value equals numpy's (same dtype too), on float64 and on float32 inputs;
- the gradient equals central finite differences in float64, at first and second order
  (``check_grads`` also fails if an argument was mutated or two gradients share memory);
- the op reached through ``tapegrad.numpy``, through numpy's own function on traced values
  (the dispatch protocols) and as an ndarray method gives the same value and gradient;
- float32 inputs give float32 results wherever numpy keeps float32, and float32 gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import draw_case, per_op

import tapegrad as tg
from tapegrad.derivatives import tree_vdot
from tapegrad.ops import REGISTRY
from tapegrad.pytree import tree_leaves, tree_map
from tapegrad.testing import check_grads

NAMES = sorted(REGISTRY)
WITH_NUMPY = sorted(name for name in NAMES if REGISTRY[name].numpy is not None)


def _as(dtype, args, spec):
    """The differentiated arguments cast to ``dtype`` (others, such as labels, kept)."""
    return tuple(
        tree_map(lambda a: np.asarray(a, dtype), a) if k in spec.argnums else a
        for k, a in enumerate(args)
    )


def _projected(fn, kwargs, u):
    """``<out, u> + <out, out> / 2`` for ``out = fn(*args, **kwargs)``: a scalar whose
    gradient is the full VJP with ``u + out`` (a tree like the output: ``split`` returns a
    list of arrays). The quadratic term makes the cotangent reaching the op depend on the
    inputs, so second derivatives exercise every rule with a traced cotangent (for a
    linear op, ``<out, u>`` alone would never trace its rule)."""

    def loss(*a):
        out = fn(*a, **kwargs)
        return tg.add(tree_vdot(out, u), tg.multiply(tree_vdot(out, out), 0.5))

    return loss


def _direction(out):
    """A fixed random tree with the structure and shapes of the output ``out``."""
    rng = np.random.default_rng(0)
    return tree_map(lambda o: rng.standard_normal(np.shape(o)), out)


def _diff_fn(spec, args, fn, kwargs, u):
    """``fn`` as a function of the spec's differentiated arguments only."""

    def loss(*diff):
        full = list(args)
        for k, d in zip(spec.argnums, diff, strict=True):
            full[k] = d
        return _projected(fn, kwargs, u)(*full)

    return loss


@pytest.mark.parametrize("name", WITH_NUMPY)
@per_op(15)
@given(data=st.data())
def test_values_match_numpy(name, data):
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    for dtype in (np.float64, np.float32):
        cast = _as(dtype, args, spec)
        ours, theirs = spec.function(*cast, **kwargs), spec.numpy(*cast, **kwargs)
        for a, b in zip(tree_leaves(ours), tree_leaves(theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == np.float32 else 1e-12)
            assert np.asarray(a).dtype == np.asarray(b).dtype, (dtype, name)
        assert type(ours) is type(theirs) or isinstance(theirs, np.ndarray), (ours, theirs)


@pytest.mark.parametrize("name", NAMES)
@per_op(12)
@given(data=st.data())
def test_gradients_match_finite_differences(name, data):
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    u = _direction(spec.function(*args, **kwargs))
    check_grads(
        _projected(spec.function, kwargs, u),
        args,
        argnums=spec.argnums,
        order=spec.order,
        rtol=spec.rtol,
        atol=spec.atol,
    )


def _ways_in(spec):
    """The op as ``tapegrad.numpy`` gives it, as numpy's own function, and as a method."""
    import tapegrad.numpy as tnp

    ways = {"tapegrad": spec.function}
    if spec.numpy is not None:
        module = getattr(spec.numpy, "__module__", None) or ""
        if module.startswith("numpy"):  # not scipy's functions
            namespace = tnp.linalg if module == "numpy.linalg" else tnp
            ways["tapegrad.numpy"] = getattr(namespace, spec.name)
        if module.startswith("numpy") or isinstance(spec.numpy, np.ufunc):
            # scipy's Python functions call np.asarray on traced values; its ufuncs dispatch
            ways["numpy"] = spec.numpy
    if spec.method is not None:
        ways["method"] = lambda x, *a, **k: getattr(x, spec.method)(*a, **k)
    return ways


@pytest.mark.parametrize("name", NAMES)
@per_op(6)
@given(data=st.data())
def test_every_way_in_gives_the_same_value_and_gradient(name, data):
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    u = _direction(spec.function(*args, **kwargs))
    diff = [args[k] for k in spec.argnums]
    results = {}
    for way, fn in _ways_in(spec).items():
        value, grads = tg.value_and_grad(
            _diff_fn(spec, args, fn, kwargs, u), argnums=tuple(range(len(diff)))
        )(*diff)
        results[way] = [value, *tree_leaves(grads)]
    reference = results.pop("tapegrad")
    for way, got in results.items():
        for a, b in zip(reference, got, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} through {way}")


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].float32])
@per_op(4)
@given(data=st.data())
def test_float32_in_float32_out(name, data):
    spec = REGISTRY[name]
    args, kwargs, _ = draw_case(data, spec)
    args = _as(np.float32, args, spec)
    out = spec.function(*args, **kwargs)
    assert all(np.asarray(o).dtype == np.float32 for o in tree_leaves(out))
    u = tree_map(lambda o: np.ones(np.shape(o), np.float32), out)
    diff = [args[k] for k in spec.argnums]
    grads = tg.grad(
        _diff_fn(spec, args, spec.function, kwargs, u), argnums=tuple(range(len(diff)))
    )(*diff)
    assert all(g.dtype == np.float32 for g in tree_leaves(grads))
