"""``import tapegrad.numpy as np``: numpy, with every function tapegrad can differentiate.

Each numpy name whose function has a rule in tapegrad's registry (``sin``, ``sum``,
``einsum``, ... and their aliases: ``absolute`` and ``abs`` are one function) is tapegrad's
op; every other public name of numpy (``zeros``, ``arange``, ``argmax``, ``float32``,
``pi``, ``random``, ...) is numpy's own, re-exported untouched. So a script written for
numpy runs with only its import changed, and ``tg.grad`` differentiates it. numpy's own
functions also work on traced values (they dispatch to the same ops), except ``np.array``
of a list holding traced values: use this module's ``array``.
"""

from __future__ import annotations

import importlib as _importlib

import numpy as _np

from tapegrad.numpy import building as _building
from tapegrad.ops import REGISTRY as _REGISTRY

_OURS = {spec.numpy: spec.function for spec in _REGISTRY.values() if spec.numpy is not None}

for _name in dir(_np):
    if not _name.startswith("_"):
        _value = getattr(_np, _name)
        try:
            globals()[_name] = _OURS.get(_value, _value)
        except TypeError:  # an unhashable attribute: numpy's own
            globals()[_name] = _value
del _name, _value

# numpy.linalg's differentiable twin; imported after the loop, which set numpy's own
linalg = _importlib.import_module("tapegrad.numpy.linalg")

# Building arrays from lists that hold traced values (numpy's own np.array cannot).
array, asarray, asanyarray = _building.array, _building.asarray, _building.asarray
r_, c_ = _building.r_, _building.c_
