"""TransportMap: maps, conjugates, W2 estimate, density, save/load."""

import numpy as np
import pytest
import torch
from helpers import QuadraticPotential, random_dense_icnn

from w2gn import TransportMap, W2GNUserError
from w2gn.conjugate import solve_conjugate
from w2gn.distributions import Gaussian, GaussianPair
from w2gn.networks import DenseICNN


def exact_gaussian_map(dim=3, seed=0):
    """A TransportMap whose potentials are the exact Brenier potential of a Gaussian pair and its conjugate."""
    pair = GaussianPair.random(dim, seed)
    fwd = QuadraticPotential(pair.A, torch.zeros(dim))
    inv = QuadraticPotential(torch.linalg.inv(pair.A), torch.zeros(dim))
    return pair, TransportMap(fwd, inv, method="exact")


def test_forward_inverse_exact():
    pair, m = exact_gaussian_map()
    x = pair.source.sample(500).double()
    assert torch.allclose(m.forward(x), pair.forward_map(x), atol=1e-10)
    y = pair.target.sample(500).double()
    assert torch.allclose(m.inverse(y), pair.inverse_map(y), atol=1e-10)


def test_dual_w2_estimate_and_conjugate_are_exact_for_exact_potentials():
    pair, m = exact_gaussian_map(4, 1)
    g = torch.Generator().manual_seed(0)
    x, y = pair.source.sample(200_000, g).double(), pair.target.sample(200_000, g).double()
    assert m.w2_squared(x, y) == pytest.approx(pair.w2_squared, rel=0.02)
    assert m.w2_squared(x, y, estimator="primal") == pytest.approx(pair.w2_squared, rel=0.02)
    # psi*(y) = 1/2 y^T A^{-1} y for psi = 1/2 x^T A x
    yy = y[:50]
    expect = 0.5 * ((yy @ torch.linalg.inv(pair.A)) * yy).sum(1)
    assert torch.allclose(m.conjugate_potential(yy), expect, atol=1e-9)


def test_inverse_without_conjugate_network_uses_numerical_conjugate():
    net = random_dense_icnn(3, 0, strong_convexity=0.5)
    m = TransportMap(net, None, method="single")
    x = torch.randn(64, 3, dtype=torch.float64)
    y = m.forward(x)
    assert torch.allclose(m.inverse(y), x, atol=1e-5)
    res = solve_conjugate(net, y, tol=1e-5, max_iter=500)
    assert res.converged and res.residual <= 1e-5
    # Fenchel-Young equality at the optimum: psi(x) + psi*(y) = <x, y>
    assert torch.allclose(net(x).detach() + res.values, (x * y).sum(1), atol=1e-6)


def test_log_density_change_of_variables_on_gaussian():
    """T = grad psi_theta maps N(0, I) to N(0, A A); q(y) = det(A^{-1}) p(A^{-1} y) is the known density."""
    pair, m = exact_gaussian_map(3, 2)
    base = Gaussian(torch.zeros(3), torch.eye(3))
    pushed = Gaussian(torch.zeros(3), pair.A @ pair.A)
    y = torch.randn(40, 3, dtype=torch.float64)
    assert torch.allclose(m.log_density(y, base.log_prob), pushed.log_prob(y), atol=1e-8)


def test_numpy_in_numpy_out_and_batching():
    net = DenseICNN(2, [8, 8], seed=0)
    m = TransportMap(net, net)
    x = np.random.randn(1001, 2).astype(np.float32)
    out = m.forward(x, batch_size=100)
    assert isinstance(out, np.ndarray) and out.shape == (1001, 2)
    assert np.allclose(out, m.forward(torch.from_numpy(x)).numpy(), atol=1e-6)
    assert m.potential(x).shape == (1001,)


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.zeros(4), np.full((2, 2), np.nan)])
def test_bad_inputs_to_map_raise_clear_errors(bad):
    m = TransportMap(DenseICNN(2, [4], seed=0))
    with pytest.raises(W2GNUserError, match="shape|NaN"):
        m.forward(bad)


def test_save_load_roundtrip_identical(tmp_path):
    theta, omega = DenseICNN(3, [8, 8, 4], rank=2, seed=1), DenseICNN(3, [8, 8, 4], rank=2, seed=2)
    m = TransportMap(theta, omega, method="w2gn", info={"note": "x"})
    path = m.save(tmp_path / "map.pt")
    again = TransportMap.load(path)
    x = torch.randn(100, 3)
    assert torch.equal(again.forward(x), m.forward(x))
    assert torch.equal(again.inverse(x), m.inverse(x))
    assert again.info["note"] == "x" and again.method == "w2gn"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_save_load_float64(tmp_path):
    m = TransportMap(DenseICNN(2, [4], seed=0).double())
    m.save(tmp_path / "m.pt")
    assert TransportMap.load(tmp_path / "m.pt").dtype == torch.float64


def test_load_refuses_truncated_foreign_and_missing_files(tmp_path):
    m = TransportMap(DenseICNN(2, [4], seed=0))
    path = m.save(tmp_path / "map.pt")
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(W2GNUserError, match="truncated or foreign"):
        TransportMap.load(tmp_path / "trunc.pt")
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    with pytest.raises(W2GNUserError, match="not a w2gn map"):
        TransportMap.load(tmp_path / "foreign.pt")
    with pytest.raises(W2GNUserError, match="no such"):
        TransportMap.load(tmp_path / "missing.pt")


def test_refuses_to_save_non_finite_weights(tmp_path):
    net = DenseICNN(2, [4], seed=0)
    with torch.no_grad():
        net.final_layer.weight[0, 0] = float("nan")
    with pytest.raises(W2GNUserError, match="non-finite"):
        TransportMap(net).save(tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
