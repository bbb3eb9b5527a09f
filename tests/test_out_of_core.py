"""Data larger than memory: ``w2gn transform`` streams its input and output, ``w2gn fit`` draws batches
from a mapped ``.npy`` (RELIABILITY.md, "Data larger than memory")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from w2gn import TransportMap, W2GNSolver
from w2gn.cli import main
from w2gn.distributions.data import MappedSampler, TensorSampler
from w2gn.io import open_samples
from w2gn.io.stream import NpyRows

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = dict(batch_size=32, hidden=[8, 8], pretrain_iterations=5, log_every=10, progress=False, seed=3)

# The child sets RLIMIT_DATA to what it uses after a warm-up run of both commands on a small file
# (about 300 MB: Python, torch and what they import on first use) plus 64 MB, then runs them on the
# big file. RLIMIT_DATA (Linux >= 4.7) counts the private writable memory of a process -- heap and
# anonymous mappings, i.e. what loading an array takes -- but not a read-only mapping of a file, so
# it tells "read in place" from "loaded". RLIMIT_AS cannot: it counts every mapping, the mapped file
# and the address space torch reserves at import included, so a limit below the file's size stops a
# correct streaming reader too. The control case (np.load under the same limit) shows the limit bites.
CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from w2gn.cli import main

    def vm_data():
        for line in open("/proc/self/status"):
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024

    folder, fmap, headroom = sys.argv[1:4]
    big, small = folder + "/big.npy", folder + "/small.npy"
    # a first fit and transform of a small file import what the commands import lazily (torch._dynamo
    # by the first optimiser step: ~80 MB); the limit is then set relative to what the program needs
    np.save(small, np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))
    main(["fit", small, small, "-o", small + ".pt", "--iterations", "2", "--batch-size", "8", "--hidden", "4",
          "--pretrain-iterations", "1", "--no-checkpoints", "--quiet"])
    main(["transform", small + ".pt", small, "-o", small + ".out.npy", "--quiet"])
    limit = vm_data() + int(headroom) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    # the big file, written here under the limit in small blocks: 32 MB larger than the limit
    rows = (limit + 32 * 2**20) // 64 + 1
    rng = np.random.default_rng(1)
    with open(big, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, 16)})
        for i in range(0, rows, 100_000):
            fh.write(rng.standard_normal(size=(min(100_000, rows - i), 16), dtype=np.float32).tobytes())
    res = {"limit": limit, "rows": rows}
    try:
        np.load(big)
        res["np_load"] = "loaded"
    except MemoryError:
        res["np_load"] = "MemoryError"
    res["transform"] = main(["transform", fmap, big, "-o", folder + "/out.npy", "--quiet"])
    res["fit"] = main(["fit", big, big, "-o", folder + "/fit.pt", "--iterations", "20", "--batch-size", "256",
                       "--hidden", "8,8", "--pretrain-iterations", "5", "--no-checkpoints", "--quiet"])
    print(json.dumps(res))
""")


def _map(tmp_path: Path, dim: int) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, dim))
    fitted = W2GNSolver(iterations=10, **TINY).fit(x, 1.3 * x + 0.5)
    path = tmp_path / "map.pt"
    fitted.save(path)
    return path


