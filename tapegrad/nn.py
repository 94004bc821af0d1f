"""Layers, losses and initialisers for multilayer perceptrons.

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
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from tapegrad.ops import affine, log_softmax, nll, relu, reshape, sigmoid, tanh
from tapegrad.ops.axes import shape_of
from tapegrad.transforms import stop_gradient

__all__ = [
    "ACTIVATIONS",
    "accuracy",
    "affine",
    "glorot_uniform",
    "init_mlp",
    "kaiming_uniform",
    "log_softmax",
    "mlp",
    "nll",
    "relu",
    "sigmoid",
    "tanh",
]

#: Hidden-layer activations :func:`mlp` accepts, by name.
ACTIVATIONS = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def _check_fans(name: str, fan_out: int, fan_in: int) -> None:
    if int(fan_out) < 1 or int(fan_in) < 1:
        raise ValueError(f"{name}: fan_out and fan_in must be >= 1, got ({fan_out}, {fan_in})")


def glorot_uniform(
    rng: np.random.Generator, fan_out: int, fan_in: int, dtype: Any = np.float32
) -> np.ndarray:
    """A ``(fan_out, fan_in)`` weight ~ U[-a, a] with ``a = sqrt(6 / (fan_in + fan_out))``.

    Glorot and Bengio (2010): keeps the variance of activations and of gradients roughly
    constant across layers for activations that are linear near 0 (tanh, sigmoid). The
    variance of U[-a, a] is ``a^2 / 3 = 2 / (fan_in + fan_out)``.
    """
    _check_fans("glorot_uniform", fan_out, fan_in)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_out, fan_in)).astype(dtype)


def kaiming_uniform(
    rng: np.random.Generator, fan_out: int, fan_in: int, dtype: Any = np.float32
) -> np.ndarray:
    """A ``(fan_out, fan_in)`` weight ~ U[-a, a] with ``a = sqrt(6 / fan_in)``.

    He et al. (2015): ReLU zeroes half its inputs, so the weights need twice Glorot's
    forward variance, ``2 / fan_in``, to keep activations from shrinking layer by layer.
    """
    _check_fans("kaiming_uniform", fan_out, fan_in)
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=(fan_out, fan_in)).astype(dtype)


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
