"""Traced values, the records a primitive appends, the tape that holds them, and ``bind``.

This module is the forward half of tapegrad, read top to bottom:

1. A :class:`Tape` is a Wengert list: an ordered list of :class:`Record` objects, one per
   primitive call that depended on the differentiated argument. Each transform
   (``grad``, ``vjp``, ``make_tape``) opens a fresh tape and pushes it onto the *tape stack*
   of the current context (a :class:`contextvars.ContextVar`), so nested transforms,
   threads and asyncio tasks never see each other's records.
2. A :class:`Traced` value is a numpy value boxed with the tape it belongs to and its node
   number on that tape (``v7`` when printed). It has no backward method and no ``.grad``.
3. :func:`bind` runs one primitive. With no traced argument it is the plain numpy call.
   Otherwise it unboxes the arguments that belong to the innermost tape, computes the
   result (recursively, so values traced by an *outer* tape are recorded there too), appends
   one immutable :class:`Record` and returns the boxed result.

Nesting works by levels: every tape gets an increasing id, the innermost tape of a
``grad(grad(f))`` has the larger one, and a value boxed by both is a ``Traced`` whose
value is itself a ``Traced``. Recording at the innermost level first keeps the two
derivatives apart (no perturbation confusion).

Which tape a record goes to: ``bind`` reads it off the traced arguments rather than off
the stack. The two agree, since a traced value is only made by the transform whose tape
is on top of its context's stack while the value is alive; reading the argument saves a
context-variable lookup per op and makes an op on constants cost nothing even inside a
transform. A value used after its transform returned finds its tape retired
(``live`` is false) and raises an error that says so.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np

__all__ = [
    "NO_PARAMS",
    "Params",
    "Primitive",
    "Record",
    "Tape",
    "Traced",
    "active_tapes",
    "bind",
    "current_tape",
]


@attrs.frozen(eq=False, repr=False)
class Primitive:
    """One entry of the primitive table.

    ``forward(*args, **params)`` computes the numpy result; ``vjp(i, g, ans, *args,
    **params)`` returns the cotangent of argument ``i`` given the output cotangent ``g``,
    the output value ``ans`` and the inputs. VJP rules are written with tapegrad's own ops,
    so they are themselves traced when the cotangent or the residuals are. A rule may return
    ``None`` for an argument that has no derivative (a boolean condition, say). It never
    undoes broadcasting or casts: the interpreter does both, in one place.

    With ``saves=True`` the forward returns ``(ans, saved)``: an intermediate result the
    VJP would otherwise recompute (``nll`` keeps its softmax). ``saved`` is stored on the
    record and handed to the rule as the keyword ``saved``; it is ``None`` when the inputs
    were traced by an outer transform, and the rule must then recompute it with tapegrad's
    ops so that the derivative of the derivative stays right.

    ``residual``, for a primitive that saves, says what the saved value is, as
    ``(primitive, argument positions, params)``: bit for bit, that primitive's forward on
    those of this record's arguments (``nll`` saves ``softmax(logits, axis=1)``). A
    compiled program then takes a later record computing that value from the saver.

    Two facts about the forward let the compiler reuse memory (a numpy ufunc has both):
    ``fresh``, its results are arrays it allocated, never views of an argument; and
    ``out``, it accepts ``out=``, an array of the result's shape and dtype, possibly one
    of its own arguments, to write the result into, giving the same floats.
    """

    name: str
    forward: Callable[..., Any]
    vjp: Callable[..., Any]
    saves: bool = False
    residual: tuple[Primitive, tuple[int, ...], Params] | None = None
    fresh: bool = False
    out: bool = False

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


class Params(dict):
    """A record's keyword parameters: a read-only ``dict`` (``axis``, ``shape``, ...).

    Assigning, deleting or updating raises :class:`TypeError`, so a record read off a tape
    cannot be changed and no two records share a mutable default. The values are
    immutable too: ints, tuples, dtypes, slices, ``None``. It stays a ``dict`` subclass
    so that ``forward(*args, **params)`` costs what a plain dict costs.
    """

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a record's params are read-only; build a new record instead")

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only  # type: ignore[assignment]


NO_PARAMS = Params()


@attrs.frozen(eq=False, repr=False)
class Record:
    """One line of the Wengert list: ``v{out} = {primitive}(args...)``.

    Attributes:
        primitive: the :class:`Primitive` that ran.
        args: the inputs as the primitive saw them (numpy values; values traced by an outer
            tape stay boxed). They are the residuals of the VJP.
        params: keyword parameters (``axis``, ``shape``, ...), never differentiated: a
            read-only :class:`Params` mapping of immutable values.
        parents: for each input, its node number on this tape, or ``None`` for a constant.
        out: the node number of the output.
        ans: the output value (also a residual: ``exp``'s VJP is ``g * ans``).
        saved: what a ``saves=True`` primitive's forward kept for its VJP, else ``None``.
    """

    primitive: Primitive
    args: tuple
    params: Params
    parents: tuple
    out: int
    ans: Any
    saved: Any = None

    def __repr__(self) -> str:
        return _format_record(self)


class Traced:
    """A value that depends on the differentiated argument of the enclosing transform.

    Behaves like a read-only numpy array under tapegrad's ops, Python's operators and
    numpy's functions. Comparisons give traced boolean arrays (recorded, no derivative),
    which convert to numpy values. A floating-point value cannot be turned into a numpy
    array or a Python number (that would silently drop its derivative): use
    ``tg.stop_gradient`` for that. Inside ``tg.jit`` no traced value converts at all.
    """

    __slots__ = ("_node", "_tape", "_value")
    __array_priority__ = 1000.0

    def __init__(self, value: Any, tape: Tape, node: int) -> None:
        self._value = value
        self._tape = tape
        self._node = node

    # numpy-like metadata; the value may itself be Traced (nested transforms)
    @property
    def shape(self) -> tuple[int, ...]:
        try:
            return self._value.shape  # an array, a numpy scalar or a traced value
        except AttributeError:
            return np.shape(self._value)

    @property
    def dtype(self) -> np.dtype:
        v = self._value
        return v.dtype if hasattr(v, "dtype") else np.result_type(v)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d traced value")
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"Traced(v{self._node}, shape={self.shape}, dtype={self.dtype}, "
            f"tape={self._tape.id}, value={_concrete(self)!r})"
        )

    def _differentiable(self) -> bool:
        return _kind(self._value) == "f"

    def _concrete_for(self, conversion: str) -> Any:
        """The value underneath, for ``conversion`` (``bool()``, ``np.asarray``, ...).

        Inside ``tg.jit`` no conversion is allowed: the value would be frozen into the
        compiled program. Elsewhere only a value without a derivative (a mask, an index)
        converts; a float would silently lose its derivative.
        """
        compiling = _compiling_tape(self)
        if compiling is not None:
            raise TypeError(
                f"{conversion} of a traced value inside tg.jit (v{self._node}, shape "
                f"{self.shape}, {self.dtype}, made by {_made_by(self)}): the compiled "
                "program would keep the value of this one call. Compute with ops instead "
                "(tg.where(condition, a, b) for an if on values), pass what decides the "
                "branch as a static argument (static_argnums), or return the value and "
                "convert it outside the jitted function."
            )
        if conversion != "bool()" and self._differentiable():
            raise TypeError(
                f"{conversion} of a traced value (v{self._node}, shape {self.shape}, "
                f"{self.dtype}) would drop its derivative. Use tapegrad's ops (tg.exp, "
                "tg.sum, ...) on it; to build an array from a list holding traced values, "
                "use tapegrad.numpy.array([...]) or tg.stack([...]); return a value "
                "through has_aux=True, or call tg.stop_gradient(x) for a constant."
            )
        return _concrete(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self._concrete_for("np.asarray()"), dtype=dtype)

    def __float__(self) -> float:
        return float(self._concrete_for("float()"))

    def __int__(self) -> int:
        return int(self._concrete_for("int()"))

    def __complex__(self) -> complex:
        return complex(self._concrete_for("complex()"))

    def __index__(self) -> int:
        if _kind(self._value) not in "iu":
            raise TypeError(f"only integer traced values can be used as an index, not {self.dtype}")
        return int(self._concrete_for("an index"))

    def __bool__(self) -> bool:
        # Inside grad an if on a traced value works, as on its numpy value; not inside jit.
        return bool(self._concrete_for("bool()"))

    def __setitem__(self, index: Any, value: Any) -> None:
        raise TypeError(
            f"traced values are immutable (v{self._node}, shape {self.shape}): build a new "
            "value instead, e.g. tg.where(mask, new, x) or tg.concatenate([...])"
        )

    # Operators and methods are attached by tapegrad.ops, which holds the primitives.


def _compiling_tape(x: Any) -> Tape | None:
    """The tape of ``tg.jit`` among the levels that box ``x``, if any."""
    while type(x) is Traced:
        if x._tape.compiling:
            return x._tape
        x = x._value
    return None


def _made_by(x: Traced) -> str:
    """``tg.<op> (record k)`` for the record that made ``x`` on its tape, or ``an input``."""
    for k, rec in enumerate(x._tape.records):
        if rec.out == x._node:
            return f"tg.{rec.primitive.name} (record {k})"
    return "an input"


def _concrete(x: Any) -> Any:
    """Strip every level of boxing: the plain numpy value underneath."""
    while type(x) is Traced:
        x = x._value
    return x


class Tape:
    """The Wengert list of one transform call: its inputs and its records, in order.

    ``len(tape)`` is the number of records, iterating gives them, and ``str(tape)`` prints
    one record a line: ``v7 = matmul(v3, v5)   # (128, 100) float32``.

    The tape holds no :class:`Traced` value (inputs are kept as ``(node, value, name)``
    and the output as ``output_node``), so no reference cycle runs through it: a tape is
    freed the moment its transform returns.
    """

    __slots__ = (
        "__weakref__",
        "_count",
        "compiling",
        "debug_nans",
        "id",
        "inputs",
        "live",
        "nondiff",
        "output",
        "output_node",
        "records",
    )

    _ids = itertools.count(1)

    def __init__(
        self, records: list | None = None, debug_nans: bool = False, compiling: bool = False
    ) -> None:
        self.id = next(Tape._ids)
        # A list subclass may watch what is appended (tapegrad.debug checks each record).
        self.records: list[Record] = [] if records is None else records
        self.inputs: list[tuple[int, Any, str]] = []
        # Nodes whose values are not floating point (comparisons, integer casts, argmax):
        # recorded so that a replay computes them, but no cotangent ever flows into them.
        self.nondiff: set[int] = set()
        self.output: Any = None
        self.output_node: int | None = None
        self.live = True
        self.debug_nans = debug_nans
        # The tape of tg.jit: no value traced on it may be turned into a Python object.
        self.compiling = compiling
        self._count = 0

    def new_input(self, value: Any, name: str = "") -> Traced:
        """Box ``value`` as an input of this tape (a leaf of the differentiated argument)."""
        node = self._count
        self._count = node + 1
        self.inputs.append((node, value, name))
        if _kind(value) != "f":
            self.nondiff.add(node)
        return Traced(value, self, node)

    def set_output(self, out: Any) -> None:
        """Remember the result of the traced function (its value, and its node if traced)."""
        if type(out) is Traced and out._tape is self:
            self.output_node = out._node
            out = out._value
        self.output = out

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def __repr__(self) -> str:
        return f"<Tape {self.id}: {len(self.inputs)} inputs, {len(self.records)} records>"

    def __str__(self) -> str:
        lines = []
        for node, value, name in self.inputs:
            label = f"   # {_describe(value)}" + (f"  {name}" if name else "")
            lines.append(f"v{node} = input{label}")
        lines.extend(_format_record(r) for r in self.records)
        if self.output_node is not None:
            lines.append(f"return v{self.output_node}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """The tape as a Graphviz ``digraph`` (inputs as boxes, one node per record)."""
        out = ["digraph tape {", "  rankdir=TB;", '  node [fontname="Helvetica"];']
        for node, value, name in self.inputs:
            label = f"v{node} {name}\\n{_describe(value)}".replace('"', "'")
            out.append(f'  v{node} [shape=box, label="{label}"];')
        for r in self.records:
            label = f"v{r.out} = {r.primitive.name}\\n{_describe(r.ans)}"
            out.append(f'  v{r.out} [shape=ellipse, label="{label}"];')
            for p in r.parents:
                if p is not None:
                    out.append(f"  v{p} -> v{r.out};")
        out.append("}")
        return "\n".join(out)


def _describe(x: Any) -> str:
    x = _concrete(x)
    if isinstance(x, (np.ndarray, np.generic)):
        return f"{tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def _format_arg(a: Any, parent: int | None) -> str:
    if parent is not None:
        return f"v{parent}"
    a = _concrete(a)
    if isinstance(a, np.ndarray) and a.ndim > 0:
        return f"const{tuple(a.shape)}"
    return repr(a.item() if isinstance(a, (np.ndarray, np.generic)) else a)


def _format_param(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array{tuple(v.shape)}"
    if isinstance(v, tuple) and any(isinstance(e, np.ndarray) for e in v):
        return "(" + ", ".join(_format_param(e) for e in v) + ")"
    return repr(v)


def _format_record(r: Record) -> str:
    parts = [_format_arg(a, p) for a, p in zip(r.args, r.parents, strict=True)]
    parts += [f"{k}={_format_param(v)}" for k, v in r.params.items()]
    return f"v{r.out} = {r.primitive.name}({', '.join(parts)})   # {_describe(r.ans)}"


# attrs' generated __init__ for a frozen class goes through object.__setattr__ once per
# field, about 1 us for six fields. Writing each slot through its descriptor is the same
# assignment without the detour, and a record is made for every traced op.
(
    _set_primitive,
    _set_args,
    _set_params,
    _set_parents,
    _set_out,
    _set_ans,
    _set_saved,
) = (Record.__dict__[f.name].__set__ for f in attrs.fields(Record))


_object_new = object.__new__


# ---------------------------------------------------------------------------------------
# The tape stack of the current context.

_STACK: contextvars.ContextVar[tuple[Tape, ...]] = contextvars.ContextVar(
    "tapegrad_tape_stack", default=()
)


def active_tapes() -> tuple[Tape, ...]:
    """The tapes of the transforms running in this context, outermost first."""
    return _STACK.get()


def current_tape() -> Tape | None:
    """The innermost active tape of this context, or ``None`` outside any transform."""
    stack = _STACK.get()
    return stack[-1] if stack else None


class recording:
    """Context manager: push ``tape`` for the duration, pop it (and retire it) after.

    The tape is popped and marked dead even when the body raises, so a traced value that
    escapes the transform is recognised the next time it is used.
    """

    __slots__ = ("tape", "token")

    def __init__(self, tape: Tape) -> None:
        self.tape = tape

    def __enter__(self) -> Tape:
        self.token = _STACK.set((*_STACK.get(), self.tape))
        return self.tape

    def __exit__(self, *exc: object) -> None:
        _STACK.reset(self.token)
        self.tape.live = False


# ---------------------------------------------------------------------------------------
# bind: run one primitive, recording it when an argument is traced.


def _kind(value: Any) -> str:
    """numpy's dtype kind of ``value``: ``"f"`` for floats, ``"b"``, ``"i"``, ``"c"``, ..."""
    try:
        return value.dtype.kind
    except AttributeError:
        return np.result_type(value).kind


def bind(prim: Primitive, args: tuple, params: dict = NO_PARAMS) -> Any:
    """Apply ``prim`` to ``args``; record it on the innermost tape among the arguments.

    ``params`` are keyword parameters, passed to the forward and kept on the record as a
    read-only :class:`Params`. A result that is not floating point (a comparison, an
    integer cast) is recorded too, as a node no cotangent flows into; a complex result
    of a traced input raises, since complex derivatives are not supported.
    """
    top = None
    for a in args:
        if type(a) is Traced and (top is None or a._tape.id > top.id):
            top = a._tape
    if top is None:
        try:
            ans = prim.forward(*args, **params)
        except (ValueError, TypeError, IndexError) as e:
            _reraise(prim, args, params, e)
        return ans[0] if prim.saves else ans
    if not top.live:
        raise _escaped_error(prim, top)

    if len(args) == 1:  # unary ops, half of all calls: skip the general loop
        (a,) = args
        v = a._value
        raw = (v,)
        parents = (a._node,)
        nested = type(v) is Traced
    else:
        raw = []
        parents = []
        nested = False
        for a in args:
            if type(a) is Traced and a._tape is top:
                v = a._value
                raw.append(v)
                parents.append(a._node)
                nested = nested or type(v) is Traced
            else:
                raw.append(a)
                parents.append(None)
                nested = nested or type(a) is Traced
        raw = tuple(raw)
        parents = tuple(parents)
    if type(params) is not Params:
        params = Params(params)
    saved = None
    if nested:
        ans = bind(prim, raw, params)
    else:
        try:
            ans = prim.forward(*raw, **params)
        except (ValueError, TypeError, IndexError) as e:
            _reraise(prim, raw, params, e)
        if prim.saves:
            ans, saved = ans
    node = top._count
    top._count = node + 1
    try:  # _kind(ans), inlined: this runs for every recorded op
        kind = ans.dtype.kind
    except AttributeError:
        kind = np.result_type(ans).kind
    if kind != "f":
        if kind == "c":
            raise _complex_error(prim, raw)
        top.nondiff.add(node)
    # The record, built slot by slot through its descriptors (see above): every op does it.
    rec = _object_new(Record)
    _set_primitive(rec, prim)
    _set_args(rec, raw)
    _set_params(rec, params)
    _set_parents(rec, parents)
    _set_out(rec, node)
    _set_ans(rec, ans)
    _set_saved(rec, saved)
    top.records.append(rec)
    return Traced(ans, top, node)


def _shape_str(a: Any) -> str:
    a = _concrete(a)
    if isinstance(a, (np.ndarray, np.generic)):
        return f"{tuple(a.shape)} {a.dtype}"
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(_shape_str(e) for e in a) + "]"
    return type(a).__name__


def _reraise(prim: Primitive, args: tuple, params: dict, e: Exception) -> None:
    """Re-raise a forward's error so that it names the op, the shapes and the parameters."""
    if str(e).startswith("tg."):  # the primitive's own check already said it
        raise e
    shapes = ", ".join(_shape_str(a) for a in args)
    extra = "".join(f", {k}={_format_param(v)}" for k, v in params.items())
    message = f"tg.{prim.name}: {e} (inputs: {shapes}{extra})"
    try:
        err = type(e)(message)
    except Exception:  # a numpy subclass with its own constructor: keep the builtin kind
        kind = next(k for k in (ValueError, TypeError, IndexError) if isinstance(e, k))
        err = kind(message)
    raise err from e


def _complex_error(prim: Primitive, args: tuple) -> TypeError:
    shapes = ", ".join(_shape_str(a) for a in args)
    return TypeError(
        f"tg.{prim.name} gave a complex result on a traced input (inputs: {shapes}): complex "
        "values are not supported by tapegrad's derivatives yet; keep the computation real "
        "(for |z|, write sqrt(re**2 + im**2) with real arrays)"
    )


def _escaped_error(prim: Primitive, tape: Tape) -> Exception:
    return RuntimeError(
        f"tg.{prim.name} was given a traced value that escaped its transform: it belongs to "
        f"tape {tape.id}, whose grad/vjp call has already returned. Traced values only live "
        "inside the function being differentiated; return concrete results with has_aux=True "
        "(or tg.stop_gradient) instead of keeping traced values in globals or closures."
    )
