"""Direct map networks ``f: R^D -> R^D`` that are *not* gradients of a potential.

Some baselines (LSOT's barycentric projection, Seguy et al. 2017, Section 4) regress a generic map
network instead of differentiating a convex potential. A :class:`TransportMap` can hold such a
network in place of a potential (``forward_network=`` / ``inverse_network=``); it is saved and
rebuilt by name through :data:`MAP_NETWORKS`, like the potentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .registry import describe, rebuild

_ACTIVATIONS = {"relu": nn.ReLU, "celu": nn.CELU, "softplus": nn.Softplus, "tanh": nn.Tanh}


class MapNetwork(nn.Module):
    """Base class: ``forward(x) -> f(x)`` with the shape of ``x``; ``map`` infers in batches.

    Subclasses implement :meth:`forward` and :meth:`config` (constructor arguments, so that
    :func:`build_map_network` can rebuild them from a saved file).
    """

    event_shape: tuple[int, ...]

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def map(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """``f(x)`` for arbitrarily many rows, in batches of ``batch_size``, without a graph.

        Each batch is moved to the network's device/dtype; the result is on ``x``'s device.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        p = next(self.parameters())
        outs = []
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                outs.append(self.forward(x[s : s + batch_size].to(p.device, p.dtype)).to(x.device))
        return torch.cat(outs) if outs else x.new_empty((0, *x.shape[1:]), dtype=p.dtype)


class DenseMap(MapNetwork):
    """Residual MLP ``f(x) = x + W_out act(... act(W_1 x + b_1) ...)``, shape ``(N, D) -> (N, D)``.

    The output layer starts at zero, so the untrained network is the identity map: regression
    then starts from the same place as the ICNN methods' identity pretraining.

    Parameters
    ----------
    dim: input/output dimension ``D``.
    hidden: widths of the hidden layers.
    activation: ``"relu"`` (default, as Seguy et al.), ``"celu"``, ``"softplus"`` or ``"tanh"``.
    seed: if given, initialise with a private generator.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), activation: str = "relu",
                 seed: int | None = None) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if dim <= 0 or not hidden or min(hidden) <= 0:
            raise ValueError(f"dim and hidden widths must be positive, got dim={dim}, hidden={hidden}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        self.dim = int(dim)
        self.event_shape = (self.dim,)
        self.hidden = hidden
        self.activation = activation
        widths = [self.dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], self.dim)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        with torch.no_grad():
            for m in self.body:
                if isinstance(m, nn.Linear):
                    bound = 1.0 / m.in_features ** 0.5
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.zero_()
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(x))

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}


#: name -> class, used to rebuild a map network from a saved configuration
MAP_NETWORKS: dict[str, type[MapNetwork]] = {"DenseMap": DenseMap}


def map_network_spec(net: MapNetwork) -> dict[str, Any]:
    """``{"type": ..., "config": {...}}`` describing ``net``'s architecture."""
    return describe(net)


def build_map_network(spec: dict[str, Any]) -> MapNetwork:
    """Rebuild a map network (untrained weights) from :func:`map_network_spec`'s output."""
    return rebuild(MAP_NETWORKS, spec, "map network")
