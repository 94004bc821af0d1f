"""Save and load pytrees of arrays: pickle-free ``.npz`` files, written atomically.

Usage::

    save("ckpt.npz", {"W": W, "b": b, "step": 100}, epoch=3, note="warm-up done")
    params, meta = load("ckpt.npz")  # meta == {"epoch": 3, "note": "warm-up done"}
    params, meta = load("ckpt.npz", like=template)  # template's container classes

What can be saved
-----------------
*Containers* are dicts, lists and tuples, nested to any depth, empty ones included.
Dict keys must be ``str`` or ``int`` (``bool`` excluded); ``1`` and ``"1"`` stay distinct.
Without ``like`` every dict comes back as a plain ``dict`` (insertion order kept), every
list as a ``list`` and every tuple, named ones included, as a plain ``tuple``; pass
``like=`` to :func:`load` to get named tuples and other container classes back.

*Leaves* come back as the kind of object they were saved as:

- ``numpy.ndarray`` of a bool, integer, unsigned, float, complex, string (``U``/``S``) or
  datetime/timedelta dtype, any shape (0-d and size-0 included): the same dtype (byte
  order included) and shape, as a fresh, writable array. Subclasses come back as plain
  ``ndarray`` and an array that appears twice in the tree comes back as two arrays.
- numpy scalars (``np.float32(1.5)``): the same numpy scalar type.
- Python ``bool``, ``int``, ``float``, ``complex``: the same Python type and value (an
  ``int`` must fit in int64).
- ``None``: ``None``.

Object-dtype (and structured) arrays are refused with ``ValueError``, any other leaf type
with ``TypeError``; both name the leaf's path, e.g. ``tree['layers'][1]['W']``.

*Metadata* (the keyword arguments of :func:`save`) must be JSON data: ``None``, ``bool``,
``int``, ``float`` (NaN and infinities are kept), ``str``, lists and dicts with ``str``
keys. Tuples are accepted and come back as lists; numpy scalars are converted to the
matching Python value. Anything else raises ``TypeError`` naming the key.

File format
-----------
A zip archive in numpy's ``.npz`` layout, every member stored uncompressed:

- ``__tapegrad_checkpoint__.npy``: a 1-d ``uint8`` array holding UTF-8 (in fact ASCII)
  JSON ``{"format": "tapegrad.checkpoint", "version": 1, "num_leaves": n, "tree": ...,
  "metadata": {...}}``. ``tree`` describes the structure: ``{"type": "dict", "keys": [...],
  "children": [...]}``, ``{"type": "list" | "tuple", "children": [...]}``,
  ``{"type": "none"}`` or ``{"type": "leaf", "kind": k, "index": i, "dtype": "<f4",
  "shape": [2, 3]}`` with ``k`` one of ``ndarray``, ``numpy_scalar``, ``bool``, ``int``,
  ``float``, ``complex``.
- ``leaf_<i>.npy``: the ``i``-th leaf that is not ``None`` (depth first, the order of
  :func:`tapegrad.pytree.tree_leaves`) as a ``.npy`` array.

Nothing in the file is ever unpickled: :func:`load` reads it with
``np.load(..., allow_pickle=False)``, refuses compressed entries, and checks every entry's
shape and dtype against the JSON header before reading it.

Paths
-----
The file is written to, and read from, exactly the path given: no ``.npz`` suffix is
appended (unlike ``np.savez``), though ``.npz`` is the suggested one. Saving replaces the
file at ``path``; when that is a symbolic link, the link itself is replaced. A process
killed in the middle of :func:`save` can leave a hidden ``.<name>.<random>.tmp`` file
beside ``path``; it is never read in place of the checkpoint and may be deleted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

from .pytree import leaf_paths, tree_leaves, tree_map

__all__ = ["load", "save"]

PyTree = Any
PathLike = str | os.PathLike

FORMAT_NAME = "tapegrad.checkpoint"
FORMAT_VERSION = 1
HEADER_NAME = "__tapegrad_checkpoint__"

# dtype kinds that numpy's .npy format stores without pickle and that compare exactly:
# bool, signed, unsigned, float, complex, str, bytes, datetime64, timedelta64.
_ALLOWED_KINDS = frozenset("biufcUSMm")
_PY_KINDS = {
    "bool": (bool, "b"),
    "int": (int, "i"),
    "float": (float, "f"),
    "complex": (complex, "c"),
}
_LEAF_KINDS = frozenset(["ndarray", "numpy_scalar", *_PY_KINDS])

try:  # lzma is an optional part of CPython builds
    from lzma import LZMAError
except ImportError:  # pragma: no cover
    LZMAError = zlib.error  # type: ignore[misc, assignment]

# What a damaged or foreign file can make zipfile / numpy / json raise while being read.
_READ_ERRORS = (
    ValueError,  # includes json.JSONDecodeError and UnicodeDecodeError
    zipfile.BadZipFile,
    OSError,
    EOFError,
    KeyError,
    zlib.error,
    LZMAError,
    struct.error,
    OverflowError,
    NotImplementedError,  # unsupported zip compression method
    RuntimeError,  # encrypted zip member; RecursionError on absurdly nested JSON
)


class _Corrupt(Exception):
    """Internal: the file is readable but is not a well-formed tapegrad checkpoint."""


def _name(path: str) -> str:
    return path or "the root"


# ---------------------------------------------------------------------------- saving


def _leaf_to_array(leaf: Any, path: str) -> tuple[str, np.ndarray | None]:
    """The kind of ``leaf`` (see the module docstring) and the array that stores it."""
    if leaf is None:
        return "none", None
    if isinstance(leaf, np.ndarray):
        kind, arr = "ndarray", np.asarray(leaf)
    elif isinstance(leaf, np.generic):
        kind, arr = "numpy_scalar", np.asarray(leaf)
    elif isinstance(leaf, bool):
        kind, arr = "bool", np.asarray(leaf, dtype=np.bool_)
    elif isinstance(leaf, int):
        if not -(2**63) <= leaf < 2**63:
            raise ValueError(f"checkpoint.save: the int at {_name(path)} does not fit in int64")
        kind, arr = "int", np.asarray(int(leaf), dtype=np.int64)
    elif isinstance(leaf, float):
        kind, arr = "float", np.asarray(float(leaf), dtype=np.float64)
    elif isinstance(leaf, complex):
        kind, arr = "complex", np.asarray(complex(leaf), dtype=np.complex128)
    else:
        raise TypeError(
            f"checkpoint.save: cannot save the leaf at {_name(path)} of type "
            f"{type(leaf).__qualname__}; leaves must be numpy arrays, numpy scalars, "
            "bool, int, float, complex or None"
        )
    if arr.dtype.kind not in _ALLOWED_KINDS:
        what = "object" if arr.dtype.kind == "O" else f"unsupported ({arr.dtype})"
        raise ValueError(
            f"checkpoint.save: the leaf at {_name(path)} has {what} dtype; only bool, "
            "numeric, string and datetime arrays can be saved without pickle"
        )
    return kind, arr


def _encode_tree(tree: PyTree, leaf_info: list[tuple[str, np.ndarray | None]]) -> dict:
    """The JSON description of ``tree``'s structure; leaves are numbered in flatten order.

    ``leaf_info`` holds ``(kind, array)`` for each leaf, in :func:`tree_leaves` order.
    """
    positions = iter(range(len(leaf_info)))
    array_index = 0

    def walk(node: PyTree, path: str) -> dict:
        nonlocal array_index
        if isinstance(node, dict):
            keys = []
            for k in node:
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(
                        f"checkpoint.save: the dict at {_name(path)} has the key {k!r} of type "
                        f"{type(k).__qualname__}; keys must be str or int"
                    )
                keys.append(k if isinstance(k, str) else int(k))
            children = [walk(v, f"{path}[{k!r}]") for k, v in node.items()]
            return {"type": "dict", "keys": keys, "children": children}
        if isinstance(node, (list, tuple)):
            children = [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
            return {"type": "list" if isinstance(node, list) else "tuple", "children": children}
        kind, arr = leaf_info[next(positions)]
        if arr is None:
            return {"type": "none"}
        out = {
            "type": "leaf",
            "kind": kind,
            "index": array_index,
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }
        array_index += 1
        return out

    return walk(tree, "tree")


def _to_json(value: Any, where: str) -> Any:
    """``value`` as JSON data (numpy scalars converted), else ``TypeError`` naming ``where``."""
    if isinstance(value, np.generic):
        converted = value.item()
        if not isinstance(converted, (bool, int, float, str)):
            raise TypeError(
                f"checkpoint.save: {where} is a {type(value).__qualname__}, which has "
                "no JSON equivalent"
            )
        return converted
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"checkpoint.save: {where} has the key {k!r}; dict keys in metadata must be str"
                )
            out[k] = _to_json(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"checkpoint.save: {where} is of type {type(value).__qualname__}; metadata "
        "must be JSON data (None, bool, int, float, str, lists and dicts with str keys) or "
        "numpy scalars - put arrays in the tree instead"
    )


def _new_file_mode(target: str) -> int:
    """Permission bits for the checkpoint: those of the file it replaces, else 0o666 - umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = 0o022
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
                break
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX; silently skipped where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_archive(f: Any, members: list[tuple[str, np.ndarray]]) -> None:
    """Write ``members`` to the open binary file ``f`` as an uncompressed ``.npz`` archive."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in members:
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(path: PathLike, tree: PyTree, /, **metadata: Any) -> None:
    """Write ``tree`` and ``metadata`` to ``path`` atomically.

    Args:
        path: where to write; used exactly as given (no ``.npz`` is appended). The folder
            must exist.
        tree: a pytree (dicts with str/int keys, lists, tuples) whose leaves are numpy
            arrays, numpy scalars, Python bool/int/float/complex or None. It is only read.
        **metadata: JSON data stored alongside (returned by :func:`load`); numpy scalars
            are converted to Python values and tuples to lists.

    The whole tree is checked before anything is written. The file is written to a
    temporary file in the same folder, flushed and fsynced, then renamed over ``path``
    (and the folder fsynced), so a crash or kill at any moment leaves either the previous
    file or the new one at ``path``, never a partial one. On error the temporary file is
    removed. An existing file's permission bits are kept; a new file gets ``0o666``
    minus the umask.

    Raises:
        TypeError: a leaf of an unsupported type, a dict key that is not str/int, or
            metadata that is not JSON data; the message names the path or key.
        ValueError: an object-dtype (or otherwise unsupported) array, or an int leaf
            outside int64; the message names the leaf's path.
    """
    target = os.fspath(path)
    if isinstance(target, bytes):
        target = os.fsdecode(target)

    leaves = tree_leaves(tree)
    leaf_info = [
        _leaf_to_array(leaf, p) for leaf, p in zip(leaves, leaf_paths(tree, "tree"), strict=True)
    ]
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "num_leaves": sum(arr is not None for _, arr in leaf_info),
        "tree": _encode_tree(tree, leaf_info),
        "metadata": {k: _to_json(v, f"metadata[{k!r}]") for k, v in metadata.items()},
    }
    header_bytes = json.dumps(header, ensure_ascii=True, allow_nan=True).encode("utf-8")
    members = [(HEADER_NAME, np.frombuffer(header_bytes, dtype=np.uint8))]
    arrays = [arr for _, arr in leaf_info if arr is not None]
    members += [(f"leaf_{i}", arr) for i, arr in enumerate(arrays)]

    directory = os.path.dirname(os.path.abspath(target))
    mode = _new_file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_archive(f, members)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError, NotImplementedError):
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


# ---------------------------------------------------------------------------- loading


def _member_info(zf: zipfile.ZipFile, name: str, file_size: int) -> zipfile.ZipInfo:
    """The zip entry of array ``name``, checked to be stored plainly within the file."""
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise _Corrupt(f"the entry {name!r} is missing") from None
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise _Corrupt(f"the entry {name!r} is compressed; checkpoints store entries plainly")
    if info.file_size > file_size:
        raise _Corrupt(f"the entry {name!r} claims to be larger than the file")
    return info


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header of an entry, without reading its data."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise _Corrupt(f"the entry {info.filename!r} has .npy format version {version}")
    return shape, dtype


def _read_array(
    npz: Any, name: str, shape: tuple[int, ...], dtype: np.dtype, file_size: int
) -> np.ndarray:
    """Array ``name`` from ``npz``, checked to have ``shape`` and ``dtype`` before reading."""
    info = _member_info(npz.zip, name, file_size)
    if dtype.itemsize * math.prod(shape) > info.file_size:
        raise _Corrupt(f"the entry {name!r} is shorter than its recorded shape and dtype need")
    got_shape, got_dtype = _npy_header(npz.zip, info)
    if got_shape != shape or got_dtype != dtype:
        raise _Corrupt(
            f"the entry {name!r} holds a {got_dtype} array of shape {got_shape} but the "
            f"header records {dtype} of shape {shape}"
        )
    arr = npz[name]
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
        raise _Corrupt(f"the entry {name!r} does not hold the array the header records")
    return arr


def _parse_header(raw: np.ndarray) -> dict:
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _Corrupt(f"the header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _Corrupt("the header does not name the tapegrad checkpoint format")
    version = header.get("version")
    if version != FORMAT_VERSION:
        raise _Corrupt(
            f"format version {version!r} is not supported (this tapegrad reads version "
            f"{FORMAT_VERSION})"
        )
    num_leaves = header.get("num_leaves")
    if isinstance(num_leaves, bool) or not isinstance(num_leaves, int) or num_leaves < 0:
        raise _Corrupt("the header's leaf count is not a non-negative integer")
    if not isinstance(header.get("metadata"), dict):
        raise _Corrupt("the header's metadata is not a JSON object")
    if "tree" not in header:
        raise _Corrupt("the header has no tree")
    return header


def _check_leaf_node(node: dict, expected_index: int) -> tuple[str, tuple[int, ...], np.dtype]:
    kind, index, dtype_str, shape = (node.get(k) for k in ("kind", "index", "dtype", "shape"))
    if kind not in _LEAF_KINDS:
        raise _Corrupt(f"unknown leaf kind {kind!r}")
    if index != expected_index or isinstance(index, bool):
        raise _Corrupt(f"leaf index {index!r} where {expected_index} was expected")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**63 for n in shape
    ):
        raise _Corrupt(f"leaf {index} has an invalid shape {shape!r}")
    if len(shape) > 64:
        raise _Corrupt(f"leaf {index} has more dimensions than numpy supports")
    if not isinstance(dtype_str, str):
        raise _Corrupt(f"leaf {index} has an invalid dtype {dtype_str!r}")
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError) as exc:
        raise _Corrupt(f"leaf {index} has an invalid dtype {dtype_str!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.str != dtype_str:
        raise _Corrupt(f"leaf {index} has an unsupported dtype {dtype_str!r}")
    if kind != "ndarray" and shape:
        raise _Corrupt(f"leaf {index} is a scalar but has shape {shape}")
    if kind in _PY_KINDS and dtype.kind != _PY_KINDS[kind][1]:
        raise _Corrupt(f"leaf {index} is a Python {kind} but has dtype {dtype}")
    return kind, tuple(shape), dtype


def _decode_tree(node: Any, read: Any) -> tuple[PyTree, int]:
    """The tree described by ``node`` and its number of stored arrays.

    ``read(index, shape, dtype)`` gives the stored arrays.
    """
    next_index = 0

    def build(node: Any) -> PyTree:
        nonlocal next_index
        if not isinstance(node, dict):
            raise _Corrupt("a tree node is not a JSON object")
        kind = node.get("type")
        if kind in ("dict", "list", "tuple"):
            children = node.get("children")
            if not isinstance(children, list):
                raise _Corrupt(f"a {kind} node has no list of children")
            if kind == "dict":
                keys = node.get("keys")
                if (
                    not isinstance(keys, list)
                    or len(keys) != len(children)
                    or not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys)
                    or len(set(keys)) != len(keys)
                ):
                    raise _Corrupt("a dict node has invalid keys")
                return {k: build(c) for k, c in zip(keys, children, strict=True)}
            built = [build(c) for c in children]
            return built if kind == "list" else tuple(built)
        if kind == "none":
            return None
        if kind == "leaf":
            leaf_kind, shape, dtype = _check_leaf_node(node, next_index)
            arr = read(next_index, shape, dtype)
            next_index += 1
            if leaf_kind == "ndarray":
                return arr
            if leaf_kind == "numpy_scalar":
                return arr[()]
            return _PY_KINDS[leaf_kind][0](arr.item())
        raise _Corrupt(f"unknown tree node type {kind!r}")

    out = build(node)
    return out, next_index


def _read_checkpoint(f: Any) -> tuple[PyTree, dict]:
    """Tree and metadata from the open binary file ``f``; raises on anything amiss."""
    file_size = os.fstat(f.fileno()).st_size
    magic = f.read(4)
    if not magic:
        raise _Corrupt("the file is empty")
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise _Corrupt("it is not an .npz (zip) archive")
    f.seek(0)
    with np.load(f, allow_pickle=False) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - magic checked
            raise _Corrupt("it is not an .npz archive")
        if HEADER_NAME not in npz.files:
            raise _Corrupt(f"it has no {HEADER_NAME!r} entry (not a tapegrad checkpoint)")
        info = _member_info(npz.zip, HEADER_NAME, file_size)
        shape, dtype = _npy_header(npz.zip, info)
        if len(shape) != 1 or dtype != np.uint8:
            raise _Corrupt(f"the {HEADER_NAME!r} entry is not a 1-d uint8 array")
        header = _parse_header(_read_array(npz, HEADER_NAME, shape, dtype, file_size))

        def read(index: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
            if index >= header["num_leaves"]:
                raise _Corrupt("the tree has more leaves than the header's leaf count")
            return _read_array(npz, f"leaf_{index}", shape, dtype, file_size)

        tree, count = _decode_tree(header["tree"], read)
        if count != header["num_leaves"]:
            raise _Corrupt(
                f"the tree has {count} stored leaves but the header counts {header['num_leaves']}"
            )
        expected = {HEADER_NAME, *(f"leaf_{i}" for i in range(count))}
        if len(npz.files) != len(expected) or set(npz.files) != expected:
            extra = sorted(set(npz.files) - expected) or "duplicate entries"
            raise _Corrupt(f"it has unexpected entries: {extra}")
    return tree, header["metadata"]


def _leaf_spec(x: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of a leaf (None for None); anything with .shape/.dtype works."""
    if x is None:
        return None
    if isinstance(x, (np.ndarray, np.generic)) or not (hasattr(x, "shape") and hasattr(x, "dtype")):
        arr = np.asarray(x)
        return arr.shape, arr.dtype
    return tuple(x.shape), np.dtype(x.dtype)


