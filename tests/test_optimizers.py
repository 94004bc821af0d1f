"""tg.optim's optimizers, transformations and schedules against their published equations.

Every optimizer gets the same gradient sequence as a plain numpy transcription of its
equations (PyTorch's documentation of torch.optim, written out below leaf by leaf) and,
when ``import torch`` works, as torch.optim itself; the parameters must agree after every
step, with and without (masked) weight decay. Then: dtypes kept, inputs never mutated,
``chain`` and ``clip_by_global_norm``, masks, the schedules' values, and a jitted Adam
training step bit for bit the uncompiled one.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import optim

try:
    import torch
except ImportError:  # torch is an optional cross-check, never a dependency
    torch = None

STEPS = 6


def make_problem(dtype=np.float64, seed=0):
    """Parameters (a matrix, a vector with tiny gradients, a scalar) and STEPS gradients.

    The vector's gradients are ~1e-6, so that where eps sits (inside or outside the
    square root) changes the numbers; the signs flip so that moments cancel.
    """
    rng = np.random.default_rng(seed)
    params = {
        "w": rng.normal(size=(3, 2)).astype(dtype),
        "b": rng.normal(size=(2,)).astype(dtype),
        "s": np.array(0.5, dtype),
    }
    grads = [
        {
            "w": rng.normal(size=(3, 2)).astype(dtype),
            "b": (1e-6 * rng.normal(size=(2,))).astype(dtype),
            "s": np.array(rng.normal(), dtype),
        }
        for _ in range(STEPS)
    ]
    return params, grads


# ----------------------------------------------------------------------------- references
# One leaf at a time: theta and the gradient sequence in, theta after each step out.
# ``decay`` is the leaf's weight decay (0 where the mask excludes it). t counts from 1.


def ref_sgd(theta, grads, lr, weight_decay=0.0):
    out = []
    for g in grads:
        g = g + weight_decay * theta
        theta = theta - lr * g
        out.append(theta)
    return out


def ref_momentum(theta, grads, lr, mu=0.9, weight_decay=0.0, nesterov=False):
    b, out = np.zeros_like(theta), []
    for g in grads:
        g = g + weight_decay * theta
        b = mu * b + g
        theta = theta - lr * (g + mu * b if nesterov else b)
        out.append(theta)
    return out


def ref_adam(theta, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    m, v, out = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta - lr * weight_decay * theta
        else:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def ref_rmsprop(
    theta, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, mu=0.0, centered=False
):
    v, g_ave, b, out = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta), []
    for g in grads:
        g = g + weight_decay * theta
        v = alpha * v + (1 - alpha) * g**2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v_tilde - g_ave**2
        if mu > 0:
            b = mu * b + g / (np.sqrt(v_tilde) + eps)
            theta = theta - lr * b
        else:
            theta = theta - lr * g / (np.sqrt(v_tilde) + eps)
        out.append(theta)
    return out


def ref_adagrad(
    theta, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10
):
    state_sum, out = np.full_like(theta, initial_accumulator_value), []
    for t, g in enumerate(grads, start=1):
        clr = lr / (1 + (t - 1) * lr_decay)
        g = g + weight_decay * theta
        state_sum = state_sum + g**2
        theta = theta - clr * g / (np.sqrt(state_sum) + eps)
        out.append(theta)
    return out


REFERENCES = {
    "sgd": ref_sgd,
    "momentum": ref_momentum,
    "nesterov": lambda theta, grads, **kw: ref_momentum(theta, grads, nesterov=True, **kw),
    "adam": ref_adam,
    "adamw": lambda theta, grads, weight_decay=0.01, **kw: ref_adam(
        theta, grads, weight_decay=weight_decay, decoupled=True, **kw
    ),
    "rmsprop": ref_rmsprop,
    "adagrad": ref_adagrad,
}

# (optimizer, keyword arguments); lr is passed first, positionally.
CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.05}),
    ("momentum", {"lr": 0.05}),
    ("momentum", {"lr": 0.05, "mu": 0.8, "weight_decay": 0.05}),
    ("nesterov", {"lr": 0.05}),
    ("nesterov", {"lr": 0.05, "mu": 0.7, "weight_decay": 0.05}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "b1": 0.8, "b2": 0.95, "eps": 1e-6, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}),  # AdamW's default weight decay, 0.01
    ("adamw", {"lr": 0.01, "weight_decay": 0.0}),
    ("adamw", {"lr": 0.01, "b1": 0.8, "eps": 1e-7, "weight_decay": 0.3}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.05}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.01, "mu": 0.9}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "mu": 0.5, "centered": True, "weight_decay": 0.05}),
    ("adagrad", {"lr": 0.1}),
    (
        "adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.1,
            "weight_decay": 0.05,
            "initial_accumulator_value": 0.1,
            "eps": 1e-6,
        },
    ),
]


def case_id(case):
    name, kw = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items() if k != "lr")


def make_optimizer(name, kw, mask=None):
    kw = dict(kw)
    lr = kw.pop("lr")
    if mask is not None:
        kw["mask"] = mask
    return getattr(optim, name)(lr, **kw)


def has_decay(name, kw):
    return kw.get("weight_decay", 0.01 if name == "adamw" else 0.0) > 0


def run(opt, params, grads):
    """The parameters after each step, and the final state."""
    state, out = opt.init(params), []
    for g in grads:
        params, state = opt.update(params, g, state)
        out.append(params)
    return out, state


def reference(name, kw, params, grads, mask=None):
    """The reference's parameters after each step, leaf by leaf (mask: leaves that decay)."""
    per_leaf = {}
    for leaf, theta in params.items():
        leaf_kw = dict(kw)
        if mask is not None and not mask[leaf]:
            leaf_kw["weight_decay"] = 0.0
        per_leaf[leaf] = REFERENCES[name](theta, [g[leaf] for g in grads], **leaf_kw)
    return [{leaf: per_leaf[leaf][k] for leaf in params} for k in range(len(grads))]


