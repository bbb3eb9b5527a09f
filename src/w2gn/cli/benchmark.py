"""``w2gn benchmark``: fit methods on benchmark pairs with known non-linear OT maps and score them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import W2GNUserError
from .common import add_command, int_list, positive_float, positive_int, say, write_json, write_text
from .compare import add_clock_arg
from .options import add_runtime_args, add_time_budget_arg
from .outdir import add_out_dir_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    import inspect

    from ..testbeds.runner import PRESETS, run_fit

    # the defaults are run_fit's own (except --log-every: fewer, cheaper convergence points)
    d = {k: v.default for k, v in inspect.signature(run_fit).parameters.items()}
    p = add_command(sub, "benchmark", "score methods on pairs with known non-linear OT maps", run)
    p.add_argument("--pairs", default="fitted", choices=["fitted", "hard", "random"],
                   help="pair family: fitted (easy, close to linear), hard (as hard as the published W2 "
                   "benchmark's pairs; D = 2, 4, 8, 16, 32 so far) or random")
    p.add_argument("--dims", type=int_list, default=[2, 4, 8], help="dimensions, comma-separated")
    p.add_argument("--methods", default=d["method"],
                   help=f"comma-separated W2GN presets ({', '.join(PRESETS)}) or solver names")
    add_time_budget_arg(p, d["budget_s"], text="training seconds per fit")
    p.add_argument("--budget", dest="time_budget", type=positive_float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_clock_arg(p, d["clock"])
    p.add_argument("--max-iterations", type=positive_int, default=d["max_iterations"], help="iteration cap per fit")
    p.add_argument("--log-every", type=positive_int, default=200, help="iterations between convergence points")
    p.add_argument("--curve-samples", type=positive_int, default=d["curve_samples"], help="samples per convergence point")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the random pairs")
    p.add_argument("--pairs-only", action="store_true", help="only write the pairs' identity/linear scores")
    add_out_dir_arg(p, "benchmark_results", old=("-o", "--output-dir"))
    add_runtime_args(p, quiet="no progress output")


def run(args: argparse.Namespace) -> int:
    """Fit each METHOD on each benchmark pair (P, Q = grad psi # P, whose OT map grad psi is known) for a fixed
    training time (--time-budget, in the seconds of --clock), and write a table of forward/inverse L2-UVP,
    cosine, seconds and iterations (results.json, results.md), the pairs' identity/linear scores (pairs.md) and
    a convergence figure (convergence.png: L2-UVP against seconds, one curve per method).
    """
    from tqdm.auto import tqdm

    from ..testbeds import fitted_pair, hard_pair, random_pair
    from ..testbeds.runner import baseline_table, convergence_figure, markdown_table, method_options, run_fit

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise W2GNUserError("--methods is empty; name at least one method")
    for m in methods:
        method_options(m, 2)  # validates the name before any work
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise W2GNUserError(f"{out}: exists and is not a folder; choose another --out-dir")
    out.mkdir(parents=True, exist_ok=True)
    load = {"fitted": fitted_pair, "hard": hard_pair, "random": lambda d: random_pair(d, seed=args.pair_seed)}
    pairs = [load[args.pairs](d) for d in args.dims]
    write_text(out / "pairs.md", baseline_table(pairs))
    say(baseline_table(pairs), args.quiet)
    if args.pairs_only:
        return 0
    results = []
    bar = tqdm(total=len(pairs) * len(methods), disable=args.quiet, desc="benchmark")
    for pair in pairs:
        for m in methods:
            bar.set_postfix_str(f"{pair.name} {m}")
            r = run_fit(pair, m, budget_s=args.time_budget, max_iterations=args.max_iterations, seed=args.seed,
                        log_every=args.log_every, curve_samples=args.curve_samples, device=args.device,
                        dtype=args.dtype, clock=args.clock)
            results.append(r)
            bar.update(1)
            say(f"{pair.name} {m}: forward {r.forward_uvp:.3f} %, inverse {r.inverse_uvp:.3f} % "
                f"({r.iterations} iterations, {r.seconds:.0f} s)", args.quiet)
            # rewrite after every fit so an interrupted run keeps what it measured
            write_json(out / "results.json", {"command": "w2gn benchmark", "args": _plain(vars(args)),
                                              "results": [dict(x.row(), curve=x.curve) for x in results]})
            write_text(out / "results.md", markdown_table(results))
    bar.close()
    convergence_figure(results, out / "convergence.png")
    say(markdown_table(results), args.quiet)
    say(f"wrote {out}/results.md, results.json, pairs.md and convergence.png", args.quiet)
    return 0


def _plain(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "func" and json.dumps(v, default=str) is not None}
