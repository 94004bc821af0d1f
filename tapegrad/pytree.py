"""Pytrees: nested dicts, lists and tuples whose leaves are arrays or scalars.

The differentiated argument of :func:`tapegrad.grad`, the gradient it returns, the
parameters of :mod:`tapegrad.nn` and the state of :mod:`tapegrad.optim` are all pytrees.
A *container* is a ``dict``, a ``list`` or a ``tuple`` (named tuples included); anything
else, ``None`` included, is a *leaf*.

Dicts keep their insertion order when flattened; :func:`tree_map` matches dicts by key, so
two trees with the same keys in another order still line up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "check_like",
    "leaf_paths",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
]

PyTree = Any


def _rebuild(template: PyTree, children: list) -> PyTree:
    """Build a container of ``template``'s type holding ``children`` in order."""
    kind = type(template)
    if kind is dict:
        return dict(zip(template, children, strict=True))
    if kind is list:
        return children
    if kind is tuple:
        return tuple(children)
    if isinstance(template, dict):
        return kind(zip(template.keys(), children, strict=True))
    if isinstance(template, tuple) and hasattr(template, "_fields"):  # a named tuple
        return kind(*children)
    return kind(children)


def _collect(node: PyTree, out: list) -> None:
    if isinstance(node, dict):
        for v in node.values():
            _collect(v, out)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _collect(v, out)
    else:
        out.append(node)


def tree_leaves(tree: PyTree) -> list:
    """The leaves of ``tree``, depth first, in the order :func:`tree_flatten` gives."""
    out: list = []
    _collect(tree, out)
    return out


def tree_flatten(tree: PyTree) -> tuple[list, PyTree]:
    """Split ``tree`` into its leaves and a *treedef* that :func:`tree_unflatten` fills.

    The treedef is ``tree`` itself with its leaves left in place: it is only read, never
    mutated, and only its containers matter.
    """
    out: list = []
    _collect(tree, out)
    return out, tree


def _build(node: PyTree, it: Iterator) -> PyTree:
    kind = type(node)  # exact types first: the common trees take no isinstance call
    if kind is dict:
        return {k: _build(v, it) for k, v in node.items()}
    if kind is list:
        return [_build(v, it) for v in node]
    if isinstance(node, dict):
        return _rebuild(node, [_build(v, it) for v in node.values()])
    if isinstance(node, (list, tuple)):
        return _rebuild(node, [_build(v, it) for v in node])
    return next(it)


def tree_unflatten(treedef: PyTree, leaves: list) -> PyTree:
    """Inverse of :func:`tree_flatten`: the containers of ``treedef`` holding ``leaves``."""
    it = iter(leaves)
    try:
        out = _build(treedef, it)
    except StopIteration:
        raise ValueError("tree_unflatten: fewer leaves than the tree has places for") from None
    if next(it, _SENTINEL) is not _SENTINEL:
        raise ValueError("tree_unflatten: more leaves than the tree has places for")
    return out


_SENTINEL = object()


def tree_map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """Apply ``fn`` leaf by leaf: ``fn(leaf, *matching_leaves_of_rest)``.

    ``rest`` trees must have the structure of ``tree``; dicts are matched by key. A
    mismatch raises ``ValueError`` naming the path where the trees part.
    """
    if not rest:
        return _map1(fn, tree)
    if len(rest) == 1:
        return _map2(fn, tree, rest[0], ())
    return _map(fn, tree, rest, ())


def _map1(fn: Callable[..., Any], node: PyTree) -> PyTree:
    kind = type(node)  # exact types first: the common trees take no isinstance call
    if kind is dict:
        return {k: _map1(fn, v) for k, v in node.items()}
    if kind is list:
        return [_map1(fn, v) for v in node]
    if kind is tuple:
        return tuple([_map1(fn, v) for v in node])
    if isinstance(node, dict):
        return _rebuild(node, [_map1(fn, v) for v in node.values()])
    if isinstance(node, (list, tuple)):
        return _rebuild(node, [_map1(fn, v) for v in node])
    return fn(node)


