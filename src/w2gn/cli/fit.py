"""``w2gn fit SOURCE TARGET -o map.pt``: fit a map between two files of samples."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .. import distributed
from ..fitted_map import TransportMap
from ..io import check_output_path, open_samples
from ..solvers import Solver, TimeBudget
from .common import (
    accuracy_options,
    add_accuracy_args,
    add_runtime_args,
    add_training_args,
    resolve_lr,
    say,
    training_options,
)

#: default training-time budget of ``w2gn fit`` in seconds (with ``--iterations`` 60000, whichever comes first)
DEFAULT_BUDGET = 900.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit an OT map between two sample files",
        description="Fit a Wasserstein-2 optimal transport map from the samples in SOURCE to those in TARGET "
        "(.npy/.npz/.csv/.txt/.tsv/.pt files, one sample per row) and save it. "
        "Multi-process: torchrun --nproc_per_node=N -m w2gn fit ... (--batch-size is the global batch).",
    )
    p.add_argument("source", help="file of source samples (rows)")
    p.add_argument("target", help="file of target samples (rows)")
    p.add_argument("-o", "--output", default="map.pt", help="where to save the fitted map (default map.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    # the fast analytic step, a learning rate by dimension and a 15-minute budget: the settings that
    # reached the accuracy targets of benchmarks/results/accuracy.md
    add_training_args(p, iterations=60000, lr=None, gradient_mode="analytic")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds of training, ending the cosine schedule there "
                   f"(default {DEFAULT_BUDGET:g} in one process; not available under torchrun)")
    add_accuracy_args(p)
    add_runtime_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, args.overwrite)
    ctx0 = distributed.env_context()
    budget = args.time_budget
    if ctx0.enabled and budget is not None:
        from ..errors import W2GNUserError

        raise W2GNUserError("--time-budget is not available under torchrun (each rank would end its schedule "
                            "at a different step); use --iterations")
    if budget is None and not ctx0.enabled:
        budget = DEFAULT_BUDGET
    distributed.make_solver(ctx0, **training_options(args), **accuracy_options(args))  # validates the options before any work
    # a big .npy file stays on disk (checked in blocks, batches read row by row): data larger than memory fit
    x = open_samples(args.source, digest=True)
    y = open_samples(args.target, digest=True)
    if x.shape[1:] != y.shape[1:]:
        from ..errors import W2GNUserError

        raise W2GNUserError(
            f"{args.source} has {x.shape[1]} columns but {args.target} has {y.shape[1]}; "
            "source and target samples must have the same dimension"
        )
    resolve_lr(args, int(math.prod(x.shape[1:])))
    # under torchrun every rank trains (DDP); only rank 0 talks and writes
    with distributed.session(args.device) as (ctx, device):
        quiet = args.quiet or not ctx.is_main
        procs = f" on {ctx.world_size} processes ({ctx.backend})" if ctx.enabled else ""
        say(f"fitting w2gn map: {x.shape[0]} source and {y.shape[0]} target samples in dimension {x.shape[1]}{procs}",
            quiet)
        solver = distributed.make_solver(ctx, **{**training_options(args), **accuracy_options(args), "device": device})
        fitted = solver.fit(x, y, callback=TimeBudget(solver, budget) if budget is not None else None)
        if ctx.is_main:
            save_map(fitted, out, solver)
            last = solver.history[-1] if solver.history else {}
            say(f"saved {out} (W2^2 dual estimate {last.get('w2_dual', float('nan')):.6g})", quiet)
    return 0


def save_map(fitted: TransportMap, out: Path, solver: Solver) -> None:
    """Save the fitted map; on a full disk say which checkpoint holds the trained state and how to resume."""
    from ..errors import WriteFailedError

    try:
        fitted.save(out)
    except OSError as exc:
        writer = getattr(solver, "_checkpoints", None)
        last = writer.last_path if writer is not None and writer.last_path is not None else None
        if last is not None and not last.is_file():
            last = None
        raise WriteFailedError("the map", out, exc, str(last) if last else None,
                               writer.resume_hint() if last else None) from exc
