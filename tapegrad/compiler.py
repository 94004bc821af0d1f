"""The compiler: a recorded tape as a straight-line Python program.

A Wengert list is already a program: one line per record, in evaluation order. This
module turns the tape that ``tg.jit`` recorded into a :class:`Program` and the program
into Python source, in a small pipeline of passes, each a function from program to
program:

1. :func:`fold_constants`: a record none of whose arguments comes from an input is
   computed now and becomes a constant. (Tracing already folds most such values: an op
   on constants is never recorded at all.)
2. :func:`eliminate_common_subexpressions`: a record that repeats an earlier one (the
   same primitive, the same arguments, the same parameters) is dropped, and its uses
   read the earlier result. The backward pass often recomputes what the forward pass
   computed (the transpose of a weight).
3. :func:`eliminate_dead_code`: records whose results no output needs are dropped (the
   forward's loss value when only the gradient is returned, masks of unused branches).
4. :func:`share_residuals`: a record whose value an earlier record's forward already
   saves for its VJP (``nll``'s softmax) is dropped, and the program takes the saved
   array. It runs last: a saver it relies on must not be dropped afterwards.
5. :func:`generate`: Python source with one local variable per value, ``del`` after each
   value's last use (so memory falls as it runs, as in the code ``torch.fx`` generates),
   and numpy's ``out=`` where an op that can write into a given array (its primitive
   says ``out``) finds a dying value of the same shape and dtype whose array no view
   shares (made and read only by ``fresh`` primitives).

The program calls each primitive's own numpy forward on the same values in the same
order as the traced call did, so its results are bit for bit those of the uncompiled
function.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from tapegrad.tape import Params, Primitive, Record, Tape

__all__ = [
    "Const",
    "Program",
    "compile_program",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "fold_constants",
    "from_tape",
    "generate",
    "share_residuals",
]


@attrs.frozen(eq=False)
class Const:
    """An output that depends on no input: returned as it is."""

    value: Any


@attrs.frozen
class Program:
    """A tape as a program: input nodes, records in order, and the outputs.

    ``outputs`` holds, per output leaf, the node that computes it or a :class:`Const`.
    ``residuals`` maps the node of a record that saves (``nll``) to the node its saved
    value stands for (see :func:`share_residuals`).
    """

    inputs: tuple[int, ...]
    records: tuple[Record, ...]
    outputs: tuple[int | Const, ...]
    residuals: Params = attrs.field(factory=Params, converter=Params)

    def __len__(self) -> int:
        return len(self.records)


def from_tape(tape: Tape, outputs: list[int | Const]) -> Program:
    """The program of ``tape``: its inputs, its records, and ``outputs``."""
    return Program(tuple(n for n, _, _ in tape.inputs), tuple(tape.records), tuple(outputs))


def _renamed(rec: Record, rename: dict[int, int], consts: dict[int, Any]) -> Record:
    """``rec`` reading renamed nodes, and folded constants as constant arguments."""
    if not any(p in rename or p in consts for p in rec.parents if p is not None):
        return rec
    args, parents = list(rec.args), list(rec.parents)
    for i, p in enumerate(parents):
        if p in consts:
            args[i], parents[i] = consts[p], None
        elif p in rename:
            parents[i] = rename[p]
    return attrs.evolve(rec, args=tuple(args), parents=tuple(parents))


def fold_constants(program: Program) -> Program:
    """Compute the records that read no input, and pass their results on as constants."""
    consts: dict[int, Any] = {}
    kept = []
    for rec in program.records:
        rec = _renamed(rec, {}, consts)
        if all(p is None for p in rec.parents):
            consts[rec.out] = rec.ans
        else:
            kept.append(rec)
    outputs = tuple(
        Const(consts[o]) if isinstance(o, int) and o in consts else o for o in program.outputs
    )
    return attrs.evolve(program, records=tuple(kept), outputs=outputs)


def _arg_key(arg: Any, parent: int | None) -> Any:
    if parent is not None:
        return ("node", parent)
    if isinstance(arg, (bool, int, float, str)) or arg is None:
        return ("value", type(arg), arg)
    return ("object", id(arg))  # the same constant array, not an equal one


def _record_key(rec: Record) -> Any:
    """A hashable key equal for records that compute the same value, or ``None``."""
    key = (
        id(rec.primitive),
        tuple(_arg_key(a, p) for a, p in zip(rec.args, rec.parents, strict=True)),
        tuple(rec.params.items()),
    )
    try:
        hash(key)
    except TypeError:  # a parameter that does not hash (a slice): never merged
        return None
    return key


def eliminate_common_subexpressions(program: Program) -> Program:
    """Drop each record that repeats an earlier one; its uses read the earlier result."""
    seen: dict[Any, int] = {}
    rename: dict[int, int] = {}
    kept = []
    for rec in program.records:
        rec = _renamed(rec, rename, {})
        key = _record_key(rec)
        if key is not None and key in seen:
            rename[rec.out] = seen[key]
            continue
        if key is not None:
            seen[key] = rec.out
        kept.append(rec)
    outputs = tuple(rename.get(o, o) if isinstance(o, int) else o for o in program.outputs)
    return attrs.evolve(program, records=tuple(kept), outputs=outputs)


def eliminate_dead_code(program: Program) -> Program:
    """Drop the records whose results no output needs."""
    live = {o for o in program.outputs if isinstance(o, int)}
    kept = []
    for rec in reversed(program.records):
        if rec.out in live:
            kept.append(rec)
            live.update(p for p in rec.parents if p is not None)
    return attrs.evolve(program, records=tuple(reversed(kept)))


def share_residuals(program: Program) -> Program:
    """Drop each record whose value an earlier record's forward saves as its residual.

    ``nll``'s forward computes the softmax of the logits for its VJP; inside a compiled
    step the rule cannot use that array (it is a value of the traced call), so it records
    ``softmax(logits, axis=1)`` again. Here that record goes, and the program takes the
    saved array from ``nll``'s line instead: the same floats (the primitive's
    ``residual`` declares them equal), computed once.
    """
    offered: list[tuple[Primitive, tuple, Params, int]] = []  # residuals not yet taken
    residuals: dict[int, int] = dict(program.residuals)
    kept = []
    for rec in program.records:
        match = next(
            (
                offer
                for offer in offered
                if offer[0] is rec.primitive and offer[1] == rec.parents and offer[2] == rec.params
            ),
            None,
        )
        if match is not None:
            offered.remove(match)
            residuals[match[3]] = rec.out
            continue
        spec = rec.primitive.residual
        if spec is not None:
            prim, positions, params = spec
            parents = tuple(rec.parents[i] for i in positions)
            if None not in parents:
                offered.append((prim, parents, params, rec.out))
        kept.append(rec)
    return attrs.evolve(program, records=tuple(kept), residuals=residuals)


PASSES: tuple[Callable[[Program], Program], ...] = (
    fold_constants,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    share_residuals,
)


# ---------------------------------------------------------------------------------------
# Code generation


def _literal(value: Any) -> str | None:
    """``value`` as Python source if it is a plain literal, else ``None``."""
    if value is None or type(value) in (bool, int, str):
        return repr(value)
    if type(value) is float and np.isfinite(value):
        return repr(value)  # repr round-trips a float exactly
    if type(value) is tuple and all(_literal(v) is not None for v in value):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return None


class _Namespace:
    """The globals of the generated function: forwards and constants, by readable names."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._ids: dict[int, str] = {}

    def name(self, value: Any, hint: str) -> str:
        if id(value) in self._ids:
            return self._ids[id(value)]
        base = hint if hint.isidentifier() and not keyword.iskeyword(hint) else "fn"
        name, k = base, 1
        while name in self.values:
            k += 1
            name = f"{base}_{k}"
        self.values[name] = value
        self._ids[id(value)] = name
        return name

    def constant(self, value: Any) -> str:
        literal = _literal(value)
        if literal is not None:
            return literal
        return self.name(value, f"c{len(self.values)}")


