"""MNIST in its original IDX format, and minibatch helpers.

:func:`load_mnist` reads the four IDX files of the MNIST database (gzip-compressed or not)
from a directory, downloading any missing file from a list of public mirrors, and checks
every file it reads against the SHA-256 sum of its *decompressed* bytes that this module
ships (the gzip containers differ between mirrors, the decompressed bytes do not).

:func:`parse_idx` and :func:`write_idx` convert between IDX bytes and numpy arrays;
:func:`batches`, :func:`num_batches` and :func:`split_validation` cut arrays of examples
into minibatches and a validation set.

Everything that is wrong with a file (truncated, trailing bytes, bad magic number, corrupt
gzip data, wrong checksum, wrong shape) is reported as a :class:`ValueError` naming the
file and what was wrong.  No network access happens unless a file is missing and
``download=True``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import operator
import os
import struct
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "IDX_DTYPES",
    "MIRRORS",
    "MNIST_FILES",
    "SHA256",
    "DownloadError",
    "batches",
    "default_data_dir",
    "load_mnist",
    "num_batches",
    "parse_idx",
    "read_idx",
    "split_validation",
    "write_idx",
]

#: Public mirrors of the original gzip files, tried in order; ``<mirror><stem>.gz`` is fetched.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

#: The four MNIST files (stems, without ``.gz``), keyed by role.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the DECOMPRESSED bytes of each file (never of a ``.gz`` container).
SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

#: IDX type code (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}

_ENV_VAR = "TAPEGRAD_DATA_DIR"
_CHUNK = 1 << 16
_USER_AGENT = "tapegrad-datasets/0.1 (+python urllib)"


class DownloadError(OSError):
    """No mirror could deliver a file (network errors); the message lists every attempt."""


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a numpy array.

    The magic number is checked byte by byte: two zero bytes, the type code (``0x08``
    uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
    float64, all big-endian in the file) and the number of dimensions (at least 1).  Then
    come that many big-endian unsigned 32-bit sizes and the payload, whose length must be
    exactly the product of the sizes times the item size.

    Args:
        data: the whole file content (``bytes``, ``bytearray`` or ``memoryview``).
        name: a name for the data (usually its path), used in error messages.

    Returns:
        A fresh, writable, C-contiguous array of shape ``dims`` in native byte order
        (e.g. ``uint8`` of shape ``(N, 28, 28)`` for MNIST images).

    Raises:
        ValueError: naming ``name`` and what is wrong, for any malformed input.
    """
    view = memoryview(data).cast("B")
    n = len(view)
    if n < 4:
        raise ValueError(f"{name}: not an IDX file: {n} bytes, shorter than the 4-byte magic")
    if view[0] != 0 or view[1] != 0:
        raise ValueError(
            f"{name}: bad IDX magic number {bytes(view[:4]).hex()}: the first two bytes "
            "must be zero (is the file still gzip-compressed?)"
        )
    code, ndim = view[2], view[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: bad IDX magic number: unknown type code 0x{code:02X} ({known})")
    if ndim == 0:
        raise ValueError(f"{name}: bad IDX magic number: zero dimensions")
    header = 4 + 4 * ndim
    if n < header:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} header bytes, "
            f"the data has {n}"
        )
    dims = struct.unpack(f">{ndim}I", view[4:header])
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    actual = n - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise ValueError(
            f"{name}: {what}: IDX shape {tuple(dims)} of {dtype.newbyteorder('=').name} needs "
            f"{expected} payload bytes, the file has {actual}"
        )
    flat = np.frombuffer(view, dtype=dtype, count=math.prod(dims), offset=header)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(array: np.ndarray) -> bytes:
    """Encode an array as the bytes of an (uncompressed) IDX file.

    Args:
        array: at least 1-d, at most 255 dimensions, each of size < 2**32, of dtype uint8,
            int8, int16, int32, float32 or float64 (any byte order).

    Returns:
        The IDX bytes; ``parse_idx(write_idx(a), name)`` equals ``a``.

    Raises:
        ValueError: for a dtype IDX cannot hold, or a shape it cannot describe.
    """
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(
            f"write_idx: dtype {arr.dtype} has no IDX type code "
            "(use uint8, int8, int16, int32, float32 or float64)"
        )
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"write_idx: IDX needs 1 to 255 dimensions, got shape {arr.shape}")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"write_idx: every dimension must be < 2**32, got shape {arr.shape}")
    code = _IDX_CODES[native]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def _gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip ``data``; any corruption becomes a ValueError naming ``name``."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ValueError(f"{name}: corrupt gzip data ({type(exc).__name__}: {exc})") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed if its name ends in ``.gz``; no checksum is checked.

    Raises:
        ValueError: naming the file, if it is not valid (gzip-compressed) IDX data.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = _gunzip(raw, str(path))
    return parse_idx(raw, str(path))


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """The MNIST directory used when none is given: ``$TAPEGRAD_DATA_DIR`` if set (and not
    empty), else ``~/.cache/tapegrad/mnist``."""
    env = os.environ.get(_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tapegrad" / "mnist"


def _check_sha256(data: bytes, stem: str, name: str) -> None:
    expected = SHA256[stem]
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ValueError(
            f"{name}: SHA-256 checksum of the decompressed data is wrong "
            f"(expected {expected}, got {got}); the file is corrupt or not the original "
            f"MNIST {stem} — delete it so that it is downloaded again"
        )


def _checked_array(data: bytes, stem: str, name: str) -> np.ndarray:
    """Verify the checksum of decompressed ``data`` and parse it."""
    _check_sha256(data, stem, name)
    return parse_idx(data, name)


class _Progress:
    """Download progress: tqdm if importable, else a line on stderr every ~10%."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total = total
        self.desc = desc
        self.done = 0
        self._next_report = 0.1
        self._bar = None
        try:
            from tqdm import tqdm  # optional dependency
        except ImportError:
            print(f"downloading {desc}", file=sys.stderr)
        else:
            self._bar = tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False
            )

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.total:
            frac = self.done / self.total
            if frac >= self._next_report:
                print(f"  {self.desc}: {min(frac, 1.0):4.0%}", file=sys.stderr)
                while self._next_report <= frac:
                    self._next_report += 0.1
        elif self.done >= self._next_report * 10 * (1 << 20):  # unknown size: every ~1 MiB
            print(f"  {self.desc}: {self.done / (1 << 20):.1f} MiB", file=sys.stderr)
            self._next_report += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fetch(url: str, dest_file: BinaryIO) -> None:
    """Write the content at ``url`` into the open binary file ``dest_file`` (urllib only).

    Raises an ``OSError`` (``urllib.error.URLError`` etc.) on network errors or a short read.
    Tests replace this function to avoid the network.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        progress = _Progress(total, url.rsplit("/", 1)[-1])
        try:
            while chunk := response.read(_CHUNK):
                dest_file.write(chunk)
                progress.update(len(chunk))
        finally:
            progress.close()
    if total is not None and progress.done != total:
        raise OSError(f"{url}: short read, got {progress.done} of {total} bytes")


def _download(stem: str, directory: Path) -> np.ndarray:
    """Download ``<stem>.gz`` into ``directory`` from the first mirror that delivers a file
    whose decompressed bytes have the right checksum and parse as IDX; return the array.

    Each attempt writes a temporary file in ``directory`` that is ``os.replace``d into place
    only once checked, and deleted on any failure (interrupts included).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{stem}.gz"
    attempts: list[str] = []
    all_bad_data = True
    for mirror in MIRRORS:
        url = mirror + f"{stem}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.gz.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                _fetch(url, f)
            array = _checked_array(_gunzip(tmp.read_bytes(), url), stem, url)
            os.replace(tmp, target)
            return array
        except (OSError, ValueError) as exc:  # network or data problem: next mirror
            all_bad_data = all_bad_data and isinstance(exc, ValueError)
            attempts.append(f"  {url}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    tried = "\n".join(attempts) if attempts else "  (MIRRORS is empty)"
    message = (
        f"could not download {stem}.gz into {directory}; tried:\n{tried}\n"
        f"Put the file there yourself (pass data_dir= or set ${_ENV_VAR})."
    )
    if attempts and all_bad_data:
        raise ValueError(message)
    raise DownloadError(message)


def _load_file(directory: Path, stem: str, download: bool) -> np.ndarray:
    """Read, verify and parse one MNIST file: ``<stem>`` (decompressed, preferred because it
    is faster) or ``<stem>.gz``; download the ``.gz`` if neither exists and ``download``."""
    plain, gz = directory / stem, directory / f"{stem}.gz"
    if plain.is_file():
        return _checked_array(plain.read_bytes(), stem, str(plain))
    if gz.is_file():
        return _checked_array(_gunzip(gz.read_bytes(), str(gz)), stem, str(gz))
    if not download:
        raise FileNotFoundError(
            f"MNIST file {gz.name} (or {plain.name}) not found in {directory}; pass "
            f"data_dir= to load_mnist, set ${_ENV_VAR} to the directory holding the files, "
            "or call load_mnist(download=True)"
        )
    return _download(stem, directory)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST: ``(x_train, y_train), (x_test, y_test)``.

    Args:
        data_dir: directory holding the four IDX files, each as ``<stem>.gz`` or as the
            decompressed ``<stem>`` (preferred when both exist: faster); defaults to
            ``$TAPEGRAD_DATA_DIR``, else ``~/.cache/tapegrad/mnist``.
        download: download missing files from :data:`MIRRORS` (else raise
            ``FileNotFoundError``).

    Returns:
        ``x_train`` uint8 ``(60000, 28, 28)``, ``y_train`` int64 ``(60000,)``, ``x_test``
        uint8 ``(10000, 28, 28)``, ``y_test`` int64 ``(10000,)``; pixels in ``[0, 255]``,
        labels in ``[0, 10)``.  Fresh arrays on every call (nothing is cached).

    Raises:
        ValueError: naming the file, if a file is corrupt, has the wrong SHA-256 sum of its
            decompressed bytes (checked on every load), or the wrong shape.
        FileNotFoundError: if a file is missing and ``download`` is false.
        DownloadError: if a file is missing and no mirror could be reached.
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    splits = []
    for part in ("train", "test"):
        img_stem, lbl_stem = MNIST_FILES[f"{part}_images"], MNIST_FILES[f"{part}_labels"]
        images = _load_file(directory, img_stem, download)
        labels = _load_file(directory, lbl_stem, download)
        img_name, lbl_name = directory / img_stem, directory / lbl_stem
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{img_name}: expected uint8 images of shape (N, 28, 28), "
                f"got {images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{lbl_name}: expected uint8 labels of shape (N,), "
                f"got {labels.dtype} {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{img_name} has {images.shape[0]} images but {lbl_name} has "
                f"{labels.shape[0]} labels"
            )
        if labels.size and labels.max() >= 10:
            raise ValueError(f"{lbl_name}: labels must be in [0, 10), found {labels.max()}")
        splits.append((images, labels.astype(np.int64)))
    return splits[0], splits[1]


# --------------------------------------------------------------------------------------------
# Minibatches and validation split
# --------------------------------------------------------------------------------------------


def _check_pair(x: np.ndarray, y: np.ndarray) -> int:
    if len(x) != len(y):
        raise ValueError(
            f"x and y must hold the same number of examples, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    return len(x)


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    batch_size = operator.index(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}"
        )
    return rng


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of minibatches :func:`batches` yields for ``n`` examples."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    batch_size = _check_batch_size(batch_size)
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over one epoch of minibatches ``(xb, yb)``.

    Args:
        x: examples, shape ``(N, ...)``.
        y: targets, shape ``(N, ...)``.
        batch_size: examples per batch (>= 1); the last batch is smaller unless
            ``drop_last``, which drops it when incomplete.
        rng: the ``numpy.random.Generator`` drawing the order (``rng.permutation(N)``);
            required when ``shuffle``, ignored otherwise.
        shuffle: visit the examples in a random order (else in order).

    Yields:
        ``xb`` of shape ``(B, ...)`` and ``yb`` of shape ``(B, ...)``, ``B <= batch_size``;
        every example appears exactly once per epoch (at most once with ``drop_last``).
        Shuffled batches are copies; unshuffled batches are views of ``x`` and ``y``.

    Arguments are checked when ``batches`` is called, not at the first ``next``.
    """
    n = _check_pair(x, y)
    batch_size = _check_batch_size(batch_size)
    order = None
    if shuffle:
        if rng is None:
            raise ValueError(
                "batches(shuffle=True) needs rng=np.random.default_rng(seed) for a "
                "reproducible order (or pass shuffle=False)"
            )
        order = _check_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return _iter_batches(x, y, batch_size, order, stop)


def _iter_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray | None, stop: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end]
            yield x[idx], y[idx]


