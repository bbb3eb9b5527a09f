"""``w2gn fit SOURCE TARGET -o map.pt``: fit a map between two files of samples."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .. import distributed
from ..checkpoint import run_context
from ..errors import W2GNUserError
from ..fitted_map import TransportMap
from ..io import check_output_path, open_samples
from ..solvers import Solver, TimeBudget
from ..solvers.presets import get_preset, preset_defaults
from .common import add_command, say
from .options import (
    accuracy_options,
    add_accuracy_args,
    add_runtime_args,
    add_training_args,
    resolve_by_dimension,
    training_options,
)
from .processes import AUTO_MIN_ITERATIONS, launch, resolve_processes, spawned_rank

#: the named configuration ``w2gn fit`` trains with (:mod:`w2gn.solvers.presets`): its defaults and time budget
PRESET = "fit"

#: the step cap of a fit that the time budget ends: high enough never to be what stops it
UNCAPPED = 1_000_000_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "fit", "fit an OT map between two sample files", run)
    p.add_argument("source", help="file of source samples (rows)")
    p.add_argument("target", help="file of target samples (rows)")
    p.add_argument("-o", "--output", default="map.pt", help="where to save the fitted map (a .pt file)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    # the preset's budget applies in one process only; under torchrun each rank would end its schedule elsewhere
    # no step count by default: the time budget ends the fit (a count would stop a fast machine's fit early with the
    # budget unused, as 60,000 did on hard D = 8 after 634 of 900 s); the preset's count stays the Python API's
    defaults = {**preset_defaults(PRESET), "iterations": None}
    add_training_args(p, defaults, time_budget=None,
                      time_budget_means=f"{get_preset(PRESET).time_budget:g}; with several processes rank 0's clock decides")
    add_accuracy_args(p, defaults)
    add_runtime_args(p)
    g = p.add_argument_group("processes")
    g.add_argument("--processes", type=_processes, default="auto",
                   help="processes sharing the fit on this machine's CPU cores (cli/processes.py); auto: 2 when there are "
                        "2 usable cores, the objective is two-sided (each process one direction) and the run has "
                        f"at least {AUTO_MIN_ITERATIONS} steps, else 1")
    g.add_argument("--split", choices=["auto", *distributed.SPLITS], default="auto",
                   help="how several processes (--processes or torchrun) share a step: 'directions' (2 processes, "
                        "one half of the two-sided objective each: the same steps as one process), 'batch' (each "
                        "process a slice of the batch, gradients averaged); auto: directions when it applies")


def _processes(text: str) -> str:
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number of processes, got {text!r}")


def split_for(world_size: int, correlation_on: str, split: str = "auto") -> str:
    """How ``world_size`` processes share a step: ``split`` unless ``auto``, which is ``directions`` for 2
    processes on the two-sided objective (exactly the one-process steps, half the work each), else ``batch``."""
    if split != "auto":
        return split
    return "directions" if world_size == 2 and correlation_on == "both" else "batch"


def _unflagged() -> dict:
    """The preset's options that have no command-line flag (e.g. ``lambda_per_dim``, ``lambda_cap``): without this
    they would fall back to the config's (the paper's) values."""
    from .options import ACCURACY_SPECS, TRAINING_SPECS

    return {k: v for k, v in get_preset(PRESET).options.items() if k not in TRAINING_SPECS and k not in ACCURACY_SPECS}


def run(args: argparse.Namespace) -> int:
    """Fit a Wasserstein-2 optimal transport map from the samples in SOURCE to those in TARGET
    (.npy/.npz/.csv/.txt/.tsv/.pt files, one sample per row) and save it.
    On a CPU with 2 usable cores it runs as 2 processes by default (--processes); on more machines or GPUs:
    torchrun --nproc_per_node=N -m w2gn fit ... (--batch-size is the global batch).
    """
    if Path(args.output).suffix.lower() != ".pt":
        raise W2GNUserError(f"{args.output}: a fitted map is saved as a .pt file; give -o a name ending in .pt")
    out = check_output_path(args.output, args.overwrite)
    capped = args.iterations is not None
    if not capped:  # the preset's count is only the schedule's first horizon: the budget re-aims it at the first log
        args.iterations = int(get_preset(PRESET).options["iterations"])
    ctx0 = distributed.env_context()
    # several processes follow rank 0's budget (its horizon is broadcast at every log step)
    budget = args.time_budget if args.time_budget is not None else get_preset(PRESET).time_budget
    options = {**_unflagged(), **training_options(args), **accuracy_options(args)}
    correlation_on = options.get("correlation_on") or "both"
    split = split_for(ctx0.world_size, correlation_on, args.split)
    distributed.make_solver(ctx0, split=split, **options)  # validates the options before any work
    notes: list[str] = []  # said once the inputs pass every check: refused input gets one line only
    # a big .npy file stays on disk (checked in blocks, batches read row by row): data larger than memory fit
    x = open_samples(args.source, digest=True, log=notes.append)
    y = open_samples(args.target, digest=True, log=notes.append)
    if x.shape[1:] != y.shape[1:]:
        raise W2GNUserError(
            f"{args.source} has {x.shape[1]} columns but {args.target} has {y.shape[1]}; "
            "source and target samples must have the same dimension"
        )
    dim = int(math.prod(x.shape[1:]))
    need = max(args.batch_size, dim + 1)
    for arr, path in ((x, args.source), (y, args.target)):
        if arr.shape[0] < need:
            # fewer rows than a batch would be resampled many times over per step, and fewer than D + 1
            # points span no D-dimensional distribution: the fitted map would describe the sample, not the data
            raise W2GNUserError(f"{path}: has {arr.shape[0]} samples, fewer than the {need} a fit needs "
                                f"(--batch-size {args.batch_size} and dimension {dim} + 1); give more samples "
                                "or a smaller --batch-size")
    for note in notes:
        say(note, args.quiet or not ctx0.is_main or spawned_rank())
    resolve_by_dimension(args, dim)
    world = resolve_processes(args.processes, args.device, correlation_on, args.iterations)
    argv = run_context().get("argv")
    if world > 1 and not ctx0.enabled and argv is not None:
        # the checks above passed once, here; the ranks replay the command line (and do them again, quietly)
        say(f"fitting on {world} processes ({split_for(world, correlation_on, args.split)} split; "
            "--processes 1 for one)", args.quiet)
        return launch(list(argv), world)
    # under torchrun every rank trains (DDP); only rank 0 talks and writes
    with distributed.session(args.device) as (ctx, device):
        quiet = args.quiet or not ctx.is_main
        procs = f" on {ctx.world_size} processes ({ctx.backend})" if ctx.enabled else ""
        say(f"fitting w2gn map: {x.shape[0]} source and {y.shape[0]} target samples in dimension {x.shape[1]}{procs}",
            quiet)
        # by-dimension options resolved for D; the preset's options without a flag (lambda_per_dim, lambda_cap) too
        options = {**_unflagged(), **training_options(args), **accuracy_options(args), "device": device}
        solver = distributed.make_solver(ctx, split=split, **options)
        cap = args.iterations if capped else UNCAPPED
        fitted = solver.fit(x, y, callback=TimeBudget(solver, budget, max_iterations=cap) if budget is not None else None)
        if ctx.is_main:
            save_map(fitted, out, solver)
            # in the data's coordinates (the training history's w2_dual is in the solver's frame)
            w2 = fitted.w2_squared(_head(x), _head(y))
            say(f"saved {out} (W2^2 dual estimate {w2:.6g} on the first {len(_head(x))} rows)", quiet)
    return 0


def _head(rows, n: int = 10_000):
    """The first ``n`` rows of an array or of a mapped file (:class:`~w2gn.io.stream.NpyRows`)."""
    return rows[:n] if hasattr(rows, "__getitem__") and not hasattr(rows, "block") else rows.block(0, min(n, len(rows)))


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
