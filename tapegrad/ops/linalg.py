"""Linear algebra: ``numpy.linalg``'s functions on stacks of matrices ``(..., n, n)``.

The rules use solves and triangular solves, never an explicit inverse where a solve will
do, and are written in tapegrad's ops, so second derivatives work (the Hessian of a
log-determinant, say).
"""

from __future__ import annotations

__all__: list[str] = []
