"""Benchmark pairs: the true maps, Brenier's property, the conjugate solvers and the shipped fitted pairs."""

import numpy as np
import ot
import pytest
import torch

from w2gn.conjugate import solve_conjugate, solve_conjugate_newton
from w2gn.errors import W2GNUserError
from w2gn.metrics import sliced_wasserstein
from w2gn.testbeds import fitted_dims, fitted_pair, get_pair, random_pair


@pytest.fixture(scope="module")
def pair4():
    return random_pair(4, seed=3)


def test_forward_map_matches_finite_differences(pair4):
    x = pair4.source.sample(16, torch.Generator().manual_seed(0)).double()
    g = pair4.forward_map(x)
    h = 1e-6
    fd = torch.stack([(pair4.potential(x + h * e) - pair4.potential(x - h * e)) / (2 * h)
                      for e in torch.eye(4, dtype=torch.float64)], dim=1)
    assert torch.allclose(g, fd, atol=1e-5, rtol=1e-5)


def test_forward_map_is_the_discrete_ot_plan(pair4):
    # Brenier: grad psi is cyclically monotone, so on a sample the optimal assignment between
    # x_i and grad psi(x_j) is the identity permutation
    x = pair4.source.sample(150, torch.Generator().manual_seed(1)).double()
    y = pair4.forward_map(x)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(2))
    cost = torch.cdist(x, y[perm]).square().numpy()
    plan = ot.emd(np.full(150, 1 / 150), np.full(150, 1 / 150), cost)
    assigned = plan.argmax(axis=1)
    assert (perm.numpy()[assigned] == np.arange(150)).all()


def test_pushforward_matches_target_sampler(pair4):
    """The target sampler draws from grad psi # P, checked without the forward map: its samples pulled
    back through the inverse map (the conjugate solver, another code path) are distributed as P.
    Shown to fail with the sampler returning unmapped source samples, and with it applying 2 grad psi."""
    g = torch.Generator().manual_seed(4)
    y = pair4.target.sample(1500, g).double()
    x = pair4.source.sample(1500, g).double()  # an independent sample of P
    pulled = pair4.solve_inverse(y, tol=1e-8)
    assert pulled.converged
    sw = sliced_wasserstein(pulled.x, x, generator=torch.Generator().manual_seed(5))
    sw_unpulled = sliced_wasserstein(y, x, generator=torch.Generator().manual_seed(5))
    assert sw < 0.15 * sw_unpulled
    # and a fresh draw, not the source sample it was given: target samples are not grad psi(x) of the x above
    assert not torch.allclose(pair4.forward_map(x), y)


def test_inverse_after_forward_is_identity(pair4):
    x = pair4.source.sample(100, torch.Generator().manual_seed(6)).double()
    y = pair4.forward_map(x)
    res = pair4.solve_inverse(y, tol=1e-8)
    assert res.converged and res.residual <= 1e-8
    assert torch.allclose(res.x, x, atol=1e-6)
    # and grad psi(grad psi^*(y)) = y through the public inverse_map
    assert torch.allclose(pair4.forward_map(pair4.inverse_map(y)), y, atol=1e-7)


def test_conjugate_solvers_reach_tolerance_and_agree(pair4):
    y = pair4.target.sample(40, torch.Generator().manual_seed(7)).double()
    a = solve_conjugate_newton(pair4.potential, y, tol=1e-9)
    b = solve_conjugate(pair4.potential, y, x0=a.x + 1e-2, max_iter=200, tol=1e-5)
    assert a.converged and a.residual <= 1e-9 and a.iterations < 50
    assert b.converged and b.residual <= 1e-5 and torch.allclose(a.x, b.x, atol=1e-3)
    # the conjugate value is max_x <x, y> - psi(x): no other point does better
    other = a.x + 0.05 * torch.randn(a.x.shape, generator=torch.Generator().manual_seed(8), dtype=a.x.dtype)
    assert bool(((other * y).sum(1) - pair4.potential(other) <= a.values + 1e-12).all())


def test_solve_conjugate_small_max_iter_is_respected(pair4):
    y = pair4.target.sample(50, torch.Generator().manual_seed(8)).double()
    res = solve_conjugate(pair4.potential, y, max_iter=3, tol=0.0)
    assert res.iterations == 3 and not res.converged


def test_random_pair_is_deterministic_and_nontrivial():
    a, b = random_pair(2, seed=0), random_pair(2, seed=0)
    x = torch.randn(10, 2, dtype=torch.float64)
    assert torch.equal(a.forward_map(x), b.forward_map(x))
    base = a.baselines
    assert base["identity"] >= 30 and base["linear"] >= 10


def test_fitted_pairs_ship_and_are_nontrivial():
    dims = fitted_dims()
    assert {2, 4, 8, 16}.issubset(dims)
    for d in (2, 8):
        pair = fitted_pair(d)
        assert pair.dim == d
        base = pair.baselines
        assert base["identity"] >= 30, base
        assert base["linear"] >= 10, base
        assert base["affine_least_squares"] <= base["linear"] + 1e-9
        # the shipped potential is strictly convex: its inverse exists and is computable
        y = pair.target.sample(64, torch.Generator().manual_seed(9)).double()
        assert pair.solve_inverse(y).converged


def test_evaluate_scores_the_true_map_zero_and_identity_high(pair4):
    class Truth:
        def forward(self, x):
            return pair4.forward_map(x.double())

        def inverse(self, y):
            return pair4.inverse_map(y.double())

    class Identity:
        def forward(self, x):
            return x

        inverse = forward

    s = pair4.evaluate(Truth(), n=512)
    assert s["forward_uvp"] < 1e-6 and s["inverse_uvp"] < 1e-6 and s["forward_cosine"] > 0.999999
    i = pair4.evaluate(Identity(), n=4096)
    assert i["forward_uvp"] == pytest.approx(pair4.baselines["identity"], rel=0.2)


def test_get_pair_names():
    assert get_pair("random:3:1").name == "random-d3-s1"
    assert get_pair("random-d3-s1").dim == 3
    with pytest.raises(W2GNUserError):
        get_pair("gaussian:3")
    with pytest.raises(W2GNUserError):
        fitted_pair(3)
