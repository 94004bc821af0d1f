"""Layers of a neural network, one primitive each so the tape stays short: ``softmax``,
``log_softmax``, ``affine`` and the loss ``nll``.
"""

from __future__ import annotations

import numpy as np

from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.ops.core import ArrayLike, cast, equal, reshape, sum
from tapegrad.ops.elementwise import exp
from tapegrad.ops.reductions import logsumexp_forward
from tapegrad.ops.registry import Interval, op
from tapegrad.tape import Params, Primitive, Traced, bind

__all__ = ["affine", "log_softmax", "nll", "nll_backward", "softmax"]


def _sample_softmax(draw):
    shape = draw.shape(min_dims=1)
    axis = draw.integers(-len(shape), len(shape) - 1)
    return (draw.array(shape, Interval(-3, 3)),), {"axis": axis}


def _log_softmax_forward(x, axis=-1):
    return x - logsumexp_forward(x, axis=axis, keepdims=True)


def _log_softmax_vjp(i, g, ans, x, axis=-1):
    """d log_softmax(x)_j/dx_k = [j = k] - softmax_k: VJP ``g - softmax * sum(g)``."""
    return g - exp(ans) * sum(g, axis=axis, keepdims=True)


LOG_SOFTMAX = Primitive("log_softmax", _log_softmax_forward, _log_softmax_vjp)


@op(sample=_sample_softmax)
def log_softmax(x: ArrayLike, axis: int = -1) -> ArrayLike:
    """``x - logsumexp(x, axis, keepdims=True)``, stable for large inputs.

    VJP: ``g - softmax(x) sum(g, axis)``.
    """
    return bind(LOG_SOFTMAX, (x,), {"axis": int(axis)})


def _softmax_forward(x, axis=-1, out=None):
    e = np.subtract(x, np.maximum.reduce(x, axis, None, None, True), out=out)
    if type(e) is not np.ndarray or e.dtype.kind != "f":  # 0-d or integer: new arrays
        e = np.exp(e)
        return e / np.add.reduce(e, axis, None, None, True)
    np.exp(e, out=e)  # e is this call's own array: exponentiate and normalise in place
    e /= np.add.reduce(e, axis, None, None, True)
    return e


def _softmax_vjp(i, g, ans, x, axis=-1):
    """d softmax_j/dx_k = s_j ([j = k] - s_k): VJP ``s * (g - sum(g s))``."""
    return ans * (g - sum(g * ans, axis=axis, keepdims=True))


SOFTMAX = Primitive("softmax", _softmax_forward, _softmax_vjp, fresh=True, out=True)


@op(sample=_sample_softmax)
def softmax(x: ArrayLike, axis: int = -1) -> ArrayLike:
    """``exp(x) / sum(exp(x), axis)``, computed after subtracting the maximum.

    VJP: ``s (g - sum(g s, axis))`` with ``s = softmax(x)``.
    """
    return bind(SOFTMAX, (x,), {"axis": int(axis)})


def _affine_forward(W, b, x):
    # ``affine`` has checked the shapes and made the arguments arrays: this runs as it is
    # inside every compiled training step, so it does nothing else
    out = x @ W.T
    if out.ndim == 2 and b.dtype == out.dtype:
        out += b  # the product is a fresh array: add the bias in place
        return out
    return out + b


def _affine_vjp(i, g, ans, W, b, x):
    """For ``y = x W^T + b``: dL/dW = g^T x, dL/db = sum of g over the batch, dL/dx = g W."""
    batched = len(shape_of(x)) == 2
    if i == 0:
        return g.T @ x if batched else reshape(g, (-1, 1)) * x
    if i == 1:
        return g.sum(axis=0) if batched else g
    return g @ W


AFFINE = Primitive("affine", _affine_forward, _affine_vjp, fresh=True)


def _sample_affine(draw):
    n_out, n_in = draw.integers(1, 3), draw.integers(1, 3)
    x_shape = draw.choice(((n_in,), (draw.integers(1, 3), n_in)))
    return (
        draw.array((n_out, n_in), Interval()),
        draw.array((n_out,), Interval()),
        draw.array(x_shape, Interval()),
    ), {}