def torch_run(name, kw, params, grads, mask=None):
    """torch.optim's parameters after each step; masked leaves in a group without decay."""
    kw = dict(kw)
    lr = kw.pop("lr")
    if name in ("adam", "adamw"):
        kw["betas"] = (kw.pop("b1", 0.9), kw.pop("b2", 0.999))
    if "mu" in kw:
        kw["momentum"] = kw.pop("mu")
    cls = {
        "sgd": torch.optim.SGD,
        "momentum": torch.optim.SGD,
        "nesterov": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }[name]
    if name in ("momentum", "nesterov"):
        kw.setdefault("momentum", 0.9)
    if name == "nesterov":
        kw["nesterov"] = True
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    decay = mask if mask is not None else dict.fromkeys(params, True)
    groups = [
        {"params": [tensors[k] for k in params if decay[k]]},
        {"params": [tensors[k] for k in params if not decay[k]], "weight_decay": 0.0},
    ]
    opt = cls([g for g in groups if g["params"]], lr=lr, **kw)
    out = []
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        out.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return out


def assert_steps_close(got, want, rtol=1e-12, atol=1e-15):
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        for leaf in b:
            np.testing.assert_allclose(
                a[leaf], b[leaf], rtol=rtol, atol=atol, err_msg=f"{k}/{leaf}"
            )


MASK = {"w": True, "b": False, "s": False}
# every case with all leaves decaying, and the cases with weight decay once more masked
MASKED_CASES = [(c, False) for c in CASES] + [(c, True) for c in CASES if has_decay(*c)]
MASKED_IDS = [case_id(c) + ("-masked" if m else "") for c, m in MASKED_CASES]


@pytest.mark.parametrize(("case", "masked"), MASKED_CASES, ids=MASKED_IDS)
def test_optimizer_follows_its_equations(case, masked):
    name, kw = case
    mask = MASK if masked else None
    params, grads = make_problem()
    got, state = run(make_optimizer(name, kw, mask), params, grads)
    assert state.step == STEPS and type(state.step) is np.int64
    assert_steps_close(got, reference(name, kw, params, grads, mask))
    # the update moved every leaf (the tiny gradients too)
    assert all(not np.array_equal(got[0][leaf], params[leaf]) for leaf in params)


