"""Where a toy map's off-mode mass comes from: its image against the exact semi-discrete OT map's cells.

For a map saved by ``w2gn toy ... --save-map MAP.pt`` onto a Gaussian mixture with narrow modes, the exact
answer sends each point of P = N(0, I) to the centre of its Laguerre cell (``w2gn.metrics.semi_discrete_map``,
solved on 400,000 points). This script maps fresh points of P and prints, by distance to the nearest cell
boundary (the gap between the best and second-best scores ``<x, m_k> - h_k``, which equals the distance in x to
the boundary between two neighbours at spacing 1), the share of P there, the on-mode fraction of the map's image
and its median distance to the *right* mode in units of the modes' std. A map whose misses sit next to the
boundaries is right about the cells but not sharp enough across them; misses spread over the cells mean
the cells themselves are wrong.

Two more columns say how much the cycle terms can teach psi_theta in each band: the share of the points
``grad psi_omega(y)``, ``y ~ Q``, at which R_Y trains psi_theta; and the median of ``|J_omega^T e| / |e|`` with
``e = grad psi_omega(grad psi_theta(x)) - x``: R_X's gradient with respect to psi_theta's output, per unit of its
error (``J_omega`` the Hessian of psi_omega at ``grad psi_theta(x)``).

Usage: ``PYTHONPATH=src python benchmarks/toy_cells.py MAP.pt 49gaussians [--samples 20000]``
"""

from __future__ import annotations

import argparse

import torch

from w2gn.applications.toy import toy_target
from w2gn.fitted_map import TransportMap
from w2gn.metrics import semi_discrete_map

BANDS = [(0.5, float("inf")), (0.2, 0.5), (0.1, 0.2), (0.05, 0.1), (0.02, 0.05), (0.0, 0.02)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("map")
    p.add_argument("target", choices=["8gaussians", "49gaussians", "100gaussians"])
    p.add_argument("--samples", type=int, default=20000, help="fresh points of P to map (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    gen = torch.Generator().manual_seed(a.seed)
    fitted = TransportMap.load(a.map)
    mixture = toy_target(a.target)
    means, std = mixture.means64.float(), float(mixture.std)
    answer = semi_discrete_map(torch.randn(400_000, 2, generator=gen), means)
    x = torch.randn(a.samples, 2, generator=gen)
    true_k = answer.cell(x)
    with torch.no_grad():
        fx = torch.as_tensor(fitted.forward(x)).float()
    dist, k = torch.cdist(fx, means).min(1)
    on = dist <= 3 * std
    to_true = (fx - means[true_k]).norm(dim=1) / std
    margin = boundary_distance(answer, x)
    print(f"{a.map} on {a.target}: {a.samples} fresh points of P; semi-discrete mass error {answer.mass_error:.1e}")
    print(f"on mode {on.float().mean():.3f} (on the right mode {(on & (k == true_k)).float().mean():.3f}); "
          f"off mode {(~on).float().mean():.3f}, of which nearest the right mode {((~on) & (k == true_k)).float().mean():.3f}")
    y = mixture.sample(a.samples, gen).float()
    with torch.no_grad():
        x_hat = torch.as_tensor(fitted.inverse_potential.gradient(y, create_graph=False)).float()
    hat_margin = boundary_distance(answer, x_hat)
    signal = rx_signal(fitted, x)
    print("\n| distance to the nearest cell boundary | share of P | on-mode | median distance to the right mode / std "
          "| share of R_Y's points | R_X's signal to psi_theta per unit error (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for lo, hi in BANDS:
        band = (margin >= lo) & (margin < hi)
        hat_band = (hat_margin >= lo) & (hat_margin < hi)
        if band.any():
            print(f"| [{lo}, {hi}) | {band.float().mean():.3f} | {on[band].float().mean():.3f} | "
                  f"{to_true[band].median():.2f} | {hat_band.float().mean():.3f} | {signal[band].median():.3f} |")


def boundary_distance(answer, x: torch.Tensor) -> torch.Tensor:
    """Gap between the best and second-best cell scores ``<x, m_k> - h_k`` per row of ``x``."""
    top2 = (x @ answer.points.float().T - answer.shifts.float()).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def rx_signal(fitted: TransportMap, x: torch.Tensor) -> torch.Tensor:
    """``|J_omega^T e| / |e|`` per row of ``x``, ``e = grad psi_omega(grad psi_theta(x)) - x`` (Hessian-vector product)."""
    theta, omega = fitted.forward_potential, fitted.inverse_potential
    with torch.no_grad():
        z = torch.as_tensor(theta.gradient(x, create_graph=False)).float()
    z = z.detach().requires_grad_(True)
    back = omega.gradient(z, create_graph=True)
    e = (back - x).detach()
    (g,) = torch.autograd.grad((back * e).sum(), z)
    return g.norm(dim=1) / e.norm(dim=1).clamp_min(1e-12)


if __name__ == "__main__":
    main()
