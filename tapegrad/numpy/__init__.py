"""``import tapegrad.numpy as np``: numpy, with every function tapegrad can differentiate.

Each name in tapegrad's registry with a numpy counterpart (``sin``, ``sum``, ``einsum``,
...) is tapegrad's op; every other public name of numpy (``zeros``, ``arange``, ``argmax``,
``float32``, ``pi``, ``random``, ...) is numpy's own, re-exported untouched. So a script
written for numpy runs with only its import changed, and ``tg.grad`` differentiates it.
"""

from __future__ import annotations

import numpy as _np

from tapegrad.ops import REGISTRY as _REGISTRY

# numpy's public names first, then tapegrad's ops over them.
for _name in dir(_np):
    if not _name.startswith("_"):
        globals()[_name] = getattr(_np, _name)
for _spec in _REGISTRY.values():
    if _spec.numpy is not None:
        globals()[_spec.name] = _spec.function
del _name, _spec
