"""Tests of tapegrad.distributed: real 2-process MPI jobs, and the one-process fallback.

The MPI tests launch ``mpiexec -n 2`` (once ``-n 3``; from the ``distributed`` extra, which
CI installs: they fail rather than skip without it) on the jobs of ``tests/mpi_jobs.py`` and on
``examples/mnist_tape.py``, each under a hard timeout that kills the whole process group,
so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mpi_jobs
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import distributed as dist

REPO = Path(__file__).resolve().parents[1]

JOBS = Path(mpi_jobs.__file__)
EXAMPLE = REPO / "examples" / "mnist_tape.py"
TIMEOUT = 60  # seconds for any one mpiexec run; the runs here take 1 to 6 s


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (the venv's, from the mpich wheel), else on PATH."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if found is None:
        pytest.fail("mpiexec not found: pip install -e '.[distributed]'")
    return found


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in dist.LAUNCHER_SIZE_VARIABLES and not k.startswith(("PMI_", "OMPI_"))
    }
    env.update(
        HYDRA_LAUNCHER="fork",  # start the ranks as local processes, never through ssh
        OPENBLAS_NUM_THREADS="1",  # two ranks on two cores: one BLAS thread each
        MKL_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run(command: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; kill the group if it outlives ``timeout``."""
    proc = subprocess.Popen(
        command,
        env=child_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command)} still running after {timeout} s (killed)\n{out}\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def mpirun(*args: str, n: int = 2, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return run([mpiexec(), "-n", str(n), sys.executable, *args], timeout)


def check_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


# ----------------------------------------------------------------------------- 2 ranks


def test_broadcast_and_allreduce_on_two_ranks():
    """Values, dtypes and leaf kinds; one Allreduce per dtype; weights (see job_api)."""
    result = mpirun(str(JOBS), "api")
    check_ok(result)
    assert result.stdout.split() == ["ok"]  # only rank 0 prints


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_a_reduction_through_shared_memory_gives_the_formula_and_keeps_held_results(ranks):
    """The shared-memory path (forced for small trees): every leaf is
    ``(w_0 x_0 + w_1 x_1 + ...) * (1 / sum w)`` in its dtype, bit for bit, on every rank
    (4 ranks: a rank whose own term comes between others'), for
    float32, float64, float16, complex64, numpy scalars and Python floats; results are
    read-only; while results (or a view of one, on one rank only) hold both buffers the
    calls take MPI_Allreduce and the held values never change; weights of 0 everywhere are
    an error on every rank; layouts past the limit of windows take MPI_Allreduce; the job
    then exits cleanly. See ``job_shared``."""
    result = mpirun(str(JOBS), "shared", n=ranks)
    check_ok(result)
    assert result.stdout.split() == ["ok"]


@pytest.mark.parametrize("path", ["shared", "mpi"])
@pytest.mark.parametrize(("ranks", "batch"), [(2, 64), (2, 63), (3, 64)])
def test_ranks_match_one_process(tmp_path, ranks, batch, path):
    """100 momentum steps of a small MLP at global batch ``batch``: the ranks agree bit for
    bit after every step (checked inside the job), and with 1 process to float32 round-off.
    3 ranks on 2 cores share them; MPICH's reduction still hands each the same bits.

    The tolerance: the two runs differ only in the order of the float32 additions (each
    rank sums its shard of the batch, then the shards are averaged), an ulp or so per
    gradient entry, compounded over 100 steps of lr 0.1 and momentum 0.9. Observed here:
    at most 4e-7, 5e-7 and 3e-7 (the three cases) on weights up to 1.2, i.e. about 4 float32
    ulps of the largest weight. Asserted: 1e-5 of the largest weight (about 80 ulps of it),
    room for a BLAS that blocks its sums differently. A wrong reduction is far outside:
    the control (one process on 63 of 64 examples, as a dropped example or an unweighted
    mean of unequal shards would do) moves the weights by 0.16 to 0.32 of the largest;
    asserted above 1e-2 of it. With 63 examples on 2 ranks the shards are 31 and 32, with
    64 on 3 ranks 21, 21 and 22, so the weighted mean is what makes the runs agree (an
    unweighted one ends 0.17 away). ``path``: the gradients are averaged through shared
    memory (forced: the tree is small) or by MPI_Allreduce (the job checks which).
    """
    out = tmp_path / "params.npz"
    check_ok(mpirun(str(JOBS), "train", "100", str(batch), str(out), path, n=ranks))
    two, _ = tg.checkpoint.load(out)
    one = mpi_jobs.train(100, batch)
    scale = max(float(np.max(np.abs(leaf))) for leaf in tg.tree_leaves(one))
    for a, b in zip(tg.tree_leaves(one), tg.tree_leaves(two), strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * scale)
    wrong = mpi_jobs.train(100, batch, use=1 - 1 / 64)
    gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(tg.tree_leaves(one), tg.tree_leaves(wrong), strict=True)
    )
    assert gap > 1e-2 * scale


