"""Named W2GN configurations: the one place where a way of training that differs from the paper is written down.

A preset is a set of overrides of :class:`~w2gn.solvers.W2GNConfig`'s own defaults (which are the
algorithm as the paper prints it, Appendix C.1/C.4), plus an optional training-time budget. The
same names serve the Python API, the command line and the benchmark runner:

>>> from w2gn.solvers import W2GNSolver
>>> from w2gn.solvers.presets import preset
>>> solver = W2GNSolver(**preset("fit", dim=8))      # what 'w2gn fit' trains with at D = 8
>>> solver.config.lr_schedule, solver.config.lr
('cosine', 0.003)

``"paper"`` is the published algorithm in the data's own coordinates: W2GNConfig's defaults with
``precondition="none"`` (the config's default trains in the affine frame of
:mod:`w2gn.affine_frame`, which is a change of coordinates, not of the algorithm) and
``correlation_on="theta"`` (the config's default, ``"both"``, adds eq. 12 for the inverse direction,
so that psi_omega learns from its own correlations, not only through the cycle term). ``"fit"`` is what
``w2gn fit`` trains with (chosen from the 900 CPU-second runs of ``benchmarks/results/accuracy.md``;
in the diagonal frame). The others switch single accuracy options on over ``"paper"``, for the ablation
tables of ``w2gn benchmark``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import W2GNUserError
from .w2gn import W2GNConfig, default_expectile_weight, default_hidden, default_input_lr_factor, default_lr

#: an option value in a preset that means "chosen by dimension": ``"lr"`` (:func:`~w2gn.solvers.default_lr`),
#: ``"expectile_weight"`` (:func:`~w2gn.solvers.default_expectile_weight`) and ``"input_lr_factor"``
#: (:func:`~w2gn.solvers.default_input_lr_factor`), resolved once D is known
BY_DIMENSION = "by-dimension"
LR_BY_DIMENSION = BY_DIMENSION  # the older name
#: the options that may be :data:`BY_DIMENSION`, and the function of D that resolves each
BY_DIMENSION_DEFAULTS = {"lr": default_lr, "expectile_weight": default_expectile_weight,
                         "input_lr_factor": default_input_lr_factor}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named configuration: ``options`` override :class:`W2GNConfig` fields; ``time_budget`` (seconds
    of training, ``None`` = none) ends the run earlier than ``iterations`` when it runs out.

    Option values resolved once the dimension is known: :data:`BY_DIMENSION` (for the options of
    :data:`BY_DIMENSION_DEFAULTS`) and ``"hidden_scale": k`` (widths ``k *`` :func:`~w2gn.solvers.default_hidden`)."""

    options: Mapping[str, Any]
    time_budget: float | None = None
    description: str = ""


#: the paper's experiments ran in the data's coordinates, with the correlations of eq. 12 on psi_theta only
_PAPER = {"precondition": "none", "correlation_on": "theta"}

