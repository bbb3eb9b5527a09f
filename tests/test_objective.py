"""The W2GN objective as a pure function (eq. 12 and its named extras), checked against the formulas."""

from __future__ import annotations

import pytest
import torch

from w2gn.networks import DenseICNN
from w2gn.solvers import W2GNSolver
from w2gn.solvers.objective import W2GNTerms, cycle_error, expectile_loss, w2gn_objective

#: eq. 12 as the paper's defaults train it (coordinate-normalised R_Y, stop-gradient)
EQ12 = dict(normalization="coordinate", stop_gradient=True, cycle_y=True)


def _nets():
    theta = DenseICNN(3, [8, 8], seed=0).double()
    omega = DenseICNN(3, [8, 8], seed=1).double()
    g = torch.Generator().manual_seed(0)
    return theta, omega, torch.randn(16, 3, generator=g, dtype=torch.float64), \
        torch.randn(16, 3, generator=g, dtype=torch.float64) * 2


def grad(net, x):
    return net.gradient(x, create_graph=True)


def test_eq12_value_written_out():
    theta, omega, x, y = _nets()
    lam = 7.0
    loss, parts = w2gn_objective(theta, omega, x, y, W2GNTerms(**{**EQ12, "stop_gradient": False}, lam=lam), grad)
    y_inv = grad(omega, y)
    corr = theta(x).mean() + ((y_inv * y).sum(1) - theta(y_inv)).mean()  # eq. 12, first line
    r_y = (grad(theta, y_inv) - y).square().mean()  # eq. 11, coordinate normalisation
    torch.testing.assert_close(loss, corr + lam * r_y)
    torch.testing.assert_close(parts["correlation"], corr.detach())
    torch.testing.assert_close(parts["w2_dual"], (x.square().sum(1).mean() + y.square().sum(1).mean() - 2 * corr).detach())


def test_each_optional_term_adds_its_named_piece():
    theta, omega, x, y = _nets()
    base, _ = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=2.0), grad)
    with_x, parts = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=2.0, cycle_x=True), grad)
    r_x = (grad(omega, grad(theta, x)) - x).square().mean()  # eq. 51
    torch.testing.assert_close(with_x - base, 2.0 * r_x)
    torch.testing.assert_close(parts["cycle_x"], r_x.detach())
    with_l1, _ = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=2.0, l1=0.1), grad)
    torch.testing.assert_close(with_l1 - base, 0.1 * (theta.l1_norm() + omega.l1_norm()))
    with_e, parts = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=2.0, expectile_weight=3.0, expectile=0.9), grad)
    x_hat = grad(omega, y).detach()
    u = ((x_hat * y).sum(1) - theta(x_hat)) - omega(y)
    torch.testing.assert_close(with_e - base, 3.0 * expectile_loss(u, 0.9))
    assert "expectile" in parts and "amortization" not in parts
    # sample normalisation: Algorithm 1's lambda/2 * batch mean of the squared norm
    sample, _ = w2gn_objective(theta, omega, x, y, W2GNTerms(**{**EQ12, "normalization": "sample"}, lam=2.0), grad)
    r = (grad(theta, grad(omega, y)) - y).square().sum(1).mean()
    torch.testing.assert_close(sample - (base - 2.0 * cycle_error(grad(theta, grad(omega, y)), y)), r)


def test_stop_gradient_trains_omega_by_the_cycle_term_only():
    theta, omega, x, y = _nets()
    loss, _ = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=0.0), grad)
    loss.backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in omega.parameters())


