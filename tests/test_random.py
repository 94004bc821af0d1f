"""tg.random: every draw a pure function of its key, the same in another process, in
threads and under tg.jit (where a key passed in gives fresh numbers on every call); the
numbers are numpy's Philox streams, the laws' moments are right, and the differentiable
arguments (uniform's bounds, a permuted array) carry their gradients."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.random as tgr

REPO = Path(__file__).resolve().parents[1]


def philox(seed_or_key, counter=(0, 0, 0, 0)):
    """numpy's own generator for a seed (hashed by SeedSequence) or a raw key."""
    kw = {"key": seed_or_key} if isinstance(seed_or_key, np.ndarray) else {"seed": seed_or_key}
    return np.random.Generator(np.random.Philox(counter=np.array(counter, np.uint64), **kw))


# ----------------------------------------------------------------------------- keys


def test_key_is_numpys_philox_key_for_the_seed():
    k = tgr.key(7)
    assert k.dtype == np.uint64 and k.shape == (2,)
    assert np.array_equal(k, np.random.Philox(7).state["state"]["key"])
    assert np.array_equal(tgr.key(np.int32(7)), k)
    assert not np.array_equal(tgr.key(8), k)
    assert np.array_equal(tgr.key(2**70), np.random.Philox(2**70).state["state"]["key"])


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("0", TypeError)]
)
def test_key_refuses_what_is_not_a_non_negative_integer(seed, error):
    with pytest.raises(error, match=r"tg\.random\.key"):
        tgr.key(seed)


@pytest.mark.parametrize(
    "bad", [np.zeros(2, np.int64), np.zeros(3, np.uint64), np.zeros((1, 2), np.uint64), 3]
)
@pytest.mark.parametrize(
    "draw",
    [
        lambda k: tgr.uniform(k),
        lambda k: tgr.normal(k),
        lambda k: tgr.bernoulli(k),
        lambda k: tgr.permutation(k, 3),
        lambda k: tgr.randint(k, (), 0, 3),
        lambda k: tgr.split(k),
        lambda k: tgr.fold_in(k, 1),
    ],
)
def test_every_function_checks_its_key(bad, draw):
    with pytest.raises(TypeError, match=r"a key is a uint64 array of shape \(2,\)"):
        draw(bad)


def test_split_is_a_pure_function_of_the_key_into_distinct_keys():
    k = tgr.key(0)
    before = k.copy()
    keys = tgr.split(k, 5)
    assert keys.shape == (5, 2) and keys.dtype == np.uint64
    assert np.array_equal(tgr.split(k, 5), keys)
    assert np.array_equal(k, before)  # the key is not consumed or changed
    rows = {tuple(r) for r in keys.tolist()} | {tuple(k.tolist())}
    assert len(rows) == 6
    # the children are 2n words at counter (0, 0, 0, 1) of the parent's stream ...
    words = philox(k, (0, 0, 0, 1)).bit_generator.random_raw(10)
    assert np.array_equal(keys.ravel(), words)
    # ... a prefix of a longer split, and not the words a draw from the parent reads
    assert np.array_equal(tgr.split(k, 2), keys[:2])
    assert np.array_equal(tgr.split(k, 1), keys[:1])
    draw_words = philox(k).bit_generator.random_raw(10)
    assert not set(draw_words.tolist()) & set(keys.ravel().tolist())


def test_split_arguments():
    with pytest.raises(ValueError, match="n must be at least 1"):
        tgr.split(tgr.key(0), 0)
    with pytest.raises(TypeError):
        tgr.split(tgr.key(0), 2.0)


