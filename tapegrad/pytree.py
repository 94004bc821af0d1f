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

__all__ = [
    "leaf_paths",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
]

PyTree = Any


def _is_container(x: object) -> bool:
    return isinstance(x, (dict, list, tuple))


def _rebuild(template: PyTree, children: list) -> PyTree:
    """Build a container of ``template``'s type holding ``children`` in order."""
    if isinstance(template, dict):
        return type(template)(zip(template.keys(), children, strict=True))
    if isinstance(template, tuple) and hasattr(template, "_fields"):  # a named tuple
        return type(template)(*children)
    return type(template)(children)


def _children(x: PyTree) -> list:
    return list(x.values()) if isinstance(x, dict) else list(x)


def tree_leaves(tree: PyTree) -> list:
    """The leaves of ``tree``, depth first, in the order :func:`tree_flatten` gives."""
    if not _is_container(tree):
        return [tree]
    out: list = []
    stack = [tree]
    # An explicit stack keeps deep trees clear of the recursion limit.
    while stack:
        node = stack.pop()
        if _is_container(node):
            stack.extend(reversed(_children(node)))
        else:
            out.append(node)
    return out


def tree_flatten(tree: PyTree) -> tuple[list, PyTree]:
    """Split ``tree`` into its leaves and a *treedef* that :func:`tree_unflatten` fills.

    The treedef is ``tree`` itself with its leaves left in place: it is only read, never
    mutated, and only its containers matter.
    """
    return tree_leaves(tree), tree


def tree_unflatten(treedef: PyTree, leaves: list) -> PyTree:
    """Inverse of :func:`tree_flatten`: the containers of ``treedef`` holding ``leaves``."""
    it = iter(leaves)

    def build(node: PyTree) -> PyTree:
        if _is_container(node):
            return _rebuild(node, [build(c) for c in _children(node)])
        return next(it)

    out = build(treedef)
    if next(it, _SENTINEL) is not _SENTINEL:
        raise ValueError("tree_unflatten: more leaves than the tree has places for")
    return out


_SENTINEL = object()


def tree_map(fn: Callable[..., Any], tree: PyTree, *rest: PyTree) -> PyTree:
    """Apply ``fn`` leaf by leaf: ``fn(leaf, *matching_leaves_of_rest)``.

    ``rest`` trees must have the structure of ``tree``; dicts are matched by key. A
    mismatch raises ``ValueError`` naming the path where the trees part.
    """

    # ``path`` is a chain of (parent, key) pairs, formatted only if an error needs it.
    def walk(path: tuple, node: PyTree, others: tuple) -> PyTree:
        if isinstance(node, dict):
            for o in others:
                if not isinstance(o, dict) or o.keys() != node.keys():
                    raise _mismatch(path, node, o)
            return _rebuild(
                node, [walk((path, k), v, tuple(o[k] for o in others)) for k, v in node.items()]
            )
        if isinstance(node, (list, tuple)):
            for o in others:
                if not isinstance(o, (list, tuple)) or len(o) != len(node):
                    raise _mismatch(path, node, o)
            return _rebuild(
                node, [walk((path, i), v, tuple(o[i] for o in others)) for i, v in enumerate(node)]
            )
        return fn(node, *others)

    return walk((), tree, rest)


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