def split_validation(
    x: np.ndarray, y: np.ndarray, val_size: int, rng: np.random.Generator | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split examples into ``(x_tr, y_tr), (x_val, y_val)``.

    Args:
        x: examples, shape ``(N, ...)``.
        y: targets, shape ``(N, ...)``.
        val_size: number of validation examples, ``0 <= val_size < N``.
        rng: ``None`` takes the LAST ``val_size`` examples (deterministic; the returned
            arrays are views); a ``numpy.random.Generator`` draws a random subset (copies,
            each part kept in the original order).

    Returns:
        ``x_tr`` ``(N - val_size, ...)``, ``y_tr``, ``x_val`` ``(val_size, ...)``, ``y_val``.
    """
    n = _check_pair(x, y)
    if isinstance(val_size, bool):
        raise TypeError(f"val_size must be an int, got {val_size!r}")
    val_size = operator.index(val_size)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must satisfy 0 <= val_size < {n} (len(x)), got {val_size}")
    cut = n - val_size
    if rng is None:
        return (x[:cut], y[:cut]), (x[cut:], y[cut:])
    perm = _check_rng(rng).permutation(n)
    tr, val = np.sort(perm[:cut]), np.sort(perm[cut:])
    return (x[tr], y[tr]), (x[val], y[val])
