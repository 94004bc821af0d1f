"""Train a multilayer perceptron on MNIST with tapegrad: the project's headline job.

One command trains the default network (784-100-100-10, ReLU, SGD with momentum, a small
weight penalty, training images moved by up to a pixel)::

    TAPEGRAD_DATA_DIR=/path/to/mnist python examples/mnist_tape.py

and ends with the line ``test accuracy: 0.9xxx``. ``--help`` lists the flags; a few runs::

    python examples/mnist_tape.py --hidden --l2 0 --augment 0   # softmax regression
    python examples/mnist_tape.py --activation tanh             # 784-100-100-10 tanh
    python examples/mnist_tape.py --l2 0 --augment 0            # no regularisation
    python examples/mnist_tape.py --plot curves.png --metrics metrics.json
    python examples/mnist_tape.py --save ckpt.npz --stop-after 4      # ... then, later:
    python examples/mnist_tape.py --save ckpt.npz --resume ckpt.npz   # epochs 5 to 10
    mpiexec -n 2 python examples/mnist_tape.py      # on 2 processes (tapegrad[distributed])

Choices made here (and why)
---------------------------
- **Data.** Images become float32 in [0, 1] (``x / 255``), flattened to 784; labels int64.
  ``--limit-train N`` keeps the first ``N`` of the 60,000 training examples, then the
  validation set is the LAST ``--val-size`` of those (deterministic, no shuffling, as
  ``tapegrad.datasets.split_validation`` does without a generator). The defaults give
  the usual 50,000 / 10,000 / 10,000 train / validation / test split. ``--val-size 0``
  trains on everything and reports no validation numbers.
- **Per-epoch numbers.** After each epoch the network is evaluated (forward only, plain
  numpy: nothing is traced) on the whole training set and the validation set, so
  ``train_loss``/``train_accuracy`` and ``val_loss``/``val_accuracy`` are measured with the
  same parameters and are directly comparable, and always on the images as they are (not
  moved by ``--augment``). The mean of the minibatch losses seen during the epoch
  (parameters moving under it) is kept too, as ``batch_loss``: the NLL of the images as
  trained on (moved), without the weight penalty.
  ``seconds`` is the wall-clock time of the epoch's training steps; ``eval_seconds`` that
  of the evaluation after it.
- **Randomness.** ``--seed`` feeds one ``numpy.random.SeedSequence`` that spawns two
  generators: one for the initial weights, one that shuffles the training set at the start
  of every epoch and then draws the ``--augment`` offsets of each minibatch. Same seed,
  same flags: the same numbers, bit for bit (with the same numpy, BLAS and number of BLAS
  threads: ``OPENBLAS_NUM_THREADS`` changes the last bits of the matrix products).
- **Checkpoints.** With ``--save PATH`` a checkpoint is written (atomically, by
  ``tapegrad.checkpoint``) at the end of every epoch: the parameters and the optimizer
  state as arrays, and as JSON metadata the number of epochs done, the shuffling
  generator's ``bit_generator.state``, the run's configuration and the metrics so far.
  ``--resume PATH`` restores all of it and carries on from the next epoch, reshuffling
  with the restored generator, so the final parameters and accuracies are bit-identical
  to those of an uninterrupted run. The flags that shape training must match those saved
  (``--epochs`` may grow when the learning rate is constant; a checkpoint from before
  ``--l2`` and ``--augment`` existed counts as ``--l2 0 --augment 0``). ``--stop-after N``
  ends a run after ``N`` epochs, as an interruption would (the schedule still spans
  ``--epochs``).
- **Learning rate.** ``--schedule cosine`` (the default) decays the rate from ``--lr`` to
  0 along half a cosine over all the training steps, ``step`` divides it by 10 after half
  and again after three quarters of them, ``constant`` keeps it fixed. The defaults
  (momentum 0.9, lr 0.1, batch 128, cosine, 10 epochs) won a small sweep (lr 0.05 to
  0.2, batch 32 to 128, seed 0, no regularisation) on validation accuracy.
- **Regularisation.** Unregularised, the default network ends at 0.999 training accuracy
  and 0.978 to 0.981 test accuracy depending on the seed: it overfits. Two remedies, both
  on by default:

  * ``--l2 LAMBDA`` adds ``LAMBDA / 2`` times the squared norm of every weight matrix
    (biases excluded) to the minibatch NLL, inside the differentiated function, so the
    gradient gains ``LAMBDA W``; see ``weight_penalty``.
  * ``--augment N`` moves each training image, in every minibatch and anew at every
    epoch, by its own whole number of pixels down and across, each uniform in
    ``[-N, N]``, zeros shifted in: new images the network has not seen, with the same
    labels. ``Translations`` (in ``_cli.py``) pads the training set once so that a moved
    minibatch is one gather: +5 to 7 % per epoch for the default network; the penalty
    costs +14 to 16 %.

  Defaults chosen on validation accuracy (mean of seeds 0 to 5): ``--augment 1`` 0.9836
  alone, 0.9840 with ``--l2 1e-4``, 0.9836 with ``--l2 5e-4`` (indistinguishable: the
  seed-to-seed spread is 0.0006 to 0.0010), 0.9827 with ``--l2 1e-3`` and 0.9831 with
  ``--augment 2 --l2 5e-4`` (seeds 0 to 2 for these two); ``--l2 5e-4 --augment 1`` kept.
  Test accuracies after 10 epochs, seeds 0, 1, 2 (``OPENBLAS_NUM_THREADS=1``)::

      (defaults)                                   0.9864  0.9850  0.9871
      --l2 0 --augment 0                           0.9809  0.9806  0.9784
      --augment 0                                  0.9815  0.9816  0.9814
      --l2 0                                       0.9839  0.9852  0.9851
      --activation tanh                            0.9849  0.9824  0.9841
      --activation tanh --l2 0 --augment 0         0.9801  0.9780  0.9783
      --hidden --l2 0 --augment 0   (784-10)       0.9245  0.9252  0.9247
      --hidden                      (784-10)       0.9174  0.9176  0.9177

  Softmax regression is a linear classifier that underfits: the penalty and the moves
  only cost it accuracy, so train it with ``--l2 0 --augment 0``.
- **Several processes.** Under ``mpiexec -n N`` (``tapegrad.distributed``) every rank
  draws the same shuffles and shifts, takes its ``1/N`` slice of each minibatch of
  ``--batch-size`` (the global batch: the training run is the same one whatever ``N``),
  and the gradients are averaged over the ranks, weighted by the examples each had,
  before every update. The per-epoch evaluation is split the same way. Only rank 0 prints
  and writes the metrics, the plot and the checkpoints; a checkpoint does not depend on
  ``N``, so ``--resume`` works with any number of processes (every rank reads it: on a
  cluster it must be on a shared file system). Results match one process to float32
  round-off, not bit for bit: each rank sums its own shard first.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from _cli import (
    HISTORY_KEYS,
    N_PIXELS,
    Translations,
    add_data_arguments,
    add_output_arguments,
    add_training_arguments,
    check_output_arguments,
    check_resume_settings,
    load_mnist_or_exit,
    momentum_coefficient,
    nonnegative_float,
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
from tapegrad import distributed as dist

N_CLASSES = 10
EVAL_CHUNK = 10_000
CHECKPOINT_FORMAT = "mnist_tape/1"
# Flags that determine the trajectory of training: a checkpoint resumes only under these.
TRAINING_KEYS = (
    "hidden",
    "activation",
    "optimizer",
    "lr",
    "mu",
    "schedule",
    "batch_size",
    "seed",
    "val_size",
    "limit_train",
    "l2",
    "augment",
)
# What a checkpoint written before a key existed was trained with (no penalty, no shifts).
LEGACY_CONFIG = {"l2": 0.0, "augment": 0}


# ----------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist_tape.py",
        description="Train an MLP on MNIST with tapegrad (reverse-mode autodiff on a tape).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    net = parser.add_argument_group("network")
    net.add_argument(
        "--hidden",
        type=positive_int,
        nargs="*",
        default=[100, 100],
        metavar="WIDTH",
        help="widths of the hidden layers; --hidden alone means none (softmax regression)",
    )
    net.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=["sgd", "momentum"], default="momentum")
    opt.add_argument("--lr", type=positive_float, default=0.1, help="(peak) learning rate")
    opt.add_argument("--mu", type=momentum_coefficient, default=0.9, help="momentum coefficient")
    opt.add_argument(
        "--schedule",
        choices=["cosine", "step", "constant"],
        default="cosine",
        help="learning-rate schedule over all the training steps",
    )
    opt.add_argument(
        "--l2",
        type=nonnegative_float,
        default=5e-4,
        metavar="LAMBDA",
        help="weight penalty: LAMBDA/2 times the squared norm of every weight matrix (not "
        "the biases) is added to the loss (0: none)",
    )
    add_training_arguments(opt)
    opt.add_argument(
        "--no-jit",
        action="store_true",
        help="run each training step as Python (tg.value_and_grad, then the update) instead "
        "of the program tg.jit compiles from it; the numbers are the same, bit for bit",
    )
    opt.add_argument(
        "--stop-after",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N epochs in this invocation, as if interrupted (for time-limited "
        "jobs: --save now, --resume later with the same flags)",
    )
    add_data_arguments(parser)
    add_output_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_arguments(parser, args)
    if args.plot is not None:
        require_matplotlib(parser)
    return args


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's configuration as JSON data (what the metrics and checkpoints record)."""
    return {
        "hidden": list(args.hidden),
        "activation": args.activation,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "mu": args.mu if args.optimizer == "momentum" else None,
        "schedule": args.schedule,
        "l2": args.l2,
        "augment": args.augment,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "val_size": args.val_size,
        "limit_train": args.limit_train,
        "limit_test": args.limit_test,
    }


