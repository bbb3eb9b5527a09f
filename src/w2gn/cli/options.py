"""Option groups of the training commands, derived from the config dataclasses.

Every default a command shows comes from the dataclass (or the preset, :mod:`w2gn.solvers.presets`)
that the command trains with: a group is built from a mapping ``field -> default`` (see
:func:`config_defaults`) and a table ``field -> (flag, type, help)`` whose help never states a value;
:class:`HelpFormatter` appends each option's actual default. So a default changed in a dataclass
changes the command and its ``--help`` together, and a new config field only needs a row in a table
to become an option.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..solvers.base import SolverConfig
from ..solvers.presets import BY_DIMENSION
from .common import int_list, nonneg_float, nonneg_int, positive_float, positive_int, unit_interval

#: a ``(flag, type, help)`` row: ``type`` is an argparse type, ``bool`` (a switch) or a list of choices
Spec = tuple[str, Any, str]


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default: ``" (default: X)"`` is appended to the help of each option that
    takes a value and has a default (lists as the comma-separated text the option takes). Options
    whose default is ``None`` say in their own help what happens then."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.default in (None, argparse.SUPPRESS) or action.nargs == 0
                or "%(default)" in text):
            return text
        return f"{text} (default: %(default)s)"

    def _expand_help(self, action: argparse.Action) -> str:
        if isinstance(action.default, (list, tuple)):
            action = copy.copy(action)
            action.default = ",".join(str(v) for v in action.default)
        return super()._expand_help(action)


def config_defaults(cls: type, **overrides: Any) -> dict[str, Any]:
    """Each field's default of dataclass ``cls``, with ``overrides`` on top (fields only)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    unknown = set(overrides) - set(out)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return {**out, **overrides}


def add_config_options(group: argparse._ActionsContainer, defaults: Mapping[str, Any], specs: Mapping[str, Spec],
                       none_means: Mapping[str, str] | None = None) -> None:
    """One option per row of ``specs`` (``field -> (flag, type, help)``), its default ``defaults[field]``.

    ``none_means[field]`` says what a ``None`` default stands for (shown as the default)."""
    for field, (flag, kind, text) in specs.items():
        default = defaults[field]
        if default is None or default == BY_DIMENSION:
            default = None
            text = f"{text} (default: {(none_means or {})[field]})"
        if kind is bool:
            # --x/--no-x in every command alike, whichever default the command has (one spelling per idea)
            group.add_argument(flag, dest=field, action=argparse.BooleanOptionalAction, default=bool(default), help=text)
        elif isinstance(kind, (list, tuple)):
            group.add_argument(flag, dest=field, choices=list(kind), default=default, help=text)
        else:
            group.add_argument(flag, dest=field, type=kind, default=default, help=text)


def add_runtime_args(p: argparse.ArgumentParser, seed: bool = True, dtype: str = "training precision",
                     quiet: str = "no progress bar") -> None:
    """``--device``, ``--dtype``, ``--seed`` (unless ``seed=False``: nothing random), ``--quiet``."""
    d = config_defaults(SolverConfig)
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default=d["device"], help="cpu, cuda or cuda:N")
    g.add_argument("--dtype", default=d["dtype"], choices=["float32", "float64"], help=dtype)
    if seed:
        g.add_argument("--seed", type=int, default=d["seed"], help="seed of the initialisation and the sampling")
    g.add_argument("--quiet", action="store_true", help=quiet)


def _by_dimension(fn: Any, dims: tuple[int, ...] = (2, 16, 64, 256)) -> str:
    return "by dimension D, " + ", ".join(f"{fn(d)} at D={d}" for d in dims)


