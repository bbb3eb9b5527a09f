"""Metrics: L2-UVP and cosine against a true map, closed-form Bures W2, sliced W2 between samples."""

from .bures import bures_map, bures_w2_squared
from .sliced import sliced_wasserstein
from .uvp import cosine_similarity, l2_uvp, total_variance

__all__ = ["bures_map", "bures_w2_squared", "l2_uvp", "cosine_similarity", "total_variance", "sliced_wasserstein"]