_FIT = {
    # centred, per-coordinate balanced coordinates: shifts and scales of the data do not matter (issue 17);
    # the Bures frame solves Gaussian pairs outright but lost on the non-linear fitted pair (D = 16, 60 CPU-s:
    # forward 8.1 % against 2.0 % diagonal, 1.8 % standardize, 1.9 % none)
    "precondition": "diagonal",
    # the Python API's count (the cosine schedule decays over it); `w2gn fit` sets no count, so its time budget
    # ends the fit (this count had ended 900 s fits on a faster CPU after 634 s: hard D = 8, 2 processes)
    "iterations": 60000,
    "lr": LR_BY_DIMENSION,
    # cosine decay: with it, 900 CPU-s fits reached the accuracy targets at D = 8, 16
    "lr_schedule": "cosine",
    # EMA 0.99 beat the paper's algorithm at D = 2, 4, 8, 16 in the 60 CPU-s runs, forward and inverse
    "ema_decay": 0.99,
    # the Dense ICNN's explicit gradient: the same result as double backward, about twice as fast
    "gradient_mode": "analytic",
    # the inverse refined by 20 guarded L-BFGS steps on psi_theta's conjugate from grad psi_omega(y): with
    # the two-sided objective it beat the amortised map in every case measured (fitted pairs D = 8, 16, 32, 64
    # and hard pairs D = 2, 4, 150/120 CPU-s: e.g. D = 16 0.93 vs 1.68 %, D = 64 10.9 vs 19.4 %; issue 17), at
    # about 30x the amortised map's inference cost (D = 64: 3.8 CPU-s per 20,000 rows). With the one-sided
    # objective it had inverted the forward map's errors (D = 32: 923 %), so the paper preset keeps it off.
    "refine_inverse_steps": 20,
    # refinement in training costs ~40 % of the steps in a fixed budget and lost at every D: off, as in the paper
    "refine_steps": 0,
    # the expectile regulariser (Buzun et al. 2024) at weight 10 for D = 8-128, off elsewhere (default_expectile_weight).
    # 900 CPU-s fits, forward / inverse L2-UVP % against the weight 0: hard D = 8 1.14 +- 0.26 / 0.52 +- 0.07 vs
    # 1.50 +- 0.60 / 0.59 +- 0.17, hard D = 16 3.53 +- 0.52 / 2.33 +- 0.13 vs 5.33 +- 0.37 / 2.63 +- 0.30 (3 seeds),
    # hard D = 32 5.48 / 4.86 and 5.40 / 4.88 vs 6.71 +- 0.04 / 4.63, fitted D = 8 0.161 / 0.096 vs 0.234 / 0.181,
    # fitted D = 64 1.34 / 1.22 vs 5.89 / 8.22; but fitted D = 16 0.426 / 0.512 vs 0.303 / 0.161 (seed 0), and at
    # D <= 4 it lost (120 CPU-s: hard D = 4 0.303 vs 0.147, hard D = 2 0.040 vs 0.031; benchmarks/results/hard_pairs.md)
    "expectile_weight": BY_DIMENSION,
    "init": "identity",
    # the convex-quadratic layers (the only ones that read x) at 10x the rate: Adam moves every weight by about
    # lr a step, so the input weights (~1/sqrt(D)) learn far slower, relatively, than the hidden ones (~1/width);
    # 10x stays below that ratio (2 sqrt(D) for D >= 32). 120 CPU-s fits, seed 0, forward / inverse L2-UVP %:
    # hard D = 4 0.17 / 0.05 vs 0.35 / 0.12, fitted D = 16 1.03 / 0.49 vs 1.21 / 1.09, fitted D = 64 11.5 / 10.2
    # vs 15.8 / 11.9 (benchmarks/results/hard_pairs.md; issue 24 found the cause on the 2-D toys). Above D = 128
    # lower (default_input_lr_factor): at 10x the D = 256 Gaussian pair blew up in its first steps
    "input_lr_factor": BY_DIMENSION,
    # the cycle weight D / 2 instead of C.4's min(D, 50): a lighter hold lets the correlations move the
    # forward map further, and D / 2 never collapsed where D / 4 did (hard D = 16 at lambda 4, hard D = 8 at 1).
    # 900 CPU-s fits, forward / inverse L2-UVP %: hard D = 16 5.33 +- 0.37 / 2.63 +- 0.30 vs 6.70 +- 0.42 /
    # 3.11 +- 0.48 and hard D = 8 1.66 +- 0.70 / 0.67 +- 0.21 vs 2.27 +- 0.46 / 0.76 +- 0.08 (3 seeds each);
    # fitted D = 16 0.30 / 0.16 vs 0.47 / 0.25, fitted D = 64 5.89 / 8.22 vs 9.39 / 8.83 (seed 0). Shorter runs:
    # fitted D = 2, 4 (120 CPU-s) 0.17 / 0.05 vs 0.26 / 0.07 and 0.28 / 0.14 vs 0.34 / 0.17, fitted D = 32 (300)
    # 0.60 / 0.54 vs 1.29 / 0.81, hard D = 2, 4 (120, 3 seeds) 0.031 / 0.021 vs 0.039 / 0.024 and 0.147 / 0.046
    # vs 0.158 / 0.047 (benchmarks/results/hard_pairs.md, twelfth session)
    "lambda_per_dim": 0.5,
    # and no cap (C.4 caps it at 50): with the per-coordinate cycle terms the cap weakens the hold on the maps as D
    # grows, and at D = 512 the two-sided objective collapsed the not-centred Gaussian pair under it (a constant map
    # after 100 steps at lr 3e-4 or 1e-4) but learned without it (lambda 256: 5.8 % after 150 steps). At D = 128 and
    # 256 the two weights tie (300 CPU-s: 0.0218 / 0.0220 % against 0.0195 / 0.0194, 0.094 / 0.096 against 0.093 /
    # 0.093); below D = 100 the cap never applied (benchmarks/results/hard_pairs.md, nineteenth session)
    "lambda_cap": None,
    # a diverged step rewinds to the last good state (kept in memory at every log step) at half the rates, twice at
    # most, instead of ending a long fit: a 900-s hard D = 32 fit (moved data, seed 1) blew up its loss at step
    # 23,091 of about 41,000 and stopped with exit status 3 (benchmarks/results/hard_pairs.md, twentieth session)
    "max_restarts": 2,
}

