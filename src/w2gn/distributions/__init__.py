"""Samplers: data, Gaussians with closed-form OT ground truth, 2-D toy mixtures."""

from .base import Sampler
from .data import CallableSampler, TensorSampler, as_sampler, fingerprint, validate_samples
from .gaussian import Gaussian, GaussianPair, StandardNormal, random_covariance
from .toy import GaussianMixture, SwissRoll, eight_gaussians, grid_gaussians

__all__ = [
    "Sampler",
    "TensorSampler",
    "CallableSampler",
    "as_sampler",
    "validate_samples",
    "fingerprint",
    "Gaussian",
    "StandardNormal",
    "GaussianPair",
    "random_covariance",
    "GaussianMixture",
    "SwissRoll",
    "eight_gaussians",
    "grid_gaussians",
]
