"""``w2gn fit --processes``: one fit on both CPU cores, each process one direction of the two-sided objective.

The 2-process run must compute the same steps as one process (the gradients of the two halves are summed
by an all-reduce instead of by autograd), follow one time budget, and stop cleanly on Ctrl-C with a
checkpoint that resumes."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from w2gn import TransportMap
from w2gn import checkpoint as ckpt
from w2gn.cli import processes
from w2gn.cli.fit import split_for

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
SMALL = ["--batch-size", "32", "--hidden", "8,8,4", "--pretrain-iterations", "5", "--log-every", "10", "--seed", "3"]


def _data(tmp_path: Path) -> list[str]:
    gen = np.random.default_rng(0)
    x = gen.normal(size=(400, 3)) * [1.0, 2.0, 0.5] + 4.0
    y = np.tanh(gen.normal(size=(400, 3))) * 2.0 - 1.0
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return [str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]


def _w2gn(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w2gn", *args], env=ENV, capture_output=True, text=True,
                          timeout=300, **kwargs)


def _max_weight_difference(a: TransportMap, b: TransportMap) -> float:
    diff = 0.0
    for name in ("forward_potential", "inverse_potential"):
        for u, v in zip(getattr(a, name).parameters(), getattr(b, name).parameters()):
            diff = max(diff, float((u - v).detach().abs().max()))
    return diff


def test_two_processes_compute_the_one_process_steps(tmp_path):
    data = _data(tmp_path)
    common = ["fit", *data, "--quiet", "--no-checkpoints", "--iterations", "40", "--dtype", "float64", *SMALL]
    for name, extra in (("one", ["--processes", "1"]), ("two", ["--processes", "2"]),
                        ("other", ["--processes", "1", "--seed", "4"])):
        done = _w2gn([*common, "-o", str(tmp_path / f"{name}.pt"), *extra])
        assert done.returncode == 0, done.stderr[-3000:]
    one, two, other = (TransportMap.load(tmp_path / f"{n}.pt") for n in ("one", "two", "other"))
    # float64 round-off of the gradient sums only (autograd's accumulation vs the all-reduce)
    assert _max_weight_difference(one, two) < 1e-9
    assert _max_weight_difference(one, other) > 1e-3  # the comparison can fail: another seed, other weights
    h1, h2 = one.info["history"], two.info["history"]
    assert [r["iteration"] for r in h1] == [r["iteration"] for r in h2]
    for key in ("loss", "cycle_y", "cycle_x", "w2_dual", "w2_dual_inverse", "correlation"):
        assert h2[-1][key] == pytest.approx(h1[-1][key], rel=1e-9, abs=1e-12), key


def test_two_processes_follow_one_time_budget(tmp_path):
    data = _data(tmp_path)
    t0 = time.monotonic()
    done = _w2gn(["fit", *data, "-o", str(tmp_path / "m.pt"), "--quiet", "--no-checkpoints", "--processes", "2",
                  "--iterations", "10000000", "--time-budget", "3", *SMALL])
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - t0 < 120  # neither rank waits for a schedule the other left
    info = TransportMap.load(tmp_path / "m.pt").info
    assert 10 <= info["iterations"] < 10_000_000
    assert info["stop"]["reason"] == "time budget"


def test_ctrl_c_on_two_processes_saves_a_checkpoint_that_resumes(tmp_path):
    data = _data(tmp_path)
    out, ckdir = tmp_path / "m.pt", tmp_path / "m.pt.ckpt"
    pr = subprocess.Popen([sys.executable, "-m", "w2gn", "fit", *data, "-o", str(out), "--quiet", "--processes", "2",
                           "--iterations", "1000000", "--checkpoint-every", "20", *SMALL],
                          env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(int(f.stem.split("-")[1]) >= 40 for f in ckpt.list_checkpoints(ckdir)):
            assert pr.poll() is None, pr.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.02)
        os.killpg(pr.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = pr.communicate(timeout=60)
    finally:
        if pr.poll() is None:
            os.killpg(pr.pid, signal.SIGKILL)
    assert pr.returncode == 130, err[-3000:]
    assert "w2gn resume" in err and "Traceback" not in err
    saved = ckpt.list_checkpoints(ckdir)
    last = int(saved[-1].stem.split("-")[1])
    assert last >= 40 and not out.exists()
    done = _w2gn(["resume", str(ckdir), "--iterations", str(last + 30)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert TransportMap.load(out).info["iterations"] == last + 30


def test_a_failing_rank_stops_the_others_and_its_message_is_shown(capsys):
    log = tempfile.TemporaryFile(mode="w+")
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    bad = subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('rank 1 says why'); sys.exit(3)"],
                           stderr=log)
    t0 = time.monotonic()
    assert processes._wait([slow, bad], [log]) == 3
    assert time.monotonic() - t0 < 30 and slow.poll() is not None
    assert "rank 1 says why" in capsys.readouterr().err
    log.close()


def test_how_many_processes_and_how_they_split(monkeypatch):
    monkeypatch.setattr(processes, "usable_cores", lambda: 2)
    assert processes.resolve_processes("auto", "cpu", "both") == 2
    assert processes.resolve_processes("auto", "cpu", "theta") == 1  # no two halves to share
    assert processes.resolve_processes("auto", "cuda", "both") == 1
    assert processes.resolve_processes("3", "cpu", "theta") == 3
    assert processes.resolve_processes("auto", "cpu", "both", iterations=100) == 1  # start-up would not pay
    monkeypatch.setattr(processes, "usable_cores", lambda: 1)  # e.g. taskset -c 0
    assert processes.resolve_processes("auto", "cpu", "both") == 1
    assert split_for(2, "both") == "directions"
    assert split_for(4, "both") == split_for(2, "theta") == "batch"
    assert split_for(2, "both", "batch") == "batch"
    assert torch.get_num_threads() >= 1
