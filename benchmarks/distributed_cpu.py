"""Wall time of one W2GN fit on 1 process against ``torchrun --nproc_per_node=N`` (gloo, CPU).

Runs ``w2gn gaussian`` twice with the same global batch, iterations and seed: once as a plain
process, once under torchrun with N processes (each drawing batch/N samples per step, gradients
averaged by DDP). Reports the training seconds from each run's JSON report, the total wall time of
the command (start-up included) and the final L2-UVP of both.

    python benchmarks/distributed_cpu.py --dim 32 --iterations 500 --batch-size 1024 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--pretrain-iterations", type=int, default=200)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--gradient-mode", default="analytic")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each launcher, in alternating order")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["gaussian", "--dim", str(args.dim), "--iterations", str(args.iterations), "--batch-size", str(args.batch_size),
              "--pretrain-iterations", str(args.pretrain_iterations), "--gradient-mode", args.gradient_mode, "--quiet",
              "--log-every", str(max(1, args.iterations // 5)), "--eval-samples", "5000"]
    launchers = [("1 process", [sys.executable, "-m", "w2gn"]),
                 (f"torchrun {args.nproc} x gloo", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc_per_node={args.nproc}", "-m", "w2gn"])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            # alternate the order so that changing load from other jobs does not favour one launcher
            for label, launcher in (launchers if rep % 2 == 0 else launchers[::-1]):
                out = Path(tmp) / f"{rep}_{label.replace(' ', '_')}"
                wall = run([*launcher, *common, "--out-dir", str(out)], env)
                rep_json = json.loads((out / f"gaussian_D{args.dim}.json").read_text())
                rows.append((label, rep_json["seconds"], wall, rep_json["l2_uvp_forward"], rep_json["l2_uvp_inverse"]))
    print(f"D={args.dim}, global batch {args.batch_size}, {args.iterations} iterations, gradient mode {args.gradient_mode}")
    print("| run | fit seconds (pretraining + training) | command wall s | L2-UVP fwd % | L2-UVP inv % |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.2f} | {r[4]:.2f} |")


if __name__ == "__main__":
    main()
