"""Train a convolutional network on MNIST with tapegrad: past 99.2 % test accuracy.

One command trains the default network (two 5 x 5 convolutions, each followed by 2 x 2
max pooling and ReLU, a dense layer with dropout; Adam with a cosine schedule; training
images moved by up to a pixel)::

    TAPEGRAD_DATA_DIR=/path/to/mnist python examples/mnist_cnn.py

and ends with the line ``test accuracy: 0.99xx``. The interface is that of
``examples/mnist_tape.py`` (the MLP): a progress bar, a validation split, ``--plot``,
``--metrics``, ``--save``/``--resume`` bit for bit, ``--seed``, ``--no-jit``. A few runs::

    python examples/mnist_cnn.py --channels 32 64 --dense 1024        # the TensorFlow tutorial's
    python examples/mnist_cnn.py --optimizer adamw --weight-decay 0.05
    python examples/mnist_cnn.py --plot curves.png --metrics metrics.json
    python examples/mnist_cnn.py --save ckpt.npz --stop-after 2       # ... then, later:
    python examples/mnist_cnn.py --save ckpt.npz --resume ckpt.npz    # the other epochs

Choices made here (and why)
---------------------------
- **Network.** ``conv 5x5 (C1) -> max-pool 2 -> ReLU -> conv 5x5 (C2) -> max-pool 2 ->
  ReLU -> flatten -> dense (D) -> ReLU -> dropout -> dense 10`` on images ``(N, 1, 28,
  28)``; each convolution pads by 2, so it keeps its image size, and the pools halve it
  (28 -> 14 -> 7). Pooling comes before the ReLU: ``max`` and ``relu`` commute (ReLU is
  increasing), so the function is the usual conv-ReLU-pool one, but the ReLU and its
  derivative run on a quarter of the pixels. The defaults ``--channels 16 32 --dense 128``
  (215,370 parameters) pass 0.992 in 10 epochs of about a minute of one core each; the
  widths of the TensorFlow tutorial's network (``--channels 32 64 --dense 1024``, 3.27
  million parameters) cost three times as much a step (benchmarks/cnn_epoch.py): the
  second convolution dominates, and its cost grows as ``C1 * C2``.
  Weights are Kaiming-uniform (``tg.nn.kaiming_uniform``, fan-in ``C kh kw`` for a
  kernel), biases zero; everything is float32.
- **Data.** Images become float32 in [0, 1]; the validation set is the LAST
  ``--val-size`` of the (first ``--limit-train``) training images, as in the MLP example.
- **Per-epoch numbers.** After each epoch the network is evaluated (forward only, plain
  numpy, no dropout) on the validation set and on the first ``--train-eval-size`` training
  images (a fixed subset: a forward pass over all 50,000 would add a third of an epoch's
  cost; ``0`` evaluates them all), always on the images as they are (not moved).
  ``batch_loss`` is the mean of the minibatch losses seen during the epoch (dropout on,
  parameters moving under it). ``seconds`` is the wall-clock time of the epoch's training
  steps, ``cpu_seconds`` the CPU time this process spent on them (on a machine shared
  with other jobs, the better measure of the work done), ``eval_seconds`` the
  wall-clock time of the evaluation after the epoch.
- **Optimizer.** Adam (``tg.optim.adam``: PyTorch's equations, b1 0.9, b2 0.999, eps
  1e-8) at ``--lr`` 1e-3, decayed to 0 along half a cosine over all the training steps
  (``tg.optim.cosine_decay``; ``--warmup N`` ramps up linearly over the first ``N`` steps
  first, ``--schedule constant`` keeps the rate). ``--optimizer adamw`` decouples the
  weight decay (``--weight-decay``, default 0.01 for AdamW, 0 for Adam, where it is the
  L2 form added to the gradient); either way the decay skips the biases
  (``mask=tg.optim.matrices_only``).
- **Regularisation.** Dropout on the dense layer (``--dropout``, 0.5) and random moves of
  the training images by up to ``--augment`` pixels down and across, anew at every epoch
  (``Translations`` in ``_cli.py``, as in the MLP example: one gather per minibatch).
- **Randomness.** ``--seed`` feeds one ``numpy.random.SeedSequence`` that spawns two
  generators, one for the initial weights and one that shuffles the training set at the
  start of every epoch and draws the moves. Dropout draws from ``tg.random``: the key of
  update ``t`` (counted from 0 over the whole run) is ``tg.random.fold_in(
  tg.random.key(seed), np.int64(t))``, passed to the training step as an argument, so the
  compiled step draws a fresh mask every time, and a resumed run draws the same masks as
  an uninterrupted one without storing any key. Same seed, same flags: the same numbers,
  bit for bit, with or without ``--no-jit`` (with the same numpy, BLAS and number of BLAS
  threads: ``OPENBLAS_NUM_THREADS`` changes the last bits of the matrix products).
- **Compilation.** The whole training step (forward, backward through ``value_and_grad``
  and Adam's update) is one function compiled by ``tg.jit``: once for the full minibatch
  and once for a smaller last one. ``--no-jit`` runs it as Python.
- **Checkpoints.** As in the MLP example: ``--save PATH`` writes the parameters, Adam's
  state, the shuffling generator's state, the configuration and the metrics after every
  epoch; ``--resume PATH`` carries on, bit-identical to an uninterrupted run, provided
  the flags that shape training match (``--epochs`` may grow only with ``--schedule
  constant``). ``--stop-after N`` ends a run after ``N`` epochs, as an interruption would.
- **One process.** Unlike the MLP example, this one does not run under ``mpiexec``.

Results of the defaults (10 epochs, ``OPENBLAS_NUM_THREADS=1``; docs/cnn.md has the
curves, the machine and the benchmark against PyTorch)::

    seed                                   0        1        2
    test accuracy                     0.9937   0.9929   0.9933
    CPU seconds an epoch (median)       49.7     50.4     49.5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from _cli import (
    HISTORY_KEYS,
    SIDE,
    Translations,
    add_data_arguments,
    add_output_arguments,
    add_training_arguments,
    check_output_arguments,
    check_resume_settings,
    load_mnist_or_exit,
    nonnegative_float,
    nonnegative_int,
    plot_history,
    positive_float,
    positive_int,
    preprocess,
    progress_bar,
    require_matplotlib,
    resume_point,
    save_checkpoint,
    summary_line,
    write_json,
)

import tapegrad as tg

PROG = "mnist_cnn.py"
N_CLASSES = 10
KERNEL = 5  # both convolutions: 5 x 5 kernels ...
PADDING = 2  # ... padded so that they keep the image size
POOL = 2  # 2 x 2 max pooling after each
EVAL_CHUNK = 500  # images per forward pass when evaluating (bounds the im2col memory)
CHECKPOINT_FORMAT = "mnist_cnn/1"
# The MLP example's per-epoch numbers, and the CPU time of the training steps.
HISTORY = (*HISTORY_KEYS, "cpu_seconds")
# Flags that determine the trajectory of training: a checkpoint resumes only under these.
TRAINING_KEYS = (
    "channels",
    "dense",
    "dropout",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "warmup",
    "augment",
    "batch_size",
    "seed",
    "val_size",
    "limit_train",
)


# ----------------------------------------------------------------------------- arguments


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a convolutional network on MNIST with tapegrad.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--channels",
        type=positive_int,
        nargs=2,
        default=[16, 32],
        metavar=("C1", "C2"),
        help="output channels of the two 5x5 convolutions",
    )
    net.add_argument("--dense", type=positive_int, default=128, help="width of the dense layer")
    net.add_argument(
        "--dropout", type=_rate, default=0.5, help="dropout rate on the dense layer (0: none)"
    )
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=["adam", "adamw"], default="adam")
    opt.add_argument("--lr", type=positive_float, default=1e-3, help="(peak) learning rate")
    opt.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        default=None,
        metavar="WD",
        help="weight decay on the weights, not the biases (default: 0 for adam, where it "
        "is added to the gradient; 0.01 for adamw, where it is decoupled)",
    )
    opt.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        default="cosine",
        help="learning-rate schedule over all the training steps",
    )
    opt.add_argument(
        "--warmup",
        type=nonnegative_int,
        default=0,
        metavar="STEPS",
        help="with --schedule cosine: ramp the rate up linearly over the first STEPS steps",
    )
    add_training_arguments(opt)
    opt.add_argument(
        "--no-jit",
        action="store_true",
        help="run each training step as Python instead of the program tg.jit compiles "
        "from it; the numbers are the same, bit for bit",
    )
    opt.add_argument(
        "--stop-after",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N epochs in this invocation, as if interrupted (--save now, "
        "--resume later with the same flags)",
    )
    data = add_data_arguments(parser)
    data.add_argument(
        "--train-eval-size",
        type=nonnegative_int,
        default=10_000,
        metavar="N",
        help="measure the per-epoch training loss and accuracy on the first N training "
        "images (0: all)",
    )
    add_output_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_arguments(parser, args)
    if args.warmup and args.schedule != "cosine":
        parser.error("--warmup needs --schedule cosine")
    if args.weight_decay is None:
        args.weight_decay = 0.01 if args.optimizer == "adamw" else 0.0
    if args.plot is not None:
        require_matplotlib(parser)
    return args


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's configuration as JSON data (what the metrics and checkpoints record)."""
    return {
        "channels": list(args.channels),
        "dense": args.dense,
        "dropout": args.dropout,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "warmup": args.warmup,
        "augment": args.augment,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "val_size": args.val_size,
        "limit_train": args.limit_train,
        "limit_test": args.limit_test,
        "train_eval_size": args.train_eval_size,
    }


