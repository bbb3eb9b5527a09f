"""Metrics: L2-UVP and cosine against a true map, closed-form Bures W2, sliced W2 between samples, FID."""

from .bures import bures_map, bures_w2_squared
from .fid import InceptionFeatures, fid_from_features, frechet_distance, gaussian_statistics
from .sliced import sliced_wasserstein
from .uvp import cosine_similarity, l2_uvp, total_variance

__all__ = [
    "InceptionFeatures",
    "bures_map",
    "bures_w2_squared",
    "cosine_similarity",
    "fid_from_features",
    "frechet_distance",
    "gaussian_statistics",
    "l2_uvp",
    "sliced_wasserstein",
    "total_variance",
]
