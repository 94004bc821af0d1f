"""A whole MNIST training step (forward, backward, SGD update) compiled with tg.jit.

The docs build runs this script and shows what it prints on the "Compiling the tape" page.
"""

import numpy as np

import tapegrad as tg

rng = np.random.default_rng(0)
params = tg.nn.init_mlp(rng, [784, 100, 100, 10])  # float32, layout {"layers": [...]}
opt = tg.optim.sgd(0.1)


def loss(params, images, labels):
    return tg.nn.nll(tg.nn.mlp(params, images), labels)


@tg.jit
def train_step(params, opt_state, images, labels):
    value, grads = tg.value_and_grad(loss)(params, images, labels)
    params, opt_state = opt.update(params, grads, opt_state)
    return params, opt_state, value


images = rng.random((128, 784), dtype=np.float32)
labels = rng.integers(0, 10, 128)
program = train_step.lower(params, opt.init(params), images, labels)
print(f"# {program.records} records traced, {program.lines} operations after the passes")
print(program)
