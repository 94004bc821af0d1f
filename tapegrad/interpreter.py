"""The reverse interpreter: one loop from a tape and an output cotangent to input cotangents.

It walks the Wengert list from the last record to the first. For each record whose output
received a cotangent ``g`` it asks the primitive's VJP rule for the cotangent of each
traced input, fits it to that input (undoing broadcasting, restoring the dtype: the one
place both happen) and adds it into that input's entry of a dictionary keyed by node
number. There is no graph, no topological sort and no recursion: the tape is already in
evaluation order. Constants (data, labels) and values that are not floating point
(masks, indices) never get a cotangent.

Memory falls as the loop runs: each cotangent is popped when its record is processed, and
with ``consume=True`` each record (and so its residuals) is dropped once used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tapegrad.debug import check_vjp_output
from tapegrad.ops import IndexedCotangent, add, cast, unbroadcast
from tapegrad.tape import Tape, Traced

__all__ = ["accumulate", "backward"]


def backward(tape: Tape, seeds: dict[int, Any], consume: bool = False) -> dict[int, Any]:
    """Propagate cotangents from ``seeds`` (node -> cotangent) to the start of ``tape``.

    Returns the cotangents left in the dictionary at the end: those of the tape's inputs
    (and of any node no record consumed). With ``consume=True`` the tape is emptied as it
    is read, so a large forward pass's residuals are freed during the backward pass.
    """
    cts = dict(seeds)
    owned: set[int] = set()  # entries holding an array this loop made, safe to add into
    skip = tape.nondiff
    debug = tape.debug_nans
    records = tape.records
    for index in range(len(records) - 1, -1, -1):
        rec = records.pop() if consume else records[index]
        g = cts.pop(rec.out, None)  # 1. pop the record's cotangent
        if g is None:
            continue
        if type(g) is IndexedCotangent:
            g = g.dense()
        vjp, args, params, ans = rec.primitive.vjp, rec.args, rec.params, rec.ans
        if rec.saved is not None:
            params = {**params, "saved": rec.saved}
        for i, parent in enumerate(rec.parents):
            if parent is None or (skip and parent in skip):
                continue
            ct = vjp(i, g, ans, *args, **params)  # 2. ask the rule
            if ct is None:
                continue
            if debug:
                check_vjp_output(index, rec, i, ct)
            x = args[i]
            if ct.shape != x.shape or (ct.dtype is not x.dtype and ct.dtype != x.dtype):
                ct = fit(ct, x)  # 3. fit it to the input
            if parent in cts:  # 4. add it into the input's entry
                accumulate(cts, owned, parent, ct)
            else:  # (the first contribution, kept as it is: accumulate's first case)
                cts[parent] = ct
    for node, ct in cts.items():
        if type(ct) is IndexedCotangent:
            cts[node] = ct.dense()
    return cts


def fit(ct: Any, x: Any) -> Any:
    """``ct`` summed over the axes broadcasting added and cast to ``x``'s dtype."""
    if ct.shape != x.shape:
        ct = unbroadcast(ct, x.shape)
    if ct.dtype != x.dtype:
        ct = cast(ct, x.dtype)
    return ct


def accumulate(cts: dict[int, Any], owned: set[int], node: int, ct: Any) -> None:
    """Add ``ct`` into ``cts[node]``.

    The first contribution is stored as it is (no copy); the second makes a new array
    (the first may be a residual or a view that must not change); later ones are added in
    place into that array, which ``owned`` remembers. A sparse
    :class:`~tapegrad.ops.IndexedCotangent` is added in place (``np.add.at``) without
    building a dense zero array; traced cotangents are added with the ``add`` op, so an
    outer tape records the sum.
    """
    prev = cts.get(node)
    if prev is None:  # the first contribution, kept as it is
        cts[node] = ct
        return
    if type(prev) is IndexedCotangent:
        prev = cts[node] = prev.dense()
        owned.add(node)
    if node in owned and type(ct) is not Traced:
        if type(ct) is IndexedCotangent:
            ct.add_into(prev)
        else:
            np.add(prev, ct, out=prev)
        return
    if type(ct) is IndexedCotangent:
        ct = ct.dense()
    total = cts[node] = add(prev, ct)
    if type(total) is np.ndarray and total.ndim:
        owned.add(node)