# ----------------------------------------------------------------------------- data


def load_data(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "val": (x, y), "test": (x, y)}``: images flattened to float32
    ``(N, 784)`` (what :class:`Translations` moves), labels int64."""
    (x_train, y_train), (x_test, y_test) = load_mnist_or_exit(PROG, args.data_dir)
    if args.limit_train is not None:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    if args.limit_test is not None:
        x_test, y_test = x_test[: args.limit_test], y_test[: args.limit_test]
    if args.val_size >= len(x_train):
        raise SystemExit(
            f"{PROG}: error: --val-size {args.val_size} must be smaller than the number of "
            f"training examples ({len(x_train)})"
        )
    (x_tr, y_tr), (x_val, y_val) = tg.datasets.split_validation(x_train, y_train, args.val_size)
    return {
        "train": (preprocess(x_tr), y_tr.astype(np.int64)),
        "val": (preprocess(x_val), y_val.astype(np.int64)),
        "test": (preprocess(x_test), y_test.astype(np.int64)),
    }


def as_images(x: np.ndarray) -> np.ndarray:
    """Flattened images ``(N, 784)`` as the network's input ``(N, 1, 28, 28)``."""
    return x.reshape(len(x), 1, SIDE, SIDE)


# ----------------------------------------------------------------------------- model


