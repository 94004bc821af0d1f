"""The tape of a two-layer MLP's loss, written with tapegrad's generic ops.

The docs build runs this script and shows what it prints on the "How it works" page.
"""

import numpy as np

import tapegrad as tg


def loss(params, x, labels):
    hidden = tg.tanh(x @ params["W1"] + params["b1"])  # (batch, 4) @ (4, 5) + (5,)
    logits = hidden @ params["W2"] + params["b2"]  # (batch, 5) @ (5, 3) + (3,)
    log_probs = tg.log_softmax(logits, axis=1)
    picked = log_probs[np.arange(len(labels)), labels]  # log p(correct class), (batch,)
    return -tg.mean(picked)


rng = np.random.default_rng(0)
params = {
    "W1": rng.normal(size=(4, 5)).astype(np.float32),
    "b1": np.zeros(5, np.float32),
    "W2": rng.normal(size=(5, 3)).astype(np.float32),
    "b2": np.zeros(3, np.float32),
}
x = rng.normal(size=(8, 4)).astype(np.float32)  # 8 examples, 4 features
labels = rng.integers(0, 3, size=8)  # 8 labels in {0, 1, 2}

tape = tg.make_tape(loss)(params, x, labels)
print(tape)
