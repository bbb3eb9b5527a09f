"""Gaussians and the paper's Gaussian OT benchmark (Section 5.1, Appendix C.4)."""

from __future__ import annotations

import math

import torch

from ..linalg import random_rotation, sqrtm_psd
from ..metrics.bures import bures_map, bures_w2_squared
from .base import Sampler


class Gaussian(Sampler):
    """``N(mean, cov)`` on ``R^D``; samples ``mean + z @ cov^{1/2}`` with ``z ~ N(0, I)``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (mean.numel(), mean.numel()):
            raise ValueError(f"cov must be {mean.numel()}x{mean.numel()}, got {tuple(cov.shape)}")
        self.mean64 = mean
        self.cov64 = 0.5 * (cov + cov.T)
        self.event_shape = (mean.numel(),)
        self._root64 = sqrtm_psd(self.cov64)
        self._moved()

    def _moved(self) -> None:
        self._mean = self.mean64.to(device=self.device, dtype=self.dtype)
        self._root = self._root64.to(device=self.device, dtype=self.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return self._mean + z @ self._root

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at rows of ``x`` (float64 internally)."""
        x64 = x.to(torch.float64) - self.mean64.to(x.device)
        cov = self.cov64.to(x.device)
        chol = torch.linalg.cholesky(cov)
        sol = torch.cholesky_solve(x64.T, chol).T
        logdet = 2 * torch.log(torch.diagonal(chol)).sum()
        return (-0.5 * (x64 * sol).sum(dim=1) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)).to(x.dtype)

    @property
    def variance(self) -> float:
        """Total variance ``tr(cov)``."""
        return float(torch.trace(self.cov64))

    def describe(self) -> dict:
        return {**super().describe(), "trace": self.variance}


class StandardNormal(Gaussian):
    """``N(0, I_D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__(torch.zeros(dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64))


def random_covariance(
    dim: int, generator: torch.Generator | None = None, low: float = 0.25, high: float = 4.0
) -> torch.Tensor:
    """The paper's random covariance (C.4): ``S^T diag(lambda) S`` with ``S`` a random rotation and
    eigenvalues log-spaced in ``[low, high]`` (``[1/4, 4]`` by default). Float64."""
    eig = torch.logspace(math.log10(low), math.log10(high), dim, dtype=torch.float64) if dim > 1 else (
        torch.tensor([math.sqrt(low * high)], dtype=torch.float64)
    )
    s = random_rotation(dim, generator)
    return s.T @ torch.diag(eig) @ s


#: pair families of :meth:`GaussianPair.random`
GAUSSIAN_FAMILIES = ("centred", "offset")


class GaussianPair:
    """A source/target pair of Gaussians with the closed-form OT solution (Section 5.1).

    Attributes ``source``/``target`` are samplers; :meth:`forward_map`/:meth:`inverse_map` are the
    true OT maps; :attr:`w2_squared` is ``W2^2`` (``E||x - T(x)||^2``, no 1/2 factor).
    """

    def __init__(self, source: Gaussian, target: Gaussian, device: str | torch.device | None = None) -> None:
        if source.dim != target.dim:
            raise ValueError(f"dimension mismatch: {source.dim} vs {target.dim}")
        self.source = source
        self.target = target
        self.dim = source.dim
        # the closed form needs D x D square roots: float64 eigh on ``device`` (the fit's, e.g. a GPU)
        dev = torch.device(device) if device is not None else source.mean64.device
        mp, sp, mq, sq = (t.to(dev) for t in (source.mean64, source.cov64, target.mean64, target.cov64))
        self.A, self.b = bures_map(mp, sp, mq, sq)
        self.A_inv, self.b_inv = bures_map(mq, sq, mp, sp)
        self.w2_squared = bures_w2_squared(mp, sp, mq, sq)

    @classmethod
    def random(cls, dim: int, seed: int = 0, device: str | torch.device | None = None,
               family: str = "centred") -> GaussianPair:
        """A random benchmark pair in dimension ``dim`` with its closed-form OT map.

        ``family="centred"``: the paper's pair (C.4), two random covariances with eigenvalues in
        ``[1/4, 4]`` and zero means. ``family="offset"``: data as users have them, not centred: the
        spectra in ``[0.2, 5]``, source means drawn from ``N(0, 1)`` and target means from
        ``2 + N(0, 1)`` per coordinate; drawn from a seed stream of its own, so it is not the centred
        pair shifted. The covariances are drawn on the CPU (same pair on every machine); the
        closed-form maps are computed on ``device`` (default CPU).
        """
        if family not in GAUSSIAN_FAMILIES:
            raise ValueError(f"unknown Gaussian family {family!r}; choose one of {', '.join(GAUSSIAN_FAMILIES)}")
        if family == "centred":
            g = torch.Generator().manual_seed(int(seed))
            cov_p = random_covariance(dim, g)
            cov_q = random_covariance(dim, g)
            zero = torch.zeros(dim, dtype=torch.float64)
            return cls(Gaussian(zero, cov_p), Gaussian(zero.clone(), cov_q), device=device)
        g = torch.Generator().manual_seed(1_000_003 + int(seed))
        cov_p = random_covariance(dim, g, low=0.2, high=5.0)
        cov_q = random_covariance(dim, g, low=0.2, high=5.0)
        mean_p = torch.randn(dim, generator=g, dtype=torch.float64)
        mean_q = 2.0 + torch.randn(dim, generator=g, dtype=torch.float64)
        return cls(Gaussian(mean_p, cov_p), Gaussian(mean_q, cov_q), device=device)

    def _affine(self, a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float64) @ a.T.to(x.device) + b.to(x.device)).to(x.dtype)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """True OT map ``T*(x)`` from source to target."""
        return self._affine(self.A, self.b, x)

    def inverse_map(self, y: torch.Tensor) -> torch.Tensor:
        """True OT map from target to source, ``(T*)^{-1}(y)``."""
        return self._affine(self.A_inv, self.b_inv, y)
