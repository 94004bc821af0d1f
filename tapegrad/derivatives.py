"""Derivatives built from ``vjp`` and ``grad``: ``jvp``, ``jacobian``, ``hessian``, ``hvp``.

tapegrad has one interpreter, the reverse one. Everything here is composed from it:

- ``jvp`` (forward mode) transposes the VJP. ``u -> vjp_fn(u) = J^T u`` is linear in ``u``,
  so its own VJP, applied to the tangent ``t``, is ``(J^T)^T t = J t``. This "double VJP"
  needs no forward-mode rule for any primitive (every primitive, including user-defined
  ones, gets a JVP for free because VJP rules are written with tapegrad's ops) at the cost
  of about two reverse passes. A separate forward interpreter would be cheaper per call
  but would double the rules to maintain.
- ``jacobian`` pulls back one basis cotangent per output element (reverse mode: best when
  outputs are few). The forward pass runs once; its tape is replayed for each row.
- ``hessian`` is ``jacobian(grad(f))``: reverse over reverse.
- ``hvp`` is ``grad(x -> <grad(f)(x), v>)``: a Hessian-vector product at the cost of about
  two gradients, without forming the Hessian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tapegrad import ops
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.pytree import check_like, tree_flatten, tree_leaves, tree_map, tree_unflatten
from tapegrad.transforms import _check_real, _normalize_argnums, _resolve_argnums, grad, vjp

__all__ = ["hessian", "hvp", "jacobian", "jvp", "tree_vdot"]


def _check_tangents(primals: tuple, tangents: tuple, transform: str) -> None:
    if len(primals) != len(tangents):
        raise ValueError(
            f"{transform}: got {len(primals)} primals but {len(tangents)} tangents; "
            "pass one tangent per primal"
        )
    for k, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        check_like(p, t, f"{transform}: tangent {k}")


def tree_vdot(a: Any, b: Any) -> Any:
    """``sum_leaves sum(a_leaf * b_leaf)``: the inner product of two trees of one structure,
    written with tapegrad's ops (so it can be differentiated)."""
    total = 0.0
    for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True):
        total = ops.add(total, ops.sum(ops.multiply(x, y)))
    return total


def jvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple:
    """Forward-mode derivative: ``(fun(*primals), J t)`` for tangents ``t`` (one per primal).

    ``primals`` and ``tangents`` are sequences of pytrees of matching structure and shapes.
    Computed by transposing the VJP (see the module docstring).

    Example:
        >>> import numpy as np, tapegrad as tg
        >>> out, tangent = tg.jvp(tg.exp, (np.array([0.0, 1.0]),), (np.array([1.0, 2.0]),))
        >>> np.round(tangent, 6).tolist()
        [1.0, 5.436564]
    """
    primals, tangents = tuple(primals), tuple(tangents)
    _check_tangents(primals, tangents, "jvp")
    out, vjp_fn = vjp(fun, *primals)
    zeros = tree_map(lambda o: np.zeros(shape_of(o), dtype_of(o)), out)
    _, transpose_fn = vjp(vjp_fn, zeros)  # u -> J^T u, recorded with u traced
    (tangent_out,) = transpose_fn(tangents)
    return out, tangent_out


def jacobian(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Jacobian of ``fun`` with respect to ``argnums``, in reverse mode.

    For an output leaf of shape ``O`` and an input leaf of shape ``I`` the block has shape
    ``O + I``: ``jac[o + i] = d out[o] / d in[i]``. Pytrees nest as in JAX: the output's
    structure outside, the input's inside (a tuple over ``argnums`` when it is a tuple).
    One VJP per output element, all replaying a single recorded forward pass. Output
    leaves must be real floating-point (a bool or integer output raises ``TypeError``).
    """
    nums, single = _normalize_argnums(argnums)

    def jacobian_fun(*args: Any, **kwargs: Any) -> Any:
        which = _resolve_argnums(fun, nums, len(args))

        def partial(*diff: Any) -> Any:
            full = list(args)
            for k, d in zip(which, diff, strict=True):
                full[k] = d
            return fun(*full, **kwargs)

        out, vjp_fn = vjp(partial, *(args[k] for k in which))
        out_leaves, out_def = tree_flatten(out)
        for leaf in out_leaves:
            _check_real(leaf, "jacobian requires real floating-point outputs")
        blocks = []
        for j, leaf in enumerate(out_leaves):
            shape = shape_of(leaf)
            rows = []
            for idx in np.ndindex(*shape):
                seeds = [np.zeros(shape_of(o), dtype_of(o)) for o in out_leaves]
                seeds[j][idx] = 1
                rows.append(vjp_fn(tree_unflatten(out_def, seeds)))
            per_arg = []
            for a, k in enumerate(which):
                if rows:  # the rows stacked, then split back into the output's shape
                    per_arg.append(
                        tree_map(
                            lambda *r, shape=shape: ops.reshape(
                                ops.stack(r), shape + shape_of(r[0])
                            ),
                            *(row[a] for row in rows),
                        )
                    )
                else:  # an empty output leaf has an empty Jacobian block
                    per_arg.append(
                        tree_map(
                            lambda x, shape=shape: np.zeros(shape + shape_of(x), dtype_of(x)),
                            args[k],
                        )
                    )
            blocks.append(per_arg[0] if single else tuple(per_arg))
        return tree_unflatten(out_def, blocks)

    return jacobian_fun


def hessian(fun: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Hessian of scalar ``fun``: ``jacobian(grad(fun))``, shape ``I + I`` per leaf pair."""
    return jacobian(grad(fun, argnums), argnums)


def hvp(fun: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple:
    """The Hessian-vector product ``H v`` of scalar ``fun`` at ``primals``, without forming H.

    ``primals`` are all of ``fun``'s positional arguments and ``tangents`` the matching
    vectors ``v``. Returns a tuple with one entry per primal, in the primal's structure.
    Computed as ``grad(x -> <grad(fun)(x), v>)``.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    _check_tangents(primals, tangents, "hvp")
    nums = tuple(range(len(primals)))
    gradient = grad(fun, argnums=nums)

    def directional(*xs: Any) -> Any:
        return tree_vdot(gradient(*xs), tangents)

    return grad(directional, argnums=nums)(*primals)