def init_params(
    rng: np.random.Generator, channels: Sequence[int], dense: int, dtype: Any = np.float32
) -> dict:
    """The network's parameters, a plain pytree::

        {"conv1": {"w": (C1, 1, 5, 5), "b": (C1,)}, "conv2": {"w": (C2, C1, 5, 5), "b": (C2,)},
         "dense": {"W": (D, C2 * 7 * 7), "b": (D,)}, "out": {"W": (10, D), "b": (10,)}}

    Kaiming-uniform weights (every layer feeds a ReLU but the last, which keeps the same
    rule as :func:`tapegrad.nn.init_mlp`), zero biases.
    """
    c1, c2 = channels
    side = SIDE // POOL // POOL  # 7: what is left of the image after the two pools
    init = tg.nn.kaiming_uniform
    return {
        "conv1": {"w": init(rng, (c1, 1, KERNEL, KERNEL), dtype=dtype), "b": np.zeros(c1, dtype)},
        "conv2": {"w": init(rng, (c2, c1, KERNEL, KERNEL), dtype=dtype), "b": np.zeros(c2, dtype)},
        "dense": {"W": init(rng, dense, c2 * side * side, dtype), "b": np.zeros(dense, dtype)},
        "out": {"W": init(rng, N_CLASSES, dense, dtype), "b": np.zeros(N_CLASSES, dtype)},
    }


def count_parameters(params: dict) -> int:
    return sum(int(np.size(leaf)) for leaf in tg.tree_leaves(params))


def logits(params: dict, x: Any, key: Any = None, rate: float = 0.0) -> Any:
    """The network's logits ``(N, 10)`` on images ``x (N, 1, 28, 28)``.

    ``key`` (a ``tg.random`` key) turns dropout on, at ``rate``: training. Without it the
    function is deterministic: evaluation.
    """
    h = x
    for name in ("conv1", "conv2"):
        layer = params[name]
        h = tg.nn.conv2d(h, layer["w"], layer["b"], padding=PADDING)
        h = tg.nn.relu(tg.nn.max_pool2d(h, POOL))  # = max_pool2d(relu(h)), on 1/4 of the pixels
    h = tg.nn.relu(tg.nn.affine(params["dense"]["W"], params["dense"]["b"], tg.nn.flatten(h)))
    if key is not None and rate:
        h = tg.nn.dropout(key, h, rate)
    return tg.nn.affine(params["out"]["W"], params["out"]["b"], h)


