"""The benchmark-pair weights that ship with the package (``w2gn/testbeds/data/<family>_d<D>.pt``)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch

from ..errors import W2GNUserError


def _data_dir():
    return resources.files("w2gn.testbeds") / "data"


def shipped_dims(prefix: str) -> list[int]:
    """Dimensions ``D`` for which ``<prefix>_d<D>.pt`` ships (e.g. ``prefix="fitted"`` or ``"hard"``)."""
    head = f"{prefix}_d"
    return sorted(int(f.name[len(head):-3]) for f in _data_dir().iterdir()
                  if f.name.startswith(head) and f.name.endswith(".pt"))


def load_shipped(prefix: str, dim: int) -> tuple[dict[str, Any], str]:
    """``(state, file name)`` of the shipped ``<prefix>_d<dim>.pt``; a :class:`W2GNUserError` listing the
    available dimensions when there is none."""
    f = _data_dir() / f"{prefix}_d{int(dim)}.pt"
    if not f.is_file():
        raise W2GNUserError(f"no {prefix} benchmark pair for D={dim}; available: {shipped_dims(prefix)}")
    with resources.as_file(f) as path:
        return torch.load(path, map_location="cpu", weights_only=True), str(f)
