"""Benchmark pairs with known non-linear OT maps, and the accuracy benchmark that runs solvers on them."""

from .pairs import (
    BenchmarkPair,
    PushforwardSampler,
    fitted_dims,
    fitted_pair,
    fitted_state_to_pair,
    get_pair,
    mixture,
    place_kinks,
    random_pair,
)

__all__ = [
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
