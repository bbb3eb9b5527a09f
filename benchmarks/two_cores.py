"""`w2gn fit` on both cores against the same fit pinned to one core (issue 22, item 4).

For each dimension: samples of a fixed non-linear pair written as .npy files, then `w2gn fit` with its
defaults and a fixed iteration count, run as a user runs it, alternately pinned with `taskset -c 0`
(one usable core: `--processes auto` gives 1 process) and unpinned (2 usable cores: 2 processes, one
direction of the two-sided objective each). Reports training seconds (the fit's own clock, from the
saved map), steps per second, whole-command wall seconds, and the speed-ups.

    PYTHONPATH=src python benchmarks/two_cores.py --dims 16 64 --iterations 3000 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from w2gn.cli.processes import AUTO_MIN_ITERATIONS


def make_data(folder: Path, dim: int, n: int, seed: int = 0) -> tuple[Path, Path]:
    """A shifted, anisotropic, non-linear pair (so the fit does real work), ``n`` rows each."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, dim)) * np.linspace(0.5, 2.0, dim) + 3.0
    z = g.normal(size=(n, dim))
    y = np.tanh(z) * 2.0 + 0.3 * z ** 3 - 1.0
    px, py = folder / f"x{dim}.npy", folder / f"y{dim}.npy"
    np.save(px, x.astype(np.float32))
    np.save(py, y.astype(np.float32))
    return px, py


def run_fit(px: Path, py: Path, out: Path, iterations: int, pinned: bool) -> dict[str, float]:
    """One `w2gn fit` command; returns its wall seconds, training seconds and process count."""
    from w2gn import TransportMap

    cmd = [sys.executable, "-m", "w2gn", "fit", str(px), str(py), "-o", str(out), "--overwrite", "--quiet",
           "--no-checkpoints", "--iterations", str(iterations)]
    if pinned:
        cmd = ["taskset", "-c", "0", *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"w2gn fit failed ({done.returncode}):\n{done.stderr[-3000:]}")
    hist = TransportMap.load(out).info["history"]
    return {"wall": wall, "train": float(hist[-1]["seconds"]), "steps": float(hist[-1]["iteration"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--iterations", type=int, default=3000, help="training steps per fit")
    ap.add_argument("--samples", type=int, default=50_000, help="rows per side")
    ap.add_argument("--repeats", type=int, default=2, help="pinned/unpinned pairs per dimension (alternating)")
    args = ap.parse_args(argv)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the one-core runs")
    print(f"usable cores: {len(os.sched_getaffinity(0))}; load average at start: {os.getloadavg()}", flush=True)
    print("| D | run | processes | steps | training s | steps/s | command wall s |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for dim in args.dims:
            px, py = make_data(folder, dim, args.samples)
            rows: dict[bool, list[dict[str, float]]] = {True: [], False: []}
            for r in range(args.repeats):
                # alternate the order, so that a change of the machine's load hits both alike
                for pinned in ((True, False) if r % 2 == 0 else (False, True)):
                    res = run_fit(px, py, folder / "map.pt", args.iterations, pinned)
                    rows[pinned].append(res)
                    label = "taskset -c 0" if pinned else "both cores"
                    # what --processes auto chose (w2gn.cli.processes.resolve_processes): 1 below its step threshold
                    procs = 1 if pinned or args.iterations < AUTO_MIN_ITERATIONS else 2
                    print(f"| {dim} | {label} | {procs} | {res['steps']:.0f} | {res['train']:.1f} | "
                          f"{res['steps'] / res['train']:.1f} | {res['wall']:.1f} |", flush=True)
            one = {k: float(np.median([r[k] for r in rows[True]])) for k in ("train", "wall")}
            two = {k: float(np.median([r[k] for r in rows[False]])) for k in ("train", "wall")}
            summary.append((dim, one["train"] / two["train"], one["wall"] / two["wall"]))
    print("\n| D | speed-up, training (median) | speed-up, whole command (median) |")
    print("|---|---|---|")
    for dim, train, wall in summary:
        print(f"| {dim} | {train:.2f}x | {wall:.2f}x |")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