# ``path`` is a chain of (parent, key) pairs, formatted only if an error needs it.
def _map(fn: Callable[..., Any], node: PyTree, others: tuple, path: tuple) -> PyTree:
    kind = type(node)  # exact types first, as in _map2
    if kind is dict and all(type(o) is dict and o.keys() == node.keys() for o in others):
        return {k: _map(fn, v, tuple(o[k] for o in others), (path, k)) for k, v in node.items()}
    if kind is list and all(type(o) is list and len(o) == len(node) for o in others):
        return [_map(fn, v, tuple(o[i] for o in others), (path, i)) for i, v in enumerate(node)]
    if isinstance(node, dict):
        for o in others:
            if not isinstance(o, dict) or o.keys() != node.keys():
                raise _mismatch(path, node, o)
        return _rebuild(
            node, [_map(fn, v, tuple(o[k] for o in others), (path, k)) for k, v in node.items()]
        )
    if isinstance(node, (list, tuple)):
        for o in others:
            if not isinstance(o, (list, tuple)) or len(o) != len(node):
                raise _mismatch(path, node, o)
        return _rebuild(
            node, [_map(fn, v, tuple(o[i] for o in others), (path, i)) for i, v in enumerate(node)]
        )
    return fn(node, *others)


def _map2(fn: Callable[..., Any], node: PyTree, other: PyTree, path: tuple) -> PyTree:
    """:func:`_map` for exactly two trees, the optimizers' case: no per-node tuples."""
    kind = type(node)
    if kind is dict and type(other) is dict and node.keys() == other.keys():
        return {k: _map2(fn, v, other[k], (path, k)) for k, v in node.items()}
    if kind is list and type(other) is list and len(node) == len(other):
        return [
            _map2(fn, v, w, (path, i)) for i, (v, w) in enumerate(zip(node, other, strict=True))
        ]
    if isinstance(node, dict):
        if not isinstance(other, dict) or other.keys() != node.keys():
            raise _mismatch(path, node, other)
        return _rebuild(node, [_map2(fn, v, other[k], (path, k)) for k, v in node.items()])
    if isinstance(node, (list, tuple)):
        if not isinstance(other, (list, tuple)) or len(other) != len(node):
            raise _mismatch(path, node, other)
        return _rebuild(
            node,
            [_map2(fn, v, w, (path, i)) for i, (v, w) in enumerate(zip(node, other, strict=True))],
        )
    return fn(node, other)


def _format_path(path: tuple) -> str:
    keys = []
    while path:
        path, key = path
        keys.append(f"[{key!r}]")
    return "".join(reversed(keys)) or "the root"


def _mismatch(path: tuple, node: PyTree, other: PyTree) -> ValueError:
    return ValueError(
        f"tree_map: trees differ at {_format_path(path)}: {_describe(node)} against "
        f"{_describe(other)}"
    )


def _describe(x: object) -> str:
    if isinstance(x, dict):
        return f"dict with keys {sorted(map(str, x))}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of length {len(x)}"
    return f"a leaf of type {type(x).__name__}"


def leaf_paths(tree: PyTree, root: str = "") -> Iterator[str]:
    """Paths of the leaves, in flatten order, written as Python indexing: ``['layers'][1]['W']``.

    ``root`` is put in front of each path (``leaf_paths(p, "params")`` gives
    ``params['W']``).
    """
    stack: list[tuple[str, PyTree]] = [(root, tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(reversed([(f"{path}[{k!r}]", v) for k, v in node.items()]))
        elif isinstance(node, (list, tuple)):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(node)]))
        else:
            yield path


def check_like(reference: PyTree, tree: PyTree, what: str) -> None:
    """Raise ``ValueError`` unless ``tree`` has ``reference``'s structure and leaf shapes.

    ``what`` names ``tree`` in the message (``"vjp: the cotangent"``, ``"jvp: tangent 0"``).
    """
    try:
        tree_map(lambda a, b: None, reference, tree)  # raises where the structures differ
    except ValueError as e:
        raise ValueError(f"{what} must have the structure of {_describe(reference)}: {e}") from None
    for path, a, b in zip(leaf_paths(tree), tree_leaves(reference), tree_leaves(tree), strict=True):
        if _shape(a) != _shape(b):
            where = f"{path} " if path else ""
            raise ValueError(
                f"{what} has a leaf {where}of shape {_shape(b)}, but the leaf it must match "
                f"has shape {_shape(a)}"
            )


def _shape(leaf: Any) -> tuple[int, ...]:
    return leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)
