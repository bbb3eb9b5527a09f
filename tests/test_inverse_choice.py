"""The inverse a fitted map serves: refined on psi_theta's conjugate only when psi_theta has the smaller
dual value (w2gn.inverse_choice), checked on pairs whose optimal potential is known."""

from __future__ import annotations

import pytest
import torch

from w2gn import W2GNSolver
from w2gn.inverse_choice import choose_inverse, conjugate_mean
from w2gn.networks import DenseICNN


def _identity_potential(dim: int) -> DenseICNN:
    """psi(x) = |x|^2 / 2 exactly: every weight zero, strong convexity 1."""
    net = DenseICNN(dim, [8], strong_convexity=1.0).double()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    return net


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_optimal_potential_has_the_smaller_dual_and_decides_the_inverse(seed):
    # P = Q = N(0, I): the OT map is the identity, psi = |x|^2 / 2 is optimal and its dual value is E|x|^2
    g = torch.Generator().manual_seed(seed)
    dim = 3
    x = torch.randn(2048, dim, generator=g, dtype=torch.float64)
    y = torch.randn(2048, dim, generator=g, dtype=torch.float64)
    best = _identity_potential(dim)
    crude = DenseICNN(dim, [16, 16], seed=seed, strong_convexity=0.5).double()
    keep = choose_inverse(best, crude, x, y, steps=30)
    assert keep.refine and keep.dual_theta < keep.dual_omega
    torch.testing.assert_close(torch.tensor(keep.dual_theta, dtype=torch.float64),
                               0.5 * (x.square().sum(1).mean() + y.square().sum(1).mean()))
    drop = choose_inverse(crude, best, x, y, steps=30)
    assert not drop.refine and drop.dual_omega < drop.dual_theta
    assert drop.to_dict()["inverse"] == "amortised"


def test_conjugate_mean_is_the_conjugate_of_a_quadratic():
    # psi = |x|^2 / 2 is its own conjugate: E psi^*(y) = E |y|^2 / 2, from any start
    y = torch.randn(512, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    psi = _identity_potential(4)
    start = DenseICNN(4, [8], seed=3).double()
    torch.testing.assert_close(conjugate_mean(psi, start, y, steps=30), 0.5 * y.square().sum(1).mean())


def test_a_fit_with_inverse_refinement_records_its_choice():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 2, generator=g)
    y = 2.0 * torch.randn(500, 2, generator=g) + 1.0
    fitted = W2GNSolver(iterations=60, batch_size=64, hidden=[8, 8], pretrain_iterations=5, progress=False,
                        refine_inverse_steps=5).fit(x, y)
    choice = fitted.info["inverse_choice"]
    assert choice["inverse"] in ("refined", "amortised")
    assert (choice["inverse"] == "refined") == (choice["dual_theta"] <= choice["dual_omega"])
    assert ("refine_steps" in fitted.conjugate_options) == (choice["inverse"] == "refined")
    plain = W2GNSolver(iterations=20, batch_size=64, hidden=[8, 8], pretrain_iterations=5, progress=False).fit(x, y)
    assert "inverse_choice" not in plain.info
