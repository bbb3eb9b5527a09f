"""Gaussian benchmark (paper Section 5.1, Table 1): W2GN L2-UVP against the closed-form OT map.

For each D: a random pair (covariance eigenvalues log-spaced in [1/4, 4], C.4), W2GN with the
library's defaults except the iteration budget, then forward/inverse L2-UVP on 20,000 held-out
samples, the dual W2^2 estimate against the Bures closed form, wall time, and at D=64 the cost of a
training step divided by the cost of one forward pass of psi_theta (paper C.2: 8-12x).

    python benchmarks/gaussian.py                    # D = 2 4 8 16 32 64
    python benchmarks/gaussian.py --dims 2,4 --out benchmarks/results/gaussian.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from w2gn import GaussianPair, W2GNSolver
from w2gn.testbeds import PAPER_TABLE1, GaussianEvaluation

PAPER_W2GN = PAPER_TABLE1["w2gn"]


def iterations_for(dim: int) -> int:
    return {2: 2000, 4: 2000, 8: 2500, 16: 3000, 32: 4000, 64: 5000}.get(dim, 6000)


def run_one(dim: int, seed: int = 0, iterations: int | None = None) -> dict:
    pair = GaussianPair.random(dim, seed=seed)
    its = iterations or iterations_for(dim)
    solver = W2GNSolver(iterations=its, batch_size=512, progress=False, log_every=250)
    t0 = time.perf_counter()
    fitted = solver.fit(pair.source, pair.target)
    seconds = time.perf_counter() - t0
    ev = GaussianEvaluation(pair, 20000, seed=1234)
    return {
        "dim": dim,
        "iterations": its,
        "seconds": seconds,
        "l2_uvp_forward": ev.forward(fitted),
        "l2_uvp_inverse": ev.inverse(fitted),
        "l2_uvp_identity": ev.identity(),
        "w2_dual": fitted.w2_squared(ev.x, ev.y),
        "w2_true": pair.w2_squared,
        "hidden": fitted.forward_potential.config()["hidden"],
        "lambda": solver.config.effective_lambda(dim),
    }


def step_forward_ratio(dim: int = 64, batch: int = 512, repeats: int = 30) -> dict:
    """Seconds per W2GN training step / seconds per forward pass of psi_theta on the same batch."""
    pair = GaussianPair.random(dim, seed=0)
    solver = W2GNSolver(iterations=1, batch_size=batch, pretrain_iterations=0, progress=False)
    p, q = pair.source.to("cpu", torch.float32), pair.target.to("cpu", torch.float32)
    gen = torch.Generator().manual_seed(0)
    solver.setup(p, q, gen)
    x = p.sample(batch, gen)

    def timed(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(repeats):
                fn()
            best = min(best, (time.perf_counter() - t) / repeats)
        return best

    with torch.no_grad():
        fwd = timed(lambda: solver.theta(x))
    step = timed(lambda: solver.step(0, p, q, gen))
    return {"dim": dim, "batch": batch, "forward_s": fwd, "step_s": step, "ratio": step / fwd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8,16,32,64")
    ap.add_argument("--iterations", type=int, default=None, help="override the per-D budget")
    ap.add_argument("--out", default=None, help="write a Markdown table here (and .json beside it)")
    args = ap.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    rows = []
    print("| D | iterations | L2-UVP fwd % | L2-UVP inv % | identity % | W2² dual | W2² true | seconds | paper W2GN % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in dims:
        r = run_one(d, iterations=args.iterations)
        rows.append(r)
        print(f"| {d} | {r['iterations']} | {r['l2_uvp_forward']:.3f} | {r['l2_uvp_inverse']:.3f} | {r['l2_uvp_identity']:.1f} "
              f"| {r['w2_dual']:.4g} | {r['w2_true']:.4g} | {r['seconds']:.0f} | {PAPER_W2GN.get(d, '-')} |", flush=True)
    ratio = step_forward_ratio(64)
    print(f"\nD=64, batch 512: forward {ratio['forward_s'] * 1e3:.2f} ms, training step {ratio['step_s'] * 1e3:.2f} ms, "
          f"ratio {ratio['ratio']:.1f}x (paper C.2: 8-12x)")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
        out.with_suffix(".json").write_text(json.dumps({"rows": rows, "step_forward": ratio, "meta": meta}, indent=2))


if __name__ == "__main__":
    main()
