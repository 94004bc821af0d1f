"""What the example scripts share (``python examples/<name>.py`` finds this module): the
checks of their arguments, and loading MNIST or exiting with one clear message.

For the two MNIST training scripts, ``mnist_tape.py`` (the MLP) and ``mnist_cnn.py`` (the
CNN), also the flags they have in common, the preparation and random moves of the images
(:func:`preprocess`, :class:`Translations`) and their output: the progress bar, the
per-epoch summary line, the learning curves and the metrics file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import tapegrad as tg
from tapegrad.mnist import MIRRORS, DownloadError, default_data_dir, load_mnist, missing_files

SIDE = 28  # MNIST images are SIDE x SIDE pixels
N_PIXELS = SIDE * SIDE
# The per-epoch numbers both MNIST scripts record (the CNN adds ``cpu_seconds``).
HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "batch_loss",
    "seconds",
    "eval_seconds",
)


# ----------------------------------------------------------------------------- arguments


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def momentum_coefficient(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def max_shift(text: str) -> int:
    """The largest move of an image, in whole pixels: an integer in ``[0, SIDE - 1]``
    (``--augment``; argparse names the function in its message for a non-integer)."""
    value = int(text)
    if not 0 <= value < SIDE:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SIDE - 1}], got {text}")
    return value


def add_training_arguments(group: argparse._ArgumentGroup) -> None:
    """Add to ``group`` (the "optimisation" group) the flags both MNIST scripts define
    alike, in this order: ``--augment``, ``--batch-size``, ``--epochs``, ``--seed``."""
    group.add_argument(
        "--augment",
        type=max_shift,
        default=1,
        metavar="N",
        help="move each training image by a random whole number of pixels in [-N, N] "
        "down and across, anew at each epoch (0: no augmentation)",
    )
    group.add_argument("--batch-size", type=positive_int, default=128)
    group.add_argument("--epochs", type=positive_int, default=10, help="total number of epochs")
    group.add_argument("--seed", type=nonnegative_int, default=0)


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the "data" group of both MNIST scripts: ``--data-dir``, ``--val-size``,
    ``--limit-train``, ``--limit-test``; returned, for a script's own data flags."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        default=None,
        help="directory of the MNIST IDX files (default: $TAPEGRAD_DATA_DIR, else "
        "~/.cache/tapegrad/mnist; missing files are downloaded)",
    )
    data.add_argument(
        "--val-size",
        type=nonnegative_int,
        default=10_000,
        help="validation examples, held out from the END of the training set (0: none)",
    )
    data.add_argument(
        "--limit-train",
        type=positive_int,
        default=None,
        metavar="N",
        help="use only the first N training examples (before the validation split)",
    )
    data.add_argument(
        "--limit-test",
        type=positive_int,
        default=None,
        metavar="N",
        help="report test accuracy on the first N test examples only",
    )
    return data


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the "output" group of both MNIST scripts: ``--plot``, ``--metrics``, ``--save``,
    ``--resume``, ``--no-progress`` (:func:`check_output_arguments` checks them)."""
    out = parser.add_argument_group("output")
    out.add_argument("--plot", metavar="PATH", help="save loss/accuracy curves (needs matplotlib)")
    out.add_argument("--metrics", metavar="PATH", help="save the metrics as JSON")
    out.add_argument("--save", metavar="PATH", help="checkpoint here after every epoch")
    out.add_argument("--resume", metavar="PATH", help="resume training from this checkpoint")
    out.add_argument(
        "--no-progress", action="store_true", help="no progress bar (summary lines only)"
    )


