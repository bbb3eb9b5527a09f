"""The paper's baselines (LSOT, MM-1, MM-2): losses against their formulas, inner solver, short fits."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from w2gn import GaussianPair, TransportMap, W2GNUserError
from w2gn.conjugate import solve_conjugate
from w2gn.metrics import l2_uvp
from w2gn.networks import ConvexPotential, DenseICNN, DenseMap
from w2gn.solvers import SOLVERS, LSOTSolver, MM1Solver, MM2Solver, get_solver
from w2gn.solvers.lsot import barycentric_loss, lsot_dual_objective, lsot_plan_density, transport_cost
from w2gn.solvers.mm2 import negative_weight_penalty

D64 = torch.float64


def _batch(n=7, m=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D64)
    y = 1.5 * torch.randn(m, d, generator=g, dtype=D64) + 0.3
    # potentials large enough that a good share of the pairs has positive slack u + v - c
    u = torch.rand(n, generator=g, dtype=D64) * 3
    v = torch.rand(m, generator=g, dtype=D64) * 3
    return u, v, x, y


def _half_cost(a, b):
    return 0.5 * ot.dist(a, b)


# --------------------------------------------------------------------------------------- LSOT
@pytest.mark.parametrize("cost, metric", [("half", _half_cost), ("full", "sqeuclidean")])
@pytest.mark.parametrize("eps", [0.01, 0.5])
def test_lsot_l2_dual_and_plan_match_pot(cost, metric, eps):
    u, v, x, y = _batch()
    ours = lsot_dual_objective(u, v, x, y, eps, "l2", cost)
    ref = ot.stochastic.loss_dual_quadratic(u, v, x, y, reg=eps, metric=metric)
    assert torch.allclose(ours, torch.as_tensor(ref), rtol=1e-10, atol=1e-10)
    h = lsot_plan_density(u, v, x, y, eps, "l2", cost)
    plan = ot.stochastic.plan_dual_quadratic(u, v, x, y, reg=eps, metric=metric)
    assert (h > 0).any() and (h == 0).any()  # both branches of the (.)_+ are exercised
    assert torch.allclose(h / h.numel(), torch.as_tensor(plan), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cost, metric", [("half", _half_cost), ("full", "sqeuclidean")])
def test_lsot_entropic_dual_and_plan_match_pot(cost, metric):
    u, v, x, y = _batch()
    eps = 2.0
    ours = lsot_dual_objective(u, v, x, y, eps, "entropy", cost)
    ref = ot.stochastic.loss_dual_entropic(u, v, x, y, reg=eps, metric=metric)
    assert torch.allclose(ours, torch.as_tensor(ref), rtol=1e-10)
    h = lsot_plan_density(u, v, x, y, eps, "entropy", cost)
    plan = ot.stochastic.plan_dual_entropic(u, v, x, y, reg=eps, metric=metric)
    assert torch.allclose(h / h.numel(), torch.as_tensor(plan), rtol=1e-10)


def test_transport_cost_conventions():
    _, _, x, y = _batch()
    full = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    assert torch.allclose(transport_cost(x, y, "full"), full)
    assert torch.allclose(transport_cost(x, y, "half"), 0.5 * full)


def test_barycentric_loss_matches_bruteforce():
    u, v, x, y = _batch(n=6, m=4, d=2)
    h = lsot_plan_density(u, v, x, y, 0.1)
    f = torch.randn(6, 2, dtype=D64)
    brute = (h * ((f[:, None, :] - y[None, :, :]) ** 2).sum(-1)).mean()
    assert torch.allclose(barycentric_loss(f, y, h), brute)
    # its minimiser is the conditional mean E_pi[y | x] (where row i has mass)
    bary = (h @ y) / h.sum(1, keepdim=True).clamp_min(1e-300)
    rows = h.sum(1) > 0
    f_opt = f.clone()
    f_opt[rows] = bary[rows]
    assert barycentric_loss(f_opt, y, h) <= barycentric_loss(f, y, h)


@pytest.mark.parametrize("cost", ["half", "full"])
def test_lsot_parametrisation_gives_slack_of_psi(cost):
    """u + v - c = s (<x, y> - psi_theta(x) - psi_omega(y)) with s = 1 (half) or 2 (full)."""
    solver = LSOTSolver(cost=cost, iterations=2, pretrain_iterations=0, batch_size=8, progress=False, dtype="float64")
    pair = GaussianPair.random(3, seed=0)
    solver.fit(pair.source, pair.target)
    _, _, x, y = _batch(d=3)
    u, v = solver.potentials(x, y)
    s = 1.0 if cost == "half" else 2.0
    with torch.no_grad():
        expect = s * (x @ y.T - solver.theta(x)[:, None] - solver.omega(y)[None, :])
        got = u[:, None] + v[None, :] - transport_cost(x, y, cost)
    assert torch.allclose(got, expect, atol=1e-9)


# --------------------------------------------------------------------------------------- MM-1
class _Quadratic(ConvexPotential):
    """``psi(x) = x^T A x / 2 + b^T x`` with SPD ``A``: conjugate argmax ``A^{-1}(y - b)`` in closed form."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(a)
        self.b = torch.nn.Parameter(b)
        self.event_shape = (a.shape[0],)

    def forward(self, x):
        return 0.5 * ((x @ self.a) * x).sum(1) + x @ self.b


