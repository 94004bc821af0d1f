"""The primitive table: every differentiable op, its numpy forward and its VJP, side by side.

**One block per primitive.** In its op file each primitive is one block, read top to
bottom: the VJP rule (its docstring states the derivative, once), the declaration
``NAME = Primitive(name, forward, rule)``, then the public function, registered with
:func:`~tapegrad.ops.registry.op` (numpy's counterpart, the test domain, the convention at
kinks), which calls ``bind``.

**The rule's contract.** ``rule(i, g, ans, *args, **params)`` returns the cotangent of
argument ``i``, ``g^T d ans / d args[i]``, or ``None`` where there is none (a boolean
condition, an index). Two jobs are *not* in the rules: summing the cotangent over the axes
the forward broadcast, and casting it back to the input's dtype; the reverse interpreter
does both, once.

**Rules are written in tapegrad's ops and read no concrete values.** A rule uses the ops
of this package and Python operators, never raw numpy on ``g`` or on the residuals, and
never unboxes a traced value. Masks, tie weights and conditions are computed with ops too
(``greater(x, 0)``, ``equal(x, ans)``, ``where``): comparisons, ``sign`` and ``isfinite``
are primitives with no derivative, recorded like any other. On plain arrays (a
first-order ``grad``) every op is the plain numpy call, so this costs nothing; when the
residuals are traced by an outer transform, the backward pass is itself recorded (which
gives ``grad(grad(f))``) and that tape holds every value a step computes from its inputs,
so a replayed tape recomputes each mask instead of keeping the one it was traced with.
A rule may branch on what is fixed when a tape is made: shapes, dtypes, parameters, and
whether a value is traced.

**Files, lowest first; a file imports only files above it** (rules call ops of their own
file, or of files above, at call time)::

    axes.py         shapes, dtypes and axes of arguments (metadata only)
    registry.py     OpSpec and the registry; samplers that describe test domains
    core.py         arithmetic, comparisons, where, sum, reshape, transpose,
                    broadcast_to, cast, indexing: the ops the interpreter needs
    elementwise.py  numpy's elementwise maths: exp, log, sin, arctan2, power, clip, maximum,
                    ..., relu, sigmoid, and the zero-derivative ones (sign, floor, round)
    reductions.py   reductions and scans: mean, prod, var, std, max, cumsum, diff, trace, ...
    shaping.py      reshaping, joining and splitting: concatenate, stack, split, ...
    arranging.py    flips, rolls, tiles, padding, diagonals, triangles, sort, take_along_axis
    products.py     matmul, dot, tensordot, einsum, ...
    linalg.py       numpy.linalg: solve, inv, det, slogdet, cholesky, eigh, svd, qr, norm, ...
    convolution.py  conv2d, conv1d, max_pool2d, avg_pool2d (PyTorch's layout)
    layers.py       softmax, log_softmax, affine, nll
    operators.py    Python operators, ndarray methods and numpy's protocols on traced values

All ops follow numpy's names, broadcasting, dtype promotion (a Python scalar never widens a
float32 array) and ``axis``/``keepdims`` semantics. On plain arrays they are plain numpy
calls.
"""

from tapegrad.ops import operators as _operators  # noqa: F401  (attaches Traced's operators)
from tapegrad.ops.arranging import *  # noqa: F403
from tapegrad.ops.arranging import __all__ as _arranging
from tapegrad.ops.convolution import *  # noqa: F403
from tapegrad.ops.convolution import __all__ as _convolution
from tapegrad.ops.core import *  # noqa: F403
from tapegrad.ops.core import __all__ as _core
from tapegrad.ops.elementwise import *  # noqa: F403
from tapegrad.ops.elementwise import __all__ as _elementwise
from tapegrad.ops.layers import *  # noqa: F403
from tapegrad.ops.layers import __all__ as _layers
from tapegrad.ops.linalg import *  # noqa: F403
from tapegrad.ops.linalg import __all__ as _linalg
from tapegrad.ops.products import *  # noqa: F403
from tapegrad.ops.products import __all__ as _products
from tapegrad.ops.reductions import *  # noqa: F403
from tapegrad.ops.reductions import __all__ as _reductions
from tapegrad.ops.registry import REGISTRY, OpSpec
from tapegrad.ops.shaping import *  # noqa: F403
from tapegrad.ops.shaping import __all__ as _shaping

__all__ = [
    "REGISTRY",
    "OpSpec",
    *_core,
    *_elementwise,
    *_reductions,
    *_shaping,
    *_arranging,
    *_products,
    *_linalg,
    *_convolution,
    *_layers,
]
