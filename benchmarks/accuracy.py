"""Accuracy ablation on the fitted benchmark pairs (issue 11): every W2GN accuracy option alone and
together, a fixed wall-clock budget per fit, forward/inverse L2-UVP against the true non-linear maps.

    PYTHONPATH=src python benchmarks/accuracy.py --dims 2,4,8 --budget 60 \
        --methods paper,refine,expectile,cosine,ema,linear-init,all --out benchmarks/results/accuracy

Runs ``w2gn benchmark`` (one thread, as on a shared CPU) and prints the pairs' baseline table and
the results table; writes results.json/results.md/pairs.md/convergence.png under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from w2gn.cli import main as w2gn_main

ALL_METHODS = "paper,refine,expectile,cosine,ema,linear-init,all"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8")
    ap.add_argument("--methods", default=ALL_METHODS)
    ap.add_argument("--budget", type=float, default=60.0, help="training CPU seconds per fit")
    ap.add_argument("--log-every", type=int, default=200)
    ap.add_argument("--curve-samples", type=int, default=2048)
    ap.add_argument("--pairs", default="fitted", choices=["fitted", "random"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/accuracy"))
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="instead of running: merge these results.json files into one table and figure under --out")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    torch.set_num_threads(args.threads)
    rc = w2gn_main(["benchmark", "--pairs", args.pairs, "--dims", args.dims, "--methods", args.methods,
                    "--time-budget", str(args.budget), "--log-every", str(args.log_every),
                    "--curve-samples", str(args.curve_samples), "--out-dir", str(args.out)])
    if rc == 0:
        print((args.out / "pairs.md").read_text())
        print((args.out / "results.md").read_text())
    return rc


def merge(files: list[Path], out: Path) -> int:
    """One table (stdout and ``out/results.md``) and one convergence figure from several runs."""
    from w2gn.testbeds.runner import convergence_figure, load_results, markdown_table

    results = [r for f in files for r in load_results(f)]
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results)
    (out / "results.md").write_text(table)
    convergence_figure(results, out / "convergence.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
