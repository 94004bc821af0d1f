"""Convolutions and pooling over images ``(N, C, H, W)`` and sequences ``(N, C, L)``, in
PyTorch's layout and meaning: ``conv2d``, ``conv1d``, ``max_pool2d``, ``avg_pool2d``.

Each is one primitive built on ``numpy.lib.stride_tricks.sliding_window_view`` and
matrix products, so its forward and its VJPs are a few large BLAS calls.
"""

from __future__ import annotations

__all__: list[str] = []