def test_fold_in_gives_distinct_deterministic_keys():
    k = tgr.key(3)
    folded = [tgr.fold_in(k, i) for i in range(20)]
    assert all(f.dtype == np.uint64 and f.shape == (2,) for f in folded)
    assert len({tuple(f.tolist()) for f in folded}) == 20
    assert np.array_equal(tgr.fold_in(k, 5), folded[5])
    assert np.array_equal(tgr.fold_in(k, np.int32(5)), folded[5])
    assert np.array_equal(tgr.fold_in(k, np.uint64(5)), folded[5])
    assert np.array_equal(tgr.fold_in(k, -1), tgr.fold_in(k, 2**64 - 1))
    # not a split child, and different parents fold to different keys
    assert not any(np.array_equal(folded[0], c) for c in tgr.split(k, 4))
    assert not np.array_equal(tgr.fold_in(tgr.key(4), 0), folded[0])
    assert np.array_equal(folded[7], philox(k, (0, 0, 7, 2)).bit_generator.random_raw(2))
    with pytest.raises(TypeError, match="data must be an integer"):
        tgr.fold_in(k, 1.5)
    with pytest.raises(TypeError, match="0-d integer"):
        tgr.fold_in(k, np.array([1, 2]))


# ----------------------------------------------------------------------------- draws


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_uniform_is_numpys_philox_stream(dtype):
    k = tgr.key(11)
    u = tgr.uniform(k, (3, 4), dtype)
    assert u.dtype == dtype and u.shape == (3, 4)
    assert np.array_equal(u, philox(11).random((3, 4), dtype=dtype))
    assert np.array_equal(tgr.uniform(k, (3, 4), dtype), u)  # same key, same numbers
    assert tgr.uniform(k).shape == () and tgr.uniform(k, 5).shape == (5,)
    big = tgr.uniform(k, 100_000, dtype)
    assert big.min() >= 0 and big.max() < 1
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_uniform_bounds(dtype):
    k = tgr.key(1)
    u = tgr.uniform(k, (4,), dtype)
    scaled = tgr.uniform(k, (4,), dtype, minval=-2.0, maxval=3.0)
    assert scaled.dtype == dtype
    np.testing.assert_array_equal(scaled, (5.0 * u - 2.0).astype(dtype))
    lo, hi = np.array([0.0, 1.0, 2.0, 3.0]), np.array(10.0)
    per = tgr.uniform(k, (4,), dtype, minval=lo, maxval=hi)
    assert per.dtype == dtype
    assert np.all((lo <= per) & (per < hi))
    with pytest.raises(ValueError, match="must broadcast to shape"):
        tgr.uniform(k, (4,), minval=np.zeros(5))
    with pytest.raises(TypeError, match="float32 or float64"):
        tgr.uniform(k, (2,), np.int64)


