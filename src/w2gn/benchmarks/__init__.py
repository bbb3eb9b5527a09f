"""Benchmark pairs with known non-linear OT maps, and the accuracy benchmark that runs solvers on them."""

from .hard import (
    LinearGaussianMixture,
    NormalizedSumPotential,
    grid_mixture,
    hard_dims,
    hard_pair,
    hard_state_to_pair,
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
    "BenchmarkPair",
    "LinearGaussianMixture",
    "NormalizedSumPotential",
    "grid_mixture",
    "hard_dims",
    "hard_pair",
    "hard_state_to_pair",
    "load_pair",
    "PushforwardSampler",
    "fitted_dims",
    "fitted_pair",
    "fitted_state_to_pair",
    "get_pair",
    "mixture",
    "place_kinks",
    "random_pair",
]
