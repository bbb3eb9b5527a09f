"""The checkpoint file format: atomic writes, last-K retention, and refusal of every damaged file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from w2gn import W2GNSolver
from w2gn import checkpoint as ckpt
from w2gn.errors import W2GNUserError
from w2gn.io.atomic import atomic_path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A short run with a checkpoint every 5 of 20 iterations, keeping 3."""
    d = tmp_path_factory.mktemp("ckpts")
    rng = np.random.default_rng(0)
    solver = W2GNSolver(iterations=20, batch_size=16, hidden=[8, 8], pretrain_iterations=5, log_every=5,
                        progress=False, checkpoint_dir=str(d), checkpoint_every=5, keep_checkpoints=3)
    solver.fit(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 2)
    return d, solver


def test_keeps_last_k_and_holds_everything(run_dir):
    d, solver = run_dir
    files = ckpt.list_checkpoints(d)
    assert [f.name for f in files] == ["ckpt-000000010.ckpt", "ckpt-000000015.ckpt", "ckpt-000000020.ckpt"]
    state = ckpt.load(files[-1])
    assert state["iteration"] == 20 and state["method"] == "w2gn"
    assert set(state["modules"]) == set(state["optimizers"]) == {"theta", "omega"}
    assert {"torch_cpu", "numpy", "python", "generator"} <= set(state["rng"])
    assert state["config"]["hidden"] == [8, 8] and state["config"]["checkpoint_every"] == 5
    assert state["data"]["source"]["event_shape"] == [2] and len(state["data"]["source"]["sha256"]) == 16
    for name, sd in state["modules"].items():
        for k, v in solver.modules()[name].state_dict().items():
            assert torch.equal(sd[k], v)
    assert [r["iteration"] for r in state["history"]] == [5.0, 10.0, 15.0, 20.0]
    assert not list(d.glob(".*"))  # no temporary files left


def test_truncated_at_random_offsets_is_refused(run_dir, tmp_path):
    good = ckpt.list_checkpoints(run_dir[0])[-1].read_bytes()
    rnd = random.Random(1)
    offsets = {0, 1, 5, 20, len(good) // 2, len(good) - 1, *(rnd.randrange(len(good)) for _ in range(25))}
    bad = tmp_path / "ckpt-000000020.ckpt"
    for n in sorted(offsets):
        bad.write_bytes(good[:n])
        with pytest.raises(W2GNUserError, match=r"ckpt-000000020\.ckpt: (is empty|truncated|damaged|is not a w2gn)"):
            ckpt.load(bad)


def test_corrupted_and_foreign_files_are_refused(run_dir, tmp_path):
    good = bytearray(ckpt.list_checkpoints(run_dir[0])[-1].read_bytes())
    f = tmp_path / "c.ckpt"
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    f.write_bytes(bytes(flipped))
    with pytest.raises(W2GNUserError, match="corrupted checkpoint \\(checksum mismatch\\)"):
        ckpt.load(f)
    f.write_bytes(bytes(good) + b"junk")
    with pytest.raises(W2GNUserError, match="corrupted"):
        ckpt.load(f)
    torch.save({"a": torch.zeros(2)}, f)
    with pytest.raises(W2GNUserError, match="not a w2gn checkpoint \\(a PyTorch/zip file"):
        ckpt.load(f)
    f.write_text("hello\n")
    with pytest.raises(W2GNUserError, match="not a w2gn checkpoint \\(a foreign file"):
        ckpt.load(f)
    f.write_bytes(b"W2GN-CKPT 99 10 abc\n0123456789")
    with pytest.raises(W2GNUserError, match="newer w2gn"):
        ckpt.load(f)
    ckpt.save({"format": "other"}, f)
    with pytest.raises(W2GNUserError, match="wrong format field"):
        ckpt.load(f)
    ckpt.save({"format": ckpt.FORMAT, "iteration": 3}, f)
    with pytest.raises(W2GNUserError, match="incomplete checkpoint \\(missing version, method"):
        ckpt.load(f)
    with pytest.raises(W2GNUserError, match="no such checkpoint"):
        ckpt.load(tmp_path / "nope.ckpt")


def test_load_latest_skips_damaged_newest(run_dir, tmp_path):
    files = ckpt.list_checkpoints(run_dir[0])
    for f in files:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    newest = tmp_path / files[-1].name
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="truncated"):
        path, state = ckpt.load_latest(tmp_path)
    assert path.name == files[-2].name and state["iteration"] == 15
    for f in ckpt.list_checkpoints(tmp_path):
        f.write_bytes(b"")
    with pytest.raises(W2GNUserError, match="no usable checkpoint: .*is empty"):
        ckpt.load_latest(tmp_path)
    assert ckpt.load_latest(tmp_path / "missing") is None


def test_other_method_is_refused(run_dir, tmp_path):
    state = ckpt.load(ckpt.list_checkpoints(run_dir[0])[-1])
    state["method"] = "mm1"
    ckpt.save(state, tmp_path / "ckpt-000000020.ckpt")
    rng = np.random.default_rng(0)
    with pytest.raises(W2GNUserError, match="written by method 'mm1', not 'w2gn'"):
        W2GNSolver(iterations=30, batch_size=16, hidden=[8, 8], progress=False, checkpoint_dir=str(tmp_path),
                   resume=True).fit(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)))


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    dest = tmp_path / "ckpt-000000001.ckpt"

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", boom)
    with pytest.raises(OSError):
        ckpt.save({"format": ckpt.FORMAT}, dest)
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_rng_state_round_trip():
    gen = torch.Generator().manual_seed(5)
    state = ckpt.rng_state(gen)
    a = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.rand(10), np.random.rand(7), random.random(), torch.rand(4, generator=gen)
    ckpt.set_rng_state(state, gen)
    b = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and torch.equal(a[3], b[3])