@pytest.mark.skipif(torch is None, reason="torch is not installed (an optional cross-check)")
@pytest.mark.parametrize(("case", "masked"), MASKED_CASES, ids=MASKED_IDS)
def test_optimizer_matches_torch_optim(case, masked):
    name, kw = case
    mask = MASK if masked else None
    params, grads = make_problem()
    got, _ = run(make_optimizer(name, kw, mask), params, grads)
    assert_steps_close(got, torch_run(name, kw, params, grads, mask))


def test_the_references_tell_eps_placement_and_decay_kinds_apart():
    """The tests above can fail: eps inside the root, or L2 in place of decoupled decay,
    give numbers far outside their tolerance."""
    params, grads = make_problem()
    theta, gs = params["b"], [g["b"] for g in grads]
    outside = ref_adam(theta, gs, lr=0.01)[-1]
    m = v = 0
    for t, g in enumerate(gs, start=1):
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        theta = theta - 0.01 * (m / (1 - 0.9**t)) / np.sqrt(v / (1 - 0.999**t) + 1e-8)
    assert np.max(np.abs(theta - outside)) > 1e-3
    w, gw = params["w"], [g["w"] for g in grads]
    coupled = ref_adam(w, gw, lr=0.01, weight_decay=0.3)[-1]
    decoupled = ref_adam(w, gw, lr=0.01, weight_decay=0.3, decoupled=True)[-1]
    assert np.max(np.abs(coupled - decoupled)) > 1e-3


# ----------------------------------------------------------------------------- dtypes, purity


ALL = [
    lambda lr: optim.sgd(lr, weight_decay=0.01),
    lambda lr: optim.momentum(lr, weight_decay=0.01),
    lambda lr: optim.nesterov(lr, weight_decay=0.01),
    lambda lr: optim.adam(lr, weight_decay=0.01),
    lambda lr: optim.adamw(lr, mask=optim.matrices_only),
    lambda lr: optim.rmsprop(lr, mu=0.5, centered=True, weight_decay=0.01),
    lambda lr: optim.adagrad(lr, lr_decay=0.1, weight_decay=0.01),
    lambda lr: optim.chain(optim.clip_by_global_norm(1.0), optim.adam(lr)),
]
NAMES = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "chain"]


