"""Closed-form optimal transport between Gaussians (Bures-Wasserstein).

For ``P = N(m_p, S_p)`` and ``Q = N(m_q, S_q)`` the OT map for the quadratic cost is affine,
``T(x) = m_q + A (x - m_p)`` with
``A = S_p^{-1/2} (S_p^{1/2} S_q S_p^{1/2})^{1/2} S_p^{-1/2}`` (Alvarez-Esteban et al. 2016,
Thm 2.3; the paper's C.4), and
``W2^2(P, Q) = ||m_p - m_q||^2 + tr(S_p + S_q - 2 (S_p^{1/2} S_q S_p^{1/2})^{1/2})``.
Everything is computed in float64.
"""

from __future__ import annotations

import torch

from ..linalg import inv_sqrtm_psd, sqrtm_psd


def bures_map(
    mean_p: torch.Tensor, cov_p: torch.Tensor, mean_q: torch.Tensor, cov_q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, b)`` of the OT map ``T(x) = x @ A.T + b`` from ``N(mean_p, cov_p)`` to ``N(mean_q, cov_q)``."""
    cov_p, cov_q = cov_p.to(torch.float64), cov_q.to(torch.float64)
    root_p = sqrtm_psd(cov_p)
    inv_root_p = inv_sqrtm_psd(cov_p)
    mid = sqrtm_psd(root_p @ cov_q @ root_p)
    a = inv_root_p @ mid @ inv_root_p
    a = 0.5 * (a + a.mT)
    b = mean_q.to(torch.float64) - a @ mean_p.to(torch.float64)
    return a, b


def bures_w2_squared(
    mean_p: torch.Tensor, cov_p: torch.Tensor, mean_q: torch.Tensor, cov_q: torch.Tensor
) -> float:
    """Squared 2-Wasserstein distance ``E||x - T(x)||^2`` between two Gaussians (no 1/2 factor)."""
    cov_p, cov_q = cov_p.to(torch.float64), cov_q.to(torch.float64)
    root_p = sqrtm_psd(cov_p)
    cross = sqrtm_psd(root_p @ cov_q @ root_p)
    diff = mean_p.to(torch.float64) - mean_q.to(torch.float64)
    return float(diff @ diff + torch.trace(cov_p) + torch.trace(cov_q) - 2 * torch.trace(cross))
