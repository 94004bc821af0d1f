"""User-defined primitives: a numpy forward and a VJP rule, recorded like any built-in op.

::

    @tg.primitive
    def softplus(x):
        return np.logaddexp(0.0, x)          # any numpy code: it is not traced inside

    @softplus.defvjp
    def softplus_vjp(i, g, ans, x):
        return g * tg.sigmoid(x)             # d softplus/dx = sigmoid(x)

The rule has the signature of the built-in ones: ``vjp(i, g, ans, *args, **params)``
returns the cotangent of positional argument ``i`` given the output cotangent ``g`` and the
output ``ans``; keyword arguments are parameters, never differentiated. Write the rule with
tapegrad's ops (or Python operators) and the primitive can be differentiated again, under
nested ``grad``, ``hessian`` and ``jvp``. Broadcasting and dtype are fitted by the
interpreter, as for the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapegrad.tape import Primitive, bind

__all__ = ["UserPrimitive", "defvjp", "primitive"]


class UserPrimitive:
    """A callable op backed by a user-declared :class:`~tapegrad.tape.Primitive`."""

    def __init__(self, forward: Callable[..., Any], vjp: Callable[..., Any] | None, name: str):
        self.__name__ = name
        self.__doc__ = forward.__doc__
        self.__wrapped__ = forward
        self.prim = Primitive(name, forward, vjp or _missing_vjp(name))

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self.prim, args, params)

    def defvjp(self, vjp: Callable[..., Any]) -> Callable[..., Any]:
        """Declare (or replace) the VJP rule; usable as a decorator. Returns ``vjp``."""
        if not callable(vjp):
            raise TypeError(f"{self.__name__}.defvjp expects a function, got {vjp!r}")
        self.prim = Primitive(self.__name__, self.prim.forward, vjp)
        return vjp

    def __repr__(self) -> str:
        return f"<tapegrad primitive {self.__name__}>"


def _missing_vjp(name: str) -> Callable[..., Any]:
    def no_vjp(i: int, g: Any, ans: Any, *args: Any, **params: Any) -> Any:
        raise NotImplementedError(
            f"tg.{name} has no VJP rule, so it cannot be differentiated; declare one with "
            f"@{name}.defvjp (signature: vjp(i, g, ans, *args, **params))"
        )

    return no_vjp


def primitive(
    forward: Callable[..., Any] | None = None,
    *,
    vjp: Callable[..., Any] | None = None,
    name: str | None = None,
) -> Any:
    """Declare a new primitive from a numpy ``forward`` (as a decorator, with or without
    arguments): ``tg.primitive(f)``, ``@tg.primitive`` or ``@tg.primitive(vjp=rule)``.

    Returns a :class:`UserPrimitive`: call it like ``forward``; with traced arguments it
    appends one record to the tape. Its VJP comes from ``vjp=`` or from ``.defvjp``.
    """

    def make(f: Callable[..., Any]) -> UserPrimitive:
        return UserPrimitive(f, vjp, name or getattr(f, "__name__", "primitive"))

    return make if forward is None else make(forward)


def defvjp(prim: UserPrimitive, vjp: Callable[..., Any]) -> UserPrimitive:
    """Declare the VJP rule of ``prim`` (the function form of ``prim.defvjp``)."""
    if not isinstance(prim, UserPrimitive):
        raise TypeError(f"defvjp expects a primitive made by tg.primitive, got {prim!r}")
    prim.defvjp(vjp)
    return prim