@pytest.mark.parametrize("optimizer, tol, lr", [("lbfgs", 1e-8, None), ("gd", 1e-6, 1.0), ("adam", 1e-4, 0.02)])
def test_inner_solver_reaches_tolerance_on_strongly_convex_quadratic(optimizer, tol, lr):
    g = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=D64))[0]
    a = q @ torch.diag(torch.tensor([0.5, 0.8, 1.2, 1.6], dtype=D64)) @ q.T  # strongly convex, L = 1.6
    pot = _Quadratic(a, torch.randn(4, generator=g, dtype=D64))
    y = torch.randn(64, 4, generator=g, dtype=D64)
    res = solve_conjugate(pot, y, max_iter=3000, tol=tol, optimizer=optimizer, lr=lr)
    assert res.converged and res.residual <= tol
    exact = torch.linalg.solve(a, (y - pot.b.detach()).T).T
    # residual r bounds the error by r / lambda_min(A) = 2 r
    assert float((res.x - exact).norm(dim=1).max()) <= 2 * tol * (1 + 1e-6)
    # conjugate value psi*(y) = (y - b)^T A^{-1} (y - b) / 2
    assert torch.allclose(res.values, 0.5 * ((y - pot.b.detach()) * exact).sum(1), atol=10 * tol)


def test_inner_solver_reaches_tolerance_on_strongly_convex_icnn():
    pot = DenseICNN(3, [16, 16, 8], strong_convexity=1.0, seed=0).double()
    y = torch.randn(64, 3, dtype=D64) * 2
    res = solve_conjugate(pot, y, max_iter=500, tol=1e-6)
    assert res.converged and res.residual <= 1e-6
    assert float((pot.gradient(res.x, create_graph=False) - y).norm(dim=1).max()) <= 1e-6


def test_inner_solver_reports_non_convergence():
    pot = DenseICNN(3, [16, 16, 8], strong_convexity=1.0, seed=0).double()
    res = solve_conjugate(pot, 5 * torch.randn(32, 3, dtype=D64), max_iter=1, tol=1e-12, optimizer="gd", lr=0.01)
    assert not res.converged and res.iterations == 1 and res.residual > 1e-12


def test_mm1_loss_gradient_is_gradient_of_dual_objective():
    """Envelope theorem: d/dparams [E psi(x) - E psi(x_hat)] = d/dparams [E psi(x) + E psi*(y)] (finite differences)."""
    torch.manual_seed(1)
    solver = MM1Solver(iterations=1, pretrain_iterations=0, batch_size=8, dtype="float64", progress=False,
                       strong_convexity=0.5, hidden=[8, 8, 4])
    pair = GaussianPair.random(2, seed=0)
    solver.fit(pair.source, pair.target)
    theta = solver.theta
    x = torch.randn(32, 2, dtype=D64)
    y = torch.randn(32, 2, dtype=D64)

    def dual_j() -> float:
        res = solve_conjugate(theta, y, max_iter=400, tol=1e-7)
        assert res.converged
        with torch.no_grad():
            return float(theta(x).mean() + res.values.mean())

    x_hat = solve_conjugate(theta, y, max_iter=400, tol=1e-7).x
    loss = solver.loss(x, x_hat)
    assert torch.allclose(loss, theta(x).mean() - theta(x_hat).mean())
    params = list(theta.parameters())
    grads = torch.autograd.grad(loss, params)
    direction = [torch.randn_like(p) for p in params]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))
    h = 1e-5
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(h * d)
    j_plus = dual_j()
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(2 * h * d)
    j_minus = dual_j()
    numeric = (j_plus - j_minus) / (2 * h)
    assert numeric == pytest.approx(analytic, rel=1e-4, abs=1e-7)


# --------------------------------------------------------------------------------------- MM-2
def test_mm2_losses_match_formulas():
    solver = MM2Solver(iterations=1, inner_steps=1, pretrain_iterations=0, batch_size=8, dtype="float64",
                       progress=False, hidden=[8, 8, 4], omega_penalty=0.7)
    pair = GaussianPair.random(2, seed=0)
    solver.fit(pair.source, pair.target)
    solver.omega.project()
    with torch.no_grad():  # make exactly two omega weights negative so the penalty is active
        solver.omega.convex_layers[0].weight[0, :2] = torch.tensor([-0.3, -0.4], dtype=D64)
    x = torch.randn(16, 2, dtype=D64)
    y = torch.randn(16, 2, dtype=D64)
    theta, omega = solver.theta, solver.omega
    gy = omega.gradient(y)
    pen = sum(float((torch.clamp(-w.detach(), min=0) ** 2).sum()) for w in omega.constrained_parameters())
    assert pen == pytest.approx(0.25)
    assert float(negative_weight_penalty(omega).detach()) == pytest.approx(pen)
    inner, y_inv = solver.inner_loss(y)
    expect_inner = -((gy * y).sum(1).mean() - theta(gy).mean()) + 0.7 * pen
    assert float(inner.detach()) == pytest.approx(float(expect_inner.detach()), rel=1e-10)
    outer = solver.outer_loss(x, y_inv)
    assert float(outer.detach()) == pytest.approx(float((theta(x).mean() - theta(gy).mean()).detach()), rel=1e-10)
    # the outer loss does not reach omega (omega is held fixed in theta's step)
    omega.zero_grad(set_to_none=True)
    outer.backward()
    assert all(p.grad is None for p in omega.parameters())
    assert any(p.grad is not None and p.grad.any() for p in theta.parameters())