def test_ascent_term_climbs_the_conjugate_objective_with_psi_theta_held_fixed():
    """``ascent_weight``: omega's gradient is that of -(<x_hat, y> - psi_theta(x_hat)) / D through x_hat = grad
    psi_omega(y) with psi_theta's weights fixed, and psi_theta's gradient is untouched by the term."""
    theta, omega, x, y = _nets()
    terms = W2GNTerms(**EQ12, lam=2.0)
    base, _ = w2gn_objective(theta, omega, x, y, terms, grad)
    with_a, parts = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=2.0, ascent_weight=5.0), grad)
    assert "ascent" in parts

    def param_grads(loss, net):
        return torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)

    # the conjugate objective written out, psi_theta frozen (a copy whose weights take no gradient)
    frozen = DenseICNN(3, [8, 8], seed=0).double()
    frozen.load_state_dict(theta.state_dict())
    frozen.requires_grad_(False)
    x_hat = grad(omega, y)
    climb = -((x_hat * y).sum(1) - frozen(x_hat)).mean() / y.shape[1]
    for got, b, want in zip(param_grads(with_a, omega), param_grads(base, omega), param_grads(climb, omega)):
        torch.testing.assert_close(got - b, 5.0 * want)
    for got, b in zip(param_grads(with_a, theta), param_grads(base, theta)):
        torch.testing.assert_close(got, b)


def test_expectile_loss_is_asymmetric():
    u = torch.tensor([1.0, -1.0])
    assert float(expectile_loss(u[:1], 0.9)) == pytest.approx(0.9)
    assert float(expectile_loss(u[1:], 0.9)) == pytest.approx(0.1)


def test_solver_loss_is_the_pure_objective_with_roles_swapped_for_omega():
    theta, omega, x, y = _nets()
    s = W2GNSolver(correlation_on="omega", lambda_cycle=3.0, progress=False)
    s.theta, s.omega = theta, omega
    loss, _ = s.loss(x, y)
    mirrored, _ = w2gn_objective(omega, theta, y, x, W2GNTerms(**EQ12, lam=3.0), s._gradient)
    torch.testing.assert_close(loss, mirrored)


def test_solver_loss_both_is_each_direction_once_with_r_y_and_r_x():
    theta, omega, x, y = _nets()
    s = W2GNSolver(correlation_on="both", lambda_cycle=3.0, l1_penalty=0.01, progress=False)
    s.theta, s.omega = theta, omega
    loss, parts = s.loss(x, y)
    fwd, _ = w2gn_objective(theta, omega, x, y, W2GNTerms(**EQ12, lam=3.0, l1=0.01), s._gradient)
    bwd, _ = w2gn_objective(omega, theta, y, x, W2GNTerms(**EQ12, lam=3.0), s._gradient)
    torch.testing.assert_close(loss, fwd + bwd)
    r_x = (grad(omega, grad(theta, x)) - x).square().mean()  # eq. 51: the mirrored copy's R_Y
    torch.testing.assert_close(parts["cycle_x"], r_x.detach())
    # each potential gets its own correlations: omega now learns with the cycle weight at zero too
    s0 = W2GNSolver(correlation_on="both", lambda_cycle=0.0, progress=False)
    s0.theta, s0.omega = theta, omega
    s0.loss(x, y)[0].backward()
    assert any(float(p.grad.abs().max()) > 0 for p in omega.parameters() if p.grad is not None)



@pytest.mark.parametrize("normalization", ["coordinate", "sample"])
def test_relative_cycle_errors_are_over_the_constant_map(normalization):
    theta, omega, x, y = _nets()
    terms = W2GNTerms(**{**EQ12, "normalization": normalization}, lam=1.0, cycle_x=True)
    _, parts = w2gn_objective(theta, omega, x, y, terms, grad)
    for name, batch in (("cycle_y", y), ("cycle_x", x)):
        const = cycle_error(batch.mean(0).expand_as(batch), batch, normalization)
        torch.testing.assert_close(parts[f"{name}_rel"], parts[name] / const)
    # dead potentials (every unit past the first layer in CELU's flat tail): a constant map, ratio ~1
    with torch.no_grad():
        for net in (theta, omega):
            for layer in net.quadratic_layers[1:]:
                layer.bias.fill_(-1e4)
    _, parts = w2gn_objective(theta, omega, x, y - y.mean(0), terms, grad)
    assert 0.95 < float(parts["cycle_y_rel"]) < 1.05
    # the identity pair of maps: both cycles exact
    ident = DenseICNN(3, [8], strong_convexity=1.0).double()
    with torch.no_grad():
        for p in ident.parameters():
            p.zero_()
    _, parts = w2gn_objective(ident, ident, x, y, terms, grad)
    assert float(parts["cycle_y_rel"]) < 1e-12 and float(parts["cycle_x_rel"]) < 1e-12