#: every named configuration (``"fit-default"`` and ``"fit-default-cycle-x"`` are older names, see :data:`ALIASES`)
PRESETS: dict[str, Preset] = {
    "paper": Preset(_PAPER, description="the published algorithm in the data's coordinates"),
    "fit": Preset(_FIT, time_budget=900.0, description="what 'w2gn fit' trains with"),
    "fit-cycle-x": Preset({**_FIT, "correlation_on": "theta", "cycle_x": True}, time_budget=900.0,
                          description="'fit' with the paper's one-sided correlations plus the R_X term (eq. 51)"),
    "fit-theta": Preset({**_FIT, "correlation_on": "theta"}, time_budget=900.0,
                        description="'fit' with the paper's one-sided correlations (the inverse learned by R_Y only)"),
    "refine": Preset({**_PAPER, "refine_steps": 5, "refine_inverse_steps": 20}),
    "refine-inverse": Preset({**_PAPER, "refine_inverse_steps": 20}),
    "expectile": Preset({**_PAPER, "expectile_weight": 1.0}),
    "cosine": Preset({**_PAPER, "lr_schedule": "cosine"}),
    "ema": Preset({**_PAPER, "ema_decay": 0.99}),
    "linear-init": Preset({**_PAPER, "init": "linear"}),
    "batch-1024": Preset({**_PAPER, "batch_size": 1024}),
    "wide": Preset({**_PAPER, "hidden_scale": 2}),
    "lr-3e-3": Preset({**_PAPER, "lr": 3e-3}),
    "input-lr": Preset({**_PAPER, "input_lr_factor": 10.0}),
    "combo": Preset({**_PAPER, "ema_decay": 0.99, "expectile_weight": 1.0, "refine_inverse_steps": 20}),
    # the paper's extra cycle term R_X (eq. 51, C.1: used in its high-dimensional experiments)
    "cycle-x": Preset({**_PAPER, "cycle_x": True}),
    # eq. 12 in both directions (each potential trained by its own correlations; R_Y and R_X both on)
    "both": Preset({**_PAPER, "correlation_on": "both"}),
    "all": Preset({**_PAPER, "refine_steps": 5, "refine_inverse_steps": 20, "expectile_weight": 1.0, "lr_schedule": "cosine",
                   "ema_decay": 0.99, "init": "linear"}),
}

#: older names of presets, kept so that recorded benchmark commands still run
ALIASES: dict[str, str] = {"fit-default": "fit", "fit-default-cycle-x": "fit-cycle-x"}


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (or one of its :data:`ALIASES`)."""
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise W2GNUserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]


def preset(name: str, dim: int | None = None, **overrides: Any) -> dict[str, Any]:
    """:class:`W2GNConfig` keyword arguments of preset ``name`` for dimension ``dim``, with ``overrides`` on top.

    ``dim`` is needed only by presets whose options depend on the dimension (``"fit"``: the learning
    rate, the expectile weight and the input layers' rate factor); without it such values are left out (the config's own default
    applies). Only the preset's overrides are returned, not every field."""
    opts = dict(get_preset(name).options)
    for key, by_dim in BY_DIMENSION_DEFAULTS.items():
        if opts.get(key) == BY_DIMENSION:
            if dim is None:
                opts.pop(key)
            else:
                opts[key] = by_dim(int(dim))
    scale = opts.pop("hidden_scale", None)
    if scale and dim is not None:
        opts["hidden"] = [int(h * scale) for h in default_hidden(int(dim))]
    opts.update(overrides)
    unknown = set(opts) - {f.name for f in dataclasses.fields(W2GNConfig)}
    if unknown:
        raise W2GNUserError(f"preset {name!r}: unknown W2GNConfig option(s) {sorted(unknown)}")
    return opts


def preset_defaults(name: str) -> dict[str, Any]:
    """Every :class:`W2GNConfig` field's default under preset ``name``, unresolved (the options of
    :data:`BY_DIMENSION_DEFAULTS` may be :data:`BY_DIMENSION`): what the command line shows as its defaults. New config fields
    appear here without any change to this module."""
    base = {f.name: _field_default(f) for f in dataclasses.fields(W2GNConfig)}
    return {**base, **{k: v for k, v in get_preset(name).options.items() if k in base}}


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise TypeError(f"{f.name} has no default")


__all__ = ["BY_DIMENSION", "BY_DIMENSION_DEFAULTS", "LR_BY_DIMENSION", "Preset", "PRESETS", "ALIASES", "get_preset", "preset",
           "preset_defaults"]