@pytest.mark.parametrize(
    "lr", [0.01, np.float64(0.01), optim.cosine_decay(0.01, 10)], ids=["float", "np64", "sched"]
)
@pytest.mark.parametrize("make", ALL, ids=NAMES)
def test_float32_parameters_and_state_stay_float32(make, lr):
    p64, g64 = make_problem()
    p32, g32 = make_problem(np.float32)
    opt = make(lr)
    out32, state = run(opt, p32, g32)
    out64, _ = run(opt, p64, g64)
    for leaf in tg.tree_leaves((out32, state)):
        assert np.asarray(leaf).dtype in (np.float32, np.int64), np.asarray(leaf).dtype
    assert all(p.dtype == np.float32 for p in tg.tree_leaves(out32))
    # the same numbers to float32's precision (the tiny-gradient leaf aside, whose float32
    # gradients are not the float64 ones scaled)
    for a, b in zip(out32, out64, strict=True):
        for leaf in ("w", "s"):
            np.testing.assert_allclose(a[leaf], b[leaf], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("make", ALL, ids=NAMES)
def test_nothing_passed_in_is_mutated_and_updates_are_pure(make):
    params, grads = make_problem()
    opt = make(0.01)
    state = opt.init(params)
    params1, state1 = opt.update(params, grads[0], state)
    frozen = copy.deepcopy((params, grads, state, params1, state1))
    params2, state2 = opt.update(params1, grads[1], state1)
    # the same call again gives the same numbers, and nothing was written into
    again = opt.update(params1, grads[1], state1)
    for a, b in zip(tg.tree_leaves(again), tg.tree_leaves((params2, state2)), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(
        tg.tree_leaves((params, grads, state, params1, state1)), tg.tree_leaves(frozen), strict=True
    ):
        assert np.array_equal(a, b)
    # no output shares memory with an input
    inputs = [x for x in tg.tree_leaves((params1, grads[1], state1)) if isinstance(x, np.ndarray)]
    for out in tg.tree_leaves((params2, state2)):
        if isinstance(out, np.ndarray):
            assert not any(np.shares_memory(out, x) for x in inputs)


def test_state_types_and_an_empty_tree():
    params, _ = make_problem()
    assert isinstance(optim.adam().init(params), optim.AdamState)
    assert isinstance(optim.nesterov(0.1).init(params), optim.MomentumState)
    s = optim.rmsprop().init(params)
    assert isinstance(s, optim.RMSpropState) and s.grad_avg == () and s.momentum == ()
    assert isinstance(optim.adagrad().init(params), optim.AdagradState)
    assert (
        optim.adagrad(initial_accumulator_value=0.5).init(params).sum_of_squares["w"][0, 0] == 0.5
    )
    for make in ALL:
        opt = make(0.1)
        new, _ = opt.update({}, {}, opt.init({}))
        assert new == {}


def test_shape_and_structure_errors_name_the_leaf():
    params, grads = make_problem()
    opt = optim.adam()
    state = opt.init(params)
    with pytest.raises(
        ValueError,
        match=r"gradient of params\['w'\] has shape \(2,\), the parameter has shape \(3, 2\)",
    ):
        opt.update(params, {**grads[0], "w": np.ones(2)}, state)
    with pytest.raises(ValueError, match="differ"):
        opt.update(params, {"w": grads[0]["w"]}, state)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: optim.adam(0.0), "lr"),
        (lambda: optim.adam(b1=1.0), "b1"),
        (lambda: optim.adam(b2=-0.1), "b2"),
        (lambda: optim.adamw(weight_decay=-1.0), "weight_decay"),
        (lambda: optim.nesterov(0.1, mu=1.0), "mu"),
        (lambda: optim.rmsprop(alpha=1.5), "alpha"),
        (lambda: optim.rmsprop(mu=1.0), "mu"),
        (lambda: optim.adagrad(eps=-1.0), "eps"),
        (lambda: optim.adagrad(lr_decay=-0.1), "lr_decay"),
        (lambda: optim.clip_by_global_norm(0.0), "max_norm"),
        (lambda: optim.cosine_decay(0.1, 0), "steps"),
        (lambda: optim.cosine_decay(0.1, 10, final=0.2), "final"),
        (lambda: optim.warmup_cosine(0.1, 10, 10), "warmup"),
        (lambda: optim.constant(-1.0), "lr"),
    ],
)
def test_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_non_finite_rate_is_refused():
    opt = optim.adam(lambda step: np.float64(np.nan))
    params, grads = make_problem()
    with pytest.raises(ValueError, match="learning rate at step 0 is nan"):
        opt.update(params, grads[0], opt.init(params))


# ----------------------------------------------------------------------------- chain, clip, masks


def ref_clip(grads, max_norm):
    norm = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    coef = min(1.0, max_norm / (norm + 1e-6))
    return {k: g * coef for k, g in grads.items()}, norm


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 100.0])
def test_chain_of_clipping_and_sgd(max_norm):
    params, grads = make_problem()
    opt = optim.chain(optim.clip_by_global_norm(max_norm), optim.sgd(0.1))
    state = opt.init(params)
    assert state == (optim.EmptyState(), optim.SGDState(step=0))
    theta = params
    for g in grads:
        params, state = opt.update(params, g, state)
        clipped, norm = ref_clip(g, max_norm)
        theta = {k: theta[k] - 0.1 * clipped[k] for k in theta}
        for k in theta:
            np.testing.assert_allclose(params[k], theta[k], rtol=1e-14, atol=1e-17)
        if norm * (1 + 1e-9) > max_norm:  # the clipped gradient has norm max_norm
            assert math.isclose(ref_clip(clipped, math.inf)[1], max_norm, rel_tol=1e-5)
    assert state[1].step == STEPS
    if max_norm == 100.0:  # never clipped: the factor is exactly 1, so plain sgd's bits
        plain, _ = run(optim.sgd(0.1), make_problem()[0], grads)
        assert all(np.array_equal(params[k], plain[-1][k]) for k in params)