def test_mm2_clips_theta_and_optionally_omega():
    pair = GaussianPair.random(2, seed=0)
    for mode in ("clip", "penalty"):
        s = MM2Solver(iterations=20, inner_steps=2, pretrain_iterations=0, batch_size=64, lr=0.05, progress=False,
                      hidden=[8, 8, 4], omega_convexity=mode)
        s.fit(pair.source, pair.target)
        assert all(bool((w >= 0).all()) for w in s.theta.constrained_parameters())
        if mode == "clip":
            assert all(bool((w >= 0).all()) for w in s.omega.constrained_parameters())


# --------------------------------------------------------------------------------- short fits
def _uvp(fitted, pair, n=4000):
    x = pair.source.sample(n, torch.Generator().manual_seed(3))
    tx = pair.forward_map(x)
    return l2_uvp(torch.as_tensor(fitted.forward(x)), tx, pair.target.variance), l2_uvp(x, tx, pair.target.variance)


FAST = {"batch_size": 256, "hidden": [16, 16, 8], "pretrain_iterations": 200, "progress": False}


@pytest.mark.parametrize("method, options", [
    ("lsot", {"iterations": 400, "lr": 3e-3}),
    ("mm1", {"iterations": 80, "inner_iterations": 10, "lr": 3e-3}),
    ("mm2", {"iterations": 80, "inner_steps": 3, "lr": 3e-3}),
])
def test_each_baseline_beats_identity_on_2d_gaussians(method, options):
    pair = GaussianPair.random(2, seed=1)
    fitted = get_solver(method, **FAST, **options).fit(pair.source, pair.target)
    assert fitted.method == method
    uvp, ident = _uvp(fitted, pair)
    assert ident > 50
    assert uvp < 0.1 * ident, (method, uvp, ident)


def test_registry_and_bad_options():
    assert {"w2gn", "lsot", "mm1", "mm2"} <= set(SOLVERS)
    with pytest.raises(W2GNUserError):
        get_solver("mm1", inner_optimizer="newton")
    with pytest.raises(W2GNUserError):
        get_solver("lsot", regularizer="kl")
    with pytest.raises(W2GNUserError):
        get_solver("mm2", inner_steps=0)
    with pytest.raises(W2GNUserError):
        get_solver("lsot", iterations=10, dual_iterations=11)


# ----------------------------------------------------------------------- fitted-map behaviour
def test_lsot_map_round_trips_through_save_load(tmp_path):
    pair = GaussianPair.random(2, seed=0)
    fitted = LSOTSolver(iterations=40, pretrain_iterations=0, batch_size=64, progress=False).fit(pair.source, pair.target)
    assert isinstance(fitted.forward_network, DenseMap) and fitted.forward_potential is None
    y = np.random.randn(50, 2)
    path = fitted.save(tmp_path / "lsot.pt")
    loaded = TransportMap.load(path)
    assert loaded.method == "lsot" and loaded.forward_potential is None
    np.testing.assert_allclose(loaded.forward(y), fitted.forward(y), rtol=1e-6)
    np.testing.assert_allclose(loaded.inverse(y), fitted.inverse(y), rtol=1e-6)
    with pytest.raises(W2GNUserError, match="direct map network"):
        loaded.potential(y)
    with pytest.raises(W2GNUserError, match="direct map network"):
        loaded.w2_squared(y, y)
    assert loaded.w2_squared(y, y, estimator="primal") >= 0
    # maps with potentials only are still written in the version-1 layout
    w = TransportMap(DenseICNN(2, [4, 4, 2]))
    assert w.state()["version"] == 1 and "forward_network" not in w.state()


def test_dense_map_starts_at_identity():
    net = DenseMap(3, [8, 8], seed=0)
    x = torch.randn(10, 3)
    assert torch.equal(net(x), x)


def test_mm1_inverse_uses_inner_solve():
    pair = GaussianPair.random(2, seed=0)
    fitted = MM1Solver(iterations=5, pretrain_iterations=50, batch_size=64, progress=False, dtype="float64",
                       hidden=[8, 8, 4], strong_convexity=0.1).fit(pair.source, pair.target)
    assert fitted.inverse_potential is None
    x = pair.source.sample(100, torch.Generator().manual_seed(0)).double()
    back = fitted.inverse(fitted.forward(x))
    assert torch.allclose(back, x, atol=1e-4)
