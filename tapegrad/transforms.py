"""The transforms: ``grad``, ``value_and_grad``, ``vjp``, ``make_tape`` and ``stop_gradient``.

Each one follows the same path: open a tape, box the leaves of the differentiated
arguments as the tape's inputs, run the user's function (every primitive it applies to a
traced value appends a record), close the tape, then run the reverse interpreter from the
output and hand the input cotangents back in the structure of the arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tapegrad.debug import new_tape
from tapegrad.interpreter import backward
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.pytree import check_like, leaf_paths, tree_flatten, tree_map, tree_unflatten
from tapegrad.tape import Tape, Traced, recording

__all__ = ["grad", "make_tape", "stop_gradient", "value_and_grad", "vjp"]


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` as a constant: it passes forward, no cotangent flows back.

    Works on pytrees; strips every level of tracing by ``grad`` and its kin. Inside
    ``tg.jit`` the value stays traced by ``jit`` (so the compiled program still computes
    it from its inputs), without a derivative.
    """
    return tree_map(_strip_derivatives, x)


def _strip_derivatives(x: Any) -> Any:
    while type(x) is Traced and not x._tape.compiling:
        x = x._value
    return x


# ---------------------------------------------------------------------------------------
# Argument handling shared by the transforms


def _normalize_argnums(argnums: int | Sequence[int]) -> tuple[tuple[int, ...], bool]:
    """``(argnums as a tuple, whether a single int was given)``; rejects non-integers."""
    if isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool):
        return (int(argnums),), True
    if isinstance(argnums, (tuple, list)) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums
    ):
        if len(set(argnums)) != len(argnums):
            raise ValueError(f"argnums must not repeat an argument, got {tuple(argnums)}")
        if not argnums:
            raise ValueError("argnums must name at least one argument, got ()")
        return tuple(int(a) for a in argnums), False
    raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")


def _resolve_argnums(fun: Callable, argnums: tuple[int, ...], nargs: int) -> tuple[int, ...]:
    out = []
    for a in argnums:
        if not -nargs <= a < nargs:
            raise ValueError(
                f"argnums={a} is out of range: {_name(fun)} was called with {nargs} positional "
                f"argument{'s' if nargs != 1 else ''} (differentiate with respect to a "
                "positional argument; keyword arguments are never differentiated)"
            )
        out.append(a % nargs)
    return tuple(out)


def _name(fun: Callable) -> str:
    return getattr(fun, "__name__", type(fun).__name__)


def _arg_name(fun: Callable, k: int) -> str:
    """The name of positional parameter ``k`` of ``fun`` when it has one, else ``args[k]``."""
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    if k < len(params) and params[k].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return params[k].name
    return f"args[{k}]"


def _check_leaf(leaf: Any, fun: Callable, k: int, tree: Any, j: int, transform: str) -> Any:
    """``leaf`` as a floating-point array (or traced value); else a TypeError naming it."""
    if type(leaf) is np.ndarray and leaf.dtype.kind == "f":  # the usual case, first
        return leaf
    if type(leaf) is Traced:
        dtype = leaf.dtype
    elif isinstance(leaf, (np.ndarray, np.generic, float)) and not isinstance(leaf, bool):
        leaf = np.asarray(leaf)
        dtype = leaf.dtype
    else:
        dtype = None
    if dtype is None or dtype.kind != "f":
        path = list(leaf_paths(tree, _arg_name(fun, k)))[j]
        what = f"dtype {dtype}" if dtype is not None else f"type {type(leaf).__name__}"
        raise TypeError(
            f"{transform}: cannot differentiate with respect to {path}, which has {what}; "
            "only floating-point arrays and Python floats can be differentiated "
            "(cast it with .astype(np.float32), or pass it as an argument outside argnums)"
        )
    return leaf


def _box_args(
    tape: Tape, fun: Callable, args: tuple, argnums: tuple[int, ...], transform: str, names: bool
) -> tuple[list, list[Any]]:
    """Replace each differentiated argument by a copy of its tree with traced leaves.

    Returns the new arguments and, per differentiated argument, its traced tree (which
    :func:`_cotangent_trees` later maps to the gradient, in one walk).
    """
    new_args = list(args)
    traced_trees = []
    for k in argnums:
        tree = args[k]
        paths = list(leaf_paths(tree, _arg_name(fun, k))) if names else None
        count = 0

        def box(leaf: Any, k: int = k, tree: Any = tree, paths: list | None = paths) -> Traced:
            nonlocal count
            j, count = count, count + 1
            value = _check_leaf(leaf, fun, k, tree, j, transform)
            return tape.new_input(value, paths[j] if paths else "")

        new_args[k] = tree_map(box, tree)
        traced_trees.append(new_args[k])
    return new_args, traced_trees


