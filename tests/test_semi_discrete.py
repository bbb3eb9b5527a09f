"""The semi-discrete OT map (issue 24's exact answer for narrow mixtures), checked against its defining
properties: every Laguerre cell holds its mass, the map is the gradient of a convex potential (cyclically
monotone), it beats every other assignment with the same cell masses, and symmetry gives the known cells."""

from __future__ import annotations

import math

import torch

from w2gn.metrics import semi_discrete_map


def _sample(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_cells_hold_the_prescribed_unequal_masses_also_on_fresh_points():
    points = torch.tensor([[0.0, 0.0], [1.5, 0.3], [-1.0, 1.0], [0.2, -2.0]], dtype=torch.float64)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    sd = semi_discrete_map(_sample(100_000), points, weights)
    assert sd.mass_error < 1e-4
    fresh = torch.bincount(sd.cell(_sample(100_000, seed=1)), minlength=4).double() / 100_000
    assert torch.allclose(fresh, weights, atol=6e-3)  # ~4 binomial sd on 1e5 points
    # the Voronoi cells (the start) are far from these masses, so the solver did the work
    voronoi = torch.bincount(torch.cdist(_sample(100_000, 1), points).argmin(1), minlength=4).double() / 100_000
    assert (voronoi - weights).abs().max() > 0.05


def test_symmetric_points_give_equal_sectors_and_a_cyclically_monotone_map():
    ang = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    points = 2 * torch.stack([ang.cos(), ang.sin()], 1)
    sd = semi_discrete_map(_sample(100_000), points)
    x = _sample(2000, seed=2)
    # the cell of x is its 45-degree sector around a point's direction
    sector = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (2 * math.pi / 8)).remainder(8).long()
    assert (sd.cell(x) == sector).double().mean() > 0.99
    # gradient of a convex potential: <T(x) - T(x'), x - x'> >= 0 for all pairs, and cycles of length 3
    y = sd(x)
    assert ((y[:, None] - y[None]) * (x[:, None] - x[None])).sum(-1).min() >= -1e-12
    i, j, k = torch.randint(0, 2000, (3, 5000), generator=torch.Generator().manual_seed(3))
    cyc = lambda a, b: (y[a] * (x[b] - x[a])).sum(1)  # noqa: E731
    assert (cyc(i, j) + cyc(j, k) + cyc(k, i)).max() <= 1e-12


def test_no_other_assignment_with_the_same_masses_correlates_more():
    """Brenier: the OT map maximises E<x, T(x)> among maps with the same image masses; a random swap
    of equal numbers of points between two cells keeps the masses and must not raise it."""
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = _sample(30_000, seed=4)
    sd = semi_discrete_map(x, points)
    cell = sd.cell(x)
    best = (x * points[cell]).sum(1).mean()
    g = torch.Generator().manual_seed(5)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        ia, ib = torch.nonzero(cell == a)[:, 0], torch.nonzero(cell == b)[:, 0]
        n = 500
        swap = cell.clone()
        swap[ia[torch.randperm(len(ia), generator=g)[:n]]] = b
        swap[ib[torch.randperm(len(ib), generator=g)[:n]]] = a
        assert (x * points[swap]).sum(1).mean() < best
