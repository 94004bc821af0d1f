"""Tests for tapegrad.checkpoint: round trips, atomic writes, and hostile files."""

from __future__ import annotations

import collections
import copy
import io
import json
import math
import os
import pickle
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tapegrad.checkpoint import load, save

ROOT = Path(__file__).resolve().parents[1]
HEADER = "__tapegrad_checkpoint__"
FIXTURE_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

Params = collections.namedtuple("Params", ["W", "b"])


# ---------------------------------------------------------------------------- helpers


def assert_identical(a, b, path="tree"):
    """Exact equality: container types, key order and types, leaf types, dtypes, bytes."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert [(type(k), k) for k in a] == [(type(k), k) for k in b], path
        for k in a:
            assert_identical(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype, f"{path}: {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{path}: {a.shape} != {b.shape}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fcmM"), path
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), path
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, complex):
        assert struct.pack("<dd", a.real, a.imag) == struct.pack("<dd", b.real, b.imag), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def temp_files(folder: Path, target: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p != target]


def read_header(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        raw = np.load(io.BytesIO(zf.read(HEADER + ".npy")), allow_pickle=False)
    return json.loads(raw.tobytes())


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def rewrite(
    src: Path,
    dst: Path,
    *,
    header=None,
    replace=None,
    drop=(),
    compression=zipfile.ZIP_STORED,
):
    """Copy checkpoint ``src`` to ``dst`` with entries changed (names without ``.npy``).

    ``header`` maps the parsed JSON header to a new one (a dict, or raw bytes to store).
    """
    replace = dict(replace or {})
    if header is not None:
        new = header(read_header(src))
        raw = new if isinstance(new, bytes) else json.dumps(new).encode()
        replace[HEADER] = npy_bytes(np.frombuffer(raw, dtype=np.uint8))
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            name = info.filename.removesuffix(".npy")
            if name in drop:
                continue
            zout.writestr(info.filename, replace.pop(name, None) or zin.read(info))
        for name, data in replace.items():
            zout.writestr(name + ".npy", data)


class _MkdirOnUnpickle:
    """Unpickling this creates the directory ``marker``: proof that pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def sample_tree():
    return {
        "layers": [
            {"W": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.zeros(4, np.float32)},
            {"W": np.ones((4, 2), np.float64), "b": np.array([1, -2], dtype=np.int64)},
        ],
        "step": 7,
        "lr": 0.25,
        "done": False,
        "mask": np.array([True, False, True]),
        "scale": np.float16(1.5),
        "nothing": None,
        "empty": ({}, [], ()),
        3: np.array(5, dtype=np.uint8),
    }


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.npz"
    save(path, sample_tree(), epoch=2, note="ok")
    return path


def assert_bad_file(path: Path, match: str = ""):
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as info:
        load(path)
    assert "is not a valid tapegrad checkpoint" in str(info.value)
    if match:
        assert re.search(match, str(info.value)), str(info.value)
    return info.value


# ---------------------------------------------------------------------------- round trips

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
    np.dtype(">f4"),
]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
arrays = st.sampled_from(DTYPES).flatmap(lambda dt: hnp.arrays(np.dtype(dt), shapes))
numpy_scalars = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), ()).map(lambda a: a[()])
)
leaves = st.one_of(
    arrays,
    arrays,
    numpy_scalars,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.complex_numbers(),
    st.none(),
)
dict_keys = st.one_of(st.text(max_size=6), st.integers(-3, 3))
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(dict_keys, children, max_size=4),
    ),
    max_leaves=12,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
metadatas = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@FIXTURE_SETTINGS
@given(tree=trees, metadata=metadatas)
def test_round_trip_is_exact(tmp_path, tree, metadata):
    path = tmp_path / "ckpt.npz"
    save(path, tree, **metadata)
    loaded, loaded_metadata = load(path)
    assert_identical(tree, loaded)
    # repr tells 1 from 1.0 from True and -0.0 from 0.0, and shows dict order.
    assert repr(loaded_metadata) == repr(metadata)
    assert temp_files(tmp_path, path) == []