def test_uniform_bounds_are_differentiable():
    k = tgr.key(5)
    u = tgr.uniform(k, (6,))

    def f(lo, hi):
        return tg.sum(tgr.uniform(k, (6,), minval=lo, maxval=hi) * np.arange(6.0))

    dlo, dhi = tg.grad(f, argnums=(0, 1))(np.zeros(6), np.array(2.0))
    np.testing.assert_allclose(dlo, (1 - u) * np.arange(6.0), rtol=1e-15)
    np.testing.assert_allclose(dhi, np.sum(u * np.arange(6.0)), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normal_is_numpys_standard_normal(dtype):
    k = tgr.key(2)
    z = tgr.normal(k, (5, 2), dtype)
    assert z.dtype == dtype and z.shape == (5, 2)
    assert np.array_equal(z, philox(2).standard_normal((5, 2), dtype=dtype))
    big = tgr.normal(k, 200_000, dtype)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
    assert abs(np.mean(big**3)) < 0.03 and abs(np.mean(big**4) - 3) < 0.06


def test_bernoulli():
    k = tgr.key(9)
    m = tgr.bernoulli(k, 0.3, (100_000,))
    assert m.dtype == np.bool_ and m.shape == (100_000,)
    assert abs(m.mean() - 0.3) < 0.005
    assert np.array_equal(m, tgr.uniform(k, (100_000,)) < 0.3)
    assert tgr.bernoulli(k, 0.0, (50,)).sum() == 0 and tgr.bernoulli(k, 1.0, (50,)).all()
    # shape defaults to p's; an array p broadcasts per entry
    p = np.array([0.0, 1.0, 0.5])
    assert tgr.bernoulli(k, p).shape == (3,)
    per_column = tgr.bernoulli(k, p, (1000, 3))
    assert per_column[:, 0].sum() == 0 and per_column[:, 1].all()
    # a float32 p draws float32 uniforms (what a float32 dropout mask wants)
    p32 = np.float32(0.25)
    assert np.array_equal(tgr.bernoulli(k, p32, (64,)), tgr.uniform(k, (64,), np.float32) < p32)
    assert tgr.bernoulli(k).shape == ()
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        tgr.bernoulli(k, 1.5, (2,))
    with pytest.raises(ValueError, match="must broadcast"):
        tgr.bernoulli(k, np.full(3, 0.5), (2,))


def test_permutation_of_n_and_of_an_array():
    k = tgr.key(4)
    perm = tgr.permutation(k, 10)
    assert perm.dtype == np.int64 and sorted(perm.tolist()) == list(range(10))
    assert np.array_equal(perm, philox(4).permutation(10))
    assert np.array_equal(tgr.permutation(k, np.int64(10)), perm)
    x = np.arange(20.0).reshape(10, 2)
    assert np.array_equal(tgr.permutation(k, x), x[perm])
    y = np.arange(30.0).reshape(3, 10)
    assert np.array_equal(tgr.permutation(k, y, axis=1), y[:, perm])
    assert np.array_equal(tgr.permutation(k, y, axis=-1), y[:, perm])
    # many keys: every position takes every value about equally often
    counts = np.zeros((4, 4))
    for sub in tgr.split(k, 4000):
        counts[np.arange(4), tgr.permutation(sub, 4)] += 1
    assert np.all(np.abs(counts - 1000) < 150)
    with pytest.raises(ValueError, match="n must be non-negative"):
        tgr.permutation(k, -1)
    with pytest.raises(ValueError, match="axis 2 out of range"):
        tgr.permutation(k, y, axis=2)
    with pytest.raises(TypeError, match="integer or an array"):
        tgr.permutation(k, 2.5)


def test_permuted_array_gradient_goes_back_to_its_places():
    k = tgr.key(6)
    perm = tgr.permutation(k, 5)
    weights = np.arange(1.0, 6.0)
    g = tg.grad(lambda x: tg.sum(tgr.permutation(k, x) * weights))(np.ones(5))
    expected = np.empty(5)
    expected[perm] = weights
    assert np.array_equal(g, expected)


def test_randint():
    k = tgr.key(8)
    r = tgr.randint(k, (1000,), 3, 7)
    assert r.dtype == np.int64 and r.min() == 3 and r.max() == 6
    assert np.array_equal(r, philox(8).integers(3, 7, size=(1000,), dtype=np.int64))
    assert tgr.randint(k, (4,), 0, 5, np.int32).dtype == np.int32
    per = tgr.randint(k, (2000, 2), np.array([0, 10]), np.array([2, 12]))
    assert set(per[:, 0].tolist()) == {0, 1} and set(per[:, 1].tolist()) == {10, 11}
    with pytest.raises(TypeError, match="integer dtype"):
        tgr.randint(k, (2,), 0, 3, np.float64)
    with pytest.raises(TypeError, match="minval must be integers"):
        tgr.randint(k, (2,), 0.5, 3)


def test_split_children_are_uncorrelated():
    a, b = tgr.split(tgr.key(12))
    x, y = tgr.normal(a, 50_000), tgr.normal(b, 50_000)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.02
    # neighbouring folds too
    x, y = tgr.normal(tgr.fold_in(a, 0), 50_000), tgr.normal(tgr.fold_in(a, 1), 50_000)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.02


# ----------------------------------------------------------------------------- processes, threads


CHILD = """
import json, numpy as np, tapegrad.random as tgr
k = tgr.key(42)
a, b = tgr.split(k)
print(json.dumps({
    "key": k.tolist(),
    "uniform": tgr.uniform(a, (4,)).tolist(),
    "normal32": tgr.normal(b, (3,), np.float32).tolist(),
    "fold": tgr.fold_in(k, 17).tolist(),
    "perm": tgr.permutation(tgr.fold_in(k, 1), 8).tolist(),
}))
"""


def test_the_same_numbers_in_another_process():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=REPO
    )
    child = json.loads(out.stdout)
    k = tgr.key(42)
    a, b = tgr.split(k)
    assert child == {
        "key": k.tolist(),
        "uniform": tgr.uniform(a, (4,)).tolist(),
        "normal32": tgr.normal(b, (3,), np.float32).tolist(),
        "fold": tgr.fold_in(k, 17).tolist(),
        "perm": tgr.permutation(tgr.fold_in(k, 1), 8).tolist(),
    }


