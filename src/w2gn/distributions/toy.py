"""2-D toy distributions of the paper's Appendix C.3: Gaussian mixtures and the Swiss roll."""

from __future__ import annotations

import math

import torch

from .base import Sampler


class GaussianMixture(Sampler):
    """Mixture of isotropic Gaussians ``sum_k w_k N(means_k, std^2 I)``."""

    def __init__(self, means: torch.Tensor, std: float = 0.1, weights: torch.Tensor | None = None) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() != 2:
            raise ValueError(f"means must be (K, D), got {tuple(means.shape)}")
        k = means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError("weights must be K non-negative numbers with a positive sum")
        self.means64 = means
        self.weights64 = w / w.sum()
        self.std = float(std)
        self.event_shape = (means.shape[1],)
        self._moved()

    def _moved(self) -> None:
        self._means = self.means64.to(device=self.device, dtype=self.dtype)
        self._weights = self.weights64.to(device=self.device, dtype=torch.float32)

    @property
    def n_components(self) -> int:
        return self.means64.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        comp = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, device=self.device, dtype=self.dtype)
        return self._means[comp] + self.std * noise

    def nearest_component(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the closest mean for each row of ``x`` (for counting covered modes)."""
        return torch.cdist(x.to(torch.float64), self.means64.to(x.device)).argmin(dim=1)

    def describe(self) -> dict:
        return {**super().describe(), "components": self.n_components, "std": self.std}


def eight_gaussians(radius: float = 2.0, std: float = 0.2) -> GaussianMixture:
    """8 Gaussians evenly spaced on a circle (Figure 8)."""
    ang = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture(radius * torch.stack([ang.cos(), ang.sin()], dim=1), std)


def grid_gaussians(per_side: int = 7, spacing: float = 1.0, std: float = 0.08) -> GaussianMixture:
    """``per_side^2`` Gaussians on a centred square grid (49: Figure 10a; 100: Figure 9)."""
    c = (torch.arange(per_side, dtype=torch.float64) - (per_side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    return GaussianMixture(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), std)


class SwissRoll(Sampler):
    """2-D Swiss roll ``t (cos t, sin t) / scale + noise`` with ``t ~ U(1.5 pi, 4.5 pi)`` (Figure 10b)."""

    def __init__(self, noise: float = 0.1, scale: float = 5.0) -> None:
        self.noise = float(noise)
        self.scale = float(scale)
        self.event_shape = (2,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, device=self.device, dtype=self.dtype))
        pts = torch.stack([t * t.cos(), t * t.sin()], dim=1) / self.scale
        return pts + self.noise * torch.randn(n, 2, generator=generator, device=self.device, dtype=self.dtype)

    def describe(self) -> dict:
        return {**super().describe(), "noise": self.noise, "scale": self.scale}
