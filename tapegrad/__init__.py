"""tapegrad: functional, tape-based reverse-mode automatic differentiation for numpy.

The data path, one module each::

    your function  ->  tape.py (records on a Wengert list; ops/ is the primitive table)
                   ->  interpreter.py (the reverse pass)
                   ->  transforms.py (grad, value_and_grad, ...; gradients in your pytree's shape)
                   ->  optim.py (pure update rules)

    jit.py and compiler.py run a recorded tape as straight-line Python instead;
    numpy/ is ``import tapegrad.numpy as np``, a drop-in for numpy.

Quick use::

    import numpy as np, tapegrad as tg
    g = tg.grad(lambda p: tg.sum(p["w"] ** 2))({"w": np.ones(3)})
"""

from tapegrad import checkpoint, datasets, distributed, mnist, nn, optim, pytree, random, testing
from tapegrad import ops as _ops
from tapegrad.custom import defvjp, primitive
from tapegrad.debug import debug_nans
from tapegrad.derivatives import hessian, hvp, jacobian, jvp
from tapegrad.jit import jit
from tapegrad.pytree import tree_leaves, tree_map
from tapegrad.tape import Record, Tape, Traced
from tapegrad.transforms import grad, make_tape, stop_gradient, value_and_grad, vjp

# Every op of the table (tg.sin, tg.einsum, tg.split, ...), but the layers, which live in
# tg.nn, and the table's own machinery.
_NOT_AT_TOP = {"REGISTRY", "OpSpec", "ArrayLike", "IndexedCotangent", "unbroadcast", "zero_vjp"}
_NOT_AT_TOP |= {"affine", "nll", "nll_backward", "matrix_transpose"}
_NOT_AT_TOP |= set(_ops.convolution.__all__)  # tg.nn.conv2d, ...
_OPS = [name for name in _ops.__all__ if name not in _NOT_AT_TOP]
globals().update({name: getattr(_ops, name) for name in _OPS})

__version__ = "0.1.0"

__all__ = [
    "Record",
    "Tape",
    "Traced",
    "checkpoint",
    "datasets",
    "debug_nans",
    "defvjp",
    "distributed",
    "grad",
    "hessian",
    "hvp",
    "jacobian",
    "jit",
    "jvp",
    "make_tape",
    "mnist",
    "nn",
    "optim",
    "primitive",
    "pytree",
    "random",
    "stop_gradient",
    "testing",
    "tree_leaves",
    "tree_map",
    "value_and_grad",
    "vjp",
    *_OPS,
]