def _none_means(defaults: Mapping[str, Any]) -> dict[str, str]:
    from ..solvers import default_expectile_weight, default_hidden, default_input_lr_factor, default_lr

    per_dim = float(defaults.get("lambda_per_dim", 1.0))
    cap = defaults.get("lambda_cap", 50.0)
    return {
        "lr": f"{_by_dimension(default_lr, (2, 64, 256))} (w2gn.solvers.default_lr)",
        "input_lr_factor": f"{_by_dimension(default_input_lr_factor, (128, 256, 512))} "
                           "(w2gn.solvers.default_input_lr_factor)",
        "expectile_weight": f"{_by_dimension(default_expectile_weight, (4, 8, 128, 256))} "
                            "(w2gn.solvers.default_expectile_weight)",
        "hidden": f"{_by_dimension(lambda d: ','.join(map(str, default_hidden(d))), (2, 64))}",
        "lambda_cycle": (f"min({'' if per_dim == 1 else f'{per_dim:g} '}D, {cap:g})" if cap is not None
                         else f"{'' if per_dim == 1 else f'{per_dim:g} '}D"),
        "iterations": "as many as --time-budget allows",
    }


#: the W2GN options a user tunes most often (W2GNConfig field -> flag)
TRAINING_SPECS: dict[str, Spec] = {
    "iterations": ("--iterations", positive_int, "training steps"),
    "batch_size": ("--batch-size", positive_int, "samples of each distribution per step"),
    "lr": ("--lr", positive_float, "Adam learning rate"),
    "lambda_cycle": ("--lambda", nonneg_float, "cycle regulariser weight (per-coordinate normalisation)"),
    "hidden": ("--hidden", int_list, "Dense ICNN widths h0,h1,..."),
    "rank": ("--rank", positive_int, "rank of the convex quadratic layers"),
    "cycle_x": ("--cycle-x", bool, "add the R_X cycle term (eq. 51)"),
    "correlation_on": ("--correlation-on", ["theta", "omega", "both"],
                       "whose correlations eq. 12 trains: theta (the paper: the inverse learns by inverting the "
                       "forward map through the cycle terms), omega (the mirrored objective) or both (each map "
                       "learns from its own correlations; both cycle terms on)"),
    "l1_penalty": ("--l1", nonneg_float, "L1 weight penalty"),
    "pretrain_iterations": ("--pretrain-iterations", nonneg_int, "identity pretraining steps"),
    "log_every": ("--log-every", positive_int, "steps between statistics (and callbacks)"),
    "gradient_mode": ("--gradient-mode", ["autograd", "analytic"],
                      "input-gradients by double backward (autograd) or the Dense ICNN's explicit gradient "
                      "(analytic: the fast step, same result)"),
    "compile": ("--compile", bool, "torch.compile the loss (needs --gradient-mode analytic; compiling takes minutes "
                "on a CPU)"),
    "autocast_bf16": ("--bf16", bool, "bfloat16 autocast of the training loss (CUDA only)"),
    "precondition": ("--precondition", ["diagonal", "bures", "standardize", "none"],
                     "coordinates the networks train in: diagonal = centred, each coordinate of both sides at the "
                     "geometric mean of their deviations; bures = centred and whitened so that the best affine map is "
                     "the identity (best for near-Gaussian data); standardize = centred and scaled; none = the data's "
                     "own (the paper's experiments). "
                     "The saved map always takes and returns the data's coordinates"),
}

