"""Layers, losses and initialisers for multilayer perceptrons and convolutional networks.

Parameters are plain pytrees. :func:`init_mlp` lays them out as::

    {"layers": [{"W": (h1, n_in), "b": (h1,)}, ..., {"W": (n_out, h_k), "b": (n_out,)}]}

so ``params["layers"][i]["W"]`` is layer ``i``'s weight of shape ``(fan_out, fan_in)``
(the convention of the lab report: ``y = W x + b`` for one example, ``x @ W.T + b`` for a
batch).

The maths (``g`` is the cotangent of the layer's output, batch along axis 0):

- ``affine``:  ``y = x W^T + b``;  ``dL/dW = g^T x``, ``dL/db = sum_batch g``, ``dL/dx = g W``.
- ``relu``:    ``y = max(x, 0)``;  ``dL/dx = g [x > 0]``.
- ``tanh``:    ``dL/dx = g (1 - y^2)``.
- ``log_softmax``: ``y = x - logsumexp(x)``;  ``dL/dx = g - softmax(x) sum(g)``.
- ``nll``:     ``L = mean_i(logsumexp(z_i) - z_i[t_i])``;
  ``dL/dz = (softmax(z) - onehot(t)) / batch``.

Convolutional networks use images ``(N, C, H, W)`` and PyTorch's conventions:
``conv2d``, ``conv1d``, ``max_pool2d`` and ``avg_pool2d`` are the ops of
:mod:`tapegrad.ops.convolution` (their VJPs are derived there), ``flatten`` turns
``(N, C, H, W)`` into ``(N, C H W)`` for the dense layers, and ``layer_norm``,
``batch_norm`` and ``dropout`` follow ``torch.nn.functional``'s definitions as pure
functions (``batch_norm`` returns its new running statistics; ``dropout`` takes a key of
:mod:`tapegrad.random`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad import random
from tapegrad.ops import (
    affine,
    avg_pool2d,
    conv1d,
    conv2d,
    conv2d_input_grad,
    conv2d_weight_grad,
    log_softmax,
    max_pool2d,
    mean,
    nll,
    relu,
    reshape,
    sigmoid,
    sqrt,
    tanh,
    var,
    where,
)
from tapegrad.ops.axes import dtype_of, shape_of
from tapegrad.tape import Primitive, bind
from tapegrad.transforms import stop_gradient

__all__ = [
    "ACTIVATIONS",
    "accuracy",
    "affine",
    "avg_pool2d",
    "batch_norm",
    "conv1d",
    "conv2d",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "dropout",
    "flatten",
    "glorot_uniform",
    "init_mlp",
    "kaiming_uniform",
    "layer_norm",
    "log_softmax",
    "max_pool2d",
    "mlp",
    "nll",
    "relu",
    "sigmoid",
    "tanh",
]

#: Hidden-layer activations :func:`mlp` accepts, by name.
ACTIVATIONS = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def _fans(name: str, shape_or_fan_out: Any, fan_in: Any) -> tuple[tuple[int, ...], int, int]:
    """``(shape, fan_out, fan_in)`` of a weight given as ``(fan_out, fan_in)`` or as a shape.

    A shape ``(O, C, *kernel)`` has fan-in ``C * prod(kernel)`` and fan-out
    ``O * prod(kernel)``: each output sums ``C * prod(kernel)`` inputs, and each input
    reaches ``O * prod(kernel)`` outputs. ``(O, C)`` is a dense layer's weight.
    """
    if fan_in is not None:
        shape = (int(shape_or_fan_out), int(fan_in))
    elif isinstance(shape_or_fan_out, (int, np.integer)):
        raise TypeError(
            f"{name}: give a weight shape such as (O, C, kh, kw), or fan_out and fan_in; "
            f"got fan_out={shape_or_fan_out} without fan_in"
        )
    else:
        shape = tuple(int(s) for s in shape_or_fan_out)
        if len(shape) < 2:
            raise ValueError(
                f"{name}: a weight shape needs at least (fan_out, fan_in), got {shape}"
            )
    receptive = math.prod(shape[2:])
    fan_out, fan_in = shape[0] * receptive, shape[1] * receptive
    if fan_out < 1 or fan_in < 1:
        raise ValueError(f"{name}: fan_out and fan_in must be >= 1, got ({fan_out}, {fan_in})")
    return shape, fan_out, fan_in


def glorot_uniform(
    rng: np.random.Generator,
    shape_or_fan_out: int | Sequence[int],
    fan_in: int | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """A weight ~ U[-a, a] with ``a = sqrt(6 / (fan_in + fan_out))``.

    ``glorot_uniform(rng, fan_out, fan_in)`` gives a dense ``(fan_out, fan_in)`` weight;
    ``glorot_uniform(rng, (O, C, kh, kw))`` a convolution's, with ``fan_in = C kh kw`` and
    ``fan_out = O kh kw`` (any shape ``(O, C, *kernel)``).

    Glorot and Bengio (2010): keeps the variance of activations and of gradients roughly
    constant across layers for activations that are linear near 0 (tanh, sigmoid). The
    variance of U[-a, a] is ``a^2 / 3 = 2 / (fan_in + fan_out)``.
    """
    shape, fan_out, fan_in = _fans("glorot_uniform", shape_or_fan_out, fan_in)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


def kaiming_uniform(
    rng: np.random.Generator,
    shape_or_fan_out: int | Sequence[int],
    fan_in: int | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """A weight ~ U[-a, a] with ``a = sqrt(6 / fan_in)``.

    ``kaiming_uniform(rng, fan_out, fan_in)`` gives a dense ``(fan_out, fan_in)`` weight;
    ``kaiming_uniform(rng, (O, C, kh, kw))`` a convolution's, with ``fan_in = C kh kw``
    (any shape ``(O, C, *kernel)``).

    He et al. (2015): ReLU zeroes half its inputs, so the weights need twice Glorot's
    forward variance, ``2 / fan_in``, to keep activations from shrinking layer by layer.
    """
    shape, _, fan_in = _fans("kaiming_uniform", shape_or_fan_out, fan_in)
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}"
        )


def init_mlp(
    rng: np.random.Generator,
    sizes: Sequence[int],
    activation: str = "relu",
    dtype: Any = np.float32,
) -> dict:
    """Parameters of an MLP with layer widths ``sizes`` (input first, classes last).

    Weights use Kaiming initialisation for ReLU and Glorot for tanh and sigmoid; biases
    start at zero. ``sizes=[784, 10]`` is a single affine layer (multinomial logistic
    regression). Returns ``{"layers": [{"W": ..., "b": ...}, ...]}`` in ``dtype``.
    """
    _check_activation(activation)
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"init_mlp: sizes needs an input and an output width, got {sizes}")
    init = kaiming_uniform if activation == "relu" else glorot_uniform
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers.append({"W": init(rng, fan_out, fan_in, dtype), "b": np.zeros(fan_out, dtype)})
    return {"layers": layers}


def mlp(params: dict, x: Any, activation: str = "relu") -> Any:
    """The logits of the MLP ``params`` on inputs ``x`` of shape ``(batch, in)``.

    Inputs with more axes (``(batch, 28, 28)`` images) are flattened to ``(batch, in)``.
    Every layer but the last is followed by ``activation``.
    """
    _check_activation(activation)
    act = ACTIVATIONS[activation]
    shape = shape_of(x)
    if len(shape) > 2:
        x = reshape(x, (shape[0], -1))
    layers = params["layers"]
    for k, layer in enumerate(layers):
        x = affine(layer["W"], layer["b"], x)
        if k < len(layers) - 1:
            x = act(x)
    return x


def accuracy(logits: Any, labels: Any) -> float:
    """The fraction in [0, 1] of rows of ``logits (batch, classes)`` whose argmax is the label."""
    logits = np.asarray(stop_gradient(logits))
    labels = np.asarray(stop_gradient(labels))
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"accuracy: expected logits (batch, classes) and labels (batch,), got "
            f"{logits.shape} and {labels.shape}"
        )
    if logits.shape[0] == 0:
        raise ValueError("accuracy: empty batch")
    return float(np.mean(np.argmax(logits, axis=1) == labels))


# ---------------------------------------------------------------------------------------
# Convolutional networks: conv2d, conv1d, max_pool2d and avg_pool2d are tapegrad.ops'


def flatten(x: Any) -> Any:
    """``x (N, ...)`` as ``(N, prod(...))``: a convolution's output for a dense layer (one
    reshape; VJP: the cotangent reshaped back)."""
    shape = shape_of(x)
    if not shape:
        raise ValueError("flatten: expected an array with a batch axis, got a 0-d value")
    return reshape(x, (shape[0], math.prod(shape[1:])))


# ---------------------------------------------------------------------------------------
# Normalisation and regularisation


def _normalize_forward(x, scale, offset, *, axes, eps):
    # The same numpy calls, in the same order, as the VJP's recomputation with ops, so a
    # derivative from the saved values and one recomputed under tg.jit agree bit for bit.
    centred = np.subtract(x, np.mean(x, axis=axes, keepdims=True))
    inv_std = np.divide(
        1.0, np.sqrt(np.add(np.mean(centred * centred, axis=axes, keepdims=True), eps))
    )
    xhat = centred * inv_std
    return xhat * scale + offset, (xhat, inv_std)


def _normalize_vjp(i, g, ans, x, scale, offset, *, axes, eps, saved=None):
    """For ``y = xhat s + o``, ``xhat = (x - mean(x)) / sqrt(var(x) + eps)`` over ``axes``
    (``n`` values, biased variance):
    ``dx = (g s - mean(g s) - xhat mean(g s xhat)) / sqrt(var + eps)``, ``ds = g xhat``,
    ``do = g`` (the interpreter sums ``ds`` and ``do`` down to their shapes)."""
    if i == 2:
        return g
    if saved is not None:
        xhat, inv_std = saved
    else:
        centred = x - mean(x, axis=axes, keepdims=True)
        inv_std = 1.0 / sqrt(mean(centred * centred, axis=axes, keepdims=True) + eps)
        xhat = centred * inv_std
    if i == 1:
        return g * xhat
    gs = g * scale
    return inv_std * (
        gs - mean(gs, axis=axes, keepdims=True) - xhat * mean(gs * xhat, axis=axes, keepdims=True)
    )


#: ``(x - mean) / sqrt(var + eps) * scale + offset`` over ``axes``: one record, the core of
#: layer_norm and of batch_norm in training.
NORMALIZE = Primitive("normalize", _normalize_forward, _normalize_vjp, saves=True)


def _check_affine_params(name: str, size: int, **arrays: Any) -> None:
    for key, a in arrays.items():
        if shape_of(a) != (size,):
            raise ValueError(f"{name}: expected {key} of shape ({size},), got {shape_of(a)}")


def layer_norm(x: Any, scale: Any, offset: Any, eps: float = 1e-5) -> Any:
    """Layer normalisation over the last axis (Ba et al., 2016; PyTorch's ``layer_norm``
    with ``normalized_shape = x.shape[-1:]``): ``x (..., D)``, ``scale`` and ``offset (D,)``.

    ``y = (x - mean) / sqrt(var + eps) * scale + offset`` with the mean and the biased
    variance of each row. VJP: ``dx = (g s - mean(g s) - xhat mean(g s xhat)) /
    sqrt(var + eps)`` per row, ``dscale = sum(g xhat)``, ``doffset = sum(g)``.
    """
    shape = shape_of(x)
    if not shape:
        raise ValueError("layer_norm: expected x of shape (..., D), got a 0-d value")
    _check_affine_params("layer_norm", shape[-1], scale=scale, offset=offset)
    return bind(NORMALIZE, (x, scale, offset), {"axes": (len(shape) - 1,), "eps": float(eps)})


def batch_norm(
    x: Any,
    scale: Any,
    offset: Any,
    running_mean: Any,
    running_var: Any,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, Any, Any]:
    """Batch normalisation over axis 1 (Ioffe and Szegedy, 2015; PyTorch's ``batch_norm``),
    as a pure function: returns ``(y, new_running_mean, new_running_var)``.

    ``x`` is ``(N, C)`` or ``(N, C, H, W)`` (any ``(N, C, ...)``); ``scale``, ``offset`` and
    the running statistics are ``(C,)``. Each channel is normalised over the ``n`` values
    of all other axes:

    - ``training=True``: ``y = (x - m) / sqrt(v + eps) * scale + offset`` with the batch
      mean ``m`` and *biased* variance ``v``; ``new = (1 - momentum) old + momentum batch``
      with the *unbiased* variance ``v n / (n - 1)`` in ``new_running_var`` (PyTorch's
      convention). The new statistics carry no derivative (PyTorch's running statistics
      are buffers). Needs ``n > 1``.
    - ``training=False``: ``y = (x - running_mean) / sqrt(running_var + eps) * scale +
      offset``; the running statistics are returned unchanged.

    VJP (training): that of :func:`layer_norm` per channel, with the means over
    ``n = N H W`` values.
    """
    shape = shape_of(x)
    if len(shape) < 2:
        raise ValueError(f"batch_norm: expected x of shape (N, C) or (N, C, H, W), got {shape}")
    c = shape[1]
    _check_affine_params(
        "batch_norm",
        c,
        scale=scale,
        offset=offset,
        running_mean=running_mean,
        running_var=running_var,
    )
    column = (c,) + (1,) * (len(shape) - 2)  # (C, 1, 1): broadcasts along axis 1
    axes = (0, *range(2, len(shape)))
    if not training:
        factor = reshape(scale, column) / sqrt(reshape(running_var, column) + float(eps))
        shift = reshape(offset, column) - reshape(running_mean, column) * factor
        return x * factor + shift, running_mean, running_var
    n = math.prod(shape[k] for k in axes)
    if n < 2:
        raise ValueError(
            f"batch_norm: training needs more than one value per channel, got x of shape {shape}"
        )
    params = {"axes": axes, "eps": float(eps)}
    y = bind(NORMALIZE, (x, reshape(scale, column), reshape(offset, column)), params)
    batch = stop_gradient(x)
    momentum = float(momentum)
    new_mean = running_mean * (1 - momentum) + mean(batch, axis=axes) * momentum
    unbiased = var(batch, axis=axes) * (n / (n - 1))
    new_var = running_var * (1 - momentum) + unbiased * momentum
    return y, new_mean, new_var


def dropout(key: Any, x: Any, rate: float) -> Any:
    """Inverted dropout (Srivastava et al., 2014; PyTorch's ``dropout`` in training): each
    entry of ``x`` is zeroed with probability ``rate`` and the kept ones are scaled by
    ``1 / (1 - rate)``, so the expectation is ``x``. At evaluation, do not call it.

    The mask is ``tg.random.bernoulli(key, 1 - rate, x.shape)``: a pure function of
    ``key`` (the same key drops the same units; split the key for every step and layer).
    For a float32 ``x`` the uniform draw is float32. ``rate = 0`` returns ``x``; ``rate =
    1`` zeros (as PyTorch). VJP: ``g`` times the same mask and scale.
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout: rate must lie in [0, 1], got {rate}")
    if rate == 0.0:
        return x
    if rate == 1.0:
        return x * 0.0
    keep = 1.0 - rate
    dtype = dtype_of(x) if dtype_of(x).kind == "f" else np.dtype(np.float64)
    mask = random.bernoulli(key, np.asarray(keep, dtype), shape_of(x))
    return where(mask, x * (1.0 / keep), 0.0)
