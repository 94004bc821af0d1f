"""``tapegrad.numpy.linalg``: ``numpy.linalg``, with every function tapegrad can differentiate.

As :mod:`tapegrad.numpy` does for numpy: each name whose function has a rule in the
registry is tapegrad's op, every other name is ``numpy.linalg``'s own (``LinAlgError``...).
"""

from __future__ import annotations

import numpy as _np

from tapegrad.ops import REGISTRY as _REGISTRY

_OURS = {spec.numpy: spec.function for spec in _REGISTRY.values() if spec.numpy is not None}

for _name in dir(_np.linalg):
    if not _name.startswith("_"):
        _value = getattr(_np.linalg, _name)
        try:
            globals()[_name] = _OURS.get(_value, _value)
        except TypeError:  # an unhashable attribute: numpy's own
            globals()[_name] = _value
del _name, _value
