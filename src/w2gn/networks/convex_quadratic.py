"""The convex-quadratic layer of Dense ICNN (paper, Appendix B.2)."""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvexQuadratic(nn.Module):
    """Each output unit is a convex quadratic of the input plus an affine term.

    ``cq_n(x) = ||F_n x||^2 + <b_n, x> + c_n`` with ``F_n`` of shape ``(rank, in_features)``, i.e. the
    PSD form ``A_n = F_n^T F_n`` of rank at most ``rank`` (paper, B.2). Storing ``F`` instead of ``A``
    keeps the layer at ``O(rank * in * out)`` weights and makes every ``A_n`` PSD by construction, so
    no projection is needed here.

    Shapes: input ``(N, in_features)`` -> output ``(N, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 1, bias: bool = True) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0 or rank <= 0:
            raise ValueError(
                f"in_features, out_features and rank must be positive, got {in_features}, {out_features}, {rank}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        # factors stored as (in, rank * out) so the quadratic part is one matmul
        self.quadratic_decomposed = nn.Parameter(torch.empty(in_features, rank * out_features))
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Deterministic given ``generator`` (or torch's global RNG): every parameter is set."""
        with torch.no_grad():
            std = 1.0 / math.sqrt(self.in_features * self.rank)
            self.quadratic_decomposed.normal_(0.0, std, generator=generator)
            bound = 1.0 / math.sqrt(self.in_features)
            self.weight.uniform_(-bound, bound, generator=generator)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj = (x @ self.quadratic_decomposed).view(x.shape[0], self.rank, self.out_features)
        quad = proj.square().sum(dim=1)
        return quad + nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"
