"""The latent density of a fitted map by change of variables (C.5) on Gaussians with known densities."""

import math

import pytest
import torch

from w2gn.distributions import Gaussian, StandardNormal
from w2gn.fitted_map import TransportMap
from w2gn.networks import ConvexPotential


class _Quadratic(ConvexPotential):
    """``psi(y) = 1/2 y^T A y + b^T y``: gradient ``A y + b`` (test-only exact potential)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(a.clone())
        self.b = torch.nn.Parameter(b.clone())
        self.event_shape = (a.shape[0],)

    def forward(self, y):
        return 0.5 * ((y @ self.a) * y).sum(1) + y @ self.b

    def project(self):
        pass

    def config(self):
        return {}


def _spd(d, seed):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    return m @ m.T / d + 0.5 * torch.eye(d, dtype=torch.float64)


def test_log_density_exact_gaussian():
    # T(x) = L x + m pushes N(0, I) to N(m, L^2); T^{-1}(y) = L^{-1}(y - m) = grad of the quadratic below
    d = 4
    lmat = _spd(d, 0)
    m = torch.arange(d, dtype=torch.float64) - 1.5
    linv = torch.linalg.inv(lmat)
    fwd = _Quadratic(lmat, m).double()
    inv = _Quadratic(linv, -linv @ m).double()
    fitted = TransportMap(fwd, inv)
    target = Gaussian(m, lmat @ lmat)
    y = target.sample(50, torch.Generator().manual_seed(1)).double()
    got = torch.as_tensor(fitted.log_density(y, _std_log_prob))
    torch.testing.assert_close(got, target.log_prob(y).double(), rtol=1e-8, atol=1e-8)


def _std_log_prob(x):
    return -0.5 * x.square().sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


@pytest.mark.slow  # ~1 min of CPU; the exact test above covers log_density fast
def test_log_density_of_a_trained_w2gn_map():
    # N(0, I) -> N(m, diag(s^2)) in 2-D: the learned density must match the true one where the mass is
    from w2gn.solvers import get_solver

    m = torch.tensor([1.0, -0.5], dtype=torch.float64)
    s = torch.tensor([1.5, 0.7], dtype=torch.float64)
    target = Gaussian(m, torch.diag(s**2))
    solver = get_solver("w2gn", iterations=400, batch_size=256, lr=3e-3, hidden=[16, 16], pretrain_iterations=100,
                        dtype="float64", progress=False, seed=0)
    fitted = solver.fit(StandardNormal(2), target)
    y = target.sample(200, torch.Generator().manual_seed(2)).double()
    got = torch.as_tensor(fitted.log_density(y, _std_log_prob))
    true = target.log_prob(y).double()
    assert float((got - true).abs().mean()) < 0.15
    # and the density is not flat: it tracks the true one across points
    assert float(torch.corrcoef(torch.stack([got, true]))[0, 1]) > 0.95