def _last_uses(program: Program) -> dict[int, int]:
    """For each node, the index of the last record that reads it."""
    last: dict[int, int] = {}
    for k, rec in enumerate(program.records):
        for p in rec.parents:
            if p is not None:
                last[p] = k
    return last


def _fresh(prim: Primitive) -> bool:
    """Does ``prim`` always return a new array (never a view of an argument)?"""
    return prim.fresh or isinstance(prim.forward, np.ufunc)


def _writes_out(prim: Primitive) -> bool:
    """Can ``prim`` write its result into a given array (``out=``)?"""
    return prim.out or isinstance(prim.forward, np.ufunc)


def _reusable_buffer(
    k: int, rec: Record, last: dict[int, int], outputs: set, producers: dict[int, Record], uses
) -> int | None:
    """A node whose array this record may write its result into (``out=``), or ``None``.

    The record's primitive must take ``out=``. The node must die here, not be an output
    or an input, have been made by a ``fresh`` primitive (so it owns its memory) and be
    read only by ``fresh`` primitives (so no view of it exists), and hold an array of the
    result's shape and dtype.
    """
    if not _writes_out(rec.primitive):
        return None
    ans = rec.ans
    if type(ans) is not np.ndarray or ans.ndim == 0:
        return None
    for p in rec.parents:
        made = producers.get(p)
        if (
            p is None
            or last.get(p) != k
            or p in outputs
            or made is None
            or not _fresh(made.primitive)
            or not all(_fresh(u.primitive) for u in uses[p])
        ):
            continue
        value = made.ans
        if type(value) is np.ndarray and value.shape == ans.shape and value.dtype == ans.dtype:
            return p
    return None


