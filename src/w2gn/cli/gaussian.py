"""``w2gn gaussian --dim D``: the paper's Gaussian benchmark (Section 5.1) with closed-form truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import distributed
from ..distributions import GaussianPair
from ..distributions.gaussian import GAUSSIAN_FAMILIES
from ..io import check_output_path
from ..solvers import TimeBudget, default_hidden, resolve_device
from ..solvers.presets import preset_defaults
from ..testbeds.gaussian import GaussianEvaluation
from .common import add_command, positive_int, say, write_json
from .options import add_runtime_args, add_training_args, training_options

#: the paper's algorithm (preset "paper"), with fewer steps than its 5000 so that a first run is quick
DEFAULTS = {**preset_defaults("paper"), "iterations": 3000}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "gaussian", "fit W2GN between two random Gaussians and report L2-UVP against the closed form", run)
    p.add_argument("--dim", type=positive_int, default=2, help="dimension D")
    p.add_argument("--out-dir", default="outputs", help="folder for the JSON report and the plot")
    p.add_argument("--eval-samples", type=positive_int, default=20000, help="samples for L2-UVP")
    p.add_argument("--pair-seed", type=int, default=0, help="seed of the random Gaussian pair")
    p.add_argument("--family", choices=list(GAUSSIAN_FAMILIES), default="centred",
                   help="centred: the paper's pairs (zero means, spectra in [1/4, 4]); offset: non-zero means "
                   "(source N(0, 1), target 2 + N(0, 1) per coordinate) and spectra in [0.2, 5]")
    p.add_argument("--overwrite", action="store_true", help="replace existing report/plot files")
    add_training_args(p, DEFAULTS)
    add_runtime_args(p)


def run(args: argparse.Namespace) -> int:
    """The paper's Gaussian benchmark: random covariances with eigenvalues log-spaced in [1/4, 4], the exact OT map
    in closed form, L2-UVP (forward and inverse) tracked during training. Writes OUT_DIR/gaussian_D<dim>.json
    and a convergence plot OUT_DIR/gaussian_D<dim>.png.
    Multi-process: torchrun --nproc_per_node=N -m w2gn gaussian ... (--batch-size is the global batch).
    """
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / (f"gaussian_D{args.dim}" if args.family == "centred" else f"gaussian_{args.family}_D{args.dim}")
    for ext in (".json", ".png"):
        check_output_path(stem.with_suffix(ext), args.overwrite)
    if not args.checkpoint_dir:
        args.checkpoint_dir = f"{stem}.ckpt"
    if args.time_budget is not None and distributed.env_context().enabled:
        from ..errors import W2GNUserError

        raise W2GNUserError("--time-budget is not available under torchrun (each rank would end its schedule "
                            "at a different step); use --iterations")
    curve: list[dict[str, float]] = []
    # under torchrun every rank trains (DDP); only rank 0 evaluates, talks and writes
    with distributed.session(args.device) as (ctx, device):
        # closed-form truth (float64 eigh) on the fit's device, checked for existence first
        pair = GaussianPair.random(args.dim, seed=args.pair_seed, device=resolve_device(device), family=args.family)
        ev = GaussianEvaluation(pair, args.eval_samples, seed=12345)

        def track(it, fitted, row):
            curve.append({"iteration": it, "seconds": row["seconds"], "l2_uvp_forward": ev.forward(fitted),
                          "l2_uvp_inverse": ev.inverse(fitted)})

        procs = f" on {ctx.world_size} processes ({ctx.backend})" if ctx.enabled else ""
        say(f"Gaussian benchmark D={args.dim}: true W2^2 = {pair.w2_squared:.6g}{procs}", args.quiet or not ctx.is_main)
        solver = distributed.make_solver(ctx, **{**training_options(args), "device": device})
        t0 = time.perf_counter()
        budget = args.time_budget
        callback = TimeBudget(solver, budget, then=track) if budget is not None else track
        fitted = solver.fit(pair.source, pair.target, callback=callback)
        seconds = time.perf_counter() - t0
    if not ctx.is_main:
        return 0
    report = {
        "dim": args.dim,
        "family": args.family,
        "iterations": int(solver.iteration),
        "seconds": seconds,
        "l2_uvp_forward": ev.forward(fitted),
        "l2_uvp_inverse": ev.inverse(fitted),
        "l2_uvp_identity": ev.identity(),
        "w2_squared_true": pair.w2_squared,
        "w2_squared_dual": fitted.w2_squared(ev.x, ev.y),
        "config": _used_config(fitted.info.get("config", {}), args.dim, solver),
        "curve": curve,
    }
    write_json(stem.with_suffix(".json"), report)
    _plot(curve, stem.with_suffix(".png"), args.dim)
    print(f"D={args.dim}: L2-UVP forward {report['l2_uvp_forward']:.3f}%  inverse {report['l2_uvp_inverse']:.3f}%  "
          f"(identity {report['l2_uvp_identity']:.1f}%)  W2^2 {report['w2_squared_dual']:.4g} vs true "
          f"{pair.w2_squared:.4g}  {seconds:.1f}s  -> {stem}.json, {stem}.png")
    return 0


def _used_config(config: dict, dim: int, solver) -> dict:
    """The configuration with the values the run used where the config says "chosen by dimension"
    (``hidden``, ``lambda_cycle``), and the iterations actually run (a time budget may end a run early)."""
    out = dict(config)
    if out.get("hidden") is None:
        out["hidden"] = default_hidden(dim)
    if out.get("lambda_cycle") is None:
        out["lambda_cycle"] = solver.config.effective_lambda(dim)
    out["iterations_run"] = int(solver.iteration)
    return out


def _plot(curve, path: Path, dim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3.5))
    its = [r["iteration"] for r in curve]
    ax.semilogy(its, [r["l2_uvp_forward"] for r in curve], label="forward")
    ax.semilogy(its, [r["l2_uvp_inverse"] for r in curve], label="inverse")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="1 %")
    ax.set_xlabel("iteration")
    ax.set_ylabel("L2-UVP, %")
    ax.set_title(f"W2GN, Gaussians, D={dim}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
