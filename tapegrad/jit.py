"""``tg.jit``: record a function once, then run the recorded program instead of the Python.

A Wengert list is a straight-line program. ``jit(fun)`` traces ``fun`` the first time it
is called with a given *signature* (the structure of the arguments, the shape and dtype of
every array, the values of everything that is not an array), with every array leaf as an
input of a tape, compiles the tape (:mod:`tapegrad.compiler`) and caches the program. Later
calls with the same signature run the program and never call ``fun``.

Because VJP rules are written in tapegrad's ops, tracing a function that calls ``grad``
records the backward pass too: one program holds a whole training step, forward,
backward and the optimizer's update.

What is an input and what is fixed:

- arrays and numpy scalars: inputs, keyed by shape and dtype;
- Python floats: inputs, passed as Python floats, so numpy's promotion rules stay (a
  float32 model stays float32 when the learning rate is a Python float);
- Python ints, bools, strings, ``None``: part of the signature (a new value compiles a
  new program), as are the arguments named by ``static_argnums``/``static_argnames``,
  which must be hashable.

Under another transform (``grad(jit(f))``) a jitted function just calls ``fun``.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from tapegrad.compiler import Const, compile_program, from_tape
from tapegrad.pytree import leaf_paths, tree_flatten, tree_map, tree_unflatten
from tapegrad.tape import Tape, Traced, recording

__all__ = ["Compiled", "jit"]

#: A jitted function warns when it has compiled this many programs (and at each doubling).
RECOMPILE_WARNING = 8


@attrs.frozen
class Compiled:
    """One compiled program of a jitted function.

    ``source`` is the generated Python (print it); ``records`` counts the traced records
    and ``lines`` the operations left after the compiler's passes. ``function`` runs the
    program on the input arrays and returns a tuple, ``unflatten`` builds the function's
    output tree from it, and ``guard`` (for calls without keyword or static arguments)
    returns a call's input arrays when its arguments have this program's signature, else
    ``None``.
    """

    function: Callable[..., tuple] = attrs.field(repr=False)
    source: str = attrs.field(repr=False)
    outputs: Any = attrs.field(repr=False)  # the output's structure, leaves None
    unflatten: Callable[[tuple], Any] = attrs.field(repr=False)  # function's tuple -> tree
    guard: Callable[[tuple], list | None] | None = attrs.field(repr=False)  # see _guard
    records: int
    lines: int

    def __str__(self) -> str:
        return self.source


class _Bypass(Exception):
    """An argument is traced by an outer transform: call the function itself."""


def _leaf_key(leaf: Any) -> tuple:
    """How a leaf enters the signature: ``(shape, dtype)`` for an array or numpy scalar,
    ``("float",)`` for a Python float (both inputs), ``("static", type, value)`` otherwise."""
    kind = type(leaf)
    if kind is np.ndarray or isinstance(leaf, np.generic):
        # a numpy scalar and a 0-d array are one signature: numpy treats them alike, and
        # an op on 0-d arrays returns a numpy scalar (so a step's output feeds the next)
        return (leaf.shape, leaf.dtype)
    if kind is float:
        return ("float",)
    if kind is Traced:
        raise _Bypass
    try:
        hash(leaf)
    except TypeError:
        raise TypeError(
            f"tg.jit: an argument leaf of type {kind.__name__} is neither an array nor "
            "hashable; pass arrays, numbers, strings or None (or mark it static)"
        ) from None
    return ("static", kind, leaf)


def _signature(node: Any, inputs: list) -> Any:
    """A hashable description of ``node``: its containers and each leaf's :func:`_leaf_key`.

    The input leaves are appended to ``inputs`` in the order :func:`tree_flatten` gives.
    This runs on every call of a jitted function, so the common types come first and an
    array held by a dict, list or tuple is handled without a call of its own.
    """
    kind = type(node)
    if kind is np.ndarray:
        inputs.append(node)
        return (node.shape, node.dtype)
    if kind is dict or kind is list or kind is tuple:
        parts = []
        for value in node.values() if kind is dict else node:
            if type(value) is np.ndarray:
                inputs.append(value)
                parts.append((value.shape, value.dtype))
            else:
                parts.append(_signature(value, inputs))
        return (kind, tuple(node), tuple(parts)) if kind is dict else (kind, tuple(parts))
    if isinstance(node, dict):
        return (kind, tuple(node), tuple([_signature(v, inputs) for v in node.values()]))
    if isinstance(node, (list, tuple)):
        return (kind, tuple([_signature(v, inputs) for v in node]))
    key = _leaf_key(node)
    if key[0] != "static":
        inputs.append(node)
    return key


class Jitted:
    """The function :func:`jit` returns: ``fun``'s signature, a cache of programs."""

    def __init__(
        self, fun: Callable[..., Any], static_argnums: Sequence[int], static_argnames: Sequence[str]
    ) -> None:
        self.fun = fun
        self.static_argnums = tuple(static_argnums)
        self.static_argnames = tuple(static_argnames)
        self._cache: dict[Any, Compiled] = {}
        self._last: Compiled | None = None  # the program the last call ran: tried first
        self._lock = threading.Lock()
        functools.update_wrapper(self, fun)

    @property
    def compiled(self) -> int:
        """How many programs this function has compiled (one per signature seen)."""
        return len(self._cache)

    def _split(self, args: tuple, kwargs: dict) -> tuple[Any, list, Any]:
        """``(key, inputs, dynamic)``: the signature, the input leaves, the dynamic tree."""
        inputs: list = []
        if not kwargs and not self.static_argnums:  # the common call: positional arrays
            return (_signature(args, inputs),), inputs, args
        nargs = len(args)
        static_pos = {k % nargs for k in self.static_argnums if -nargs <= k < nargs}
        static = tuple((k, args[k]) for k in sorted(static_pos))
        static += tuple((k, kwargs[k]) for k in sorted(kwargs) if k in self.static_argnames)
        try:
            hash(static)
        except TypeError as e:
            raise TypeError(f"tg.jit: static arguments must be hashable ({e})") from None
        dynamic = (
            [a for k, a in enumerate(args) if k not in static_pos] if static_pos else list(args),
            {k: v for k, v in sorted(kwargs.items()) if k not in self.static_argnames},
        )
        return (nargs, static, _signature(dynamic, inputs)), inputs, dynamic

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        last = self._last
        if last is not None and not kwargs:  # a training loop's calls: one signature
            inputs = last.guard(args)
            if inputs is not None:
                return last.unflatten(last.function(*inputs))
        try:
            key, inputs, _ = self._split(args, kwargs)
        except _Bypass:
            return self.fun(*args, **kwargs)
        compiled = self._cache.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._cache.get(key)
                if compiled is None:
                    compiled, result = self._compile(key, args, kwargs)
                    return result  # the traced call's own values: no second run
        if compiled.guard is not None:
            self._last = compiled
        return compiled.unflatten(compiled.function(*inputs))

    def lower(self, *args: Any, **kwargs: Any) -> Compiled:
        """The program for these arguments (compiled now if it was not): ``print`` it."""
        key, _, _ = self._split(args, kwargs)
        with self._lock:
            if key not in self._cache:
                self._compile(key, args, kwargs)
            return self._cache[key]

    def _compile(self, key: Any, args: tuple, kwargs: dict) -> tuple[Compiled, Any]:
        nargs = len(args)
        static_pos = {k % nargs for k in self.static_argnums if -nargs <= k < nargs}
        tape = Tape(compiling=True)
        with recording(tape):

            def box(leaf: Any, path: str) -> Any:
                if _leaf_key(leaf)[0] == "static":
                    return leaf
                return tape.new_input(leaf, path)

            new_args = [
                a if k in static_pos else _box_tree(box, a, f"args[{k}]")
                for k, a in enumerate(args)
            ]
            new_kwargs = {  # in the order _split flattens them
                k: kwargs[k] if k in self.static_argnames else _box_tree(box, kwargs[k], k)
                for k in sorted(kwargs)
            }
            out = self.fun(*new_args, **new_kwargs)
        leaves, _ = tree_flatten(out)
        outputs, values = [], []
        for leaf in leaves:
            if type(leaf) is Traced:
                if leaf._tape is not tape:
                    raise RuntimeError(
                        f"tg.jit: {_name(self.fun)} returned a value traced by a transform "
                        "inside it; return concrete results from inner transforms"
                    )
                outputs.append(leaf._node)
                values.append(leaf._value)
            else:
                outputs.append(Const(leaf))
                values.append(leaf)
        function, source = compile_program(from_tape(tape, outputs), _name(self.fun))
        skeleton = tree_map(lambda _: None, out)
        compiled = Compiled(
            function,
            source,
            skeleton,
            _unflattener(skeleton),
            None if kwargs or self.static_argnums else _guard(args),
            len(tape.records),
            source.count("\n    v"),
        )
        self._cache[key] = compiled
        if len(self._cache) >= RECOMPILE_WARNING and _is_power_of_two(
            len(self._cache) // RECOMPILE_WARNING
        ):
            warnings.warn(
                f"tg.jit: {_name(self.fun)} has been compiled for {len(self._cache)} "
                "different argument signatures (shapes, dtypes, or values of non-array "
                "arguments); each new one traces and compiles again. Keep shapes fixed "
                "(pad the last batch) and pass changing numbers as arrays or floats.",
                RuntimeWarning,
                stacklevel=3,
            )
        return compiled, tree_unflatten(skeleton, values)


