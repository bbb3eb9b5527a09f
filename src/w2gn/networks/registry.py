"""Networks saved by name: an architecture as plain data ``{"type": class name, "config": constructor
arguments}``, and the network rebuilt from it through a registry (name -> class)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def describe(net: Any) -> dict[str, Any]:
    """``{"type": ..., "config": {...}}``: ``net``'s class name and its ``config()`` (constructor arguments)."""
    return {"type": type(net).__name__, "config": net.config()}


def rebuild(registry: Mapping[str, type[T]], spec: Mapping[str, Any], what: str) -> T:
    """The network (untrained weights) that :func:`describe` gave ``spec`` for, of a class in ``registry``;
    an unknown type is a ``ValueError`` naming ``what`` and the known types."""
    kind = spec.get("type")
    if kind not in registry:
        raise ValueError(f"unknown {what} type {kind!r}; known: {sorted(registry)}")
    return registry[kind](**spec.get("config", {}))
