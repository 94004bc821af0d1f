"""Save and load pytrees of arrays as pickle-free ``.npz`` files, written atomically.

Usage::

    save("ckpt.npz", {"W": W, "b": b, "step": 100}, epoch=3, note="warm-up done")
    params, meta = load("ckpt.npz")  # meta == {"epoch": 3, "note": "warm-up done"}
    params, meta = load("ckpt.npz", like=template)  # template's container classes

*Containers* are dicts (keys ``str`` or ``int``, not ``bool``; ``1`` and ``"1"`` stay
distinct), lists and tuples; without ``like`` they come back as a plain ``dict`` (order
kept), ``list`` and ``tuple``. *Leaves* come back as saved: a numpy array of a bool,
numeric, string or datetime dtype (same dtype, byte order and shape, as a fresh writable
``ndarray``), a numpy scalar, a Python ``bool``, ``int`` (within int64), ``float`` or
``complex``, or ``None``. Object and structured arrays raise ``ValueError``, other leaf
types ``TypeError``, naming the leaf's path (``tree['layers'][1]['W']``). *Metadata*, the
keyword arguments of :func:`save`, is JSON data (NaN and infinities kept): tuples come back
as lists, numpy scalars as Python values, anything else raises ``TypeError`` naming the key.

The file is a zip archive in numpy's ``.npz`` layout, every member stored uncompressed.
``__tapegrad_checkpoint__.npy`` is a 1-d ``uint8`` array of ASCII JSON ``{"format":
"tapegrad.checkpoint", "version": 1, "num_leaves": n, "tree": node, "metadata": {...}}``,
a node being ``{"type": "dict", "keys": [...], "children": [...]}``, ``{"type": "list" |
"tuple", "children": [...]}``, ``{"type": "none"}`` or ``{"type": "leaf", "kind": k,
"index": i, "dtype": "<f4", "shape": [2, 3]}`` (``k``: ``ndarray``, ``numpy_scalar``,
``bool``, ``int``, ``float`` or ``complex``). ``leaf_<i>.npy`` holds the ``i``-th leaf that
is not ``None``, depth first.

Paths are used exactly as given (no ``.npz`` is appended). A process killed during
:func:`save` can leave a hidden ``.<name>.<random>.tmp`` file beside the checkpoint; it is
never read in its place and may be deleted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
import struct
import tokenize
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from .pytree import leaf_paths, tree_map

__all__ = ["load", "save"]

PyTree = Any
PathLike = str | os.PathLike

FORMAT_NAME = "tapegrad.checkpoint"
FORMAT_VERSION = 1
HEADER_NAME = "__tapegrad_checkpoint__"

# dtype kinds .npy stores without pickle: bool, (un)signed, float, complex, str, bytes, dates.
_ALLOWED_KINDS = frozenset("biufcUSMm")
# leaf kind -> (Python type, stored dtype); bool comes before int, its superclass.
_PY_KINDS = {
    t.__name__: (t, np.dtype(d))
    for t, d in [(bool, "?"), (int, "i8"), (float, "f8"), (complex, "c16")]
}
_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What zipfile and numpy raise on a damaged file (entries are never decompressed, so no zlib
# errors). NotImplementedError and RuntimeError come from zip flag bits (patched data,
# encryption), RecursionError (a RuntimeError) from absurdly nested JSON, TokenError from
# numpy's parsing of a .npy header that is not a complete Python literal.
_READ_ERRORS = (
    ValueError, OSError, EOFError, KeyError, OverflowError, RuntimeError,
    zipfile.BadZipFile, struct.error, NotImplementedError, tokenize.TokenError,
)  # fmt: skip


class _Corrupt(Exception):
    """Internal: the file is readable but is not a well-formed tapegrad checkpoint."""


# ---------------------------------------------------------------------------- saving


def _encode(node: PyTree, path: str, arrays: list[np.ndarray]) -> dict:
    """The JSON description of ``node``; its arrays are appended to ``arrays``, depth first."""
    if isinstance(node, dict):
        for k in node:
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(
                    f"checkpoint.save: the dict at {path} has the key {k!r}; use str or int keys"
                )
        children = [_encode(v, f"{path}[{k!r}]", arrays) for k, v in node.items()]
        keys = [k if isinstance(k, str) else int(k) for k in node]
        return {"type": "dict", "keys": keys, "children": children}
    if isinstance(node, (list, tuple)):
        children = [_encode(v, f"{path}[{i}]", arrays) for i, v in enumerate(node)]
        return {"type": "list" if isinstance(node, list) else "tuple", "children": children}
    if node is None:
        return {"type": "none"}
    if isinstance(node, (np.ndarray, np.generic)):
        kind = "ndarray" if isinstance(node, np.ndarray) else "numpy_scalar"
        arr = np.asarray(node)
    else:
        kind = next((k for k, (t, _) in _PY_KINDS.items() if isinstance(node, t)), "")
        if not kind:
            raise TypeError(
                f"checkpoint.save: cannot save the leaf at {path} of type "
                f"{type(node).__qualname__}; leaves must be numpy arrays, numpy scalars, "
                "bool, int, float, complex or None"
            )
        if kind == "int" and not -(2**63) <= node < 2**63:
            raise ValueError(f"checkpoint.save: the int at {path} does not fit in int64")
        arr = np.asarray(node, dtype=_PY_KINDS[kind][1])
    if arr.dtype.kind not in _ALLOWED_KINDS:
        raise ValueError(
            f"checkpoint.save: the leaf at {path} has dtype {arr.dtype}; only bool, numeric, "
            "string and datetime arrays can be saved without pickle"
        )
    arrays.append(arr)
    index, dtype, shape = len(arrays) - 1, arr.dtype.str, list(arr.shape)
    return {"type": "leaf", "kind": kind, "index": index, "dtype": dtype, "shape": shape}


def _to_json(value: Any, where: str) -> Any:
    """``value`` as JSON data (numpy scalars converted), else ``TypeError`` naming ``where``."""
    if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):  # subclasses (IntEnum, ...) become the plain type
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"checkpoint.save: {where} is a {type(value).__qualname__}; metadata must be JSON "
        "data (None, bool, int, float, str, lists, dicts with str keys) or numpy scalars"
    )


def save(path: PathLike, tree: PyTree, /, **metadata: Any) -> None:
    """Write ``tree`` (a pytree, only read) and ``metadata`` (JSON data) to ``path`` atomically.

    Everything is checked before anything is written. The archive goes to a temporary file
    in the same folder, is fsynced, then renamed over ``path`` (and the folder fsynced), so
    a crash at any moment leaves the old file or the new one, never a partial one. An
    existing file's permission bits are kept; a new file gets ``0o666`` minus the umask.

    Raises:
        TypeError: an unsupported leaf type, a dict key that is not str/int, or metadata
            that is not JSON data; the message names the path or key.
        ValueError: an object-dtype or structured array, or an int outside int64.
    """
    target = os.fsdecode(path)
    arrays: list[np.ndarray] = []
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "num_leaves": 0}
    header["tree"] = _encode(tree, "tree", arrays)
    header["num_leaves"] = len(arrays)
    header["metadata"] = {k: _to_json(v, f"metadata[{k!r}]") for k, v in metadata.items()}
    members = {HEADER_NAME: np.frombuffer(json.dumps(header).encode("ascii"), dtype=np.uint8)}
    members.update((f"leaf_{i}", arr) for i, arr in enumerate(arrays))

    directory, name = os.path.split(os.path.abspath(target))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    # The temporary file is created with its final mode, so the kernel applies the umask as
    # to any new file (reading the umask portably means os.umask(), which changes it for
    # every thread for a moment), and the data is never more readable than the old file.
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
                for member, arr in members.items():
                    # A streamed member's size is unknown up front: force_zip64 allows > 4 GiB.
                    with zf.open(member + ".npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:  # give back the bits the umask took off the old file's mode
            with contextlib.suppress(OSError):
                os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename durable; Windows cannot open a folder, some filesystems cannot fsync one.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---------------------------------------------------------------------------- loading


def _read_entry(zf: zipfile.ZipFile, name: str, file_size: int, want: tuple | None) -> np.ndarray:
    """Array ``name`` of the archive, read only once its ``.npy`` header is known to match.

    ``want`` is the ``(shape, dtype)`` the JSON header records, or ``None`` for the JSON
    header itself (any 1-d uint8 array). Nothing larger than the file is allocated.
    """
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise _Corrupt(f"the entry {name!r} is missing") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Corrupt(f"the entry {name!r} is compressed; checkpoints store entries plainly")
    limit = min(info.file_size, file_size)
    if want is not None and want[1].itemsize * math.prod(want[0]) > limit:
        raise _Corrupt(f"the entry {name!r} is shorter than its recorded shape and dtype need")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in _NPY_HEADERS:
            raise _Corrupt(f"the entry {name!r} has .npy format version {version}")
        shape, _, dtype = _NPY_HEADERS[version](fh)
        if want is None and (len(shape) != 1 or dtype != np.uint8 or shape[0] > limit):
            raise _Corrupt(f"the {name!r} entry is not a 1-d uint8 array")
        if want is not None and (shape, dtype) != want:
            got, recorded = f"{dtype} of shape {shape}", f"{want[1]} of shape {want[0]}"
            raise _Corrupt(f"the entry {name!r} holds {got} but the header records {recorded}")
        fh.seek(0)
        return np.lib.format.read_array(fh, allow_pickle=False)


def _parse_header(raw: np.ndarray) -> dict:
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _Corrupt(f"the header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _Corrupt("the header does not name the tapegrad checkpoint format")
    if header.get("version") != FORMAT_VERSION:
        raise _Corrupt(f"format version {header.get('version')!r} is not supported (only 1 is)")
    if not isinstance(header.get("metadata"), dict):
        raise _Corrupt("the header's metadata is not a JSON object")
    if "tree" not in header:
        raise _Corrupt("the header has no tree")
    return header


def _leaf_spec(node: dict, index: int) -> tuple[str, tuple[int, ...], np.dtype]:
    """Kind, shape and dtype of the leaf node that should hold stored array ``index``."""
    kind, dtype_str, shape = node.get("kind"), node.get("dtype"), node.get("shape")
    if kind not in ("ndarray", "numpy_scalar", *_PY_KINDS):
        raise _Corrupt(f"unknown leaf kind {kind!r}")
    if type(node.get("index")) is not int or node["index"] != index:
        raise _Corrupt(f"leaf index {node.get('index')!r} where {index} was expected")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise _Corrupt(f"leaf {index} has an invalid shape {shape!r}")
    try:
        dtype = np.dtype(dtype_str) if isinstance(dtype_str, str) else None
    except (TypeError, ValueError):
        dtype = None
    # Only the canonical string that save() writes ("<f4", not "float32") is ours.
    if dtype is None or dtype.str != dtype_str or dtype.kind not in _ALLOWED_KINDS:
        raise _Corrupt(f"leaf {index} has an invalid dtype {dtype_str!r}")
    if (kind != "ndarray" and shape) or (kind in _PY_KINDS and dtype != _PY_KINDS[kind][1]):
        raise _Corrupt(f"leaf {index} is a {kind} but has dtype {dtype} and shape {shape}")
    return kind, tuple(shape), dtype


def _decode(node: Any, read_leaf: Callable[[dict], Any]) -> PyTree:
    """The tree a JSON ``node`` describes; ``read_leaf`` turns each leaf node into its value."""
    if not isinstance(node, dict):
        raise _Corrupt("a tree node is not a JSON object")
    kind, children, keys = node.get("type"), node.get("children"), node.get("keys")
    if kind in ("none", "leaf"):
        return None if kind == "none" else read_leaf(node)
    if kind not in ("dict", "list", "tuple"):
        raise _Corrupt(f"unknown tree node type {kind!r}")
    if not isinstance(children, list):
        raise _Corrupt(f"a {kind} node has no list of children")
    built = [_decode(c, read_leaf) for c in children]
    if kind != "dict":
        return built if kind == "list" else tuple(built)
    # JSON values have exact types: type() tells an int key from true and false.
    if not isinstance(keys, list) or not all(type(k) in (str, int) for k in keys):
        raise _Corrupt("a dict node has invalid keys")
    if len(keys) != len(built) or len(set(keys)) != len(keys):
        raise _Corrupt("a dict node has duplicate keys, or not one key per child")
    return dict(zip(keys, built, strict=True))


def _read_checkpoint(f: Any) -> tuple[PyTree, dict]:
    """Tree and metadata from the open binary file ``f``; raises on anything amiss."""
    if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise _Corrupt("it is not an .npz (zip) archive")
    file_size = os.fstat(f.fileno()).st_size
    with zipfile.ZipFile(f) as zf:
        header = _parse_header(_read_entry(zf, HEADER_NAME, file_size, None))
        count = 0

        def read_leaf(node: dict) -> Any:
            nonlocal count
            kind, shape, dtype = _leaf_spec(node, count)
            arr = _read_entry(zf, f"leaf_{count}", file_size, (shape, dtype))
            count += 1
            if kind in _PY_KINDS:
                return _PY_KINDS[kind][0](arr[()])
            return arr if kind == "ndarray" else arr[()]

        tree = _decode(header["tree"], read_leaf)
        if count != header["num_leaves"]:
            counted = header["num_leaves"]
            raise _Corrupt(f"the tree has {count} stored leaves but the header counts {counted!r}")
        names = zf.namelist()
        expected = {HEADER_NAME + ".npy", *(f"leaf_{i}.npy" for i in range(count))}
        if len(names) != len(expected) or set(names) != expected:
            extra = sorted(set(names) - expected) or "duplicates"
            raise _Corrupt(f"it has unexpected entries: {extra}")
    return tree, header["metadata"]


def _describe(leaf: Any) -> str:
    """``"float32 of shape (2, 3)"`` for anything with ``.shape`` and ``.dtype`` or a scalar."""
    if leaf is None or isinstance(leaf, (dict, list, tuple)):
        return "None" if leaf is None else f"a {type(leaf).__name__}"
    if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
        leaf = np.asarray(leaf)
    return f"{np.dtype(leaf.dtype)} of shape {tuple(leaf.shape)}"


def _fit_to(like: PyTree, tree: PyTree, name: str) -> PyTree:
    """``tree``'s leaves in ``like``'s containers, after checking that they match."""
    where = f"checkpoint.load({name!r}, like=...)"
    pairs: list[tuple[Any, Any]] = []

    def pair(want: Any, got: Any) -> Any:
        pairs.append((want, got))
        return got

    try:
        fitted = tree_map(pair, like, tree)
    except ValueError as exc:
        raise ValueError(
            f"{where}: the checkpoint's structure is not the template's: {exc}"
        ) from None
    for path, (want, got) in zip(leaf_paths(like, "like"), pairs, strict=True):
        if _describe(want) != _describe(got):
            raise ValueError(
                f"{where}: at {path} the template has {_describe(want)} but the checkpoint "
                f"has {_describe(got)}"
            )
    return fitted


def load(path: PathLike, like: PyTree | None = None) -> tuple[PyTree, dict[str, Any]]:
    """Read ``(tree, metadata)`` from a checkpoint written by :func:`save`.

    Args:
        path: the file, used exactly as given.
        like: optional template pytree: the loaded leaves are put in its containers (named
            tuples, ``OrderedDict``, ...; dicts are matched by key) once the structure and
            every leaf's shape and dtype are checked to match. Its leaves may be arrays,
            scalars, None, or anything with ``.shape`` and ``.dtype``.

    Raises:
        FileNotFoundError: no file at ``path`` (other errors opening it propagate too).
        ValueError: the file is truncated, corrupted or not a tapegrad checkpoint, or
            ``like`` does not match; the message names the file and what is wrong.

    Nothing is unpickled, and every entry's shape and dtype are checked against the header
    before its data is read, so a crafted file can neither run code nor make ``load``
    allocate more than its size.
    """
    name = os.fsdecode(path)
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
    return (tree, metadata) if like is None else (_fit_to(like, tree, name), metadata)