def generate(program: Program, name: str = "program") -> tuple[str, dict[str, Any]]:
    """Python source of ``def name(v0, v1, ...)`` computing the program, and its globals."""
    ns = _Namespace()
    last = _last_uses(program)
    outputs = {o for o in program.outputs if isinstance(o, int)}
    producers = {rec.out: rec for rec in program.records}
    for rec in program.records:  # a saved residual: made by its saver, with its value
        if rec.out in program.residuals:
            node = program.residuals[rec.out]
            producers[node] = attrs.evolve(rec, out=node, ans=rec.saved)
    uses: dict[int, list[Record]] = {}
    for rec in program.records:
        for p in rec.parents:
            if p is not None:
                uses.setdefault(p, []).append(rec)
    params = ", ".join(f"v{n}" for n in program.inputs)
    lines = [f"def {name}({params}):"]
    for k, rec in enumerate(program.records):
        fn = ns.name(rec.primitive.forward, rec.primitive.name)
        args = [
            f"v{p}" if p is not None else ns.constant(a)
            for a, p in zip(rec.args, rec.parents, strict=True)
        ]
        args += [f"{key}={ns.constant(value)}" for key, value in rec.params.items()]
        into = _reusable_buffer(k, rec, last, outputs, producers, uses)
        if into is not None:
            args.append(f"out=v{into}")
        call = f"{fn}({', '.join(args)})"
        if rec.out in program.residuals:  # the value and the residual a later op needs
            lines.append(f"    v{rec.out}, v{program.residuals[rec.out]} = {call}")
        else:
            if rec.primitive.saves:
                call += "[0]"  # the residual is for the derivative, not needed here
            lines.append(f"    v{rec.out} = {call}")
        dead = [p for p in dict.fromkeys(rec.parents) if p is not None and last.get(p) == k]
        dead = [p for p in dead if p not in outputs and p != into]
        if dead:
            lines.append(f"    del {', '.join(f'v{p}' for p in dead)}")
    results = [f"v{o}" if isinstance(o, int) else ns.constant(o.value) for o in program.outputs]
    lines.append(f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})")
    return "\n".join(lines) + "\n", ns.values


def compile_program(program: Program, name: str = "program") -> tuple[Callable[..., tuple], str]:
    """Run the passes, generate the source and compile it: ``(function, source)``.

    ``function(*inputs)`` returns a tuple with one value per output.
    """
    for apply in PASSES:
        program = apply(program)
    source, namespace = generate(program, name)
    code = compile(source, f"<tg.jit {name}>", "exec")
    exec(code, namespace)  # the source is ours: built above from the records
    return namespace[name], source