#: the accuracy options of W2GNConfig (benchmarks/results/accuracy.md)
ACCURACY_SPECS: dict[str, Spec] = {
    "refine_steps": ("--refine-steps", nonneg_int, "L-BFGS steps refining the conjugate argmax in training"),
    "refine_inverse_steps": ("--refine-inverse-steps", nonneg_int, "L-BFGS steps refining the inverse map at inference"),
    "expectile_weight": ("--expectile-weight", nonneg_float, "weight of the expectile regulariser of the conjugate"),
    "lr_schedule": ("--lr-schedule", ["constant", "cosine"], "learning-rate schedule"),
    "lr_warmup": ("--lr-warmup", nonneg_int, "steps of linear learning-rate warm-up, 0 = none"),
    "ema_decay": ("--ema-decay", nonneg_float, "weight averaging decay, 0 = off"),
    "cycle_warmup": ("--cycle-warmup", nonneg_int, "first steps at a lighter cycle weight "
                     "(--cycle-warmup-factor x lambda), 0 = none"),
    "cycle_warmup_factor": ("--cycle-warmup-factor", nonneg_float, "cycle weight's multiplier during --cycle-warmup"),
    "grad_clip": ("--grad-clip", nonneg_float, "cut each network's gradient norm to this multiple of its running "
                  "average, 0 = off"),
    "init": ("--init", ["identity", "linear"], "pretrain to the identity or to the best linear map"),
    "input_lr_factor": ("--input-lr-factor", positive_float,
                        "learning-rate multiplier of the layers that read x (the convex-quadratic ones)"),
    "linear_input_lr_factor": ("--linear-input-lr-factor", positive_float,
                               "learning-rate multiplier of those layers' linear weights W alone"),
}


#: help of the W2GN map options of the application commands (domain-adapt, latent) where it is shorter than
#: TRAINING_SPECS' (their flags and types are TRAINING_SPECS': one spelling per idea)
_MAP_HELP = {
    "batch_size": "samples per step",
    "lambda_cycle": "cycle weight",
    "hidden": "Dense ICNN widths",
    "rank": "convex-quadratic rank",
    "time_budget": "stop the map's training after this many seconds",
}


def map_specs(fields: Iterable[str], **help: str) -> dict[str, Spec]:
    """Rows for the W2GN map settings ``fields`` of an application config (``iterations``, ..., ``time_budget``
    of :class:`~w2gn.applications.domain.DomainAdaptationConfig` or :class:`~w2gn.applications.latent.LatentConfig`):
    flag and type as in :data:`TRAINING_SPECS` (``--time-budget``: seconds), the help ``help[field]`` if given."""
    rows: dict[str, Spec] = {}
    for field in fields:
        flag, kind, text = ("--time-budget", positive_float, "") if field == "time_budget" else TRAINING_SPECS[field]
        rows[field] = (flag, kind, help.get(field, _MAP_HELP.get(field, text)))
    return rows


def add_time_budget_arg(p: argparse._ActionsContainer, default: float | None = None, none_means: str = "none",
                        text: str = "stop after this many seconds of training, ending the learning-rate schedule there"
                        ) -> None:
    """``--time-budget SECONDS``: every training command has it, spelled alike."""
    p.add_argument("--time-budget", type=positive_float, default=default, metavar="SECONDS",
                   help=text if default is not None else f"{text} (default: {none_means})")


def add_training_args(p: argparse.ArgumentParser, defaults: Mapping[str, Any], time_budget: float | None = None,
                      time_budget_means: str = "none, --iterations ends the run") -> None:
    """The W2GN training options, with ``defaults`` (every W2GNConfig field: :func:`config_defaults` or
    :func:`~w2gn.solvers.presets.preset_defaults`); then the checkpoint options."""
    g = p.add_argument_group("training")
    add_config_options(g, defaults, TRAINING_SPECS, _none_means(defaults))
    add_time_budget_arg(g, time_budget, time_budget_means)
    add_checkpoint_args(p, defaults)


def add_accuracy_args(p: argparse.ArgumentParser, defaults: Mapping[str, Any]) -> None:
    """The W2GN accuracy options (conjugate refinement, expectile, schedule, EMA, initialisation)."""
    add_config_options(p.add_argument_group("accuracy options"), defaults, ACCURACY_SPECS,
                       {**_none_means(defaults), "linear_input_lr_factor": "--input-lr-factor's"})


