"""Sample-based distances between two empirical distributions."""

from __future__ import annotations

import torch


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced 2-Wasserstein distance between two sample sets ``(N, D)`` and ``(M, D)``.

    ``SW_2^2 = E_theta W_2^2(<theta, x>, <theta, y>)`` over uniform directions ``theta``; 1-D
    distances by matching quantiles (the smaller set's size). Returns ``SW_2`` (not squared).
    """
    x = x.to(torch.float64).flatten(1)
    y = y.to(torch.float64).flatten(1)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape[1]} vs {y.shape[1]}")
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(x.device)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    n = min(px.shape[0], py.shape[0])
    q = (torch.arange(n, dtype=torch.float64, device=x.device) + 0.5) / n
    ix = (q * px.shape[0]).long().clamp(max=px.shape[0] - 1)
    iy = (q * py.shape[0]).long().clamp(max=py.shape[0] - 1)
    return float((px[ix] - py[iy]).square().mean().sqrt())
