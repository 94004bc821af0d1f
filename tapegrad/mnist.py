"""MNIST on disk: the IDX file format, the four files' SHA-256 sums, and their download.

:func:`load_mnist` reads the four IDX files of the MNIST database (gzip-compressed or not)
from a directory, downloading any missing file from :data:`MIRRORS`, and checks every file
it reads against the SHA-256 sum of its *decompressed* bytes (the gzip containers differ
between mirrors, the decompressed bytes do not). :func:`parse_idx`, :func:`write_idx` and
:func:`read_idx` convert between IDX files and numpy arrays; :func:`missing_files` says
which MNIST files a directory lacks.

Everything wrong with a file (truncated, trailing bytes, bad magic number, corrupt gzip
data, wrong checksum, wrong shape) is a :class:`ValueError` naming the file and the fault.
Nothing touches the network unless a file is missing and ``download=True``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "IDX_DTYPES",
    "MIRRORS",
    "MNIST_FILES",
    "SHA256",
    "DownloadError",
    "default_data_dir",
    "load_mnist",
    "missing_files",
    "parse_idx",
    "read_idx",
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
_USER_AGENT = "tapegrad-datasets/0.1 (+python urllib)"  # some hosts refuse urllib's default


class DownloadError(OSError):
    """No mirror could deliver a file (network errors); the message lists every attempt."""


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a numpy array.

    The magic number is two zero bytes, the type code (``0x08`` uint8, ``0x09`` int8,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64, all big-endian in
    the file) and the number of dimensions (at least 1). Then come that many big-endian
    uint32 sizes and the payload, exactly the product of the sizes times the item size.

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
    expected, actual = math.prod(dims) * dtype.itemsize, n - header
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
        array: 1 to 255 dimensions, each of size < 2**32, of dtype uint8, int8, int16,
            int32, float32 or float64 (any byte order).

    Returns:
        The IDX bytes; ``parse_idx(write_idx(a), name)`` equals ``a``.

    Raises:
        ValueError: for a dtype IDX cannot hold, or a shape it cannot describe.
    """
    arr = np.asarray(array)
    code = _IDX_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(
            f"write_idx: dtype {arr.dtype} has no IDX type code "
            "(use uint8, int8, int16, int32, float32 or float64)"
        )
    if not 1 <= arr.ndim <= 255 or any(d >= 2**32 for d in arr.shape):
        raise ValueError(
            f"write_idx: IDX needs 1 to 255 dimensions, each < 2**32, got shape {arr.shape}"
        )
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def _decompressed(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped if its name ends in ``.gz``."""
    raw = path.read_bytes()
    return _gunzip(raw, str(path)) if path.suffix == ".gz" else raw


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
    return parse_idx(_decompressed(path), str(path))


# --------------------------------------------------------------------------------------------
# The MNIST files: where they are, and checked
# --------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """The MNIST directory used when none is given: ``$TAPEGRAD_DATA_DIR`` if set (and not
    empty), else ``~/.cache/tapegrad/mnist``."""
    env = os.environ.get(_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tapegrad" / "mnist"


def _local_file(directory: Path, stem: str) -> Path | None:
    """``<stem>`` (decompressed, preferred: faster to read) or ``<stem>.gz``, if either exists."""
    return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)


def missing_files(directory: str | os.PathLike[str]) -> list[str]:
    """The MNIST files, named ``<stem>.gz``, found in neither form in ``directory``."""
    return [f"{s}.gz" for s in MNIST_FILES.values() if _local_file(Path(directory), s) is None]


def _checked(data: bytes, stem: str, name: str) -> np.ndarray:
    """The array in decompressed ``data``, once its SHA-256 sum is that of MNIST's ``stem``."""
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256[stem]:
        raise ValueError(
            f"{name}: SHA-256 checksum of the decompressed data is wrong "
            f"(expected {SHA256[stem]}, got {got}); the file is corrupt or not the original "
            f"MNIST {stem} — delete it so that it is downloaded again"
        )
    return parse_idx(data, name)


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


class _Progress:
    """Download progress: tqdm if importable, else a line on stderr every ~10% (or MiB)."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total, self.desc, self.done, self._next = total, desc, 0, 0.1
        try:
            from tqdm import tqdm  # optional dependency
        except ImportError:
            self._bar = None
            print(f"downloading {desc}", file=sys.stderr)
        else:
            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        # the fraction done, or with no known size tenths of the MiB done
        frac = self.done / self.total if self.total else self.done / (10 << 20)
        if frac >= self._next:
            done = f"{min(frac, 1.0):4.0%}" if self.total else f"{self.done / (1 << 20):.1f} MiB"
            print(f"  {self.desc}: {done}", file=sys.stderr)
            self._next = math.floor(frac * 10 + 1) / 10

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
            while chunk := response.read(1 << 16):
                dest_file.write(chunk)
                progress.update(len(chunk))
        finally:
            progress.close()
    if total is not None and progress.done != total:
        raise OSError(f"{url}: short read, got {progress.done} of {total} bytes")


def _download(stem: str, directory: Path) -> np.ndarray:
    """Download ``<stem>.gz`` into ``directory`` from the first mirror that delivers a file
    whose decompressed bytes have the right checksum and parse as IDX; return the array.

    Each attempt writes a hidden temporary file in ``directory``, ``os.replace``d into place
    only once checked and deleted on any failure (interrupts included).
    """
    directory.mkdir(parents=True, exist_ok=True)
    attempts: list[str] = []
    all_bad_data = True  # every mirror answered, with the wrong bytes: a ValueError
    for mirror in MIRRORS:
        url = f"{mirror}{stem}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.gz.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                _fetch(url, f)
            array = _checked(_gunzip(Path(tmp_name).read_bytes(), url), stem, url)
            os.replace(tmp_name, directory / f"{stem}.gz")
            return array
        except (OSError, ValueError) as exc:  # network or data problem: next mirror
            all_bad_data = all_bad_data and isinstance(exc, ValueError)
            attempts.append(f"  {url}: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    tried = "\n".join(attempts) if attempts else "  (MIRRORS is empty)"
    message = (
        f"could not download {stem}.gz into {directory}; tried:\n{tried}\n"
        f"Put the file there yourself (pass data_dir= or set ${_ENV_VAR})."
    )
    if attempts and all_bad_data:
        raise ValueError(message)
    raise DownloadError(message)


# --------------------------------------------------------------------------------------------
# load_mnist
# --------------------------------------------------------------------------------------------


def _load_file(directory: Path, stem: str, download: bool) -> np.ndarray:
    """One MNIST file, read and checked; downloaded first if missing and ``download``."""
    path = _local_file(directory, stem)
    if path is not None:
        return _checked(_decompressed(path), stem, str(path))
    if not download:
        raise FileNotFoundError(
            f"MNIST file {stem}.gz (or {stem}) not found in {directory}; pass data_dir= to "
            f"load_mnist, set ${_ENV_VAR} to the directory holding the files, or call "
            "load_mnist(download=True)"
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
        labels in ``[0, 10)``. Fresh arrays on every call (nothing is cached).

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
        if len(images) != len(labels):
            raise ValueError(
                f"{img_name} has {len(images)} images but {lbl_name} has {len(labels)} labels"
            )
        if labels.size and labels.max() >= 10:
            raise ValueError(f"{lbl_name}: labels must be in [0, 10), found {labels.max()}")
        splits.append((images, labels.astype(np.int64)))
    return splits[0], splits[1]