def _unflattener(skeleton: Any) -> Callable[[tuple], Any]:
    """``tree_unflatten(skeleton, list(r))`` as one generated expression (no recursion per
    call): containers are rebuilt as :func:`tapegrad.pytree.tree_unflatten` rebuilds them."""
    names: dict[str, Any] = {}
    leaves = iter(range(1 << 62))

    def ref(value: Any) -> str:
        name = f"_{len(names)}"
        names[name] = value
        return name

    def expr(node: Any) -> str:
        kind = type(node)
        if isinstance(node, dict):
            keys = ref(tuple(node))
            items = ", ".join(f"{keys}[{k}]: {expr(v)}" for k, v in enumerate(node.values()))
            return f"{{{items}}}" if kind is dict else f"{ref(kind)}({{{items}}})"
        if isinstance(node, (list, tuple)):
            items = "".join(f"{expr(v)}, " for v in node)
            if kind is list:
                return f"[{items}]"
            if kind is tuple:
                return f"({items})"
            if hasattr(node, "_fields"):  # a named tuple
                return f"{ref(kind)}({items})"
            return f"{ref(kind)}([{items}])"
        return f"r[{next(leaves)}]"

    source = f"def unflatten(r):\n    return {expr(skeleton)}\n"
    exec(compile(source, "<tg.jit outputs>", "exec"), names)  # the source is ours, built above
    return names["unflatten"]


