"""tapegrad: functional, tape-based reverse-mode automatic differentiation for numpy.

The data path, one module each::

    your function  ->  tape.py (records on a Wengert list; ops.py is the primitive table)
                   ->  interpreter.py (the reverse pass)
                   ->  transforms.py (grad, value_and_grad, ...; gradients in your pytree's shape)
                   ->  optim.py (pure update rules)

Quick use::

    import numpy as np, tapegrad as tg
    g = tg.grad(lambda p: tg.sum(p["w"] ** 2))({"w": np.ones(3)})
"""

from tapegrad import checkpoint, datasets, distributed, nn, optim, pytree, testing
from tapegrad.custom import defvjp, primitive
from tapegrad.debug import debug_nans
from tapegrad.derivatives import hessian, hvp, jacobian, jvp
from tapegrad.jit import jit
from tapegrad.ops import (
    abs,
    add,
    broadcast_to,
    cast,
    concatenate,
    divide,
    exp,
    getitem,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    power,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    stack,
    subtract,
    sum,
    take,
    tanh,
    transpose,
    where,
)
from tapegrad.pytree import tree_leaves, tree_map
from tapegrad.tape import Record, Tape, Traced
from tapegrad.transforms import grad, make_tape, stop_gradient, value_and_grad, vjp

__version__ = "0.1.0"

__all__ = [
    "Record",
    "Tape",
    "Traced",
    "abs",
    "add",
    "broadcast_to",
    "cast",
    "checkpoint",
    "concatenate",
    "datasets",
    "debug_nans",
    "defvjp",
    "distributed",
    "divide",
    "exp",
    "getitem",
    "grad",
    "hessian",
    "hvp",
    "jacobian",
    "jit",
    "jvp",
    "log",
    "log_softmax",
    "logsumexp",
    "make_tape",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mnist",
    "multiply",
    "negative",
    "nn",
    "optim",
    "power",
    "primitive",
    "pytree",
    "relu",
    "reshape",
    "sigmoid",
    "softmax",
    "sqrt",
    "stack",
    "stop_gradient",
    "subtract",
    "sum",
    "take",
    "tanh",
    "testing",
    "transpose",
    "tree_leaves",
    "tree_map",
    "value_and_grad",
    "vjp",
    "where",
]
