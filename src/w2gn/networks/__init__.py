"""Convex potentials: the networks whose input-gradients are transport maps."""

from __future__ import annotations

from typing import Any

from .base import ConvexPotential
from .conv_icnn import ConvICNN
from .convex_quadratic import ConvexQuadratic
from .dense_icnn import DenseICNN
from .map_network import MAP_NETWORKS, DenseMap, MapNetwork, build_map_network, map_network_spec
from .registry import describe, rebuild

#: name -> class, used to rebuild a potential from a saved configuration
POTENTIALS: dict[str, type[ConvexPotential]] = {"DenseICNN": DenseICNN, "ConvICNN": ConvICNN}


def register_potential(cls: type[ConvexPotential]) -> type[ConvexPotential]:
    """Make ``cls`` loadable by name (usable as a class decorator)."""
    POTENTIALS[cls.__name__] = cls
    return cls


def potential_spec(potential: ConvexPotential) -> dict[str, Any]:
    """A plain-data description ``{"type": ..., "config": {...}}`` of a potential's architecture."""
    return describe(potential)


def build_potential(spec: dict[str, Any]) -> ConvexPotential:
    """Rebuild a potential (untrained weights) from :func:`potential_spec`'s output."""
    return rebuild(POTENTIALS, spec, "potential")


__all__ = [
    "ConvexPotential",
    "ConvexQuadratic",
    "DenseICNN",
    "ConvICNN",
    "POTENTIALS",
    "register_potential",
    "potential_spec",
    "build_potential",
    "MapNetwork",
    "DenseMap",
    "MAP_NETWORKS",
    "map_network_spec",
    "build_map_network",
]
