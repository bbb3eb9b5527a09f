"""`w2gn fit` as a user runs it, on Gaussian pairs that are not centred (issue 17).

For each D: draw an offset Gaussian pair (`GaussianPair.random(D, seed, family="offset")`: source
means N(0, 1), target means 2 + N(0, 1) per coordinate, covariance spectra in [0.2, 5]), write
`--samples` rows per side as .npy files, run the *command line* `w2gn fit P.npy Q.npy -o map.pt` with
its defaults (plus `--fit-args`), then `w2gn transform` forward and `--inverse` on fresh samples, and
score L2-UVP against the closed-form maps. Identity and true-affine rows are printed beside it.

    PYTHONPATH=src python benchmarks/offset_gaussian.py --dims 2,8,16,64,128 --out benchmarks/results/offset_gaussian
    PYTHONPATH=src python benchmarks/offset_gaussian.py --dims 8 --fit-args "--time-budget 60 --precondition none"

Each fit runs in its own process with one torch thread (`--threads`), as on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from w2gn.distributions import GaussianPair
from w2gn.metrics import l2_uvp


def run_one(dim: int, seed: int, family: str, samples: int, eval_samples: int, fit_args: list[str], threads: int,
            work: Path) -> dict:
    pair = GaussianPair.random(dim, seed=seed, family=family)
    gen = torch.Generator().manual_seed(10_000 + seed)
    np.save(work / "P.npy", pair.source.sample(samples, gen).numpy())
    np.save(work / "Q.npy", pair.target.sample(samples, gen).numpy())
    x = pair.source.sample(eval_samples, gen)
    y = pair.target.sample(eval_samples, gen)
    np.save(work / "x.npy", x.numpy())
    np.save(work / "y.npy", y.numpy())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    w2gn = [sys.executable, "-m", "w2gn"]
    t0 = time.perf_counter()
    fit = subprocess.run([*w2gn, "fit", str(work / "P.npy"), str(work / "Q.npy"), "-o", str(work / "map.pt"),
                          "--overwrite", "--quiet", "--no-checkpoints", "--seed", str(seed), *fit_args],
                         env=env, capture_output=True, text=True)
    fit_s = time.perf_counter() - t0
    if fit.returncode != 0:
        raise RuntimeError(f"w2gn fit failed (D={dim}):\n{fit.stderr[-2000:]}")
    for name, extra in (("tx", []), ("ty", ["--inverse"])):
        src = "x.npy" if name == "tx" else "y.npy"
        r = subprocess.run([*w2gn, "transform", str(work / "map.pt"), str(work / src), "-o", str(work / f"{name}.npy"),
                            "--overwrite", *extra], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"w2gn transform failed (D={dim}):\n{r.stderr[-2000:]}")
    tx = torch.from_numpy(np.load(work / "tx.npy")).to(torch.float64)
    ty = torch.from_numpy(np.load(work / "ty.npy")).to(torch.float64)
    fx, iy = pair.forward_map(x), pair.inverse_map(y)
    info = torch.load(work / "map.pt", weights_only=True)["info"]
    return {"dim": dim, "seed": seed, "family": family,
            "forward_uvp": l2_uvp(tx, fx, pair.target.variance), "inverse_uvp": l2_uvp(ty, iy, pair.source.variance),
            "identity_forward_uvp": l2_uvp(x, fx, pair.target.variance),
            "identity_inverse_uvp": l2_uvp(y, iy, pair.source.variance),
            "fit_wall_s": fit_s, "iterations": int(info.get("iterations", 0)), "fit_args": fit_args}


def markdown(rows: list[dict]) -> str:
    lines = ["| D | family | seed | forward % | inverse % | identity fwd % | identity inv % | iterations | fit wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dim']} | {r['family']} | {r['seed']} | {r['forward_uvp']:.3f} | {r['inverse_uvp']:.3f} | "
                     f"{r['identity_forward_uvp']:.1f} | {r['identity_inverse_uvp']:.1f} | {r['iterations']} | "
                     f"{r['fit_wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,8,16,64,128")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--family", default="offset", choices=["offset", "centred"])
    ap.add_argument("--samples", type=int, default=200_000, help="training rows per side (default 200000)")
    ap.add_argument("--eval-samples", type=int, default=20_000)
    ap.add_argument("--fit-args", default="", help="extra options for w2gn fit, e.g. '--time-budget 60'")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json / results.md")
    args = ap.parse_args()
    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                row = run_one(dim, seed, args.family, args.samples, args.eval_samples, shlex.split(args.fit_args),
                              args.threads, Path(tmp))
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "results.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
