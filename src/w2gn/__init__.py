"""w2gn: Wasserstein-2 optimal transport maps with input-convex neural networks.

Implements Korotin, Egiazarian, Asadulaev, Safin & Burnaev, "Wasserstein-2 Generative Networks",
ICLR 2021: two input-convex potentials whose gradients are the forward and inverse transport maps,
trained with a non-minimax, cycle-regularised objective.

>>> import numpy as np, w2gn
>>> x = np.random.randn(1000, 2); y = 2 * np.random.randn(1000, 2) + 1
>>> fitted = w2gn.fit(x, y, iterations=300, progress=False)
>>> fitted.forward(x).shape
(1000, 2)
"""

from __future__ import annotations

from typing import Any

from .distributions import (
    Gaussian,
    GaussianMixture,
    GaussianPair,
    Sampler,
    StandardNormal,
    SwissRoll,
    TensorSampler,
)
from .errors import DivergenceError, W2GNUserError
from .fitted_map import TransportMap
from .networks import ConvexQuadratic, ConvICNN, DenseICNN
from .solvers import SOLVERS, W2GNConfig, W2GNSolver, get_solver

__version__ = "0.1.0"

#: names imported on first use: the estimators need scikit-learn, an optional dependency
_LAZY = {name: "estimators" for name in ("W2GNTransport", "LSOTTransport", "MM1Transport", "MM2Transport", "MapTransport")}
_LAZY.update(export_map="export")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fit(source, target, method: str = "w2gn", **options: Any) -> TransportMap:
    """Fit an OT map from ``source`` to ``target`` samples with ``method`` and keyword options.

    A shortcut for ``get_solver(method, **options).fit(source, target)``.
    """
    return get_solver(method, **options).fit(source, target)


__all__ = [
    "fit",
    "TransportMap",
    "W2GNTransport",
    "LSOTTransport",
    "MM1Transport",
    "MM2Transport",
    "MapTransport",
    "export_map",
    "W2GNSolver",
    "W2GNConfig",
    "SOLVERS",
    "get_solver",
    "DenseICNN",
    "ConvICNN",
    "ConvexQuadratic",
    "Sampler",
    "TensorSampler",
    "Gaussian",
    "StandardNormal",
    "GaussianPair",
    "GaussianMixture",
    "SwissRoll",
    "W2GNUserError",
    "DivergenceError",
    "__version__",
]
