"""``w2gn compare gaussian``: W2GN against the paper's baselines on Gaussians (Table 1, Figure 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import W2GNUserError
from ..solvers import SOLVERS
from ..testbeds.comparison import compare_gaussian, markdown_report, plot_convergence
from .common import add_command, int_list, nonneg_int, positive_float, positive_int, say, write_json, write_text
from .options import add_runtime_args, add_time_budget_arg

#: one spelling of the clock in every command: process CPU seconds or wall seconds ("cpu": compare's old name)
CLOCKS = ["process", "wall"]


def clock_type(text: str) -> str:
    """``--clock`` values; ``cpu`` (an earlier spelling) means ``process``."""
    return "process" if text == "cpu" else text


def add_clock_arg(p: argparse._ActionsContainer, default: str = "process") -> None:
    """``--clock {process,wall}``: which seconds a time budget and the reported timings count."""
    p.add_argument("--clock", type=clock_type, choices=CLOCKS, default=default,
                   help="seconds as CPU time of this process (robust on a shared machine) or as wall-clock time")


def _methods(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated method names")
    bad = [n for n in names if n not in SOLVERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}; choose from {', '.join(sorted(SOLVERS))}")
    return names


def add_parser(sub: argparse._SubParsersAction) -> None:
    import inspect

    # the defaults are compare_gaussian's own
    d = {k: v.default for k, v in inspect.signature(compare_gaussian).parameters.items()}
    # a dispatcher: what it does is its subcommands' ('w2gn compare' alone says so: _missing)
    p = add_command(sub, "compare", "compare W2GN with the baselines LSOT, MM-1, MM-2 (paper's Table 1 and Figure 2)",
                    None, "Fit several methods on the same problems and write a comparison table and convergence plot.")
    benches = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    g = add_command(benches, "gaussian", "random Gaussian pairs with the closed-form OT map (Section 5.1)", run_gaussian)
    g.add_argument("--dims", type=int_list, default=[2, 4, 8, 16], help="dimensions")
    g.add_argument("--methods", type=_methods, default=["w2gn", "lsot", "mm1", "mm2"], help="methods to compare")
    g.add_argument("--out-dir", default="outputs", metavar="DIR", help="folder for the outputs (created if missing)")
    g.add_argument("--iterations", type=positive_int, default=d["iterations"], help="training steps per method")
    add_time_budget_arg(g, d["time_budget"], text="stop a method after this many training seconds")
    add_clock_arg(g)
    g.add_argument("--batch-size", type=positive_int, default=d["batch_size"], help="samples per step")
    g.add_argument("--lr", type=positive_float, default=d["lr"], help="Adam learning rate of every method")
    g.add_argument("--hidden-floor", type=positive_int, default=d["hidden_floor"],
                   help="minimum Dense ICNN width; 1 gives the paper's [D, D, D/2] exactly")
    g.add_argument("--pretrain-iterations", type=nonneg_int, default=d["pretrain_iterations"],
                   help="identity pretraining steps")
    g.add_argument("--eval-every", type=positive_int, default=d["eval_every"], help="iterations between L2-UVP evaluations")
    g.add_argument("--eval-samples", type=positive_int, default=d["eval_samples"], help="samples for L2-UVP")
    g.add_argument("--pair-seed", type=int, default=d["pair_seed"], help="seed of the random Gaussian pairs")
    g.add_argument("--family", choices=["centred", "offset"], default=d["family"],
                   help="centred: the paper's pairs; offset: non-zero means and spectra in [0.2, 5]")
    g.add_argument("--precondition", choices=["none", "standardize", "diagonal", "bures"], default=d["precondition"],
                   help="coordinates every method trains in (none: the paper's; diagonal: as w2gn fit)")
    b = g.add_argument_group("baseline options")
    from ..solvers import LSOTConfig, MM1Config, MM2Config
    from .options import config_defaults

    lsot, mm1, mm2 = config_defaults(LSOTConfig), config_defaults(MM1Config), config_defaults(MM2Config)
    b.add_argument("--lsot-epsilon", type=positive_float, default=lsot["epsilon"], help="LSOT regularisation (C.4)")
    b.add_argument("--lsot-regularizer", choices=["l2", "entropy"], default=lsot["regularizer"], help="LSOT regulariser")
    b.add_argument("--mm1-inner-iterations", type=positive_int, default=mm1["inner_iterations"],
                   help="MM-1 inner solver iterations")
    b.add_argument("--mm1-inner-tol", type=positive_float, default=mm1["inner_tol"], help="MM-1 inner solver tolerance")
    b.add_argument("--mm1-inner-optimizer", choices=["lbfgs", "adam", "gd"], default=mm1["inner_optimizer"],
                   help="MM-1 inner optimiser")
    b.add_argument("--mm2-inner-steps", type=positive_int, default=mm2["inner_steps"],
                   help="MM-2 steps on omega per step on theta")
    add_runtime_args(g)
    _add_peers(benches)
    p.set_defaults(func=lambda _args: _missing(p))


def _peer_methods(text: str) -> list[str]:
    from ..testbeds.peers import peer_methods

    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    known = peer_methods()
    bad = [n for n in names if n not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}; choose from {', '.join(known)}")
    return names


def _add_peers(benches: argparse._SubParsersAction) -> None:
    """``w2gn compare peers``: the same flag vocabulary as ``compare gaussian`` (dims, out-dir, budget, clock, seed)."""
    import inspect

    from ..testbeds.peers import peer_methods, run_peers

    d = {k: v.default for k, v in inspect.signature(run_peers).parameters.items()}
    g = add_command(benches, "peers", "w2gn against OTT-JAX, POT and the paper's settings on pairs with known maps "
                    "(issue 22)", run_peers_command)
    g.add_argument("--dims", type=int_list, default=[8, 16, 32], help="dimensions")
    g.add_argument("--methods", type=_peer_methods, default=list(peer_methods()),
                   help="methods to run (peers whose package is missing are listed as not run)")
    g.add_argument("--family", choices=["fitted", "hard"], default=d["family"],
                   help="benchmark pairs (hard: D = 2, 4 only)")
    g.add_argument("--out-dir", default="outputs", metavar="DIR", help="folder for the outputs (created if missing)")
    add_time_budget_arg(g, d["budget_s"], text="training seconds of every method on every pair")
    add_clock_arg(g)
    g.add_argument("--eval-samples", type=positive_int, default=d["n_eval"],
                   help="fixed evaluation samples for forward and inverse L2-UVP")
    r = g.add_argument_group("runtime")
    r.add_argument("--seed", type=int, default=d["seed"], help="seed of the initialisation and the sampling")
    r.add_argument("--quiet", action="store_true", help="no progress lines")


def run_peers_command(args: argparse.Namespace) -> int:
    """Every method one after another in this process, each with the same time budget, on the benchmark pair
    of each dimension. Writes OUT_DIR/peers.json (every curve), OUT_DIR/peers.md (final and best L2-UVP,
    times to reach each peer's final error, speed-up ratios) and OUT_DIR/peers.png (L2-UVP against seconds).
    For a fair single-core comparison run it pinned: taskset -c 1 w2gn compare peers ...
    """
    import torch

    from ..testbeds.peer_report import markdown_report, plain, plot_peers
    from ..testbeds.peers import configure_jax_one_thread, run_peers

    # one thread everywhere (torch here, XLA before JAX is imported): the methods share one core
    torch.set_num_threads(1)
    configure_jax_one_thread()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run_peers(args.dims, args.methods, budget_s=args.time_budget, family=args.family, seed=args.seed,
                       n_eval=args.eval_samples, clock=args.clock, log=lambda msg: say(msg, args.quiet))
    return _write_outputs(out_dir / "peers", result, markdown_report(result), plot_peers, to_json=plain)


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help()
    raise W2GNUserError("choose a benchmark, e.g. 'w2gn compare gaussian --dims 2,4'")


def run_gaussian(args: argparse.Namespace) -> int:
    """Every method is fitted on the same random Gaussian pair per dimension (same seeds, Dense ICNN widths
    [D, D, D/2] of C.4 with a floor, same batch size). Writes OUT_DIR/compare_gaussian.json,
    OUT_DIR/compare_gaussian.md (L2-UVP beside the paper's Table 1, seconds, time-to-accuracy ratio) and
    OUT_DIR/compare_gaussian.png (L2-UVP against seconds and iterations, the paper's Figure 2).
    """
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
        eval_samples=args.eval_samples, time_budget=args.time_budget, pair_seed=args.pair_seed,
        family=args.family, precondition=args.precondition, seed=args.seed,
        clock="cpu" if args.clock == "process" else "wall",  # compare_gaussian's names for the two clocks
        device=args.device, dtype=args.dtype, method_options={m: o for m, o in options.items() if m in args.methods},
        progress=not args.quiet, log=lambda msg: say(msg, args.quiet),
    )
    return _write_outputs(out_dir / "compare_gaussian", result, markdown_report(result), plot_convergence)


def _write_outputs(stem: Path, result: dict, report: str, plot, to_json=None) -> int:
    """STEM.json (``to_json(result)``, or ``result``), STEM.md (the report, also printed) and STEM.png
    (``plot(result, path)``)."""
    write_json(stem.with_suffix(".json"), to_json(result) if to_json is not None else result)
    write_text(stem.with_suffix(".md"), report)
    plot(result, stem.with_suffix(".png"))
    print(report)
    print(f"-> {stem}.json, {stem}.md, {stem}.png")
    return 0
