"""One epoch of a 784-100-100-10 ReLU MLP on MNIST: tapegrad against hand-written numpy.

Every implementation trains the same network (float32, x / 255, mean softmax cross-entropy,
plain SGD with lr 0.1) from the same initial parameters on the same shuffled order, with
the same batch loop, and only that loop is timed. Implementations run INTERLEAVED in one
process: each round runs every implementation once per batch size, in an order that
rotates from round to round, so a slow spell of the (shared) machine hits them all alike.
One warm-up round is run first and not counted; medians are over the counted rounds.

Columns:

- ``numpy``: forward and backprop written by hand, float32 throughout, the fused
  softmax-cross-entropy gradient ``(softmax - onehot) / B``, no gradient for the images,
  in-place bias add and ReLU, ReLU backward as an in-place multiplication by the mask
  (measured faster than ``np.where`` here), in-place SGD. Checked at start to give the
  same gradients as tapegrad (float64, rtol 1e-10).
- ``tapegrad``: ``tg.value_and_grad(loss_fn)`` then ``tg.optim.sgd(0.1).update``.
- ``tapegrad-jit``: the same step compiled with ``tg.jit`` (traced once per batch shape;
  the compile happens in the warm-up round).
- ``matmul-only``: the 8 matrix products of a step (3 forward; dW3, dx3, dW2, dx2, dW1
  backward) and nothing else: a floor for anything built on numpy and this BLAS (JAX
  uses its own matmul kernels, so not for it).
- ``autograd`` / ``torch`` / ``jax``: HIPS autograd, PyTorch eager CPU (one thread,
  ``torch.optim.SGD``) and JAX with ``jax.jit`` on the whole update step, each only if it
  can be imported.

Also printed: peak traced memory of one batch-128 step (tracemalloc) for numpy and
tapegrad, and a check that tapegrad stays in float32 end to end (every forward value and
every cotangent of the backward pass).

Run from the repository root::

    python benchmarks/mlp_epoch.py                       # 5 rounds + 1 warm-up
    python benchmarks/mlp_epoch.py --rounds 2 --epochs-frac 0.1   # a quick look
"""

from __future__ import annotations

# Pin every math library to one thread BEFORE numpy (or torch, or jax) is imported.
import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _machine import CLOCKS, add_clock_argument, cpu_model, dist_version, git_revision  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.interpreter import backward  # noqa: E402
from tapegrad.tape import Primitive, Record, Tape  # noqa: E402

try:
    import threadpoolctl
except ImportError:  # only used to confirm (and enforce) the BLAS thread count
    threadpoolctl = None

REPO = Path(__file__).resolve().parents[1]
SIZES = (784, 100, 100, 10)
LR = 0.1


# ---------------------------------------------------------------------------------------
# Machine and data


def blas_description() -> str:
    if threadpoolctl is None:
        return "threadpoolctl not installed (BLAS threads not confirmed)"
    parts = []
    for info in threadpoolctl.threadpool_info():
        parts.append(
            f"{info.get('internal_api')} {info.get('version') or ''} "
            f"[{Path(info.get('filepath', '?')).name}] "
            f"({info.get('architecture', '?')}, {info.get('user_api')}, "
            f"{info.get('num_threads')} thread{'s' if info.get('num_threads') != 1 else ''})"
        )
    return "; ".join(parts) or "no BLAS found by threadpoolctl"


def print_header(extras: dict[str, str]) -> None:
    print("# MLP epoch benchmark: 784-100-100-10 ReLU, float32, softmax CE, SGD lr 0.1")
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print(f"python  : {platform.python_version()} ({platform.python_implementation()})")
    print(f"numpy   : {np.__version__}; tapegrad {tg.__version__} (git {git_revision()})")
    print(f"BLAS    : {blas_description()}")
    env = ", ".join(
        f"{k}={os.environ[k]}"
        for k in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE")
        if k in os.environ
    )
    print(f"env     : {env}")
    for name, version in extras.items():
        print(f"{name:<8}: {version}")
    sys.stdout.flush()


