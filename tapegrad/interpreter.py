"""The reverse interpreter: one loop from a tape and an output cotangent to input cotangents.

It walks the Wengert list from the last record to the first. For each record whose output
received a cotangent ``g`` it asks the primitive's VJP rule for the cotangent of every
*traced* input (constants are skipped: no cotangent is ever computed for data or labels),
fits it to the input (undoing broadcasting, restoring the dtype: the one place both
happen) and adds it into that input's entry of a dictionary keyed by node number. There is
no graph, no topological sort and no recursion: the tape is already in evaluation order.

Indexing's VJP hands back a sparse :class:`~tapegrad.ops.IndexedCotangent`, added in place
into the accumulated entry (``np.add.at``), so gathering rows in a loop never builds a
dense zero array per gather.

Memory falls as the loop runs: each cotangent is popped when its record is processed, and
with ``consume=True`` each record (and so its residuals) is dropped once used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tapegrad.ops import IndexedCotangent, add, cast, unbroadcast
from tapegrad.tape import Tape, Traced

__all__ = ["backward"]


def backward(tape: Tape, seeds: dict[int, Any], consume: bool = False) -> dict[int, Any]:
    """Propagate cotangents from ``seeds`` (node -> cotangent) to the start of ``tape``.

    Returns the cotangents left in the dictionary at the end: those of the tape's inputs
    (and of any node no record consumed). With ``consume=True`` the tape is emptied as it
    is read, so a large forward pass's residuals are freed during the backward pass.
    """
    cts = dict(seeds)
    owned: set[int] = set()  # entries holding an array this loop made, safe to add into
    records = tape.records
    debug = tape.debug_nans
    for index in range(len(records) - 1, -1, -1):
        rec = records.pop() if consume else records[index]
        g = cts.pop(rec.out, None)
        if g is None:
            continue
        if type(g) is IndexedCotangent:
            g = g.dense()
        if debug:
            from tapegrad.debug import check_finite_cotangent

            check_finite_cotangent(index, rec, g)
        vjp = rec.primitive.vjp
        args, ans, params = rec.args, rec.ans, rec.params
        if rec.saved is not None:
            params = {**params, "saved": rec.saved}
        for i, parent in enumerate(rec.parents):
            if parent is None:
                continue
            ct = vjp(i, g, ans, *args, **params)
            if ct is None:
                continue
            x = args[i]
            if ct.shape != x.shape or (ct.dtype is not x.dtype and ct.dtype != x.dtype):
                ct = _fit(ct, x)
            prev = cts.get(parent)
            if prev is None:
                cts[parent] = ct
                continue
            if type(prev) is IndexedCotangent:
                prev = cts[parent] = prev.dense()
                owned.add(parent)
            if parent in owned and type(ct) is not Traced:
                if type(ct) is IndexedCotangent:
                    ct.add_into(prev)
                else:
                    np.add(prev, ct, out=prev)
            else:
                if type(ct) is IndexedCotangent:
                    ct = ct.dense()
                total = add(prev, ct)
                cts[parent] = total
                if type(total) is np.ndarray and total.ndim:
                    owned.add(parent)
    for node, ct in cts.items():
        if type(ct) is IndexedCotangent:
            cts[node] = ct = ct.dense()
        if debug:
            from tapegrad.debug import check_finite_input_cotangent

            check_finite_input_cotangent(node, ct)
    return cts


def _fit(ct: Any, x: Any) -> Any:
    """``ct`` summed over the axes broadcasting added and cast to ``x``'s dtype."""
    if ct.shape != x.shape:
        ct = unbroadcast(ct, x.shape)
    if ct.dtype != x.dtype:
        ct = cast(ct, x.dtype)
    return ct
