"""Training algorithms behind one interface: ``Solver(config).fit(source, target) -> TransportMap``."""

from __future__ import annotations

from typing import Any

from ..errors import W2GNUserError
from .base import Callback, Solver, SolverConfig, resolve_device, resolve_dtype
from .budget import TimeBudget
from .icnn_config import PotentialConfig
from .lsot import LSOTConfig, LSOTSolver
from .mm1 import MM1Config, MM1Solver
from .mm2 import MM2Config, MM2Solver
from .pretrain import pretrain_identity
from .w2gn import W2GNConfig, W2GNSolver, default_expectile_weight, default_hidden, default_input_lr_factor, default_lr

#: method name -> solver class (the baselines register themselves here too)
SOLVERS: dict[str, type[Solver]] = {"w2gn": W2GNSolver, "lsot": LSOTSolver, "mm1": MM1Solver, "mm2": MM2Solver}


def get_solver(method: str, **options: Any) -> Solver:
    """Instantiate the solver called ``method`` with keyword hyper-parameters."""
    if method not in SOLVERS:
        raise W2GNUserError(f"unknown method {method!r}; choose one of {', '.join(sorted(SOLVERS))}")
    return SOLVERS[method](**options)


__all__ = [
    "Callback",
    "Solver",
    "SolverConfig",
    "W2GNConfig",
    "W2GNSolver",
    "PotentialConfig",
    "LSOTConfig",
    "LSOTSolver",
    "MM1Config",
    "MM1Solver",
    "MM2Config",
    "MM2Solver",
    "SOLVERS",
    "TimeBudget",
    "get_solver",
    "default_hidden",
    "default_expectile_weight",
    "default_input_lr_factor",
    "default_lr",
    "pretrain_identity",
    "resolve_device",
    "resolve_dtype",
]
