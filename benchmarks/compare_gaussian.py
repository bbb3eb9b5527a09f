"""Benchmark: W2GN against LSOT, MM-1 and MM-2 on the paper's Gaussian pairs (Table 1, Figure 2).

Runs :func:`w2gn.testbeds.comparison.compare_gaussian` with a CPU budget, prints the Markdown tables and writes
``benchmarks/results/compare_gaussian_run.{json,md,png}`` (after each dimension). Rerun with the same arguments to reproduce;
timings depend on the machine and its load (record both).

    PYTHONPATH=src python benchmarks/compare_gaussian.py --dims 2,4,8,16 --time-budget 10 --iterations 5000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _shared import add_int_options

from w2gn.testbeds.comparison import accuracy_ratios, compare_gaussian, markdown_report, plot_convergence

RESULTS = Path(__file__).resolve().parent / "results"


def _recompute_ratios(result: dict, dim: int) -> None:
    curves = {r["method"]: r["curve"] for r in result["runs"] if r["dim"] == dim}
    if "w2gn" not in curves:
        return
    result["ratios"][str(dim)] = accuracy_ratios(curves, "w2gn")
    for t, table in result.get("ratios_at", {}).items():
        table[str(dim)] = accuracy_ratios(curves, "w2gn", target=float(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="2,4,8,16")
    ap.add_argument("--methods", default="w2gn,lsot,mm1,mm2")
    ap.add_argument("--iterations", type=int, default=5000, help="iteration cap per method (the time budget usually stops first)")
    ap.add_argument("--lsot-iterations", type=int, default=1500,
                    help="LSOT's steps (half dual, half map): set so that both phases end inside the time budget")
    ap.add_argument("--time-budget", type=float, default=10.0, help="training seconds cap per method and dimension")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="cpu", help="cpu: process CPU seconds (shared machine)")
    add_int_options(ap, batch_size=256, pretrain_iterations=200, eval_every=25, eval_samples=2048, hidden_floor=32,
                    mm1_inner_iterations=20, mm2_inner_steps=10)
    ap.add_argument("--baseline-eval-every", type=int, default=5,
                    help="MM-1/MM-2 evaluation period: their steps cost ~5x W2GN's, so the curves get a similar time resolution")
    ap.add_argument("--targets", default="1,0.3", help="fixed L2-UVP levels (%%) for extra time-to-accuracy ratios")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    ap.add_argument("--update", default=None, metavar="JSON",
                    help="rerun only --methods and replace their runs in this earlier result (ratios recomputed)")
    ap.add_argument("--out", default=str(RESULTS / "compare_gaussian_run"), help="output stem")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    dims = [int(d) for d in args.dims.split(",")]
    methods = args.methods.split(",")
    iterations = {m: args.lsot_iterations if m == "lsot" else args.iterations for m in methods}
    result: dict = {}
    for i, dim in enumerate(dims):  # one dimension at a time, results written after each
        part = compare_gaussian(
            [dim], methods, iterations=iterations, batch_size=args.batch_size,
            hidden_floor=args.hidden_floor, pretrain_iterations=args.pretrain_iterations, eval_every=args.eval_every,
            eval_samples=args.eval_samples, time_budget=args.time_budget, clock=args.clock,
            fixed_targets=[float(t) for t in args.targets.split(",")],
            method_options={"mm1": {"inner_iterations": args.mm1_inner_iterations, "log_every": args.baseline_eval_every},
                            "mm2": {"inner_steps": args.mm2_inner_steps, "log_every": args.baseline_eval_every}},
            progress=False, log=print,
        )
        if not result and args.update:
            result = json.loads(Path(args.update).read_text())
        if result and args.update:
            result["runs"] = [r for r in result["runs"] if not (r["dim"] == dim and r["method"] in methods)] + part["runs"]
            _recompute_ratios(result, dim)
        elif not result:
            result = part
        else:
            result["runs"] += part["runs"]
            result["ratios"].update(part["ratios"])
            for t, r in part["ratios_at"].items():
                result["ratios_at"][t].update(r)
        if not args.update:
            result["settings"]["dims"] = dims[: i + 1]
        else:
            result["settings"].setdefault("updates", []).append({"dim": dim, "methods": methods, "settings": part["settings"]})
        key = "machine_update" if args.update else "machine"
        result[key] = {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads,
                             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "total_wall_seconds": time.perf_counter() - t0, "total_cpu_seconds": time.process_time(),
                             "note": "2-core CPU shared with other jobs"}
        stem = Path(args.out)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(result, default=float) + "\n")
        report = markdown_report(result)
        stem.with_suffix(".md").write_text(report)
        plot_convergence(result, stem.with_suffix(".png"))
    print(report)
    print(f"total {time.perf_counter() - t0:.0f} s wall, {time.process_time():.0f} s CPU -> {stem}.json/.md/.png")


if __name__ == "__main__":
    main()
