"""Check gradients against finite differences, and hypothesis strategies to drive the checks.

:func:`check_grads` is what tapegrad's own tests use; it works on any function of pytrees.
The strategies need ``hypothesis`` (the ``test`` extra), imported only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tapegrad import ops
from tapegrad.derivatives import tree_vdot
from tapegrad.pytree import leaf_paths, tree_flatten, tree_map, tree_unflatten
from tapegrad.transforms import _arg_name, _normalize_argnums, grad

__all__ = [
    "arrays",
    "broadcastable_shapes",
    "check_grads",
    "shapes",
]


def _as_float64(tree: Any) -> Any:
    return tree_map(lambda a: np.array(a, dtype=np.float64), tree)


def _scalarize(fun: Callable, args: tuple, argnums: tuple[int, ...], seed: int) -> Callable:
    """``fun`` if it returns a scalar, else ``sum(fun(...) * u)`` for a fixed random ``u``.

    Checking the gradient of a random projection checks the full VJP with high probability.
    """
    out = np.asarray(fun(*args))
    if out.shape == ():
        return fun
    u = np.random.default_rng(seed).standard_normal(out.shape)

    def projected(*a: Any) -> Any:
        return ops.sum(ops.multiply(fun(*a), u))

    projected.__name__ = f"sum({getattr(fun, '__name__', 'fun')}(...) * u)"
    return projected


def check_grads(
    fun: Callable[..., Any],
    args: Sequence[Any],
    argnums: int | Sequence[int] = 0,
    order: int = 1,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Compare reverse-mode derivatives of ``fun`` with central finite differences.

    It also checks that computing the gradient left the arguments unchanged and that no two
    gradient leaves share memory. The differentiated arguments (pytrees) are converted to
    float64 first. For each leaf
    and each index ``j`` the check computes ``(f(x + eps e_j) - f(x - eps e_j)) / (2 eps)``
    and compares it with the reverse-mode gradient, ``|rev - fd| <= atol + rtol |fd|``. A
    non-scalar ``fun`` is checked through a fixed random projection ``sum(fun(...) * u)``.

    ``order=2`` also checks the gradient of the gradient: the derivative of
    ``sum(grad(f)(x) * v)`` for a random direction ``v`` (a Hessian-vector product), and so
    on for higher orders.

    Raises:
        AssertionError: naming the argument leaf (``params['W']``), the index, the
            reverse-mode value and the finite-difference value of the first mismatch.
    """
    nums, _ = _normalize_argnums(argnums)
    args = tuple(_as_float64(a) if k in nums else a for k, a in enumerate(args))
    f = _scalarize(fun, args, nums, seed)
    _check_first_order(f, args, nums, eps, rtol, atol)
    if order > 1:
        rng = np.random.default_rng(seed + 1)
        vs = {k: tree_map(lambda a: rng.standard_normal(np.shape(a)), args[k]) for k in nums}
        g = grad(f, argnums=nums)

        def directional(*a: Any) -> Any:
            return tree_vdot(g(*a), tuple(vs[k] for k in nums))

        directional.__name__ = f"grad({getattr(fun, '__name__', 'fun')}) . v"
        check_grads(directional, args, nums, order - 1, eps, rtol, atol, seed + 2)


def _check_first_order(
    f: Callable, args: tuple, nums: tuple[int, ...], eps: float, rtol: float, atol: float
) -> None:
    before = [tree_map(np.copy, args[k]) for k in nums]
    rev = grad(f, argnums=nums)(*args)
    grads_seen: list[tuple[str, np.ndarray]] = []
    for gk, k, old in zip(rev, nums, before, strict=True):
        leaves, treedef = tree_flatten(args[k])
        paths = list(leaf_paths(args[k], _arg_name(f, k)))
        for j, (leaf, g, kept) in enumerate(
            zip(leaves, tree_flatten(gk)[0], tree_flatten(old)[0], strict=True)
        ):
            if not np.array_equal(leaf, kept, equal_nan=True):
                raise AssertionError(f"computing the gradient changed the argument {paths[j]}")
            g = np.asarray(g)
            for other_path, other in grads_seen:
                if np.shares_memory(g, other):
                    raise AssertionError(
                        f"the gradients of {other_path} and {paths[j]} share memory"
                    )
            grads_seen.append((paths[j], g))
            if g.shape != np.shape(leaf):
                raise AssertionError(
                    f"gradient of {paths[j]} has shape {g.shape}, expected {np.shape(leaf)}"
                )
            for idx in np.ndindex(*np.shape(leaf)):
                fd = _central_difference(f, args, k, leaves, treedef, j, idx, eps)
                if not abs(g[idx] - fd) <= atol + rtol * abs(fd):
                    raise AssertionError(
                        f"gradient mismatch for {paths[j]} at index {idx}: reverse mode gives "
                        f"{g[idx]!r}, central finite differences give {fd!r} "
                        f"(eps={eps}, rtol={rtol}, atol={atol})"
                    )


def _central_difference(
    f: Callable, args: tuple, k: int, leaves: list, treedef: Any, j: int, idx: tuple, eps: float
) -> float:
    def at(delta: float) -> float:
        moved = list(leaves)
        leaf = np.array(leaves[j], dtype=np.float64)
        leaf[idx] += delta
        moved[j] = leaf
        new_args = list(args)
        new_args[k] = tree_unflatten(treedef, moved)
        return float(np.asarray(f(*new_args)))

    return (at(eps) - at(-eps)) / (2 * eps)


# ---------------------------------------------------------------------------------------
# Hypothesis strategies


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> Any:
    """Array shapes: 0-d up to ``max_dims`` axes of ``min_side..max_side``."""
    from hypothesis.extra import numpy as hnp

    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(max_dims: int = 3, max_side: int = 4) -> Any:
    """Pairs of shapes that numpy broadcasts together, size-1 axes and missing axes included.

    Either operand may be the one that is broadcast, so both sides' unbroadcasting is
    exercised.
    """
    from hypothesis.extra import numpy as hnp

    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda bs: bs.input_shapes)


def arrays(
    shape: Any,
    dtype: Any = np.float64,
    low: float = -2.0,
    high: float = 2.0,
    min_magnitude: float = 0.0,
) -> Any:
    """Well-conditioned float arrays: values in ``[low, high]``, none closer to 0 than
    ``min_magnitude`` (to keep away from kinks such as ``relu`` and ``abs`` at 0).

    ``shape`` is a tuple or a strategy of shapes.
    """
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if min_magnitude > 0:
        elements = elements.filter(lambda v: abs(v) >= min_magnitude)
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: a.astype(dtype))