def test_mismatched_trees_are_named_and_an_uncaught_error_ends_the_job():
    """Every rank raises the same ValueError naming the difference; then rank 1 raises
    alone while rank 0 waits in a barrier: the exception hook aborts both."""
    t0 = time.monotonic()
    result = mpirun(str(JOBS), "mismatch")
    assert time.monotonic() - t0 < 30
    assert result.returncode != 0
    prefix = "allreduce_mean: the trees differ across ranks: "
    want = {
        "shape": prefix + "['W'] is float32 of shape (3, 4) on rank 0 but float32 of shape "
        "(3, 5) on rank 1",
        "dtype": prefix + "['W'] is float32 of shape (3,) on rank 0 but float64 of shape (3,) "
        "on rank 1",
        "key": prefix + "rank 0 has a leaf ['b'] where rank 1 has ['c']",
        "leaves": prefix + "rank 1 has a leaf ['W'][1] that rank 0 has not",
        "weight": prefix + "rank 0 called it with a weight, rank 1 without a weight",
        "broadcast": "broadcast: the trees differ across ranks: ['W'] is float64 of shape "
        "(2, 2) on rank 0 but float64 of shape (2, 3) on rank 1",
    }
    for rank in (0, 1):
        for case, message in want.items():
            assert f"rank {rank} {case}: {message}" in result.stdout, (case, result.stdout)
    assert "RuntimeError: rank 1 gives up" in result.stderr
    assert "MPI_Abort" in result.stderr


def example_args(tmp_path: Path, mnist_path: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(mnist_path), "--limit-train", "1200", "--val-size", "200",
        "--limit-test", "300", "--hidden", "32", "--batch-size", "100", "--epochs", "3",
        "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("failure", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_and_the_checkpoint_survives(tmp_path, mnist_path, failure):
    """The example on 2 ranks; in epoch 2 rank 1 raises, or is killed by SIGKILL. The job
    must end non-zero within a bounded time, and the checkpoint of epoch 1 must load and
    resume (on 1 process: a checkpoint does not depend on the number of processes)."""
    ckpt = tmp_path / "ckpt.npz"
    args = example_args(tmp_path, mnist_path, "--save", str(ckpt))
    t0 = time.monotonic()
    result = mpirun(str(JOBS), "example", failure, str(EXAMPLE.parent), *args)
    assert time.monotonic() - t0 < 30
    assert result.returncode != 0
    if failure == "raise":
        assert "RuntimeError: rank 1 fails in epoch 2" in result.stderr
    assert result.stdout.count("epoch 1/3") == 1  # rank 0 alone printed epoch 1
    assert "epoch 2/3" not in result.stdout
    _, meta = tg.checkpoint.load(ckpt)
    assert meta["epoch"] == 1
    assert meta["config"]["processes"] == 2
    resumed = run([sys.executable, str(EXAMPLE), *args, "--resume", str(ckpt)])
    check_ok(resumed)
    assert "resumed from" in resumed.stdout
    assert "epoch 3/3" in resumed.stdout
    _, meta = tg.checkpoint.load(ckpt)
    assert meta["epoch"] == 3
    assert meta["config"]["processes"] == 1


def test_example_on_two_ranks_matches_one_process(tmp_path, mnist_path):
    """``mpiexec -n 2 python examples/mnist_tape.py``, unchanged: rank 0 alone prints and
    writes; it says how many processes trained; it resumes a 1-process checkpoint; its
    numbers agree with a 1-process run (float32 round-off in the gradients: the losses to
    1e-4, the accuracies to 2 of the 300 test images)."""
    metrics = {}
    for n in (1, 2):
        path = tmp_path / f"metrics{n}.json"
        args = example_args(tmp_path, mnist_path, "--metrics", str(path))
        result = mpirun(str(EXAMPLE), *args, n=n)
        check_ok(result)
        metrics[n] = json.loads(path.read_text())
        assert result.stdout.count("test accuracy") == 1
        assert result.stdout.count("epoch 3/3") == 1
    assert "trained by 2 processes" in result.stdout
    assert "data parallel: 2 processes, each computing the gradient of 50 of the 100" in (
        result.stdout
    )
    one, two = metrics[1], metrics[2]
    assert (one["config"]["processes"], two["config"]["processes"]) == (1, 2)
    for key in ("train_loss", "val_loss", "batch_loss"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-4)
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 2 / 300

    # --resume with another number of processes: a 1-process checkpoint, 2 ranks
    ckpt = tmp_path / "ckpt.npz"
    check_ok(mpirun(str(EXAMPLE), *example_args(tmp_path, mnist_path), "--save", str(ckpt),
                    "--stop-after", "1", n=1))  # fmt: skip
    result = mpirun(str(EXAMPLE), *example_args(tmp_path, mnist_path), "--resume", str(ckpt))
    check_ok(result)
    assert result.stdout.count("resumed from") == 1
    assert result.stdout.splitlines()[-1].startswith("test accuracy: ")
    final = float(result.stdout.splitlines()[-1].split()[2])
    assert abs(final - one["test_accuracy"]) <= 2 / 300


# ----------------------------------------------------------------------------- 1 process


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the module caches what it found at first use)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**child_env(), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return result