def test_leaf_kinds_come_back_as_saved(tmp_path):
    tree = {
        "int": 2**63 - 1,
        "neg": -5,
        "float": -0.0,
        "bool": True,
        "complex": 1 - 2j,
        "none": None,
        "f32": np.float32(2.5),
        "i8": np.int8(-3),
        "b": np.bool_(False),
        "zero_d": np.array(4.0),
        "size_0": np.zeros((0, 3), np.int32),
        "big_endian": np.arange(3, dtype=">i4"),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10)[::3],
        "text": np.array(["a", "bcd"]),
        "bytes": np.array([b"xy"]),
        "dates": np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
        "c64": np.array([1 + 1j], np.complex64),
    }
    save(tmp_path / "k.npz", tree)
    loaded, metadata = load(tmp_path / "k.npz")
    assert metadata == {}
    assert_identical(tree, loaded)
    assert type(loaded["int"]) is int and loaded["int"] == 2**63 - 1
    assert type(loaded["f32"]) is np.float32 and loaded["f32"] == 2.5
    assert type(loaded["zero_d"]) is np.ndarray and loaded["zero_d"].shape == ()
    assert loaded["big_endian"].dtype.str == ">i4"
    assert loaded["strided"].tolist() == [0, 3, 6, 9]


def test_bare_leaf_and_empty_containers_round_trip(tmp_path):
    for i, tree in enumerate([np.arange(3), 1.5, None, {}, [], (), [[], {"a": ()}]]):
        save(tmp_path / f"{i}.npz", tree)
        loaded, _ = load(tmp_path / f"{i}.npz")
        assert_identical(tree, loaded)


def test_int_and_str_keys_stay_distinct(tmp_path):
    tree = {1: np.array(1.0), "1": np.array(2.0), -2: [3], "": 4}
    save(tmp_path / "k.npz", tree)
    loaded, _ = load(tmp_path / "k.npz")
    assert list(loaded) == [1, "1", -2, ""]
    assert loaded[1] == 1.0 and loaded["1"] == 2.0 and loaded[-2] == [3] and loaded[""] == 4


def test_named_tuples_and_dict_subclasses_come_back_plain_without_like(tmp_path):
    tree = {"p": Params(np.ones(2), np.zeros(1)), "o": collections.OrderedDict(a=1)}
    save(tmp_path / "k.npz", tree)
    loaded, _ = load(tmp_path / "k.npz")
    assert type(loaded["p"]) is tuple and type(loaded["o"]) is dict
    assert loaded["p"][0].tolist() == [1.0, 1.0] and loaded["o"] == {"a": 1}


def test_metadata_conversions(tmp_path):
    save(
        tmp_path / "m.npz",
        [],
        lr=np.float32(0.5),
        step=np.int64(3),
        flag=np.bool_(True),
        shape=(2, 3),
        nested={"a": [np.uint8(1), None]},
        nan=float("nan"),
        inf=-math.inf,
        path="p",
        tree="t",
    )
    _, metadata = load(tmp_path / "m.npz")
    assert repr({k: v for k, v in metadata.items() if k != "nan"}) == repr(
        {
            "lr": 0.5,
            "step": 3,
            "flag": True,
            "shape": [2, 3],
            "nested": {"a": [1, None]},
            "inf": -math.inf,
            "path": "p",
            "tree": "t",
        }
    )
    assert math.isnan(metadata["nan"])


