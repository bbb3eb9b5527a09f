"""Exact resume: an interrupted run continued from its checkpoint ends with bit-identical weights."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from w2gn import TransportMap, W2GNSolver
from w2gn import checkpoint as ckpt
from w2gn.cli import main
from w2gn.errors import W2GNUserError

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = dict(batch_size=32, hidden=[8, 8], pretrain_iterations=10, log_every=10, progress=False, seed=3)



def _data(seed: int = 0, n: int = 300, d: int = 2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), 1.5 * rng.normal(size=(n, d)) + 1.0


def _same_weights(a: TransportMap, b: TransportMap, note: str = "") -> None:
    for pa, pb in ((a.forward_potential, b.forward_potential), (a.inverse_potential, b.inverse_potential)):
        sa, sb = pa.state_dict(), pb.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{k} differs {note}"


class _StepCounter:
    """Counts the training steps W2GN solvers run while it is installed (their ``step`` calls)."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = W2GNSolver.step

        def counting(solver, *args, **kwargs):
            self.calls += 1
            return real(solver, *args, **kwargs)

        monkeypatch.setattr(W2GNSolver, "step", counting)


def _assert_continued(steps_run: int, from_iteration: int, total: int) -> None:
    """A resumed run continued from its checkpoint: it ran only the steps after it. Equal weights alone
    would not show this, since a run retrained from scratch with the same seed ends with the same ones."""
    assert from_iteration > 0, "the resume had no checkpoint to continue from"
    assert steps_run == total - from_iteration, (
        f"the resumed run ran {steps_run} steps; continuing from iteration {from_iteration} of {total} "
        f"takes {total - from_iteration}")


def test_a_resume_that_retrains_from_scratch_is_caught(monkeypatch):
    """Negative control of the resume tests below: a 'resume' that ignores its checkpoint and retrains
    gives exactly the uninterrupted run's weights (so the weight comparison cannot tell), but runs every
    step again, which :func:`_assert_continued` refuses."""
    x, y = _data()
    full = W2GNSolver(iterations=30, **TINY).fit(x, y)
    counter = _StepCounter(monkeypatch)
    fake = W2GNSolver(iterations=30, **TINY).fit(x, y)  # what such a resume does
    _same_weights(full, fake)
    with pytest.raises(AssertionError, match="ran 30 steps"):
        _assert_continued(counter.calls, from_iteration=10, total=30)


def test_resume_in_process_is_bit_identical(tmp_path):
    x, y = _data()
    full = W2GNSolver(iterations=60, **TINY).fit(x, y)
    first = W2GNSolver(iterations=30, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY)
    first.fit(x, y)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [f"ckpt-0000000{i}0.ckpt" for i in (1, 2, 3)]
    # draw from every global RNG in between: the checkpoint restores them all
    torch.rand(5), np.random.rand(3), random.random()
    second = W2GNSolver(iterations=60, checkpoint_dir=str(tmp_path), checkpoint_every=10, resume=True, **TINY)
    resumed = second.fit(x, y)
    assert second.resumed_from.endswith("ckpt-000000030.ckpt")
    _same_weights(full, resumed)
    assert [r["iteration"] for r in resumed.info["history"]] == [float(i) for i in range(10, 61, 10)]


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    x, y = _data()
    a = W2GNSolver(iterations=10, **TINY).fit(x, y)
    s = W2GNSolver(iterations=10, checkpoint_dir=str(tmp_path / "new"), resume=True, **TINY)
    b = s.fit(x, y)
    assert s.resumed_from is None
    _same_weights(a, b)


def test_resume_refuses_other_data_and_options_unless_forced(tmp_path):
    x, y = _data()
    W2GNSolver(iterations=10, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY).fit(x, y)
    with pytest.raises(W2GNUserError, match=r"source data differ \(.*sha256"):
        W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), resume=True, **TINY).fit(x + 1, y)
    with pytest.raises(W2GNUserError, match="option lambda_cycle was None, now 3.0.*--force-resume"):
        W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), resume=True, lambda_cycle=3.0, **TINY).fit(x, y)
    with pytest.raises(W2GNUserError, match=r"shape \(2,\).*shape \(3,\).*wrong dimension"):
        x3, y3 = _data(d=3)
        W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), resume=True, force_resume=True, **TINY).fit(x3, y3)
    with pytest.raises(W2GNUserError, match="network 'theta' does not fit"), pytest.warns(UserWarning, match="hidden"):
        opts = {**TINY, "hidden": [4, 4]}
        W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), resume=True, force_resume=True, **opts).fit(x, y)
    with pytest.warns(UserWarning, match="despite"):
        s = W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), resume=True, force_resume=True, lambda_cycle=3.0, **TINY)
        s.fit(x, y)
    assert s.iteration == 20 and s.resumed_from is not None


def test_resume_with_new_lr_applies_it(tmp_path):
    x, y = _data()
    W2GNSolver(iterations=10, lr=1e-3, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY).fit(x, y)
    s = W2GNSolver(iterations=12, lr=1e-4, checkpoint_dir=str(tmp_path), resume=True, **TINY)
    s.fit(x, y)
    assert {g["lr"] for o in s.optimizers().values() for g in o.param_groups} == {1e-4}


