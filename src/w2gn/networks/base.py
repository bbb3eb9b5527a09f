"""The interface every convex potential implements.

A potential is a scalar function ``psi: R^shape -> R`` whose input-gradient is a transport map
(Brenier). Subclasses implement :meth:`forward` and :meth:`project`; the gradient helpers here are
shared so every potential maps tensors the same way, on any device and dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConvexPotential(nn.Module):
    """Base class of input-convex potentials ``psi(x)``.

    Subclasses must implement :meth:`forward` (``(N, *event_shape) -> (N,)``), :meth:`project`
    (restore the constraints that make the network convex after an optimiser step) and
    :meth:`config` (the constructor arguments, so that :func:`w2gn.networks.build_potential` can
    rebuild the network from a saved file).
    """

    #: shape of one sample, e.g. ``(D,)`` for vectors or ``(C, H, W)`` for images
    event_shape: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the constrained weights back to the convex set (in place, no graph): every tensor of
        :meth:`constrained_parameters` to ``[0, inf)`` (weight clipping, paper C.1)."""
        for w in self.constrained_parameters():
            w.clamp_(min=0.0)

    def config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def constrained_parameters(self) -> list[nn.Parameter]:
        """Parameters that must stay non-negative for the network to be convex."""
        return []

    def input_parameters(self) -> list[nn.Parameter]:
        """Parameters of the layers that read the raw input ``x`` (an optimiser may give them their own
        learning rate: see ``input_lr_factor`` of :class:`~w2gn.solvers.PotentialConfig`). Default: none."""
        return []

    def linear_input_parameters(self) -> list[nn.Parameter]:
        """The part of :meth:`input_parameters` that maps ``x`` linearly (its own rate: ``linear_input_lr_factor``
        of :class:`~w2gn.solvers.PotentialConfig`). Default: none."""
        return []

    def l1_norm(self) -> torch.Tensor:
        """Sum of absolute values of all parameters (the paper's L1 weight penalty, C.3-C.8)."""
        return sum(p.abs().sum() for p in self.parameters())  # type: ignore[return-value]

    def gradient(self, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        """The map ``grad_x psi(x)`` with shape equal to ``x``.

        With ``create_graph=True`` the result is differentiable w.r.t. the network parameters (and
        ``x``), as the training objective needs. ``x`` need not require grad: a leaf copy is made
        when it does not.
        """
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.forward(x)
            (g,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph)
        return g

    def map(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Inference map ``grad psi(x)`` for arbitrarily many samples, in batches, without a graph.

        ``x`` may live on any device/dtype; each batch is moved to the network's device and dtype and
        the result is returned on ``x``'s device in the network's dtype.
        """
        return _batched(lambda b: self.gradient(b, create_graph=False), self, x, batch_size)

    def value(self, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Inference values ``psi(x)`` (shape ``(N,)``) in batches, without a graph."""

        def f(b: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.forward(b)

        return _batched(f, self, x, batch_size)


def _batched(fn, module: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    p = next(module.parameters())
    outs = []
    for start in range(0, x.shape[0], batch_size):
        b = x[start : start + batch_size].to(device=p.device, dtype=p.dtype)
        outs.append(fn(b).detach().to(x.device))
    if not outs:
        return torch.empty((0,), dtype=p.dtype, device=x.device)
    return torch.cat(outs, dim=0)