def make_optimizer(args: argparse.Namespace, steps_per_epoch: int) -> tg.optim.Optimizer:
    total = args.epochs * steps_per_epoch
    if args.schedule == "constant":
        lr: Any = args.lr
    elif args.warmup:
        if args.warmup >= total:
            raise SystemExit(
                f"{PROG}: error: --warmup {args.warmup} must be smaller than the number of "
                f"training steps ({total})"
            )
        lr = tg.optim.warmup_cosine(args.lr, args.warmup, total)
    else:
        lr = tg.optim.cosine_decay(args.lr, total)
    rule = tg.optim.adamw if args.optimizer == "adamw" else tg.optim.adam
    return rule(lr, weight_decay=args.weight_decay, mask=tg.optim.matrices_only)


def make_train_step(opt: tg.optim.Optimizer, rate: float) -> Callable[..., tuple]:
    """``step(params, opt_state, x, y, key) -> (params, opt_state, loss)``: one update.

    The mean NLL of the minibatch with dropout drawn from ``key``, its gradient, and the
    optimizer's update: a pure function, which ``tg.jit`` compiles whole.
    """

    def loss_fn(params: Any, x: Any, y: Any, key: Any) -> Any:
        return tg.nn.nll(logits(params, x, key, rate), y)

    value_and_grad = tg.value_and_grad(loss_fn)

    def train_step(params: Any, opt_state: Any, x: Any, y: Any, key: Any) -> tuple:
        loss, grads = value_and_grad(params, x, y, key)
        params, opt_state = opt.update(params, grads, opt_state)
        return params, opt_state, loss

    return train_step


def dropout_key(root: Any, step: int) -> Any:
    """The dropout key of update ``step`` (counted from 0 over the whole run)."""
    return tg.random.fold_in(root, np.int64(step))