def _show_spec(spec: tuple[tuple[int, ...], np.dtype] | None) -> str:
    return "None" if spec is None else f"{spec[1]} of shape {spec[0]}"


def _fit_to(like: PyTree, tree: PyTree, name: str) -> PyTree:
    """``tree``'s leaves in ``like``'s containers, after checking that they match."""
    n_like, n_tree = len(tree_leaves(like)), len(tree_leaves(tree))
    paths = iter(leaf_paths(like, "like"))

    def place(template_leaf: Any, loaded: Any) -> Any:
        path = next(paths)
        want = _leaf_spec(template_leaf)
        if isinstance(loaded, (dict, list, tuple)):
            raise ValueError(
                f"checkpoint.load({name!r}, like=...): at {path} the template has a leaf but "
                f"the checkpoint has a {type(loaded).__name__}"
            )
        got = _leaf_spec(loaded)
        if want != got:
            raise ValueError(
                f"checkpoint.load({name!r}, like=...): at {path} the template has "
                f"{_show_spec(want)} but the checkpoint has {_show_spec(got)}"
            )
        return loaded

    try:
        return tree_map(place, like, tree)
    except ValueError as exc:
        if str(exc).startswith("checkpoint.load"):
            raise
        raise ValueError(
            f"checkpoint.load({name!r}, like=...): the checkpoint's structure "
            f"({n_tree} leaves) does not match the template's ({n_like} leaves): {exc}"
        ) from exc


