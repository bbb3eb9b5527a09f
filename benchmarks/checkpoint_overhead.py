"""Cost of reliability: checkpoint size, write and load time per dimension, and the training-loop
overhead of writing checkpoints often.

    PYTHONPATH=src python benchmarks/checkpoint_overhead.py [--dims 2 64 512] [--iterations 200]

Prints two Markdown tables. Single-threaded; medians of repeats. On a shared machine the wall-clock
times of the loop table are dominated by other jobs: compare its CPU-time column.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from w2gn import W2GNSolver
from w2gn import checkpoint as ckpt
from w2gn.solvers.base import prepare_samplers, resolve_device, resolve_dtype


def write_load_table(dims: list[int], repeats: int) -> list[str]:
    rows = ["| D | hidden | parameters (both nets) | checkpoint MB | write s | load+verify s |", "|---|---|---|---|---|---|"]
    for d in dims:
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(1024, d)), rng.normal(size=(1024, d))
        solver = W2GNSolver(pretrain_iterations=0, progress=False, batch_size=64)
        p, q = prepare_samplers(x, y, resolve_device("cpu"), resolve_dtype("float32"))
        gen = torch.Generator().manual_seed(0)
        solver.setup(p, q, gen)
        solver.step(0, p, q, gen)  # Adam moments exist, as in a real checkpoint
        solver.iteration = 1
        solver.samplers = (p, q, gen)  # what state_dict records (fit sets it)
        nparams = sum(v.numel() for m in solver.modules().values() for v in m.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            writes, loads = [], []
            for r in range(repeats):
                path = Path(tmp) / f"ckpt-{r:09d}.ckpt"
                t0 = time.perf_counter()
                ckpt.save(solver.state_dict(copy_tensors=False), path)
                writes.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ckpt.load(path)
                loads.append(time.perf_counter() - t0)
            size = path.stat().st_size / 2**20
        hidden = ",".join(str(h) for h in solver.theta.config()["hidden"])
        rows.append(f"| {d} | {hidden} | {nparams:,} | {size:.2f} | {statistics.median(writes):.3f} | "
                    f"{statistics.median(loads):.3f} |")
    return rows


def loop_table(iterations: int) -> list[str]:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 2)), 2 * rng.normal(size=(1000, 2)) + 1
    rows = ["| checkpoint every | CPU s / 1000 its | wall s / 1000 its | checkpoints written |", "|---|---|---|---|"]
    for every in (0, 100, 10, 1):
        times, cpu = [], []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as tmp:
                opts = dict(iterations=iterations, batch_size=64, hidden=[32, 32], pretrain_iterations=0, log_every=50,
                            progress=False)
                if every:
                    opts.update(checkpoint_dir=tmp, checkpoint_every=every, keep_checkpoints=3)
                t0, c0 = time.perf_counter(), time.process_time()
                s = W2GNSolver(**opts)
                s.fit(x, y)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        written = iterations // every + 1 if every else 0
        rows.append(f"| {every or 'never'} | {1000 * statistics.median(cpu) / iterations:.2f} | "
                    f"{1000 * statistics.median(times) / iterations:.2f} | {written} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 64, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--skip-sizes", action="store_true", help="only the loop table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.skip_sizes:
        print("\n".join(write_load_table(args.dims, args.repeats)))
        print()
    print("\n".join(loop_table(args.iterations)))


if __name__ == "__main__":
    main()