def test_path_is_used_exactly_without_appending_npz(tmp_path):
    save(tmp_path / "weights", {"w": np.ones(2)}, v=1)
    save(str(tmp_path / "other.ckpt"), [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.ckpt", "weights"]
    tree, metadata = load(str(tmp_path / "weights"))
    assert tree["w"].tolist() == [1.0, 1.0] and metadata == {"v": 1}
    assert load(tmp_path / "other.ckpt") == ([1], {})


# ---------------------------------------------------------------------------- like=


def test_like_restores_named_tuples_and_container_classes(tmp_path):
    tree = {
        "layer": Params(np.ones((2, 3), np.float32), np.zeros(3, np.float32)),
        "state": collections.OrderedDict(m=np.zeros(2), v=[np.ones(2), 3]),
    }
    save(tmp_path / "c.npz", tree, step=1)
    like = {
        # Keys in another order: matched by key, the template's order wins.
        "state": collections.OrderedDict(v=[np.empty(2), 0], m=np.empty(2)),
        "layer": Params(types.SimpleNamespace(shape=(2, 3), dtype="float32"), np.empty(3, "f4")),
    }
    loaded, metadata = load(tmp_path / "c.npz", like=like)
    assert metadata == {"step": 1}
    assert list(loaded) == ["state", "layer"]
    assert type(loaded["layer"]) is Params and type(loaded["state"]) is collections.OrderedDict
    assert list(loaded["state"]) == ["v", "m"]
    assert loaded["layer"].W.tolist() == [[1.0] * 3] * 2 and loaded["layer"].W.dtype == np.float32
    assert loaded["state"]["v"][0].tolist() == [1.0, 1.0] and loaded["state"]["v"][1] == 3
    assert loaded["state"]["m"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("like", "where"),
    [
        ({"a": Params(np.empty((2, 2)), np.empty(3)), "n": [1, 2]}, "like['a'][0]"),  # shape
        ({"a": Params(np.empty(2), np.empty(3, np.float32)), "n": [1, 2]}, "like['a'][1]"),
        ({"a": Params(np.empty(2), np.empty(3)), "n": [1, 2.0]}, "like['n'][1]"),  # int/float
        ({"a": Params(np.empty(2), np.empty(3)), "n": [1, None]}, "like['n'][1]"),
        ({"a": Params(np.empty(2), np.empty(3)), "n": [1, 2, 3]}, "['n']"),  # count
        ({"a": Params(np.empty(2), np.empty(3)), "x": [1, 2]}, "keys"),  # keys
        ({"a": np.empty(2), "n": [1, 2]}, "['a']"),  # leaf where the file has a tuple
        ({"a": Params(np.empty(2), [np.empty(3)]), "n": [1, 2]}, "['a'][1]"),
    ],
)
def test_like_mismatch_names_the_path(tmp_path, like, where):
    path = tmp_path / "c.npz"
    save(path, {"a": (np.ones(2), np.ones(3)), "n": [1, 2]})
    with pytest.raises(ValueError, match=re.escape(where)) as info:
        load(path, like=like)
    assert repr(str(path)) in str(info.value)


# ---------------------------------------------------------------------------- no aliasing


def test_save_does_not_mutate_and_load_gives_writable_independent_copies(tmp_path):
    frozen = np.arange(4.0)
    frozen.flags.writeable = False
    view = np.arange(20).reshape(4, 5)[:, ::2]
    tree = {"frozen": frozen, "view": view, "list": [np.ones(3)], "t": (1, np.int8(2))}
    before = copy.deepcopy(tree)
    ids = (id(tree["list"]), id(tree["frozen"]), id(tree["view"]))
    save(tmp_path / "a.npz", tree)
    assert_identical(before, tree)
    assert (id(tree["list"]), id(tree["frozen"]), id(tree["view"])) == ids
    assert not tree["frozen"].flags.writeable and not tree["view"].flags.c_contiguous

    first, _ = load(tmp_path / "a.npz")
    second, _ = load(tmp_path / "a.npz")
    for arr in (first["frozen"], first["view"], first["list"][0]):
        assert arr.flags.writeable
        arr[...] = 99
    assert all(not np.shares_memory(first[k], tree[k]) for k in ("frozen", "view"))
    assert_identical(before, second)
    assert_identical(before, tree)
    assert (first["frozen"] == 99).all() and (first["view"] == 99).all()


# ---------------------------------------------------------------------------- refused input


def test_object_array_is_refused_with_its_path_and_nothing_is_written(tmp_path, good):
    before = good.read_bytes()
    tree = {"a": [np.ones(2), np.array([{"x": 1}], dtype=object)]}
    with pytest.raises(ValueError, match=re.escape("tree['a'][1]")) as info:
        save(good, tree)
    assert "object" in str(info.value)
    assert good.read_bytes() == before
    assert temp_files(good.parent, good) == []


@pytest.mark.parametrize(
    ("tree", "error", "where"),
    [
        ({"a": ["text"]}, TypeError, "tree['a'][0]"),
        ([object()], TypeError, "tree[0]"),
        ({"x": {True: 1}}, TypeError, "tree['x']"),
        ({"x": {1.5: 1}}, TypeError, "tree['x']"),
        ({"x": (2**63,)}, ValueError, "tree['x'][0]"),
        ({"x": np.zeros(2, dtype=[("a", "f4")])}, ValueError, "tree['x']"),
    ],
)
def test_unsupported_leaves_and_keys_name_the_path(tmp_path, tree, error, where):
    with pytest.raises(error, match=re.escape(where)):
        save(tmp_path / "x.npz", tree)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"cfg": {"when": object()}}, "metadata['cfg']['when']"),
        ({"arr": np.ones(2)}, "metadata['arr']"),
        ({"d": {1: 2}}, "metadata['d']"),
        ({"c": np.complex64(1j)}, "metadata['c']"),
        ({"s": {1, 2}}, "metadata['s']"),
    ],
)
def test_non_json_metadata_is_a_type_error_naming_the_key(tmp_path, metadata, where):
    with pytest.raises(TypeError, match=re.escape(where)):
        save(tmp_path / "x.npz", [1], **metadata)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize(
    ("target", "error"),
    [("os.fsync", OSError), ("os.replace", OSError), ("write_array", KeyboardInterrupt)],
)
def test_failed_save_removes_its_temp_file_and_keeps_the_old_checkpoint(
    good, monkeypatch, target, error
):
    before = good.read_bytes()
    if target == "write_array":
        real = np.lib.format.write_array

        def fail_half_way(fp, array, *args, **kwargs):
            real(fp, array, *args, **kwargs)
            if array.size > 3:  # the header has been written, the first big leaf too
                raise error("injected")

        monkeypatch.setattr(np.lib.format, "write_array", fail_half_way)
    else:

        def fail(*args, **kwargs):
            raise error("injected")

        monkeypatch.setattr(os, target.split(".")[1], fail)
    with pytest.raises(error, match="injected"):
        save(good, {"new": np.arange(100)})
    monkeypatch.undo()
    assert good.read_bytes() == before
    assert temp_files(good.parent, good) == []
    tree, metadata = load(good)
    assert_identical(sample_tree(), tree)
    assert metadata == {"epoch": 2, "note": "ok"}