def data_dir_from(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("TAPEGRAD_DATA_DIR"):
        return Path(os.environ["TAPEGRAD_DATA_DIR"])
    return (REPO / ".." / "shared" / "data" / "mnist").resolve()


def load_train(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    (x, y), _ = tg.datasets.load_mnist(data_dir, download=False)
    x = x.reshape(len(x), -1).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(x), y.astype(np.int64)


def init_params(seed: int, dtype: Any = np.float32) -> dict:
    return tg.nn.init_mlp(np.random.default_rng(seed), SIZES, "relu", dtype)


def copy_params(params: dict) -> dict:
    return tg.tree_map(np.array, params)


def flat(params: dict) -> list[np.ndarray]:
    return [a for layer in params["layers"] for a in (layer["W"], layer["b"])]


# ---------------------------------------------------------------------------------------
# The hand-written numpy baseline


def numpy_loss_and_grads(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
    """Forward and backprop by hand; dtype-generic (float32 for timing, float64 to check)."""
    (l1, l2, l3) = params["layers"]
    W1, b1, W2, b2, W3, b3 = l1["W"], l1["b"], l2["W"], l2["b"], l3["W"], l3["b"]
    batch = len(x)
    rows = np.arange(batch)
    a1 = x @ W1.T
    a1 += b1
    np.maximum(a1, 0, out=a1)
    a2 = a1 @ W2.T
    a2 += b2
    np.maximum(a2, 0, out=a2)
    z = a2 @ W3.T
    z += b3
    z -= z.max(axis=1, keepdims=True)  # shifted logits
    p = np.exp(z)
    sumexp = p.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(sumexp[:, 0]) - z[rows, y])
    p /= sumexp
    g3 = p  # (softmax - onehot) / B, in place
    g3[rows, y] -= 1
    g3 *= 1.0 / batch
    dW3 = g3.T @ a2
    db3 = g3.sum(axis=0)
    g2 = g3 @ W3
    g2 *= a2 > 0
    dW2 = g2.T @ a1
    db2 = g2.sum(axis=0)
    g1 = g2 @ W2
    g1 *= a1 > 0
    dW1 = g1.T @ x
    db1 = g1.sum(axis=0)
    grads = {"layers": [{"W": dW1, "b": db1}, {"W": dW2, "b": db2}, {"W": dW3, "b": db3}]}
    return loss, grads


def numpy_step(params: dict, x: np.ndarray, y: np.ndarray) -> Any:
    loss, grads = numpy_loss_and_grads(params, x, y)
    for layer, glayer in zip(params["layers"], grads["layers"], strict=True):
        for key in ("W", "b"):
            g = glayer[key]
            g *= LR  # scale the fresh gradient in place: no temporary
            layer[key] -= g
    return loss


def numpy_forward_loss(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of ``params`` on (x, y): to compare implementations' end points."""
    h = x
    layers = params["layers"]
    for k, layer in enumerate(layers):
        h = h @ np.asarray(layer["W"]).T + np.asarray(layer["b"])
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    h = h - h.max(axis=1, keepdims=True)
    lse = np.log(np.exp(h).sum(axis=1))
    return float(np.mean(lse - h[np.arange(len(y)), y]))


# ---------------------------------------------------------------------------------------
# Implementations: setup (untimed) -> run (timed: the batch loop) -> final numpy params


def batch_starts(n_used: int, batch: int) -> range:
    return range(0, n_used, batch)


class Impl:
    name = "?"

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """This implementation's own arrays for the (shuffled) epoch data; not timed."""
        return x, y

    def setup(self, params: dict) -> Any:
        return copy_params(params)

    def run(self, state: Any, x: Any, y: Any, batch: int, n_used: int) -> Any:
        raise NotImplementedError

    def final(self, state: Any) -> dict | None:
        return state

    def grads(self, params: dict, x: np.ndarray, y: np.ndarray) -> dict | None:
        """Gradients on one batch as numpy arrays in tapegrad's layout (for the check)."""
        return None


class NumpyImpl(Impl):
    name = "numpy"

    def run(self, state, x, y, batch, n_used):
        for s in batch_starts(n_used, batch):
            e = min(s + batch, n_used)
            numpy_step(state, x[s:e], y[s:e])
        return state

    def grads(self, params, x, y):
        return numpy_loss_and_grads(params, x, y)[1]


def tapegrad_loss(p, x, y):
    return tg.nn.nll(tg.nn.mlp(p, x), y)


class TapegradImpl(Impl):
    name = "tapegrad"

    def __init__(self) -> None:
        self.value_and_grad = tg.value_and_grad(tapegrad_loss)
        self.opt = tg.optim.sgd(LR)

    def setup(self, params):
        params = copy_params(params)
        return params, self.opt.init(params)

    def run(self, state, x, y, batch, n_used):
        params, opt_state = state
        vg, update = self.value_and_grad, self.opt.update
        for s in batch_starts(n_used, batch):
            e = min(s + batch, n_used)
            _loss, grads = vg(params, x[s:e], y[s:e])
            params, opt_state = update(params, grads, opt_state)
        return params, opt_state

    def final(self, state):
        return state[0]

    def grads(self, params, x, y):
        return self.value_and_grad(params, x, y)[1]


class TapegradJitImpl(TapegradImpl):
    """The same step (gradient and SGD update) compiled once with ``tg.jit``.

    It returns the loss, as the numpy step and the eager step compute it, so the compiler
    cannot drop the loss's forward as dead code: every column does the same work.
    """

    name = "tapegrad-jit"

    def __init__(self) -> None:
        super().__init__()
        vg, update = self.value_and_grad, self.opt.update

        def step(params, opt_state, x, y):
            loss, grads = vg(params, x, y)
            params, opt_state = update(params, grads, opt_state)
            return params, opt_state, loss

        self.step = tg.jit(step)

    def run(self, state, x, y, batch, n_used):
        params, opt_state = state
        step = self.step
        for s in batch_starts(n_used, batch):
            e = min(s + batch, n_used)
            params, opt_state, _loss = step(params, opt_state, x[s:e], y[s:e])
        return params, opt_state


class MatmulOnlyImpl(Impl):
    """The 8 products of one step, on arrays of the right shapes; no update, no params."""

    name = "matmul-only"

    def setup(self, params):
        return [np.array(layer["W"]) for layer in params["layers"]]

    def run(self, state, x, y, batch, n_used):
        W1, W2, W3 = state
        for s in batch_starts(n_used, batch):
            xb = x[s : min(s + batch, n_used)]
            a1 = xb @ W1.T  # forward
            a2 = a1 @ W2.T
            g3 = a2 @ W3.T
            _dW3 = g3.T @ a2  # backward
            g2 = g3 @ W3
            _dW2 = g2.T @ a1
            g1 = g2 @ W2
            _dW1 = g1.T @ xb
        return state

    def final(self, state):
        return None


def make_autograd_impl() -> tuple[Impl, str] | None:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return None

    def loss(p, x, y):
        h = x
        layers = p["layers"]
        for k, layer in enumerate(layers):
            h = anp.dot(h, layer["W"].T) + layer["b"]
            if k < len(layers) - 1:
                h = anp.maximum(h, 0.0)
        m = anp.max(h, axis=1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(h - m), axis=1)) + m[:, 0]
        return anp.mean(lse - h[anp.arange(len(y)), y])

    vg = autograd.value_and_grad(loss)

    def update(p, g):
        return (p - LR * g).astype(p.dtype, copy=False)

    class AutogradImpl(Impl):
        name = "autograd"

        def run(self, state, x, y, batch, n_used):
            params = state
            for s in batch_starts(n_used, batch):
                e = min(s + batch, n_used)
                _loss, grads = vg(params, x[s:e], y[s:e])
                params = tg.tree_map(update, params, grads)
            return params

        def grads(self, params, x, y):
            return vg(params, x, y)[1]

    return AutogradImpl(), dist_version("autograd")


def make_torch_impl() -> tuple[Impl, str] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)

    def to_tensors(params):
        return [torch.tensor(np.array(a), requires_grad=True) for a in flat(params)]

    def forward_loss(ps, xb, yb):
        h = xb
        for k in range(3):
            h = F.linear(h, ps[2 * k], ps[2 * k + 1])
            if k < 2:
                h = F.relu(h)
        return F.cross_entropy(h, yb)

    def to_numpy_tree(arrays):
        arrays = [a.detach().numpy().copy() for a in arrays]
        return {"layers": [{"W": arrays[2 * k], "b": arrays[2 * k + 1]} for k in range(3)]}

    class TorchImpl(Impl):
        name = "torch"

        def prepare(self, x, y):
            return torch.from_numpy(x), torch.from_numpy(y)

        def setup(self, params):
            ps = to_tensors(params)
            return ps, torch.optim.SGD(ps, lr=LR)

        def run(self, state, x, y, batch, n_used):
            ps, opt = state
            for s in batch_starts(n_used, batch):
                e = min(s + batch, n_used)
                opt.zero_grad(set_to_none=True)
                loss = forward_loss(ps, x[s:e], y[s:e])
                loss.backward()
                opt.step()
            return state

        def final(self, state):
            return to_numpy_tree(state[0])

        def grads(self, params, x, y):
            ps = to_tensors(params)
            loss = forward_loss(ps, torch.from_numpy(x), torch.from_numpy(y))
            return to_numpy_tree(torch.autograd.grad(loss, ps))

    return TorchImpl(), torch.__version__


def make_jax_impl() -> tuple[Impl, str] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def loss(p, x, y):
        h = x
        layers = p["layers"]
        for k, layer in enumerate(layers):
            h = h @ layer["W"].T + layer["b"]
            if k < len(layers) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    vg = jax.value_and_grad(loss)

    @jax.jit
    def step(p, x, y):
        value, g = vg(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), value

    class JaxImpl(Impl):
        name = "jax-jit"

        def setup(self, params):
            return jax.tree_util.tree_map(jnp.asarray, params)

        def run(self, state, x, y, batch, n_used):
            params = state
            for s in batch_starts(n_used, batch):
                e = min(s + batch, n_used)
                params, _value = step(params, x[s:e], y[s:e])
            jax.block_until_ready(params)
            return params

        def final(self, state):
            return jax.tree_util.tree_map(np.asarray, state)

        def grads(self, params, x, y):
            g = jax.jit(vg)(jax.tree_util.tree_map(jnp.asarray, params), x, y)[1]
            return jax.tree_util.tree_map(np.asarray, g)

    return JaxImpl(), f"{jax.__version__} (CPU, {jax.devices()[0].platform})"


# ---------------------------------------------------------------------------------------
# Checks run at start


def max_rel_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for u, v in zip(flat(a), flat(b), strict=True):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        worst = max(worst, float(np.max(np.abs(u - v)) / (np.max(np.abs(v)) + 1e-30)))
    return worst


def check_gradients(x: np.ndarray, y: np.ndarray, impls: list[Impl], seed: int) -> None:
    xb, yb = x[:128], y[:128]
    # float64: the hand-written backprop and tapegrad must agree to rounding.
    p64 = init_params(seed, np.float64)
    x64 = xb.astype(np.float64)
    want = numpy_loss_and_grads(copy_params(p64), x64, yb)[1]
    got = TapegradImpl().grads(copy_params(p64), x64, yb)
    for u, v in zip(flat(got), flat(want), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13)
    print("gradient check, float64, tapegrad vs numpy: assert_allclose(rtol=1e-10) passed")
    # float32: every implementation against the numpy baseline.
    p32 = init_params(seed)
    ref = numpy_loss_and_grads(copy_params(p32), xb, yb)[1]
    for impl in impls:
        g = impl.grads(copy_params(p32), xb, yb)
        if g is None or impl.name == "numpy":
            continue
        dtypes = sorted({str(np.asarray(a).dtype) for a in flat(g)})
        diff = max_rel_diff(g, ref)
        print(
            f"gradient check, float32, {impl.name} vs numpy: max |diff| / max |g| per "
            f"tensor = {diff:.1e}, grads {'/'.join(dtypes)}"
        )
        if impl.name == "tapegrad":
            for u, v in zip(flat(g), flat(ref), strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
        elif diff > 1e-4:
            raise AssertionError(f"{impl.name} does not compute the same gradients ({diff})")


def check_float32(x: np.ndarray, y: np.ndarray, seed: int) -> bool:
    """Every forward value and every cotangent of one tapegrad step is float32."""
    params = init_params(seed)
    xb, yb = x[:128], y[:128]
    ok = True
    _loss, grads = tg.value_and_grad(tapegrad_loss)(params, xb, yb)
    grad_dtypes = {np.asarray(g).dtype for g in flat(grads)}
    new_params, _ = tg.optim.sgd(LR).update(params, grads, tg.optim.sgd(LR).init(params))
    param_dtypes = {np.asarray(p).dtype for p in flat(new_params)}
    ok &= grad_dtypes == {np.dtype(np.float32)} and param_dtypes == {np.dtype(np.float32)}

    tape = tg.make_tape(tapegrad_loss)(params, xb, yb)
    forward = [(r.primitive.name, np.asarray(r.ans).dtype) for r in tape.records]
    bad_forward = [f"{name}: {dt}" for name, dt in forward if dt != np.float32]

    # Backward: replay the same records through shim primitives whose VJPs note the dtype
    # of the incoming cotangent and of the one they return (before the interpreter's cast).
    seen: list[tuple[str, str, Any]] = []

    def shim(prim: Primitive) -> Primitive:
        def vjp(i, g, ans, *args, **params):
            seen.append((prim.name, "in", np.asarray(g).dtype))
            ct = prim.vjp(i, g, ans, *args, **params)
            if ct is not None:
                seen.append((prim.name, f"out[{i}]", np.asarray(ct).dtype))
            return ct

        return Primitive(prim.name, prim.forward, vjp)

    shims: dict[int, Primitive] = {}
    replay = Tape()
    for r in tape.records:
        prim = shims.setdefault(id(r.primitive), shim(r.primitive))
        replay.records.append(Record(prim, r.args, r.params, r.parents, r.out, r.ans))
    node = getattr(tape, "output_node", None)
    if node is None:  # older tapes kept the traced output itself
        node = tape.output._node
    cts = backward(replay, {node: np.ones((), dtype=np.float32)})
    bad_backward = [f"{n} {w}: {dt}" for n, w, dt in seen if dt != np.float32]
    bad_backward += [
        f"input v{k}: {np.asarray(c).dtype}" for k, c in cts.items() if c.dtype != np.float32
    ]
    ok &= not bad_forward and not bad_backward and bool(seen)
    print(
        f"float32 end to end: {'yes' if ok else 'no'} ({len(forward)} forward records, "
        f"{len(seen)} cotangents checked; grads {sorted(map(str, grad_dtypes))}, "
        f"updated params {sorted(map(str, param_dtypes))})"
    )
    for line in bad_forward + bad_backward:
        print(f"  not float32: {line}")
    return ok


def peak_step_memory(x: np.ndarray, y: np.ndarray, seed: int, batch: int = 128) -> None:
    """Peak bytes traced by tracemalloc during one training step (data and params excluded)."""
    xb, yb = x[:batch], y[:batch]
    tape_impl = TapegradImpl()
    opt = tg.optim.sgd(LR)

    def tapegrad_step(params):
        _loss, grads = tape_impl.value_and_grad(params, xb, yb)
        return opt.update(params, grads, opt.init(params))

    def tapegrad_grads_only(params):
        return tape_impl.value_and_grad(params, xb, yb)

    jit_step = TapegradJitImpl().step  # compiled by the warm-up call below, not traced

    def tapegrad_jit_step(params):
        return jit_step(params, opt.init(params), xb, yb)

    cases: list[tuple[str, Callable[[dict], Any]]] = [
        ("numpy step (in-place SGD)", lambda p: numpy_step(p, xb, yb)),
        ("tapegrad step (value_and_grad + sgd.update)", tapegrad_step),
        ("tapegrad value_and_grad only", tapegrad_grads_only),
        ("tapegrad-jit step (the same step, compiled)", tapegrad_jit_step),
    ]
    peaks = {}
    for name, fn in cases:
        params = init_params(seed)
        fn(copy_params(params))  # warm: first-call allocations are not part of a step
        results = []
        for _ in range(3):
            p = copy_params(params)
            gc.collect()
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            out = fn(p)
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            del out
            results.append(peak)
        peaks[name] = min(results)
    activations = 4 * batch * (100 + 100 + 10)
    param_bytes = 4 * sum(a.size for a in flat(init_params(seed)))
    print(
        f"peak traced memory of one step, batch {batch} (tracemalloc; the data set and the "
        f"parameters are not counted; params = {param_bytes / 1024:.0f} KiB, "
        f"activations = {activations / 1024:.0f} KiB):"
    )
    base = peaks["numpy step (in-place SGD)"]
    for name, peak in peaks.items():
        print(f"  {name:<46} {peak / 1024:8.0f} KiB   x{peak / base:.2f} numpy")


# ---------------------------------------------------------------------------------------
# The interleaved benchmark


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="MNIST IDX files (default $TAPEGRAD_DATA_DIR)")
    ap.add_argument("--rounds", type=int, default=5, help="counted rounds (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument(
        "--epochs-frac",
        type=float,
        default=1.0,
        help="time only this fraction of an epoch, reported scaled to a full epoch",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--only", nargs="+", help="run only these implementations (numpy is always run)"
    )
    ap.add_argument("--no-extras", action="store_true", help="skip autograd, torch and jax")
    add_clock_argument(ap)
    args = ap.parse_args(argv)
    clock = CLOCKS[args.clock]
    if not 0 < args.epochs_frac <= 1:
        ap.error("--epochs-frac must lie in (0, 1]")

    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(1)

    impls: list[Impl] = [NumpyImpl(), TapegradImpl(), TapegradJitImpl(), MatmulOnlyImpl()]
    versions: dict[str, str] = {}
    skipped = []
    if not args.no_extras:
        for label, make in (
            ("autograd", make_autograd_impl),
            ("torch", make_torch_impl),
            ("jax", make_jax_impl),
        ):
            made = make()
            if made is None:
                skipped.append(label)
            else:
                impls.append(made[0])
                versions[label] = made[1]
    if args.only:
        impls = [i for i in impls if i.name == "numpy" or i.name in args.only]
    if skipped:
        versions["skipped"] = ", ".join(skipped) + " (not importable)"
    print_header(versions)

    data_dir = data_dir_from(args.data_dir)
    x, y = load_train(data_dir)
    n = len(x)
    print(f"data    : {data_dir}: {x.shape} {x.dtype}, labels {y.dtype}")
    print()

    check_gradients(x, y, impls, args.seed)
    check_float32(x, y, args.seed)
    peak_step_memory(x, y, args.seed)
    print()

    params0 = init_params(args.seed)
    names = [i.name for i in impls]
    times: dict[tuple[str, int], list[float]] = {
        (nm, b): [] for nm in names for b in args.batch_sizes
    }
    end_loss: dict[tuple[str, int], float] = {}
    n_used = max(1, round(args.epochs_frac * n))
    scale = n / n_used
    total_rounds = args.warmup + args.rounds
    eval_x, eval_y = x[:10_000], y[:10_000]
    print(
        f"timing ({args.clock} clock): {args.warmup} warm-up + {args.rounds} counted rounds; "
        f"{n_used} of {n} "
        f"examples per epoch{f' (times scaled x{scale:.2f})' if scale != 1 else ''}; "
        f"order rotates each round: {', '.join(names)}"
    )
    sys.stdout.flush()
    t_start = time.perf_counter()
    for r in range(total_rounds):
        counted = r >= args.warmup
        perm = np.random.default_rng([args.seed, r]).permutation(n)
        xs, ys = x[perm], y[perm]
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        line = []
        for batch in args.batch_sizes:
            for impl in order:
                xi, yi = impl.prepare(xs, ys)
                state = impl.setup(params0)
                gc.collect()
                t0 = clock()
                state = impl.run(state, xi, yi, batch, n_used)
                dt = (clock() - t0) * scale
                if counted:
                    times[(impl.name, batch)].append(dt)
                if r == 0:
                    final = impl.final(state)
                    if final is not None:
                        end_loss[(impl.name, batch)] = numpy_forward_loss(final, eval_x, eval_y)
                line.append(f"{impl.name}@{batch}={dt:.2f}s")
                del state
        label = f"round {r - args.warmup + 1}" if counted else "warm-up"
        print(f"{label:>8} ({time.perf_counter() - t_start:6.0f}s): {' '.join(line)}")
        sys.stdout.flush()

    print()
    print("end-of-epoch loss on the first 10,000 training images (first round):")
    for batch in args.batch_sizes:
        cells = [f"{nm} {end_loss[(nm, batch)]:.4f}" for nm in names if (nm, batch) in end_loss]
        print(f"  batch {batch:>4}: " + ", ".join(cells))

    print()
    medians = {k: statistics.median(v) for k, v in times.items()}
    for batch in args.batch_sizes:
        base = medians[("numpy", batch)]
        steps = -(-n // batch)
        print(f"batch {batch} ({steps} steps/epoch): median s/epoch [min-max], x numpy")
        for nm in names:
            v = times[(nm, batch)]
            med = medians[(nm, batch)]
            print(
                f"  {nm:<12} {med:8.3f} s  [{min(v):7.3f} - {max(v):7.3f}]  "
                f"x{fmt_ratio(med / base):>6}   {med / steps * 1e6:8.1f} us/step"
            )
    print()
    print(
        f"Summary (median s/epoch over {args.rounds} interleaved rounds; "
        "ratio to numpy in parentheses)"
    )
    print()
    print("| implementation | " + " | ".join(f"batch {b}" for b in args.batch_sizes) + " |")
    print("|---|" + "---:|" * len(args.batch_sizes))
    for nm in names:
        cells = []
        for b in args.batch_sizes:
            med = medians[(nm, b)]
            cells.append(f"{med:.3f} s ({med / medians[('numpy', b)]:.2f}x)")
        print(f"| {nm} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