# ----------------------------------------------------------------------------- data


def load_data(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "val": (x, y), "test": (x, y)}`` as float32 / int64 arrays."""
    (x_train, y_train), (x_test, y_test) = load_mnist_or_exit("mnist_tape.py", args.data_dir)
    if args.limit_train is not None:
        x_train, y_train = x_train[: args.limit_train], y_train[: args.limit_train]
    if args.limit_test is not None:
        x_test, y_test = x_test[: args.limit_test], y_test[: args.limit_test]
    if args.val_size >= len(x_train):
        raise SystemExit(
            f"mnist_tape.py: error: --val-size {args.val_size} must be smaller than the "
            f"number of training examples ({len(x_train)})"
        )
    (x_tr, y_tr), (x_val, y_val) = tg.datasets.split_validation(x_train, y_train, args.val_size)
    return {
        "train": (preprocess(x_tr), y_tr.astype(np.int64)),
        "val": (preprocess(x_val), y_val.astype(np.int64)),
        "test": (preprocess(x_test), y_test.astype(np.int64)),
    }


# ----------------------------------------------------------------------------- model


def make_schedule(args: argparse.Namespace, steps_per_epoch: int) -> float | Callable[[Any], Any]:
    """The learning rate, or a callable ``step -> lr`` (``step`` counts updates from 0).

    Schedules compute with tapegrad's ops on the step (a numpy integer, and an input of the
    compiled training step), never with ``math`` on a Python number.
    """
    lr = args.lr
    total = args.epochs * steps_per_epoch
    if args.schedule == "constant":
        return lr
    if args.schedule == "cosine":

        def cosine(step: Any) -> Any:
            return 0.5 * lr * (1.0 + tg.cos(math.pi * tg.minimum(step, total) / total))

        return cosine

    half, three_quarters = total // 2, (3 * total) // 4

    def step_decay(step: Any) -> Any:
        return lr * tg.where(step >= three_quarters, 0.1**2, tg.where(step >= half, 0.1, 1.0))

    return step_decay


def make_optimizer(args: argparse.Namespace, steps_per_epoch: int) -> tg.optim.Optimizer:
    lr = make_schedule(args, steps_per_epoch)
    if args.optimizer == "sgd":
        return tg.optim.sgd(lr)
    return tg.optim.momentum(lr, mu=args.mu)


def init_params(args: argparse.Namespace, rng: np.random.Generator) -> dict:
    sizes = [N_PIXELS, *args.hidden, N_CLASSES]
    return tg.nn.init_mlp(rng, sizes, activation=args.activation, dtype=np.float32)


def weight_penalty(params: Any) -> Any:
    """The sum over the layers of the squared Frobenius norm of ``W`` (biases excluded).

    Each norm is the dot product of the flattened matrix with itself: the same number as
    ``tg.sum(W ** 2)`` but cheaper to differentiate. A training step of the default
    network (batch 128, one BLAS thread) took 0.97 ms with it, 1.10 ms with
    ``tg.sum(W ** 2)``, 1.6 ms with ``tg.sum(W * W)`` and 0.80 ms without a penalty.
    """
    total = None
    for layer in params["layers"]:
        w = tg.reshape(layer["W"], (-1,))
        norm2 = tg.matmul(w, w)
        total = norm2 if total is None else total + norm2
    return total


def make_loss(activation: str, l2: float = 0.0) -> Callable[[Any, Any, Any], Any]:
    """``loss(params, x, y) -> (objective, nll)``: the objective is the mean NLL plus
    ``l2 / 2`` times :func:`weight_penalty` (use with ``has_aux=True``)."""

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        nll = tg.nn.nll(tg.nn.mlp(params, x, activation), y)
        if l2 == 0:
            return nll, nll
        return nll + (0.5 * l2) * weight_penalty(params), nll

    return loss_fn


def evaluate(
    params: dict, x: np.ndarray, y: np.ndarray, activation: str
) -> tuple[float | None, float | None]:
    """Mean NLL and accuracy of ``params`` on ``(x, y)``: forward only, on plain arrays.

    ``(None, None)`` for an empty set.
    """
    if len(x) == 0:
        return None, None
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        logits = tg.nn.mlp(params, xb, activation)
        loss_sum += float(tg.nn.nll(logits, yb)) * len(xb)
        correct += int(np.sum(np.argmax(logits, axis=1) == yb))
    return loss_sum / len(x), correct / len(x)


def evaluate_sharded(
    params: dict, x: np.ndarray, y: np.ndarray, activation: str
) -> tuple[float | None, float | None]:
    """:func:`evaluate` with the examples split across the processes (the same numbers up
    to float64 round-off; exactly :func:`evaluate` for one process)."""
    mine = dist.shard(len(x))
    loss, acc = evaluate(params, x[mine], y[mine], activation)
    if dist.size() == 1 or len(x) == 0:
        return loss, acc
    n = len(y[mine])
    mean = dist.allreduce_mean(np.array([loss or 0.0, acc or 0.0]), weight=n)
    return float(mean[0]), float(mean[1])


# ----------------------------------------------------------------------------- checkpoints


def load_checkpoint(
    path: str, params: dict, opt_state: Any, config: dict
) -> tuple[dict, Any, int, np.random.Generator, dict]:
    """``(params, opt_state, epochs done, shuffling generator, history)`` from ``path``.

    ``params`` and ``opt_state`` are templates (fresh ones): the checkpoint must match
    their structure, shapes and dtypes. Its configuration must match ``config``.
    """
    tree, meta = tg.checkpoint.load(path, like={"params": params, "opt_state": opt_state})
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"mnist_tape.py: error: {path} is not a mnist_tape.py checkpoint")
    saved = {**LEGACY_CONFIG, **meta["config"]}
    check_resume_settings("mnist_tape.py", path, saved, config, TRAINING_KEYS)
    epoch, rng = resume_point("mnist_tape.py", path, meta, config)
    return tree["params"], tree["opt_state"], epoch, rng, meta["history"]


# ----------------------------------------------------------------------------- training


def new_history() -> dict[str, list]:
    return {key: [] for key in HISTORY_KEYS}


def run(args: argparse.Namespace) -> tuple[dict, dict[str, Any]]:
    """Train as ``args`` says; ``(final parameters, metrics)``."""
    config = config_of(args)
    main_process = dist.is_main()
    say = print if main_process else _silent
    # Rank 0 loads first, so that only one process downloads what is missing.
    data = load_data(args) if main_process else None
    dist.barrier()
    if data is None:
        data = load_data(args)
    x_train, y_train = data.pop("train")  # not kept in data: --augment pads a copy of it
    x_val, y_val = data["val"]
    x_test, y_test = data["test"]
    config.update(n_train=len(x_train), n_val=len(x_val), n_test=len(x_test), processes=dist.size())
    steps_per_epoch = tg.datasets.num_batches(len(x_train), args.batch_size)
    shifts = None
    if args.augment:
        shifts = Translations(x_train, args.augment)
        x_train = shifts.images  # evaluate on the unmoved images (a view: no second copy)
    # Minibatches of row numbers: each process then gathers only its share of the images.
    rows = np.arange(len(x_train))

    init_seq, shuffle_seq = np.random.SeedSequence(args.seed).spawn(2)
    params = init_params(args, np.random.default_rng(init_seq))
    shuffle_rng = np.random.default_rng(shuffle_seq)
    opt = make_optimizer(args, steps_per_epoch)
    opt_state = opt.init(params)
    history = new_history()
    start = 0
    if args.resume is not None:
        params, opt_state, start, shuffle_rng, history = load_checkpoint(
            args.resume, params, opt_state, config
        )
        say(f"resumed from {args.resume} after epoch {start}")
    # Every process starts from rank 0's parameters (already equal: a check of the layout).
    params, opt_state = dist.broadcast((params, opt_state))

    arch = "-".join(str(n) for n in [N_PIXELS, *args.hidden, N_CLASSES])
    say(
        f"MLP {arch} {args.activation}, {args.optimizer} lr {args.lr} ({args.schedule})"
        + (f" mu {args.mu}" if args.optimizer == "momentum" else "")
        + (f", l2 {args.l2:g}" if args.l2 else "")
        + (f", shifts of up to {args.augment} px" if args.augment else "")
        + f", batch {args.batch_size}, seed {args.seed}; "
        f"{len(x_train)} train / {len(x_val)} validation / {len(x_test)} test examples"
    )
    if dist.size() > 1:
        low, high = args.batch_size // dist.size(), -(-args.batch_size // dist.size())
        say(
            f"data parallel: {dist.size()} processes, each computing the gradient of "
            + (f"{low}" if low == high else f"{low} or {high}")
            + f" of the {args.batch_size} examples of a minibatch"
        )

    value_and_grad = tg.value_and_grad(make_loss(args.activation, args.l2), has_aux=True)
    compute_gradient, apply_update = value_and_grad, opt.update
    if not args.no_jit:  # each compiled once (and once more for a smaller last batch)
        compute_gradient, apply_update = tg.jit(value_and_grad), tg.jit(opt.update)
    last = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    for epoch in range(start + 1, last + 1):
        t0 = time.perf_counter()
        loss_sum = 0.0
        # Every process draws the same global minibatches (and shifts) from the same rng.
        batches = tg.datasets.batches(rows, y_train, args.batch_size, rng=shuffle_rng)
        iterable, bar = progress_bar(
            batches,
            steps_per_epoch,
            f"epoch {epoch}/{args.epochs}",
            not args.no_progress and main_process,
        )
        for k, (rows_b, yb) in enumerate(iterable):
            mine = dist.shard(len(rows_b))
            if shifts is None:
                xb = x_train[rows_b[mine]]
            else:
                xb = shifts.random(rows_b, shuffle_rng, mine)
            if len(xb):
                (_, loss), grads = compute_gradient(params, xb, yb[mine])
            else:  # a last minibatch with fewer examples than processes
                loss, grads = np.float32(0), tg.tree_map(np.zeros_like, params)
            loss, grads = dist.allreduce_mean((loss, grads), weight=len(xb))
            params, opt_state = apply_update(params, grads, opt_state)
            loss_sum += float(loss) * len(rows_b)
            if bar is not None and k % 50 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        train_loss, train_acc = evaluate_sharded(params, x_train, y_train, args.activation)
        val_loss, val_acc = evaluate_sharded(params, x_val, y_val, args.activation)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "batch_loss": loss_sum / len(x_train),
            "seconds": seconds,
            "eval_seconds": time.perf_counter() - t1,
        }
        for key in HISTORY_KEYS:
            history[key].append(row[key])
        say(summary_line(row, args.epochs), flush=True)
        if args.save is not None and main_process:
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

    test_loss, test_acc = evaluate_sharded(params, x_test, y_test, args.activation)
    seconds = history["seconds"]
    metrics = {
        "config": config,
        "history": history,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "mean_seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "resumed_from_epoch": start if args.resume is not None else None,
        "completed": last == args.epochs,
    }
    if args.metrics is not None and main_process:
        write_json(args.metrics, metrics)
    if args.plot is not None and history["epoch"] and main_process:
        plot_history(
            history,
            args.plot,
            title=f"MNIST, MLP {arch} {args.activation}, {args.optimizer}"
            + (f", l2 {args.l2:g}" if args.l2 else "")
            + (f", shifts ≤ {args.augment} px" if args.augment else "")
            + f": test accuracy {test_acc:.4f}",
        )
    say(
        f"test accuracy: {test_acc:.4f}"
        + (f" (trained by {dist.size()} processes)" if dist.size() > 1 else "")
    )
    return params, metrics


def _silent(*args: Any, **kwargs: Any) -> None:
    """``print`` on the processes other than rank 0."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run from the command line (``argv`` defaults to ``sys.argv[1:]``); the metrics.

    Under ``mpiexec``, an error on any process ends them all (no rank is left waiting).
    """
    with dist.abort_on_error():
        _, metrics = run(parse_args(argv))
    return metrics


if __name__ == "__main__":
    main()
