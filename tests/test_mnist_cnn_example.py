"""Tests of the CNN example, examples/mnist_cnn.py: the model's shapes, a short training
run, ``--resume`` and ``--no-jit`` bit for bit, and its command-line errors.

The training runs use a few hundred images (and, but for the accuracy test, a network
four times narrower than the default), so the file runs in well under a minute.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cnn():
    """examples/mnist_cnn.py, imported as a module (it is not a package)."""
    path = REPO / "examples" / "mnist_cnn.py"
    sys.path.insert(0, str(path.parent))  # it imports _cli beside it
    spec = importlib.util.spec_from_file_location("mnist_cnn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mnist_cnn"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("mnist_cnn", None)


def assert_trees_identical(a, b):
    """Same structure, and leaf by leaf the same dtype, shape and bits."""
    tg.tree_map(lambda x, y: None, a, b)  # raises if the structures differ
    for x, y in zip(tg.tree_leaves(a), tg.tree_leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert (x.dtype, x.shape) == (y.dtype, y.shape)
        assert np.array_equal(x, y)


def without_timings(metrics):
    out = copy.deepcopy(metrics)
    for key in ("seconds", "eval_seconds", "cpu_seconds"):
        out["history"].pop(key)
    out.pop("mean_seconds_per_epoch")
    out.pop("mean_cpu_seconds_per_epoch")
    return out


# A narrow network on 400 training images: an epoch takes a fraction of a second.
TINY = [
    "--channels", "4", "8",
    "--dense", "16",
    "--limit-train", "600",
    "--val-size", "200",
    "--limit-test", "300",
    "--batch-size", "64",  # 400 = 6 x 64 + 16: a full batch and a smaller last one
    "--train-eval-size", "0",
    "--no-progress",
]  # fmt: skip


# ----------------------------------------------------------------------------- the model


def test_parameter_and_output_shapes(cnn):
    params = cnn.init_params(np.random.default_rng(0), (16, 32), 128)
    shapes = tg.tree_map(np.shape, params)
    assert shapes == {
        "conv1": {"w": (16, 1, 5, 5), "b": (16,)},
        "conv2": {"w": (32, 16, 5, 5), "b": (32,)},
        "dense": {"W": (128, 32 * 7 * 7), "b": (128,)},
        "out": {"W": (10, 128), "b": (10,)},
    }
    assert all(leaf.dtype == np.float32 for leaf in tg.tree_leaves(params))
    assert cnn.count_parameters(params) == 215_370
    # Kaiming-uniform bounds: sqrt(6 / fan_in), fan_in = C kh kw for a kernel
    assert np.abs(params["conv2"]["w"]).max() <= np.sqrt(6 / (16 * 25))
    assert np.abs(params["conv2"]["w"]).max() > 0.9 * np.sqrt(6 / (16 * 25))
    for n in (1, 3):
        x = np.random.default_rng(n).random((n, 1, 28, 28), dtype=np.float32)
        out = cnn.logits(params, x)
        assert out.shape == (n, 10) and out.dtype == np.float32


def test_pooling_before_relu_is_conv_relu_pool(cnn):
    """The example pools before the ReLU: the same function as the usual order."""
    params = cnn.init_params(np.random.default_rng(1), (4, 8), 16)
    x = np.random.default_rng(2).random((3, 1, 28, 28), dtype=np.float32)

    def usual(params, x):
        h = x
        for name in ("conv1", "conv2"):
            h = tg.nn.conv2d(h, params[name]["w"], params[name]["b"], padding=2)
            h = tg.nn.max_pool2d(tg.nn.relu(h), 2)
        h = tg.nn.relu(tg.nn.affine(params["dense"]["W"], params["dense"]["b"], tg.nn.flatten(h)))
        return tg.nn.affine(params["out"]["W"], params["out"]["b"], h)

    np.testing.assert_array_equal(cnn.logits(params, x), usual(params, x))


def test_dropout_is_a_function_of_the_key(cnn):
    params = cnn.init_params(np.random.default_rng(0), (4, 8), 16)
    x = np.random.default_rng(3).random((4, 1, 28, 28), dtype=np.float32)
    root = tg.random.key(0)
    k0, k1 = cnn.dropout_key(root, 0), cnn.dropout_key(root, 1)
    assert not np.array_equal(k0, k1)
    a, b = cnn.logits(params, x, k0, 0.5), cnn.logits(params, x, k1, 0.5)
    np.testing.assert_array_equal(a, cnn.logits(params, x, k0, 0.5))
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, cnn.logits(params, x))
    np.testing.assert_array_equal(cnn.logits(params, x, k0, 0.0), cnn.logits(params, x))


def test_compiled_step_draws_fresh_masks_and_matches_python(cnn):
    """The key is an input of the compiled step: a new key, a new mask; the same numbers
    as the Python step, bit for bit."""
    args = cnn.parse_args(["--channels", "4", "8", "--dense", "16"])
    params = cnn.init_params(np.random.default_rng(0), args.channels, args.dense)
    opt = cnn.make_optimizer(args, steps_per_epoch=10)
    state = opt.init(params)
    rng = np.random.default_rng(4)
    x, y = rng.random((8, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 8)
    python_step = cnn.make_train_step(opt, 0.5)
    compiled = tg.jit(python_step)
    root = tg.random.key(1)
    losses = []
    for step in range(3):
        key = cnn.dropout_key(root, step)
        got = compiled(params, state, x, y, key)
        want = python_step(params, state, x, y, key)
        assert_trees_identical(got, want)
        losses.append(float(got[2]))
    assert compiled.compiled == 1
    assert len(set(losses)) == 3  # the same parameters, three masks


# ----------------------------------------------------------------------------- training


def test_short_training_run(cnn, mnist_path, tmp_path, capsys):
    """The default network, 1 epoch on 1000 images (50 steps of 20 at a constant rate of
    3e-3): test accuracy on 1000 test images. Observed 0.852, 0.821 and 0.799 (seeds 0,
    the default, 1 and 2); asserted with a margin."""
    metrics_path = tmp_path / "metrics.json"
    metrics = cnn.main(
        [
            "--data-dir", str(mnist_path),
            "--limit-train", "1200",
            "--val-size", "200",
            "--limit-test", "1000",
            "--epochs", "1",
            "--batch-size", "20",
            "--lr", "3e-3",
            "--schedule", "constant",
            "--metrics", str(metrics_path),
        ]
    )  # fmt: skip
    assert metrics["test_accuracy"] >= 0.70
    config = metrics["config"]
    assert (config["n_train"], config["n_val"], config["n_test"]) == (1000, 200, 1000)
    assert (config["channels"], config["dense"], config["dropout"]) == ([16, 32], 128, 0.5)
    assert (config["optimizer"], config["weight_decay"], config["augment"]) == ("adam", 0.0, 1)
    assert config["parameters"] == 215_370
    history = metrics["history"]
    assert history["epoch"] == [1]
    assert history["val_accuracy"][0] > 0.70
    assert history["seconds"][0] > 0 and history["cpu_seconds"][0] > 0
    assert metrics["completed"] is True
    assert json.loads(metrics_path.read_text()) == metrics
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("CNN conv5x5-16 pool ReLU, conv5x5-32 pool ReLU, dense 128")
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", lines[-1])
    assert sum(line.startswith("epoch ") for line in lines) == 1


@pytest.mark.parametrize("flags", [[], ["--schedule", "constant", "--optimizer", "adamw"]])
def test_resume_is_bit_identical(cnn, mnist_path, tmp_path, flags):
    common = ["--data-dir", str(mnist_path), *TINY, *flags]
    straight, split = tmp_path / "straight.npz", tmp_path / "split.npz"
    full = cnn.main([*common, "--epochs", "2", "--save", str(straight)])
    if "constant" in flags:  # a constant rate: a 1-epoch run can be extended
        first = cnn.main([*common, "--epochs", "1", "--save", str(split)])
    else:  # the schedule spans --epochs: interrupt a 2-epoch run
        first = cnn.main([*common, "--epochs", "2", "--stop-after", "1", "--save", str(split)])
    assert first["history"]["epoch"] == [1]
    assert first["completed"] is ("constant" in flags)
    resumed = cnn.main([*common, "--epochs", "2", "--resume", str(split), "--save", str(split)])
    assert resumed["resumed_from_epoch"] == 1
    tree_a, meta_a = tg.checkpoint.load(straight)
    tree_b, meta_b = tg.checkpoint.load(split)
    assert_trees_identical(tree_a, tree_b)  # parameters and Adam's state
    assert meta_a["rng_state"] == meta_b["rng_state"]
    assert int(tree_a["opt_state"][0]) == 2 * 7  # 7 updates an epoch
    assert without_timings(resumed)["history"] == without_timings(full)["history"]
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_no_jit_is_bit_identical(cnn, mnist_path, tmp_path):
    common = ["--data-dir", str(mnist_path), *TINY, "--epochs", "1"]
    a, b = tmp_path / "jit.npz", tmp_path / "python.npz"
    compiled = cnn.main([*common, "--save", str(a)])
    python = cnn.main([*common, "--save", str(b), "--no-jit"])
    assert_trees_identical(tg.checkpoint.load(a)[0], tg.checkpoint.load(b)[0])
    assert without_timings(compiled) == without_timings(python)


def test_resume_refuses_other_settings(cnn, mnist_path, tmp_path):
    ckpt = tmp_path / "c.npz"
    common = ["--data-dir", str(mnist_path), *TINY, "--epochs", "1"]
    cnn.main([*common, "--save", str(ckpt)])
    with pytest.raises(SystemExit, match=r"--lr: 0\.001 -> 0\.002"):
        cnn.main([*common, "--lr", "0.002", "--resume", str(ckpt)])
    with pytest.raises(SystemExit, match=r"--channels: \[4, 8\] -> \[4, 6\]"):
        cnn.main([*common, "--channels", "4", "6", "--resume", str(ckpt)])
    with pytest.raises(SystemExit, match=r"--dropout: 0\.5 -> 0\.25"):
        cnn.main([*common, "--dropout", "0.25", "--resume", str(ckpt)])
    with pytest.raises(SystemExit, match="--epochs: 1 -> 2"):  # the cosine spans --epochs
        cnn.main([*common[:-2], "--epochs", "2", "--resume", str(ckpt)])
    other = tmp_path / "other.npz"
    tg.checkpoint.save(other, {"params": {}}, format="mnist_tape/1")
    with pytest.raises(SystemExit, match=r"not a mnist_cnn\.py checkpoint"):
        cnn.main([*common, "--resume", str(other)])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--channels", "0", "8"], "--channels: must be an integer >= 1, got 0"),
        (["--channels", "4"], "--channels: expected 2 arguments"),
        (["--dense", "-1"], "--dense: must be an integer >= 1, got -1"),
        (["--dropout", "1"], r"--dropout: must lie in \[0, 1\), got 1"),
        (["--augment", "28"], r"--augment: must be an integer in \[0, 27\], got 28"),
        (["--lr", "0"], "--lr: must be a positive number, got 0"),
        (["--weight-decay", "-0.1"], "--weight-decay: must be a number >= 0"),
        (["--optimizer", "sgd"], "--optimizer: invalid choice: 'sgd'"),
        (["--warmup", "10", "--schedule", "constant"], "--warmup needs --schedule cosine"),
        (["--resume", "/nonexistent/ckpt.npz"], "--resume /nonexistent/ckpt.npz: no such file"),
        (["--save", "/nonexistent/dir/c.npz"], "--save /nonexistent/dir/c.npz: the folder"),
    ],
)
def test_bad_flags_are_one_message(cnn, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cnn.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: mnist_cnn.py")
    assert re.search(f"mnist_cnn.py: error: (argument )?{message}", err), err


def test_weight_decay_defaults_to_the_optimizers(cnn):
    assert cnn.parse_args([]).weight_decay == 0.0
    assert cnn.parse_args(["--optimizer", "adamw"]).weight_decay == 0.01
    assert cnn.parse_args(["--optimizer", "adamw", "--weight-decay", "0"]).weight_decay == 0.0


def test_errors_found_after_loading_the_data(cnn, mnist_path, tmp_path, monkeypatch):
    common = ["--data-dir", str(mnist_path), "--limit-train", "300", "--no-progress"]
    with pytest.raises(SystemExit, match="--val-size 300 must be smaller than the number of"):
        cnn.main([*common, "--val-size", "300"])
    with pytest.raises(
        SystemExit, match=r"--warmup 5 must be smaller than the number of training steps \(4\)"
    ):
        cnn.main([*common, "--val-size", "100", "--batch-size", "100", "--epochs", "2",
                  "--warmup", "5"])  # fmt: skip
    # no MNIST, and every download fails at once (with or without a network)
    monkeypatch.setattr(tg.mnist, "MIRRORS", ["file:///nonexistent/tapegrad-test-mirror/"])
    with pytest.raises(SystemExit, match=r"mnist_cnn\.py: error: MNIST files missing from"):
        cnn.main(["--data-dir", str(tmp_path), "--limit-train", "300"])


def test_plot(cnn, mnist_path, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    cnn.main(["--data-dir", str(mnist_path), *TINY, "--epochs", "1", "--plot", str(path)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
