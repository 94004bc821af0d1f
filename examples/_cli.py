"""What the example scripts share (``python examples/<name>.py`` finds this module): the
checks of their arguments, and loading MNIST or exiting with one clear message."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

from tapegrad.mnist import MIRRORS, DownloadError, default_data_dir, load_mnist, missing_files


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
