"""Testbeds: problems whose optimal map is known, and the experiments that score solvers on them.

Experiment code, outside the core (the core never imports it): the benchmark pairs with known
non-linear OT maps (:mod:`~w2gn.testbeds.pairs`) and the accuracy benchmark that runs solvers on them
(:mod:`~w2gn.testbeds.runner`), the paper's Gaussian testbed and Table 1
(:mod:`~w2gn.testbeds.gaussian`), and the method comparison on it (:mod:`~w2gn.testbeds.comparison`).
Formerly ``w2gn.benchmarks`` (renamed: the repository's ``benchmarks/`` folder holds scripts).
"""

from .gaussian import PAPER_TABLE1, GaussianEvaluation
from .hard import (
    LinearGaussianMixture,
    NormalizedSumPotential,
    grid_mixture,
    hard_dims,
    hard_pair,
    hard_state_to_pair,
    level_mixture,
)
from .pairs import (
    BenchmarkPair,
    PushforwardSampler,
    fitted_dims,
    fitted_pair,
    fitted_state_to_pair,
    get_pair,
    load_pair,
    mixture,
    place_kinks,
    random_pair,
)

__all__ = [
    "LinearGaussianMixture",
    "NormalizedSumPotential",
    "grid_mixture",
    "level_mixture",
    "hard_dims",
    "hard_pair",
    "hard_state_to_pair",
    "load_pair",
    "PAPER_TABLE1",
    "GaussianEvaluation",
    "BenchmarkPair",
    "PushforwardSampler",
    "fitted_dims",
    "fitted_pair",
    "fitted_state_to_pair",
    "get_pair",
    "mixture",
    "place_kinks",
    "random_pair",
]