@pytest.mark.skipif(torch is None, reason="torch is not installed (an optional cross-check)")
def test_clipping_matches_torch_clip_grad_norm():
    _, grads = make_problem()
    for g in grads:
        tensors = [
            torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for v in g.values()
        ]
        for t, v in zip(tensors, g.values(), strict=True):
            t.grad = torch.tensor(v)
        torch.nn.utils.clip_grad_norm_(tensors, 1.0)
        ours, _ = optim.clip_by_global_norm(1.0).update(g, optim.EmptyState(), None)
        for t, v in zip(tensors, ours.values(), strict=True):
            np.testing.assert_allclose(v, t.grad.numpy(), rtol=1e-14)


def test_add_decayed_weights_in_a_chain_is_the_optimizers_weight_decay():
    params, grads = make_problem()
    chained = optim.chain(optim.add_decayed_weights(0.05, mask=MASK), optim.momentum(0.05))
    direct = optim.momentum(0.05, weight_decay=0.05, mask=MASK)
    a, sa = run(chained, params, grads)
    b, sb = run(direct, params, grads)
    for x, y in zip(tg.tree_leaves((a, sa[1])), tg.tree_leaves((b, sb)), strict=True):
        assert np.array_equal(x, y)


def test_chains_nest_and_keep_the_parts_states():
    params, grads = make_problem()
    inner = optim.chain(optim.add_decayed_weights(0.01), optim.adam(0.01))
    outer = optim.chain(optim.clip_by_global_norm(1.0), inner)
    state = outer.init(params)
    assert isinstance(state[1][1], optim.AdamState)
    flat = optim.chain(
        optim.clip_by_global_norm(1.0), optim.add_decayed_weights(0.01), optim.adam(0.01)
    )
    a, _ = run(outer, params, grads)
    b, _ = run(flat, params, grads)
    assert all(np.array_equal(a[-1][k], b[-1][k]) for k in params)


def test_chain_errors():
    with pytest.raises(TypeError, match="last part must be an optimizer"):
        optim.chain(optim.clip_by_global_norm(1.0))
    with pytest.raises(TypeError, match="last part must be an optimizer"):
        optim.chain()
    with pytest.raises(TypeError, match="only the last part may be an optimizer"):
        optim.chain(optim.adam(), optim.sgd(0.1))
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.1))
    params, grads = make_problem()
    with pytest.raises(ValueError, match="tuple of 2 states"):
        opt.update(params, grads[0], optim.SGDState(step=np.int64(0)))


def test_masks_as_a_tree_a_function_and_matrices_only():
    params, grads = make_problem()
    assert optim.matrices_only(params) == {"w": True, "b": False, "s": False}
    by_tree, _ = run(optim.adamw(0.01, weight_decay=0.3, mask=MASK), params, grads)
    by_function, _ = run(
        optim.adamw(0.01, weight_decay=0.3, mask=optim.matrices_only), params, grads
    )
    undecayed, _ = run(optim.adamw(0.01, weight_decay=0.0), params, grads)
    decayed, _ = run(optim.adamw(0.01, weight_decay=0.3), params, grads)
    for k in params:
        assert np.array_equal(by_tree[-1][k], by_function[-1][k])
        # masked-out leaves take no decay at all; the matrix takes all of it
        source = decayed if MASK[k] else undecayed
        assert np.array_equal(by_tree[-1][k], source[-1][k])
    with pytest.raises(ValueError, match="trees differ"):
        opt = optim.adam(weight_decay=0.1, mask={"w": True})
        opt.update(params, grads[0], opt.init(params))


# ----------------------------------------------------------------------------- schedules


def test_constant_schedule():
    assert optim.constant(0.3)(np.int64(7)) == 0.3
    a, _ = run(optim.adam(optim.constant(0.01)), *make_problem())
    b, _ = run(optim.adam(0.01), *make_problem())
    assert all(np.array_equal(a[-1][k], b[-1][k]) for k in a[-1])


