"""Shared pieces of the command-line interface: option groups, validated option types, output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..io.reports import say, write_json, write_text  # noqa: F401  (the commands import them from here)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {v}")
    return v


def int_list(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype``, ``--seed``, ``--quiet``: every training command has them."""
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="training precision")
    g.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the sampling (default 0)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast of the training loss (CUDA only; default off)")


def add_training_args(p: argparse.ArgumentParser, iterations: int = 5000, batch_size: int = 512,
                      lr: float | None = 1e-3, lambda_cycle: float | None = None,
                      gradient_mode: str = "autograd") -> None:
    """The W2GN hyper-parameters that a user tunes most often (``lr=None``: chosen by dimension, see
    :func:`~w2gn.solvers.default_lr`; the command must then call :func:`resolve_lr` once it knows D)."""
    g = p.add_argument_group("training")
    g.add_argument("--iterations", type=positive_int, default=iterations, help=f"training steps (default {iterations})")
    g.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"samples per step (default {batch_size})")
    lr_help = (f"default {lr}" if lr is not None else
               "default by dimension D: 3e-3 for D <= 16, 1e-3 for D <= 128, 3e-4 above")
    g.add_argument("--lr", type=positive_float, default=lr, help=f"Adam learning rate ({lr_help})")
    g.add_argument("--lambda", dest="lambda_cycle", type=nonneg_float, default=lambda_cycle,
                   help="cycle regulariser weight (per-coordinate normalisation; default min(D, 50))")
    g.add_argument("--hidden", type=int_list, default=None, help="Dense ICNN widths h0,h1,...  (default ~2D)")
    g.add_argument("--rank", type=positive_int, default=1, help="rank of the convex quadratic layers (default 1)")
    g.add_argument("--cycle-x", action="store_true", help="add the R_X cycle term (eq. 51)")
    g.add_argument("--l1", dest="l1_penalty", type=nonneg_float, default=0.0, help="L1 weight penalty")
    g.add_argument("--pretrain-iterations", type=nonneg_int, default=1000, help="identity pretraining steps")
    g.add_argument("--log-every", type=positive_int, default=100, help="statistics/callback period")
    g.add_argument("--gradient-mode", choices=["autograd", "analytic"], default=gradient_mode,
                   help="input-gradients by double backward (autograd) or the Dense ICNN's explicit gradient "
                   f"(analytic: the fast step, same result; default {gradient_mode})")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the loss (needs --gradient-mode analytic; compiling takes minutes on a CPU)")
    add_checkpoint_args(p)


def add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    """Checkpoint, resume and divergence options (every training command has them; RELIABILITY.md)."""
    g = p.add_argument_group("checkpoints and divergence")
    g.add_argument("--checkpoint-dir", default=None,
                   help="folder for training checkpoints (default: beside the output, OUTPUT.ckpt)")
    g.add_argument("--checkpoint-every", type=nonneg_int, default=0,
                   help="write a checkpoint every N iterations (default 0: every --checkpoint-minutes)")
    g.add_argument("--checkpoint-minutes", type=nonneg_float, default=2.0,
                   help="with --checkpoint-every 0, write one every M minutes of training (default 2; 0 = never)")
    g.add_argument("--keep-checkpoints", type=positive_int, default=3, help="how many checkpoints to keep (default 3)")
    g.add_argument("--no-checkpoints", action="store_true", help="write no checkpoints")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint in the checkpoint folder (fresh start if none)")
    g.add_argument("--force-resume", action="store_true",
                   help="resume even if the data or options differ from the checkpoint's")
    g.add_argument("--explode-factor", type=nonneg_float, default=1e4,
                   help="stop when |loss| exceeds this multiple of its running average (default 1e4; 0 = off)")
    g.add_argument("--max-restarts", type=nonneg_int, default=0,
                   help="on divergence, restart from the last good state this many times (default 0)")
    g.add_argument("--restart-lr-factor", type=unit_interval, default=0.5,
                   help="learning-rate multiplier at each restart (default 0.5)")


def unit_interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {v}")
    return v


def default_checkpoint_dir(args: argparse.Namespace) -> str | None:
    """The checkpoint folder of a command: ``--checkpoint-dir``, else ``OUTPUT.ckpt`` beside ``--output``,
    else ``OUT_DIR/checkpoints``; ``None`` with ``--no-checkpoints``."""
    if getattr(args, "no_checkpoints", False):
        return None
    if getattr(args, "checkpoint_dir", None):
        return str(args.checkpoint_dir)
    if getattr(args, "output", None):
        return f"{args.output}.ckpt"
    if getattr(args, "out_dir", None):
        return str(Path(args.out_dir) / "checkpoints")
    return None


def checkpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~w2gn.solvers.SolverConfig` checkpoint/divergence keyword arguments from CLI options."""
    if not hasattr(args, "checkpoint_every"):
        return {}
    if args.resume and args.no_checkpoints:
        from ..errors import W2GNUserError

        raise W2GNUserError("--resume needs checkpoints; drop --no-checkpoints")
    return {
        "checkpoint_dir": default_checkpoint_dir(args),
        "checkpoint_every": args.checkpoint_every,
        "checkpoint_seconds": 60.0 * args.checkpoint_minutes,
        "keep_checkpoints": args.keep_checkpoints,
        "resume": bool(args.resume) and not args.no_checkpoints,
        "force_resume": args.force_resume,
        "overwrite_checkpoints": bool(getattr(args, "overwrite", False)),
        "explode_factor": args.explode_factor,
        "max_restarts": args.max_restarts,
        "restart_lr_factor": args.restart_lr_factor,
    }


def resolve_lr(args: argparse.Namespace, dim: int) -> None:
    """Fill in ``args.lr`` from :func:`~w2gn.solvers.default_lr` when the user gave none."""
    if args.lr is None:
        from ..solvers import default_lr

        args.lr = default_lr(dim)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~w2gn.solvers.W2GNConfig` keyword arguments from parsed CLI options."""
    return {
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "lr": args.lr if args.lr is not None else 1e-3,  # placeholder until resolve_lr knows D
        "lambda_cycle": args.lambda_cycle,
        "hidden": args.hidden,
        "rank": args.rank,
        "cycle_x": args.cycle_x,
        "l1_penalty": args.l1_penalty,
        "pretrain_iterations": args.pretrain_iterations,
        "log_every": args.log_every,
        "seed": args.seed,
        "device": args.device,
        "dtype": args.dtype,
        "progress": not args.quiet,
        "gradient_mode": getattr(args, "gradient_mode", "autograd"),
        "autocast_bf16": getattr(args, "bf16", False),
        "compile": getattr(args, "compile", False),
        **checkpoint_options(args),
    }


#: ``w2gn fit``'s defaults for the accuracy options of :class:`~w2gn.solvers.W2GNConfig`
#: (chosen from the measurements in benchmarks/results/accuracy.md; preset "fit-default")
ACCURACY_DEFAULTS: dict[str, Any] = {
    "refine_steps": 0,  # costs ~40 % of the steps in a fixed budget and lost at every D
    # 20 L-BFGS steps from grad psi_omega(y) at inference: the inverse then inverts grad psi_theta
    "refine_inverse_steps": 20,
    "expectile_weight": 0.0,
    # cosine decay over --iterations: with it, 900 CPU-s fits reached the targets at D = 8, 16
    "lr_schedule": "cosine",
    # EMA 0.99 beat the paper's algorithm at D = 2, 4, 8, 16 in the 60 CPU-s runs, forward and inverse
    "ema_decay": 0.99,
    "init": "identity",
}


def add_accuracy_args(p: argparse.ArgumentParser, defaults: dict[str, Any] | None = None) -> None:
    """The W2GN accuracy options (conjugate refinement, expectile, schedule, EMA, initialisation)."""
    d = {**ACCURACY_DEFAULTS, **(defaults or {})}
    g = p.add_argument_group("accuracy options")
    g.add_argument("--refine-steps", type=nonneg_int, default=d["refine_steps"],
                   help=f"L-BFGS steps refining the conjugate argmax in training (default {d['refine_steps']})")
    g.add_argument("--refine-inverse-steps", type=nonneg_int, default=d["refine_inverse_steps"],
                   help=f"L-BFGS steps refining the inverse map at inference (default {d['refine_inverse_steps']})")
    g.add_argument("--expectile-weight", type=nonneg_float, default=d["expectile_weight"],
                   help=f"weight of the expectile regulariser of the conjugate (default {d['expectile_weight']})")
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=d["lr_schedule"],
                   help=f"learning-rate schedule (default {d['lr_schedule']})")
    g.add_argument("--ema-decay", type=nonneg_float, default=d["ema_decay"],
                   help=f"weight averaging decay, 0 = off (default {d['ema_decay']})")
    g.add_argument("--init", choices=["identity", "linear"], default=d["init"],
                   help=f"pretrain to the identity or to the best linear map (default {d['init']})")


def accuracy_options(args: argparse.Namespace) -> dict[str, Any]:
    """:class:`~w2gn.solvers.W2GNConfig` keyword arguments of :func:`add_accuracy_args`'s options."""
    return {k: getattr(args, k) for k in ACCURACY_DEFAULTS}