def _guard(args: tuple) -> Callable[[tuple], list | None]:
    """A function that gives the input leaves of a call whose signature is that of
    ``args`` (positional arguments only), or ``None`` for any other call.

    It checks what :func:`_signature` describes (each container's type, length and keys,
    each array's shape and dtype, each static leaf's type and value) in one generated
    block of straight-line code, so that a call with an already compiled signature
    costs a few attribute reads per leaf rather than building and hashing a key.
    """
    names: dict[str, Any] = {"ndarray": np.ndarray, "generic": np.generic}
    lines = ["def guard(args):", f"    if len(args) != {len(args)}: return None"]
    leaves: list[str] = []

    def ref(value: Any) -> str:
        name = f"_{len(names)}"
        names[name] = value
        return name

    def check(condition: str) -> None:
        lines.append(f"    if {condition}: return None")

    def visit(node: Any, at: str) -> None:
        kind = type(node)
        if isinstance(node, dict):
            check(f"type({at}) is not {ref(kind)} or tuple({at}) != {ref(tuple(node))}")
            children = [(f"{at}[{ref(k)}]", v) for k, v in node.items()]
        elif isinstance(node, (list, tuple)):
            check(f"type({at}) is not {ref(kind)} or len({at}) != {len(node)}")
            children = [(f"{at}[{k}]", v) for k, v in enumerate(node)]
        else:
            key = _leaf_key(node)
            if key[0] == "static":
                check(f"type({at}) is not {ref(key[1])} or {at} != {ref(key[2])}")
                return
            if key[0] == "float":
                check(f"type({at}) is not float")
            else:
                check(
                    f"(type({at}) is not ndarray and not isinstance({at}, generic)) "
                    f"or {at}.shape != {key[0]!r} or {at}.dtype != {ref(key[1])}"
                )
            leaves.append(at)
            return
        for k, (expr, child) in enumerate(children):
            name = f"{at}_{k}"
            lines.append(f"    {name} = {expr}")
            visit(child, name)

    for k, arg in enumerate(args):
        lines.append(f"    a{k} = args[{k}]")
        visit(arg, f"a{k}")
    lines.append(f"    return [{', '.join(leaves)}]")
    exec(compile("\n".join(lines) + "\n", "<tg.jit guard>", "exec"), names)
    return names["guard"]


def _box_tree(box: Callable[[Any, str], Any], tree: Any, root: str) -> Any:
    paths = iter(leaf_paths(tree, root))
    return tree_map(lambda leaf: box(leaf, next(paths)), tree)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _name(fun: Callable) -> str:
    name = getattr(fun, "__name__", "program")
    return name if name.isidentifier() and name != "<lambda>" else "program"


def jit(
    fun: Callable[..., Any],
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
) -> Jitted:
    """Compile ``fun`` into a straight-line program per argument signature.

    Args:
        fun: a pure function of pytrees of arrays (it may call ``grad``, optimizers, ...).
            It must not turn traced values into Python objects (``if x > 0``,
            ``float(loss)``): inside ``jit`` that raises, naming the value's op.
        static_argnums: positional arguments that are part of the signature instead of
            inputs (hashable; a new value compiles a new program).
        static_argnames: the same, for keyword arguments.

    Returns:
        A function with ``fun``'s signature returning ``fun``'s results (bit for bit),
        with ``.lower(*args)`` (the :class:`Compiled` program; ``print`` it) and
        ``.compiled`` (how many programs it holds).

    Example:
        >>> import numpy as np, tapegrad as tg
        >>> step = tg.jit(lambda w, x: w - 0.1 * tg.grad(lambda v: tg.sum((x @ v) ** 2))(w))
        >>> step(np.ones(2), np.eye(2)).tolist()
        [0.8, 0.8]
        >>> step.compiled
        1
    """
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    return Jitted(fun, static_argnums, static_argnames)