def test_cosine_decay_values():
    schedule = optim.cosine_decay(0.1, 100, final=0.01)
    for t in [0, 1, 25, 50, 99, 100, 101, 1000]:
        want = 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100))
        got = schedule(np.int64(t))
        assert got.dtype == np.float64
        assert math.isclose(float(got), want, rel_tol=1e-15, abs_tol=1e-17), t
    assert float(schedule(np.int64(0))) == 0.1 and float(schedule(np.int64(100))) == 0.01
    assert math.isclose(float(schedule(np.int64(50))), 0.055, rel_tol=1e-15)


def test_warmup_cosine_values():
    schedule = optim.warmup_cosine(0.2, 10, 110, final=0.02)
    for t in [0, 1, 5, 9, 10, 11, 60, 109, 110, 500]:
        if t < 10:
            want = 0.2 * t / 10
        else:
            want = 0.02 + 0.18 * 0.5 * (1 + math.cos(math.pi * min(t - 10, 100) / 100))
        assert math.isclose(float(schedule(np.int64(t))), want, rel_tol=1e-14, abs_tol=1e-17), t
    assert float(schedule(np.int64(0))) == 0.0 and float(schedule(np.int64(10))) == 0.2
    no_warmup = optim.warmup_cosine(0.2, 0, 100)
    plain = optim.cosine_decay(0.2, 100)
    for t in [0, 30, 100, 200]:
        assert float(no_warmup(np.int64(t))) == float(plain(np.int64(t)))


@pytest.mark.parametrize(
    "schedule",
    [optim.cosine_decay(0.1, 7, final=0.01), optim.warmup_cosine(0.1, 3, 7, 0.01)],
    ids=["cosine", "warmup"],
)
def test_schedules_compile_with_the_step_as_an_input(schedule):
    fast = tg.jit(schedule)
    for t in range(10):
        step = np.int64(t)
        assert fast(step) == schedule(step) and fast(step).dtype == np.float64
    assert fast.compiled == 1


# ----------------------------------------------------------------------------- under tg.jit


def mlp_problem(batch=16, seed=0):
    rng = np.random.default_rng(seed)
    params = tg.nn.init_mlp(rng, [12, 16, 10])
    x = rng.random((batch, 12), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return params, x, y


def loss(params, x, y):
    return tg.nn.nll(tg.nn.mlp(params, x), y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.adam(1e-2),
        lambda: optim.chain(
            optim.clip_by_global_norm(0.5),
            optim.adamw(optim.warmup_cosine(1e-2, 2, 8), mask=optim.matrices_only),
        ),
        lambda: optim.rmsprop(1e-2, mu=0.9, centered=True, weight_decay=1e-3),
        lambda: optim.nesterov(optim.cosine_decay(0.1, 8), weight_decay=1e-3),
        lambda: optim.adagrad(0.05, lr_decay=0.01),
    ],
    ids=["adam", "clip-adamw-warmup", "rmsprop", "nesterov-cosine", "adagrad"],
)
def test_a_jitted_training_step_is_bitwise_the_uncompiled_step(make):
    opt = make()

    def step(params, state, x, y):
        value, grads = tg.value_and_grad(loss)(params, x, y)
        params, state = opt.update(params, grads, state)
        return params, state, value

    params, x, y = mlp_problem()
    state = opt.init(params)
    fast = tg.jit(step)
    slow = (params, state)
    values = []
    for _ in range(5):
        params, state, value = fast(params, state, x, y)
        slow_p, slow_s, slow_v = step(*slow, x, y)
        slow = (slow_p, slow_s)
        for a, b in zip(
            tg.tree_leaves((params, state, value)),
            tg.tree_leaves((slow_p, slow_s, slow_v)),
            strict=True,
        ):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
        values.append(float(value))
    assert fast.compiled == 1
    assert all(p.dtype == np.float32 for p in tg.tree_leaves(params))
    assert values[-1] < values[0]  # it trains
