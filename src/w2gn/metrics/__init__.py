"""Metrics: L2-UVP and cosine against a true map, closed-form Bures W2, sliced W2 between samples, the exact
discrete OT matching, the exact semi-discrete OT map, FID."""

from .bures import bures_map, bures_w2_squared
from .fid import InceptionFeatures, fid_from_features, frechet_distance, gaussian_statistics
from .matching import discrete_ot_match
from .semi_discrete import SemiDiscreteMap, semi_discrete_map
from .sliced import sliced_wasserstein
from .uvp import cosine_similarity, l2_uvp, total_variance

__all__ = [
    "InceptionFeatures",
    "SemiDiscreteMap",
    "bures_map",
    "bures_w2_squared",
    "cosine_similarity",
    "discrete_ot_match",
    "fid_from_features",
    "frechet_distance",
    "gaussian_statistics",
    "l2_uvp",
    "semi_discrete_map",
    "sliced_wasserstein",
    "total_variance",
]
