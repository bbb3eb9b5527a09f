"""Test utilities: exact quadratic potentials with known maps, random convex networks."""

from __future__ import annotations

import torch

from w2gn.networks import ConvexPotential, DenseICNN, register_potential


@register_potential
class QuadraticPotential(ConvexPotential):
    """``psi(x) = 1/2 x^T A x + b^T x`` with ``A`` symmetric PD: its gradient ``A x + b`` is an exact
    affine OT map, so fitted-map machinery can be checked against closed forms."""

    def __init__(self, a: list, b: list) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.as_tensor(a, dtype=torch.float64).clone())
        self.b = torch.nn.Parameter(torch.as_tensor(b, dtype=torch.float64).clone())
        self.event_shape = (self.b.numel(),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x @ self.a) * x).sum(1) + x @ self.b

    def project(self) -> None:
        pass

    def config(self) -> dict:
        return {"a": self.a.detach().tolist(), "b": self.b.detach().tolist()}


def random_dense_icnn(dim: int, seed: int, hidden=(16, 16, 8), rank: int = 2, activation: str = "celu",
                      weight_scale: float = 1.0, strong_convexity: float = 0.0) -> DenseICNN:
    """A Dense ICNN with all weights redrawn at ``weight_scale`` (then projected), in float64."""
    net = DenseICNN(dim, list(hidden), rank=rank, activation=activation, strong_convexity=strong_convexity, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * weight_scale)
    net.project()
    return net.double()
