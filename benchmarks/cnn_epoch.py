"""Training steps of the MNIST CNN (examples/mnist_cnn.py): tapegrad against PyTorch eager.

Every implementation trains the example's network (by default conv 5x5-16, max-pool 2,
ReLU, conv 5x5-32, max-pool 2, ReLU, dense 128, ReLU, dropout 0.5, dense 10; float32)
from the same initial parameters on the same minibatches of MNIST training images, with
Adam (lr 1e-3, PyTorch's equations) under a cosine schedule spanning 10 epochs, and only
the loop of training steps is timed: a fixed number of steps (``--steps``, 40 by default)
a round, each a forward pass, a backward pass and an update. An epoch of the example is
``50,000 / batch`` such steps; the *s / epoch* column is the median time a step times that.

Columns:

- ``tapegrad``: the example's own step (``make_train_step``: ``tg.value_and_grad`` of the
  mean NLL with dropout drawn from a ``tg.random`` key, then ``tg.optim.adam``'s update),
  run as Python (``--no-jit`` in the example).
- ``tapegrad-jit``: the same step compiled with ``tg.jit`` (the example's default; the
  compile happens in the warm-up round).
- ``torch``: PyTorch eager on CPU, one thread: ``F.conv2d``, ``F.max_pool2d``, ``F.relu``,
  ``F.linear``, ``F.dropout``, ``F.cross_entropy``, ``loss.backward()``,
  ``torch.optim.Adam`` and a ``LambdaLR`` with the same cosine, only if torch imports.
  PyTorch is a benchmark peer, never a dependency of tapegrad.

Before timing, one minibatch without dropout checks that both compute the same loss and
gradients (float32 round-off). Implementations run INTERLEAVED in one process: each round
runs every implementation once, in an order that rotates from round to round, so a slow
spell of the (shared) machine hits them all alike. One warm-up round is not counted;
medians and min-max are over the counted rounds. The load average is printed before and
after: on a shared machine the ratios, measured side by side, mean more than the times.

Run from the repository root::

    python benchmarks/cnn_epoch.py                          # 5 rounds of 40 steps
    python benchmarks/cnn_epoch.py --channels 32 64 --dense 1024 --steps 10
    python benchmarks/cnn_epoch.py --clock cpu              # CPU time of this process
"""

from __future__ import annotations

# Pin every math library to one thread BEFORE numpy (or torch) is imported.
import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _machine import CLOCKS, add_clock_argument, cpu_model, git_revision  # noqa: E402

import tapegrad as tg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
import mnist_cnn  # noqa: E402

