"""Small dense linear-algebra helpers for symmetric positive semi-definite matrices."""

from __future__ import annotations

import torch


def _as64(a: torch.Tensor) -> torch.Tensor:
    return a.to(torch.float64)


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Principal square root of a symmetric PSD matrix by symmetric eigendecomposition (float64).

    Runs on ``a``'s device; negative round-off eigenvalues are clipped to zero. ``O(D^3)`` like
    ``scipy.linalg.sqrtm`` but much faster, since it uses the symmetric solver.
    """
    a = _as64(a)
    a = 0.5 * (a + a.mT)
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp(min=0).sqrt().unsqueeze(-2)) @ v.mT


def inv_sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Inverse principal square root of a symmetric positive-definite matrix (float64)."""
    a = _as64(a)
    a = 0.5 * (a + a.mT)
    w, v = torch.linalg.eigh(a)
    if bool((w <= 0).any()):
        raise ValueError("matrix is not positive definite; its inverse square root does not exist")
    return (v * w.rsqrt().unsqueeze(-2)) @ v.mT


def random_rotation(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-distributed random orthogonal ``dim x dim`` matrix (QR of a Gaussian, sign-fixed)."""
    g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)
