"""The example scripts without MNIST: one message on stderr, exit status 1, no traceback.

Each script runs in a subprocess as ``__main__``, after ``tapegrad.mnist.MIRRORS`` has
been pointed at a ``file://`` URL that does not exist, so every download fails at once,
with or without a network. (And the examples share code through ``examples/_cli.py``
only: none imports another.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tapegrad.mnist import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["mnist_tape.py", "mnist_cnn.py", "newton_logreg.py"]
FILES = [f"{stem}.gz" for stem in MNIST_FILES.values()]

RUN_WITHOUT_MIRRORS = """
import os, runpy, sys
import tapegrad.mnist
tapegrad.mnist.MIRRORS[:] = ["file:///nonexistent/tapegrad-test-mirror/"]
script, sys.argv = sys.argv[1], sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


def run_example(script: str, *args: str, data_dir: Path) -> subprocess.CompletedProcess:
    pythonpath = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    env["TAPEGRAD_DATA_DIR"] = str(data_dir)
    argv = [sys.executable, "-c", RUN_WITHOUT_MIRRORS, str(ROOT / "examples" / script), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def assert_one_clear_error(result: subprocess.CompletedProcess, script: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"{script}: error: ")
    assert result.stderr.count("error:") == 1
    return result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_mnist_and_no_download_is_one_message(tmp_path, script):
    err = assert_one_clear_error(run_example(script, data_dir=tmp_path), script)
    assert all(name in err for name in FILES)
    assert f"missing from {tmp_path}" in err  # the directory looked in
    assert f"in {tmp_path}" in err.split("Put the files", 1)[1]  # where to put them
    assert "$TAPEGRAD_DATA_DIR" in err and "a directory that holds them" in err
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def _real_data_dir() -> Path:
    env = os.environ.get("TAPEGRAD_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.parametrize("script", SCRIPTS)
def test_only_the_missing_files_are_named(tmp_path, script):
    source = _real_data_dir()
    train = [n for n in FILES if n.startswith("train")]
    if not all((source / n).is_file() for n in train):
        pytest.skip(f"the gzip-compressed MNIST training files are not in {source}")
    data_dir = tmp_path / "partial"
    data_dir.mkdir()
    for name in train:
        (data_dir / name).symlink_to(source / name)
    err = assert_one_clear_error(
        run_example(script, "--data-dir", str(data_dir), data_dir=tmp_path), script
    )
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in err
    assert "train-" not in err and f"missing from {data_dir}" in err


@pytest.mark.parametrize("script", SCRIPTS)
def test_damaged_file_is_one_message_naming_it(tmp_path, script):
    damaged = tmp_path / FILES[0]
    damaged.write_bytes(b"not gzip at all")
    err = assert_one_clear_error(run_example(script, data_dir=tmp_path), script)
    assert str(damaged) in err and "corrupt gzip data" in err


def test_no_example_imports_another():
    examples = ROOT / "examples"
    scripts = {path.stem for path in examples.glob("*.py")} - {"_cli"}
    for path in examples.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & scripts, f"{path.name} imports {sorted(imported & scripts)}"


# ------------------------------------------------------------------- resuming a checkpoint


@pytest.fixture(scope="module")
def cli():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import _cli
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return _cli


def test_resuming_with_other_training_settings_names_each_flag(cli):
    config = {"lr": 0.1, "batch_size": 64, "schedule": "cosine", "epochs": 5}
    saved = {"lr": 0.1, "batch_size": 32, "schedule": "cosine", "epochs": 3}
    # a cosine schedule spans all the epochs, so --epochs must match too
    with pytest.raises(SystemExit) as raised:
        cli.check_resume_settings("prog.py", "c.npz", saved, config, ["lr", "batch_size"])
    assert str(raised.value) == (
        "prog.py: error: cannot resume from c.npz: it was trained with other settings "
        "(saved -> now): --batch-size: 32 -> 64; --epochs: 3 -> 5"
    )
    constant = {**config, "schedule": "constant", "batch_size": 32}
    cli.check_resume_settings(
        "prog.py", "c.npz", {**saved, "schedule": "constant"}, constant, ["lr"]
    )


def test_resume_point_restores_the_generator_and_refuses_extra_epochs(cli):
    rng = np.random.default_rng(7)
    rng.random(3)
    meta = {"epoch": 2, "rng_state": rng.bit_generator.state}
    epoch, restored = cli.resume_point("prog.py", "c.npz", meta, {"epochs": 4})
    assert epoch == 2 and restored.random() == rng.random()
    with pytest.raises(
        SystemExit, match=r"c\.npz has already trained 2 epochs, more than --epochs 1"
    ):
        cli.resume_point("prog.py", "c.npz", meta, {"epochs": 1})