def test_the_same_numbers_in_threads():
    keys = tgr.split(tgr.key(0), 16)
    expected = [tgr.normal(k, (500,)) for k in keys]
    results: dict[int, list] = {}
    start = threading.Barrier(8)

    def work(t):
        start.wait()
        results[t] = [tgr.normal(keys[(t + j) % 16], (500,)) for j in range(16)]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(8):
        for j in range(16):
            assert np.array_equal(results[t][j], expected[(t + j) % 16])


# ----------------------------------------------------------------------------- under tg.jit


def test_jit_draws_from_the_key_it_is_called_with():
    f = tg.jit(lambda k: tgr.uniform(k, (3,)))
    k1, k2 = tgr.split(tgr.key(0))
    a, b = f(k1), f(k2)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, tgr.uniform(k1, (3,)))
    assert np.array_equal(b, tgr.uniform(k2, (3,)))
    assert np.array_equal(f(k1), a)  # and the compiled program again
    assert f.compiled == 1
    assert "random_uniform(v0" in f.lower(k1).source  # a recorded draw, not a constant


def test_jit_of_split_fold_in_key_and_every_draw():
    def fun(seed, step, x):
        k = tgr.fold_in(tgr.key(seed), step)
        k1, k2, k3, k4, k5 = tgr.split(k, 5)
        return (
            tgr.uniform(k1, (2,), np.float32, minval=-1.0, maxval=1.0),
            tgr.normal(k2, (2, 2)),
            tgr.bernoulli(k3, 0.5, (6,)),
            tgr.permutation(k4, x),
            tgr.randint(k5, (3,), 0, 100),
        )

    fast = tg.jit(fun)
    x = np.arange(12.0).reshape(6, 2)
    seen = set()
    for seed in range(2):
        for step in range(3):
            args = (np.int64(seed), np.int64(step), x)
            out, ref = fast(*args), fun(*args)
            for o, r in zip(out, ref, strict=True):
                assert o.dtype == r.dtype and np.array_equal(o, r)
            seen.add(out[1].tobytes())
    assert len(seen) == 6 and fast.compiled == 1


def test_jitted_dropout_step_gets_a_fresh_mask_each_call():
    def loss(w, x, k):
        keep = tgr.bernoulli(k, np.float32(0.5), x.shape)
        h = tg.where(keep, x / np.float32(0.5), np.float32(0.0))
        return tg.sum((h @ w) ** 2)

    step = tg.jit(tg.value_and_grad(loss))
    w = np.ones((4, 2), np.float32)
    x = np.arange(1.0, 17.0, dtype=np.float32).reshape(4, 4)
    k = tgr.key(0)
    grads = set()
    for i in range(4):
        sub = tgr.fold_in(k, i)
        (v, g), (v0, g0) = step(w, x, sub), tg.value_and_grad(loss)(w, x, sub)
        assert v == v0 and np.array_equal(g, g0) and g.dtype == np.float32
        grads.add(g.tobytes())
    assert len(grads) == 4 and step.compiled == 1


def test_a_constant_key_inside_jit_is_folded_to_its_numbers():
    k = tgr.key(1)
    f = tg.jit(lambda x: x + tgr.normal(k, (3,)))
    assert np.array_equal(f(np.zeros(3)), tgr.normal(k, (3,)))
    assert "random_normal" not in f.lower(np.zeros(3)).source
