"""The registry's :class:`~tapegrad.ops.registry.Draw` interface, implemented with hypothesis.

``HypothesisDraw(data)`` answers a sampler's requests with ``data.draw``. ``replaying``
gives a second draw that repeats every choice of a first one (shapes, axes, integers,
options) but draws fresh array values: the same op on new values of the same shapes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tapegrad.ops.registry import Interval

# The registry's properties run for every op (about 200), so each draws few examples in CI;
# HYPOTHESIS_PROFILE=dev draws five times as many, fresh each run.
_SCALE = 5 if os.environ.get("HYPOTHESIS_PROFILE") == "dev" else 1


def per_op(examples: int) -> Any:
    """Hypothesis settings for a property checked once per registered op."""
    return settings(max_examples=examples * _SCALE)


def _elements(interval: Interval) -> st.SearchStrategy:
    if interval.step:
        low = int(np.ceil(interval.low / interval.step))
        high = int(np.floor(interval.high / interval.step))
        values = st.integers(low, high).map(lambda k: k * interval.step)
    else:
        values = st.floats(interval.low, interval.high, allow_nan=False, width=64)
    if interval.avoid:
        values = values.filter(lambda v: all(abs(v - a) >= interval.gap for a in interval.avoid))
    return values


class HypothesisDraw:
    """A sampler's draws from hypothesis' ``data``; ``log`` keeps every non-array choice."""

    def __init__(self, data: Any, replay: list | None = None) -> None:
        self.data = data
        self.replay = None if replay is None else list(replay)
        self.log: list = []

    def _choose(self, strategy: st.SearchStrategy) -> Any:
        value = self.replay.pop(0) if self.replay is not None else self.data.draw(strategy)
        self.log.append(value)
        return value

    def shape(self, min_dims=0, max_dims=3, min_side=1, max_side=4):
        return self._choose(
            hnp.array_shapes(
                min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
            )
        )

    def broadcastable_shapes(self, n, min_dims=0, max_dims=3):
        return self._choose(
            hnp.mutually_broadcastable_shapes(
                num_shapes=n, min_dims=min_dims, max_dims=max_dims, max_side=4
            ).map(lambda bs: bs.input_shapes)
        )

    def array(self, shape, interval, dtype=np.float64):
        return self.data.draw(
            hnp.arrays(
                np.float64, tuple(shape), elements=_elements(interval), unique=interval.distinct
            )
        ).astype(dtype)

    def axis(self, ndim, tuples=True, none=True):
        options = [st.none()] if none or not ndim else []
        if ndim:
            options.append(st.integers(-ndim, ndim - 1))
            if tuples:
                options.append(
                    st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(
                        lambda axes: tuple(a - ndim if i % 2 else a for i, a in enumerate(axes))
                    )
                )
        return self._choose(st.one_of(*options))

    def integers(self, low, high):
        return self._choose(st.integers(low, high))

    def choice(self, options):
        return self._choose(st.sampled_from(list(options)))


def draw_case(data: Any, spec: Any) -> tuple[tuple, dict, HypothesisDraw]:
    """``(args, kwargs, draw)`` for one registry op; ``draw.log`` replays its choices."""
    draw = HypothesisDraw(data)
    args, kwargs = spec.sample(draw)
    return args, kwargs, draw


def redraw(data: Any, spec: Any, first: HypothesisDraw) -> tuple[tuple, dict]:
    """New values for the op of ``first``, with every shape, axis and option it chose."""
    args, kwargs = spec.sample(HypothesisDraw(data, replay=first.log))
    return args, kwargs
