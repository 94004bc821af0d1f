"""Ops that rearrange, repeat or pick elements: flips, rolls, tiles, padding, diagonals and
triangles, ``take_along_axis``, ``sort`` and ``select``.

Each rule sends the cotangent back along the same arrangement, transposed.
"""

from __future__ import annotations

__all__: list[str] = []
