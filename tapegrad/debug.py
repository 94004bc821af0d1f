"""NaN hunting: ``tg.debug_nans()`` makes the first non-finite record raise.

When enabled (the context manager, or ``TAPEGRAD_DEBUG_NANS=1`` in the environment), every
tape opened in the context checks each record's output as it is appended, each cotangent
as the reverse interpreter reaches it and the final cotangent of each input, and raises
:class:`FloatingPointError` naming the op, its record index and its input shapes. When
disabled it costs nothing: a tape reads the flag once, when it is opened.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tapegrad.tape import Record, Tape, _concrete, _describe

__all__ = ["debug_nans", "debug_nans_enabled"]

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tapegrad_debug_nans",
    default=os.environ.get("TAPEGRAD_DEBUG_NANS", "").strip().lower() in {"1", "true", "yes", "on"},
)


def debug_nans_enabled() -> bool:
    """Whether tapes opened now check every value for NaN and infinity."""
    return _ENABLED.get()


@contextlib.contextmanager
def debug_nans(enabled: bool = True) -> Iterator[None]:
    """Within the block, the first record whose output or cotangent is not finite raises.

    Example::

        with tg.debug_nans():
            tg.grad(loss)(params, x, y)   # FloatingPointError: tg.log (record 3, v5) ...
    """
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def _bad_counts(x: Any) -> str | None:
    v = np.asarray(_concrete(x))
    if not np.issubdtype(v.dtype, np.inexact) or np.isfinite(v).all():
        return None
    nan = int(np.isnan(v).sum())
    return f"{nan} NaN and {v.size - nan - int(np.isfinite(v).sum())} infinite of {v.size} values"


def _inputs(rec: Record) -> str:
    return ", ".join(
        (f"v{p}: " if p is not None else "const: ") + _describe(a)
        for a, p in zip(rec.args, rec.parents, strict=True)
    )


def check_finite_output(tape: Tape, rec: Record) -> None:
    """Raise if ``rec``'s output (just appended to ``tape``) holds NaN or infinity."""
    bad = _bad_counts(rec.ans)
    if bad:
        raise FloatingPointError(
            f"tg.{rec.primitive.name} (record {len(tape.records) - 1}, v{rec.out}) produced "
            f"{bad} in the forward pass; inputs {_inputs(rec)}"
        )


def check_finite_cotangent(index: int, rec: Record, g: Any) -> None:
    """Raise if the cotangent reaching record ``index`` holds NaN or infinity."""
    bad = _bad_counts(g)
    if bad:
        raise FloatingPointError(
            f"tg.{rec.primitive.name} (record {index}, v{rec.out}) received a cotangent with "
            f"{bad} in the backward pass; inputs {_inputs(rec)}"
        )


def check_finite_input_cotangent(node: int, ct: Any) -> None:
    """Raise if the cotangent left for input ``node`` at the end of the pass is not finite."""
    bad = _bad_counts(ct)
    if bad:
        raise FloatingPointError(
            f"the gradient of input v{node} holds {bad}: the cotangent reaching it from the "
            "records that use it is not finite"
        )
