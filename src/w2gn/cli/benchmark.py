"""``w2gn benchmark``: fit methods on benchmark pairs with known non-linear OT maps and score them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import W2GNUserError
from .common import int_list, positive_float, positive_int, say, write_json, write_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..testbeds.runner import PRESETS

    p = sub.add_parser(
        "benchmark",
        help="score methods on pairs with known non-linear OT maps",
        description="Fit each METHOD on each benchmark pair (P, Q = grad psi # P, whose OT map grad psi is known) "
        "for a fixed training budget (CPU seconds by default, see --clock), and write a table of forward/inverse "
        "L2-UVP, cosine, seconds and "
        "iterations (results.json, results.md), the pairs' identity/linear scores (pairs.md) and a convergence "
        "figure (convergence.png: L2-UVP against seconds, one curve per method).",
    )
    p.add_argument("--pairs", default="fitted", choices=["fitted", "random"], help="pair family (default fitted)")
    p.add_argument("--dims", type=int_list, default=[2, 4, 8], help="dimensions, comma-separated (default 2,4,8)")
    p.add_argument("--methods", default="paper",
                   help=f"comma-separated W2GN presets ({', '.join(PRESETS)}) or solver names (default paper)")
    p.add_argument("--budget", type=positive_float, default=60.0, help="training seconds per fit (default 60)")
    p.add_argument("--clock", default="process", choices=["process", "wall"],
                   help="budget in CPU seconds of this process (default; robust on a shared CPU) or wall seconds")
    p.add_argument("--max-iterations", type=positive_int, default=1_000_000, help="iteration cap per fit")
    p.add_argument("--log-every", type=positive_int, default=200, help="iterations between convergence points")
    p.add_argument("--curve-samples", type=positive_int, default=2048, help="samples per convergence point")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the random pairs (default 0)")
    p.add_argument("--pairs-only", action="store_true", help="only write the pairs' identity/linear scores")
    p.add_argument("-o", "--output-dir", default="benchmark_results", help="folder for the outputs (created)")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="training precision")
    g.add_argument("--seed", type=int, default=0, help="training seed of every fit (default 0)")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..testbeds import fitted_pair, random_pair
    from ..testbeds.runner import baseline_table, convergence_figure, markdown_table, method_options, run_fit

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise W2GNUserError("--methods is empty; name at least one method")
    for m in methods:
        method_options(m, 2)  # validates the name before any work
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise W2GNUserError(f"{out}: exists and is not a folder; choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    pairs = [fitted_pair(d) if args.pairs == "fitted" else random_pair(d, seed=args.pair_seed) for d in args.dims]
    write_text(out / "pairs.md", baseline_table(pairs))
    say(baseline_table(pairs), args.quiet)
    if args.pairs_only:
        return 0
    results = []
    bar = tqdm(total=len(pairs) * len(methods), disable=args.quiet, desc="benchmark")
    for pair in pairs:
        for m in methods:
            bar.set_postfix_str(f"{pair.name} {m}")
            r = run_fit(pair, m, budget_s=args.budget, max_iterations=args.max_iterations, seed=args.seed,
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
