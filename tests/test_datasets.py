"""Tests of tapegrad.mnist (IDX parsing, MNIST loading/verification/download) and
tapegrad.datasets (minibatches).

No test touches the network: ``mnist._fetch`` is replaced by a function that fails the
test unless a test installs its own fake (or the real one with ``file://`` URLs).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tapegrad import datasets as ds
from tapegrad import mnist as mn

REAL_FETCH = mn._fetch
REPO_ROOT = Path(__file__).resolve().parents[1]
STEMS = list(mn.MNIST_FILES.values())
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
IDX_NUMPY_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]

fuzz_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt not set up by the test itself fails the test."""

    def forbidden(url, dest_file):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(mn, "_fetch", forbidden)


def real_data_dir() -> Path:
    env = os.environ.get("TAPEGRAD_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mnist"


def _has_real_data() -> bool:
    d = real_data_dir()
    return all((d / f"{s}.gz").is_file() or (d / s).is_file() for s in STEMS)


needs_real_data = pytest.mark.skipif(
    not _has_real_data(), reason="MNIST files not found (set TAPEGRAD_DATA_DIR)"
)


# --------------------------------------------------------------------------------------------
# helpers: small synthetic "MNIST" with patched checksums
# --------------------------------------------------------------------------------------------


def synthetic_arrays(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def patch_checksums(monkeypatch, arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """Make the shipped SHA-256 sums those of ``arrays``; return their IDX bytes."""
    raw = {stem: mn.write_idx(a) for stem, a in arrays.items()}
    for stem, data in raw.items():
        monkeypatch.setitem(mn.SHA256, stem, hashlib.sha256(data).hexdigest())
    return raw


def write_dir(directory: Path, raw: dict[str, bytes], compress: bool = True) -> None:
    for stem, data in raw.items():
        if compress:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)


def assert_matches(loaded, arrays: dict[str, np.ndarray]) -> None:
    (x_tr, y_tr), (x_te, y_te) = loaded
    np.testing.assert_array_equal(x_tr, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_tr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_te, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_te, arrays["t10k-labels-idx1-ubyte"])
    assert x_tr.dtype == np.uint8 and x_te.dtype == np.uint8
    assert y_tr.dtype == np.int64 and y_te.dtype == np.int64


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------


@st.composite
def idx_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(IDX_NUMPY_DTYPES)))
    dtype = dtype.newbyteorder(draw(st.sampled_from(["<", ">", "="])))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


@given(idx_arrays())
@settings(deadline=None)
def test_idx_round_trip(array):
    data = mn.write_idx(array)
    out = mn.parse_idx(data, "mem")
    header = 4 + 4 * array.ndim
    assert len(data) == header + array.size * array.dtype.itemsize
    assert out.shape == array.shape
    assert out.dtype == array.dtype.newbyteorder("=")
    assert out.dtype.isnative
    # bytewise equality (NaNs with any payload included)
    assert out.tobytes() == array.astype(out.dtype).tobytes()
    assert out.flags.writeable and out.flags.c_contiguous


def test_idx_layout_is_the_published_one():
    data = mn.write_idx(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert data == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    assert mn.write_idx(np.array([1], dtype="<i4")) == bytes([0, 0, 0x0C, 1, 0, 0, 0, 1]) + (
        1
    ).to_bytes(4, "big")
    assert mn.write_idx(np.array([1.5], dtype=np.float32))[:4] == bytes([0, 0, 0x0D, 1])
    assert mn.write_idx(np.array([1.5]))[:4] == bytes([0, 0, 0x0E, 1])
    parsed = mn.parse_idx(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]), "m")
    np.testing.assert_array_equal(parsed, np.array([0x0102, -2], dtype=np.int16))


@pytest.mark.parametrize(
    "array",
    [np.zeros(3, np.int64), np.zeros(3, bool), np.zeros(3, np.complex64), np.array(5, np.uint8)],
    ids=["int64", "bool", "complex", "0-d"],
)
def test_write_idx_rejects_what_idx_cannot_hold(array):
    with pytest.raises(ValueError, match="write_idx"):
        mn.write_idx(array)