def test_one_process_without_a_launcher_never_loads_mpi():
    code = """
import sys, numpy as np
from tapegrad import distributed as dist
tree = {"w": np.ones(3, np.float32)}
assert (dist.rank(), dist.size(), dist.is_main()) == (0, 1, True)
assert dist.broadcast(tree) is tree and dist.allreduce_mean(tree, weight=3) is tree
assert dist.shard(7) == slice(0, 7)
dist.barrier()
with dist.abort_on_error():
    pass
assert "mpi4py.MPI" not in sys.modules, "MPI was loaded"
print("ok")
"""
    result = python(code)
    assert result.stdout.strip() == "ok", result.stderr
    # mpi4py not installed at all: the same
    result = python("import sys; sys.modules['mpi4py'] = None\n" + code)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_launcher_without_mpi4py_is_a_clear_error():
    """N processes that would each train alone, writing the same files: refused."""
    code = "import sys; sys.modules['mpi4py'] = None\nimport tapegrad.distributed as d; d.size()"
    result = python(code, PMI_SIZE="2")
    assert result.returncode != 0
    assert "started by an MPI launcher (PMI_SIZE=2) but mpi4py is not installed" in result.stderr
    assert "pip install 'tapegrad[distributed]'" in result.stderr


def test_a_launcher_of_another_mpi_is_a_clear_error():
    """A launcher announcing 2 processes to an MPI that finds itself alone (here: no
    launcher at all, so MPI starts as a singleton) is the wrong-mpiexec mistake."""
    result = python("import tapegrad.distributed as d; d.size()", OMPI_COMM_WORLD_SIZE="2")
    assert result.returncode != 0
    assert "started 2 processes (OMPI_COMM_WORLD_SIZE) but MPI reports 1" in result.stderr


@pytest.mark.parametrize("n", [0, 1, 5, 63, 64, 1000])
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_shards_tile_the_range(n, size):
    parts = [dist.shard(n, rank=r, size=size) for r in range(size)]
    assert [i for part in parts for i in range(n)[part]] == list(range(n))
    lengths = [len(range(n)[part]) for part in parts]
    assert max(lengths) - min(lengths) <= 1


def test_argument_errors():
    with pytest.raises(ValueError, match=r"rank must lie in \[0, size\), got rank 2 of size 2"):
        dist.shard(10, rank=2, size=2)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        dist.shard(10.0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        dist.shard(-1)
    with pytest.raises(ValueError, match=r"root must lie in \[0, 1\), got 1"):
        dist.broadcast({"w": np.ones(2)}, root=1)
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0, got -1\.0"):
        dist.allreduce_mean({"w": np.ones(2)}, weight=-1)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0, got nan"):
        dist.allreduce_mean({"w": np.ones(2)}, weight=float("nan"))


def test_abort_on_error_lets_errors_through_in_one_process():
    with pytest.raises(KeyError), dist.abort_on_error():
        raise KeyError("x")
    with pytest.raises(SystemExit), dist.abort_on_error():
        raise SystemExit(2)