def load(path: PathLike, like: PyTree | None = None) -> tuple[PyTree, dict[str, Any]]:
    """Read a checkpoint written by :func:`save`.

    Args:
        path: the file, used exactly as given (no suffix is added).
        like: optional template pytree. When given, the loaded leaves are put into its
            containers (named tuples, ``OrderedDict`` and other dict/list/tuple subclasses
            come back as their class; dicts are matched by key), after checking that the
            structure and every leaf's shape and dtype match. Its leaves may be arrays,
            scalars, None, or anything with ``.shape`` and ``.dtype``.

    Returns:
        ``(tree, metadata)``: the tree with fresh, writable arrays (leaf kinds as
        described in the module docstring) and the metadata dict (``{}`` if none).

    Raises:
        FileNotFoundError: no file at ``path`` (other errors opening it, such as
            ``PermissionError``, also propagate unchanged).
        ValueError: the file is truncated, corrupted, or not a tapegrad checkpoint (the
            message names the file and what is wrong); or ``like`` does not match (the
            message names the path where they differ).

    Nothing is unpickled: the archive is read with ``np.load(..., allow_pickle=False)``
    and every entry's shape and dtype is checked against the header before its data is
    read, so a crafted file cannot run code or make ``load`` allocate more than its size.
    """
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    with open(name, "rb") as f:
        try:
            tree, metadata = _read_checkpoint(f)
        except _Corrupt as exc:
            raise ValueError(f"{name!r} is not a valid tapegrad checkpoint: {exc}") from exc
        except _READ_ERRORS as exc:
            raise ValueError(
                f"{name!r} is not a valid tapegrad checkpoint: it is truncated or corrupted "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if like is not None:
        tree = _fit_to(like, tree, name)
    return tree, metadata