def _trace(
    fun: Callable,
    args: tuple,
    kwargs: dict,
    argnums: tuple[int, ...] | None,
    transform: str,
    names: bool = False,
) -> tuple[Tape, Any, list]:
    """Run ``fun`` on a fresh tape with the leaves of ``args[argnums]`` as its inputs.

    ``argnums`` of ``None`` means every positional argument. Returns the closed tape,
    ``fun``'s output (traced where it depends on the inputs) and, per differentiated
    argument, its tree of traced inputs.
    """
    tape = new_tape()
    with recording(tape):
        which = (
            tuple(range(len(args)))
            if argnums is None
            else _resolve_argnums(fun, argnums, len(args))
        )
        new_args, inputs = _box_args(tape, fun, args, which, transform, names)
        out = fun(*new_args, **kwargs)
    return tape, out, inputs


def _split_aux(out: Any, has_aux: bool, fun: Callable) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ValueError(
            f"has_aux=True requires {_name(fun)} to return a pair (scalar output, aux), "
            f"got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        )
    return out[0], out[1]


def _check_scalar(out: Any, fun: Callable, transform: str) -> None:
    if isinstance(out, (tuple, list, dict)):
        raise ValueError(
            f"{transform} requires {_name(fun)} to return a scalar (shape ()), got a "
            f"{type(out).__name__}; if the extra items are auxiliary data, use has_aux=True"
        )
    shape = shape_of(out)
    if shape != ():
        dtype = dtype_of(out)
        raise ValueError(
            f"{transform} requires {_name(fun)} to return a scalar (shape ()), got shape "
            f"{shape} {dtype}; reduce it first (tg.sum or tg.mean), or use tg.vjp or "
            "tg.jacobian for a non-scalar output"
        )
    _check_real(out, f"{transform} requires {_name(fun)} to return a real floating-point scalar")


def _check_real(out: Any, requirement: str) -> None:
    """A ``TypeError`` stating ``requirement`` unless ``out`` has a real floating dtype: a
    bool or an integer has no derivative, and complex outputs are not differentiated."""
    dtype = np.dtype(dtype_of(out))
    if dtype.kind != "f":
        raise TypeError(
            f"{requirement}, got {dtype}: "
            + (
                "a comparison or a count has no derivative"
                if dtype.kind in "biu"
                else "complex outputs cannot be differentiated"
            )
        )


def _unbox(x: Any, tape: Tape) -> Any:
    """Strip ``tape``'s level of tracing from ``x`` (outer levels stay traced)."""
    return x._value if type(x) is Traced and x._tape is tape else x


def _input_cotangents(tape: Tape, out: Any, inputs: list) -> list:
    """Run the reverse interpreter from ``out`` and build one gradient tree per argument."""
    if type(out) is Traced and out._tape is tape:
        seed = np.array(1, dtype=out.dtype)
        cts = backward(tape, {out._node: seed}, consume=True)
    else:
        cts = {}  # the output does not depend on the arguments
    return _cotangent_trees(cts, inputs)


def _cotangent_trees(cts: dict, traced_trees: list) -> list:
    """The cotangents of the boxed inputs, as one tree per differentiated argument."""
    seen: set[int] = set()

    def finish(t: Traced) -> Any:
        """The gradient leaf for input ``t``: its own writable array of ``t``'s shape and dtype."""
        ct = cts.get(t._node)
        if type(ct) is Traced:
            return ct
        if ct is None:
            return np.zeros(t.shape, t.dtype)
        if type(ct) is not np.ndarray:
            ct = np.asarray(ct)
        flags = ct.flags
        if not (flags.owndata and flags.writeable) or id(ct) in seen:
            ct = ct.copy()  # never hand out a view, or one array as two gradients
        seen.add(id(ct))
        return ct

    return [tree_map(finish, tr) for tr in traced_trees]


# ---------------------------------------------------------------------------------------
# The public transforms


def value_and_grad(
    fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """A function computing ``fun``'s value and its gradient with respect to ``argnums``.

    Args:
        fun: a function returning a real floating-point scalar (shape ``()``; a bool or
            an integer, a comparison's or a count's, raises ``TypeError``), or
            ``(scalar, aux)`` when ``has_aux``. It must use tapegrad's ops, numpy's
            functions or Python operators on its inputs.
        argnums: which positional argument(s) to differentiate: an int, or a tuple of ints
            (then the gradient is a tuple). Each is a pytree of floating-point arrays.
        has_aux: whether ``fun`` returns ``(output, aux)``; ``aux`` comes back concrete.

    Returns:
        A function with ``fun``'s signature returning ``(value, grads)``, or
        ``((value, aux), grads)`` with ``has_aux``. Each gradient leaf is a new numpy array
        of its parameter's shape and dtype (zeros when the output does not depend on it).

    Example:
        >>> import numpy as np, tapegrad as tg
        >>> loss, g = tg.value_and_grad(lambda w: tg.sum(w ** 2))(np.array([1.0, 2.0]))
        >>> float(loss), g.tolist()
        (5.0, [2.0, 4.0])
    """
    nums, single = _normalize_argnums(argnums)

    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any) -> Any:
        tape, out, inputs = _trace(fun, args, kwargs, nums, "grad")
        out, aux = _split_aux(out, has_aux, fun)
        _check_scalar(out, fun, "grad")
        grads = _input_cotangents(tape, out, inputs)
        value = _unbox(out, tape)
        g = grads[0] if single else tuple(grads)
        if has_aux:
            return (value, tree_map(lambda a: _unbox(a, tape), aux)), g
        return value, g

    return value_and_grad_fun


def grad(
    fun: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """A function computing the gradient of scalar-valued ``fun`` with respect to ``argnums``.

    Same arguments as :func:`value_and_grad`; returns ``grads``, or ``(grads, aux)`` with
    ``has_aux``. Gradients can be differentiated again: ``grad(grad(f))`` works.

    Example:
        >>> import numpy as np, tapegrad as tg
        >>> params = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}
        >>> g = tg.grad(lambda p, x: tg.sum((x @ p["w"] + p["b"]) ** 2))(params, np.eye(2))
        >>> g["w"].tolist(), float(g["b"])
        ([3.0, -3.0], 0.0)
    """
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_fun


def make_tape(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Tape]:
    """A function that runs ``fun`` once and returns its recorded :class:`~tapegrad.tape.Tape`.

    Only what depends on the ``argnums`` arguments is recorded. ``print(tape)`` shows the
    Wengert list, one record a line; ``tape.output`` holds the result's value and
    ``tape.output_node`` its node.
    """
    nums, _ = _normalize_argnums(argnums)

    @functools.wraps(fun)
    def make_tape_fun(*args: Any, **kwargs: Any) -> Tape:
        tape, out, _ = _trace(fun, args, kwargs, nums, "make_tape", names=True)
        tape.set_output(out)
        return tape

    return make_tape_fun


def vjp(fun: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple:
    """Run ``fun(*primals)`` once and return its output with a function that pulls back cotangents.

    ``fun`` may return an array or a pytree of arrays. Returns ``(out, vjp_fn)`` (or
    ``(out, vjp_fn, aux)`` with ``has_aux``) where ``vjp_fn(cotangent)``, for a cotangent
    with the structure and shapes of ``out``, returns a tuple with one cotangent per primal,
    each in that primal's structure: ``v^T J``. ``vjp_fn`` can be called many times (the
    tape is kept), and what it computes can itself be differentiated.

    Example:
        >>> import numpy as np, tapegrad as tg
        >>> out, pullback = tg.vjp(lambda x: x * x, np.array([1.0, 3.0]))
        >>> pullback(np.array([1.0, 10.0]))[0].tolist()
        [2.0, 60.0]
    """
    tape, out, inputs = _trace(fun, primals, {}, None, "vjp")
    out, aux = _split_aux(out, has_aux, fun)
    out_leaves, out_def = tree_flatten(out)
    concrete_out = tree_unflatten(out_def, [_unbox(leaf, tape) for leaf in out_leaves])

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves = _matching_cotangents(cotangent, out_leaves, out_def, fun)
        seeds: dict[int, Any] = {}
        for leaf, ct in zip(out_leaves, ct_leaves, strict=True):
            if type(leaf) is Traced and leaf._tape is tape:
                node = leaf._node
                seeds[node] = seeds[node] + ct if node in seeds else ct
        cts = backward(tape, seeds) if seeds else {}
        return tuple(_cotangent_trees(cts, inputs))

    if has_aux:
        return concrete_out, vjp_fn, tree_map(lambda a: _unbox(a, tape), aux)
    return concrete_out, vjp_fn


def _matching_cotangents(cotangent: Any, out_leaves: list, out_def: Any, fun: Callable) -> list:
    """The leaves of ``cotangent``, checked against the output's structure and shapes.

    A Python or numpy scalar (or any array-like) becomes an array of its output leaf's
    dtype: ``pullback(1.0)`` is valid for a 0-d output.
    """
    check_like(out_def, cotangent, f"vjp: the cotangent of {_name(fun)}'s output")
    ct_leaves, _ = tree_flatten(cotangent)
    return [
        ct if type(ct) is Traced or type(ct) is np.ndarray else np.asarray(ct, dtype_of(leaf))
        for leaf, ct in zip(out_leaves, ct_leaves, strict=True)
    ]
