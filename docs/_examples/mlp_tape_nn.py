"""The same kind of network written with tapegrad.nn: one primitive per layer.

The docs build runs this script and shows what it prints on the "How it works" page.
"""

import numpy as np

import tapegrad as tg


def loss(params, x, labels):
    return tg.nn.nll(tg.nn.mlp(params, x, activation="tanh"), labels)


rng = np.random.default_rng(0)
params = tg.nn.init_mlp(rng, [4, 5, 3], activation="tanh")  # float32, W of shape (out, in)
x = rng.normal(size=(8, 4)).astype(np.float32)
labels = rng.integers(0, 3, size=8)

tape = tg.make_tape(loss)(params, x, labels)
print(tape)