def check_output_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` unless the folders of ``--plot``, ``--metrics`` and ``--save`` exist
    and ``--resume`` names a file. (Whether ``--plot`` can draw: :func:`require_matplotlib`.)
    """
    for flag in ("plot", "metrics", "save"):
        path = getattr(args, flag)
        if path is not None and not Path(path).expanduser().resolve().parent.is_dir():
            parser.error(f"--{flag} {path}: the folder does not exist")
    if args.resume is not None and not Path(args.resume).is_file():
        parser.error(f"--resume {args.resume}: no such file")


def require_matplotlib(parser: argparse.ArgumentParser) -> None:
    """``parser.error`` with how to install matplotlib, unless it imports (for ``--plot``)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'tapegrad[examples]' (or pip install matplotlib)"
        )


# ----------------------------------------------------------------------------- data


def load_mnist_or_exit(
    prog: str, data_dir: str | os.PathLike[str] | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``tapegrad.mnist.load_mnist(data_dir)``, or one message on stderr and exit status 1.

    When files are missing and cannot be downloaded, the message names them, the directory
    looked in, and how to provide them; other errors (a damaged file) give their own message.
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    try:
        return load_mnist(directory)
    except (DownloadError, FileNotFoundError):
        missing = ", ".join(missing_files(directory))
        raise SystemExit(
            f"{prog}: error: MNIST files missing from {directory}: {missing} "
            f"(downloading them failed).\nPut the files (gzip-compressed or not) in "
            f"{directory}, e.g. from {MIRRORS[0] if MIRRORS else 'a MNIST mirror'}, or set "
            "$TAPEGRAD_DATA_DIR (or pass --data-dir) to a directory that holds them."
        ) from None
    except (OSError, ValueError) as exc:  # a damaged file, a directory we may not create, ...
        raise SystemExit(f"{prog}: error: {exc}") from None


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(N, 28, 28)`` -> float32 ``(N, 784)`` in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)


class Translations:
    """A set of flattened images, padded once so that translating a minibatch costs a gather.

    Each image is stored with ``m = max_shift * (SIDE + 1)`` zeros before and after it,
    ``(N, 784 + 2 m)`` in all. Image ``i`` moved ``dy`` pixels down and ``dx`` right
    (negative: up, left), zeros shifted in, is then the 784 values starting at offset
    ``m - dy * SIDE - dx`` of its padded row, except for the ``|dx|`` columns that a
    horizontal move wraps around from the other edge of the neighbouring row: those are
    zeroed after the gather. A minibatch of images, each with its own offset, is thus one
    fancy-indexing gather of contiguous rows (as ``x[rows]`` is) and ``2 max_shift`` column
    assignments: no per-example Python loop, no reordering.
    """

    def __init__(self, images: np.ndarray, max_shift: int) -> None:
        if images.ndim != 2 or images.shape[1] != N_PIXELS:
            raise ValueError(f"expected flattened images (N, {N_PIXELS}), got {images.shape}")
        if not 0 <= max_shift < SIDE:
            raise ValueError(f"max_shift must lie in [0, {SIDE - 1}], got {max_shift}")
        self.max_shift = max_shift
        self.margin = max_shift * (SIDE + 1)
        self.padded = np.zeros((len(images), N_PIXELS + 2 * self.margin), images.dtype)
        self.padded[:, self.margin : self.margin + N_PIXELS] = images
        # (N, 2 m + 1, 784): windows[i, k] is the 784 values at offset k of padded row i
        self._windows = np.lib.stride_tricks.sliding_window_view(self.padded, N_PIXELS, axis=1)

    @property
    def images(self) -> np.ndarray:
        """The images themselves, unmoved: a (read-only) view of the padded array."""
        return self._windows[:, self.margin]

    def __len__(self) -> int:
        return len(self.padded)

    def take(self, rows: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Images ``rows``, image ``rows[b]`` moved ``dy[b]`` down and ``dx[b]`` right.

        ``|dy|, |dx| <= max_shift``; returns a new ``(len(rows), 784)`` array.
        """
        out = self._windows[rows, self.margin - dy * SIDE - dx]
        grid = out.reshape(len(out), SIDE, SIDE)
        for d in range(1, self.max_shift + 1):  # the wrapped-around columns
            grid[dx >= d, :, d - 1] = 0
            grid[dx <= -d, :, SIDE - d] = 0
        return out

    def random(
        self, rows: np.ndarray, rng: np.random.Generator, part: slice = slice(None)
    ) -> np.ndarray:
        """Images ``rows``, each moved by its own random offset: ``dy`` and ``dx``
        independent and uniform on the integers of ``[-max_shift, max_shift]``, drawn from
        ``rng`` (one call).

        With ``part``, only the images ``rows[part]`` are made, but the offsets of all the
        ``rows`` are drawn, so ``rng`` moves on as for the whole batch.
        """
        dy, dx = rng.integers(-self.max_shift, self.max_shift + 1, size=(2, len(rows)))
        return self.take(rows[part], dy[part], dx[part])


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str,
    params: dict,
    opt_state: Any,
    epoch: int,
    rng: np.random.Generator,
    config: dict,
    history: dict,
    *,
    format: str,
) -> None:
    """Parameters, optimizer state, the shuffling generator's state, the configuration and
    the metrics after ``epoch`` epochs, written atomically to ``path``."""
    tg.checkpoint.save(
        path,
        {"params": params, "opt_state": opt_state},
        format=format,
        epoch=epoch,
        rng_state=rng.bit_generator.state,
        config=config,
        history=history,
    )


def check_resume_settings(
    prog: str, path: str, saved: dict, config: dict, training_keys: Iterable[str]
) -> None:
    """Exit with the list of training flags whose values differ from the checkpoint's
    (``--epochs`` too, unless the schedule is constant: a schedule spans all the epochs)."""
    keys = list(training_keys)
    if config["schedule"] != "constant":
        keys.append("epochs")
    diffs = [
        f"--{k.replace('_', '-')}: {saved.get(k)!r} -> {config[k]!r}"
        for k in keys
        if saved.get(k) != config[k]
    ]
    if diffs:
        raise SystemExit(
            f"{prog}: error: cannot resume from {path}: it was trained with other settings "
            "(saved -> now): " + "; ".join(diffs)
        )


def resume_point(prog: str, path: str, meta: dict, config: dict) -> tuple[int, np.random.Generator]:
    """``(epochs done, shuffling generator)`` from a checkpoint's metadata; exits if it has
    trained more epochs than ``--epochs`` asks for."""
    epoch = int(meta["epoch"])
    if epoch > config["epochs"]:
        raise SystemExit(
            f"{prog}: error: {path} has already trained {epoch} epochs, more than "
            f"--epochs {config['epochs']}"
        )
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng_state"]
    return epoch, rng


# ----------------------------------------------------------------------------- output


def progress_bar(iterable: Iterable, total: int, desc: str, enabled: bool) -> tuple[Iterable, Any]:
    """``(iterable, bar)``: a tqdm bar when tqdm is installed and stdout is a terminal."""
    if not enabled:
        return iterable, None
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable, None
    bar = tqdm(
        iterable, total=total, desc=desc, leave=False, disable=None, unit="batch", file=sys.stdout
    )
    return bar, bar


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:.4f}"


def summary_line(row: dict[str, Any], epochs: int) -> str:
    """The line printed after each epoch: ``row``'s losses, accuracies and seconds."""
    width = len(str(epochs))
    return (
        f"epoch {row['epoch']:>{width}}/{epochs}  "
        f"train loss {_fmt(row['train_loss'])}  train acc {_fmt(row['train_accuracy'])}  "
        f"val loss {_fmt(row['val_loss'])}  val acc {_fmt(row['val_accuracy'])}  "
        f"{row['seconds']:.1f} s"
    )


def plot_history(history: dict[str, list], path: str, title: str = "") -> None:
    """Two panels, like a report figure: loss and accuracy per epoch, train and validation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history["epoch"]
    for ax, key, label in ((ax_loss, "loss", "loss (NLL)"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, history[f"train_{key}"], "o-", label="train")
        if any(v is not None for v in history[f"val_{key}"]):
            ax.plot(epochs, history[f"val_{key}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_loss.set_yscale("log")
    ax_loss.set_title("loss per epoch")
    ax_acc.set_title("accuracy per epoch")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=150)


def write_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` as indented JSON, atomically (a temporary file, renamed)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