def add_checkpoint_args(p: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None) -> None:
    """Checkpoint, resume and divergence options (every training command has them; RELIABILITY.md), with the
    command's ``defaults`` where it has them (``w2gn fit``'s preset restarts a diverged run, for one)."""
    d = {**config_defaults(SolverConfig), **(defaults or {})}
    g = p.add_argument_group("checkpoints and divergence")
    g.add_argument("--checkpoint-dir", default=None,
                   help="folder for training checkpoints (default: beside the output, OUTPUT.ckpt, or OUT_DIR/checkpoints)")
    g.add_argument("--checkpoint-every", type=nonneg_int, default=d["checkpoint_every"],
                   help="write a checkpoint every N iterations (0: every --checkpoint-minutes)")
    g.add_argument("--checkpoint-minutes", type=nonneg_float, default=d["checkpoint_seconds"] / 60.0,
                   help="with --checkpoint-every 0, write one every M minutes of training (0 = never)")
    g.add_argument("--keep-checkpoints", type=positive_int, default=d["keep_checkpoints"],
                   help="how many checkpoints to keep")
    g.add_argument("--no-checkpoints", action="store_true", help="write no checkpoints")
    g.add_argument("--resume", action="store_true",
                   help="continue from the newest valid checkpoint in the checkpoint folder (fresh start if none)")
    g.add_argument("--force-resume", action="store_true",
                   help="resume even if the data or options differ from the checkpoint's")
    g.add_argument("--explode-factor", type=nonneg_float, default=d["explode_factor"],
                   help="stop when |loss| exceeds this multiple of its running average (0 = off)")
    g.add_argument("--collapse-limit", type=nonneg_float, default=d["collapse_limit"],
                   help="stop when a cycle error stays above this multiple of the constant map's for 200 steps "
                        "(collapsed potentials; 0 = off)")
    g.add_argument("--max-restarts", type=nonneg_int, default=d["max_restarts"],
                   help="on divergence, restart from the last good state this many times")
    g.add_argument("--restart-lr-factor", type=unit_interval, default=d["restart_lr_factor"],
                   help="learning-rate multiplier at each restart")


def default_checkpoint_dir(args: argparse.Namespace) -> str | None:
    """The checkpoint folder of a command: ``--checkpoint-dir``, else ``OUTPUT.ckpt`` beside ``--output``,
    else ``OUT_DIR/checkpoints``; ``None`` with ``--no-checkpoints``."""
    from pathlib import Path

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
        "collapse_limit": args.collapse_limit,
        "max_restarts": args.max_restarts,
        "restart_lr_factor": args.restart_lr_factor,
    }


def resolve_by_dimension(args: argparse.Namespace, dim: int) -> None:
    """Fill in the options whose default depends on the dimension ``dim`` where the user gave none
    (each option of :data:`~w2gn.solvers.presets.BY_DIMENSION_DEFAULTS`)."""
    from ..solvers.presets import BY_DIMENSION_DEFAULTS

    for key, by_dim in BY_DIMENSION_DEFAULTS.items():
        if getattr(args, key, 0) is None:
            setattr(args, key, by_dim(dim))


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~w2gn.solvers.W2GNConfig` keyword arguments of :func:`add_training_args`' options."""
    opts = _placeholders({k: getattr(args, k) for k in TRAINING_SPECS})
    return {**opts, "seed": args.seed, "device": args.device, "dtype": args.dtype, "progress": not args.quiet,
            **checkpoint_options(args)}


def accuracy_options(args: argparse.Namespace) -> dict[str, Any]:
    """:class:`~w2gn.solvers.W2GNConfig` keyword arguments of :func:`add_accuracy_args`' options."""
    return _placeholders({k: getattr(args, k) for k in ACCURACY_SPECS})


def _placeholders(opts: dict[str, Any]) -> dict[str, Any]:
    """``opts`` with each by-dimension option still unset (``None``) at the config's own default: a placeholder
    that validates until :func:`resolve_by_dimension` knows D."""
    from ..solvers import W2GNConfig
    from ..solvers.presets import BY_DIMENSION_DEFAULTS

    defaults = config_defaults(W2GNConfig)
    return {k: defaults[k] if k in BY_DIMENSION_DEFAULTS and v is None else v for k, v in opts.items()}
