"""NaN hunting: ``tg.debug_nans()`` makes the first non-finite record raise.

When enabled (the context manager, or ``TAPEGRAD_DEBUG_NANS=1`` in the environment), every
tape opened in the context checks each record's output as it is appended and each
cotangent a VJP rule returns, where it is made (as PyTorch's anomaly mode names the
backward function that returned NaN), and raises :class:`FloatingPointError` naming the
op, its record index and its input shapes. When disabled it costs nothing: a tape opened
outside the block is a plain one.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from tapegrad.tape import Record, Tape, _concrete, _describe

__all__ = ["CheckedRecords", "check_vjp_output", "debug_nans", "debug_nans_enabled", "new_tape"]

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


class CheckedRecords(list):
    """A tape's record list that checks each record's output as it is appended."""

    __slots__ = ()

    def append(self, rec: Record) -> None:
        bad = _bad_counts(rec.ans)
        if bad:
            raise FloatingPointError(
                f"tg.{rec.primitive.name} (record {len(self)}, v{rec.out}) produced "
                f"{bad} in the forward pass; inputs {_inputs(rec)}"
            )
        super().append(rec)


def new_tape() -> Tape:
    """A tape for a transform starting now: one that checks every value under
    :func:`debug_nans`, a plain one otherwise."""
    if _ENABLED.get():
        return Tape(records=CheckedRecords(), debug_nans=True)
    return Tape()


def check_vjp_output(index: int, rec: Record, i: int, ct: Any) -> None:
    """Raise if the cotangent that ``rec``'s VJP rule made for input ``i`` is not finite."""
    bad = _bad_counts(ct)
    if bad:
        raise FloatingPointError(
            f"tg.{rec.primitive.name} (record {index}, v{rec.out}): its VJP rule returned "
            f"{bad} for input {i} in the backward pass; inputs {_inputs(rec)}"
        )
