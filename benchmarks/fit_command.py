"""`w2gn fit` as a user runs it, on a shipped benchmark pair with a known non-linear OT map (issue 18).

Writes ``--samples`` rows per side of the pair as .npy files (optionally moved and rescaled first:
``x' = a x + b``, ``y' = c y + d`` with scalars ``a = 2.5``, ``c = 0.4`` and offsets up to 10 per coordinate,
as ``shifted_pair.py`` moves them), runs the *command line* ``w2gn fit P.npy Q.npy -o map.pt`` with its
defaults (plus ``--fit-args``), then ``w2gn transform`` forward and ``--inverse`` on the pair's fixed
evaluation samples, read back into the pair's coordinates, and scores forward and inverse L2-UVP against
the true maps. The pair's identity and linear-map scores are printed beside it, so the row says how hard
the pair is.

    PYTHONPATH=src python benchmarks/fit_command.py --pairs hard:8,hard:16 --out benchmarks/results/fit_command
    PYTHONPATH=src python benchmarks/fit_command.py --pairs hard:8 --move --fit-args "--time-budget 120"

The fit uses what ``w2gn fit`` picks on this machine (``--processes auto``: 2 processes on 2 free cores);
pass ``--fit-args "--processes 1"`` and run under ``taskset -c 0`` for the issue's one-core protocol.
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
from _shared import MOVE_SCALES, move_offsets

from w2gn.testbeds.pairs import BenchmarkPair, get_pair


class CommandMap:
    """``w2gn transform`` on a saved map, as an object with ``forward``/``inverse`` on tensors in the pair's
    coordinates (what :meth:`BenchmarkPair.evaluate` calls)."""

    def __init__(self, map_path: Path, work: Path, env: dict[str, str], move: bool, dim: int) -> None:
        self.map_path, self.work, self.env = map_path, work, env
        self.a, self.c = MOVE_SCALES if move else (1.0, 1.0)
        self.b, self.d = move_offsets(dim) if move else (torch.zeros(dim), torch.zeros(dim))

    def _transform(self, rows: torch.Tensor, inverse: bool) -> torch.Tensor:
        src, dst = self.work / "in.npy", self.work / "out.npy"
        np.save(src, rows.numpy().astype(np.float32))
        cmd = [sys.executable, "-m", "w2gn", "transform", str(self.map_path), str(src), "-o", str(dst), "--overwrite"]
        r = subprocess.run(cmd + (["--inverse"] if inverse else []), env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"w2gn transform failed:\n{r.stderr[-2000:]}")
        return torch.from_numpy(np.load(dst)).to(rows.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._transform(x * self.a + self.b, inverse=False) - self.d) / self.c

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (self._transform(y * self.c + self.d, inverse=True) - self.b) / self.a


def run_one(pair: BenchmarkPair, seed: int, samples: int, move: bool, fit_args: list[str], threads: int | None,
            work: Path) -> dict:
    gen = torch.Generator().manual_seed(1000 + seed)
    x = pair.source.sample(samples, gen).float()
    y = pair.target.sample(samples, gen).float()
    cm_env = dict(os.environ)
    if threads:
        cm_env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    probe = CommandMap(work / "map.pt", work, cm_env, move, pair.dim)
    np.save(work / "P.npy", (x * probe.a + probe.b).numpy())
    np.save(work / "Q.npy", (y * probe.c + probe.d).numpy())
    del x, y
    t0 = time.perf_counter()
    fit = subprocess.run([sys.executable, "-m", "w2gn", "fit", str(work / "P.npy"), str(work / "Q.npy"),
                          "-o", str(work / "map.pt"), "--overwrite", "--quiet", "--no-checkpoints",
                          "--seed", str(seed), *fit_args], env=cm_env, capture_output=True, text=True)
    fit_s = time.perf_counter() - t0
    if fit.returncode != 0:
        raise RuntimeError(f"w2gn fit failed on {pair.name}:\n{fit.stderr[-2000:]}")
    info = torch.load(work / "map.pt", weights_only=True)["info"]
    scores = pair.evaluate(probe)
    base = pair.baselines
    return {"pair": pair.name, "seed": seed, "moved": move, "samples": samples, "fit_args": fit_args,
            "forward_uvp": scores["forward_uvp"], "inverse_uvp": scores["inverse_uvp"],
            "identity_uvp": base["identity"], "linear_uvp": base["linear"],
            "iterations": int(info.get("iterations", 0)), "processes": info.get("processes"),
            "inverse_served": (info.get("inverse_choice") or {}).get("inverse"),
            "restarts": len(info.get("restarts") or []), "fit_wall_s": fit_s}


def markdown(rows: list[dict]) -> str:
    lines = ["| pair | data | seed | forward % | inverse % | identity % | linear % | iterations | fit wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {'moved' if r['moved'] else 'as given'} | {r['seed']} | "
                     f"{r['forward_uvp']:.3f} | {r['inverse_uvp']:.3f} | {r['identity_uvp']:.1f} | "
                     f"{r['linear_uvp']:.1f} | {r['iterations']} | {r['fit_wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="hard:8", help="comma-separated pair names (hard:D, fitted:D, random:D[:S])")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--samples", type=int, default=200_000, help="training rows per side (default 200000)")
    ap.add_argument("--move", action="store_true", help="move and rescale both sides before fitting")
    ap.add_argument("--fit-args", default="", help="extra options for w2gn fit, e.g. '--time-budget 120'")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the commands (default: unset)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json / results.md")
    args = ap.parse_args()
    rows = []
    for spec in args.pairs.split(","):
        pair = get_pair(spec)
        for seed in (int(s) for s in args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run_one(pair, seed, args.samples, args.move, shlex.split(args.fit_args), args.threads,
                                    Path(tmp)))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "results.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