@op(sample=_sample_affine, argnums=(0, 1, 2))
def affine(W: ArrayLike, b: ArrayLike, x: ArrayLike) -> ArrayLike:
    """``x @ W.T + b`` with ``W (out, in)``, ``b (out,)``, ``x (batch, in)`` or ``(in,)``.

    VJP (the lab report's equations): ``dL/dW = g^T x``, ``dL/db = sum_batch g``,
    ``dL/dx = g W``; the last is never computed when ``x`` is a constant (input images).
    """
    W, b, x = (a if type(a) is Traced else np.asarray(a) for a in (W, b, x))
    w_shape, b_shape, x_shape = shape_of(W), shape_of(b), shape_of(x)
    if (
        len(w_shape) != 2
        or b_shape != (w_shape[0],)
        or len(x_shape) not in (1, 2)
        or x_shape[-1] != w_shape[1]
    ):
        raise ValueError(
            f"tg.affine: expected W (out, in), b (out,) and x (batch, in) or (in,); got "
            f"W {w_shape}, b {b_shape}, x {x_shape}"
        )
    return bind(AFFINE, (W, b, x))


def _check_labels(logits_shape: tuple[int, ...], labels: ArrayLike) -> ArrayLike:
    """Check the labels' shape and dtype, and their range when they are concrete."""
    if type(labels) is not Traced:
        labels = np.asarray(labels)
    if len(logits_shape) != 2:
        raise ValueError(f"tg.nll: expected logits of shape (batch, classes), got {logits_shape}")
    batch, classes = logits_shape
    if dtype_of(labels).kind not in "iu":
        raise ValueError(
            f"tg.nll: labels must be integers in [0, {classes}), got dtype {dtype_of(labels)}"
        )
    if shape_of(labels) != (batch,):
        raise ValueError(
            f"tg.nll: expected labels of shape ({batch},) for logits {logits_shape}, "
            f"got {shape_of(labels)}"
        )
    # Traced labels (computed from a compiled step's inputs) are not read: their range is
    # numpy's to check, as an IndexError from the forward.
    if type(labels) is not Traced and batch and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"tg.nll: labels must lie in [0, {classes}), got values from {labels.min()} "
            f"to {labels.max()}"
        )
    return labels


def _nll_forward(logits, labels):
    logits = np.asarray(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # largest logit of a row: 0
    probs = np.exp(shifted)
    total = probs.sum(axis=1, keepdims=True)
    loss = np.log(total[:, 0])
    loss -= shifted[np.arange(len(labels)), labels]
    probs /= total
    return loss.sum() / len(labels), probs  # the softmax is the VJP's residual


def _nll_vjp(i, g, ans, logits, labels, saved=None):
    """d nll/d logits = (softmax(logits) - onehot(labels)) / batch; labels: none."""
    if i:
        return None
    probs = saved if saved is not None else softmax(logits, axis=1)
    return nll_backward(probs, labels, g)


def _nll_backward_forward(probs, labels, g, out=None):
    scale = g / len(labels)
    out = np.multiply(probs, scale, out=out)
    out[np.arange(len(labels)), labels] -= scale  # probs * scale - onehot * scale
    return out


def _nll_backward_vjp(i, gg, ans, probs, labels, g):
    """``(probs - onehot) g / batch`` is linear in probs and in g."""
    if i == 1:
        return None
    batch = shape_of(labels)[0]
    if i == 0:
        return gg * (g / batch)
    classes = np.arange(shape_of(probs)[1])
    onehot = cast(equal(reshape(labels, (-1, 1)), classes), dtype_of(probs))
    return sum(gg * (probs * (1 / batch) - onehot * (1 / batch)))


NLL_BACKWARD = Primitive(
    "nll_backward", _nll_backward_forward, _nll_backward_vjp, fresh=True, out=True
)


def nll_backward(probs: ArrayLike, labels: ArrayLike, g: ArrayLike) -> ArrayLike:
    """The cotangent of ``nll``'s logits, ``(probs - onehot(labels)) * g / batch``, as one
    op: ``probs (batch, classes)`` the softmax of the logits, ``g`` the loss's cotangent."""
    return bind(NLL_BACKWARD, (probs, labels, g))


NLL = Primitive(
    "nll", _nll_forward, _nll_vjp, saves=True, residual=(SOFTMAX, (0,), Params(axis=1)), fresh=True
)


def _sample_nll(draw):
    batch, classes = draw.integers(1, 4), draw.integers(2, 4)
    labels = np.array([draw.integers(0, classes - 1) for _ in range(batch)])
    return (draw.array((batch, classes), Interval(-3, 3)), labels), {}


@op(sample=_sample_nll)
def nll(logits: ArrayLike, labels: ArrayLike) -> ArrayLike:
    """Mean negative log-likelihood ``mean_i(logsumexp(logits_i) - logits_i[labels_i])``.

    ``logits`` has shape ``(batch, classes)``; ``labels`` are integers in ``[0, classes)``
    of shape ``(batch,)``. Stable for large logits. VJP: ``(softmax - onehot) / batch``.
    """
    return bind(NLL, (logits, _check_labels(shape_of(logits), labels)))
