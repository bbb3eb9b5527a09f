"""``w2gn toy {8gaussians,49gaussians,100gaussians,swissroll}``: the 2-D experiments of Appendix C.3."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..applications.toy import TOY_DEFAULTS, TOY_TARGETS
from ..solvers.presets import preset_defaults
from .common import int_list, positive_int, say, write_json
from .options import accuracy_options, add_accuracy_args, add_runtime_args, add_training_args, training_options

#: the settings of Appendix C.3 (:data:`w2gn.applications.toy.TOY_DEFAULTS`) over the paper's algorithm
DEFAULTS = {**preset_defaults("paper"), **TOY_DEFAULTS}


def _input_rate(factor: float) -> str:
    return f"; the input layers at {factor:g}x the rate, --input-lr-factor 1 for C.3" if factor != 1 else ""


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = DEFAULTS
    p = sub.add_parser(
        "toy",
        help="2-D toy experiments: N(0, I) -> Gaussian mixtures or a Swiss roll (Figures 8-10)",
        description="Fit W2GN from N(0, I) to a 2-D target with the settings of Appendix C.3 (Dense ICNN "
        f"[2; {'; '.join(map(str, d['hidden']))}] of rank {d['rank']}, {d['iterations']} steps of {d['batch_size']} "
        f"samples, lr {d['lr']:g}, lambda {d['lambda_cycle']:g}, L1 {d['l1_penalty']:g}"
        f"{'; plus the R_X cycle term, --no-cycle-x to drop it' if d['cycle_x'] else ''}"
        f"{_input_rate(d['input_lr_factor'])}"
        ": the defaults below) and write "
        "OUT_DIR/toy_<target>.png (input, target, forward- and inverse-mapped samples at the snapshot "
        "iterations) and OUT_DIR/toy_<target>.json (exact and sliced sample W2 between grad psi_theta # P "
        "and Q, and for mixtures the fraction of modes that receive mass).",
        epilog="example (a quick look): w2gn toy 8gaussians --iterations 2000 --out-dir outputs",
    )
    p.add_argument("target", choices=list(TOY_TARGETS), help="target distribution Q")
    p.add_argument("--out-dir", default="outputs", help="folder for the PNG and JSON")
    p.add_argument("--snapshots", type=int_list, default=[200, 2000],
                   help="iterations to plot besides the last (Figure 8's)")
    p.add_argument("--eval-samples", type=positive_int, default=4096, help="evaluation samples of P and Q")
    p.add_argument("--exact-samples", type=positive_int, default=2000,
                   help="samples for the exact discrete-OT W2 (cost grows as n^3)")
    p.add_argument("--save-map", metavar="PATH", help="also save the fitted map (.pt) (default: not saved)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_training_args(p, DEFAULTS)
    add_accuracy_args(p, DEFAULTS)
    add_runtime_args(p)
    p.set_defaults(func=run)


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
                  exact_samples=args.exact_samples, time_budget=args.time_budget, **training_options(args),
                  **accuracy_options(args))
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
