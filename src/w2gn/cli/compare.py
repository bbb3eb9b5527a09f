"""``w2gn compare gaussian``: W2GN against the paper's baselines on Gaussians (Table 1, Figure 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import W2GNUserError
from ..solvers import SOLVERS
from ..testbeds.comparison import compare_gaussian, markdown_report, plot_convergence
from .common import add_runtime_args, int_list, nonneg_int, positive_float, positive_int, say, write_json, write_text


def _methods(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated method names")
    bad = [n for n in names if n not in SOLVERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}; choose from {', '.join(sorted(SOLVERS))}")
    return names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare W2GN with the baselines LSOT, MM-1, MM-2 (paper's Table 1 and Figure 2)",
        description="Fit several methods on the same problems and write a comparison table and convergence plot.",
    )
    benches = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    g = benches.add_parser(
        "gaussian",
        help="random Gaussian pairs with the closed-form OT map (Section 5.1)",
        description="Every method is fitted on the same random Gaussian pair per dimension (same seeds, Dense "
        "ICNN widths [D, D, D/2] of C.4 with a floor, same batch size). Writes OUT_DIR/compare_gaussian.json, "
        "OUT_DIR/compare_gaussian.md (L2-UVP beside the paper's Table 1, seconds, time-to-accuracy ratio) and "
        "OUT_DIR/compare_gaussian.png (L2-UVP against seconds and iterations, the paper's Figure 2).",
    )
    g.add_argument("--dims", type=int_list, default=[2, 4, 8, 16], help="dimensions (default 2,4,8,16)")
    g.add_argument("--methods", type=_methods, default=["w2gn", "lsot", "mm1", "mm2"],
                   help="methods to compare (default w2gn,lsot,mm1,mm2)")
    g.add_argument("--out-dir", default="outputs", help="folder for the outputs (default outputs)")
    g.add_argument("--iterations", type=positive_int, default=2000, help="training steps per method (default 2000)")
    g.add_argument("--time-budget", type=positive_float, default=None,
                   help="stop a method after this many training seconds (default: no limit)")
    g.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="seconds measured as wall-clock or as process CPU time (robust on a shared machine; default wall)")
    g.add_argument("--batch-size", type=positive_int, default=512, help="samples per step (default 512)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate of every method (default 1e-3)")
    g.add_argument("--hidden-floor", type=positive_int, default=32,
                   help="minimum Dense ICNN width; 1 gives the paper's [D, D, D/2] exactly (default 32)")
    g.add_argument("--pretrain-iterations", type=nonneg_int, default=1000, help="identity pretraining steps (default 1000)")
    g.add_argument("--eval-every", type=positive_int, default=50, help="iterations between L2-UVP evaluations (default 50)")
    g.add_argument("--eval-samples", type=positive_int, default=4096, help="samples for L2-UVP (default 4096)")
    g.add_argument("--pair-seed", type=int, default=0, help="seed of the random Gaussian pairs (default 0)")
    b = g.add_argument_group("baseline options")
    b.add_argument("--lsot-epsilon", type=positive_float, default=0.01, help="LSOT regularisation (default 0.01, C.4)")
    b.add_argument("--lsot-regularizer", choices=["l2", "entropy"], default="l2", help="LSOT regulariser (default l2)")
    b.add_argument("--mm1-inner-iterations", type=positive_int, default=50, help="MM-1 inner solver iterations (default 50)")
    b.add_argument("--mm1-inner-tol", type=positive_float, default=1e-3, help="MM-1 inner solver tolerance (default 1e-3)")
    b.add_argument("--mm1-inner-optimizer", choices=["lbfgs", "adam", "gd"], default="lbfgs",
                   help="MM-1 inner optimiser (default lbfgs)")
    b.add_argument("--mm2-inner-steps", type=positive_int, default=10, help="MM-2 steps on omega per step on theta (default 10)")
    add_runtime_args(g)
    g.set_defaults(func=run_gaussian)
    p.set_defaults(func=lambda _args: _missing(p))


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help()
    raise W2GNUserError("choose a benchmark, e.g. 'w2gn compare gaussian --dims 2,4'")


def run_gaussian(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "lsot": {"epsilon": args.lsot_epsilon, "regularizer": args.lsot_regularizer},
        "mm1": {"inner_iterations": args.mm1_inner_iterations, "inner_tol": args.mm1_inner_tol,
                "inner_optimizer": args.mm1_inner_optimizer},
        "mm2": {"inner_steps": args.mm2_inner_steps},
    }
    result = compare_gaussian(
        args.dims, args.methods, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
        hidden_floor=args.hidden_floor, pretrain_iterations=args.pretrain_iterations, eval_every=args.eval_every,
        eval_samples=args.eval_samples, time_budget=args.time_budget, clock=args.clock, pair_seed=args.pair_seed, seed=args.seed,
        device=args.device, dtype=args.dtype, method_options={m: o for m, o in options.items() if m in args.methods},
        progress=not args.quiet, log=lambda msg: say(msg, args.quiet),
    )
    stem = out_dir / "compare_gaussian"
    write_json(stem.with_suffix(".json"), result)
    report = markdown_report(result)
    write_text(stem.with_suffix(".md"), report)
    plot_convergence(result, stem.with_suffix(".png"))
    print(report)
    print(f"-> {stem}.json, {stem}.md, {stem}.png")
    return 0