@pytest.mark.skipif(not hasattr(os, "O_DIRECTORY"), reason="POSIX directory fsync")
def test_save_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    save(tmp_path / "c.npz", [np.ones(2)])
    assert synced == [False, True]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_the_old_file_or_the_umask(tmp_path):
    path = tmp_path / "c.npz"
    save(path, [1])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    save(path, [2])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load(path)[0] == [2]


CHILD = r"""
import sys
import numpy as np
from tapegrad.checkpoint import save

path, n = sys.argv[1], int(sys.argv[2])
step = 0
while True:
    step += 1
    save(path, {"w": np.full(n, float(step)), "step": step}, step=step)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_save_leaves_the_old_or_the_new_checkpoint(tmp_path):
    n = 8_000_000  # 64 MB: a save takes long enough to be killed in the middle
    path = tmp_path / "ckpt.npz"
    save(path, {"w": np.full(n, 0.0), "step": 0}, step=0)
    pythonpath = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    steps = []
    # (delay after a temp file appears, whether to first wait for a completed save)
    rounds = [(0.0, False), (0.005, False), (0.03, False), (0.0, True), (0.02, True), (0.07, True)]
    for delay, after_a_save in rounds:
        inode = path.stat().st_ino
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(n)], env=env)
        try:
            deadline = time.monotonic() + 20
            if after_a_save:
                while path.stat().st_ino == inode:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.001)
            while not temp_files(tmp_path, path):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.001)
            time.sleep(delay)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL

        tree, metadata = load(path)
        step = tree["step"]
        assert type(step) is int and metadata == {"step": step}
        assert tree["w"].shape == (n,) and tree["w"].dtype == np.float64
        assert (tree["w"] == step).all()
        if after_a_save:
            assert step >= 1
        steps.append(step)

        for leftover in temp_files(tmp_path, path):
            # A killed save leaves its temp file: hidden, clearly named, never the target.
            assert leftover.name.startswith(".ckpt.npz.") and leftover.name.endswith(".tmp")
            try:
                partial, _ = load(leftover)
            except ValueError:
                pass  # cut off mid-write
            else:
                assert (partial["w"] == partial["step"]).all()
            leftover.unlink()
    assert max(steps) >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]


# ---------------------------------------------------------------------------- bad files


def test_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def test_truncated_files(good, tmp_path):
    raw = good.read_bytes()
    cuts = [0, 1, 3, 4, 30, 100, len(raw) // 3, len(raw) // 2, len(raw) - 100, len(raw) - 22]
    for cut in [*cuts, len(raw) - 1]:
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        assert_bad_file(bad)


def test_truncated_large_file(tmp_path):
    path = tmp_path / "big.npz"
    save(path, {"w": np.arange(1_000_000.0)})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert_bad_file(path)


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="uses os.pwrite")
def test_every_single_byte_flip_is_caught_or_harmless(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": [1, None]}
    src = tmp_path / "src.npz"
    save(src, tree, epoch=1)
    raw = src.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(raw)
    caught = 0
    fd = os.open(bad, os.O_WRONLY)  # flip in place: much faster than rewriting the file
    try:
        for i in range(len(raw)):
            os.pwrite(fd, bytes([raw[i] ^ 0xFF]), i)
            try:
                loaded, metadata = load(bad)
            except ValueError as exc:
                assert repr(str(bad)) in str(exc)
                caught += 1
            else:  # zip fields nobody reads (timestamps, ...) may change; the data may not
                assert_identical(tree, loaded)
                assert metadata == {"epoch": 1}
            os.pwrite(fd, raw[i : i + 1], i)
    finally:
        os.close(fd)
    assert bad.read_bytes() == raw
    assert caught > len(raw) // 2


def test_flipped_bytes_in_the_data_and_the_header_are_caught(good, tmp_path):
    raw = good.read_bytes()
    for marker in [
        np.arange(12, dtype=np.float32).tobytes(),  # array data
        b'"format"',  # JSON header
        b"{'descr'",  # a .npy header
    ]:
        at = raw.index(marker) + len(marker) // 2
        flipped = bytearray(raw)
        flipped[at] ^= 0x10
        bad = tmp_path / "flipped.npz"
        bad.write_bytes(flipped)
        assert_bad_file(bad)


def test_random_bytes_and_foreign_files(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "random.npz": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "zipish.npz": b"PK\x03\x04" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes(),
        "empty.npz": b"",
        "text.npz": b"hello, world\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_bad_file(tmp_path / name)

    np.savez(tmp_path / "plain.npz", W=np.ones(3), b=np.zeros(2))
    assert_bad_file(tmp_path / "plain.npz", HEADER)
    np.save(tmp_path / "single.npy", np.ones(3))
    assert_bad_file(tmp_path / "single.npy", "not an .npz")
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as zf:
        zf.writestr("notes.txt", "not numpy")
    assert_bad_file(tmp_path / "notes.zip", HEADER)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    assert_bad_file(tmp_path / "empty.zip", HEADER)


def test_pickles_are_never_unpickled(tmp_path, good, monkeypatch):
    marker = tmp_path / "pwned"
    payload = np.array([_MkdirOnUnpickle(marker)], dtype=object)

    np.savez(tmp_path / "object.npz", a=payload)  # a plain npz with a pickled array
    rewrite(good, tmp_path / "swapped.npz", replace={"leaf_0": npy_bytes(payload, True)})
    rewrite(
        good,
        tmp_path / "claims_object.npz",
        replace={"leaf_0": npy_bytes(payload, True)},
        header=lambda h: {**h, "tree": _object_leaf(), "num_leaves": 1},
    )
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps({"w": payload}))

    # The payload is live: np.load with pickle allowed would run it.
    with np.load(tmp_path / "object.npz", allow_pickle=True) as npz:
        npz["a"]
    assert marker.is_dir()
    marker.rmdir()

    def no_pickle(*args, **kwargs):
        raise AssertionError("load unpickled something")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    for name in ["object.npz", "swapped.npz", "claims_object.npz", "raw.pkl"]:
        assert_bad_file(tmp_path / name)
    assert not marker.exists()


def _object_leaf():
    return {"type": "leaf", "kind": "ndarray", "index": 0, "dtype": "|O", "shape": [1]}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"header": lambda h: {**h, "format": "other"}}, "format"),
        ({"header": lambda h: {**h, "version": 2}}, "version 2"),
        ({"header": lambda h: {**h, "num_leaves": 99}}, "leaf count|counts 99"),
        ({"header": lambda h: {**h, "metadata": [1]}}, "metadata"),
        ({"header": lambda h: {k: v for k, v in h.items() if k != "tree"}}, "no tree"),
        ({"header": lambda h: {**h, "tree": {"type": "set"}}}, "node type"),
        ({"header": lambda h: {**h, "tree": [1]}}, "not a JSON object"),
        ({"header": lambda h: b"{not json"}, "not valid JSON"),
        ({"header": lambda h: b"\xff\xfe"}, "not valid JSON"),
        ({"header": lambda h: b"[" * 100_000 + b"]" * 100_000}, "JSON"),
        ({"header": lambda h: _edit_first_leaf(h, dtype="<f8")}, "header records"),
        ({"header": lambda h: _edit_first_leaf(h, shape=[4, 3])}, "header records|shorter"),
        ({"header": lambda h: _edit_first_leaf(h, shape=[10**12])}, "shorter|header records"),
        ({"header": lambda h: _edit_first_leaf(h, shape=[-1, 12])}, "invalid shape"),
        ({"header": lambda h: _edit_first_leaf(h, dtype="float32")}, "dtype"),
        ({"header": lambda h: _edit_first_leaf(h, dtype="nonsense")}, "invalid dtype"),
        ({"header": lambda h: _edit_first_leaf(h, kind="pickle")}, "leaf kind"),
        ({"header": lambda h: _edit_first_leaf(h, index=5)}, "leaf index"),
        ({"drop": ["leaf_3"]}, "missing"),
        ({"drop": [HEADER]}, HEADER),
        ({"replace": {"extra": npy_bytes(np.ones(1))}}, "unexpected entries"),
        ({"replace": {"leaf_0": npy_bytes(np.zeros((3, 4)))}}, "header records"),
        ({"replace": {HEADER: npy_bytes(np.zeros(3))}}, "1-d uint8"),
        ({"replace": {"leaf_0": b"not an npy file at all"}}, "shorter"),
        ({"replace": {"leaf_0": b"not an npy file" * 20}}, "truncated or corrupted"),
        ({"compression": zipfile.ZIP_DEFLATED}, "compressed"),
    ],
)
def test_crafted_checkpoints_are_rejected(good, tmp_path, change, match):
    bad = tmp_path / "crafted.npz"
    rewrite(good, bad, **change)
    start = time.monotonic()
    assert_bad_file(bad, match)
    assert time.monotonic() - start < 2  # nothing huge was allocated or read


def _edit_first_leaf(header, **fields):
    header = copy.deepcopy(header)
    node = header["tree"]
    while node["type"] != "leaf":
        node = next(c for c in node["children"] if c["type"] != "none")
    node.update(fields)
    return header


def test_unfinished_npy_header_literal_is_rejected(good, tmp_path):
    # numpy parses a .npy header with tokenize: an unclosed brace raises TokenError.
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), ".ljust(117) + b"\n"
    entry = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(48)
    bad = tmp_path / "unclosed.npz"
    rewrite(good, bad, replace={"leaf_0": entry})
    assert_bad_file(bad, "truncated or corrupted")


def test_rewrite_helper_copies_faithfully(good, tmp_path):
    copied = tmp_path / "copy.npz"
    rewrite(good, copied)
    tree, metadata = load(copied)
    assert_identical(sample_tree(), tree)
    assert metadata == {"epoch": 2, "note": "ok"}


# ---------------------------------------------------------------------------- fuzzing


@settings(FIXTURE_SETTINGS, max_examples=150)
@given(data=st.binary(max_size=3000))
def test_fuzz_random_bytes_only_raise_value_error(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    error = assert_bad_file(path)
    assert isinstance(error, ValueError)


_FUZZ_TREE = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": [1, None, (2.5, True)]}


@settings(FIXTURE_SETTINGS, max_examples=200)
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.none() | st.floats(0, 1),
    insert=st.none() | st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=16)),
)
def test_fuzz_mutated_checkpoints_only_raise_value_error(tmp_path, edits, cut, insert):
    src = tmp_path / "src.npz"
    if not src.exists():
        save(src, _FUZZ_TREE, epoch=1)
    raw = src.read_bytes()
    data = bytearray(raw)
    for where, value in edits:
        data[int(where * len(data))] = value
    if insert is not None:
        at = int(insert[0] * len(data))
        data[at:at] = insert[1]
    if cut is not None:
        del data[int(cut * len(data)) :]
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(data))
    try:
        tree, metadata = load(path)
    except ValueError as exc:
        assert repr(str(path)) in str(exc)
    else:
        assert isinstance(tree, dict) and isinstance(metadata, dict)
        if bytes(data) == raw:
            assert_identical(_FUZZ_TREE, tree)
            assert metadata == {"epoch": 1}


_WORDS = ["type", "children", "keys", "kind", "index", "dtype", "shape", "dict", "list"]
_WORDS += ["tuple", "leaf", "none", "ndarray", "numpy_scalar", "int", "float", "<f4", "|b1"]
_header_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**64) | st.floats() | st.sampled_from(_WORDS),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_WORDS), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(FIXTURE_SETTINGS, max_examples=120)
@given(tree=_header_json, num_leaves=st.integers(0, 3) | _header_json)
def test_fuzz_crafted_headers_only_raise_value_error(tmp_path, tree, num_leaves):
    src = tmp_path / "src.npz"
    if not src.exists():
        save(src, [np.ones(2, np.float32), True, {"a": None}])
    bad = tmp_path / "crafted.npz"
    rewrite(src, bad, header=lambda h: {**h, "tree": tree, "num_leaves": num_leaves})
    try:
        loaded, metadata = load(bad)
    except ValueError as exc:
        assert repr(str(bad)) in str(exc)
    else:  # a header that happens to describe the stored arrays correctly
        assert metadata == {}
        assert len([x for x in _flatten(loaded) if x is not None]) == num_leaves


def _flatten(tree):
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in _flatten(v)]
    if isinstance(tree, (list, tuple)):
        return [x for v in tree for x in _flatten(v)]
    return [tree]
