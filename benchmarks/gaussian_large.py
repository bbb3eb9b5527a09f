"""Gaussian benchmark (paper, Section 5.1 / Table 1) at large D, with cost against D.

For every D: fit W2GN between the paper's random Gaussians (C.4) with Dense ICNN widths
``[D, D, D/2]`` (the paper's, C.4) and the analytic-gradient step, stopping at ``--iterations`` or
``--time-limit`` seconds; report L2-UVP (forward, inverse) against the closed-form map, iterations,
wall time, seconds per iteration and peak memory beside the paper's W2GN row. Each D runs in a fresh
process, so peak memory (max RSS on CPU, ``max_memory_allocated`` on CUDA) is per D (on CPU:
max RSS minus the RSS after importing torch and w2gn, i.e. the run's own memory: data, networks,
optimiser state, evaluation). Then a log-log
fit of seconds/iteration and peak memory against D gives the growth exponent.

    python benchmarks/gaussian_large.py --dims 128 256 512 --time-limit 1500 --out benchmarks/results
    python benchmarks/gaussian_large.py --dims 1024 --append   # add a dimension to the same table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def run_one(args: argparse.Namespace, dim: int) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from w2gn import GaussianPair, W2GNSolver
    from w2gn.testbeds import PAPER_TABLE1, GaussianEvaluation

    base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after imports: the library's share
    pair = GaussianPair.random(dim, seed=args.pair_seed)
    ev = GaussianEvaluation(pair, args.eval_samples, seed=12345)
    hidden = [dim, dim, max(dim // 2, 1)] if args.widths == "paper" else None
    curve: list[dict] = []
    t_start = [0.0]
    # "process": CPU seconds of this single-threaded process, close to an idle core's wall time on a shared machine
    now = time.process_time if args.clock == "process" else time.perf_counter

    def track(it, fitted, row):
        fwd, inv = ev.forward(fitted), ev.inverse(fitted)
        curve.append({"iteration": it, "seconds": now() - t_start[0], "l2_uvp_forward": fwd,
                      "l2_uvp_inverse": inv})
        print(f"  D={dim} it={it} {curve[-1]['seconds']:.0f}s fwd {fwd:.2f}% inv {inv:.2f}%", file=sys.stderr, flush=True)
        return now() - t_start[0] > args.time_limit

    solver = W2GNSolver(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, hidden=hidden,
                        gradient_mode=args.gradient_mode, pretrain_iterations=args.pretrain_iterations,
                        log_every=args.log_every, device=args.device, dtype=args.dtype, progress=False, seed=0,
                        lr_schedule=args.lr_schedule, ema_decay=args.ema_decay, refine_steps=args.refine_steps,
                        refine_method=args.refine_method, refine_inverse_steps=args.refine_inverse_steps,
                        cycle_x=args.cycle_x)
    t_start[0] = now()
    wall0 = time.perf_counter()
    fitted = solver.fit(pair.source, pair.target, callback=track)
    wall = time.perf_counter() - wall0
    clock_s = now() - t_start[0]
    pre_s = curve[0]["seconds"] if curve else 0.0
    # seconds per training iteration on --clock between the first and the last log: pretraining
    # excluded, the periodic L2-UVP evaluation (every log_every steps) included
    span = max(1.0, curve[-1]["iteration"] - curve[0]["iteration"]) if len(curve) > 1 else float("nan")
    per_it = (curve[-1]["seconds"] - curve[0]["seconds"]) / span if len(curve) > 1 else float("nan")
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_mib  # KiB on Linux -> MiB
    last = curve[-1]
    return {"dim": dim, "hidden": fitted.forward_potential.hidden, "iterations": solver.iteration, "wall_s": wall,
            "clock": args.clock, "clock_s": clock_s, "lr_schedule": args.lr_schedule, "ema_decay": args.ema_decay,
            "seconds_per_iteration": per_it, "first_log_s": pre_s, "peak_mib": peak,
            "l2_uvp_forward": last["l2_uvp_forward"], "l2_uvp_inverse": last["l2_uvp_inverse"],
            "best_forward": min(r["l2_uvp_forward"] for r in curve), "paper": PAPER_TABLE1["w2gn"].get(dim),
            "gradient_mode": args.gradient_mode, "batch_size": args.batch_size, "threads": args.threads, "lr": args.lr,
            "pretrain_iterations": args.pretrain_iterations, "time_limit": args.time_limit,
            "refine_steps": args.refine_steps, "refine_method": args.refine_method,
            "refine_inverse_steps": args.refine_inverse_steps, "cycle_x": args.cycle_x,
            "curve": curve}


def fit_exponent(ds: list[int], vals: list[float]) -> float:
    """Least-squares slope of log(val) against log(D)."""
    lx = [math.log(d) for d in ds]
    ly = [math.log(v) for v in vals]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else float("nan")


def plot(rows: list[dict], path: Path, k_time: float, k_mem: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ds = [r["dim"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.3))
    axes[0].loglog(ds, [r["seconds_per_iteration"] for r in rows], "o-")
    axes[0].set_title(f"s / iteration (slope {k_time:.2f})")
    axes[1].loglog(ds, [r["peak_mib"] for r in rows], "o-", color="C1")
    axes[1].set_title(f"peak memory, MiB (slope {k_mem:.2f})")
    for ax in axes:
        ax.set_xlabel("D")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(ds, [str(d) for d in ds])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--time-limit", type=float, default=3600.0, help="seconds per D, pretraining included (checked at each log)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                    help="cosine decays over --iterations")
    ap.add_argument("--ema-decay", type=float, default=0.0)
    ap.add_argument("--clock", choices=["wall", "process"], default="wall",
                    help="what --time-limit and the curve's seconds count: wall time or this process's CPU time")
    ap.add_argument("--widths", choices=["paper", "default"], default="paper")
    ap.add_argument("--gradient-mode", choices=["autograd", "analytic"], default="analytic")
    ap.add_argument("--pretrain-iterations", type=int, default=1000)
    ap.add_argument("--refine-steps", type=int, default=0,
                    help="conjugate refinement of grad psi_omega(y) in training (W2GNConfig.refine_steps)")
    ap.add_argument("--cycle-x", action="store_true", help="add the cycle term R_X (eq. 51) to R_Y")
    ap.add_argument("--refine-method", choices=["lbfgs", "newton"], default="lbfgs")
    ap.add_argument("--refine-inverse-steps", type=int, default=0,
                    help="refine the fitted inverse map at evaluation (W2GNConfig.refine_inverse_steps)")
    ap.add_argument("--log-every", type=int, default=250)
    ap.add_argument("--eval-samples", type=int, default=10000)
    ap.add_argument("--pair-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--append", action="store_true", help="keep the other dimensions' rows of an earlier run")
    ap.add_argument("--report-only", action="store_true", help="only print the table and plot of OUT/gaussian_large.json")
    ap.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single is not None:
        print(json.dumps(run_one(args, args.single)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if (args.append or args.report_only) and (out / "gaussian_large.json").exists():
        rows = [r for r in json.loads((out / "gaussian_large.json").read_text()) if args.report_only or r["dim"] not in args.dims]
    for d in ([] if args.report_only else args.dims):
        cmd = [sys.executable, *sys.argv, "--single", str(d)]
        res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        rows.sort(key=lambda r: r["dim"])
        (out / "gaussian_large.json").write_text(json.dumps(rows, indent=1))
    print("| D | widths | lr | iterations | wall s | s/it | peak MiB (above import) | L2-UVP fwd % | L2-UVP inv % "
          "| paper W2GN % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dim']} | {r['hidden']} | {r.get('lr', '')} | {r['iterations']} | {r['wall_s']:.0f} | "
              f"{r['seconds_per_iteration']:.4f} | "
              f"{r['peak_mib']:.0f} | {r['l2_uvp_forward']:.2f} | {r['l2_uvp_inverse']:.2f} | {r['paper']} |")
    if len(rows) > 1:
        ds = [r["dim"] for r in rows]
        k_t = fit_exponent(ds, [r["seconds_per_iteration"] for r in rows])
        k_m = fit_exponent(ds, [r["peak_mib"] for r in rows])
        print(f"fitted exponents: seconds/iteration ~ D^{k_t:.2f}, peak memory ~ D^{k_m:.2f}")
        plot(rows, out / "gaussian_large_cost.png", k_t, k_m)


if __name__ == "__main__":
    main()