GOOD = mn.write_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))  # 16-byte header + 24


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (GOOD[:-1], r"truncated.*needs 24 payload bytes, the file has 23"),
        (GOOD[:16], r"truncated.*needs 24 payload bytes, the file has 0"),
        (GOOD + b"\x00", r"trailing bytes.*needs 24 payload bytes, the file has 25"),
        (GOOD[:10], r"truncated IDX header.*need 16 header bytes, the data has 10"),
        (b"\x01" + GOOD[1:], r"bad IDX magic number 01000803"),
        (b"\x00\x07" + GOOD[2:], r"bad IDX magic number"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], r"unknown type code 0x0A"),
        (GOOD[:3] + b"\x00" + GOOD[4:], r"zero dimensions"),
        (b"\x00\x00", r"shorter than the 4-byte magic"),
        (b"", r"shorter than the 4-byte magic"),
        (gzip.compress(GOOD), r"bad IDX magic number.*gzip"),
    ],
    ids=[
        "truncated-1",
        "no-payload",
        "trailing",
        "short-header",
        "magic-byte0",
        "magic-byte1",
        "type-code",
        "zero-dims",
        "two-bytes",
        "empty",
        "still-gzipped",
    ],
)
def test_parse_idx_rejects_malformed(data, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        mn.parse_idx(data, "some/file-idx3-ubyte")
    assert str(info.value).startswith("some/file-idx3-ubyte: ")


def test_parse_idx_huge_dims_do_not_allocate():
    data = bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"x"
    with pytest.raises(ValueError, match=r"truncated.*the file has 1$"):
        mn.parse_idx(data, "big")


def test_parse_idx_output_does_not_alias_input():
    buf = bytearray(mn.write_idx(np.arange(5, dtype=np.uint8)))
    out = mn.parse_idx(buf, "buf")
    buf[-1] = 99
    out[0] = 42
    np.testing.assert_array_equal(out, [42, 1, 2, 3, 4])
    assert buf[8] == 0


def test_read_idx_gz_and_plain(tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    (tmp_path / "a-idx2-int").write_bytes(mn.write_idx(a))
    (tmp_path / "a-idx2-int.gz").write_bytes(gzip.compress(mn.write_idx(a)))
    np.testing.assert_array_equal(mn.read_idx(tmp_path / "a-idx2-int"), a)
    np.testing.assert_array_equal(mn.read_idx(str(tmp_path / "a-idx2-int.gz")), a)


@pytest.mark.parametrize(
    "payload",
    [
        b"not gzip at all",
        gzip.compress(GOOD)[:-5],  # truncated stream
        gzip.compress(GOOD)[:12],  # truncated header
        gzip.compress(GOOD) + b"garbage",  # trailing junk
        gzip.compress(GOOD)[:20] + b"\xff" * 10 + gzip.compress(GOOD)[30:],  # bad deflate
        b"\x1f\x8b",
    ],
    ids=["not-gzip", "truncated", "header-only", "trailing-junk", "bad-deflate", "magic-only"],
)
def test_read_idx_rejects_corrupt_gzip(tmp_path, payload):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        mn.read_idx(path)
    assert "gzip" in str(info.value) or "IDX" in str(info.value)


# --------------------------------------------------------------------------------------------
# fuzzing: the only exception that escapes is ValueError
# --------------------------------------------------------------------------------------------


def _parse_or_value_error(data: bytes):
    try:
        out = mn.parse_idx(data, "fuzz")
    except ValueError as exc:
        assert str(exc).startswith("fuzz"), exc
        return None
    header = 4 + 4 * out.ndim
    assert out.nbytes == len(data) - header
    return out


@fuzz_settings
@given(st.binary(max_size=300))
def test_fuzz_parse_idx_random_bytes(data):
    out = _parse_or_value_error(data)
    assert out is None or isinstance(out, np.ndarray)


@fuzz_settings
@given(
    st.sampled_from([0, 8, 9, 11, 12, 13, 14, 10, 255]),
    st.integers(0, 4),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.binary(max_size=200),
)
def test_fuzz_parse_idx_plausible_headers(code, ndim, dims, payload):
    data = bytes([0, 0, code, ndim]) + struct.pack(f">{len(dims)}I", *dims) + payload
    out = _parse_or_value_error(data)
    if out is not None:
        assert out.ndim == ndim and code in mn.IDX_DTYPES
        if ndim == len(dims):
            assert out.shape == tuple(dims)


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("append"), st.integers(1, 9), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(0)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, pos, val = mutation
    buf = bytearray(data)
    if kind == "append":
        return bytes(buf) + bytes([val]) * pos
    if not buf:
        return bytes(buf)
    pos %= len(buf)
    if kind == "flip":
        buf[pos] ^= val
    elif kind == "truncate":
        del buf[pos:]
    else:
        del buf[pos]
    return bytes(buf)


@fuzz_settings
@given(idx_arrays(), st.lists(MUTATIONS, min_size=1, max_size=3))
def test_fuzz_parse_idx_mutated(array, mutations):
    data = mn.write_idx(array)
    for m in mutations:
        data = mutate(data, m)
    out = _parse_or_value_error(data)
    assert out is None or out.dtype.isnative


@fuzz_settings
@given(idx_arrays(), st.lists(MUTATIONS, min_size=1, max_size=3), st.booleans())
def test_fuzz_gzip_path_mutated(array, mutations, magic_prefix):
    data = gzip.compress(mn.write_idx(array), compresslevel=1)
    for m in mutations:
        data = mutate(data, m)
    if magic_prefix:
        data = b"\x1f\x8b\x08" + data[3:]
    try:
        raw = mn._gunzip(data, "fuzz.gz")
    except ValueError as exc:
        assert str(exc).startswith("fuzz.gz: corrupt gzip data")
        return
    out = _parse_or_value_error(raw)
    assert out is None or isinstance(out, np.ndarray)


@fuzz_settings
@given(st.binary(max_size=200))
def test_fuzz_gzip_path_random(tail):
    for data in (tail, b"\x1f\x8b\x08" + tail):
        try:
            raw = mn._gunzip(data, "fuzz.gz")
        except ValueError as exc:
            assert "fuzz.gz" in str(exc)
            continue
        assert isinstance(raw, bytes)
        _parse_or_value_error(raw)


# --------------------------------------------------------------------------------------------
# load_mnist on synthetic files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "decompressed"])
def test_load_mnist_synthetic(tmp_path, monkeypatch, compress):
    arrays = synthetic_arrays()
    write_dir(tmp_path, patch_checksums(monkeypatch, arrays), compress=compress)
    loaded = mn.load_mnist(tmp_path, download=False)
    assert_matches(loaded, arrays)
    assert loaded[0][0].shape == (12, 28, 28) and loaded[1][1].shape == (5,)


def test_load_mnist_returns_fresh_writable_arrays(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    write_dir(tmp_path, patch_checksums(monkeypatch, arrays))
    (x1, y1), _ = mn.load_mnist(tmp_path, download=False)
    x1[...] = 0
    y1[...] = -1
    (x2, y2), _ = mn.load_mnist(tmp_path, download=False)
    np.testing.assert_array_equal(x2, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y2, arrays["train-labels-idx1-ubyte"])
    assert not np.shares_memory(x1, x2)


def test_load_mnist_mixed_gz_and_plain(tmp_path, monkeypatch):
    arrays = synthetic_arrays(seed=3)
    raw = patch_checksums(monkeypatch, arrays)
    write_dir(tmp_path, {s: raw[s] for s in STEMS[:2]}, compress=True)
    write_dir(tmp_path, {s: raw[s] for s in STEMS[2:]}, compress=False)
    assert_matches(mn.load_mnist(str(tmp_path), download=False), arrays)


def test_load_mnist_checks_shipped_sha256_of_decompressed_bytes(tmp_path):
    # A file with valid IDX content but not the real MNIST: rejected by the shipped sums.
    arrays = synthetic_arrays()
    write_dir(tmp_path, {s: mn.write_idx(a) for s, a in arrays.items()})
    path = tmp_path / "train-images-idx3-ubyte.gz"
    got = hashlib.sha256(mn.write_idx(arrays["train-images-idx3-ubyte"])).hexdigest()
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        mn.load_mnist(tmp_path, download=False)
    msg = str(info.value)
    assert "checksum" in msg and "wrong" in msg
    assert f"expected {mn.SHA256['train-images-idx3-ubyte']}" in msg
    assert f"got {got}" in msg


def test_load_mnist_checksum_mismatch_single_byte(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    raw = patch_checksums(monkeypatch, arrays)
    bad = bytearray(raw["t10k-labels-idx1-ubyte"])
    bad[-1] ^= 1  # still a valid IDX file, labels still < 10 maybe: only the sum catches it
    raw["t10k-labels-idx1-ubyte"] = bytes(bad)
    write_dir(tmp_path, raw, compress=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*checksum.*wrong"):
        mn.load_mnist(tmp_path, download=False)


@pytest.mark.parametrize(
    ("stem", "array", "pattern"),
    [
        ("train-images-idx3-ubyte", np.zeros((12, 28, 27), np.uint8), r"\(N, 28, 28\)"),
        ("train-images-idx3-ubyte", np.zeros((12, 784), np.uint8), r"\(N, 28, 28\)"),
        ("t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.float32), r"uint8 images"),
        ("train-labels-idx1-ubyte", np.zeros((12, 1), np.uint8), r"labels of shape \(N,\)"),
        ("t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), r"has 5 images but .* has 4 labels"),
        ("train-labels-idx1-ubyte", np.full(12, 10, np.uint8), r"labels must be in \[0, 10\)"),
    ],
    ids=["image-width", "flat-images", "float-images", "2d-labels", "count-mismatch", "label-10"],
)
def test_load_mnist_semantic_checks(tmp_path, monkeypatch, stem, array, pattern):
    arrays = synthetic_arrays()
    arrays[stem] = array
    write_dir(tmp_path, patch_checksums(monkeypatch, arrays))
    with pytest.raises(ValueError, match=pattern) as info:
        mn.load_mnist(tmp_path, download=False)
    part = "train" if stem.startswith("train") else "t10k"
    assert str(tmp_path / part) in str(info.value)


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"garbage", "corrupt gzip data"),
        (gzip.compress(GOOD)[:-4], "corrupt gzip data"),
        (gzip.compress(GOOD[:-3]), "truncated"),
        (gzip.compress(GOOD + b"zz"), "trailing bytes"),
        (gzip.compress(b"\x00\x00\x99\x01" + GOOD[4:]), "unknown type code"),
    ],
    ids=["not-gzip", "truncated-gzip", "truncated-idx", "trailing-idx", "bad-magic"],
)
def test_load_mnist_rejects_corrupt_files_on_disk(tmp_path, monkeypatch, payload, pattern):
    arrays = synthetic_arrays()
    write_dir(tmp_path, patch_checksums(monkeypatch, arrays))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(payload)
    if pattern not in ("corrupt gzip data",):  # the sum would catch it first: patch it
        monkeypatch.setitem(
            mn.SHA256,
            "t10k-images-idx3-ubyte",
            hashlib.sha256(gzip.decompress(payload)).hexdigest(),
        )
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + pattern):
        mn.load_mnist(tmp_path, download=False)


def test_missing_file_without_download(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    raw = patch_checksums(monkeypatch, arrays)
    del raw["t10k-labels-idx1-ubyte"]
    write_dir(tmp_path, raw)
    with pytest.raises(FileNotFoundError) as info:
        mn.load_mnist(tmp_path, download=False)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path) in msg
    assert "data_dir" in msg and "TAPEGRAD_DATA_DIR" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.gz" for s in raw)


def test_data_dir_resolution(tmp_path, monkeypatch):
    arrays = synthetic_arrays()
    env_dir = tmp_path / "from-env"
    env_dir.mkdir()
    write_dir(env_dir, patch_checksums(monkeypatch, arrays))
    monkeypatch.setenv("TAPEGRAD_DATA_DIR", str(env_dir))
    assert mn.default_data_dir() == env_dir
    assert_matches(mn.load_mnist(download=False), arrays)
    # an explicit data_dir wins over the environment
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "elsewhere"))):
        mn.load_mnist(tmp_path / "elsewhere", download=False)
    # neither: ~/.cache/tapegrad/mnist (an empty variable counts as unset)
    monkeypatch.setenv("TAPEGRAD_DATA_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".cache" / "tapegrad" / "mnist"
    assert mn.default_data_dir() == default
    with pytest.raises(FileNotFoundError, match=re.escape(str(default))):
        mn.load_mnist(download=False)
    monkeypatch.delenv("TAPEGRAD_DATA_DIR")
    assert mn.default_data_dir() == default


# --------------------------------------------------------------------------------------------
# downloads (simulated: monkeypatched _fetch, or the real one on file:// URLs)
# --------------------------------------------------------------------------------------------

MIRROR_A = "https://mirror-a.invalid/mnist/"
MIRROR_B = "https://mirror-b.invalid/mnist/"


class FakeFetch:
    """Serve ``payloads[(mirror, stem)]`` (bytes, or an exception to raise)."""

    def __init__(self, directory: Path, payloads: dict):
        self.directory = directory
        self.payloads = payloads
        self.calls: list[str] = []
        self.parts_seen: list[list[str]] = []

    def __call__(self, url, dest_file):
        self.calls.append(url)
        # the temporary file lives in the target directory, under a hidden .part name
        self.parts_seen.append([p.name for p in self.directory.iterdir() if ".part" in p.name])
        mirror, name = url.rsplit("/", 1)
        payload = self.payloads[(mirror + "/", name.removesuffix(".gz"))]
        if isinstance(payload, tuple):  # (partial bytes, exception)
            dest_file.write(payload[0])
            raise payload[1]
        dest_file.write(payload)


def test_simulated_download_success_with_fallback(tmp_path, monkeypatch):
    arrays = synthetic_arrays(seed=7)
    raw = patch_checksums(monkeypatch, arrays)
    directory = tmp_path / "new" / "dir"  # created on demand
    payloads = {}
    for stem, data in raw.items():
        payloads[(MIRROR_A, stem)] = (b"", urllib.error.URLError("connection refused"))
        payloads[(MIRROR_B, stem)] = gzip.compress(data)
    fetch = FakeFetch(directory, payloads)
    monkeypatch.setattr(mn, "_fetch", fetch)
    monkeypatch.setattr(mn, "MIRRORS", [MIRROR_A, MIRROR_B])

    assert_matches(mn.load_mnist(directory), arrays)
    assert len(fetch.calls) == 8 and fetch.calls[:2] == [
        MIRROR_A + "train-images-idx3-ubyte.gz",
        MIRROR_B + "train-images-idx3-ubyte.gz",
    ]
    assert all(len(parts) == 1 and parts[0].startswith(".") for parts in fetch.parts_seen)
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    for stem, data in raw.items():
        assert gzip.decompress((directory / f"{stem}.gz").read_bytes()) == data

    # once in place, nothing is downloaded again
    monkeypatch.setattr(mn, "_fetch", FakeFetch(directory, {}))
    assert_matches(mn.load_mnist(directory, download=True), arrays)


def test_download_only_missing_files(tmp_path, monkeypatch):
    arrays = synthetic_arrays(seed=8)
    raw = patch_checksums(monkeypatch, arrays)
    write_dir(tmp_path, {s: raw[s] for s in STEMS if s != "t10k-images-idx3-ubyte"})
    fetch = FakeFetch(
        tmp_path,
        {(MIRROR_A, "t10k-images-idx3-ubyte"): gzip.compress(raw["t10k-images-idx3-ubyte"])},
    )
    monkeypatch.setattr(mn, "_fetch", fetch)
    monkeypatch.setattr(mn, "MIRRORS", [MIRROR_A])
    assert_matches(mn.load_mnist(tmp_path), arrays)
    assert fetch.calls == [MIRROR_A + "t10k-images-idx3-ubyte.gz"]


BAD_DOWNLOADS = {
    "wrong-content": lambda good: gzip.compress(mn.write_idx(np.zeros((5, 28, 28), np.uint8))),
    "truncated-gzip": lambda good: gzip.compress(good)[: len(gzip.compress(good)) // 2],
    "not-gzip": lambda good: good,
    "html-error-page": lambda good: b"<html>404 Not Found</html>",
    "empty": lambda good: b"",
    "truncated-idx": lambda good: gzip.compress(good[:-1]),
}


@pytest.mark.parametrize("kind", list(BAD_DOWNLOADS))
def test_failed_download_leaves_nothing_behind(tmp_path, monkeypatch, kind):
    arrays = synthetic_arrays()
    raw = patch_checksums(monkeypatch, arrays)
    stem = "t10k-images-idx3-ubyte"
    write_dir(tmp_path, {s: raw[s] for s in STEMS if s != stem})
    before = sorted(p.name for p in tmp_path.iterdir())
    bad = BAD_DOWNLOADS[kind](raw[stem])
    fetch = FakeFetch(tmp_path, {(MIRROR_A, stem): bad, (MIRROR_B, stem): bad})
    monkeypatch.setattr(mn, "_fetch", fetch)
    monkeypatch.setattr(mn, "MIRRORS", [MIRROR_A, MIRROR_B])

    with pytest.raises(ValueError) as info:
        mn.load_mnist(tmp_path)
    msg = str(info.value)
    assert f"{stem}.gz" in msg and str(tmp_path) in msg
    assert MIRROR_A + f"{stem}.gz" in msg and MIRROR_B + f"{stem}.gz" in msg
    assert re.search(r"checksum|corrupt gzip|truncated", msg)
    assert fetch.calls == [MIRROR_A + f"{stem}.gz", MIRROR_B + f"{stem}.gz"]
    assert all(len(parts) == 1 for parts in fetch.parts_seen)  # a temp file did exist
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_network_failure_raises_download_error_listing_mirrors(tmp_path, monkeypatch):
    stem = "train-images-idx3-ubyte"
    payloads = {
        (MIRROR_A, stem): (b"partial", urllib.error.URLError("no route to host")),
        (MIRROR_B, stem): (b"\x1f\x8b" * 100, TimeoutError("timed out")),
    }
    fetch = FakeFetch(tmp_path, payloads)
    monkeypatch.setattr(mn, "_fetch", fetch)
    monkeypatch.setattr(mn, "MIRRORS", [MIRROR_A, MIRROR_B])
    with pytest.raises(mn.DownloadError) as info:
        mn.load_mnist(tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, OSError)
    assert "no route to host" in msg and "timed out" in msg
    assert MIRROR_A + f"{stem}.gz" in msg and MIRROR_B + f"{stem}.gz" in msg
    assert "TAPEGRAD_DATA_DIR" in msg
    assert list(tmp_path.iterdir()) == []


def test_no_mirrors(tmp_path, monkeypatch):
    monkeypatch.setattr(mn, "MIRRORS", [])
    with pytest.raises(mn.DownloadError, match="MIRRORS is empty"):
        mn.load_mnist(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing_behind(tmp_path, monkeypatch):
    stem = "train-images-idx3-ubyte"
    fetch = FakeFetch(tmp_path, {(MIRROR_A, stem): (b"\x1f\x8b\x08" * 1000, KeyboardInterrupt())})
    monkeypatch.setattr(mn, "_fetch", fetch)
    monkeypatch.setattr(mn, "MIRRORS", [MIRROR_A, MIRROR_B])
    with pytest.raises(KeyboardInterrupt):
        mn.load_mnist(tmp_path)
    assert fetch.calls == [MIRROR_A + f"{stem}.gz"]
    assert list(tmp_path.iterdir()) == []


def test_real_fetch_file_url_and_plain_progress(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src.bin"
    payload = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    src.write_bytes(payload)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # force the stderr fallback
    with open(tmp_path / "dest.bin", "wb") as f:
        REAL_FETCH(src.as_uri(), f)
    assert (tmp_path / "dest.bin").read_bytes() == payload
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "%" in ln]
    assert 8 <= len(lines) <= 11
    assert lines[-1].strip().endswith("100%")
    with pytest.raises(urllib.error.URLError), open(tmp_path / "x", "wb") as f:
        REAL_FETCH((tmp_path / "missing.gz").as_uri(), f)


@needs_real_data
def test_download_real_files_from_file_mirror(tmp_path, monkeypatch):
    """The whole download path with urllib on file:// mirrors (the first one missing)."""
    src = real_data_dir()
    if not all((src / f"{s}.gz").is_file() for s in STEMS):
        pytest.skip("the .gz files are needed as a mirror")
    monkeypatch.setattr(mn, "_fetch", REAL_FETCH)
    monkeypatch.setattr(mn, "MIRRORS", [(tmp_path / "nowhere").as_uri() + "/", src.as_uri() + "/"])
    dest = tmp_path / "cache"
    (x_tr, _), (_, y_te) = mn.load_mnist(dest)
    assert x_tr.shape == (60000, 28, 28) and y_te.shape == (10000,)
    assert np.bincount(y_te, minlength=10).tolist() == TEST_COUNTS
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in STEMS)


# --------------------------------------------------------------------------------------------
# the real MNIST
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    if not _has_real_data():
        pytest.skip(f"MNIST not found in {real_data_dir()} (set TAPEGRAD_DATA_DIR)")
    return mn.load_mnist(real_data_dir(), download=False)


def test_real_mnist_shapes_and_dtypes(mnist):
    (x_tr, y_tr), (x_te, y_te) = mnist
    assert x_tr.shape == (60000, 28, 28) and x_tr.dtype == np.uint8
    assert y_tr.shape == (60000,) and y_tr.dtype == np.int64
    assert x_te.shape == (10000, 28, 28) and x_te.dtype == np.uint8
    assert y_te.shape == (10000,) and y_te.dtype == np.int64
    assert x_tr.min() == 0 and x_tr.max() == 255 and x_te.max() == 255


def test_real_mnist_label_counts(mnist):
    (_, y_tr), (_, y_te) = mnist
    assert np.bincount(y_tr, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_te, minlength=10).tolist() == TEST_COUNTS
    assert y_tr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_te[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_real_mnist_split_validation(mnist):
    (x_tr, y_tr), _ = mnist
    (xa, ya), (xv, yv) = ds.split_validation(x_tr, y_tr, 10000)
    assert xa.shape == (50000, 28, 28) and xv.shape == (10000, 28, 28)
    np.testing.assert_array_equal(yv, y_tr[50000:])
    assert ya.size + yv.size == 60000


# --------------------------------------------------------------------------------------------
# minibatches
# --------------------------------------------------------------------------------------------


@given(
    n=st.integers(0, 60),
    batch_size=st.integers(1, 70),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(deadline=None)
def test_batches_cover_every_example_once(n, batch_size, drop_last, shuffle, seed):
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n) * 10
    rng = np.random.default_rng(seed)
    out = list(ds.batches(x, y, batch_size, rng=rng, shuffle=shuffle, drop_last=drop_last))
    assert len(out) == ds.num_batches(n, batch_size, drop_last)
    seen = np.concatenate([yb for _, yb in out]) if out else np.array([], int)
    for xb, yb in out:  # pairs stay paired
        np.testing.assert_array_equal(xb[:, 0] * 5, yb)
        assert 1 <= len(yb) <= batch_size
    if drop_last:
        assert all(len(yb) == batch_size for _, yb in out)
        assert len(seen) == n - n % batch_size
    else:
        assert len(seen) == n
    assert len(np.unique(seen)) == len(seen)
    if not shuffle:
        np.testing.assert_array_equal(seen, y[: len(seen)])
    elif not drop_last:
        np.testing.assert_array_equal(np.sort(seen), y)


def test_batches_same_seed_same_order():
    x = np.arange(100)
    y = -x

    def order(seed):
        return np.concatenate(
            [xb for xb, _ in ds.batches(x, y, 7, rng=np.random.default_rng(seed))]
        )

    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    assert not np.array_equal(order(1), x)
    # epochs drawn from one generator differ
    rng = np.random.default_rng(1)
    e1 = np.concatenate([xb for xb, _ in ds.batches(x, y, 7, rng=rng)])
    e2 = np.concatenate([xb for xb, _ in ds.batches(x, y, 7, rng=rng)])
    np.testing.assert_array_equal(e1, order(1))
    assert not np.array_equal(e1, e2)


def test_batches_drop_last_and_sizes():
    x, y = np.arange(10), np.arange(10)
    sizes = [len(xb) for xb, _ in ds.batches(x, y, 4, shuffle=False)]
    assert sizes == [4, 4, 2]
    sizes = [len(xb) for xb, _ in ds.batches(x, y, 4, shuffle=False, drop_last=True)]
    assert sizes == [4, 4]
    assert [len(b) for b, _ in ds.batches(x, y, 5, shuffle=False, drop_last=True)] == [5, 5]
    assert list(ds.batches(x, y, 11, shuffle=False, drop_last=True)) == []
    first = next(ds.batches(x, y, 3, shuffle=False))
    np.testing.assert_array_equal(first[0], [0, 1, 2])


def test_batches_multidimensional_and_copies():
    x = np.arange(60, dtype=np.float32).reshape(5, 3, 4)
    y = np.arange(5)
    xb, yb = next(ds.batches(x, y, 2, rng=np.random.default_rng(0)))
    assert xb.shape == (2, 3, 4) and xb.dtype == np.float32
    np.testing.assert_array_equal(xb, x[yb])
    xb[...] = -1  # shuffled batches are copies
    assert x.min() == 0


def test_batches_errors():
    x, y = np.zeros((5, 2)), np.zeros(4)
    with pytest.raises(ValueError, match=r"\(5, 2\) and \(4,\)"):
        ds.batches(x, y, 2, shuffle=False)  # checked eagerly, before next()
    x, y = np.zeros(5), np.zeros(5)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            ds.batches(x, y, bad, shuffle=False)
    with pytest.raises(TypeError):
        ds.batches(x, y, 2.5, shuffle=False)
    with pytest.raises(TypeError):
        ds.batches(x, y, True, shuffle=False)
    with pytest.raises(ValueError, match=r"Generator|default_rng"):
        ds.batches(x, y, 2)
    with pytest.raises(TypeError, match="Generator"):
        ds.batches(x, y, 2, rng=0)
    assert len(list(ds.batches(x, y, 2, rng=None, shuffle=False))) == 3


@pytest.mark.parametrize(
    ("n", "bs", "drop", "expected"),
    [(0, 3, False, 0), (10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3),
     (2, 5, False, 1), (2, 5, True, 0), (60000, 128, False, 469), (60000, 128, True, 468)],
)  # fmt: skip
def test_num_batches(n, bs, drop, expected):
    assert ds.num_batches(n, bs, drop_last=drop) == expected


def test_num_batches_errors():
    with pytest.raises(ValueError, match="batch_size"):
        ds.num_batches(10, 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        ds.num_batches(-1, 2)


# --------------------------------------------------------------------------------------------
# validation split
# --------------------------------------------------------------------------------------------


def test_split_validation_last_examples():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    (xt, yt), (xv, yv) = ds.split_validation(x, y, 3)
    np.testing.assert_array_equal(yt, np.arange(7))
    np.testing.assert_array_equal(xt, x[:7])
    np.testing.assert_array_equal(yv, [7, 8, 9])
    np.testing.assert_array_equal(xv, x[7:])
    (_, yt), (xv, yv) = ds.split_validation(x, y, 0)
    assert len(yt) == 10 and len(yv) == 0 and xv.shape == (0, 2)


@given(n=st.integers(1, 50), data=st.data(), seed=st.integers(0, 2**32 - 1))
@settings(deadline=None)
def test_split_validation_random(n, data, seed):
    val_size = data.draw(st.integers(0, n - 1))
    x = np.arange(n) * 3
    y = np.arange(n)
    (xt, yt), (xv, yv) = ds.split_validation(x, y, val_size, rng=np.random.default_rng(seed))
    assert len(yv) == val_size and len(yt) == n - val_size
    np.testing.assert_array_equal(np.sort(np.concatenate([yt, yv])), y)
    np.testing.assert_array_equal(xt, yt * 3)
    np.testing.assert_array_equal(xv, yv * 3)
    (_, yt2), (_, yv2) = ds.split_validation(x, y, val_size, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(yv, yv2)
    np.testing.assert_array_equal(yt, yt2)


def test_split_validation_random_differs_from_last():
    y = np.arange(1000)
    _, (_, yv) = ds.split_validation(y, y, 100, rng=np.random.default_rng(0))
    assert not np.array_equal(yv, y[900:])
    assert np.all(np.diff(yv) > 0)  # kept in the original order


def test_split_validation_errors():
    x = np.zeros(5)
    for bad in (5, 6, -1):
        with pytest.raises(ValueError, match="0 <= val_size < 5"):
            ds.split_validation(x, x, bad)
    with pytest.raises(ValueError, match=r"\(5,\) and \(4,\)"):
        ds.split_validation(x, np.zeros(4), 1)
    with pytest.raises(TypeError):
        ds.split_validation(x, x, 1.0)
