"""``w2gn toy {8gaussians,49gaussians,100gaussians,swissroll}``: the 2-D experiments of Appendix C.3."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_runtime_args, add_training_args, int_list, positive_int, say, training_options, write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..applications.toy import TOY_TARGETS

    p = sub.add_parser(
        "toy",
        help="2-D toy experiments: N(0, I) -> Gaussian mixtures or a Swiss roll (Figures 8-10)",
        description="Fit W2GN from N(0, I) to a 2-D target with the settings of Appendix C.3 (Dense ICNN "
        "[2; 128; 128, 64], 30000 steps of 1024 samples, lr 1e-3, lambda 1, L1 1e-10; plus the R_X cycle term, "
        "--no-cycle-x to drop it) and write "
        "OUT_DIR/toy_<target>.png (input, target, forward- and inverse-mapped samples at the snapshot "
        "iterations) and OUT_DIR/toy_<target>.json (exact and sliced sample W2 between grad psi_theta # P "
        "and Q, and for mixtures the fraction of modes that receive mass).",
        epilog="example (a quick look): w2gn toy 8gaussians --iterations 2000 --out-dir outputs",
    )
    p.add_argument("target", choices=list(TOY_TARGETS), help="target distribution Q")
    p.add_argument("--out-dir", default="outputs", help="folder for the PNG and JSON (default outputs)")
    p.add_argument("--snapshots", type=int_list, default=[200, 2000],
                   help="iterations to plot besides the last (default 200,2000 as in Figure 8)")
    p.add_argument("--eval-samples", type=positive_int, default=4096, help="evaluation samples of P and Q (4096)")
    p.add_argument("--exact-samples", type=positive_int, default=2000,
                   help="samples for the exact discrete-OT W2 (default 2000; cost grows as n^3)")
    p.add_argument("--save-map", metavar="PATH", help="also save the fitted map (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_training_args(p, iterations=30000, batch_size=1024, lr=1e-3, lambda_cycle=1.0)
    # R_X is on by default here (TOY_DEFAULTS explains why); this switch restores Algorithm 1 as printed
    p.add_argument("--no-cycle-x", dest="cycle_x", action="store_false",
                   help="train without the R_X cycle term (the toy default has it: see benchmarks/results/toy.md)")
    add_runtime_args(p)
    p.set_defaults(func=run, hidden=[128, 128, 64], rank=2, l1_penalty=1e-10, cycle_x=True)


def run(args: argparse.Namespace) -> int:
    from ..applications.toy import run_toy, toy_figure
    from ..errors import W2GNUserError
    from ..io.atomic import check_output_path

    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise W2GNUserError(f"{out_dir}: exists and is not a folder; choose another --out-dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"toy_{args.target}"
    png = check_output_path(stem.with_suffix(".png"), args.overwrite)
    js = check_output_path(stem.with_suffix(".json"), args.overwrite)
    if args.save_map:
        check_output_path(args.save_map, args.overwrite)
    say(f"toy {args.target}: N(0, I) -> {args.target}, {args.iterations} steps", args.quiet)
    res = run_toy(args.target, snapshots=args.snapshots, eval_samples=args.eval_samples,
                  exact_samples=args.exact_samples, **training_options(args))
    toy_figure(res, png)
    write_json(js, {"target": args.target, "metrics": res.metrics, "snapshots": [s["iteration"] for s in res.snapshots],
                    "config": res.fitted.info.get("config", {}), "history": res.fitted.info.get("history", [])})
    if args.save_map:
        res.fitted.save(args.save_map)
    m = res.metrics
    line = (f"{args.target}: W2(T#P, Q) = {m['w2_forward']:.4f} (identity {m['w2_identity']:.4f}, two samples of Q "
            f"{m['w2_q_vs_q']:.4f}); W2(T^-1#Q, P) = {m['w2_inverse']:.4f}; sliced W2 {m['sw2_forward']:.4f}")
    if "modes_covered" in m:
        line += f"; modes receiving mass {m['modes_covered_count']}/{m['modes_total']}"
    print(f"{line}; {res.seconds:.0f}s -> {png}, {js}")
    return 0
