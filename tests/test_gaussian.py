"""Closed-form Gaussian OT (paper C.4) against its defining properties and POT."""

import numpy as np
import ot
import pytest
import scipy.linalg
import torch

from w2gn.distributions import Gaussian, GaussianPair, random_covariance
from w2gn.linalg import inv_sqrtm_psd, random_rotation, sqrtm_psd
from w2gn.metrics import bures_map, bures_w2_squared, l2_uvp, total_variance


@pytest.mark.parametrize("dim", [1, 2, 5, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_bures_map_agrees_with_pot(dim, seed):
    g = torch.Generator().manual_seed(seed)
    cp, cq = random_covariance(dim, g), random_covariance(dim, g)
    mp, mq = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    a, b = bures_map(mp, cp, mq, cq)
    a_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(mp.numpy(), mq.numpy(), cp.numpy(), cq.numpy())
    # POT maps row vectors as x @ A + b; A is symmetric so the conventions agree
    assert np.allclose(a.numpy(), a_pot, atol=1e-8)
    assert np.allclose(b.numpy(), b_pot.reshape(-1), atol=1e-8)
    w2 = bures_w2_squared(mp, cp, mq, cq)
    w_pot = ot.gaussian.bures_wasserstein_distance(mp.numpy(), mq.numpy(), cp.numpy(), cq.numpy())
    assert w2 == pytest.approx(float(w_pot) ** 2, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("dim", [2, 7, 32])
def test_bures_map_defining_property(dim):
    """A is symmetric positive definite (gradient of a convex quadratic) and pushes S_p to S_q: A S_p A = S_q."""
    g = torch.Generator().manual_seed(dim)
    cp, cq = random_covariance(dim, g), random_covariance(dim, g)
    a, _ = bures_map(torch.zeros(dim), cp, torch.zeros(dim), cq)
    assert torch.allclose(a, a.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(a).min()) > 0
    assert torch.allclose(a @ cp @ a, cq, atol=1e-9)
    # the cost of that coupling is the closed-form W2^2
    cost = torch.trace(cp) + torch.trace(cq) - 2 * torch.trace(a @ cp)
    assert float(cost) == pytest.approx(bures_w2_squared(torch.zeros(dim), cp, torch.zeros(dim), cq), rel=1e-9)


def test_w2_of_identical_gaussians_is_zero_and_translation_adds_mean_gap():
    c = random_covariance(4, torch.Generator().manual_seed(0))
    z = torch.zeros(4, dtype=torch.float64)
    assert bures_w2_squared(z, c, z, c) == pytest.approx(0.0, abs=1e-10)
    m = torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    assert bures_w2_squared(z, c, m, c) == pytest.approx(6.0, rel=1e-9)


@pytest.mark.parametrize("dim", [3, 20, 128])
def test_sqrtm_psd_matches_scipy(dim):
    c = random_covariance(dim, torch.Generator().manual_seed(dim))
    r = sqrtm_psd(c)
    assert np.allclose(r.numpy(), np.real(scipy.linalg.sqrtm(c.numpy())), atol=1e-8)
    assert torch.allclose(r @ r, c, atol=1e-10)
    assert torch.allclose(inv_sqrtm_psd(c) @ r, torch.eye(dim, dtype=torch.float64), atol=1e-9)


def test_random_covariance_follows_paper_construction():
    dim = 10
    c = random_covariance(dim, torch.Generator().manual_seed(1))
    eig = torch.linalg.eigvalsh(c)
    assert torch.allclose(eig, torch.logspace(np.log10(0.25), np.log10(4.0), dim, dtype=torch.float64), rtol=1e-9)
    q = random_rotation(dim, torch.Generator().manual_seed(2))
    assert torch.allclose(q @ q.T, torch.eye(dim, dtype=torch.float64), atol=1e-12)


def test_gaussian_pair_ground_truth():
    pair = GaussianPair.random(6, seed=3)
    g = torch.Generator().manual_seed(0)
    x = pair.source.sample(200_000, g).double()
    y = pair.forward_map(x)
    # T* pushes P to Q: empirical covariance of T(x) matches S_q
    assert torch.allclose(torch.cov(y.T), pair.target.cov64, atol=0.05)
    assert torch.allclose(pair.inverse_map(pair.forward_map(x[:100])), x[:100], atol=1e-9)
    assert float((x - y).square().sum(1).mean()) == pytest.approx(pair.w2_squared, rel=0.02)
    assert total_variance(y) == pytest.approx(pair.target.variance, rel=0.02)
    # identity scores positive, the true map scores 0, the constant mean map scores ~100
    assert l2_uvp(y, y, pair.target.variance) == 0.0
    assert l2_uvp(torch.zeros_like(y), y, pair.target.variance) == pytest.approx(100.0, rel=0.02)


def test_gaussian_log_prob_matches_scipy():
    from scipy.stats import multivariate_normal

    cov = random_covariance(3, torch.Generator().manual_seed(0))
    mean = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    x = torch.randn(10, 3, dtype=torch.float64)
    ref = multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy())
    assert np.allclose(Gaussian(mean, cov).log_prob(x).numpy(), ref)


def test_gaussian_command_records_the_values_it_used(tmp_path):
    """The JSON report names the widths, lambda and iteration count the run used, not the config's
    "chosen by dimension" placeholders (``null``). Shown to fail on the tree before this change, which
    wrote ``"hidden": null`` and ``"lambda_cycle": null``."""
    import json

    from w2gn.cli import main
    from w2gn.solvers import default_hidden

    assert main(["gaussian", "--dim", "3", "--iterations", "20", "--pretrain-iterations", "0", "--batch-size", "32",
                 "--eval-samples", "256", "--log-every", "10", "--no-checkpoints", "--quiet",
                 "--out-dir", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "gaussian_D3.json").read_text())
    assert rep["config"]["hidden"] == default_hidden(3)
    assert rep["config"]["lambda_cycle"] == 3.0  # min(D, 50)
    assert rep["iterations"] == rep["config"]["iterations_run"] == 20