def evaluate(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Mean NLL and accuracy of ``params`` on flattened images ``x``: forward only, no
    dropout, on plain arrays, ``EVAL_CHUNK`` images at a time. ``(None, None)`` if empty."""
    if len(x) == 0:
        return None, None
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        z = logits(params, as_images(xb))
        loss_sum += float(tg.nn.nll(z, yb)) * len(xb)
        correct += int(np.sum(np.argmax(z, axis=1) == yb))
    return loss_sum / len(x), correct / len(x)


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(
    path: str, params: dict, opt_state: Any, config: dict
) -> tuple[dict, Any, int, np.random.Generator, dict]:
    """``(params, opt_state, epochs done, shuffling generator, history)`` from ``path``.

    ``params`` and ``opt_state`` are templates (fresh ones): the checkpoint must match
    their structure, shapes and dtypes. Its configuration must match ``config``.
    """
    try:
        _, meta = tg.checkpoint.load(path)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise SystemExit(f"{PROG}: error: {path} is not a {PROG} checkpoint")
        # the settings before the arrays: a network of other widths does not fit the templates
        check_resume_settings(PROG, path, meta["config"], config, TRAINING_KEYS)
        tree, _ = tg.checkpoint.load(path, like={"params": params, "opt_state": opt_state})
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"{PROG}: error: cannot resume from {path}: {exc}") from None
    epoch, rng = resume_point(PROG, path, meta, config)
    return tree["params"], tree["opt_state"], epoch, rng, meta["history"]


# ----------------------------------------------------------------------------- training


def describe(args: argparse.Namespace) -> str:
    c1, c2 = args.channels
    return (
        f"conv5x5-{c1} pool ReLU, conv5x5-{c2} pool ReLU, dense {args.dense} ReLU"
        + (f" dropout {args.dropout:g}" if args.dropout else "")
        + f", dense {N_CLASSES}"
    )


def run(args: argparse.Namespace) -> tuple[dict, dict[str, Any]]:
    """Train as ``args`` says; ``(final parameters, metrics)``."""
    config = config_of(args)
    data = load_data(args)
    x_train, y_train = data.pop("train")
    x_val, y_val = data["val"]
    x_test, y_test = data["test"]
    config.update(n_train=len(x_train), n_val=len(x_val), n_test=len(x_test))
    steps_per_epoch = tg.datasets.num_batches(len(x_train), args.batch_size)
    shifts = None
    if args.augment:
        shifts = Translations(x_train, args.augment)
        x_train = shifts.images  # evaluate on the unmoved images (a view: no second copy)
    n_eval = args.train_eval_size or len(x_train)
    x_eval, y_eval = x_train[:n_eval], y_train[:n_eval]
    rows = np.arange(len(x_train))

    init_seq, shuffle_seq = np.random.SeedSequence(args.seed).spawn(2)
    params = init_params(np.random.default_rng(init_seq), args.channels, args.dense)
    shuffle_rng = np.random.default_rng(shuffle_seq)
    dropout_root = tg.random.key(args.seed)
    opt = make_optimizer(args, steps_per_epoch)
    opt_state = opt.init(params)
    config["parameters"] = count_parameters(params)
    history: dict[str, list] = {name: [] for name in HISTORY}
    start = 0
    if args.resume is not None:
        params, opt_state, start, shuffle_rng, history = load_checkpoint(
            args.resume, params, opt_state, config
        )
        print(f"resumed from {args.resume} after epoch {start}")

    print(
        f"CNN {describe(args)} ({config['parameters']:,} parameters); {args.optimizer} "
        f"lr {args.lr:g} ({args.schedule}"
        + (f", {args.warmup} warm-up steps" if args.warmup else "")
        + ")"
        + (f", weight decay {args.weight_decay:g}" if args.weight_decay else "")
        + (f", shifts of up to {args.augment} px" if args.augment else "")
        + f", batch {args.batch_size}, seed {args.seed}"
        + (", not compiled" if args.no_jit else "")
        + f"; {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test examples"
    )

    train_step = make_train_step(opt, args.dropout)
    if not args.no_jit:  # compiled once, and once more for a smaller last batch
        train_step = tg.jit(train_step)
    last = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    for epoch in range(start + 1, last + 1):
        t0, cpu0 = time.perf_counter(), time.process_time()
        loss_sum = 0.0
        batches = tg.datasets.batches(rows, y_train, args.batch_size, rng=shuffle_rng)
        iterable, bar = progress_bar(
            batches, steps_per_epoch, f"epoch {epoch}/{args.epochs}", not args.no_progress
        )
        for k, (rows_b, yb) in enumerate(iterable):
            xb = x_train[rows_b] if shifts is None else shifts.random(rows_b, shuffle_rng)
            key = dropout_key(dropout_root, (epoch - 1) * steps_per_epoch + k)
            params, opt_state, loss = train_step(params, opt_state, as_images(xb), yb, key)
            loss_sum += float(loss) * len(rows_b)
            if bar is not None and k % 20 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        if bar is not None:
            bar.close()
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0

        t1 = time.perf_counter()
        train_loss, train_acc = evaluate(params, x_eval, y_eval)
        val_loss, val_acc = evaluate(params, x_val, y_val)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "batch_loss": loss_sum / len(x_train),
            "seconds": seconds,
            "eval_seconds": time.perf_counter() - t1,
            "cpu_seconds": cpu_seconds,
        }
        for name in HISTORY:
            history[name].append(row[name])
        print(summary_line(row, args.epochs), flush=True)
        if args.save is not None:
            save_checkpoint(
                args.save,
                params,
                opt_state,
                epoch,
                shuffle_rng,
                config,
                history,
                format=CHECKPOINT_FORMAT,
            )

    test_loss, test_acc = evaluate(params, x_test, y_test)
    seconds = history["seconds"]
    metrics = {
        "config": config,
        "history": history,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "mean_seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "mean_cpu_seconds_per_epoch": (
            sum(history["cpu_seconds"]) / len(seconds) if seconds else None
        ),
        "resumed_from_epoch": start if args.resume is not None else None,
        "completed": last == args.epochs,
    }
    if args.metrics is not None:
        write_json(args.metrics, metrics)
    if args.plot is not None and history["epoch"]:
        plot_history(
            history,
            args.plot,
            title=f"MNIST, CNN {'-'.join(map(str, args.channels))}-{args.dense}, "
            f"{args.optimizer}: test accuracy {test_acc:.4f}",
        )
    print(f"test accuracy: {test_acc:.4f}")
    return params, metrics


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run from the command line (``argv`` defaults to ``sys.argv[1:]``); the metrics."""
    _, metrics = run(parse_args(argv))
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