def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(tmp_path, monkeypatch):
    """A CLI fit killed with SIGKILL, then 'w2gn resume', continues from the newest checkpoint (only the
    remaining steps run) and equals an uninterrupted run (CPU, 1 thread)."""
    x, y = _data(n=400)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    # 400 iterations: the kill comes at most 80 iterations in, so the child cannot finish on its own
    # between seeing the checkpoint and the signal (with 120 it sometimes did on an idle machine)
    args = ["fit", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--iterations", "400", "--batch-size", "32",
            "--hidden", "8,8", "--pretrain-iterations", "10", "--log-every", "20", "--seed", "3", "--quiet"]
    ckdir = tmp_path / "killed.pt.ckpt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "w2gn", *args, "-o", str(tmp_path / "killed.pt"),
                              "--checkpoint-every", "10"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seed = random.randrange(10**6)
    rnd = random.Random(seed)
    # a random moment: shortly after a random periodic checkpoint (10..80 of 400 iterations)
    kill_after, delay = 10 * rnd.randint(1, 8), rnd.uniform(0.0, 0.05)
    try:
        deadline = time.monotonic() + 120
        while not any(int(f.stem.split("-")[1]) >= kill_after for f in ckpt.list_checkpoints(ckdir)):
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child wrote no checkpoint"
            time.sleep(0.005)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL, f"child ended by itself before the kill (seed {seed})"
        assert not (tmp_path / "killed.pt").exists()  # no half-written map
        killed_at = ckpt.list_checkpoints(ckdir)[-1].name
        from_iteration = ckpt.load_latest(ckdir)[1]["iteration"]
        counter = _StepCounter(monkeypatch)
        assert main(["resume", str(ckdir)]) == 0
        _assert_continued(counter.calls, from_iteration, 400)
        monkeypatch.undo()
        assert main([*args, "-o", str(tmp_path / "ref.pt"), "--no-checkpoints"]) == 0
    finally:
        if child.poll() is None:
            child.kill()
    resumed, ref = TransportMap.load(tmp_path / "killed.pt"), TransportMap.load(tmp_path / "ref.pt")
    assert resumed.info["iterations"] == ref.info["iterations"] == 400
    _same_weights(ref, resumed, f"(kill delay seed {seed}, newest checkpoint {killed_at})")
    assert not list(ckdir.glob(".*.tmp"))  # the killed write's temporary file (if any) was cleaned


def test_fresh_run_refuses_or_replaces_an_earlier_runs_checkpoints(tmp_path):
    x, y = _data()
    W2GNSolver(iterations=20, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY).fit(x, y)
    with pytest.raises(W2GNUserError, match="holds checkpoints of an earlier run"):
        W2GNSolver(iterations=10, checkpoint_dir=str(tmp_path), checkpoint_every=10, **TINY).fit(x, y)
    W2GNSolver(iterations=10, checkpoint_dir=tmp_path, checkpoint_every=10, overwrite_checkpoints=True, **TINY).fit(x, y)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["ckpt-000000000.ckpt", "ckpt-000000010.ckpt"]


def test_replay_argv_points_at_the_folder_and_lets_new_options_win():
    from w2gn.cli.resume import replay_argv

    rec = ["--debug", "fit", "a.npy", "b.npy", "--checkpoint-dir", "old", "--resume", "--no-checkpoints",
           "--checkpoint-dir=old2", "--lr", "1"]
    assert replay_argv(rec, "/abs/ck", ["--lr", "0.1"]) == [
        "--debug", "fit", "a.npy", "b.npy", "--lr", "1", "--checkpoint-dir", "/abs/ck", "--resume", "--lr", "0.1"]


class _Interrupted(W2GNSolver):
    def step(self, iteration, p, q, generator):
        if iteration == 17:
            raise KeyboardInterrupt
        return super().step(iteration, p, q, generator)


def test_ctrl_c_saves_the_last_good_state_and_resume_is_bit_identical(tmp_path, monkeypatch):
    """Ctrl-C at step 17 saves the state of step 10; the resumed run runs steps 10..29 only and ends
    with the uninterrupted run's weights."""
    x, y = _data()
    full = W2GNSolver(iterations=30, **TINY).fit(x, y)
    with pytest.raises(KeyboardInterrupt) as info:
        _Interrupted(iterations=30, checkpoint_dir=str(tmp_path), checkpoint_every=100, **TINY).fit(x, y)
    assert info.value.checkpoint.endswith("ckpt-000000010.ckpt")  # the last state whose loss was checked
    counter = _StepCounter(monkeypatch)
    solver = W2GNSolver(iterations=30, checkpoint_dir=str(tmp_path), checkpoint_every=100, resume=True, **TINY)
    resumed = solver.fit(x, y)
    _assert_continued(counter.calls, ckpt.load(info.value.checkpoint)["iteration"], 30)
    assert solver.resumed_from and solver.resumed_from.endswith("ckpt-000000010.ckpt")
    _same_weights(full, resumed)


def test_sigterm_stops_the_cli_with_status_130_and_a_checkpoint(tmp_path):
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "w2gn", "fit", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                              "-o", str(tmp_path / "m.pt"), "--iterations", "100000", "--batch-size", "16", "--hidden", "4",
                              "--pretrain-iterations", "0", "--log-every", "2", "--checkpoint-every", "100000", "--quiet"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "m.pt.ckpt" / "ckpt-000000000.ckpt").exists():
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode()
            time.sleep(0.01)
        time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err.decode()
    newest = ckpt.list_checkpoints(tmp_path / "m.pt.ckpt")[-1]
    assert f"interrupted; last good checkpoint {newest}" in err.decode()
    assert ckpt.load(newest)["iteration"] >= 0 and not (tmp_path / "m.pt").exists()