def test_transform_and_fit_of_a_file_larger_than_the_memory_limit(tmp_path):
    """A ``.npy`` (D = 16) 32 MB larger than the RLIMIT_DATA of the child process that uses it (the
    child's size after a warm-up plus 64 MB: about 360 MB, so a file of about 390 MB, written by the
    child under the limit): loading the file there fails (MemoryError), ``w2gn transform`` and
    ``w2gn fit`` of it succeed, and the transform equals the in-memory map of the same rows.

    Shown to fail on the previous version (transform and fit reading the file with ``load_samples``):
    the child's commands then die with MemoryError under the limit.
    """
    fmap = _map(tmp_path, 16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(fmap), "64"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    big, out, rows = tmp_path / "big.npy", tmp_path / "out.npy", got["rows"]
    assert big.stat().st_size > got["limit"]  # the file is larger than the child's memory limit
    assert got["np_load"] == "MemoryError"  # the limit bites: the file cannot be loaded there
    assert got["transform"] == 0 and got["fit"] == 0, res.stderr[-3000:]
    assert TransportMap.load(tmp_path / "fit.pt").info["source"]["rows"] == rows
    # the streamed output is the in-memory map of the same rows (first block, a middle one, the tail)
    mapped, src, fitted = np.load(out, mmap_mode="r"), np.load(big, mmap_mode="r"), TransportMap.load(fmap)
    assert mapped.shape == (rows, 16) and mapped.dtype == np.float32
    for lo, hi in ((0, 65536), (65536 * 40, 65536 * 41), (rows - rows % 65536, rows)):
        assert np.array_equal(mapped[lo:hi], fitted.forward(np.array(src[lo:hi]), 8192))


def test_streamed_transform_equals_in_memory_for_every_format(tmp_path):
    """Across several blocks (--batch-size 500: blocks of 65500 rows), .npy and .csv inputs to .npy,
    .csv and .npz outputs give exactly the in-memory result (text at its 9 printed digits)."""
    fmap = _map(tmp_path, 3)
    fitted = TransportMap.load(fmap)
    x = np.random.default_rng(2).normal(size=(70_001, 3))
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b,c", comments="")
    want = fitted.forward(x.astype(np.float32), 500)
    want_csv = fitted.forward(np.loadtxt(tmp_path / "x.csv", delimiter=",", skiprows=1).astype(np.float32), 500)
    for src, ref in (("x.npy", want), ("x.csv", want_csv)):
        for ext in (".npy", ".csv", ".npz"):
            out = tmp_path / f"out_{src[2:]}{ext}"
            assert main(["transform", str(fmap), str(tmp_path / src), "-o", str(out), "--batch-size", "500",
                         "--quiet"]) == 0
            if ext == ".npy":
                got = np.load(out)
                assert got.dtype == np.float32 and np.array_equal(got, ref)
            elif ext == ".npz":
                assert np.array_equal(np.load(out)["samples"], ref)
            else:
                assert np.array_equal(np.loadtxt(out, delimiter=","), np.loadtxt(
                    [",".join(f"{v:.9g}" for v in r) for r in ref], delimiter=","))
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_row_late_in_a_streamed_csv_leaves_no_output(tmp_path, capsys):
    fmap = _map(tmp_path, 2)
    x = np.random.default_rng(3).normal(size=(70_000, 2))
    x[69_000, 1] = np.inf
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    assert main(["transform", str(fmap), str(tmp_path / "x.csv"), "-o", str(tmp_path / "out.npy"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"w2gn: error: {tmp_path / 'x.csv'}: contains NaN or inf values in 1 row(s); clean or drop them first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.pt", "x.csv"]


def test_fit_from_the_mapped_file_equals_fit_from_memory(tmp_path):
    """The mapped sampler draws the rows the in-memory one draws and describes the data the same way,
    so fits are bit-identical and checkpoints move between the two."""
    rng = np.random.default_rng(4)
    np.save(tmp_path / "x.npy", rng.normal(size=(400, 2)))  # float64 on disk, trained in float32
    np.save(tmp_path / "y.npy", (1.5 * rng.normal(size=(400, 2)) + 1).astype(np.float32))
    xm, ym = (open_samples(tmp_path / f, digest=True, map_above=0) for f in ("x.npy", "y.npy"))
    assert isinstance(xm, NpyRows)
    assert not isinstance(open_samples(tmp_path / "x.npy"), NpyRows)  # a small file is loaded by default
    a = W2GNSolver(iterations=30, **TINY).fit(xm, ym)
    b = W2GNSolver(iterations=30, **TINY).fit(np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy"))
    assert a.info["source"] == b.info["source"] and a.info["target"] == b.info["target"]
    for pa, pb in zip(a.forward_potential.parameters(), b.forward_potential.parameters()):
        assert torch.equal(pa, pb)
    assert MappedSampler(xm).describe() == TensorSampler(np.load(tmp_path / "x.npy")).describe()


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def test_random_batches_and_scans_of_a_mapped_file_keep_it_out_of_the_resident_set(tmp_path):
    """Resident memory counts mapped file pages too. A 96 MB file: a block-wise scan and 100 random
    batches of 512 rows (what a fit draws) add less than 24 MB to this process's resident set.

    Shown to fail with batches gathered through the mapping (``self.rows[index]``): one fault maps the
    whole page-cache folio around a row, and the resident set grew by about the file's size.
    """
    path = tmp_path / "big.npy"
    rows = 1_500_000
    with open(path, "wb") as fh:  # plain writes: a mapped write would make the pages resident here
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, 16)})
        rng = np.random.default_rng(5)
        for _ in range(0, rows, 250_000):
            fh.write(rng.normal(size=(250_000, 16)).astype(np.float32).tobytes())
    before = _rss_mb()
    mapped = open_samples(path, digest=True, map_above=0)
    sampler = MappedSampler(mapped)
    gen = torch.Generator().manual_seed(0)
    batches = [sampler.sample(512, gen) for _ in range(100)]
    grown = _rss_mb() - before
    assert grown < 24, f"resident set grew by {grown:.0f} MB"
    # and the rows are the file's rows
    idx = torch.randint(rows, (512,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(batches[0], torch.from_numpy(np.load(path, mmap_mode="r")[idx.numpy()]))
