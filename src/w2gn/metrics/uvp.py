"""Map-quality metrics against a known ground-truth map.

L2-UVP (paper, Section 5.1): ``100 * ||T - T*||^2_P / Var(Q)`` percent, where
``||f||^2_P = E_P ||f(x)||^2`` and ``Var(Q) = E_Q ||y - E y||^2`` (trace of the covariance). The
constant map ``E_Q[y]`` scores 100 %, a perfect map 0 %.

Cosine (Korotin et al. 2021, the W2 benchmark): ``<T - id, T* - id>_P / (||T - id||_P ||T* - id||_P)``,
1 for a map pointing the same way as the true displacement.
"""

from __future__ import annotations

import torch


def l2_uvp(mapped: torch.Tensor, true_mapped: torch.Tensor, target_variance: float) -> float:
    """L2-UVP in percent from paired samples ``T(x_i)`` and ``T*(x_i)`` (shape ``(N, ...)``)."""
    if mapped.shape != true_mapped.shape:
        raise ValueError(f"shape mismatch: {tuple(mapped.shape)} vs {tuple(true_mapped.shape)}")
    if target_variance <= 0:
        raise ValueError(f"target variance must be positive, got {target_variance}")
    d = (mapped.to(torch.float64) - true_mapped.to(torch.float64)).flatten(1)
    return float(100.0 * d.square().sum(dim=1).mean() / target_variance)


def cosine_similarity(x: torch.Tensor, mapped: torch.Tensor, true_mapped: torch.Tensor) -> float:
    """Cosine between the fitted displacement ``T(x) - x`` and the true one ``T*(x) - x`` in L2(P)."""
    u = (mapped.to(torch.float64) - x.to(torch.float64)).flatten(1)
    v = (true_mapped.to(torch.float64) - x.to(torch.float64)).flatten(1)
    num = (u * v).sum(dim=1).mean()
    den = u.square().sum(dim=1).mean().sqrt() * v.square().sum(dim=1).mean().sqrt()
    return float(num / den) if den > 0 else float("nan")


def total_variance(samples: torch.Tensor) -> float:
    """``E||y - E y||^2`` estimated from samples (shape ``(N, ...)``)."""
    s = samples.to(torch.float64).flatten(1)
    return float((s - s.mean(dim=0)).square().sum(dim=1).mean())