LR = 1e-3
#: The parameters in the order of the torch implementation's list.
LEAVES = (
    ("conv1", "w"), ("conv1", "b"), ("conv2", "w"), ("conv2", "b"),
    ("dense", "W"), ("dense", "b"), ("out", "W"), ("out", "b"),
)  # fmt: skip
EPOCH_IMAGES = 50_000  # the example's training set (60,000 less 10,000 for validation)


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def load_images(data_dir: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training images ``(n, 1, 28, 28)`` float32 in [0, 1], shuffled, and labels."""
    (x, y), _ = tg.datasets.load_mnist(data_dir, download=False)
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    images = mnist_cnn.as_images(mnist_cnn.preprocess(x[order]))
    return np.ascontiguousarray(images), y[order].astype(np.int64)


# ---------------------------------------------------------------------------------------
# Implementations: setup (untimed) -> run (timed: ``steps`` training steps)


class Tapegrad:
    name = "tapegrad"

    def __init__(self, args: argparse.Namespace, total_steps: int) -> None:
        opt = tg.optim.adam(tg.optim.cosine_decay(LR, total_steps))
        self.opt = opt
        self.step = mnist_cnn.make_train_step(opt, args.dropout)
        self.root = tg.random.key(0)
        self.count = 0

    def setup(self, params: dict) -> Any:
        params = tg.tree_map(np.array, params)
        return params, self.opt.init(params)

    def run(self, state: Any, batches: list) -> Any:
        params, opt_state = state
        step, root = self.step, self.root
        for xb, yb in batches:
            key = mnist_cnn.dropout_key(root, self.count)
            params, opt_state, _loss = step(params, opt_state, xb, yb, key)
            self.count += 1
        return params, opt_state

    def grads(self, params: dict, xb: np.ndarray, yb: np.ndarray) -> tuple[float, list]:
        def loss_fn(p):
            return tg.nn.nll(mnist_cnn.logits(p, xb), yb)

        loss, g = tg.value_and_grad(loss_fn)(params)
        return float(loss), flat(g)


class TapegradJit(Tapegrad):
    name = "tapegrad-jit"

    def __init__(self, args: argparse.Namespace, total_steps: int) -> None:
        super().__init__(args, total_steps)
        self.step = tg.jit(self.step)


def flat(params: dict) -> list:
    """The parameters as a list, in :data:`LEAVES` order."""
    return [params[layer][name] for layer, name in LEAVES]


def make_torch(args: argparse.Namespace, total_steps: int) -> tuple[Any, str] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    def logits(ps: list, x: Any, training: bool) -> Any:
        w1, b1, w2, b2, w3, b3, w4, b4 = ps
        h = F.relu(F.max_pool2d(F.conv2d(x, w1, b1, padding=2), 2))
        h = F.relu(F.max_pool2d(F.conv2d(h, w2, b2, padding=2), 2))
        h = F.relu(F.linear(h.flatten(1), w3, b3))
        if training and args.dropout:
            h = F.dropout(h, args.dropout, training=True)
        return F.linear(h, w4, b4)

    def cosine(step: int) -> float:  # the factor of tg.optim.cosine_decay
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    class Torch:
        name = "torch"

        def setup(self, params: dict) -> Any:
            ps = [torch.tensor(np.array(a), requires_grad=True) for a in flat(params)]
            opt = torch.optim.Adam(ps, lr=LR)
            return ps, opt, torch.optim.lr_scheduler.LambdaLR(opt, cosine)

        def run(self, state: Any, batches: list) -> Any:
            ps, opt, schedule = state
            for xb, yb in batches:
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(logits(ps, xb, True), yb)
                loss.backward()
                opt.step()
                schedule.step()
            return state

        def prepare(self, batches: list) -> list:
            return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

        def grads(self, params: dict, xb: np.ndarray, yb: np.ndarray) -> tuple[float, list]:
            ps = [torch.tensor(np.array(a), requires_grad=True) for a in flat(params)]
            x, y = torch.from_numpy(xb), torch.from_numpy(yb)
            loss = F.cross_entropy(logits(ps, x, False), y)
            grads = torch.autograd.grad(loss, ps)
            return float(loss.detach()), [g.numpy() for g in grads]

    return Torch(), torch.__version__


# ---------------------------------------------------------------------------------------


def check_same_gradients(impls: list, params: dict, xb: np.ndarray, yb: np.ndarray) -> None:
    """Loss and gradients of one minibatch (no dropout): every implementation against the
    first, relative to each gradient's largest entry."""
    ref_loss, ref = impls[0].grads(params, xb, yb)
    for impl in impls[1:]:
        if not hasattr(impl, "grads") or impl.name == "tapegrad-jit":
            continue
        loss, got = impl.grads(params, xb, yb)
        worst = max(
            float(np.max(np.abs(np.asarray(u, np.float64) - v)) / np.max(np.abs(v)))
            for u, v in zip(got, ref, strict=True)
        )
        print(
            f"check: {impl.name} vs {impls[0].name} on one batch (no dropout): loss "
            f"{loss:.6f} vs {ref_loss:.6f}; max |diff| / max |g| per tensor {worst:.1e}"
        )
        if abs(loss - ref_loss) > 1e-4 * abs(ref_loss) or worst > 1e-3:
            raise AssertionError(f"{impl.name} does not compute the same gradients")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="counted rounds (after 1 warm-up)")
    ap.add_argument("--steps", type=int, default=40, help="training steps a round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--channels", type=int, nargs=2, default=[16, 32], metavar=("C1", "C2"))
    ap.add_argument("--dense", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--data-dir", default=None, help="MNIST directory ($TAPEGRAD_DATA_DIR)")
    add_clock_argument(ap)
    args = ap.parse_args(argv)
    clock = CLOCKS[args.clock]
    data_dir = Path(
        args.data_dir
        or os.environ.get("TAPEGRAD_DATA_DIR")
        or REPO.parent / "shared" / "data" / "mnist"
    )

    steps_per_epoch = EPOCH_IMAGES / args.batch
    total_steps = math.ceil(steps_per_epoch) * 10
    impls: list[Any] = [Tapegrad(args, total_steps), TapegradJit(args, total_steps)]
    versions = {"numpy": np.__version__, "tapegrad": f"{tg.__version__} (git {git_revision()})"}
    made = make_torch(args, total_steps)
    if made is not None:
        impls.append(made[0])
        versions["torch"] = made[1]

    c1, c2 = args.channels
    print(
        f"# CNN training steps: conv5x5-{c1} pool ReLU, conv5x5-{c2} pool ReLU, dense "
        f"{args.dense} ReLU dropout {args.dropout:g}, dense 10; float32, Adam lr {LR:g} "
        f"(cosine), batch {args.batch}, {args.steps} steps a round, {args.clock} clock"
    )
    print(f"machine : {platform.platform()}, {os.cpu_count()} logical CPUs, {cpu_model()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    threads = ", ".join(
        f"{k}={os.environ[k]}"
        for k in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
        if k in os.environ
    )
    print(f"threads : {threads}")
    print(f"load average before: {loadavg()}")
    sys.stdout.flush()

    x, y = load_images(data_dir, args.steps * args.batch, seed=0)
    batches = [(x[s : s + args.batch], y[s : s + args.batch]) for s in range(0, len(x), args.batch)]
    params = mnist_cnn.init_params(np.random.default_rng(0), args.channels, args.dense)
    check_same_gradients(impls, params, *batches[0])

    data = {impl.name: getattr(impl, "prepare", lambda b: b)(batches) for impl in impls}
    states = {impl.name: impl.setup(params) for impl in impls}
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for r in range(args.rounds + 1):
        k = r % len(impls)
        for impl in impls[k:] + impls[:k]:
            gc.collect()
            t0 = clock()
            states[impl.name] = impl.run(states[impl.name], data[impl.name])
            seconds = clock() - t0
            if r:  # round 0 warms up (and compiles)
                times[impl.name].append(seconds / args.steps)
    print(f"load average after : {loadavg()}")
    print()
    ref = statistics.median(times["torch"]) if "torch" in times else None
    print(f"{'':<14}{'ms / step':>11}{'(min-max)':>17}{'s / epoch':>11}{'/ torch':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{med / ref:.2f}" if ref else "-"
        print(
            f"{name:<14}{1e3 * med:>11.1f}   ({1e3 * min(ts):6.1f}-{1e3 * max(ts):6.1f})"
            f"{med * steps_per_epoch:>11.1f}{ratio:>9}"
        )


if __name__ == "__main__":
    main()
